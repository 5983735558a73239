"""`agentgym conformance HOST:PORT`: check any EnvService implementation against the contract.

The checks speak raw gRPC (so they can send bytes that are not a message) and need nothing from
the server beyond `protos/agentgym/v1/env.proto`, health checking and reflection. Checks that
need a misbehaving env use the `conformance` fixture env (see envs/conformance.py); a server that
does not host it gets those checks SKIPPED, with the reason.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from agentgym.core.security import ClientSecurity, connect
from agentgym.v1 import env_pb2 as pb

SERVICE = "agentgym.v1.EnvService"
FIXTURE = "conformance"
Code = grpc.StatusCode


class CheckFailed(Exception):
    pass


class Skip(Exception):
    pass


@dataclass
class CheckResult:
    name: str
    status: str  # PASS, FAIL, SKIP
    detail: str
    seconds: float


def _expect(cond: bool, message: str) -> None:
    if not cond:
        raise CheckFailed(message)


def _identity(b: bytes) -> bytes:
    return b


class Stream:
    """One raw Session stream."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        method = channel.stream_stream(
            f"/{SERVICE}/Session", request_serializer=_identity, response_deserializer=_identity
        )
        self.call = method()
        self.next_id = 1

    async def send(self, **kind: object) -> int:
        req_id = self.next_id
        self.next_id += 1
        await self.call.write(pb.SessionRequest(id=req_id, **kind).SerializeToString())  # type: ignore[arg-type]
        return req_id

    async def send_raw(self, data: bytes) -> None:
        await self.call.write(data)

    async def recv(self, timeout_s: float = 10.0) -> pb.SessionResponse:
        raw = await asyncio.wait_for(self.call.read(), timeout_s)
        if raw is grpc.aio.EOF:
            raise CheckFailed(f"stream ended (status {await self.call.code()}) where a response was expected")
        return pb.SessionResponse.FromString(raw)

    async def ask(self, timeout_s: float = 10.0, **kind: object) -> pb.SessionResponse:
        req_id = await self.send(**kind)
        resp = await self.recv(timeout_s)
        _expect(resp.id == req_id, f"response id {resp.id} does not echo request id {req_id}")
        return resp

    async def create(self, env: str, task_id: int = 0, **extra: object) -> pb.SessionResponse:
        return await self.ask(create=pb.CreateRequest(env=env, task_id=task_id, **extra))  # type: ignore[arg-type]

    async def step(self, action: str, timeout_s: float = 10.0) -> pb.SessionResponse:
        return await self.ask(timeout_s=timeout_s, step=pb.StepRequest(action=action))

    async def close(self) -> None:
        if self.call.done():
            return
        try:
            await self.ask(close=pb.CloseRequest())
            await self.call.done_writing()
            await asyncio.wait_for(self.call.read(), 5)
        except (CheckFailed, grpc.aio.AioRpcError, asyncio.InvalidStateError, TimeoutError):
            self.call.cancel()

    def cancel(self) -> None:
        self.call.cancel()


async def _stream_status(s: Stream) -> Code:
    """Read to the end of a stream the server is ending; return its status code."""
    try:
        while await asyncio.wait_for(s.call.read(), 5) is not grpc.aio.EOF:
            pass
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return await s.call.code()


def _error_code(resp: pb.SessionResponse) -> Code | None:
    if resp.WhichOneof("kind") != "error":
        return None
    return next((c for c in Code if c.value[0] == resp.error.code), Code.UNKNOWN)


def _expect_error(resp: pb.SessionResponse, code: Code, what: str) -> None:
    got = _error_code(resp)
    if got is None:
        raise CheckFailed(f"{what}: expected error {code.name}, got a {resp.WhichOneof('kind')} response")
    _expect(got == code, f"{what}: expected {code.name}, got {got.name}: {resp.error.message}")
    _expect(bool(resp.error.message.strip()), f"{what}: error {code.name} has an empty message")


class Suite:
    def __init__(self, address: str, timeout_s: float = 10.0, security: ClientSecurity | None = None) -> None:
        self.address = address
        self.timeout_s = timeout_s
        self.security = security  # TLS for grpcs://, the bearer token on every call (core/security.py)
        self.channel: grpc.aio.Channel
        self.info: pb.ListEnvsResponse
        self.results: list[CheckResult] = []

    # --- helpers -----------------------------------------------------------------------------------
    async def list_envs(self) -> pb.ListEnvsResponse:
        method = self.channel.unary_unary(
            f"/{SERVICE}/ListEnvs",
            request_serializer=pb.ListEnvsRequest.SerializeToString,
            response_deserializer=pb.ListEnvsResponse.FromString,
        )
        return await method(pb.ListEnvsRequest(), timeout=self.timeout_s)

    async def live(self, env: str | None = None) -> int:
        info = await self.list_envs()
        if env is None:
            return info.server.live_episodes
        return next((e.live_episodes for e in info.envs if e.name == env), 0)

    async def wait_live(self, env: str | None, target: int, within_s: float) -> float:
        """Seconds until the live count reaches `target`; fails after `within_s`."""
        t0 = time.monotonic()
        while True:
            n = await self.live(env)
            if n == target:
                return time.monotonic() - t0
            if time.monotonic() - t0 > within_s:
                raise CheckFailed(
                    f"live episodes{' of ' + env if env else ''} is {n}, expected {target} within {within_s:g}s"
                )
            await asyncio.sleep(0.02)

    def spec(self, name: str) -> pb.EnvSpec:
        return next(e for e in self.info.envs if e.name == name)

    def has_fixture(self) -> None:
        if not any(e.name == FIXTURE for e in self.info.envs):
            raise Skip(
                f"server does not host the '{FIXTURE}' fixture env (start it with --envs ...,{FIXTURE})"
            )

    def real_envs(self) -> list[pb.EnvSpec]:
        return [e for e in self.info.envs if e.name != FIXTURE]

    def any_env(self) -> str:
        envs = self.real_envs() or list(self.info.envs)
        _expect(bool(envs), "server hosts no env")
        return envs[0].name

    # --- checks ------------------------------------------------------------------------------------
    async def check_list_envs(self) -> str:
        info = self.info
        _expect(len(info.envs) > 0, "ListEnvs lists no env")
        names = [e.name for e in info.envs]
        _expect(names == sorted(names), f"envs are not sorted by name: {names}")
        for e in info.envs:
            _expect(
                bool(e.name) and e.task_count > 0 and e.max_rounds > 0,
                f"env {e.name!r}: empty name, task_count or max_rounds",
            )
            _expect(bool(e.instruction.strip()), f"env {e.name!r} has no instruction")
            _expect(e.max_episodes > 0, f"env {e.name!r}: max_episodes is 0")
            for s in e.splits:
                for r in s.ranges:
                    _expect(
                        r.start < r.end <= e.task_count,
                        f"env {e.name!r} split {s.name}: bad range [{r.start},{r.end})",
                    )
        s = info.server
        _expect(
            s.max_episodes > 0 and s.max_action_bytes > 0 and s.step_timeout_s > 0,
            "ServerInfo has zero limits",
        )
        return f"{len(names)} envs: {', '.join(names)}"

    async def check_health_reflection(self) -> str:
        health = health_pb2_grpc.HealthStub(self.channel)
        for service in ("", SERVICE):
            reply = await health.Check(health_pb2.HealthCheckRequest(service=service), timeout=self.timeout_s)
            _expect(
                reply.status == health_pb2.HealthCheckResponse.SERVING,
                f"health of {service!r} is {reply.status}",
            )
        stub = reflection_pb2_grpc.ServerReflectionStub(self.channel)
        call = stub.ServerReflectionInfo()
        await call.write(reflection_pb2.ServerReflectionRequest(list_services=""))
        await call.done_writing()
        reply = await asyncio.wait_for(call.read(), self.timeout_s)
        services = [s.name for s in reply.list_services_response.service]
        _expect(SERVICE in services, f"reflection does not list {SERVICE}: {services}")
        return "health SERVING; reflection lists " + ", ".join(services)

    async def check_lifecycle(self) -> str:
        done = []
        for spec in self.real_envs() or list(self.info.envs):
            s = Stream(self.channel)
            r = await s.create(spec.name, 0)
            _expect(
                r.WhichOneof("kind") == "created",
                f"{spec.name}: create answered {r.WhichOneof('kind')}: {r.error.message}",
            )
            c = r.created
            _expect(
                bool(c.episode_id) and c.env == spec.name and c.task_id == 0,
                f"{spec.name}: CreateResponse fields wrong: {c}",
            )
            _expect(bool(c.instruction.strip()), f"{spec.name}: empty instruction")
            _expect(
                c.initial.step_index == 0 and not c.initial.done,
                f"{spec.name}: initial state is not step 0, not done",
            )
            _expect(
                c.max_steps == spec.max_rounds,
                f"{spec.name}: max_steps {c.max_steps} != max_rounds {spec.max_rounds}",
            )
            action = (
                (await s.ask(expert=pb.ExpertRequest())).expert.action
                if spec.has_expert
                else (c.initial.available_actions[0] if c.initial.available_actions else "look")
            )
            r = await s.step(action)
            _expect(
                r.WhichOneof("kind") == "step",
                f"{spec.name}: step answered {r.WhichOneof('kind')}: {r.error.message}",
            )
            _expect(r.step.step_index == 1, f"{spec.name}: step_index after one step is {r.step.step_index}")
            o = await s.ask(observe=pb.ObserveRequest())
            _expect(o.step == r.step, f"{spec.name}: observe does not repeat the last result")
            closed = await s.ask(close=pb.CloseRequest())
            _expect(
                closed.WhichOneof("kind") == "closed",
                f"{spec.name}: close answered {closed.WhichOneof('kind')}",
            )
            await s.call.done_writing()
            _expect(
                await asyncio.wait_for(s.call.read(), 5) is grpc.aio.EOF,
                f"{spec.name}: stream did not end after close",
            )
            _expect(
                await s.call.code() == Code.OK,
                f"{spec.name}: stream ended with {await s.call.code()} after close",
            )
            done.append(spec.name)
        return "create, expert, step, observe, close on " + ", ".join(done)

    async def check_pipelining(self) -> str:
        env = FIXTURE if any(e.name == FIXTURE for e in self.info.envs) else self.any_env()
        s = Stream(self.channel)
        ids = [await s.send(create=pb.CreateRequest(env=env, task_id=1))]
        for _ in range(4):
            ids.append(await s.send(step=pb.StepRequest(action="ping")))
        ids.append(await s.send(observe=pb.ObserveRequest()))
        ids.append(await s.send(close=pb.CloseRequest()))
        await s.call.done_writing()
        kinds = []
        for want in ids:
            r = await s.recv()
            _expect(r.id == want, f"responses out of order: got id {r.id}, expected {want}")
            kinds.append(r.WhichOneof("kind"))
        _expect(kinds[0] == "created" and kinds[-1] == "closed", f"kinds {kinds}")
        return f"{len(ids)} pipelined requests answered in order ({', '.join(kinds)})"

    async def check_determinism(self) -> str:
        checked = []
        for spec in self.info.envs:
            traces = []
            for _ in range(2):
                s = Stream(self.channel)
                r = await s.create(spec.name, min(2, spec.task_count - 1), seed=7)
                _expect(r.WhichOneof("kind") == "created", f"{spec.name}: create failed: {r.error.message}")
                trace = [r.created.instruction, r.created.initial.SerializeToString(deterministic=True)]
                for _ in range(3):
                    if spec.name == FIXTURE:
                        action = "ping"
                    elif spec.has_expert:
                        action = (await s.ask(expert=pb.ExpertRequest())).expert.action
                    else:
                        action = "look"
                    r = await s.step(action)
                    if r.WhichOneof("kind") != "step":
                        break
                    trace.append(r.step.SerializeToString(deterministic=True))
                    if r.step.done or r.step.truncated:
                        break
                await s.close()
                traces.append(trace)
            _expect(traces[0] == traces[1], f"{spec.name}: the same task and seed gave different episodes")
            checked.append(spec.name)
        return "same task+seed replays byte for byte: " + ", ".join(checked)

    async def check_unknown_env(self) -> str:
        s = Stream(self.channel)
        _expect_error(await s.create("no-such-env-xyz"), Code.NOT_FOUND, "create of an unknown env")
        # A refused create leaves the stream usable.
        r = await s.create(self.any_env(), 0)
        _expect(r.WhichOneof("kind") == "created", "create after a refused create failed")
        await s.close()
        return "NOT_FOUND, and the stream stays usable"

    async def check_task_out_of_range(self) -> str:
        spec = self.spec(self.any_env())
        s = Stream(self.channel)
        _expect_error(await s.create(spec.name, spec.task_count), Code.OUT_OF_RANGE, "task_id == task_count")
        s.cancel()
        return f"task {spec.task_count} of {spec.name}: OUT_OF_RANGE"

    async def check_step_before_create(self) -> str:
        s = Stream(self.channel)
        _expect_error(await s.step("anything"), Code.FAILED_PRECONDITION, "step before create")
        _expect_error(
            await s.ask(observe=pb.ObserveRequest()), Code.FAILED_PRECONDITION, "observe before create"
        )
        _expect_error(
            await s.ask(reset=pb.ResetRequest(task_id=0)), Code.FAILED_PRECONDITION, "reset before create"
        )
        s.cancel()
        return "step/observe/reset before create: FAILED_PRECONDITION"

    async def check_second_create(self) -> str:
        env = self.any_env()
        s = Stream(self.channel)
        await s.create(env, 0)
        _expect_error(await s.create(env, 1), Code.FAILED_PRECONDITION, "second create on a stream")
        r = await s.ask(observe=pb.ObserveRequest())
        _expect(r.WhichOneof("kind") == "step", "the episode did not survive a refused second create")
        await s.close()
        return "FAILED_PRECONDITION; first episode unchanged"

    async def check_step_after_done(self) -> str:
        self.has_fixture()
        s = Stream(self.channel)
        await s.create(FIXTURE, 0)
        r = await s.step("finish")
        _expect(
            r.step.done and r.step.reward == 1.0 and r.step.success, f"'finish' did not end the episode: {r}"
        )
        _expect_error(await s.step("ping"), Code.FAILED_PRECONDITION, "step after done")
        r = await s.ask(reset=pb.ResetRequest(task_id=3))
        _expect(
            r.WhichOneof("kind") == "created" and r.created.task_id == 3,
            "reset after done did not start task 3",
        )
        r = await s.step("ping")
        _expect(r.WhichOneof("kind") == "step" and r.step.step_index == 1, "step after reset failed")
        await s.close()
        return "FAILED_PRECONDITION after done; reset starts a new task"

    async def check_truncation(self) -> str:
        self.has_fixture()
        s = Stream(self.channel)
        r = await s.create(FIXTURE, 0, max_steps=2)
        _expect(r.created.max_steps == 2, f"max_steps not echoed: {r.created.max_steps}")
        await s.step("ping")
        r = await s.step("ping")
        _expect(r.step.truncated and not r.step.done, f"2nd step of max_steps=2 is not truncated: {r.step}")
        _expect_error(await s.step("ping"), Code.FAILED_PRECONDITION, "step after truncation")
        await s.close()
        return "truncated at max_steps; further steps FAILED_PRECONDITION"

    async def check_bad_actions(self) -> str:
        env = self.any_env()
        limit = self.info.server.max_action_bytes
        s = Stream(self.channel)
        await s.create(env, 0)
        _expect_error(await s.step(""), Code.INVALID_ARGUMENT, "empty action")
        _expect_error(await s.step("   \n "), Code.INVALID_ARGUMENT, "whitespace-only action")
        if limit + 1024 < 4 * 1024 * 1024:
            _expect_error(await s.step("x" * (limit + 1)), Code.INVALID_ARGUMENT, "oversize action")
        r = await s.ask(observe=pb.ObserveRequest())
        _expect(r.WhichOneof("kind") == "step" and r.step.step_index == 0, "bad actions changed the episode")
        await s.close()
        return f"empty and {limit + 1}-byte actions: INVALID_ARGUMENT; episode unchanged"

    async def check_garbage(self) -> str:
        env = self.any_env()
        s = Stream(self.channel)
        await s.send_raw(b"\xff\xff\xff\xff not a protobuf \x00\x01")
        r = await s.recv()
        _expect_error(r, Code.INVALID_ARGUMENT, "garbage bytes")
        _expect(r.id == 0, f"response to unparseable bytes should have id 0, has {r.id}")
        await s.send_raw(pb.SessionRequest(id=42).SerializeToString())
        r = await s.recv()
        _expect_error(r, Code.INVALID_ARGUMENT, "request with no kind set")
        r = await s.create(env, 0)
        _expect(r.WhichOneof("kind") == "created", "stream unusable after garbage")
        await s.close()
        list_envs = self.channel.unary_unary(f"/{SERVICE}/ListEnvs")  # raw bytes both ways
        try:
            await list_envs(b"\xff\xff\xff\xff not a protobuf", timeout=self.timeout_s)
        except grpc.aio.AioRpcError as exc:
            _expect(
                exc.code() == grpc.StatusCode.INVALID_ARGUMENT,
                f"garbage on ListEnvs should answer INVALID_ARGUMENT, got {exc.code().name}: {exc.details()}",
            )
        else:
            raise CheckFailed("garbage on ListEnvs was answered as if it were a request")
        return (
            "unparseable bytes and empty requests: INVALID_ARGUMENT in band; stream still usable; "
            "garbage on ListEnvs: INVALID_ARGUMENT"
        )

    async def check_env_crash(self) -> str:
        self.has_fixture()
        before = await self.live(FIXTURE)
        other = Stream(self.channel)
        try:
            await other.create(FIXTURE, 1)
            s = Stream(self.channel)
            await s.create(FIXTURE, 0)
            r = await s.step("crash")
            _expect_error(r, Code.INTERNAL, "env that raises")
            _expect(
                FIXTURE in r.error.message, f"INTERNAL message does not name the env: {r.error.message!r}"
            )
            _expect(
                await _stream_status(s) == Code.INTERNAL,
                f"stream not ended with INTERNAL ({await s.call.code()})",
            )
            r = await other.step("ping")
            _expect(r.WhichOneof("kind") == "step", "another episode was affected by the crash")
        finally:
            await other.close()
        await self.wait_live(FIXTURE, before, 2.0)
        return "INTERNAL naming the env, stream ended, other episode unaffected, env freed"

    async def check_server_error(self) -> str:
        # The fixture's "malformed" step returns an outcome the server's own code cannot encode:
        # the stand-in for a bug of the server. It must fail like an env crash (INTERNAL in band,
        # then the stream ends with INTERNAL), not end the stream with UNKNOWN and nothing in band.
        self.has_fixture()
        before = await self.live(FIXTURE)
        other = Stream(self.channel)
        try:
            await other.create(FIXTURE, 1)
            s = Stream(self.channel)
            await s.create(FIXTURE, 0)
            step_id = await s.send(step=pb.StepRequest(action="malformed"))
            try:
                r = await s.recv()
            except CheckFailed:
                raise CheckFailed(
                    f"no in-band error: the stream ended with {(await s.call.code()).name} "
                    f"({await s.call.details()!r}); a server error must be answered INTERNAL in band"
                ) from None
            _expect(r.id == step_id, f"response id {r.id} does not echo request id {step_id}")
            _expect_error(r, Code.INTERNAL, "server error in a step")
            status = await _stream_status(s)
            _expect(status == Code.INTERNAL, f"stream not ended with INTERNAL ({status.name})")
            r = await other.step("ping")
            _expect(r.WhichOneof("kind") == "step", "another episode was affected by the server error")
        finally:
            await other.close()
        await self.wait_live(FIXTURE, before, 2.0)
        return "INTERNAL in band, stream ended with INTERNAL, other episode unaffected, env freed"

    async def check_expert_cannot_act(self) -> str:
        # After the fixture's "stuck" step its expert raises: an expert with no action here is a
        # precondition, not a failure; the episode goes on.
        self.has_fixture()
        s = Stream(self.channel)
        await s.create(FIXTURE, 0)
        r = await s.step("stuck")
        _expect(r.WhichOneof("kind") == "step", f"step 'stuck' answered {r.WhichOneof('kind')}")
        _expect_error(
            await s.ask(expert=pb.ExpertRequest()), Code.FAILED_PRECONDITION, "expert that cannot act"
        )
        r = await s.step("ping")
        _expect(
            r.WhichOneof("kind") == "step" and r.step.step_index == 2,
            f"the episode did not go on after its expert could not act: {r}",
        )
        r = await s.ask(expert=pb.ExpertRequest())
        _expect(
            r.WhichOneof("kind") == "expert" and r.expert.action == "finish",
            f"the expert did not act again after the next step: {r}",
        )
        await s.close()
        return "FAILED_PRECONDITION in band; the episode goes on and the expert acts again"

    async def check_env_hang(self) -> str:
        self.has_fixture()
        timeout = self.info.server.step_timeout_s
        if timeout > 20:
            raise Skip(
                f"step timeout is {timeout:g}s; start the server with a step timeout <= 20s to check hangs quickly"
            )
        before = await self.live(FIXTURE)
        s = Stream(self.channel)
        await s.create(FIXTURE, 0, options={"hang_s": f"{timeout + 3:g}"})
        t0 = time.monotonic()
        r = await s.step("hang", timeout_s=timeout + 10)
        took = time.monotonic() - t0
        _expect_error(r, Code.DEADLINE_EXCEEDED, "env that hangs")
        _expect(await _stream_status(s) == Code.DEADLINE_EXCEEDED, "stream not ended with DEADLINE_EXCEEDED")
        _expect(took < timeout + 2, f"DEADLINE_EXCEEDED came after {took:.1f}s, step timeout is {timeout:g}s")
        await self.wait_live(FIXTURE, before, 2.0)
        return f"DEADLINE_EXCEEDED after {took:.2f}s (step timeout {timeout:g}s); env freed"

    async def check_capacity(self) -> str:
        self.has_fixture()
        spec = self.spec(FIXTURE)
        free = spec.max_episodes - await self.live(FIXTURE)
        if free > 64:
            raise Skip(f"the fixture allows {spec.max_episodes} live episodes; too many to fill")
        streams = []
        try:
            for _ in range(free):
                s = Stream(self.channel)
                r = await s.create(FIXTURE, 0)
                _expect(
                    r.WhichOneof("kind") == "created", f"create below capacity refused: {r.error.message}"
                )
                streams.append(s)
            s = Stream(self.channel)
            streams.append(s)
            t0 = time.monotonic()
            r = await s.create(FIXTURE, 0)
            took = time.monotonic() - t0
            _expect_error(r, Code.RESOURCE_EXHAUSTED, "create at capacity")
            _expect(took < 1.0, f"refusal took {took:.2f}s: it must be immediate, not queued")
        finally:
            for st in streams:
                await st.close()
        s = Stream(self.channel)
        r = await s.create(FIXTURE, 0)
        _expect(r.WhichOneof("kind") == "created", "create after capacity freed still refused")
        await s.close()
        return f"{free + 1}th episode refused in {took * 1000:.0f} ms with RESOURCE_EXHAUSTED; accepted again after close"

    async def check_vanished_client(self) -> str:
        env = FIXTURE if any(e.name == FIXTURE for e in self.info.envs) else self.any_env()
        before = await self.live(env)
        code = (
            "import asyncio,sys,grpc\n"
            "from agentgym.v1 import env_pb2 as pb\n"
            "async def main():\n"
            f"    ch = grpc.aio.insecure_channel({self.address!r})\n"
            "    m = ch.stream_stream('/agentgym.v1.EnvService/Session', request_serializer=pb.SessionRequest.SerializeToString, response_deserializer=pb.SessionResponse.FromString)\n"
            "    call = m()\n"
            f"    await call.write(pb.SessionRequest(id=1, create=pb.CreateRequest(env={env!r}, task_id=0)))\n"
            "    r = await call.read()\n"
            "    print(r.WhichOneof('kind'), flush=True)\n"
            "    await asyncio.sleep(3600)\n"
            "asyncio.run(main())\n"
        )
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", code, stdout=asyncio.subprocess.PIPE
        )
        try:
            assert proc.stdout is not None
            line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
            _expect(line.strip() == "created", f"client process could not create an episode: {line!r}")
            await self.wait_live(env, before + 1, 2.0)
            proc.kill()
            took = await self.wait_live(env, before, 5.0)
        finally:
            if proc.returncode is None:
                proc.kill()
            await proc.wait()
        _expect(took <= 1.0, f"env freed {took:.2f}s after the client vanished (must be within 1s)")
        return f"client killed (SIGKILL); its episode freed in {took * 1000:.0f} ms"

    async def check_no_leak(self) -> str:
        await asyncio.sleep(0.2)
        info = await self.list_envs()
        _expect(
            info.server.live_episodes == self.baseline,
            f"{info.server.live_episodes} episodes live after the suite, {self.baseline} before",
        )
        return f"{info.server.live_episodes} live episodes after the suite (as before)"

    # --- runner --------------------------------------------------------------------------------------
    def checks(self) -> list[tuple[str, Callable[[], Awaitable[str]]]]:
        return [
            ("ListEnvs", self.check_list_envs),
            ("health and reflection", self.check_health_reflection),
            ("lifecycle: create/step/observe/close", self.check_lifecycle),
            ("pipelining: ids and order", self.check_pipelining),
            ("determinism: same task twice", self.check_determinism),
            ("error: unknown env", self.check_unknown_env),
            ("error: task id out of range", self.check_task_out_of_range),
            ("error: step before create", self.check_step_before_create),
            ("error: second create", self.check_second_create),
            ("error: step after done", self.check_step_after_done),
            ("truncation at max_steps", self.check_truncation),
            ("error: empty/oversize action", self.check_bad_actions),
            ("error: garbage bytes", self.check_garbage),
            ("error: env raises", self.check_env_crash),
            ("error: server error in a step", self.check_server_error),
            ("error: expert cannot act", self.check_expert_cannot_act),
            ("error: env hangs", self.check_env_hang),
            ("capacity refusal", self.check_capacity),
            ("vanished client frees its episode", self.check_vanished_client),
            ("no leaked episodes", self.check_no_leak),
        ]

    async def run(self, only: set[str] | None = None) -> list[CheckResult]:
        async with connect(self.address, self.security) as channel:
            self.channel = channel
            try:
                self.info = await self.list_envs()
            except grpc.aio.AioRpcError as exc:
                return [
                    CheckResult(
                        "ListEnvs",
                        "FAIL",
                        f"cannot reach {self.address}: {exc.code().name} {exc.details()}",
                        0.0,
                    )
                ]
            self.baseline = self.info.server.live_episodes
            for name, check in self.checks():
                if only and not any(o in name for o in only):
                    continue
                t0 = time.monotonic()
                try:
                    detail = await asyncio.wait_for(check(), 120)
                    status = "PASS"
                except Skip as exc:
                    status, detail = "SKIP", str(exc)
                except CheckFailed as exc:
                    status, detail = "FAIL", str(exc)
                except (grpc.aio.AioRpcError, TimeoutError, asyncio.InvalidStateError) as exc:
                    status, detail = "FAIL", f"{type(exc).__name__}: {exc}"
                self.results.append(CheckResult(name, status, detail, time.monotonic() - t0))
        return self.results


def run_suite(
    address: str, only: set[str] | None = None, security: ClientSecurity | None = None
) -> list[CheckResult]:
    return asyncio.run(Suite(address, security=security).run(only))
