"""Demonstration on CPU: multi-turn RL (GRPO) on Maze from a behaviour-cloning checkpoint, through
the fabric, with a fixed horizon and with ScalingInter-RL's growing one.

    python examples/maze_rl.py --bc runs/demo-maze/trainer/jobs/job-000001/iter-0/model/final \\
        --evol runs/demo-maze/results.json       # the BC and AgentEvol rows of maze_bc_evol.py
    python examples/maze_rl.py                   # trains the same BC checkpoint first (~15 min more)

Every part runs as its own process, as on a cluster: an env server, the trainer (store, job runner
and, for an rl job, its learner process), a policy server speaking SGLang's API (`agentgym policy
serve --backend hf`) and a rollout worker. This script only drives them:

1. (without --bc) the expert's trajectories on half of Maze's train tasks and a BC job, exactly as
   the first half of examples/maze_bc_evol.py: the starting checkpoint;
2. rl job A, fixed horizon: GRPO steps, each playing --tasks train tasks --group times with
   sampling, one update, weights published to the policy server; the starting policy and the
   result are evaluated greedily on the 131 test tasks;
3. rl job B, ScalingInter-RL: the same number of steps from the same checkpoint and seed, the
   horizon growing in three stages (--rounds), evaluated on the same test tasks.
The table at the end sets them beside the BC row and, with --evol, the AgentEvol row of
maze_bc_evol.py (the same BC checkpoint, the same 131 test tasks).
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path
from typing import Any

from maze_bc_evol import Fabric, run, success
from rich.console import Console
from rich.table import Table


def main(args: argparse.Namespace) -> None:
    console = Console(width=120)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()

    def stamp(text: str) -> None:
        console.print(f"[{time.time() - t0:5.0f}s] {text}")

    results: dict[str, Any] = {}
    timings: dict[str, float] = {}
    folders: dict[str, Path] = {}
    with Fabric(out, args.bc or f"init:{args.size}") as fabric:
        env, trainer, policy_url = fabric.env, fabric.trainer, fabric.policy_url
        tasks = fabric.splits()
        test, original, held_out = set(tasks["test"]), set(tasks["original"]), set(tasks["held_out"])

        # 1. The starting checkpoint.
        bc = args.bc
        if not bc:
            bc_tasks = sorted(random.Random(args.seed).sample(tasks["train"], args.bc_tasks))
            run("rollout", "--policy", "expert", "--envs", "maze", "--tasks", ",".join(map(str, bc_tasks)),
                "--server", env, "--out", str(out / "expert_train.jsonl"), "--sink", f"grpc://{trainer}",
                "--no-progress")  # fmt: skip
            folder = fabric.job("bc", "--base", f"init:{args.size}", "--query", "iteration=-1", "--set", "epochs=16",
                                "--set", "lr=1e-3", "--set", "max_tokens=2048", "--set", f"seed={args.seed}")  # fmt: skip
            bc = str(folder / "model" / "final")
        stamp(f"starting checkpoint: {bc}")

        # 2 and 3. Two rl jobs from the same checkpoint, at equal steps.
        common = [
            "--envs", "maze", "--model", bc, "--policy-url", policy_url, "--env-server", env,
            "--steps", str(args.steps), "--tasks-per-step", str(args.tasks), "--group-size", str(args.group),
            "--temperature", str(args.temperature), "--eval-tasks", str(args.eval_tasks or len(test)), "--max-new-tokens", "64",
            "--seed", str(args.seed), "--set", f"lr={args.lr}", "--set", f"mini_batches={args.mini_batches}",
            "--set", "max_tokens=8192", "--set", f"aggregate={args.aggregate}", "--set", f"ppo_epochs={args.ppo_epochs}",
            "--set", f"kl_coef={args.kl_coef}",
        ]  # fmt: skip
        schedule = [int(r) for r in args.rounds.split(",")]
        stage = max(1, -(-args.steps // len(schedule)))
        runs = [("fixed", [*common, "--rounds", str(schedule[-1])]),
                ("scaling", [*common, "--rounds", args.rounds, "--stage-steps", str(stage), "--skip-start-eval"])]  # fmt: skip
        for name, cmd in runs if not args.fixed_only else runs[:1]:
            started = time.time()
            folders[name] = fabric.job("rl", *cmd)
            timings[name] = time.time() - started
            stamp(f"rl ({name} horizon): {timings[name]:.0f} s")
    results["BC (the starting checkpoint)"] = _eval(folders["fixed"] / "eval" / "step-0.jsonl")
    if args.evol:  # maze_bc_evol.py's results.json: its rows as the three rates
        results["BC + 1 AgentEvol iteration"] = json.loads(Path(args.evol).read_text())[
            "BC + 1 AgentEvol iteration"
        ]
    label = f"BC + {args.steps} GRPO steps"
    results[f"{label}, horizon {schedule[-1]}"] = _eval(
        folders["fixed"] / "eval" / f"step-{args.steps}.jsonl"
    )
    if "scaling" in folders:
        results[f"{label}, ScalingInter {args.rounds}"] = _eval(
            folders["scaling"] / "eval" / f"step-{args.steps}.jsonl"
        )

    table = Table(title=f"Maze, held-out evaluation ({time.time() - t0:.0f} s on CPU, seed {args.seed})")
    for col in ("policy", "original 25", "held-out 106", "all test 131"):
        table.add_column(col, justify="left" if col == "policy" else "right")
    summary: dict[str, object] = {}
    for name, rows in results.items():
        if rows and isinstance(rows[0], float):  # already the three rates
            row = tuple(rows)
        else:
            row = (success(rows, original), success(rows, held_out), success(rows, test))
        summary[name] = row
        table.add_row(name, *(f"{x:.1%}" for x in row))
    console.print(table)
    for name in timings:
        report = json.loads((folders[name] / "report.json").read_text())["steps"]
        console.print(
            f"{name}: " + ", ".join(f"step {r['step'] + 1} success {r['success']:.0%}" for r in report)
        )
    (out / "results.json").write_text(json.dumps(
        {"seed": args.seed, "seconds": round(time.time() - t0), "rl_seconds": timings, **summary}, indent=2))  # fmt: skip


def _eval(path: Path) -> list[tuple[int, bool]]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line]
    return [(r["task_id"], bool(r["success"])) for r in rows]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default="runs/demo-maze-rl")
    parser.add_argument(
        "--bc", help="the starting checkpoint; default: train it here as maze_bc_evol.py does"
    )
    parser.add_argument("--evol", help="maze_bc_evol.py's results.json, for its AgentEvol row")
    parser.add_argument("--bc-tasks", type=int, default=212)
    parser.add_argument("--size", choices=["tiny", "mini", "small"], default="mini")
    parser.add_argument("--steps", type=int, default=10, help="RL steps per job")
    parser.add_argument("--tasks", type=int, default=12, help="train tasks per step")
    parser.add_argument("--group", type=int, default=8, help="episodes per task (the GRPO group)")
    parser.add_argument(
        "--rounds", default="5,10,15", help="ScalingInter stages; the fixed run uses the last"
    )
    parser.add_argument("--temperature", type=float, default=1.2)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--mini-batches", type=int, default=2, help="optimizer steps per RL step")
    parser.add_argument("--aggregate", default="seq-mean-token-mean", help="the learner's loss aggregation")
    parser.add_argument("--ppo-epochs", type=int, default=1, help="passes over each step's batch")
    parser.add_argument("--kl-coef", type=float, default=0.0, help="weight of the KL to the starting policy")
    parser.add_argument("--fixed-only", action="store_true", help="only the fixed-horizon job")
    parser.add_argument("--eval-tasks", type=int, default=0, help="test tasks to evaluate on (0: all 131)")
    parser.add_argument("--seed", type=int, default=0)
    main(parser.parse_args())
