"""One `Session` stream: the protocol state machine of one episode.

`Session.handle` takes the raw bytes of one request and returns the raw bytes of its response,
plus, when the request ended the episode for good, the status that ends the stream. All rules of
`protos/agentgym/v1/env.proto` about order, validation and errors are enforced here.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

import grpc
from google.protobuf.message import DecodeError

from agentgym.core import metrics
from agentgym.envs.base import EnvError, Outcome
from agentgym.server.runners import EnvCrashed, EnvRaised, EnvTimeout, Runner
from agentgym.v1 import env_pb2 as pb

if TYPE_CHECKING:
    from agentgym.server.service import EnvService, HostedEnv

log = logging.getLogger(__name__)

_ids = itertools.count(1)
_PID = f"{os.getpid():x}"

Code = grpc.StatusCode
_CODE_NAMES = {c.value[0]: c.name for c in grpc.StatusCode}


class Fatal(Exception):
    """Ends the episode and the stream with `code`."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def error_response(req_id: int, code: grpc.StatusCode, message: str) -> bytes:
    return pb.SessionResponse(
        id=req_id, error=pb.Status(code=code.value[0], message=message)
    ).SerializeToString()


class Session:
    """State of one stream. Not shared between tasks: the stream's requests are handled in order."""

    def __init__(self, service: EnvService, peer: str) -> None:
        self.service = service
        self.peer = peer
        self.hosted: HostedEnv | None = None
        self.runner: Runner | None = None
        self.episode_id = ""
        self.task_id = 0
        self.step_index = 0
        self.max_steps = 0
        self.score = 0.0
        self.over = False  # done or truncated
        self.last: pb.StepResult | None = None
        self.busy = False
        self.closed = False
        self.last_activity = time.monotonic()
        self.end_status: tuple[grpc.StatusCode, str] | None = None  # set when ended from outside
        # The stream's handler task, and whether it waits for the next request: `expire` wakes it
        # there (`interrupted`) so that a stream ended from outside ends at once.
        self.task: asyncio.Task[None] | None = None
        self.reading = False
        self.interrupted = False
        self.request: pb.SessionRequest | None = None  # the one being handled, once parsed

    # --- entry point ---------------------------------------------------------------------------
    async def handle(self, raw: bytes) -> tuple[bytes, Fatal | None]:
        self.request = None
        before = self.last
        response, fatal = await self._handle(raw)
        # A new result means a create, reset or step succeeded; only other answers (errors, and the
        # rarer observe/expert/close) are parsed for their code, keeping steps cheap.
        if fatal is not None:
            code = fatal.code.name
        elif self.last is not before:
            code = "OK"
        else:
            error = pb.SessionResponse.FromString(response).error
            code = _CODE_NAMES.get(error.code, str(error.code))
        req = self.request
        kind = req.WhichOneof("kind") if req is not None else None
        if req is not None and kind == "create":
            env = req.create.env if req.create.env in self.service.hosted else metrics.NOT_HOSTED
            metrics.child(metrics.CREATES, env, code).inc()
        else:
            env = self.hosted.cls.name if self.hosted is not None else metrics.NO_EPISODE
            if kind == "step":
                metrics.child(metrics.STEPS, env, code).inc()
        if code != "OK":
            metrics.child(metrics.ERRORS, env, code).inc()
        return response, fatal

    async def _handle(self, raw: bytes) -> tuple[bytes, Fatal | None]:
        self.last_activity = time.monotonic()
        try:
            req = pb.SessionRequest.FromString(raw)
        except DecodeError as exc:
            return error_response(
                0, Code.INVALID_ARGUMENT, f"could not parse a SessionRequest from {len(raw)} bytes: {exc}"
            ), None
        self.request = req
        kind = req.WhichOneof("kind")
        self.busy = True
        try:
            if self.end_status is not None:  # ended from outside while idle: say why, end the stream
                raise Fatal(*self.end_status)
            if kind == "step":
                return await self._step(req.id, req.step), None
            if kind == "create":
                return await self._create(req.id, req.create), None
            if kind == "observe":
                return self._observe(req.id), None
            if kind == "reset":
                return await self._reset(req.id, req.reset), None
            if kind == "expert":
                return await self._expert(req.id), None
            if kind == "close":
                return await self._close(req.id), None
            return error_response(
                req.id,
                Code.INVALID_ARGUMENT,
                f"request {req.id} sets none of create, step, observe, reset, expert, close",
            ), None
        except Fatal as fatal:
            return await self._fail(req.id, fatal)
        except Exception as exc:
            # A bug of this server, not of the env: still only this episode ends, and the client is
            # told in band, as for any fatal error (and as the Node server does), not by an UNKNOWN
            # end of the stream.
            fatal = Fatal(
                Code.INTERNAL,
                f"server error in {kind or 'a request'}: {type(exc).__name__}: {exc}; the episode is over",
            )
            fatal.__cause__ = exc
            return await self._fail(req.id, fatal)
        finally:
            self.busy = False
            self.last_activity = time.monotonic()

    async def _fail(self, req_id: int, fatal: Fatal) -> tuple[bytes, Fatal]:
        extra: dict[str, object] = {
            "episode": self.episode_id,
            "code": fatal.code.name,
            "error": fatal.message,
            "peer": self.peer,
        }
        if isinstance(fatal.__cause__, EnvTimeout):
            # Time the call waited for a free thread, which its limit does not count: a high value
            # says the server needs more threads (`threads`), not that the env is slow.
            extra["queued_s"] = round(fatal.__cause__.queued_s, 3)
        log.warning("episode failed", exc_info=fatal.__cause__, extra=extra)
        await self.release(f"{fatal.code.name}: {fatal.message}")
        return error_response(req_id, fatal.code, fatal.message), fatal

    # --- requests ------------------------------------------------------------------------------
    async def _create(self, req_id: int, c: pb.CreateRequest) -> bytes:
        if self.runner is not None:
            return error_response(
                req_id,
                Code.FAILED_PRECONDITION,
                f"this stream already has episode {self.episode_id} ({self.hosted.cls.name if self.hosted else '?'} "
                f"task {self.task_id}); one stream is one episode: send reset for another task, or open a new stream",
            )
        service = self.service
        if service.draining:
            env = c.env if c.env in service.hosted else metrics.NOT_HOSTED
            metrics.REFUSALS.labels(env, "draining").inc()
            return error_response(
                req_id,
                Code.UNAVAILABLE,
                "the server is shutting down and accepts no new episodes; use another server",
            )
        hosted = service.hosted.get(c.env)
        if hosted is None:
            return error_response(
                req_id,
                Code.NOT_FOUND,
                f"env {c.env!r} is not hosted here; this server hosts: {', '.join(sorted(service.hosted))}",
            )
        if err := self._check_task(req_id, hosted, c.task_id, c.options):
            return err
        refusal = service.capacity.acquire(hosted.cls.name)
        if refusal:
            return error_response(req_id, Code.RESOURCE_EXHAUSTED, refusal)
        try:
            self.runner = await hosted.new_runner()
        except Exception as exc:
            service.capacity.release(hosted.cls.name)
            self.runner = None
            raise Fatal(Code.INTERNAL, f"env {c.env!r} could not start: {type(exc).__name__}: {exc}") from exc
        except BaseException:
            # Cancelled: the client went away while the env was starting. A worker started for this
            # create has been killed by then (ProcessRunner.spawn); the slot is given back here.
            service.capacity.release(hosted.cls.name)
            raise
        self.hosted = hosted
        self.episode_id = f"{_PID}-{next(_ids)}"
        service.on_episode_start(self)
        return await self._start(
            req_id, c.task_id, c.seed if c.HasField("seed") else None, c.max_steps, c.options, created=True
        )

    async def _reset(self, req_id: int, r: pb.ResetRequest) -> bytes:
        if self.runner is None or self.hosted is None:
            return error_response(
                req_id,
                Code.FAILED_PRECONDITION,
                "no episode yet: the first request on a stream must be create",
            )
        if err := self._check_task(req_id, self.hosted, r.task_id, {}):
            return err
        return await self._start(
            req_id, r.task_id, r.seed if r.HasField("seed") else None, r.max_steps, {}, created=False
        )

    def _check_task(
        self, req_id: int, hosted: HostedEnv, task_id: int, options: Mapping[str, str]
    ) -> bytes | None:
        cls = hosted.cls
        if task_id >= cls.task_count:
            return error_response(
                req_id,
                Code.OUT_OF_RANGE,
                f"task_id {task_id} is out of range for env {cls.name!r}: valid ids are 0..{cls.task_count - 1}",
            )
        unknown = sorted(set(options) - set(cls.create_options))
        if unknown:
            accepted = ", ".join(sorted(cls.create_options)) or "none"
            return error_response(
                req_id,
                Code.INVALID_ARGUMENT,
                f"env {cls.name!r} does not accept create options {unknown}; accepted: {accepted}",
            )
        return None

    async def _start(
        self,
        req_id: int,
        task_id: int,
        seed: int | None,
        max_steps: int,
        options: Mapping[str, str],
        created: bool,
    ) -> bytes:
        assert self.runner is not None and self.hosted is not None
        cls = self.hosted.cls
        seed = cls.default_seed(task_id) if seed is None else seed
        try:
            with metrics.timed(metrics.RESET_SECONDS, cls.name):
                outcome, instruction = await self.runner.reset(task_id, seed, dict(options))
        except EnvError as exc:
            if created:  # the episode never started: give the slot back, keep the stream
                await self.release(f"create refused: {exc}", log_level=logging.DEBUG)
            return error_response(
                req_id, Code.INVALID_ARGUMENT, f"env {cls.name!r} refused the request: {exc}"
            )
        except EnvTimeout as exc:
            raise Fatal(
                Code.DEADLINE_EXCEEDED,
                f"env {cls.name!r} reset of task {task_id}: {exc}; the episode is over",
            ) from exc
        except EnvCrashed as exc:
            raise Fatal(
                Code.INTERNAL,
                f"env {cls.name!r} failed in reset of task {task_id}: {exc}; the episode is over",
            ) from exc
        self.task_id = task_id
        self.step_index = 0
        self.score = 0.0
        self.over = False
        self.max_steps = max_steps or cls.max_rounds
        self.last = self._result(outcome)
        return pb.SessionResponse(
            id=req_id,
            created=pb.CreateResponse(
                episode_id=self.episode_id,
                env=cls.name,
                task_id=task_id,
                seed=seed,
                instruction=instruction,
                initial=self.last,
                max_steps=self.max_steps,
                acknowledgement=cls.acknowledgement,
            ),
        ).SerializeToString()

    async def _step(self, req_id: int, s: pb.StepRequest) -> bytes:
        if self.runner is None or self.hosted is None:
            return error_response(
                req_id,
                Code.FAILED_PRECONDITION,
                "no episode yet: the first request on a stream must be create",
            )
        if self.over:
            return error_response(req_id, Code.FAILED_PRECONDITION, self._over_message())
        action = s.action.strip()
        if not action:
            return error_response(
                req_id,
                Code.INVALID_ARGUMENT,
                "action is empty; send the action text, e.g. the line after 'Action:'",
            )
        limit = self.service.config.max_action_bytes
        if len(action) * 4 > limit and (n := len(action.encode())) > limit:
            metrics.REFUSALS.labels(self.hosted.cls.name, "max_action_bytes").inc()
            return error_response(
                req_id,
                Code.INVALID_ARGUMENT,
                f"action is {n} bytes; this server accepts at most {limit} (max_action_bytes)",
            )
        try:
            with metrics.timed(metrics.STEP_SECONDS, self.hosted.cls.name):
                outcome = await self.runner.step(action)
        except EnvTimeout as exc:
            raise Fatal(
                Code.DEADLINE_EXCEEDED,
                f"env {self.hosted.cls.name!r} step {self.step_index + 1}: {exc}; the episode is over",
            ) from exc
        except (EnvCrashed, EnvError) as exc:
            raise Fatal(
                Code.INTERNAL,
                f"env {self.hosted.cls.name!r} failed in step {self.step_index + 1}: {exc}; the episode is over",
            ) from exc
        self.step_index += 1
        self.last = self._result(outcome)
        self.service.steps += 1
        return pb.SessionResponse(id=req_id, step=self.last).SerializeToString()

    def _observe(self, req_id: int) -> bytes:
        if self.last is None:
            return error_response(
                req_id,
                Code.FAILED_PRECONDITION,
                "no episode yet: the first request on a stream must be create",
            )
        return pb.SessionResponse(id=req_id, step=self.last).SerializeToString()

    async def _expert(self, req_id: int) -> bytes:
        if self.runner is None or self.hosted is None:
            return error_response(
                req_id,
                Code.FAILED_PRECONDITION,
                "no episode yet: the first request on a stream must be create",
            )
        if not self.hosted.cls.has_expert():
            return error_response(
                req_id, Code.FAILED_PRECONDITION, f"env {self.hosted.cls.name!r} has no expert"
            )
        if self.over:
            return error_response(req_id, Code.FAILED_PRECONDITION, self._over_message())
        try:
            action, thought = await self.runner.expert()
        except EnvTimeout as exc:
            raise Fatal(
                Code.DEADLINE_EXCEEDED, f"env {self.hosted.cls.name!r} expert: {exc}; the episode is over"
            ) from exc
        except (EnvRaised, EnvError) as exc:
            # The expert has no action from this state (one its planner does not cover). Asking
            # changes nothing, so the episode goes on: the client may act without the expert.
            return error_response(
                req_id,
                Code.FAILED_PRECONDITION,
                f"env {self.hosted.cls.name!r} expert cannot act in this state: {exc}; the episode continues",
            )
        except EnvCrashed as exc:  # its worker process died
            raise Fatal(
                Code.INTERNAL, f"env {self.hosted.cls.name!r} expert failed: {exc}; the episode is over"
            ) from exc
        return pb.SessionResponse(
            id=req_id, expert=pb.ExpertResponse(action=action, thought=thought)
        ).SerializeToString()

    async def _close(self, req_id: int) -> bytes:
        final = self.last or pb.StepResult()
        self.closed = True
        await self.release("closed by client")
        return pb.SessionResponse(id=req_id, closed=pb.CloseResponse(final=final)).SerializeToString()

    # --- helpers -------------------------------------------------------------------------------
    def _result(self, o: Outcome) -> pb.StepResult:
        assert self.hosted is not None
        self.score = o.score if o.score is not None else self.score + o.reward
        truncated = not o.done and self.step_index >= self.max_steps
        self.over = o.done or truncated
        return pb.StepResult(
            observation=o.observation,
            reward=o.reward,
            score=self.score,
            done=o.done,
            truncated=truncated,
            success=o.success,
            step_index=self.step_index,
            available_actions=o.available_actions,
            info=o.info,
        )

    def _over_message(self) -> str:
        how = (
            "done"
            if self.last is not None and self.last.done
            else f"truncated at its {self.max_steps}-step limit"
        )
        return (
            f"episode {self.episode_id} is over ({how} after {self.step_index} steps); "
            "send reset to start another task, or close"
        )

    async def expire(self, code: grpc.StatusCode, message: str) -> None:
        """End the stream from outside (idle timeout, shutdown), with or without an episode: free
        the env now and end the stream with `code`: at once if it waits for a request, else as soon
        as its response in flight is sent."""
        if self.end_status is None:
            self.end_status = (code, message)
            if self.reading and self.task is not None:
                self.interrupted = True
                self.task.cancel()
            await self.release(f"{code.name}: {message}", log_level=logging.INFO)

    async def release(self, reason: str, log_level: int = logging.DEBUG) -> None:
        """Free the env and its capacity slot. Safe to call more than once."""
        runner, hosted = self.runner, self.hosted
        self.runner = None
        if runner is None or hosted is None:
            return
        self.service.capacity.release(hosted.cls.name)
        self.service.on_episode_end(self)
        log.log(
            log_level,
            "episode ended",
            extra={
                "episode": self.episode_id,
                "env": hosted.cls.name,
                "task": self.task_id,
                "steps": self.step_index,
                "reason": reason,
                "peer": self.peer,
            },
        )
        try:
            await runner.close()
        except Exception:
            log.warning(
                "closing env failed",
                exc_info=True,
                extra={"episode": self.episode_id, "env": hosted.cls.name},
            )
