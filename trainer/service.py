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

from agentgym.core.rpc import implementation
from agentgym.core.trajectory import Trajectory, TrajectoryError
from agentgym.trainer.store import Entry, Query, StoreCorrupt, StoreError, StoreStats, TrajectoryStore
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


def _error(seq: int, id: str, code: grpc.StatusCode, message: str) -> bytes:
    return tpb.PushResponse(
        seq=seq, id=id, error=epb.Status(code=code.value[0], message=message)
    ).SerializeToString()


def _done(value: bytes) -> asyncio.Future[bytes]:
    future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
    future.set_result(value)
    return future


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

    def methods(self) -> dict[str, Any]:
        return {"Push": self.push, "Stats": self.stats, "ListIds": self.list_ids, "Query": self.query}

    # --- Push -------------------------------------------------------------------------------------
    async def push(
        self, requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[bytes]:
        """Answers in request order; requests are stored concurrently (their appends share fsyncs)."""
        peer = context.peer()
        answers: asyncio.Queue[Awaitable[bytes] | None] = asyncio.Queue(self.config.max_in_flight)
        counts = {"stored": 0, "duplicates": 0, "rejected": 0}

        async def read() -> None:
            try:
                async for raw in requests:
                    await answers.put(self._handle(raw, peer, counts))
            finally:
                await answers.put(None)

        reader = asyncio.create_task(read(), name="push-reader")
        log.debug("push stream opened", extra={"peer": peer})
        try:
            while (answer := await answers.get()) is not None:
                yield await answer
            await reader  # surfaces a failure of the request stream itself
        finally:
            reader.cancel()
            log.info("push stream ended", extra={"peer": peer, **counts})

    def _handle(self, raw: bytes, peer: str, counts: dict[str, int]) -> Awaitable[bytes]:
        """The answer to one request: at once for a refusal, else a task that stores it."""
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
        except StoreError as exc:
            return self._refuse(
                seq, id, Code.UNAVAILABLE, f"the trainer could not store it: {exc}", peer, counts
            )
        counts["duplicates" if duplicate else "stored"] += 1
        self.stored += not duplicate
        return tpb.PushResponse(seq=seq, id=id, stored=tpb.Stored(duplicate=duplicate)).SerializeToString()

    def _refuse(
        self, seq: int, id: str, code: grpc.StatusCode, message: str, peer: str, counts: dict[str, int]
    ) -> bytes:
        self.rejected += 1
        counts["rejected"] += 1
        log.warning(
            "trajectory refused",
            extra={"seq": seq, "id": id, "code": code.name, "error": message, "peer": peer},
        )
        return _error(seq, id, code, message)

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
