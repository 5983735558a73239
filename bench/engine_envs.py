"""Create latency, steps/s and memory per live episode of the engine-backed envs (SciWorld, ALFWorld),
over a real server on loopback, with each env in its own worker processes.

    .venv/bin/python bench/engine_envs.py [--envs sciworld,alfworld] [--episodes 4]

For each env: create latency with no prewarmed worker (a Python worker starts, imports the engine,
starts the JVM for SciWorld, loads the task) and with one (load only); steps/s of one episode and
of `--episodes` concurrent ones, replaying expert actions recorded first (so the expert's cost is
not counted); resident memory of each live episode's worker process tree.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time

import psutil

from agentgym.client.envclient import EnvClient, Episode
from agentgym.envs import registry
from agentgym.server.app import Server
from agentgym.server.config import ServerConfig

# Tasks whose expert solution is long enough to time steps: (env, task ids).
TASKS = {
    "sciworld": [4, 2000, 3370, 3900],  # boil, test-conductivity, find-non-living-thing, find-animal
    "alfworld": [0, 1369, 2000, 2420],  # bedroom look-at, kitchen cool/heat, kitchen cool
}


async def record(client: EnvClient, env: str, task_id: int, limit: int = 30) -> list[str]:
    async with client.episode(env, task_id) as ep:
        actions = []
        while not ep.over and len(actions) < limit:
            action = await ep.expert()
            await ep.step(action)
            actions.append(action)
    return actions


def tree_rss_mb(pid: int) -> float:
    proc = psutil.Process(pid)
    procs = [proc, *proc.children(recursive=True)]
    return sum(p.memory_info().rss for p in procs) / 2**20


async def replay(ep: Episode, actions: list[str]) -> tuple[int, float]:
    t = time.perf_counter()
    n = 0
    for action in actions:
        if ep.over:
            break
        await ep.step(action)
        n += 1
    return n, time.perf_counter() - t


async def bench_env(env: str, episodes: int) -> None:
    cls = registry.configure(env)
    tasks = TASKS[env]
    print(f"\n== {env}: execution={cls.execution}, max_episodes={cls.max_episodes}")

    # Cold creates: no prewarmed worker.
    srv = await Server.start(ServerConfig(port=0, envs=[env], prewarm=0, step_timeout_s=300))
    async with EnvClient(f"127.0.0.1:{srv.port}") as client:
        cold = []
        for task_id in tasks[:2]:
            t = time.perf_counter()
            ep = await client.open_episode(env, task_id)
            cold.append(time.perf_counter() - t)
            await ep.close()
        actions = {task_id: await record(client, env, task_id) for task_id in tasks}
    await srv.stop(0)
    print(
        f"create, cold worker:       {statistics.mean(cold):.2f} s  ({', '.join(f'{x:.2f}' for x in cold)})"
    )

    srv = await Server.start(ServerConfig(port=0, envs=[env], prewarm=1, step_timeout_s=300))
    async with EnvClient(f"127.0.0.1:{srv.port}") as client:
        warm = []
        for task_id in tasks:
            await asyncio.sleep(8)  # let the next worker finish starting
            t = time.perf_counter()
            ep = await client.open_episode(env, task_id)
            warm.append(time.perf_counter() - t)
            await ep.close()
        print(
            f"create, prewarmed worker:  {statistics.mean(warm):.2f} s  ({', '.join(f'{x:.2f}' for x in warm)})"
        )

        # One episode at a time.
        steps = seconds = 0.0
        for task_id in tasks:
            async with client.episode(env, task_id) as ep:
                n, dt = await replay(ep, actions[task_id])
            steps, seconds = steps + n, seconds + dt
        print(f"steps/s, one episode:      {steps / seconds:.1f}  ({int(steps)} steps)")

        # Concurrent episodes, and their memory while live.
        eps = [await client.open_episode(env, tasks[i % len(tasks)]) for i in range(episodes)]
        t = time.perf_counter()
        results = await asyncio.gather(*(replay(ep, actions[ep.task_id]) for ep in eps))
        dt = time.perf_counter() - t
        total = sum(n for n, _ in results)
        live = [s for s in srv.service.sessions if s.runner is not None]
        rss = [tree_rss_mb(s.runner.proc.pid) for s in live]  # type: ignore[attr-defined]
        print(f"steps/s, {episodes} concurrent:     {total / dt:.1f}  ({total} steps)")
        print(
            f"memory per live episode:   {statistics.mean(rss):.0f} MB mean, {max(rss):.0f} MB max "
            f"(worker process tree RSS, {len(rss)} episodes)"
        )
        for ep in eps:
            await ep.close()
    await srv.stop(0)


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--envs", default="sciworld,alfworld")
    p.add_argument("--episodes", type=int, default=4)
    args = p.parse_args()
    print(
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}, "
        f"{psutil.virtual_memory().available / 2**30:.1f} GiB available"
    )
    for env in args.envs.split(","):
        await bench_env(env, args.episodes)


if __name__ == "__main__":
    asyncio.run(main())
