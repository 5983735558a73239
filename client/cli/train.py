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

    p = verbs.add_parser(
        "serve",
        help="receive trajectories over gRPC into a durable store",
        description="Serve agentgym.v1.TrajectoryService: every pushed trajectory is "
        "appended to the store and acknowledged once fsync'd.",
    )
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
        envs.add_row(
            e.env or "?",
            str(e.trajectories),
            str(e.successes),
            rate(e.successes, e.trajectories),
            f"{e.mean_reward:.3f}",
        )
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
            its.add_row(
                label,
                str(it.trajectories),
                str(it.successes),
                rate(it.successes, it.trajectories),
                f"{it.mean_reward:.3f}",
            )
        console.print(its)
    console.print(
        f"{len(s.segments)} segment(s), {s.bytes / (1 << 20):.1f} MiB; corrupt lines skipped: {s.corrupt_lines}"
        + (f"; since start: {s.duplicates} duplicates, {s.rejected} refused" if live else "")
    )


def add_bc(verbs: argparse._SubParsersAction) -> None:
    from agentgym.trainer.bc import BCConfig

    d = BCConfig(data=[], out="")
    p = verbs.add_parser(
        "bc",
        help="behaviour cloning (SFT on agent turns)",
        description=(
            "Fine-tune a causal LM on trajectories (AgentTraj files, our JSONL, or a trajectory store), with loss "
            "on agent turns only. Multi-GPU: torchrun --nproc-per-node N $(which agentgym) train bc ... [--fsdp]."
        ),
    )
    p.add_argument(
        "--data", action="append", required=True, help="trajectory file, folder or store (repeatable)"
    )
    p.add_argument("--out", required=True, help="run folder: checkpoints/, final/, metrics.jsonl")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", help="model directory or hub id to fine-tune")
    src.add_argument(
        "--init", choices=["tiny", "mini", "small"], help="train a model built from a config from scratch"
    )
    p.add_argument("--envs", help="only these envs' trajectories (comma-separated)")
    p.add_argument("--min-reward", type=float, help="only trajectories with at least this reward")
    p.add_argument("--epochs", type=float, default=d.epochs)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--warmup-ratio", type=float, default=d.warmup_ratio)
    p.add_argument("--weight-decay", type=float, default=d.weight_decay)
    p.add_argument(
        "--max-length", type=int, default=d.max_length, help=f"tokens per example (default {d.max_length})"
    )
    p.add_argument(
        "--max-tokens",
        type=int,
        default=d.max_tokens,
        help=f"padded tokens per micro-batch per device (default {d.max_tokens})",
    )
    p.add_argument("--grad-accum", type=int, default=d.grad_accum)
    p.add_argument("--grad-clip", type=float, default=d.grad_clip)
    p.add_argument(
        "--bf16",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="bf16 autocast (default: on with CUDA)",
    )
    p.add_argument("--gradient-checkpointing", action="store_true")
    p.add_argument(
        "--fsdp", action="store_true", help="shard the model (FSDP2) instead of DDP under torchrun"
    )
    p.add_argument(
        "--save-every", type=int, default=d.save_every, help="steps between checkpoints (0: only the end)"
    )
    p.add_argument("--keep-checkpoints", type=int, default=d.keep_checkpoints)
    p.add_argument("--log-every", type=int, default=d.log_every)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--no-resume", action="store_true", help="ignore checkpoints already in --out")
    p.add_argument("--tensorboard", action="store_true")
    p.add_argument("--wandb-project")
    p.add_argument(
        "--peak-tflops", type=float, help="per-device peak for the MFU figure (default: guessed from the GPU)"
    )
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run_bc)


def run_bc(args: argparse.Namespace) -> int:
    from agentgym.trainer.bc import BCConfig, train
    from agentgym.trainer.data import DataError

    cfg = BCConfig(
        data=args.data,
        out=args.out,
        model=args.model,
        init=args.init,
        envs=[e for e in args.envs.split(",") if e] if args.envs else None,
        min_reward=args.min_reward,
        epochs=args.epochs,
        lr=args.lr,
        warmup_ratio=args.warmup_ratio,
        weight_decay=args.weight_decay,
        max_length=args.max_length,
        max_tokens=args.max_tokens,
        grad_accum=args.grad_accum,
        grad_clip=args.grad_clip,
        bf16=args.bf16,
        gradient_checkpointing=args.gradient_checkpointing,
        fsdp=args.fsdp,
        save_every=args.save_every,
        keep_checkpoints=args.keep_checkpoints,
        log_every=args.log_every,
        seed=args.seed,
        resume=not args.no_resume,
        progress=not args.no_progress,
        tensorboard=args.tensorboard,
        wandb_project=args.wandb_project,
        peak_tflops=args.peak_tflops,
    )
    try:
        result = train(cfg)
    except (DataError, OSError, RuntimeError) as exc:
        raise SystemExit(f"agentgym train bc: {exc}") from None
    import os

    if os.environ.get("RANK", "0") == "0":
        s = result.data_stats
        mfu = f", MFU {result.mfu:.1%}" if result.mfu is not None else ""
        Console().print(
            f"trained {result.steps} steps on {s['examples']} examples ({s['targets']:,} target tokens of {s['tokens']:,}; "
            f"{s['truncated']} truncated): loss {result.first_loss:.3f} -> {result.last_loss:.3f}, "
            f"{result.tokens_per_s:,.0f} tokens/s{mfu}\nmodel: {result.final}"
        )
    return 0


def add_evol(verbs: argparse._SubParsersAction) -> None:
    from agentgym.trainer.evol import EvolConfig

    d = EvolConfig(envs=[], bc_data=[], out="", base="")
    p = verbs.add_parser(
        "evol",
        help="AgentEvol: explore, filter, learn from base, reload",
        description=(
            "AgentEvol iterations over env servers: explore with the current agent (dynamic sampling across envs), keep "
            "trajectories that reach each env's success threshold, fine-tune the base model on the original data plus "
            "everything kept, reload the policy, evaluate. Writes report.json, report.md and report.png under --out."
        ),
    )
    p.add_argument("--envs", required=True, help="comma-separated envs")
    p.add_argument(
        "--bc-data", action="append", required=True, help="the original (expert) trajectories (repeatable)"
    )
    p.add_argument(
        "--base", required=True, help="base model: a directory or hub id, or init:tiny / init:small"
    )
    p.add_argument(
        "--agent", help="starting agent (e.g. a BC checkpoint); default: train it from --base first"
    )
    p.add_argument("--out", required=True)
    p.add_argument("--iterations", type=int, default=d.iterations)
    p.add_argument(
        "--explore-episodes", type=int, default=d.explore_episodes, help="per iteration, shared between envs"
    )
    p.add_argument("--samples-per-task", type=int, default=d.samples_per_task)
    p.add_argument("--explore-temperature", type=float, default=d.explore_temperature)
    p.add_argument(
        "--eval-tasks", type=int, default=d.eval_tasks, help="held-out tasks per env for before/after"
    )
    p.add_argument("--uniform", action="store_true", help="equal exploration shares (the paper's ablation)")
    p.add_argument("--policy", choices=["hf", "sglang"], default=d.policy)
    p.add_argument(
        "--policy-url", help="sglang: server URL(s); they must see --out's checkpoints on their disk"
    )
    p.add_argument(
        "--server", help="env server(s) HOST:PORT,... (default 127.0.0.1:50051 or an embedded one)"
    )
    p.add_argument("--max-new-tokens", type=int, default=d.max_new_tokens)
    p.add_argument("--concurrency", type=int, default=d.concurrency)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument(
        "--bc",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a BC setting for every learn step, e.g. lr=1e-5, epochs=2, max_tokens=8192 (repeatable)",
    )
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run_evol)


def _bc_overrides(items: list[str]) -> dict[str, object]:
    from dataclasses import fields

    from agentgym.trainer.bc import BCConfig

    types = {f.name: f.type for f in fields(BCConfig)}
    out: dict[str, object] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or key not in types or key in ("data", "out", "model", "init"):
            raise SystemExit(
                f"--bc {item!r}: expected KEY=VALUE with KEY a BC setting ({', '.join(sorted(types))})"
            )
        kind = str(types[key])
        out[key] = (
            float(value)
            if "float" in kind
            else int(value)
            if "int" in kind
            else value.lower() in ("1", "true", "yes")
            if "bool" in kind
            else value
        )
    return out


def run_evol(args: argparse.Namespace) -> int:
    from agentgym.client.cli.common import env_client
    from agentgym.client.errors import AgentGymError
    from agentgym.client.policies import PolicyError
    from agentgym.trainer.data import DataError
    from agentgym.trainer.evol import AgentEvol, EvolConfig, report_markdown

    console = Console()
    cfg = EvolConfig(
        envs=[e for e in args.envs.split(",") if e],
        bc_data=args.bc_data,
        out=args.out,
        base=args.base,
        agent=args.agent,
        iterations=args.iterations,
        explore_episodes=args.explore_episodes,
        samples_per_task=args.samples_per_task,
        explore_temperature=args.explore_temperature,
        eval_tasks=args.eval_tasks,
        uniform=args.uniform,
        policy=args.policy,
        policy_url=args.policy_url,
        max_new_tokens=args.max_new_tokens,
        concurrency=args.concurrency,
        seed=args.seed,
        bc=_bc_overrides(args.bc),
        progress=not args.no_progress,
    )

    async def go() -> list:  # type: ignore[type-arg]
        async with env_client(argparse.Namespace(server=args.server, envs=args.envs), console) as client:
            return await AgentEvol(cfg, client).run()

    try:
        reports = asyncio.run(go())
    except (AgentGymError, PolicyError, DataError, ValueError) as exc:
        raise SystemExit(f"agentgym train evol: {exc}") from None
    console.print(report_markdown(reports, cfg.envs))
    console.print(f"report: {args.out}/report.md, {args.out}/report.json, {args.out}/report.png")
    return 0


# The verbs of `agentgym train`, in help order. Add one: write add_<verb>, list it here.
VERBS: list[Callable[[argparse._SubParsersAction], None]] = [add_bc, add_evol, add_serve, add_stats]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="the trainer: trajectory store and training",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    verbs = p.add_subparsers(dest="verb", required=True, metavar="VERB")
    for add in VERBS:
        add(verbs)
