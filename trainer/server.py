"""The trainer process: the trajectory store, the job runner and rollout work, behind one gRPC port.

    server = await TrainerServer.start(TrainerConfig(dir="runs/trainer", port=0))
    ...                                   # server.port, server.store, server.jobs, server.work
    await server.stop()

Its folder holds `store/` (the trajectory store, trainer/store.py) and `jobs/` (one folder per job,
trainer/jobs.py). It serves TrajectoryService (trajectory.proto) and TrainerService
(trainer.proto), with health checking and reflection. `agentgym trainer serve` runs
`serve(config)` until SIGINT/SIGTERM, then stops gracefully: a running job stays RUNNING on disk
and resumes from its last completed step when the trainer starts again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from agentgym.core import metrics
from agentgym.core.rpc import RpcServer, handler, host_port, server_options
from agentgym.core.security import ClientSecurity, ServerSecurity, default_client
from agentgym.trainer import trainer_service
from agentgym.trainer.jobs import JobRunner
from agentgym.trainer.service import DESCRIPTOR, IngestConfig, TrajectoryService
from agentgym.trainer.store import TrajectoryStore
from agentgym.trainer.work import WorkQueue

log = logging.getLogger(__name__)

DEFAULT_PORT = 50060


@dataclass
class TrainerConfig:
    dir: str | Path  # the trainer's folder: store/ and jobs/
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT  # 0 picks a free one
    ingest: IngestConfig = field(default_factory=IngestConfig)
    segment_bytes: int = 256 << 20
    # Records per group commit (one write + one fdatasync); 1 = one fsync per record (benchmarks).
    max_batch: int = 4096
    # On shutdown: seconds streams get to receive the acknowledgements of what was stored.
    grace_s: float = 5.0
    # Run queued jobs (False: a store-only trainer, e.g. for benchmarks).
    run_jobs: bool = True
    # What callers must present: TLS, bearer tokens; --insecure (core/security.py, docs/security.md).
    security: ServerSecurity = field(default_factory=ServerSecurity)
    # How the jobs connect out: ListEnvs on env servers, weight loads on policy servers.
    client: ClientSecurity = field(default_factory=default_client)
    # Prometheus metrics at http://HOST:PORT/metrics (docs/metrics.md); None: none, 0: a free port.
    metrics_port: int | None = None

    @property
    def store_path(self) -> Path:
        return Path(self.dir) / "store"

    @property
    def jobs_path(self) -> Path:
        return Path(self.dir) / "jobs"


class TrainerServer:
    def __init__(self, config: TrainerConfig, store: TrajectoryStore, trajectories: TrajectoryService,
                 work: WorkQueue, jobs: JobRunner, rpc: RpcServer) -> None:  # fmt: skip
        self.config = config
        self.store = store
        self.service = trajectories
        self.work = work
        self.jobs = jobs
        self.rpc = rpc
        self.port = rpc.port
        self.metrics: metrics.MetricsServer | None = None
        self._unscrape = metrics.add_scraped(self._gauges)

    @property
    def address(self) -> str:
        return host_port(self.config.host, self.port)

    @classmethod
    async def start(cls, config: TrainerConfig) -> TrainerServer:
        """Open the store (raises StoreError: not a store, locked, ...), load the jobs, then serve.
        SecurityError (a ValueError) for an unsafe bind or an unreadable certificate or token file."""
        config.security.check(config.host)  # before the store is opened (and locked)
        store = TrajectoryStore.open(
            config.store_path, segment_bytes=config.segment_bytes, max_batch=config.max_batch
        )
        try:
            trajectories = TrajectoryService(store, config.ingest)
            work = WorkQueue()
            jobs = JobRunner(config.jobs_path, store, work, config.client)
            trainer = trainer_service.TrainerService(jobs, work)
            # gRPC's own limit sits above the in-band one, so an oversize trajectory is answered in band.
            limit = config.ingest.max_trajectory_bytes + (1 << 20)
            rpc = await RpcServer.start(
                host_port(config.host, config.port),
                [
                    (DESCRIPTOR, handler(DESCRIPTOR, trajectories.methods(), raw=["Push"])),
                    (trainer_service.DESCRIPTOR, handler(trainer_service.DESCRIPTOR, trainer.methods())),
                ],
                server_options(limit),
                config.security,
            )
        except BaseException:
            store.close()
            raise
        trajectories.health = rpc.health  # NOT_SERVING while the store refuses writes (a full disk)
        if config.run_jobs:
            jobs.start()
        srv = cls(config, store, trajectories, work, jobs, rpc)
        if config.metrics_port is not None:
            try:
                srv.metrics = metrics.start_metrics_server(config.metrics_port, config.host)
            except OSError:
                await srv.stop(0)
                raise
        log.info("trainer serving", extra={"address": srv.address, "dir": str(config.dir), "trajectories": len(store),
                                           "jobs": len(jobs.jobs), "security": rpc.security.describe()})  # fmt: skip
        return srv

    async def stop(self, grace_s: float | None = None) -> None:
        """Graceful: health turns NOT_SERVING, new pushes are answered UNAVAILABLE, the running job
        stops where it is (it resumes on the next start), what was queued is written, streams get
        `grace_s` to receive their acknowledgements, then the store closes."""
        grace = self.config.grace_s if grace_s is None else grace_s
        await self.rpc.not_serving()
        self.service.draining = True
        await self.jobs.stop()
        await self.work.drain()
        await self.store.flush()
        await self.rpc.stop(grace)
        await self.store.aclose()
        self._unscrape()
        if self.metrics is not None:
            self.metrics.close()
        log.info("trainer stopped", extra={"address": self.address, "trajectories": len(self.store)})

    def _gauges(self) -> Iterator[metrics.Sample]:
        """The trainer's gauges, read when scraped (core/metrics.py; a thread of the exposition server)."""
        stats = self.store.stats()
        yield metrics.Sample("agentgym_store_trajectories", "Trajectories in the store.", stats.trajectories)
        yield metrics.Sample("agentgym_store_bytes", "Bytes of the store's segment files.", stats.bytes)
        jobs = list(self.jobs.jobs.values())
        for (kind, state), n in sorted(Counter((j.kind, j.state) for j in jobs).items()):
            labels = (("kind", kind), ("state", state))
            yield metrics.Sample("agentgym_jobs", "Jobs by kind and state.", n, labels)
        for j in jobs:
            if j.state == "RUNNING":
                labels = (("job", j.id), ("kind", j.kind), ("step", j.step))
                yield metrics.Sample("agentgym_job_progress", "Progress of the running job's step (0-1).",
                                     j.progress, labels)  # fmt: skip


async def serve_forever(config: TrainerConfig, ready: asyncio.Event | None = None) -> None:
    server = await TrainerServer.start(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    where = f"grpcs://{server.address}" if config.security.tls else server.address
    print(f"trainer on {where} (store {config.store_path}, jobs {config.jobs_path})", flush=True)
    await stop.wait()
    log.info("shutting down", extra={"grace_s": config.grace_s})
    await server.stop()


def serve(config: TrainerConfig) -> None:
    """Blocking entry point of `agentgym trainer serve`."""
    asyncio.run(serve_forever(config))
