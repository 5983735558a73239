"""Benchmark: the client's own cost per agent turn, with thousands of concurrent episodes.

    python bench/rollout_overhead.py                      # 4,096 episodes, 5 s +-20% policy delay
    python bench/rollout_overhead.py --episodes 1024 --delay 0.5

A policy that answers after a fixed delay (+-jitter, so episodes do not move in lockstep; costing no CPU) plays Maze episodes of `rounds` turns
against an env server in another process. Two policies, side by side in one run:
- `delay`: text in, text out, in this process (the rollout engine, ReAct loop and gRPC client);
- `sglang`: the real SGLang client over HTTP to a stand-in server (bench/fake_sglang.py) that
  answers after the same delay, with token-exact bookkeeping on a real tokenizer.
Client CPU per turn = this process's CPU time / turns (the env and policy servers are other
processes). Wall time is compared with what the delay alone implies: the longest episode's total
policy delay, i.e. the expected maximum over `episodes` episodes of a sum of `rounds` jittered delays
(rounds x delay without jitter; computed by simulation).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from agentgym.client import EnvClient, Episode
from agentgym.client.policies.base import Policy, Turn
from agentgym.client.policies.chat import Conversation
from agentgym.client.policies.sglang import SGLangPolicy
from agentgym.client.rollout import FileSink, Rollout, RolloutConfig
from agentgym.client.tasks import expand

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from fabric import AGENTGYM, free_port, wait_ready  # noqa: E402


class DelayPolicy(Policy):
    name = "delay"

    def __init__(self, delay_s: float, jitter: float) -> None:
        self.delay_s = delay_s
        self.jitter = jitter
        self.rng = random.Random(0)

    async def act(self, conversation: Conversation, episode: Episode) -> Turn:
        await asyncio.sleep(self.delay_s * self.rng.uniform(1 - self.jitter, 1 + self.jitter))
        return Turn("Thought:\nI will go up.\n\nAction:\nmove up", completion_tokens=12)


async def measure(address: str, policy: Policy, episodes: int, rounds: int, out: Path) -> dict[str, float]:
    async with EnvClient(address) as client:
        await policy.start()
        cfg = RolloutConfig(
            concurrency=episodes, max_rounds={"maze": rounds}, progress=False, episode_timeout_s=None
        )
        n = (await client.env_info("maze")).task_count
        specs = expand({"maze": list(range(n))}, samples=-(-episodes // n))[:episodes]
        # Warm up (imports, first-use caches) before measuring.
        await Rollout(client, policy, RolloutConfig(progress=False), []).run(
            expand({"maze": [0]}, samples=2, seed=99)
        )
        cpu0, wall0 = time.process_time(), time.perf_counter()
        summary = await Rollout(client, policy, cfg, [FileSink(out)]).run(specs)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        await policy.close()
    turns = summary.steps
    return {
        "episodes": summary.finished,
        "failed": summary.failed,
        "turns": turns,
        "cpu_us": cpu / max(1, turns) * 1e6,
        "wall": wall,
    }


def delay_bound(episodes: int, rounds: int, delay: float, jitter: float, trials: int = 20) -> float:
    """Expected wall time of the run if the client and env cost nothing: the slowest episode's delays."""
    rng = random.Random(1)
    lo, hi = delay * (1 - jitter), delay * (1 + jitter)
    total = 0.0
    for _ in range(trials):
        total += max(sum(rng.uniform(lo, hi) for _ in range(rounds)) for _ in range(episodes))
    return total / trials


async def run(args: argparse.Namespace, env_port: int, policy_port: int, model: str) -> None:
    await wait_ready(f"127.0.0.1:{env_port}")
    ideal = delay_bound(args.episodes, args.rounds, args.delay, args.jitter)
    table = Table(
        title=f"Client overhead: {args.episodes:,} concurrent Maze episodes x {args.rounds} turns, policy delay {args.delay:g}s"
    )
    for col in (
        "policy",
        "episodes",
        "turns",
        "client CPU us/turn",
        "wall s",
        "ideal s",
        "wall / ideal",
        "failed",
    ):
        table.add_column(col, justify="right")
    with tempfile.TemporaryDirectory() as tmp:
        for name, policy in (
            ("delay", DelayPolicy(args.delay, args.jitter)),
            ("sglang", SGLangPolicy(f"http://127.0.0.1:{policy_port}", model)),
        ):
            for _ in range(60):
                try:
                    r = await measure(
                        f"127.0.0.1:{env_port}",
                        policy,
                        args.episodes,
                        args.rounds,
                        Path(tmp) / f"{name}.jsonl",
                    )
                    break
                except Exception:  # the stand-in server may still be loading
                    if name != "sglang":
                        raise
                    await asyncio.sleep(1)
            table.add_row(
                name,
                f"{r['episodes']:,}",
                f"{r['turns']:,}",
                f"{r['cpu_us']:.0f}",
                f"{r['wall']:.1f}",
                f"{ideal:.1f}",
                f"{r['wall'] / ideal:.2f}",
                str(r["failed"]),
            )
    Console(width=160).print(table)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--episodes", type=int, default=4096)
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--delay", type=float, default=5.0, help="mean seconds per policy answer")
    p.add_argument(
        "--jitter", type=float, default=0.2, help="answers take delay x uniform(1-jitter, 1+jitter)"
    )
    p.add_argument("--model", default=None, help="tokenizer directory (default: a tiny one built now)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model
        if model is None:
            from agentgym.trainer.tiny import save

            model = str(save(Path(tmp) / "tiny"))
        env_port, policy_port = free_port(), free_port()
        server = subprocess.Popen(
            [
                AGENTGYM,
                "--log-level",
                "warning",
                "serve",
                "--port",
                str(env_port),
                "--envs",
                "maze",
                "--idle-timeout",
                "0",
            ]
        )
        fake = subprocess.Popen(
            [
                sys.executable,
                str(HERE / "fake_sglang.py"),
                str(policy_port),
                model,
                str(args.delay),
                str(args.jitter),
            ]
        )
        try:
            asyncio.run(run(args, env_port, policy_port, model))
        finally:
            for proc in (server, fake):
                proc.terminate()
                proc.wait(15)


if __name__ == "__main__":
    main()
