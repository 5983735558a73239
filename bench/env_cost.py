"""What one env costs: steps/s in-process and over a real server, and server memory per live episode.

    python bench/env_cost.py                    # every env that runs in the server process
    python bench/env_cost.py babyai bird [--seconds 10] [--concurrency 16] [--episodes 200]

(Envs in worker processes, SciWorld and ALFWorld, keep their memory outside the server: measure
them with bench/engine_envs.py.)

In-process: one env instance stepped in a loop. Over the server: `agentgym serve` in its own
process, `--concurrency` episodes stepping at once from this process. Memory: the server's RSS
with one warm episode (fresh server), then with `--episodes` more open (created, reset, idle), divided by their
number. Actions cycle through the available actions (seeded), else the expert's action (envs
without an action list, e.g. bird, whose one step ends the episode: steps/s there is episodes/s).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil

from agentgym.client.envclient import EnvClient
from agentgym.client.errors import AgentGymError
from agentgym.envs import registry


def pick(actions: tuple[str, ...] | list[str], rng: random.Random) -> str | None:
    # "check available actions" changes nothing; leave it out of the mix.
    usable = [a for a in actions if not a.startswith("check")]
    return rng.choice(usable) if usable else None


def in_process(name: str, seconds: float) -> float:
    env = registry.make(name)
    cls = type(env)
    rng = random.Random(0)
    steps, task, deadline = 0, 0, time.perf_counter() + seconds
    start = time.perf_counter()
    while time.perf_counter() < deadline:
        outcome = env.reset(task % cls.task_count, cls.default_seed(task % cls.task_count), {})
        task += 1
        for _ in range(cls.max_rounds):
            action = pick(outcome.available_actions, rng) or env.expert_action()
            outcome = env.step(action)
            steps += 1
            if outcome.done:
                break
    env.close()
    return steps / (time.perf_counter() - start)


async def over_server(address: str, name: str, seconds: float, concurrency: int) -> float:
    async with EnvClient(address) as client:
        info = await client.env_info(name)
        steps = 0
        deadline = time.perf_counter() + seconds

        async def worker(w: int) -> None:
            nonlocal steps
            rng = random.Random(w)
            task = w
            while time.perf_counter() < deadline:
                async with client.episode(name, task % info.task_count) as ep:
                    result = ep.initial
                    while not result.over and time.perf_counter() < deadline:
                        action = pick(result.available_actions, rng) or await ep.expert()
                        result = await ep.step(action)
                        steps += 1
                task += concurrency

        start = time.perf_counter()
        await asyncio.gather(*(worker(w) for w in range(concurrency)))
        return steps / (time.perf_counter() - start)


async def rss_per_episode(address: str, pid: int, name: str, episodes: int, expert: bool) -> float:
    proc = psutil.Process(pid)
    async with EnvClient(address) as client:
        info = await client.env_info(name)
        warm = await client.open_episode(name, 0)
        await asyncio.sleep(0.5)
        before = proc.memory_info().rss
        opened = [await client.open_episode(name, (i + 1) % info.task_count) for i in range(episodes)]
        if expert:  # an expert may keep state per episode (the BabyAI bot does)
            for ep in opened:
                with contextlib.suppress(AgentGymError):  # levels the expert cannot play
                    await ep.expert()
        await asyncio.sleep(0.5)
        after = proc.memory_info().rss
        for ep in [warm, *opened]:
            await ep.close()
    return (after - before) / episodes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "envs", nargs="*", help="default: every registered env that does not run in worker processes"
    )
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--episodes", type=int, default=200)
    p.add_argument(
        "--expert", action="store_true", help="ask each open episode's expert once before measuring"
    )
    args = p.parse_args()
    names = args.envs or [n for n in registry.names() if registry.get(n).execution != "process"]
    for name in names:
        local = in_process(name, args.seconds)
        port = free_port()
        server = subprocess.Popen(
            [str(Path(sys.executable).parent / "agentgym"), "serve", "--port", str(port), "--envs", name],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        address = f"127.0.0.1:{port}"
        try:
            for _ in range(100):  # wait for the server to listen
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    time.sleep(0.2)
            # Memory first, on a fresh server: after a throughput run, freed memory would be reused.
            per_episode = asyncio.run(rss_per_episode(address, server.pid, name, args.episodes, args.expert))
            remote = asyncio.run(over_server(address, name, args.seconds, args.concurrency))
        finally:
            server.terminate()
            server.wait(10)
        print(
            f"{name:<10} in-process {local:8.0f} steps/s   over server ({args.concurrency} concurrent) "
            f"{remote:7.0f} steps/s   RSS per live episode {per_episode / 1024:7.1f} KiB"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
