"""Benchmark: trajectory ingest into the trainer's store, with fsync, group commit against one fsync
per record, measured side by side in one run.

    python bench/trainer_store.py                        # 2,000 trajectories of ~1,000 tokens
    python bench/trainer_store.py --n 5000 --tokens 4000 --dir /data/bench

Rows:
- store, one fsync per record: `TrajectoryStore.append` from `--concurrency` tasks at once, with
  `max_batch=1` (each record gets its own write + fdatasync): the baseline;
- store, group commit: the same appends, sharing writes and fdatasyncs (the default);
- store, no fsync: the same without fdatasync (page cache only; an upper bound, not durable);
- gRPC, one fsync per record / group commit: `agentgym trainer serve --no-jobs` as its own process,
  fed by the rollout's `grpc://` sink from this process (Trajectory.to_proto, one Push stream, acks
  awaited).
Ratios are against the baseline row of the same kind, measured in the same run: the machine is
shared and the disk's fsync latency varies (here: a median of 0.3 ms with a tail of tens of ms,
which is what one-fsync-per-record pays), so read the ratios first. The store directory must be
on a real disk (tmpfs makes fsync free).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from rich.console import Console
from rich.table import Table

from agentgym.client.sinks import GrpcSink
from agentgym.core.trajectory import Trajectory
from agentgym.trainer.store import TrajectoryStore

AGENTGYM = str(Path(sys.executable).with_name("agentgym"))


def make_trajectory(i: int, tokens: int) -> Trajectory:
    gen = tokens // 4
    return Trajectory.from_json(
        {
            "item_id": f"maze_{i}",
            "conversations": [
                {"from": "human", "loss": None, "value": "You are in a maze. " * (tokens // 10)},
                {
                    "from": "gpt",
                    "loss": True,
                    "value": "Thought:\nGo down.\n\nAction:\nmove down " * (gen // 12 + 1),
                },
            ],
            "reward": float(i % 2),
            "success": i % 2,
            "env": "maze",
            "task_id": i,
            "seed": i,
            "sample": 0,
            "rounds": 4,
            "finish": "done",
            "policy": "sglang",
            "input_ids": [(i + t) % 32_000 for t in range(tokens)],
            "loss_mask": [0] * (tokens - gen) + [1] * gen,
            "logprobs": [None] * (tokens - gen) + [-0.25] * gen,
            "weight_version": "v1",
            "timing": {"start": 1.7e9, "duration_s": 1.0, "policy_s": 0.9, "env_s": 0.05},
        }
    )


async def bench_store(path: Path, records: list[Trajectory], concurrency: int, **options: Any) -> float:
    shutil.rmtree(path, ignore_errors=True)
    store = TrajectoryStore.open(path, **options)
    queue = iter(records)

    async def worker() -> None:
        for rec in queue:
            await store.append(rec)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    seconds = time.perf_counter() - t0
    await store.aclose()
    return len(records) / seconds


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_serving(port: int, proc: subprocess.Popen[bytes]) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for _ in range(600):
            if proc.poll() is not None:
                raise RuntimeError("the trainer exited")
            try:
                if stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status == 1:
                    return
            except grpc.RpcError:
                time.sleep(0.05)
    raise TimeoutError("trainer not serving")


async def feed(port: int, records: list[Trajectory]) -> float:
    sink = GrpcSink(f"127.0.0.1:{port}", resume=False)
    t0 = time.perf_counter()
    for rec in records:
        await sink.write(rec)
    await sink.close()
    seconds = time.perf_counter() - t0
    assert sink.stored == len(records)
    return len(records) / seconds


def bench_grpc(path: Path, records: list[Trajectory], max_batch: int) -> float:
    """A store-only trainer in `path` (its store in `path`/store)."""
    shutil.rmtree(path, ignore_errors=True)
    port = free_port()
    proc = subprocess.Popen([AGENTGYM, "--log-level", "warning", "trainer", "serve", "--dir", str(path), "--no-jobs",
                             "--port", str(port), "--max-batch", str(max_batch)])  # fmt: skip
    try:
        wait_serving(port, proc)
        return asyncio.run(feed(port, records))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2000, help="trajectories per row")
    ap.add_argument("--tokens", type=int, default=1000, help="tokens per trajectory")
    ap.add_argument("--concurrency", type=int, default=256, help="concurrent appenders (store rows)")
    ap.add_argument("--dir", default=None, help="where stores are created (default: a temporary directory)")
    args = ap.parse_args()
    root = Path(args.dir or tempfile.mkdtemp(prefix="store-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    records = [make_trajectory(i, args.tokens) for i in range(args.n)]
    # A quarter of the records for the slow baselines keeps the run short; rates are per second.
    few = records[: max(500, args.n // 4)]
    size = os.path.getsize
    rows: list[tuple[str, float, float]] = []
    single = asyncio.run(bench_store(root / "single", few, args.concurrency, max_batch=1))
    rows.append(("store, one fsync per record", single, 1.0))
    grouped = asyncio.run(bench_store(root / "group", records, args.concurrency))
    rows.append(("store, group commit", grouped, grouped / single))
    nosync = asyncio.run(bench_store(root / "nosync", records, args.concurrency, fsync=False))
    rows.append(("store, no fsync (not durable)", nosync, nosync / single))
    grpc_single = bench_grpc(root / "grpc-single", few, max_batch=1)
    rows.append(("gRPC sink -> trainer, one fsync per record", grpc_single, 1.0))
    grpc_group = bench_grpc(root / "grpc-group", records, max_batch=4096)
    rows.append(("gRPC sink -> trainer, group commit", grpc_group, grpc_group / grpc_single))
    line_bytes = size(root / "group" / "segment-00000001.log") / args.n
    table = Table(
        title=f"Trajectory ingest: {args.n} trajectories of {args.tokens} tokens (~{line_bytes / 1024:.1f} KiB on disk each), {root}"
    )
    for col in ("path", "trajectories/s", "MiB/s", "vs one fsync per record"):
        table.add_column(col, justify="left" if col == "path" else "right")
    for name, rate, ratio in rows:
        table.add_row(name, f"{rate:,.0f}", f"{rate * line_bytes / (1 << 20):,.1f}", f"{ratio:.1f}x")
    Console().print(table)
    if not args.dir:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
