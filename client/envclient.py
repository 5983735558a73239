"""The async client SDK: many concurrent episodes over a few gRPC channels.

    async with EnvClient("127.0.0.1:50051") as client:     # "grpcs://host:50051": TLS (docs/security.md)
        async with client.episode("maze", task_id=3) as ep:
            print(ep.instruction, ep.initial.observation)
            while not ep.over:
                result = await ep.step(await ep.expert())
            print(result.success)

Each episode is one bidirectional stream; all streams to one server share its channel(s). With
several addresses, an episode goes to the least-loaded server that hosts its env (from
`ListEnvs`, refreshed in the background, plus this client's own opens and closes); a server that
is full or unreachable at create time is skipped for the next one.

A fleet address, `EnvClient("ray://HOST:PORT/FLEET")` (docs/fleet.md), takes its servers from the
fleet's controller instead (client/discovery.py, re-read every second): new servers join, and one
that leaves the table, turns unhealthy or drains gets no new episodes while its live streams stay
on it until they end; a server gone from the table has its channels closed once idle. Load is the
controller's live/capacity per env plus this client's own opens since the last table. Nothing of
the fleet sits on the step path: episodes stream straight to their server.

`security` (core/security.py; default: $AGENTGYM_TLS_CA and $AGENTGYM_TOKEN_FILE) gives the CA that
grpcs:// servers are checked against, a client certificate for mutual TLS, and the bearer token
every call carries.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import grpc

from agentgym.client.discovery import Discovery, accepts_new_episodes
from agentgym.client.discovery import load as fleet_load
from agentgym.client.errors import (
    AgentGymError,
    FailedPrecondition,
    NotFound,
    Unavailable,
    error_for,
    from_rpc_error,
)
from agentgym.client.types import EnvInfo, ServerStatus, StepResult
from agentgym.core.fleet import ServerEntry, is_fleet_address
from agentgym.core.security import ClientSecurity, connect, default_client
from agentgym.v1 import env_pb2 as pb

log = logging.getLogger(__name__)

_SESSION = "/agentgym.v1.EnvService/Session"
_LIST = "/agentgym.v1.EnvService/ListEnvs"


def channel_options(
    max_message_bytes: int = 4 * 1024 * 1024, distinct: int | None = None
) -> list[tuple[str, Any]]:
    opts: list[tuple[str, Any]] = [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.http2.max_pings_without_data", 0),
        ("grpc.enable_retries", 0),
    ]
    if distinct is not None:
        # Channels with equal arguments share one connection; a distinct arg forces a new one.
        opts.append(("agentgym.channel_index", distinct))
    return opts


class _Server:
    """One server address: its channels, what it hosts, and how loaded it is."""

    def __init__(self, address: str, channels: int, max_message_bytes: int, security: ClientSecurity) -> None:
        self.address = address
        self.security = security
        # The token goes on each call here (session_call, list_rpc) rather than through a channel
        # interceptor, which would add a queue hop to every message of every episode.
        self.channels = [
            connect(
                address,
                security,
                channel_options(max_message_bytes, i if channels > 1 else None),
                token_per_call=False,
            )
            for i in range(channels)
        ]
        self._next = itertools.cycle(range(channels))
        self.sessions = [
            ch.stream_stream(
                _SESSION,
                request_serializer=pb.SessionRequest.SerializeToString,
                response_deserializer=pb.SessionResponse.FromString,
            )
            for ch in self.channels
        ]
        self.list_rpc = self.channels[0].unary_unary(
            _LIST,
            request_serializer=pb.ListEnvsRequest.SerializeToString,
            response_deserializer=pb.ListEnvsResponse.FromString,
        )
        self.status: ServerStatus | None = None
        self.open: Counter[str] = Counter()  # this client's live episodes here, per env
        self.opened_since_refresh: Counter[str] = Counter()
        self.down_until = 0.0
        self.creating = 0  # creates in flight here (not yet counted in `open`)
        self.closing = 0  # graceful closes in flight here (no longer counted in `open`)
        # Fleet clients: this server's row of the routing table; `gone` once it left the table
        # (no new episodes; its channels close when no episode of ours is left on it).
        self.entry: ServerEntry | None = None
        self.gone = False
        self.idle_polls = 0

    @property
    def busy(self) -> bool:
        return self.creating > 0 or self.closing > 0 or any(n > 0 for n in self.open.values())

    def session_call(self) -> grpc.aio.StreamStreamCall:
        return self.sessions[next(self._next)](metadata=self.security.metadata())

    def load(self, env: str) -> float:
        """Fraction of this server's capacity for `env` in use, by the last ListEnvs plus our own
        opens since; unknown servers count as empty. A fleet's server: by its routing-table row."""
        if self.entry is not None:
            return fleet_load(self.entry, env, self.opened_since_refresh[env])
        if self.status is None or env not in self.status.envs:
            return self.open[env] / 1e9
        info = self.status.envs[env]
        live = info.live_episodes + self.opened_since_refresh[env]
        return live / max(1, info.max_episodes)

    async def close(self) -> None:
        await asyncio.gather(*(ch.close() for ch in self.channels), return_exceptions=True)


class EnvClient:
    """Async client for one or more env servers, or for a fleet (`ray://HOST:PORT/FLEET`, or a
    `Discovery`). Use as `async with`, or call `close()`."""

    def __init__(
        self,
        addresses: str | Sequence[str] | Discovery,
        *,
        channels_per_server: int = 1,
        max_message_bytes: int = 4 * 1024 * 1024,
        refresh_s: float = 5.0,
        connect_timeout_s: float = 10.0,
        security: ClientSecurity | None = None,
        fleet_refresh_s: float = 1.0,
    ) -> None:
        self.discovery: Discovery | None = None
        if isinstance(addresses, Discovery):
            self.discovery = addresses
        else:
            if isinstance(addresses, str):
                addresses = [a.strip() for a in addresses.split(",") if a.strip()]
            if not addresses:
                raise ValueError("EnvClient needs at least one server address (host:port)")
            if any(is_fleet_address(a) for a in addresses):
                if len(addresses) > 1:
                    raise ValueError(
                        f"a fleet address stands alone: give one ray://HOST:PORT/FLEET, not a list ({', '.join(addresses)})"
                    )
                self.discovery = Discovery(addresses[0], refresh_s=fleet_refresh_s)
        self.security = security or default_client()
        self._channels_per_server = channels_per_server
        self._max_message_bytes = max_message_bytes
        self._closing: set[asyncio.Task[None]] = set()
        self._fleet_envs: set[str] = set()  # every env a fleet's table has listed so far
        if self.discovery is not None:
            # The servers come from the fleet's table, on first use (start() needs the event loop).
            self.discovery.on_table = self._apply_table
            self.servers: list[_Server] = []
        else:
            self.servers = [
                _Server(a, channels_per_server, max_message_bytes, self.security) for a in addresses
            ]
        self.refresh_s = refresh_s
        self.connect_timeout_s = connect_timeout_s
        self._refreshed_at = -1e18
        self._refresh_lock = asyncio.Lock()
        self._ids = itertools.count(1)

    async def __aenter__(self) -> EnvClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self.discovery is not None:
            await self.discovery.close()
        await asyncio.gather(*(s.close() for s in self.servers), *self._closing, return_exceptions=True)

    # --- fleets --------------------------------------------------------------------------------------
    @property
    def fleet(self) -> str | None:
        """The fleet address this client routes by, if any."""
        return str(self.discovery) if self.discovery is not None else None

    async def _fleet_ready(self) -> None:
        if self.discovery is not None and self.discovery.table is None:
            await self.discovery.start()

    def _apply_table(self, table: Any) -> None:
        """A routing table read: new servers join, listed ones take their row (and our opens since
        the last table start again from zero), unlisted ones are `gone`; a gone server's channels
        close once no create, episode or close of ours is left on it at two reads in a row."""
        listed: dict[str, ServerEntry] = {e["address"]: e for e in table["servers"]}
        known = {s.address: s for s in self.servers}
        for address, entry in listed.items():
            server = known.get(address)
            if server is None:
                server = _Server(address, self._channels_per_server, self._max_message_bytes, self.security)
                self.servers.append(server)
                log.info("fleet server joined", extra={"address": address, "fleet": self.fleet})
            server.entry, server.gone, server.idle_polls = entry, False, 0
            server.opened_since_refresh.clear()
            self._fleet_envs.update(entry["envs"])
        for server in list(self.servers):
            if server.address in listed:
                continue
            if not server.gone:
                server.gone = True
                log.info("fleet server left", extra={"address": server.address, "fleet": self.fleet})
            server.idle_polls = server.idle_polls + 1 if not server.busy else 0
            if server.idle_polls >= 2:
                self.servers.remove(server)
                task = asyncio.get_running_loop().create_task(server.close())
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)

    # --- discovery -------------------------------------------------------------------------------
    async def server_status(self, address: str | None = None, timeout_s: float | None = None) -> ServerStatus:
        """ListEnvs of one server (the first by default; of a fleet, the first that takes episodes)."""
        if address:
            server = self._server(address)
        else:
            await self._fleet_ready()
            server = self._first()
        try:
            reply = await server.list_rpc(
                pb.ListEnvsRequest(),
                timeout=timeout_s or self.connect_timeout_s,
                metadata=self.security.metadata(),
            )
        except grpc.aio.AioRpcError as exc:
            raise from_rpc_error(exc, address=server.address) from None
        server.status = ServerStatus.from_pb(server.address, reply)
        server.opened_since_refresh.clear()
        return server.status

    async def refresh(self) -> list[ServerStatus | AgentGymError]:
        """ListEnvs of every server, for routing; unreachable ones are marked down for a while. A
        fleet's client reads the routing table first, then asks every server it lists."""
        if self.discovery is not None:
            if self.discovery.table is None:
                await self.discovery.start()
            else:
                await self.discovery.refresh()
        results: list[ServerStatus | AgentGymError] = []
        replies = await asyncio.gather(
            *(self.server_status(s.address) for s in self.servers), return_exceptions=True
        )
        for server, reply in zip(self.servers, replies, strict=True):
            if isinstance(reply, AgentGymError):
                server.down_until = time.monotonic() + self._down_s
                results.append(reply)
            elif isinstance(reply, BaseException):
                raise reply
            else:
                server.down_until = 0.0
                results.append(reply)
        self._refreshed_at = time.monotonic()
        return results

    async def envs(self) -> dict[str, EnvInfo]:
        """Every env any reachable server hosts (the first server's spec wins on conflicts)."""
        out: dict[str, EnvInfo] = {}
        for r in await self.refresh():
            if isinstance(r, ServerStatus):
                for name, info in r.envs.items():
                    out.setdefault(name, info)
        if not out and all(s.status is None for s in self.servers):
            raise Unavailable(f"no env server reachable at {self._where()}")
        return out

    def _where(self) -> str:
        if self.discovery is not None:
            listed = ", ".join(s.address for s in self.servers if not s.gone) or "none listed"
            return f"fleet {self.discovery} (servers: {listed})"
        return ", ".join(s.address for s in self.servers)

    def _first(self) -> _Server:
        if self.discovery is None:
            return self.servers[0]
        listed = [s for s in self.servers if s.entry is not None and not s.gone]
        usable = [s for s in listed if s.entry is not None and s.entry["healthy"] and not s.entry["draining"]]
        if not (usable or listed):
            raise Unavailable(f"fleet {self.discovery} lists no env server yet (`agentgym fleet status`)")
        return (usable or listed)[0]

    async def env_info(self, env: str) -> EnvInfo:
        envs = await self.envs()
        if env not in envs:
            raise NotFound(f"no server hosts env {env!r}; hosted: {', '.join(sorted(envs)) or 'none'}")
        return envs[env]

    @property
    def _down_s(self) -> float:
        """How long a server that failed a create (or, in a fleet, dropped a stream) gets no new
        episodes: until the next ListEnvs refresh, or for a fleet a little past the next table
        (the controller drops a dead server within about a second of noticing)."""
        if self.discovery is not None:
            return max(2.0, 2 * self.discovery.refresh_s)
        return self.refresh_s

    def _server(self, address: str) -> _Server:
        for s in self.servers:
            if s.address == address:
                return s
        raise ValueError(f"{address} is not one of this client's servers")

    async def _candidates(self, env: str) -> list[_Server]:
        if self.discovery is not None:
            return await self._fleet_candidates(env)
        if len(self.servers) == 1:
            return self.servers
        if time.monotonic() - self._refreshed_at > self.refresh_s:
            async with self._refresh_lock:
                if time.monotonic() - self._refreshed_at > self.refresh_s:
                    await self.refresh()
        now = time.monotonic()
        hosting = [
            s for s in self.servers if s.status is not None and env in s.status.envs and s.down_until <= now
        ]
        if not hosting:
            known = [s for s in self.servers if s.status is not None]
            if known:
                raise NotFound(
                    f"no reachable server hosts env {env!r}; servers: {', '.join(s.address for s in self.servers)}"
                )
            raise Unavailable(f"no env server reachable at {', '.join(s.address for s in self.servers)}")
        return sorted(hosting, key=lambda s: s.load(env))

    async def _fleet_candidates(self, env: str) -> list[_Server]:
        """The fleet's servers that take new `env` episodes (core/fleet.py's rule), least loaded first."""
        await self._fleet_ready()
        now = time.monotonic()
        usable = [
            s
            for s in self.servers
            if not s.gone
            and s.entry is not None
            and accepts_new_episodes(s.entry, env)
            and s.down_until <= now
        ]
        if usable:
            return sorted(usable, key=lambda s: s.load(env))
        hosting = [s for s in self.servers if not s.gone and s.entry is not None and env in s.entry["envs"]]
        if hosting or env in self._fleet_envs:
            # Draining, unhealthy or just failed: retryable, the fleet may have a replica for it soon.
            raise Unavailable(
                f"no server of fleet {self.discovery} takes new {env!r} episodes now "
                f"({len(hosting)} hosting it, all draining, unhealthy or unreachable: replicas may be restarting)"
            )
        hosted = sorted({e for s in self.servers if not s.gone and s.entry for e in s.entry["envs"]})
        raise NotFound(
            f"no server of fleet {self.discovery} hosts env {env!r}; hosted: {', '.join(hosted) or 'none'}"
        )

    # --- episodes --------------------------------------------------------------------------------
    async def open_episode(
        self,
        env: str,
        task_id: int,
        *,
        seed: int | None = None,
        max_steps: int = 0,
        options: Mapping[str, str] | None = None,
    ) -> Episode:
        """Create an episode on the best server; the caller must `close()` it (or use `episode`)."""
        create = pb.CreateRequest(env=env, task_id=task_id, max_steps=max_steps, options=dict(options or {}))
        if seed is not None:
            create.seed = seed
        last_error: AgentGymError | None = None
        candidates = await self._candidates(env)
        for server in candidates:
            ep = Episode(self, server)
            try:
                await ep._create(create)
                return ep
            except AgentGymError as exc:
                await ep._abort()
                # Full or unreachable: the next server may take it. Anything else is final.
                if not exc.retryable or len(candidates) == 1:
                    raise
                if isinstance(exc, Unavailable):
                    server.down_until = time.monotonic() + self._down_s
                last_error = exc
        assert last_error is not None
        raise last_error

    @contextlib.asynccontextmanager
    async def episode(
        self,
        env: str,
        task_id: int,
        *,
        seed: int | None = None,
        max_steps: int = 0,
        options: Mapping[str, str] | None = None,
    ) -> AsyncIterator[Episode]:
        """An episode that is closed (its env freed) when the block exits, however it exits."""
        ep = await self.open_episode(env, task_id, seed=seed, max_steps=max_steps, options=options)
        try:
            yield ep
        except BaseException:
            await ep._abort()
            raise
        else:
            await ep.close()


class Episode:
    """One live episode: one stream. Methods must not be called concurrently on one episode
    (a lock enforces order); different episodes are independent."""

    def __init__(self, client: EnvClient, server: _Server) -> None:
        self.client = client
        self.sample = 0  # which sample of its task this episode is (set by the rollout engine)
        self.server = server
        self.address = server.address
        self.call: grpc.aio.StreamStreamCall | None = None
        self._lock = asyncio.Lock()
        self.alive = False
        self._counted = False
        self.env = ""
        self.episode_id = ""
        self.task_id = 0
        self.seed = 0
        self.max_steps = 0
        self.instruction = ""
        self.acknowledgement = ""
        self.initial = StepResult("")
        self.last = self.initial

    @property
    def over(self) -> bool:
        return self.last.over

    # --- requests ----------------------------------------------------------------------------------
    async def step(self, action: str) -> StepResult:
        reply = await self._request(pb.SessionRequest(step=pb.StepRequest(action=action)))
        self.last = StepResult.from_pb(reply.step)
        return self.last

    async def step_many(self, actions: Sequence[str]) -> list[StepResult]:
        """Send all actions before reading any reply (pipelined). Raises the first error, after
        reading every reply so the stream stays in order."""
        replies = await self._pipeline([pb.SessionRequest(step=pb.StepRequest(action=a)) for a in actions])
        results = []
        for r in replies:
            if isinstance(r, AgentGymError):
                raise r
            results.append(StepResult.from_pb(r.step))
        if results:
            self.last = results[-1]
        return results

    async def observe(self) -> StepResult:
        reply = await self._request(pb.SessionRequest(observe=pb.ObserveRequest()))
        return StepResult.from_pb(reply.step)

    async def expert(self) -> str:
        """The env expert's action for the current state."""
        return (await self.expert_reply())[0]

    async def expert_reply(self) -> tuple[str, str]:
        """The env expert's (action, thought); the thought is "" when the env gives none."""
        reply = await self._request(pb.SessionRequest(expert=pb.ExpertRequest()))
        return reply.expert.action, reply.expert.thought

    async def reset(self, task_id: int, *, seed: int | None = None, max_steps: int = 0) -> StepResult:
        req = pb.ResetRequest(task_id=task_id, max_steps=max_steps)
        if seed is not None:
            req.seed = seed
        reply = await self._request(pb.SessionRequest(reset=req))
        self._take_created(reply.created)
        return self.initial

    async def close(self) -> StepResult:
        """End the episode and free its env; returns the final state. Safe to call twice.

        Half-closes the stream (the protocol's graceful end; one round trip less than a
        CloseRequest, whose answer would repeat the last result this client already holds) and
        waits for the server's OK.
        """
        if not self.alive:
            await self._abort()
            return self.last
        self.alive = False
        self._forget()
        call = self.call
        assert call is not None
        self.server.closing += 1  # its channel stays open until the server's goodbye
        try:
            async with self._lock:
                await call.done_writing()
                while await call.read() is not grpc.aio.EOF:
                    pass
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
            pass  # the episode is over either way; the server frees its env when the stream ends
        finally:
            self.server.closing -= 1
        return self.last

    # --- plumbing ------------------------------------------------------------------------------------
    async def _create(self, create: pb.CreateRequest) -> None:
        self.call = self.server.session_call()
        self.alive = True
        self.server.creating += 1
        try:
            reply = await self._request(pb.SessionRequest(create=create))
        finally:
            self.server.creating -= 1
        self._take_created(reply.created)
        self.server.open[self.env] += 1
        self.server.opened_since_refresh[self.env] += 1
        self._counted = True

    def _take_created(self, c: pb.CreateResponse) -> None:
        self.env, self.episode_id, self.task_id, self.seed = c.env, c.episode_id, c.task_id, c.seed
        self.instruction, self.max_steps = c.instruction, c.max_steps
        self.acknowledgement = c.acknowledgement  # "": the client's default (core.chat.ACK)
        self.initial = self.last = StepResult.from_pb(c.initial)

    async def _request(self, req: pb.SessionRequest) -> pb.SessionResponse:
        (reply,) = await self._pipeline([req])
        if isinstance(reply, AgentGymError):
            raise reply
        return reply

    async def _pipeline(self, reqs: list[pb.SessionRequest]) -> list[pb.SessionResponse | AgentGymError]:
        if not self.alive or self.call is None:
            raise FailedPrecondition(
                f"episode {self.episode_id or '(not created)'} is closed", address=self.address
            )
        async with self._lock:
            call = self.call
            try:
                for req in reqs:
                    req.id = next(self.client._ids)
                    await call.write(req)
                out: list[pb.SessionResponse | AgentGymError] = []
                for req in reqs:
                    reply = await call.read()
                    if reply is grpc.aio.EOF:
                        raise await self._stream_ended()
                    if reply.id != req.id:
                        raise Unavailable(
                            f"protocol violation: response id {reply.id} answers request {req.id}",
                            address=self.address,
                            episode_id=self.episode_id,
                        )
                    if reply.WhichOneof("kind") == "error":
                        err = error_for(
                            reply.error.code,
                            reply.error.message,
                            address=self.address,
                            episode_id=self.episode_id,
                        )
                        if err.ends_episode:
                            self.alive = False
                            self._forget()
                        out.append(err)
                    else:
                        out.append(reply)
                return out
            except grpc.aio.AioRpcError as exc:
                self.alive = False
                self._forget()
                if exc.code() == grpc.StatusCode.UNAVAILABLE and self.client.discovery is not None:
                    # The server went away under a live stream: no new episodes there until the
                    # fleet's table says what became of it.
                    self.server.down_until = time.monotonic() + self.client._down_s
                if exc.code() == grpc.StatusCode.INTERNAL and exc.details() == "Internal error from Core":
                    # grpc's signature of writing to a stream the server had already ended, with
                    # the server's own status lost: say what happened instead.
                    raise Unavailable(
                        "the server had already ended this episode's stream (idle timeout, shutdown or a "
                        "fatal env error); the episode is over",
                        address=self.address,
                        episode_id=self.episode_id,
                    ) from None
                raise from_rpc_error(exc, address=self.address, episode_id=self.episode_id) from None
            except asyncio.InvalidStateError:
                self.alive = False
                self._forget()
                raise await self._stream_ended() from None

    async def _stream_ended(self) -> AgentGymError:
        self.alive = False
        self._forget()
        assert self.call is not None
        code = await self.call.code()
        details = await self.call.details()
        return error_for(
            code if code != grpc.StatusCode.OK else grpc.StatusCode.UNAVAILABLE,
            details or "the server ended the stream",
            address=self.address,
            episode_id=self.episode_id,
        )

    def _forget(self) -> None:
        """Stop counting this episode in its server's load (once)."""
        if self._counted:
            self._counted = False
            self.server.open[self.env] -= 1
            self.server.opened_since_refresh[self.env] -= 1

    async def _abort(self) -> None:
        """Drop the stream without ceremony; the server frees the env when it sees the cancel."""
        if self.call is not None and not self.call.done():
            self.call.cancel()
        if self.alive:
            self.alive = False
            self._forget()
