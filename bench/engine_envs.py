"""Create latency, steps/s and memory per live episode of the engine-backed envs (SciWorld, ALFWorld),
over a real server on loopback, with each env in its own worker processes.

    .venv/bin/python bench/engine_envs.py [--envs sciworld,alfworld] [--episodes 4]

For each env: create latency with no prewarmed worker (a Python worker starts, imports the engine,
starts the JVM for SciWorld, loads the task) and with one (load only); steps/s of one episode and
of `--episodes` concurrent ones, replaying expert actions recorded first `--repeat` times (so the
expert's cost is not counted, and the JVM's JIT warms up); resident memory of each live episode's
worker process tree, after an expert run (SciWorld's gold path generated) and after replays.
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


async def record(srv: Server, client: EnvClient, env: str, task_id: int) -> tuple[list[str], float]:
    """The expert's actions for a task (at most 30), and the episode's memory at the end."""
    async with client.episode(env, task_id) as ep:
        actions = []
        while not ep.over and len(actions) < 30:
            action = await ep.expert()
            await ep.step(action)
            actions.append(action)
        (session,) = [s for s in srv.service.sessions if s.episode_id == ep.episode_id]
        rss = tree_rss_mb(session.runner.proc.pid)  # type: ignore[union-attr]
    return actions, rss


def tree_rss_mb(pid: int) -> float:
    proc = psutil.Process(pid)
    procs = [proc, *proc.children(recursive=True)]
    return sum(p.memory_info().rss for p in procs) / 2**20


async def replay(ep: Episode, actions: list[str], repeat: int) -> tuple[int, float]:
    """Steps and seconds (resets not counted) of playing `actions` `repeat` times from the start."""
    n, seconds = 0, 0.0
    for i in range(repeat):
        if i:
            await ep.reset(ep.task_id)
        t = time.perf_counter()
        for action in actions:
            if ep.over:
                break
            await ep.step(action)
            n += 1
        seconds += time.perf_counter() - t
    return n, seconds


async def bench_env(env: str, episodes: int, repeat: int) -> None:
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
        recorded = {task_id: await record(srv, client, env, task_id) for task_id in tasks}
        actions = {task_id: a for task_id, (a, _) in recorded.items()}
    await srv.stop(0)
    print(
        f"create, cold worker:       {statistics.mean(cold):.2f} s  ({', '.join(f'{x:.2f}' for x in cold)})"
    )
    after_expert = [rss for _, rss in recorded.values()]
    print(
        f"memory after expert run:   {statistics.mean(after_expert):.0f} MB mean, {max(after_expert):.0f} MB max"
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
                n, dt = await replay(ep, actions[task_id], repeat)
            steps, seconds = steps + n, seconds + dt
        print(f"steps/s, one episode:      {steps / seconds:.1f}  ({int(steps)} steps, resets not counted)")

        # Concurrent episodes, and their memory while live. Their resets overlap other episodes'
        # steps, so this is whole-episode throughput: resets counted.
        eps = [await client.open_episode(env, tasks[i % len(tasks)]) for i in range(episodes)]
        t = time.perf_counter()
        results = await asyncio.gather(*(replay(ep, actions[ep.task_id], repeat) for ep in eps))
        wall = time.perf_counter() - t
        total = sum(n for n, _ in results)
        live = [s for s in srv.service.sessions if s.runner is not None]
        rss = [tree_rss_mb(s.runner.proc.pid) for s in live]  # type: ignore[attr-defined]
        print(
            f"{episodes} concurrent episodes:     {total / wall:.1f} steps/s, "
            f"{episodes * repeat / wall:.2f} episodes/s (resets included; {total} steps)"
        )
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
    p.add_argument("--episodes", type=int, default=4, help="concurrent episodes")
    p.add_argument("--repeat", type=int, default=3, help="times each episode replays its actions")
    args = p.parse_args()
    print(
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}, "
        f"{psutil.virtual_memory().available / 2**30:.1f} GiB available"
    )
    for env in args.envs.split(","):
        await bench_env(env, args.episodes, args.repeat)


if __name__ == "__main__":
    asyncio.run(main())
