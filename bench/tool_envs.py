"""Throughput and memory of the tool-use envs (weather, movie, academia, sheet, todo).

    python bench/tool_envs.py [--envs weather,sheet] [--seconds 5] [--concurrency 32] [--live 200]

For each env: expert traces of its test tasks are recorded first, then replayed
- in process: reset + steps on one env object (steps/s, resets included);
- over a real server on a loopback port (client and server in this process): `--concurrency`
  episodes at once, each create + replayed steps + close (steps/s and episodes/s);
- memory: a fresh process holds `--live` episodes open (reset, one step) and reports the growth of
  its resident memory and of its Python heap (tracemalloc) per live episode.
Numbers on a shared 2-core machine are noisy; compare runs taken together.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import subprocess
import sys
import time

ENVS = ["weather", "movie", "academia", "sheet", "todo"]


def traces(name: str, limit: int = 40) -> list[tuple[int, list[str]]]:
    from agentgym.envs import registry

    env = registry.make(name)
    out = []
    for task_id in range(min(limit, env.splits["test"][0].stop)):
        env.reset(task_id, task_id, {})
        actions = []
        for _ in range(env.max_rounds):
            a = env.expert_action()
            actions.append(a)
            if env.step(a).done:
                break
        out.append((task_id, actions))
    env.close()
    return out


def in_process(name: str, recorded: list[tuple[int, list[str]]], seconds: float) -> float:
    from agentgym.envs import registry

    env = registry.make(name)
    steps, start = 0, time.perf_counter()
    for task_id, actions in itertools.cycle(recorded):
        env.reset(task_id, task_id, {})
        for a in actions:
            env.step(a)
        steps += len(actions)
        if time.perf_counter() - start > seconds:
            break
    env.close()
    return steps / (time.perf_counter() - start)


async def over_server(
    name: str, recorded: list[tuple[int, list[str]]], seconds: float, concurrency: int
) -> tuple[float, float]:
    from agentgym.client.envclient import EnvClient
    from agentgym.server.app import Server
    from agentgym.server.config import ServerConfig

    srv = await Server.start(ServerConfig(port=0, envs=[name], grace_s=0))
    steps = episodes = 0
    deadline = time.perf_counter() + seconds
    start = time.perf_counter()
    async with EnvClient(f"127.0.0.1:{srv.port}") as client:

        async def worker(k: int) -> None:
            nonlocal steps, episodes
            for task_id, actions in itertools.islice(itertools.cycle(recorded), k, None):
                if time.perf_counter() > deadline:
                    return
                async with client.episode(name, task_id) as ep:
                    await ep.step_many(actions)
                steps += len(actions)
                episodes += 1

        await asyncio.gather(*(worker(k) for k in range(concurrency)))
    elapsed = time.perf_counter() - start
    await srv.stop(0)
    return steps / elapsed, episodes / elapsed


MEMORY_PROBE = """
import json, sys
from agentgym.envs import registry
def rss():
    for line in open('/proc/self/status'):
        if line.startswith('VmRSS:'):
            return int(line.split()[1]) * 1024
name, live = sys.argv[1], int(sys.argv[2])
cls = registry.configure(name)
warm = registry.make(name)
for i in range(20):
    warm.reset(i, i, {}); warm.step(warm.expert_action())
import tracemalloc
tracemalloc.start()
before, heap = rss(), tracemalloc.get_traced_memory()[0]
envs = []
for i in range(live):
    e = registry.make(name)
    e.reset(i % 20, i, {})
    e.step(e.expert_action())
    envs.append(e)
after, heap_after = rss(), tracemalloc.get_traced_memory()[0]
print(json.dumps({"rss": (after - before) / live, "heap": (heap_after - heap) / live}))
for e in envs:
    e.close()
"""


def memory(name: str, live: int) -> tuple[float, float]:
    """(resident bytes, Python heap bytes) per live episode, in a fresh process."""
    out = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE, name, str(live)], capture_output=True, text=True, check=True
    )
    doc = json.loads(out.stdout.strip().splitlines()[-1])
    return doc["rss"], doc["heap"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--envs", default=",".join(ENVS))
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--live", type=int, default=200)
    args = ap.parse_args()
    print(
        f"{'env':<10}{'in-process steps/s':>20}{'server steps/s':>16}{'episodes/s':>12}"
        f"{'RSS KiB/episode':>17}{'heap KiB/episode':>18}"
    )
    for name in args.envs.split(","):
        recorded = traces(name)
        local = in_process(name, recorded, args.seconds)
        remote, episodes = asyncio.run(over_server(name, recorded, args.seconds, args.concurrency))
        rss, heap = memory(name, args.live)
        print(
            f"{name:<10}{local:>20.0f}{remote:>16.0f}{episodes:>12.1f}{rss / 1024:>17.1f}{heap / 1024:>18.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
