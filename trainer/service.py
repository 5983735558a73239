"""The TrajectoryService implementation: Push (validate, store, acknowledge once durable), Stats,
ListIds and Query.

`Push` takes raw bytes and parses them itself, so that bytes which are not a PushRequest get an
in-band INVALID_ARGUMENT instead of killing the stream (as the env server's Session does). The
rules are written in protos/agentgym/v1/trajectory.proto; the validation is the trajectory's own
(agentgym.core.trajectory).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import AsyncIterator, Awaitable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.message import DecodeError
from grpc_health.v1 import health, health_pb2

from agentgym.core import metrics
from agentgym.core.rpc import implementation
from agentgym.core.trajectory import Trajectory, TrajectoryError
from agentgym.trainer.store import (
    Entry,
    Query,
    StoreCorrupt,
    StoreError,
    StoreFull,
    StoreStats,
    TrajectoryStore,
)
from agentgym.v1 import env_pb2 as epb
from agentgym.v1 import trajectory_pb2 as tpb

log = logging.getLogger(__name__)

DESCRIPTOR = tpb.DESCRIPTOR.services_by_name["TrajectoryService"]
LIST_CHUNK = 10_000

Code = grpc.StatusCode


@dataclass
class IngestConfig:
    # A PushRequest larger than this is answered INVALID_ARGUMENT (gRPC's own limit sits a little above).
    max_trajectory_bytes: int = 64 << 20
    # Requests of one stream being stored at once; beyond it the stream is not read (flow control).
    max_in_flight: int = 4096
    # Bytes of requests (of all Push streams together) being stored at once: 4,096 requests of up to
    # 64 MiB would be 256 GiB. Beyond it streams are not read, but each may always hold one request.
    max_in_flight_bytes: int = 256 << 20
    # While the disk is full, how often the trainer checks whether space returned (health stays
    # NOT_SERVING and pushes are refused UNAVAILABLE until it has).
    space_retry_s: float = 5.0

    def validate(self) -> None:
        """Raise ValueError naming the first setting out of range."""
        if self.max_trajectory_bytes < 1024:
            raise ValueError(f"max_trajectory_bytes {self.max_trajectory_bytes}: at least 1 KiB")
        if self.max_in_flight < 1:
            raise ValueError(f"max_in_flight {self.max_in_flight}: at least 1")
        if self.max_in_flight_bytes < 1:
            raise ValueError(f"max_in_flight_bytes {self.max_in_flight_bytes}: at least 1")
        if not self.space_retry_s > 0:
            raise ValueError(f"space_retry_s {self.space_retry_s}: must be above 0")


def _error(seq: int, id: str, code: grpc.StatusCode, message: str) -> bytes:
    return tpb.PushResponse(
        seq=seq, id=id, error=epb.Status(code=code.value[0], message=message)
    ).SerializeToString()


def _done(value: bytes) -> asyncio.Future[bytes]:
    future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
    future.set_result(value)
    return future


class _Budget:
    """What one Push stream holds between reading a request and sending its answer: at most
    `max_in_flight` requests, and no request that would take the bytes held by all streams together
    past `max_in_flight_bytes`, except that a stream holding nothing may always take one (so a
    request larger than the bound, or a stream starved by others, still moves). `take` waits for
    room; cancelling it is safe."""

    def __init__(self, service: TrajectoryService) -> None:
        self.service = service
        self.requests = 0

    async def take(self, size: int) -> None:
        s, config = self.service, self.service.config
        while self.requests and (
            self.requests >= config.max_in_flight or s.bytes_in_flight + size > config.max_in_flight_bytes
        ):
            s._room.clear()
            await s._room.wait()
        self.requests += 1
        s.bytes_in_flight += size

    def give(self, size: int) -> None:
        self.requests -= 1
        self.service.bytes_in_flight -= size
        self.service._room.set()


def _counts(c: Any) -> dict[str, Any]:
    return {"trajectories": c.trajectories, "successes": c.successes, "mean_reward": c.mean_reward}


def stats_to_proto(stats: StoreStats, rejected: int = 0) -> tpb.StatsResponse:
    return tpb.StatsResponse(
        path=stats.path,
        trajectories=stats.trajectories,
        successes=stats.successes,
        envs=[tpb.EnvStats(env=env, **_counts(c)) for env, c in stats.per_env.items()],
        iterations=[
            tpb.IterationStats(**_counts(c)) if it is None else tpb.IterationStats(iteration=it, **_counts(c))
            for it, c in stats.per_iteration.items()
        ],
        segments=[
            tpb.Segment(name=s.name, bytes=s.bytes, trajectories=s.trajectories) for s in stats.segments
        ],
        bytes=stats.bytes,
        duplicates=stats.duplicates,
        rejected=rejected,
        corrupt_lines=stats.corrupt_lines,
        implementation=implementation(),
    )


def query_from_proto(f: tpb.TrajectoryFilter) -> Query:
    """The store query a filter names; ValueError for a malformed one."""

    def opt(name: str) -> Any:
        return getattr(f, name) if f.HasField(name) else None

    return Query.of(
        env=list(f.envs) or None,
        min_reward=opt("min_reward"),
        max_reward=opt("max_reward"),
        keep_unrewarded=f.keep_unrewarded,
        success=opt("success"),
        iteration=opt("iteration"),
        weight_version=list(f.weight_versions) or None,
        item_ids=list(f.item_ids) or None,
        since=opt("since"),
        until=opt("until"),
        limit=f.limit,
    )


def query_to_proto(q: Query) -> tpb.TrajectoryFilter:
    f = tpb.TrajectoryFilter(
        envs=sorted(q.envs),
        weight_versions=sorted(q.weight_versions),
        item_ids=sorted(q.item_ids),
        limit=q.limit,
        keep_unrewarded=q.keep_unrewarded,
    )
    for name in ("min_reward", "max_reward", "success", "iteration", "since", "until"):
        if getattr(q, name) is not None:
            setattr(f, name, getattr(q, name))
    return f


class TrajectoryService:
    def __init__(self, store: TrajectoryStore, config: IngestConfig | None = None) -> None:
        self.store = store
        self.config = config or IngestConfig()
        self.draining = False
        self.stored = 0
        self.rejected = 0
        # Bytes of requests read from all Push streams and not yet answered (max_in_flight_bytes).
        self.bytes_in_flight = 0
        self._room = asyncio.Event()  # set when some stream's request was answered
        # The server's health servicer (set by the TrainerServer): this service turns NOT_SERVING
        # while its store refuses writes (a full disk, a failed fsync).
        self.health: health.aio.HealthServicer | None = None
        self._store_watch: asyncio.Task[None] | None = None

    def methods(self) -> dict[str, Any]:
        return {"Push": self.push, "Stats": self.stats, "ListIds": self.list_ids, "Query": self.query}

    # --- Push -------------------------------------------------------------------------------------
    async def push(
        self, requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[bytes]:
        """Answers in request order; requests are stored concurrently (their appends share fsyncs).
        Requests awaiting their answers are bounded (`_Budget`); beyond that the stream is not read
        (HTTP/2 flow control pushes back on the client)."""
        peer = context.peer()
        budget = _Budget(self)
        # Unbounded: the budget bounds it, and the reader's end marker must never wait for room (a
        # reader cancelled while the consumer is gone would otherwise hang on it forever).
        answers: asyncio.Queue[tuple[Awaitable[bytes], int] | None] = asyncio.Queue()
        counts = {"stored": 0, "duplicates": 0, "rejected": 0}

        async def read() -> None:
            try:
                async for raw in requests:
                    await budget.take(len(raw))
                    answers.put_nowait((self._handle(raw, peer, counts), len(raw)))
            finally:
                answers.put_nowait(None)

        reader = asyncio.create_task(read(), name="push-reader")
        log.debug("push stream opened", extra={"peer": peer})
        try:
            while (item := await answers.get()) is not None:
                answer, size = item
                try:
                    out = await answer
                finally:
                    budget.give(size)
                yield out
            await reader  # surfaces a failure of the request stream itself
        finally:
            reader.cancel()
            # Answers nobody will read: their stores go on (appends are shielded), their bytes are freed.
            while not answers.empty():
                if (item := answers.get_nowait()) is not None:
                    budget.give(item[1])
            log.info("push stream ended", extra={"peer": peer, **counts})

    def _handle(self, raw: bytes, peer: str, counts: dict[str, int]) -> Awaitable[bytes]:
        """The answer to one request: at once for a refusal, else a task that stores it."""
        metrics.INGEST_BYTES.inc(len(raw))
        try:
            req = tpb.PushRequest.FromString(raw)
        except DecodeError as exc:
            return _done(self._refuse(0, "", Code.INVALID_ARGUMENT,
                                      f"could not parse a PushRequest from {len(raw)} bytes: {exc}", peer, counts))  # fmt: skip
        t = req.trajectory
        if self.draining:
            return _done(self._refuse(req.seq, t.id, Code.UNAVAILABLE,
                                      "the trainer is shutting down; re-send to it once it is back", peer, counts))  # fmt: skip
        problem = None
        if not req.HasField("trajectory"):
            problem = f"request {req.seq} carries no trajectory"
        elif len(raw) > self.config.max_trajectory_bytes:
            problem = (f"trajectory {t.id!r} is {len(raw)} bytes, more than this trainer's limit of "
                       f"{self.config.max_trajectory_bytes} (max_trajectory_bytes)")  # fmt: skip
        elif not t.id:
            problem = f"request {req.seq}: the trajectory has an empty id (set it to the trajectory's key, e.g. maze_3)"
        else:
            try:
                trajectory = Trajectory.from_proto(t)
            except TrajectoryError as exc:
                problem = str(exc)
        if problem is not None:
            return _done(self._refuse(req.seq, t.id, Code.INVALID_ARGUMENT, problem, peer, counts))
        return asyncio.ensure_future(self._store(req.seq, trajectory, peer, counts))

    async def _store(self, seq: int, trajectory: Trajectory, peer: str, counts: dict[str, int]) -> bytes:
        id = trajectory.key
        try:
            duplicate = await self.store.append(trajectory, validate=False)
        except TrajectoryError as exc:
            return self._refuse(seq, id, Code.INVALID_ARGUMENT, str(exc), peer, counts)
        except StoreFull as exc:
            self._watch_store()
            return self._refuse(seq, id, Code.UNAVAILABLE, f"{exc}; re-send it once the trainer's health is "
                                "SERVING again", peer, counts)  # fmt: skip
        except StoreError as exc:
            self._watch_store()
            return self._refuse(
                seq, id, Code.UNAVAILABLE, f"the trainer could not store it: {exc}", peer, counts
            )
        counts["duplicates" if duplicate else "stored"] += 1
        metrics.INGEST_TRAJECTORIES.labels("duplicate" if duplicate else "stored").inc()
        self.stored += not duplicate
        return tpb.PushResponse(seq=seq, id=id, stored=tpb.Stored(duplicate=duplicate)).SerializeToString()

    def _refuse(
        self, seq: int, id: str, code: grpc.StatusCode, message: str, peer: str, counts: dict[str, int]
    ) -> bytes:
        self.rejected += 1
        counts["rejected"] += 1
        metrics.INGEST_TRAJECTORIES.labels("rejected").inc()
        log.warning(
            "trajectory refused",
            extra={"seq": seq, "id": id, "code": code.name, "error": message, "peer": peer},
        )
        return _error(seq, id, code, message)

    # --- health follows the store ------------------------------------------------------------------
    def _watch_store(self) -> None:
        """The store refused a write: health NOT_SERVING, and while the disk is full, a check every
        `space_retry_s` for space; SERVING again once it is back. (A failed fsync is not retried:
        that store stays refused, and NOT_SERVING, until the trainer restarts.)"""
        if self._store_watch is None or self._store_watch.done():
            self._store_watch = asyncio.create_task(self._follow_store(), name="store-health")

    async def _follow_store(self) -> None:
        await self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        log.warning(
            "trajectory store refuses writes: health NOT_SERVING", extra={"path": str(self.store.path)}
        )
        while self.store.full and not self.draining:
            await asyncio.sleep(self.config.space_retry_s)
            if await asyncio.to_thread(self.store.retry_space):
                if not self.draining:
                    await self._set_health(health_pb2.HealthCheckResponse.SERVING)
                log.info(
                    "trajectory store accepts writes again: health SERVING",
                    extra={"path": str(self.store.path)},
                )
                return

    async def _set_health(self, status: health_pb2.HealthCheckResponse.ServingStatus.ValueType) -> None:
        if self.health is not None:  # during a graceful shutdown the servicer ignores it
            await self.health.set(DESCRIPTOR.full_name, status)

    # --- Stats, ListIds, Query ----------------------------------------------------------------------
    async def stats(self, request: tpb.StatsRequest, context: grpc.aio.ServicerContext) -> tpb.StatsResponse:
        return stats_to_proto(self.store.stats(), self.rejected)

    async def _query(self, f: tpb.TrajectoryFilter, context: grpc.aio.ServicerContext) -> Query:
        try:
            return query_from_proto(f)
        except ValueError as exc:
            await context.abort(Code.INVALID_ARGUMENT, f"bad filter: {exc}")
            raise  # unreachable: abort raises

    async def list_ids(
        self, request: tpb.ListIdsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[tpb.ListIdsResponse]:
        chunk: list[Any] = []
        for e in self.store.select(await self._query(request.filter, context)):
            chunk.append(e)
            if len(chunk) == LIST_CHUNK:
                yield tpb.ListIdsResponse(ids=[e.id for e in chunk], record_ids=[e.record_id for e in chunk])
                chunk = []
        if chunk:
            yield tpb.ListIdsResponse(ids=[e.id for e in chunk], record_ids=[e.record_id for e in chunk])

    async def query(
        self, request: tpb.QueryRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[tpb.Trajectory]:
        entries = self.store.select(await self._query(request.filter, context))
        while True:
            # Reads from disk happen off the event loop, a chunk at a time.
            chunk = await asyncio.to_thread(self._read_chunk, entries)
            if isinstance(chunk, StoreCorrupt):
                await context.abort(Code.DATA_LOSS, str(chunk))
            if not chunk:
                return
            for trajectory in chunk:
                yield trajectory.to_proto()

    def _read_chunk(self, entries: Iterator[Entry], n: int = 256) -> list[Trajectory] | StoreCorrupt:
        try:
            return [self.store.get_entry(e) for e in itertools.islice(entries, n)]
        except StoreCorrupt as exc:
            return exc
