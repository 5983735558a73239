"""`agentgym train`: training in one process, the embedded default of `agentgym trainer`.

    agentgym train bc --init mini --data runs/expert.jsonl --out runs/bc
    agentgym train evol --envs maze --base init:mini --bc-data runs/expert.jsonl --out runs/evol
    agentgym train rl --envs maze --model runs/bc/final --rounds 6,10,15 --stage-steps 10 --out runs/rl

`train bc` runs behaviour cloning here (torchrun for several GPUs). `train evol` and `train rl`
start, from this process, the same machinery as the separate processes of `agentgym trainer`: a
trainer (its store and job runner, in --out; an rl job's learner is its child process), a rollout
worker, an hf policy server (unless --policy-url) and an env server (unless one answers at
--env-server or 127.0.0.1:50051), then submit the job over gRPC and follow it. Rerun with the
same --out, it resumes the unfinished job.

Each verb is one `add_<verb>(verbs)` function listed in VERBS: it adds its parser and sets `func`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console

from agentgym.client.cli.common import add_client_security_args, client_security
from agentgym.client.cli.trainer import add_evol_args, add_rl_args, evol_request, rl_request


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
    f = p.add_argument_group("filters (applied to every --data source)")
    f.add_argument("--envs", help="only these envs' trajectories (comma-separated; AgentGym's item ids such "
                   "as lmrlgym_maze_3 count as their env)")  # fmt: skip
    f.add_argument("--min-reward", type=float,
                   help="only trajectories with at least this reward; those that carry no reward (AgentTraj's "
                   "published files) are kept as demonstrations unless --require-reward")  # fmt: skip
    f.add_argument(
        "--require-reward", action="store_true", help="with --min-reward: drop trajectories without a reward"
    )
    f.add_argument("--successful-only", action="store_true",
                   help="only trajectories that succeeded (e.g. the tasks the expert finished, from "
                        "`agentgym rollout --policy expert`); those that do not say are dropped")  # fmt: skip
    f.add_argument("--iteration", type=int, help="only this AgentEvol iteration (-1: trajectories with none)")
    f.add_argument("--weight-version", help="only trajectories produced by this weight version")
    f.add_argument("--strict", action="store_true",
                   help="stop at the first bad record in a file (default: skip it, count it, name it in the log)")  # fmt: skip
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


def bc_query(args: argparse.Namespace) -> dict[str, object]:
    """Query.of keyword arguments from the filter flags of `train bc`."""
    query: dict[str, object] = {}
    if args.envs:
        query["env"] = [e for e in args.envs.split(",") if e]
    if args.min_reward is not None:
        query["min_reward"] = args.min_reward
        query["keep_unrewarded"] = not args.require_reward
    if args.successful_only:
        query["success"] = True
    if args.iteration is not None:
        query["iteration"] = args.iteration
    if args.weight_version:
        query["weight_version"] = args.weight_version
    return query


def run_bc(args: argparse.Namespace) -> int:
    from agentgym.trainer.bc import BCConfig, train
    from agentgym.trainer.data import DataError

    cfg = BCConfig(
        data=args.data,
        out=args.out,
        model=args.model,
        init=args.init,
        query=bc_query(args),
        strict=args.strict,
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
            f"{s['truncated']} truncated, {s.get('skipped', 0)} bad records skipped): loss {result.first_loss:.3f} -> {result.last_loss:.3f}, "
            f"{result.tokens_per_s:,.0f} tokens/s{mfu}\nmodel: {result.final}"
        )
    return 0


def add_evol(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser(
        "evol",
        help="AgentEvol in one process: explore, filter, learn from base, publish, evaluate",
        description=(
            "AgentEvol iterations, with the trainer, a rollout worker, a policy server and an env server in this "
            "process (see `agentgym trainer` for them as separate processes). Explores with the current agent "
            "(dynamic sampling across envs), keeps trajectories that reach each env's success threshold, fine-tunes "
            "the base model on the original data plus everything kept, publishes the weights, evaluates. Writes "
            "report.json, report.md and report.png in the job's folder under --out."
        ),
    )
    add_evol_args(p, embedded=True)
    p.add_argument("--out", required=True, help="the run's folder (the trainer's: store/ and jobs/)")
    add_client_security_args(p)  # for --env-server and --policy-url servers that need TLS or a token
    p.set_defaults(func=run_evol)


def add_rl(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser(
        "rl",
        help="multi-turn RL in one process: GRPO, RLOO or REINFORCE++ with a horizon schedule",
        description=(
            "RL steps with the trainer, its learner process, a rollout worker, a policy server and an env server "
            "started from here (see `agentgym trainer` for them as separate processes). Each step plays "
            "--tasks-per-step train tasks --group-size times with sampling under the step's horizon (--rounds, "
            "--stage-steps), makes one policy-gradient update, publishes the weights, and evaluates held-out tasks "
            "every --eval-every steps. Writes metrics.jsonl, report.json, report.md and report.png in the job's "
            "folder under --out."
        ),
    )
    add_rl_args(p, embedded=True)
    p.add_argument("--out", required=True, help="the run's folder (the trainer's: store/ and jobs/)")
    add_client_security_args(p)  # for --env-server and --policy-url servers that need TLS or a token
    p.set_defaults(func=run_rl)


def run_evol(args: argparse.Namespace) -> int:
    return _run_embedded(args, "evol", evol_request(args), args.agent or args.base)


def run_rl(args: argparse.Namespace) -> int:
    return _run_embedded(args, "rl", rl_request(args), args.model)


def _run_embedded(args: argparse.Namespace, kind: str, request: Any, model: str) -> int:
    from agentgym.client.errors import AgentGymError
    from agentgym.client.policies import PolicyError
    from agentgym.trainer.store import StoreError

    console = Console()
    try:
        report = asyncio.run(embedded_job(args, kind, request, model, console))
    except (AgentGymError, PolicyError, StoreError, OSError, ValueError) as exc:
        raise SystemExit(f"agentgym train {kind}: {exc}") from None
    if report is None:
        return 1
    console.print(report)
    return 0


async def embedded_job(args: argparse.Namespace, kind: str, request: Any, model: str,
                       console: Console) -> str | None:  # fmt: skip
    """Run (or resume) an evol or rl job with every part of the loop started from this process
    (the trainer and a worker in it, an hf policy server serving `model` unless --policy-url, an
    env server unless one answers); the report's Markdown when it succeeded, None when it failed."""
    import grpc

    from agentgym.client.cli.common import connect
    from agentgym.client.cli.trainer import call, watch
    from agentgym.client.policies.hf import HFPolicy
    from agentgym.client.policies.hf_server import PolicyServer
    from agentgym.client.worker import RolloutWorker
    from agentgym.trainer.server import TrainerConfig, TrainerServer
    from agentgym.v1 import trainer_pb2 as rpb

    out = Path(args.out)
    job = getattr(request, kind)
    # The servers named by --env-server and --policy-url may need TLS or a token; the parts started
    # here listen on loopback only and need neither.
    security = client_security(args)
    async with contextlib.AsyncExitStack() as stack:
        if not job.env_servers:
            client = await stack.enter_async_context(connect(None, list(job.envs), console, security))
            job.env_servers.append(client.servers[0].address)
        if not job.policy_urls:
            policy = HFPolicy(_base_model(model, out, args.seed), seed=args.seed)
            await policy.start()
            stack.push_async_callback(policy.close)
            server = PolicyServer(policy)
            port = await server.start()
            stack.push_async_callback(server.stop)
            job.policy_urls.append(f"http://127.0.0.1:{port}")
        trainer = await TrainerServer.start(TrainerConfig(dir=out, port=0, run_jobs=False, client=security))
        stack.push_async_callback(trainer.stop)
        # An unfinished job of this kind in --out resumes, aimed at this run's servers.
        unfinished = [j for j in trainer.jobs.jobs.values() if j.kind == kind and j.state == "QUEUED"]
        for j in unfinished:
            trainer.jobs.retarget(j.id, list(job.policy_urls), list(job.env_servers))
        trainer.jobs.start()
        stop = asyncio.Event()
        worker = RolloutWorker(
            trainer.address, env_servers=list(job.env_servers), name="embedded", security=security
        )
        task = asyncio.create_task(worker.run(stop))

        async def stop_worker() -> None:
            stop.set()
            await task

        stack.push_async_callback(stop_worker)
        if unfinished:
            job_id = unfinished[-1].id
            console.print(f"resuming {job_id} in {out}")
        else:
            try:
                job_id = (await call(trainer.address, "Submit", request)).id
            except grpc.aio.AioRpcError as exc:
                raise ValueError(exc.details()) from None
        ended = await watch(trainer.address, job_id, console)
        if ended.state != rpb.SUCCEEDED:
            console.print(f"[red]{job_id} {rpb.JobState.Name(ended.state)}: {ended.error}[/red]")
            return None
        folder = Path(ended.out)
        return (folder / "report.md").read_text() + f"\nreport: {folder}/report.md, report.json, report.png"


def _base_model(base: str, out: Path, seed: int) -> str:
    """A directory the policy server can load before the first agent exists: the base model, or for
    init:SIZE the same from-scratch model the learn step builds (the same tokenizer)."""
    if not base.startswith("init:"):
        return base
    from agentgym.trainer.tiny import save

    folder = out / f"base-{base[5:]}-seed{seed}"
    if not (folder / "config.json").exists():
        save(folder, base[5:], seed)
    return str(folder)


# The verbs of `agentgym train`, in help order. Add one: write add_<verb>, list it here.
VERBS: list[Callable[[argparse._SubParsersAction], None]] = [add_bc, add_evol, add_rl]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train in this process: behaviour cloning, AgentEvol, RL",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    verbs = p.add_subparsers(dest="verb", required=True, metavar="VERB")
    for add in VERBS:
        add(verbs)
