"""WebArena env: steps/s at N concurrent episodes and memory per live episode, over a real server.

    .venv/bin/python bench/webarena.py [--concurrency 1,8,20] [--steps 10] [--live 1,20]

The env runs against its built-in sites (started by the env, in a child process). Steps are the
agent's cheapest real work on a page: alternately `scroll [down]` and `scroll [up]` on a product
listing, each answered with a fresh accessibility-tree observation (CDP round trips and rendering),
plus one navigation (`goto`) per episode; creates (context, login, start page) are timed apart. Memory: the resident set of the server process, the
Playwright driver and every Chromium process (the built-in sites' process excluded), with N live
episodes (browser contexts) open and idle, divided by N; and the marginal cost of one more
episode between the two levels. PSS (shared pages split between the processes that map them) is
printed next to RSS because Chromium's processes share a lot: RSS sums count it once per process.
The original runs one browser per env worker, about 1 GB each (AgentGym's WebArena server); the
ratio is printed against that figure.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time

import psutil

from agentgym.client.envclient import EnvClient, Episode
from agentgym.envs.webarena.builtin_tasks import builtin_tasks
from agentgym.server.app import Server
from agentgym.server.config import ServerConfig

ORIGINAL_MB_PER_ENV = 1024.0


def browser_tree_mb() -> tuple[float, float, int]:
    """(RSS MB, PSS MB, Chromium process count) of this process, its Playwright driver and its
    Chromium processes, leaving out the built-in sites' Python process."""
    me = psutil.Process(os.getpid())
    procs = [me]
    chromium = 0
    for child in me.children(recursive=True):
        try:
            cmd = " ".join(child.cmdline())
        except psutil.Error:
            continue
        if "agentgym.envs.webarena.sites" in cmd:
            continue
        procs.append(child)
        chromium += "chrom" in child.name().lower()
    rss = pss = 0.0
    for p in procs:
        try:
            info = p.memory_full_info()
        except psutil.Error:
            continue
        rss += info.rss
        pss += getattr(info, "pss", info.rss)
    return rss / 2**20, pss / 2**20, chromium


def listing_task() -> int:
    """A shop task that starts on the home page (a page with a listing to scroll)."""
    for t in builtin_tasks():
        if t["sites"] == ["shopping"] and not t["require_login"]:
            return int(t["task_id"])
    raise SystemExit("no built-in shopping task without login")


async def steps_per_second(
    client: EnvClient, task_id: int, concurrency: int, steps: int
) -> tuple[float, float]:
    """(steps/s, mean seconds per create) of `concurrency` concurrent episodes; the episodes are
    all created first, so steps/s counts steps only."""
    creates: list[float] = []

    async def create() -> Episode:
        t0 = time.perf_counter()
        ep = await client.open_episode("webarena", task_id)
        creates.append(time.perf_counter() - t0)
        return ep

    eps = await asyncio.gather(*(create() for _ in range(concurrency)))

    async def run(ep: Episode) -> int:
        await ep.step(f"goto [{ep.last.info['url']}]")
        for i in range(steps - 1):
            await ep.step("scroll [down]" if i % 2 == 0 else "scroll [up]")
        return steps

    try:
        t0 = time.perf_counter()
        done = sum(await asyncio.gather(*(run(ep) for ep in eps)))
        elapsed = time.perf_counter() - t0
    finally:
        for ep in eps:
            await ep.close()
    return done / elapsed, sum(creates) / len(creates)


async def memory_at(client: EnvClient, task_id: int, live: int) -> tuple[float, float]:
    """(RSS, PSS) MB of the browser tree with `live` episodes open."""
    eps = [await client.open_episode("webarena", task_id) for _ in range(live)]
    try:
        await asyncio.sleep(1.0)  # let the pages settle (layout, images) before measuring
        rss, pss, _ = browser_tree_mb()
    finally:
        for ep in eps:
            await ep.close()
    return rss, pss


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--concurrency", default="1,8,20", help="comma-separated concurrent episodes")
    ap.add_argument("--steps", type=int, default=10, help="steps per episode")
    ap.add_argument("--live", default="1,20", help="two numbers of live episodes for the memory figure")
    args = ap.parse_args()
    levels = [int(x) for x in args.concurrency.split(",")]
    low, high = (int(x) for x in args.live.split(","))

    t0 = time.perf_counter()
    srv = await Server.start(ServerConfig(port=0, envs=["webarena"], grace_s=0.0, step_timeout_s=60.0))
    print(f"server with webarena in {time.perf_counter() - t0:.1f} s")
    task_id = listing_task()
    try:
        async with EnvClient(f"127.0.0.1:{srv.port}") as client:
            # The browser launches with the first episode: not counted below.
            t0 = time.perf_counter()
            async with client.episode("webarena", task_id):
                pass
            print(
                f"first episode (built-in sites + browser launch + context + page): {time.perf_counter() - t0:.2f} s"
            )
            idle_rss, idle_pss, n_chromium = browser_tree_mb()
            print(
                f"browser idle (0 contexts): RSS {idle_rss:.0f} MB, PSS {idle_pss:.0f} MB, {n_chromium} Chromium processes"
            )

            print(f"\n{'episodes':>9} {'steps/s':>9} {'create s':>9}")
            for c in levels:
                sps, create = await steps_per_second(client, task_id, c, args.steps)
                print(f"{c:>9} {sps:>9.1f} {create:>9.2f}")

            rss_low, pss_low = await memory_at(client, task_id, low)
            rss_high, pss_high = await memory_at(client, task_id, high)
    finally:
        await srv.stop(0)

    marg_rss = (rss_high - rss_low) / (high - low)
    marg_pss = (pss_high - pss_low) / (high - low)
    print(f"\n{'live':>5} {'RSS MB':>8} {'RSS/ep':>8} {'PSS MB':>8} {'PSS/ep':>8}")
    print(f"{low:>5} {rss_low:>8.0f} {rss_low / low:>8.0f} {pss_low:>8.0f} {pss_low / low:>8.0f}")
    print(f"{high:>5} {rss_high:>8.0f} {rss_high / high:>8.0f} {pss_high:>8.0f} {pss_high / high:>8.0f}")
    print(f"marginal per extra episode: RSS {marg_rss:.0f} MB, PSS {marg_pss:.0f} MB")
    per_ep = pss_high / high
    print(
        f"\nper live episode at {high}: {per_ep:.0f} MB (PSS, browser and server shared) vs the original's "
        f"~{ORIGINAL_MB_PER_ENV:.0f} MB per env: {ORIGINAL_MB_PER_ENV / per_ep:.1f}x less "
        f"(RSS sum: {rss_high / high:.0f} MB, {ORIGINAL_MB_PER_ENV / (rss_high / high):.1f}x less; target >= 5x)"
    )


if __name__ == "__main__":
    asyncio.run(main())
