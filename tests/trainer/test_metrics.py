"""The trainer's Prometheus metrics over HTTP: ingest counted by outcome and bytes, group commits and
their fsyncs, the store's size, jobs by state and the running job's progress; `--metrics-port`."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import grpc
from prometheus_client import REGISTRY

from agentgym.core.rpc import stub
from agentgym.trainer.server import TrainerConfig, TrainerServer
from agentgym.v1 import trainer_pb2 as rpb
from agentgym.v1 import trajectory_pb2 as tpb
from tests.core.test_metrics import ascrape, scrape
from tests.trainer.helpers import free_port, start_trainer, trajectory, wait_serving
from tests.trainer.test_service import exchange

TRAINER = rpb.DESCRIPTOR.services_by_name["TrainerService"]


def push_request(seq: int, i: int, **overrides: object) -> bytes:
    msg = trajectory(i).to_proto()
    for key, value in overrides.items():
        setattr(msg, key, value)
    return tpb.PushRequest(seq=seq, trajectory=msg).SerializeToString()


async def push(address: str, requests: list[bytes]) -> list[tpb.PushResponse]:
    async with grpc.aio.insecure_channel(address) as channel:
        return await exchange(channel, requests)


async def test_ingest_store_and_jobs_metrics_move_exactly(tmp_path: Path) -> None:
    server = await TrainerServer.start(
        TrainerConfig(dir=tmp_path / "trainer", port=0, run_jobs=False, metrics_port=0)
    )
    try:
        assert server.metrics is not None
        port = server.metrics.port
        before = await ascrape(port)
        assert (before("agentgym_store_trajectories"), before("agentgym_store_bytes")) == (0, 0)

        requests = [push_request(i, i) for i in range(5)]
        requests.append(push_request(5, 2))  # the same key again: a duplicate
        requests.append(push_request(6, 9, id=""))  # no id: refused
        requests.append(b"\x0a\xff")  # not a PushRequest: refused
        answers = await push(server.address, requests)
        assert [a.WhichOneof("result") for a in answers] == ["stored"] * 6 + ["error"] * 2
        after = await ascrape(port)

        def moved(name: str, **labels: str) -> float:
            return after.minus(before, name, **labels)

        assert moved("agentgym_ingest_trajectories_total", result="stored") == 5
        assert moved("agentgym_ingest_trajectories_total", result="duplicate") == 1
        assert moved("agentgym_ingest_trajectories_total", result="rejected") == 2
        assert moved("agentgym_ingest_bytes_total") == sum(len(r) for r in requests)
        # Group commit: each commit is one write and one fsync; together they wrote the five.
        commits = moved("agentgym_store_commit_trajectories_count")
        assert 1 <= commits <= 5
        assert moved("agentgym_store_commit_trajectories_sum") == 5
        assert moved("agentgym_store_fsync_seconds_count") == commits
        # The store's size, read when scraped: what is on disk.
        on_disk = sum(p.stat().st_size for p in (tmp_path / "trainer" / "store").glob("segment-*.log"))
        assert (after("agentgym_store_trajectories"), after("agentgym_store_bytes")) == (5, on_disk)

        # Jobs: a queued one (this trainer runs none), then the same job as the runner shows it running.
        async with grpc.aio.insecure_channel(server.address) as channel:
            spec = rpb.BCJob(base="init:tiny", data=rpb.DataSpec(store=tpb.TrajectoryFilter(envs=["maze"])))
            job = await stub(channel, TRAINER, "Submit")(rpb.SubmitRequest(bc=spec), timeout=10)
        s = await ascrape(port)
        assert s("agentgym_jobs", kind="bc", state="QUEUED") == 1
        assert not s.has("agentgym_job_progress", job=job.id, kind="bc", step="")
        running = server.jobs.jobs[job.id]
        running.state, running.step, running.progress = "RUNNING", "learn", 0.25  # as JobContext sets them
        s = await ascrape(port)
        assert (
            s("agentgym_jobs", kind="bc", state="QUEUED"),
            s("agentgym_jobs", kind="bc", state="RUNNING"),
        ) == (0, 1)
        assert s("agentgym_job_progress", job=job.id, kind="bc", step="learn") == 0.25
        running.state = "QUEUED"
    finally:
        await server.stop(0)
    # A stopped trainer's gauges go with it (another trainer may start in this process).
    assert REGISTRY.get_sample_value("agentgym_store_trajectories") is None


def test_trainer_serve_flag(tmp_path: Path) -> None:
    """`agentgym trainer serve --metrics-port N` serves them, as a real process."""
    port, metrics_port = free_port(), free_port()
    log = tmp_path / "trainer.log"
    proc = start_trainer(tmp_path / "t", port, log, "--no-jobs", "--metrics-port", str(metrics_port))
    try:
        wait_serving(port, proc, log)
        deadline = time.monotonic() + 30
        while True:
            try:
                s = scrape(metrics_port)
                break
            except OSError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
        assert (s("agentgym_store_trajectories"), s("agentgym_store_bytes")) == (0, 0)
        assert s.has("process_resident_memory_bytes")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert proc.returncode == 0, log.read_text()
