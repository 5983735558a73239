"""Sinks named by URL, for `agentgym rollout --sink URL`: where trajectories go besides the --out file.

    grpc://HOST:PORT[?iteration=N&resume=0&timeout=S]   a trainer (`agentgym trainer serve`)
    grpcs://HOST:PORT[?...]                             the same over TLS (docs/security.md)

`GrpcSink` streams every finished trajectory to the trainer over one `Push` stream and keeps each
one until the trainer acknowledges it (durably stored). When the stream breaks (the trainer
restarts, the network drops) it reconnects with backoff and re-sends everything not yet
acknowledged; the trainer de-duplicates by id, so a re-sent trajectory is never stored twice.
`close()` waits until everything written is acknowledged, or raises SinkError after `timeout`
seconds naming how many were not. Trajectories the trainer refuses (INVALID_ARGUMENT: a malformed
record) are logged as they come and reported by `close()` too.

- `iteration=N` stamps records that carry no iteration with AgentEvol iteration N (the trainer
  then keeps them apart from other iterations' trajectories of the same tasks).
- Failed-episode records (those with an `error` field) are not trajectories: they stay in the
  --out file's errors file and are not sent.
- `done_ids()` asks the trainer which record ids it already holds (of iteration N, or of no
  iteration when the URL names none), so a resumed rollout skips them; `resume=0` turns that
  off. A trainer that does not answer within a few seconds is logged and skips nothing: the run
  goes on and its trajectories reach the trainer once it is back.
- `write()` waits (back-pressure) while `max_unacked` trajectories are unacknowledged, so a trainer
  that is down holds the rollout back instead of filling memory.
- Every call carries the bearer token of `security` (core/security.py; default: $AGENTGYM_TOKEN_FILE).
  A trainer that refuses it (UNAUTHENTICATED) is retried like one that is down, so a token file
  fixed meanwhile is picked up; `close()` names the refusal if it lasts.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections import deque
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import grpc

from agentgym.client.envclient import channel_options
from agentgym.client.errors import AgentGymError
from agentgym.core.rpc import stub
from agentgym.core.security import ClientSecurity, connect
from agentgym.core.trajectory import Trajectory
from agentgym.v1 import trajectory_pb2 as tpb

log = logging.getLogger(__name__)

SERVICE = tpb.DESCRIPTOR.services_by_name["TrajectoryService"]
_CODES = {c.value[0]: c for c in grpc.StatusCode}


class SinkError(AgentGymError):
    """Trajectories did not reach a sink: not acknowledged in time, or refused."""

    def __init__(self, message: str, *, address: str = "") -> None:
        self.message = message
        self.address = address
        self.episode_id = ""
        Exception.__init__(self, message)


class _Transient(Exception):
    """The trainer answered UNAVAILABLE in band: end this stream, reconnect, re-send."""


class GrpcSink:
    def __init__(
        self,
        address: str,
        *,
        iteration: int | None = None,
        resume: bool = True,
        close_timeout_s: float = 300.0,
        max_unacked: int = 4096,
        max_message_bytes: int = 80 << 20,
        list_timeout_s: float = 10.0,
        security: ClientSecurity | None = None,
    ) -> None:
        self.address = address
        self.security = security
        self.iteration = iteration
        self.resume = resume
        self.close_timeout_s = close_timeout_s
        self.max_unacked = max_unacked
        self.max_message_bytes = max_message_bytes
        self.list_timeout_s = list_timeout_s
        self.written = 0  # trajectories handed to write()
        self.stored = 0  # acknowledged as newly stored
        self.duplicates = 0  # acknowledged as already stored
        self.rejected: list[tuple[str, str]] = []  # (id, error) refused by the trainer
        self.reconnects = 0
        self.last_error = ""
        self._unacked: dict[int, tuple[str, bytes]] = {}  # seq -> (id, serialized PushRequest)
        self._send: deque[int] = deque()
        self._seq = 0
        self._closing = False
        self._wake: asyncio.Event | None = None  # something to send, or acks arrived
        self._acked: asyncio.Event | None = None  # acks arrived
        self._channel: grpc.aio.Channel | None = None
        self._task: asyncio.Task[None] | None = None

    # --- Sink -------------------------------------------------------------------------------------
    async def done_ids(self) -> set[str]:
        """Record ids the trainer holds for this sink's iteration (see the module docstring)."""
        if not self.resume:
            return set()
        wanted = tpb.TrajectoryFilter(iteration=-1 if self.iteration is None else self.iteration)
        ids: set[str] = set()
        try:
            async with connect(self.address, self.security, channel_options(self.max_message_bytes)) as ch:
                async for chunk in stub(ch, SERVICE, "ListIds")(tpb.ListIdsRequest(filter=wanted),
                                                                 timeout=self.list_timeout_s):  # fmt: skip
                    ids.update(chunk.record_ids)
        except grpc.aio.AioRpcError as exc:
            log.warning(
                "could not ask the trainer which trajectories it holds: none skipped on its account",
                extra={"address": self.address, "error": f"{exc.code().name}: {exc.details()}"},  # type: ignore[attr-defined]
            )
            return set()
        return ids

    async def failed(self, report: dict[str, Any]) -> None:
        """A failed episode: no trajectory to train on (the --out file's errors file keeps it)."""

    async def write(self, trajectory: Trajectory) -> None:
        if self._closing:
            raise SinkError(
                f"write after close (sink to the trainer at {self.address})", address=self.address
            )
        if self.iteration is not None and trajectory.iteration is None:
            trajectory = dataclasses.replace(trajectory, iteration=self.iteration)
        msg = trajectory.to_proto()
        wake, acked = self._start()
        while len(self._unacked) >= self.max_unacked:
            self._check_alive()
            acked.clear()
            await acked.wait()
        self._check_alive()
        self._seq += 1
        self._unacked[self._seq] = (
            msg.id,
            tpb.PushRequest(seq=self._seq, trajectory=msg).SerializeToString(),
        )
        self._send.append(self._seq)
        self.written += 1
        wake.set()

    async def close(self) -> None:
        """Wait until every trajectory written is acknowledged (or `close_timeout_s` passes)."""
        self._closing = True
        if self._task is not None and self._wake is not None and self._acked is not None:
            self._wake.set()
            if self._unacked:
                log.info(
                    "waiting for the trainer to acknowledge trajectories",
                    extra={"address": self.address, "unacknowledged": len(self._unacked),
                           "timeout_s": self.close_timeout_s},
                )  # fmt: skip
            deadline = time.monotonic() + self.close_timeout_s
            while self._unacked and not self._task.done() and (left := deadline - time.monotonic()) > 0:
                self._acked.clear()
                try:
                    await asyncio.wait_for(self._acked.wait(), left)
                except TimeoutError:
                    break
            self._wake.set()
            if not self._unacked and not self._task.done():
                # The stream half-closes once all is acknowledged: give it a moment to end cleanly.
                await asyncio.wait({self._task}, timeout=5.0)
            self._task.cancel()
            if self._channel is not None:
                await self._channel.close()
            self._check_alive()
        log.info(
            "trajectory sink closed",
            extra={"address": self.address, "written": self.written, "stored": self.stored,
                   "duplicates": self.duplicates, "refused": len(self.rejected),
                   "unacknowledged": len(self._unacked), "reconnects": self.reconnects},
        )  # fmt: skip
        if self._unacked:
            raise SinkError(
                f"{len(self._unacked)} of {self.written} trajectories were not acknowledged by the trainer at "
                f"{self.address} within {self.close_timeout_s:g}s (last error: {self.last_error or 'none'}); "
                "they are not in its store (the rollout's --out file has them)",
                address=self.address,
            )
        if self.rejected:
            shown = "; ".join(f"{id}: {err}" for id, err in self.rejected[:3])
            raise SinkError(
                f"the trainer at {self.address} refused {len(self.rejected)} of {self.written} trajectories: {shown}",
                address=self.address,
            )

    # --- the stream ---------------------------------------------------------------------------------
    def _start(self) -> tuple[asyncio.Event, asyncio.Event]:
        if self._wake is None or self._acked is None:
            self._wake, self._acked = asyncio.Event(), asyncio.Event()
            self._channel = connect(self.address, self.security, channel_options(self.max_message_bytes))
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"sink {self.address}")
        return self._wake, self._acked

    def _check_alive(self) -> None:
        """Raise if the stream task died of a bug (it handles every transport error itself)."""
        if self._task is not None and self._task.done() and not self._task.cancelled():
            exc = self._task.exception()
            if exc is not None:
                raise SinkError(f"the sink to {self.address} failed: {exc!r}", address=self.address) from exc

    async def _run(self) -> None:
        """One Push stream at a time; after it breaks, back off, reconnect, re-send what is unacknowledged."""
        assert self._wake is not None and self._channel is not None
        backoff, outage = 0.1, False
        while True:
            while not self._unacked:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
            call = stub(self._channel, SERVICE, "Push", raw=True)()
            self._send = deque(sorted(self._unacked))  # oldest first, then whatever is written next
            if outage:
                self.reconnects += 1
                log.info(
                    "re-sending to the trainer",
                    extra={"address": self.address, "unacknowledged": len(self._send)},
                )
            sender = asyncio.create_task(self._sender(call))
            try:
                await self._reader(call)
                if self._unacked:
                    code = await call.code()
                    self.last_error = f"the stream ended ({code.name}) with trajectories unacknowledged"
            except grpc.aio.AioRpcError as exc:
                self.last_error = f"{exc.code().name}: {exc.details()}"
            except _Transient as exc:
                self.last_error = str(exc)
            finally:
                sender.cancel()
                call.cancel()
            if not self._unacked:
                backoff, outage = 0.1, False
                continue
            if not outage:
                log.warning(
                    "trainer stream lost: will re-send unacknowledged trajectories",
                    extra={
                        "address": self.address,
                        "unacknowledged": len(self._unacked),
                        "error": self.last_error,
                    },
                )
            outage = True
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 2.0)

    async def _sender(self, call: grpc.aio.StreamStreamCall) -> None:
        try:
            await self._send_all(call)
        except (grpc.aio.AioRpcError, grpc.aio.UsageError, asyncio.InvalidStateError):
            pass  # the stream broke: the reader sees why, and the run loop reconnects

    async def _send_all(self, call: grpc.aio.StreamStreamCall) -> None:
        assert self._wake is not None
        while True:
            while self._send:
                item = self._unacked.get(self._send.popleft())
                if item is not None:  # else acknowledged meanwhile
                    await call.write(item[1])
            if self._closing and not self._unacked:
                await call.done_writing()
                return
            self._wake.clear()
            await self._wake.wait()

    async def _reader(self, call: grpc.aio.StreamStreamCall) -> None:
        assert self._wake is not None and self._acked is not None
        while True:
            resp = await call.read()
            if resp is grpc.aio.EOF:
                return
            kind = resp.WhichOneof("result")
            if kind == "error" and resp.error.code == grpc.StatusCode.UNAVAILABLE.value[0]:
                raise _Transient(f"UNAVAILABLE: {resp.error.message}")
            item = self._unacked.pop(resp.seq, None)
            if item is None:
                continue
            if kind == "stored":
                if resp.stored.duplicate:
                    self.duplicates += 1
                else:
                    self.stored += 1
            else:
                code = _CODES.get(resp.error.code, grpc.StatusCode.UNKNOWN)
                error = f"{code.name}: {resp.error.message}"
                self.rejected.append((item[0], error))
                log.error("the trainer refused a trajectory", extra={"id": item[0], "error": error})
            self._acked.set()
            self._wake.set()


def sink_for_url(url: str, security: ClientSecurity | None = None) -> GrpcSink:
    """The sink a URL names; ValueError for one this client does not know."""
    parts = urlsplit(url)
    if parts.scheme not in ("grpc", "grpcs"):
        raise ValueError(
            f"sink {url!r}: unsupported scheme {parts.scheme!r}; expected grpc://HOST:PORT or grpcs://HOST:PORT"
        )
    try:
        port = parts.port
    except ValueError:
        port = None
    if not parts.hostname or port is None or parts.path not in ("", "/"):
        raise ValueError(f"sink {url!r}: expected grpc://HOST:PORT[?iteration=N&resume=0&timeout=S]")
    options: dict[str, Any] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key not in ("iteration", "resume", "timeout"):
            raise ValueError(f"sink {url!r}: unknown option {key!r} (known: iteration, resume, timeout)")
        try:
            if key == "iteration":
                options["iteration"] = int(value)
            elif key == "resume":
                options["resume"] = value not in ("0", "false", "no")
            else:
                options["close_timeout_s"] = float(value)
        except ValueError as exc:
            raise ValueError(f"sink {url!r}: {key}={value!r}: {exc}") from None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    address = f"{host}:{port}" if parts.scheme == "grpc" else f"grpcs://{host}:{port}"
    return GrpcSink(address, security=security, **options)
