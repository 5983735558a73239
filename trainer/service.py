"""The TrajectoryService implementation: Push (validate, store, acknowledge once durable), Stats, ListIds.

`Push` takes raw bytes and parses them itself, so that bytes which are not a PushRequest get an
in-band INVALID_ARGUMENT instead of killing the stream (as the env server's Session does). The
rules are written in protos/agentgym/v1/trajectory.proto.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from agentgym.client.trajectory import TrajectoryFormatError, from_proto
from agentgym.trainer.store import (
    Query,
    RecordRejected,
    StoreError,
    StoreStats,
    TrajectoryStore,
    check_record,
)
from agentgym.v1 import env_pb2 as epb
from agentgym.v1 import trajectory_pb2 as tpb

log = logging.getLogger(__name__)

SERVICE_NAME = "agentgym.v1.TrajectoryService"
MAX_ID_BYTES = 1024
LIST_CHUNK = 10_000

Code = grpc.StatusCode


@dataclass
class IngestConfig:
    # A PushRequest larger than this is answered INVALID_ARGUMENT (gRPC's own limit sits a little above).
    max_trajectory_bytes: int = 64 << 20
    # Requests of one stream being stored at once; beyond it the stream is not read (flow control).
    max_in_flight: int = 4096


def implementation() -> str:
    try:
        return f"agentgym-python {metadata.version('agentgym')}"
    except metadata.PackageNotFoundError:
        return "agentgym-python"


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
    return Query.of(
        env=list(f.envs) or None,
        min_reward=f.min_reward if f.HasField("min_reward") else None,
        max_reward=f.max_reward if f.HasField("max_reward") else None,
        success=f.success if f.HasField("success") else None,
        iteration=f.iteration if f.HasField("iteration") else None,
    )


class TrajectoryService:
    def __init__(self, store: TrajectoryStore, config: IngestConfig | None = None) -> None:
        self.store = store
        self.config = config or IngestConfig()
        self.draining = False
        self.stored = 0
        self.rejected = 0

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
        problem = self._check(req, len(raw))
        record: dict[str, Any] = {}
        if problem is None:
            try:
                record = from_proto(t)
                check_record(record, t.id)
            except (TrajectoryFormatError, RecordRejected) as exc:
                problem = (
                    f"trajectory {t.id!r}: {exc}" if isinstance(exc, TrajectoryFormatError) else str(exc)
                )
        if problem is not None:
            return _done(self._refuse(req.seq, t.id, Code.INVALID_ARGUMENT, problem, peer, counts))
        return asyncio.ensure_future(self._store(req.seq, t.id, record, peer, counts))

    def _check(self, req: tpb.PushRequest, size: int) -> str | None:
        if not req.HasField("trajectory"):
            return f"request {req.seq} carries no trajectory"
        t = req.trajectory
        if size > self.config.max_trajectory_bytes:
            return (f"trajectory {t.id!r} is {size} bytes, more than this trainer's limit of "
                    f"{self.config.max_trajectory_bytes} (max_trajectory_bytes)")  # fmt: skip
        if not t.id:
            return f"request {req.seq}: the trajectory has an empty id (set it to the record id, e.g. maze_3)"
        if len(t.id.encode()) > MAX_ID_BYTES:
            return f"request {req.seq}: the trajectory id is longer than {MAX_ID_BYTES} bytes"
        if t.HasField("weight_version") and t.weight_versions:
            return f"trajectory {t.id!r} sets both weight_version and weight_versions; set one"
        return None

    async def _store(
        self, seq: int, id: str, record: dict[str, Any], peer: str, counts: dict[str, int]
    ) -> bytes:
        try:
            duplicate = await self.store.append(record, id, validate=False)
        except RecordRejected as exc:
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

    # --- Stats, ListIds -----------------------------------------------------------------------------
    async def stats(self, request: tpb.StatsRequest, context: grpc.aio.ServicerContext) -> tpb.StatsResponse:
        return stats_to_proto(self.store.stats(), self.rejected)

    async def list_ids(
        self, request: tpb.ListIdsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[tpb.ListIdsResponse]:
        entries = self.store.select(query_from_proto(request.filter))
        for i in range(0, len(entries), LIST_CHUNK):
            chunk = entries[i : i + LIST_CHUNK]
            yield tpb.ListIdsResponse(ids=[e.id for e in chunk], record_ids=[e.record_id for e in chunk])
