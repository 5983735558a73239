"""`agentgym rollout`: play episodes with a policy and write their trajectories (JSON Lines).

    agentgym rollout --policy expert --envs maze,wordle --split train --out runs/expert.jsonl

Rerunning with the same --out skips episodes already in the file. --server takes a fleet
(ray://HOST:PORT/FLEET); --ray plays the episodes on rollout workers across the Ray cluster, with
the same output (docs/fleet.md). With --profile agentgym every
env must be served under that profile, so the trajectories open as the original's (docs/compat.md).
"""

from __future__ import annotations

import argparse
import asyncio

from rich.console import Console
from rich.markup import escape

from agentgym.client.cli.common import (
    add_policy_args,
    add_ray_args,
    add_run_args,
    add_task_args,
    client_security,
    env_client,
    play,
    policy_from_args,
    specs_from_args,
    start_ray,
)
from agentgym.client.errors import AgentGymError
from agentgym.client.policies import PolicyError
from agentgym.client.rollout import FileSink, RolloutSummary
from agentgym.client.tasks import TaskSpecError
from agentgym.core.trajectory import TrajectoryError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("rollout", help="play episodes and write trajectories", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--out", required=True, help="trajectory file (JSON Lines; resumed if it exists)")
    p.add_argument(
        "--sink",
        action="append",
        default=[],
        help="also stream trajectories to grpc://HOST:PORT or grpcs://HOST:PORT (a trainer)",
    )
    add_policy_args(p)
    add_task_args(p, default_split="train")
    add_run_args(p)
    add_ray_args(p)
    p.set_defaults(func=run)


def make_sinks(args: argparse.Namespace) -> list:  # type: ignore[type-arg]
    sinks: list = [FileSink(args.out)]  # type: ignore[type-arg]
    for url in args.sink:
        from agentgym.client.sinks import sink_for_url

        sinks.append(sink_for_url(url, client_security(args)))
    return sinks


def print_summary(console: Console, summary: RolloutSummary) -> None:
    from rich.table import Table

    table = Table(title="Rollout")
    for col in ("env", "episodes", "success", "mean reward", "mean rounds", "failed"):
        table.add_column(col, justify="right" if col != "env" else "left")
    for env, m in summary.per_env.items():
        table.add_row(
            env,
            str(int(m["episodes"])),
            f"{m['success']:.1%}",
            f"{m['reward']:.3f}",
            f"{m['rounds']:.1f}",
            str(int(m["failed"])),
        )
    console.print(table)
    console.print(f"{summary.finished} finished, {summary.failed} failed, {summary.skipped} already done, "
                  f"{summary.steps} steps in {summary.seconds:.1f}s"
                  + (f", {summary.reruns} re-runs" if summary.reruns else ""))  # fmt: skip
    if summary.placement:
        console.print(summary.placement)
    if summary.errors:
        console.print("errors: " + ", ".join(f"{k} x{n}" for k, n in summary.errors.most_common()))
    if summary.stopped:
        console.print(f"[red]stopped: {summary.stopped}[/red]")


async def _run(args: argparse.Namespace, console: Console) -> int:
    policy = policy_from_args(args)
    async with env_client(args, console) as client:
        specs = await specs_from_args(client, args)
        summary = await play(args, client, policy, specs, make_sinks(args))
    print_summary(console, summary)
    console.print(f"trajectories: {args.out}")
    return 0 if summary.ok else 1


def run(args: argparse.Namespace) -> int:
    console = Console(stderr=False)
    try:
        start_ray(args)
        return asyncio.run(_run(args, console))
    except (AgentGymError, PolicyError, TaskSpecError, TrajectoryError, ValueError) as exc:
        console.print(f"[red]agentgym rollout: {escape(str(exc))}[/red]")
        return 2
