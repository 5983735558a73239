"""What overlapping rollouts with learning buys: the same rl job in lockstep and in overlapped mode.

    python bench/rl_overlap.py                         # tiny model on Maze, 4 steps, 2 runs per mode
    python bench/rl_overlap.py --model runs/bc/final --steps 6 --repeats 3

Each run is `agentgym train rl` (trainer, learner process, worker, hf policy server and env server,
all started by the command) in a fresh folder; runs of the two modes alternate, so drifts in the
machine's load fall on both. The figure is the wall time of the RL steps themselves (from the first
rollout's start to the last publish's end, from the job's own step timing), not the start-up.
In overlapped mode step k+1's rollouts run while step k learns, so the best it can do is hide the
learning time (the table's `learn` column); on a machine where the learner and the policy server
share the same cores, they also slow each other down, which this measures too.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

AGENTGYM = str(Path(sys.executable).with_name("agentgym"))


def run(args: argparse.Namespace, overlap: bool, out: Path) -> dict[str, float]:
    cmd = [AGENTGYM, "--log-level", "warning", "train", "rl", "--envs", "maze", "--model", args.model,
           "--steps", str(args.steps), "--tasks-per-step", str(args.tasks), "--group-size", str(args.group),
           "--eval-tasks", "0", "--max-new-tokens", "48", "--seed", "0", "--out", str(out),
           "--set", "skip_zero_advantage=false", "--set", f"mini_batches={args.mini_batches}",
           "--set", "lr=1e-5"] + (["--overlap"] if overlap else [])  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    (job,) = (out / "jobs").glob("job-*")
    timing = json.loads((job / "state.json").read_text())["timing"]
    rows = [json.loads(line) for line in (job / "metrics.jsonl").read_text().splitlines()]
    wall = timing[f"publish-{args.steps}"][1] - timing["rollout-0"][0]
    return {
        "wall": wall,
        "rollout": sum(r["rollout_s"] for r in rows),
        "learn": sum(r["learn_s"] for r in rows),
        "sync": sum(r["sync_s"] for r in rows),
    }


def main(args: argparse.Namespace) -> None:
    console = Console(width=120)
    runs: dict[str, list[dict[str, float]]] = {"lockstep": [], "overlapped": []}
    with tempfile.TemporaryDirectory(prefix="agentgym-rl-overlap-") as tmp:
        for i in range(args.repeats):
            for mode in runs:
                result = run(args, mode == "overlapped", Path(tmp) / f"{mode}-{i}")
                runs[mode].append(result)
                console.print(f"{mode} run {i + 1}: {result['wall']:.1f} s")
    table = Table(
        title=f"rl job, {args.steps} steps of {args.tasks} tasks x {args.group} episodes ({args.model})"
    )
    for col in ("mode", "wall s (median)", "min", "max", "per step", "rollout s", "learn s", "sync s"):
        table.add_column(col, justify="left" if col == "mode" else "right")
    for mode, results in runs.items():
        walls = [r["wall"] for r in results]
        table.add_row(
            mode, f"{statistics.median(walls):.1f}", f"{min(walls):.1f}", f"{max(walls):.1f}",
            f"{statistics.median(walls) / args.steps:.1f}",
            *(f"{statistics.median(r[k] for r in results):.1f}" for k in ("rollout", "learn", "sync")),
        )  # fmt: skip
    console.print(table)
    pairs = [a["wall"] / b["wall"] for a, b in zip(runs["lockstep"], runs["overlapped"], strict=True)]
    console.print(f"speedup of overlap (lockstep wall / overlapped wall, paired runs): "
                  f"median {statistics.median(pairs):.2f}x, runs {', '.join(f'{p:.2f}' for p in pairs)}")  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model", default="init:tiny", help="the starting policy (a checkpoint, or init:SIZE)"
    )
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--tasks", type=int, default=4)
    parser.add_argument("--group", type=int, default=4)
    parser.add_argument("--mini-batches", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    main(parser.parse_args())
