"""`agentgym eval`: success rate and mean reward per env, as in the AgentEval table.

    agentgym eval --policy expert --envs maze,wordle,textcraft
    agentgym eval --policy hf --model runs/tiny --envs maze --max-tasks 50

Plays each env's test split (or --tasks / --item-ids), prints the table, and writes
trajectories.jsonl, results.json and results.md under --out (rerunning with the same --out
resumes and recomputes the table over everything played).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from agentgym.client.cli.common import (
    add_policy_args,
    add_run_args,
    add_task_args,
    config_from_args,
    env_client,
    policy_from_args,
    specs_from_args,
)
from agentgym.client.errors import AgentGymError
from agentgym.client.policies import PolicyError
from agentgym.client.rollout import FileSink, Rollout
from agentgym.client.tasks import TaskSpecError
from agentgym.core.trajectory import Trajectory, TrajectoryError, read_trajectories


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate a policy: success and reward per env", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--out", default=None, help="output directory (default runs/eval-<policy>-<time>)")
    add_policy_args(p)
    add_task_args(p, default_split="test")
    add_run_args(p)
    p.set_defaults(func=run)


def results_table(records: list[Trajectory], planned: dict[str, int]) -> dict[str, Any]:
    per_env: dict[str, dict[str, float]] = {}
    for env in sorted(planned):
        rs = [r for r in records if r.env == env]
        n = len(rs)
        per_env[env] = {
            "planned": planned[env], "episodes": n,
            "success": sum(bool(r.success) for r in rs) / n if n else 0.0,
            "reward": sum(r.reward or 0.0 for r in rs) / n if n else 0.0,
            "rounds": sum(r.rounds or 0 for r in rs) / n if n else 0.0,
        }  # fmt: skip
    envs = [m for m in per_env.values() if m["episodes"]]
    average = {
        k: sum(m[k] for m in envs) / len(envs) if envs else 0.0 for k in ("success", "reward", "rounds")
    }
    return {"per_env": per_env, "average": average}


def markdown(results: dict[str, Any], title: str) -> str:
    envs = results["per_env"]
    head = "| | " + " | ".join(envs) + " | average |"
    sep = "|---" * (len(envs) + 2) + "|"
    succ = (
        "| success % | "
        + " | ".join(f"{m['success'] * 100:.1f}" for m in envs.values())
        + f" | {results['average']['success'] * 100:.1f} |"
    )
    rew = (
        "| mean reward | "
        + " | ".join(f"{m['reward']:.3f}" for m in envs.values())
        + f" | {results['average']['reward']:.3f} |"
    )
    eps = "| episodes | " + " | ".join(str(int(m["episodes"])) for m in envs.values()) + " | |"
    return f"### {title}\n\n{head}\n{sep}\n{succ}\n{rew}\n{eps}\n"


async def _play(
    args: argparse.Namespace, console: Console, out: Path
) -> tuple[Any, list[Any], dict[str, str]]:
    policy = policy_from_args(args)
    async with env_client(args, console) as client:
        specs = await specs_from_args(client, args)
        await policy.start()
        try:
            summary = await Rollout(
                client, policy, config_from_args(args), [FileSink(out / "trajectories.jsonl", fsync_every=0)]
            ).run(specs)
        finally:
            described = policy.describe()
            await policy.close()
    return summary, specs, described


def report(
    console: Console, out: Path, summary: Any, specs: list[Any], described: dict[str, str]
) -> dict[str, Any]:
    wanted = {s.record_id for s in specs}
    records = [t for t in read_trajectories(out / "trajectories.jsonl") if t.record_id in wanted]
    planned: dict[str, int] = {}
    for s in specs:
        planned[s.env] = planned.get(s.env, 0) + 1
    results = results_table(records, planned)
    results.update(
        policy=described, failed=summary.failed, stopped=summary.stopped, seconds=round(summary.seconds, 2)
    )
    (out / "results.json").write_text(json.dumps(results, indent=2))
    title = f"{described.get('policy')} {described.get('model', '')}".strip()
    (out / "results.md").write_text(markdown(results, title))

    table = Table(title=f"AgentEval: {title}")
    table.add_column("env")
    for col in ("episodes", "success %", "mean reward", "mean rounds"):
        table.add_column(col, justify="right")
    for env, m in results["per_env"].items():
        table.add_row(
            env,
            f"{int(m['episodes'])}/{int(m['planned'])}",
            f"{m['success'] * 100:.1f}",
            f"{m['reward']:.3f}",
            f"{m['rounds']:.1f}",
        )
    a = results["average"]
    table.add_row(
        "[bold]average[/bold]", "", f"{a['success'] * 100:.1f}", f"{a['reward']:.3f}", f"{a['rounds']:.1f}"
    )
    console.print(table)
    if summary.failed:
        console.print(
            f"[yellow]{summary.failed} episodes failed (see {out / 'trajectories.errors.jsonl'})[/yellow]"
        )
    if summary.stopped:
        console.print(f"[red]stopped: {summary.stopped}[/red]")
    console.print(
        f"results: {out / 'results.json'}, {out / 'results.md'}; trajectories: {out / 'trajectories.jsonl'}"
    )
    return results


def run(args: argparse.Namespace) -> int:
    console = Console()
    out = Path(args.out or f"runs/eval-{args.policy}-{time.strftime('%Y%m%d-%H%M%S')}")
    out.mkdir(parents=True, exist_ok=True)
    try:
        summary, specs, described = asyncio.run(_play(args, console, out))
    except (AgentGymError, PolicyError, TaskSpecError, TrajectoryError, ValueError) as exc:
        console.print(f"[red]agentgym eval: {exc}[/red]")
        return 2
    report(console, out, summary, specs, described)
    return 0 if summary.ok else 1
