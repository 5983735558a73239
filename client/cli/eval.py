"""`agentgym eval`: success rate and mean reward per env, as in the AgentEval table.

    agentgym eval --policy expert --envs maze,wordle,textcraft
    agentgym eval --policy hf --model runs/tiny --envs maze --max-tasks 50

Plays each env's test split (or --tasks / --item-ids), prints the table, and writes
trajectories.jsonl, results.json and results.md under --out (rerunning with the same --out
resumes and recomputes the table over everything played). An episode that failed (the env could
not reset, a server went away) counts as a failure in `success`; `success_finished` beside it
leaves failed episodes out, and `failed` counts them.

An env whose server does not play the original benchmark's tasks (its task_set is not "original")
is marked as such under the table and in results.json, so its numbers are not taken for the
original's. With --profile agentgym every env must be served under that profile (docs/compat.md).
--server takes a fleet (ray://HOST:PORT/FLEET); --ray plays the episodes on rollout workers across
the Ray cluster, with the same table and files (docs/fleet.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from agentgym.client.cli.common import (
    add_policy_args,
    add_ray_args,
    add_run_args,
    add_task_args,
    env_client,
    play,
    policy_from_args,
    specs_from_args,
    start_ray,
)
from agentgym.client.errors import AgentGymError
from agentgym.client.policies import PolicyError
from agentgym.client.rollout import FileSink
from agentgym.client.tasks import TaskSpecError
from agentgym.core.envinfo import EnvInfo
from agentgym.core.trajectory import Trajectory, TrajectoryError, make_record_id, read_trajectories

NOT_ORIGINAL = "not the original's task set"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate a policy: success and reward per env", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--out", default=None, help="output directory (default runs/eval-<policy>-<time>)")
    add_policy_args(p)
    add_task_args(p, default_split="test")
    add_run_args(p)
    add_ray_args(p)
    p.set_defaults(func=run)


def results_table(
    records: list[Trajectory], planned: dict[str, int], failed: dict[str, int] | None = None
) -> dict[str, Any]:
    """Per env and on average. `success` and `reward` count each failed episode (`failed`: per env,
    e.g. an env that could not reset) as a failure with reward 0: an infrastructure failure is not
    a success, and leaving it out would report 100% over 18 of 20 tasks. `success_finished` and
    `reward_finished` are over the finished episodes only; `rounds` too."""
    failed = failed or {}
    per_env: dict[str, dict[str, float]] = {}
    for env in sorted(planned):
        rs = [r for r in records if r.env == env]
        n, f = len(rs), failed.get(env, 0)
        wins, reward = sum(bool(r.success) for r in rs), sum(r.reward or 0.0 for r in rs)
        per_env[env] = {
            "planned": planned[env], "episodes": n, "failed": f,
            "success": wins / (n + f) if n + f else 0.0,
            "success_finished": wins / n if n else 0.0,
            "reward": reward / (n + f) if n + f else 0.0,
            "reward_finished": reward / n if n else 0.0,
            "rounds": sum(r.rounds or 0 for r in rs) / n if n else 0.0,
        }  # fmt: skip
    tried = [m for m in per_env.values() if m["episodes"] + m["failed"]]
    finished = [m for m in per_env.values() if m["episodes"]]

    def mean(ms: list[dict[str, float]], key: str) -> float:
        return sum(m[key] for m in ms) / len(ms) if ms else 0.0

    average = {k: mean(tried, k) for k in ("success", "reward")}
    average |= {k: mean(finished, k) for k in ("success_finished", "reward_finished", "rounds")}
    return {"per_env": per_env, "average": average}


def mark_task_sets(results: dict[str, Any], infos: Mapping[str, EnvInfo]) -> None:
    """Say per env whether its tasks are the original benchmark's (its server's task_set), always:
    a success rate over other tasks is not the original's number. Adds `task_set`, `original_tasks`,
    `profile` and, when not original, a `note` to each env of results["per_env"]."""
    for env, m in results["per_env"].items():
        info = infos.get(env)
        if info is None:  # not hosted any more (a resumed run): nothing to say about it
            continue
        m.update(task_set=info.task_set, original_tasks=info.original_tasks, profile=info.profile)
        if not info.original_tasks:
            m["note"] = NOT_ORIGINAL


def task_set_notes(results: dict[str, Any]) -> list[str]:
    """One line per env whose tasks are not the original's, for under the table."""
    return [
        f"{env}: {NOT_ORIGINAL}" + (f" (task set: {m['task_set']})" if m.get("task_set") else "")
        for env, m in results["per_env"].items()
        if m.get("original_tasks") is False
    ]


def failed_episodes(errors: Path, wanted: set[str], finished: set[str]) -> dict[str, int]:
    """Per env, the planned episodes whose last attempt failed: in the errors file (failures of this
    run and of earlier ones this --out resumed) and not finished since (a resumed run retries them)."""
    envs: dict[str, str] = {}
    if errors.exists():
        for line in errors.read_text(errors="replace").splitlines():
            try:
                report = json.loads(line)
                record_id = make_record_id(report["item_id"], int(report.get("sample") or 0))
                envs[record_id] = str(report["env"])
            except (ValueError, KeyError, TypeError):
                continue  # a line cut by a kill: the episode is retried on resume anyway
    counts: dict[str, int] = {}
    for record_id, env in envs.items():
        if record_id in wanted and record_id not in finished:
            counts[env] = counts.get(env, 0) + 1
    return counts


def markdown(results: dict[str, Any], title: str) -> str:
    envs = results["per_env"]
    avg = results["average"]

    def row(label: str, cells: list[str], average: str = "") -> str:
        return f"| {label} | " + " | ".join(cells) + f" | {average} |"

    head = "| | " + " | ".join(envs) + " | average |"
    sep = "|---" * (len(envs) + 2) + "|"
    lines = [
        row("success %", [f"{m['success'] * 100:.1f}" for m in envs.values()], f"{avg['success'] * 100:.1f}"),
        row("success % of finished", [f"{m['success_finished'] * 100:.1f}" for m in envs.values()],
            f"{avg['success_finished'] * 100:.1f}"),
        row("mean reward", [f"{m['reward']:.3f}" for m in envs.values()], f"{avg['reward']:.3f}"),
        row("episodes", [str(int(m["episodes"])) for m in envs.values()]),
        row("failed", [str(int(m["failed"])) for m in envs.values()]),
    ]  # fmt: skip
    note = "\nsuccess % counts failed episodes as failures; of finished: over finished episodes only.\n"
    notes = "".join(f"\n- {line}" for line in task_set_notes(results))
    return (
        f"### {title}\n\n{head}\n{sep}\n" + "\n".join(lines) + "\n" + note + (notes + "\n" if notes else "")
    )


async def _play(
    args: argparse.Namespace, console: Console, out: Path
) -> tuple[Any, list[Any], dict[str, str], dict[str, EnvInfo]]:
    policy = policy_from_args(args)
    async with env_client(args, console) as client:
        specs = await specs_from_args(client, args)
        infos = await client.envs()
        try:
            summary = await play(
                args, client, policy, specs, [FileSink(out / "trajectories.jsonl", fsync_every=0)]
            )
        finally:
            described = policy.describe()
    return summary, specs, described, infos


def report(
    console: Console,
    out: Path,
    summary: Any,
    specs: list[Any],
    described: dict[str, str],
    infos: Mapping[str, EnvInfo] | None = None,
) -> dict[str, Any]:
    wanted = {s.record_id for s in specs}
    records = [t for t in read_trajectories(out / "trajectories.jsonl") if t.record_id in wanted]
    planned: dict[str, int] = {}
    for s in specs:
        planned[s.env] = planned.get(s.env, 0) + 1
    failed = failed_episodes(out / "trajectories.errors.jsonl", wanted, {t.record_id for t in records})
    results = results_table(records, planned, failed)
    mark_task_sets(results, infos or {})
    results.update(policy=described, failed=summary.failed, reruns=summary.reruns, stopped=summary.stopped,
                   seconds=round(summary.seconds, 2))  # fmt: skip
    (out / "results.json").write_text(json.dumps(results, indent=2))
    title = f"{described.get('policy')} {described.get('model', '')}".strip()
    (out / "results.md").write_text(markdown(results, title))

    table = Table(title=f"AgentEval: {title}")
    table.add_column("env")
    for col in ("episodes", "failed", "success %", "of finished", "mean reward", "mean rounds"):
        table.add_column(col, justify="right")
    for env, m in results["per_env"].items():
        table.add_row(
            env,
            f"{int(m['episodes'])}/{int(m['planned'])}",
            f"[yellow]{int(m['failed'])}[/yellow]" if m["failed"] else "0",
            f"{m['success'] * 100:.1f}",
            f"{m['success_finished'] * 100:.1f}",
            f"{m['reward']:.3f}",
            f"{m['rounds']:.1f}",
        )
    a = results["average"]
    table.add_row("[bold]average[/bold]", "", "", f"{a['success'] * 100:.1f}", f"{a['success_finished'] * 100:.1f}",
                  f"{a['reward']:.3f}", f"{a['rounds']:.1f}")  # fmt: skip
    console.print(table)
    for line in task_set_notes(results):
        console.print(f"[yellow]{line}[/yellow]", highlight=False)
    failures = sum(int(m["failed"]) for m in results["per_env"].values())
    if failures:
        console.print(
            f'[yellow]{failures} episodes failed and count as failures in success % ("of finished" leaves '
            f"them out); see {out / 'trajectories.errors.jsonl'}[/yellow]"
        )
    if summary.placement:
        console.print(summary.placement)
    if summary.reruns:
        console.print(f"{summary.reruns} re-runs: episodes played again from the start after their server or "
                      "worker went away (each counted once)")  # fmt: skip
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
        start_ray(args)
        summary, specs, described, infos = asyncio.run(_play(args, console, out))
    except (AgentGymError, PolicyError, TaskSpecError, TrajectoryError, ValueError) as exc:
        console.print(f"[red]agentgym eval: {escape(str(exc))}[/red]")
        return 2
    report(console, out, summary, specs, described, infos)
    return 0 if summary.ok else 1
