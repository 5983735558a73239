"""Python-heap growth of an env server per episode churned, by allocation site (tracemalloc).

    python bench/heap_growth.py                 # 4,000 warm-up episodes, then 6,000 and 12,000 more
    python bench/heap_growth.py --warmup 2000 --runs 5000,20000

Runs `maze` and `wordle` in a server and an EnvClient in this one process (so sites of both show),
with 256 episodes at once, up to 3 steps each and 1 in 20 streams dropped (cancelled) mid-episode.
For each run size it starts a fresh server, churns the warm-up, snapshots the heap, churns the run,
snapshots again, and prints the growth and its largest sites. Growth that does not scale with the
run size is objects in flight or caches, not a leak; bench/soak.py measures RSS, which also holds
what the allocators keep after peaks.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import tracemalloc

from agentgym.client import EnvClient
from agentgym.server.app import Server
from agentgym.server.config import ServerConfig

ACTIONS = {"maze": "move up", "wordle": "c r a n e"}


async def churn(client: EnvClient, n: int, at_once: int = 256) -> None:
    gate = asyncio.Semaphore(at_once)

    async def one(i: int) -> None:
        env = "maze" if i % 2 else "wordle"
        async with gate:
            try:
                if i % 20 == 0:  # a dropped stream: the client cancels it mid-episode
                    ep = await client.open_episode(env, i % 100)
                    await ep.step(ACTIONS[env])
                    assert ep.call is not None
                    ep.call.cancel()
                    return
                async with client.episode(env, i % 100) as ep:
                    for _ in range(3):
                        if (await ep.step(ACTIONS[env])).over:
                            break
            except Exception:  # a dropped stream's own error, or one it caused: expected here
                pass

    await asyncio.gather(*(one(i) for i in range(n)))


async def measure(warmup: int, episodes: int, top: int) -> None:
    srv = await Server.start(ServerConfig(host="127.0.0.1", port=0, envs=["maze", "wordle"]))
    try:
        async with EnvClient(f"127.0.0.1:{srv.port}") as client:
            await churn(client, warmup)
            await asyncio.sleep(2)
            gc.collect()
            tracemalloc.start(10)
            before = tracemalloc.take_snapshot()
            await churn(client, episodes)
            await asyncio.sleep(3)
            gc.collect()
            after = tracemalloc.take_snapshot()
            tracemalloc.stop()
        skip = [tracemalloc.Filter(False, tracemalloc.__file__)]
        stats = after.filter_traces(skip).compare_to(before.filter_traces(skip), "traceback")
        total = sum(s.size_diff for s in stats) / 1024
        print(f"{episodes:,} episodes after {warmup:,}: heap {total:+.1f} KiB "
              f"({total * 1024 / episodes:+.1f} bytes per episode); streams left {len(srv.service.sessions)}, "
              f"live {srv.service.capacity.live}")  # fmt: skip
        for s in stats[:top]:
            frame = s.traceback[-1]
            print(
                f"  {s.size_diff / 1024:+8.1f} KiB {s.count_diff:+6d} blocks  {frame.filename}:{frame.lineno}"
            )
    finally:
        await srv.stop(0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--warmup", type=int, default=4000, help="episodes before the first snapshot")
    p.add_argument("--runs", default="6000,12000", help="episodes between the snapshots, one run each")
    p.add_argument("--top", type=int, default=8, help="allocation sites shown per run")
    args = p.parse_args()
    for n in (int(x) for x in args.runs.split(",")):
        asyncio.run(measure(args.warmup, n, args.top))


if __name__ == "__main__":
    main()
