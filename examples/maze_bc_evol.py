"""Demonstration on CPU: behaviour cloning from scratch on Maze, then one AgentEvol iteration.

    python examples/maze_bc_evol.py                 # under 30 minutes on 2 cores
    python examples/maze_bc_evol.py --out runs/demo --epochs 24

1. The expert plays half of Maze's 425 train tasks (all on LMRL-Gym's double-T maze); its
   trajectories are the behaviour-cloning data, like AgentTraj covering part of the instructions.
2. A 1M-parameter Llama (built from a config, its tokenizer trained on the envs' text: no download)
   learns them from scratch.
3. `random` and the expert play the 131 test tasks: the original benchmark's 25 and 106
   start/goal pairs no training episode used.
4. One AgentEvol iteration: the cloned agent plays the test tasks (its BC row), explores the whole
   train split with sampling (the tasks it saw and those it did not), the successes are kept, the
   base model is trained again on the expert data plus the kept trajectories, the policy reloads
   the new weights, and the test tasks are played again.
The table at the end compares them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from agentgym.client import EnvClient
from agentgym.client.policies import Sampling, make_policy
from agentgym.client.rollout import FileSink, Rollout, RolloutConfig
from agentgym.client.tasks import expand
from agentgym.client.trajectory import read_jsonl
from agentgym.server.app import Server
from agentgym.server.config import ServerConfig
from agentgym.trainer.bc import BCConfig, train
from agentgym.trainer.evol import AgentEvol, EvolConfig


async def play(client: EnvClient, policy_name: str, tasks: list[int], out: Path) -> list[dict]:  # type: ignore[type-arg]
    policy = make_policy(policy_name, sampling=Sampling(0.0, 1.0, 64), seed=1)
    policy.prepare(await client.envs())
    await policy.start()
    try:
        await Rollout(client, policy, RolloutConfig(concurrency=64, progress=False), [FileSink(out)]).run(
            expand({"maze": tasks})
        )
    finally:
        await policy.close()
    return list(read_jsonl(out))


def success(records: list[dict], tasks: set[int]) -> float:  # type: ignore[type-arg]
    rs = [r for r in records if r["task_id"] in tasks]
    return sum(r["success"] for r in rs) / max(1, len(rs))


async def main(args: argparse.Namespace) -> None:
    console = Console(width=120)
    out = Path(args.out)
    t0 = time.time()
    server = await Server.start(ServerConfig(port=0, envs=["maze"], idle_timeout_s=0))
    try:
        async with EnvClient(f"127.0.0.1:{server.port}") as client:
            info = await client.env_info("maze")
            train_tasks, test_tasks = info.tasks("train"), info.tasks("test")
            original, held_out = set(info.tasks("original")), set(info.tasks("held_out"))
            console.print(
                f"maze: {len(train_tasks)} train tasks, {len(test_tasks)} test tasks ({len(original)} original, {len(held_out)} held out)"
            )

            expert_data = out / "expert_train.jsonl"
            bc_tasks = sorted(
                random.Random(args.seed).sample(train_tasks, min(args.bc_tasks, len(train_tasks)))
            )
            await play(client, "expert", bc_tasks, expert_data)
            console.print(
                f"[{time.time() - t0:5.0f}s] expert data: {len(list(read_jsonl(expert_data)))} trajectories"
            )

            bc = await asyncio.to_thread(
                train,
                BCConfig(
                    data=[str(expert_data)],
                    out=str(out / "bc"),
                    init=args.size,
                    epochs=args.epochs,
                    lr=args.lr,
                    max_tokens=args.max_tokens,
                    progress=False,
                    seed=args.seed,
                ),
            )
            console.print(
                f"[{time.time() - t0:5.0f}s] behaviour cloning: {bc.steps} steps, loss {bc.first_loss:.2f} -> {bc.last_loss:.3f}, "
                f"{bc.tokens_per_s:,.0f} tokens/s"
            )

            results = {}
            for name in ("random", "expert"):
                records = await play(client, name, test_tasks, out / f"test_{name}.jsonl")
                results[name] = records
                console.print(
                    f"[{time.time() - t0:5.0f}s] {name}: {success(records, set(test_tasks)):.1%} on the test tasks"
                )

            evol = AgentEvol(
                EvolConfig(
                    envs=["maze"],
                    bc_data=[str(expert_data)],
                    out=str(out / "evol"),
                    base=f"init:{args.size}",
                    agent=str(bc.final),
                    iterations=1,
                    explore_episodes=args.explore,
                    explore_temperature=0.7,
                    eval_tasks=len(test_tasks),
                    max_new_tokens=64,
                    seed=args.seed,
                    progress=False,
                    bc={"epochs": args.epochs, "lr": args.lr, "max_tokens": args.max_tokens},
                ),
                client,
            )
            (report,) = await evol.run()
            for name, tag in (("BC (from scratch)", "agent-0"), ("BC + 1 AgentEvol iteration", "iter-1")):
                results[name] = list(read_jsonl(out / "evol" / "eval" / tag / "trajectories.jsonl"))
            new = len(set(train_tasks) - set(bc_tasks))
            console.print(
                f"[{time.time() - t0:5.0f}s] AgentEvol: kept {report.kept_total} of {sum(report.explored.values())} "
                f"explored ({new} train tasks had no expert data); BC {report.success_before['maze']:.1%}, "
                f"after {report.success_after['maze']:.1%} on the test tasks"
            )
    finally:
        await server.stop(0)

    table = Table(title=f"Maze, held-out evaluation ({time.time() - t0:.0f} s on CPU)")
    for col in ("policy", "original 25", "held-out 106", "all test 131"):
        table.add_column(col, justify="left" if col == "policy" else "right")
    summary = {}
    for name, records in results.items():
        row = (success(records, original), success(records, held_out), success(records, set(test_tasks)))
        summary[name] = row
        table.add_row(name, *(f"{x:.1%}" for x in row))
    console.print(table)
    (out / "results.json").write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default="runs/demo-maze")
    parser.add_argument(
        "--bc-tasks",
        type=int,
        default=212,
        help="train tasks with expert data (of 425); AgentEvol explores all",
    )
    parser.add_argument("--size", choices=["tiny", "mini", "small"], default="mini")
    parser.add_argument("--epochs", type=float, default=16)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument(
        "--max-tokens", type=int, default=2048, help="padded tokens per batch: small batches, many updates"
    )
    parser.add_argument(
        "--explore", type=int, default=300, help="exploration episodes in the AgentEvol iteration"
    )
    parser.add_argument("--seed", type=int, default=0)
    arguments = parser.parse_args()
    Path(arguments.out).mkdir(parents=True, exist_ok=True)
    asyncio.run(main(arguments))
