"""`agentgym train`: the trainer process and its trajectory store.

    agentgym train serve --store runs/store --port 50060     # receive trajectories (rollout --sink grpc://...)
    agentgym train stats --store runs/store                  # what a store holds (read-only; works while served)
    agentgym train stats --server 127.0.0.1:50060            # the same, asked of a running trainer

Each verb is one `add_<verb>(verbs)` function listed in VERBS: it adds its parser and sets `func`.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable

from rich.console import Console
from rich.table import Table

from agentgym.v1 import trajectory_pb2 as tpb


def add_serve(verbs: argparse._SubParsersAction) -> None:
    from agentgym.trainer.server import DEFAULT_PORT

    p = verbs.add_parser("serve", help="receive trajectories over gRPC into a durable store",
                         description="Serve agentgym.v1.TrajectoryService: every pushed trajectory is "
                         "appended to the store and acknowledged once fsync'd.")  # fmt: skip
    p.add_argument("--store", required=True, help="store directory (created if missing)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0 picks one)"
    )
    p.add_argument("--segment-mb", type=float, default=256, help="seal a segment at this size (default 256)")
    p.add_argument(
        "--max-trajectory-mb", type=float, default=64, help="refuse larger trajectories in band (default 64)"
    )
    p.add_argument("--grace", type=float, default=5.0, help="seconds streams get on shutdown (default 5)")
    p.add_argument(
        "--max-batch",
        type=int,
        default=4096,
        help="trajectories per group commit (one write + fsync); 1 = one fsync each (default 4096)",
    )
    p.set_defaults(func=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    from agentgym.trainer.server import TrainerConfig, serve
    from agentgym.trainer.service import IngestConfig
    from agentgym.trainer.store import StoreError

    config = TrainerConfig(
        store=args.store,
        host=args.host,
        port=args.port,
        segment_bytes=int(args.segment_mb * (1 << 20)),
        ingest=IngestConfig(max_trajectory_bytes=int(args.max_trajectory_mb * (1 << 20))),
        grace_s=args.grace,
        max_batch=args.max_batch,
    )
    try:
        serve(config)
    except (StoreError, OSError) as exc:
        raise SystemExit(f"agentgym train serve: {exc}") from None
    return 0


def add_stats(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser("stats", help="what a trajectory store holds")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--store", help="store directory (opened read-only)")
    where.add_argument("--server", help="a running trainer, HOST:PORT")
    p.set_defaults(func=run_stats)


async def _remote_stats(address: str) -> tpb.StatsResponse:
    import grpc

    async with grpc.aio.insecure_channel(address) as channel:
        call = channel.unary_unary(
            "/agentgym.v1.TrajectoryService/Stats",
            request_serializer=tpb.StatsRequest.SerializeToString,
            response_deserializer=tpb.StatsResponse.FromString,
        )
        return await call(tpb.StatsRequest(), timeout=10)  # type: ignore[no-any-return]


def run_stats(args: argparse.Namespace) -> int:
    console = Console()
    if args.server:
        import grpc

        try:
            stats = asyncio.run(_remote_stats(args.server))
        except grpc.aio.AioRpcError as exc:
            raise SystemExit(
                f"agentgym train stats: {args.server}: {exc.code().name}: {exc.details()}"
            ) from None
    else:
        from agentgym.trainer.service import stats_to_proto
        from agentgym.trainer.store import StoreError, TrajectoryStore

        try:
            with TrajectoryStore.open(args.store, readonly=True) as store:
                stats = stats_to_proto(store.stats())
        except StoreError as exc:
            raise SystemExit(f"agentgym train stats: {exc}") from None
    print_stats(console, stats, live=bool(args.server))
    return 0


def print_stats(console: Console, s: tpb.StatsResponse, live: bool = False) -> None:
    def rate(n: int, of: int) -> str:
        return f"{n / of:.1%}" if of else "-"

    envs = Table(title=f"Trajectory store {s.path}")
    for col in ("env", "trajectories", "successes", "success", "mean reward"):
        envs.add_column(col, justify="left" if col == "env" else "right")
    for e in s.envs:
        envs.add_row(e.env or "?", str(e.trajectories), str(e.successes), rate(e.successes, e.trajectories),
                     f"{e.mean_reward:.3f}")  # fmt: skip
    envs.add_row(
        "total", str(s.trajectories), str(s.successes), rate(s.successes, s.trajectories), "", style="bold"
    )
    console.print(envs)
    if any(it.HasField("iteration") for it in s.iterations):
        its = Table(title="Per iteration")
        for col in ("iteration", "trajectories", "successes", "success", "mean reward"):
            its.add_column(col, justify="right")
        for it in s.iterations:
            label = str(it.iteration) if it.HasField("iteration") else "none"
            its.add_row(label, str(it.trajectories), str(it.successes), rate(it.successes, it.trajectories),
                        f"{it.mean_reward:.3f}")  # fmt: skip
        console.print(its)
    console.print(
        f"{len(s.segments)} segment(s), {s.bytes / (1 << 20):.1f} MiB; corrupt lines skipped: {s.corrupt_lines}"
        + (f"; since start: {s.duplicates} duplicates, {s.rejected} refused" if live else "")
    )


# The verbs of `agentgym train`, in help order. Add one: write add_<verb>, list it here.
VERBS: list[Callable[[argparse._SubParsersAction], None]] = [add_serve, add_stats]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="the trainer: trajectory store and training", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    verbs = p.add_subparsers(dest="verb", required=True, metavar="VERB")
    for add in VERBS:
        add(verbs)
