"""WebShop numbers: catalog build time, steps/s in process and over a server, memory per episode.

    .venv/bin/python bench/webshop.py [--tasks 300] [--episodes 1000] [--concurrency 32]

Everything runs on this machine; the server is a real `agentgym serve` process on a loopback
port, so its RSS is measured alone.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import socket
import sys
import tempfile
import time
from pathlib import Path

import psutil

from agentgym.client.envclient import EnvClient
from agentgym.client.errors import AgentGymError
from agentgym.envs import registry
from agentgym.envs.webshop import generate, store


def build_time() -> tuple[float, float, int]:
    t0 = time.perf_counter()
    products, goals = generate.generate()
    t1 = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "catalog.sqlite"
        store.write_database(path, products, goals, "bench")
        t2 = time.perf_counter()
        size = path.stat().st_size
    return t1 - t0, t2 - t1, size


def in_process(tasks: list[int]) -> tuple[int, float]:
    env = registry.make("webshop")
    steps, t0 = 0, time.perf_counter()
    for task in tasks:
        env.reset(task, task, {})
        for _ in range(env.max_rounds):
            steps += 1
            if env.step(env.expert_action()).done:
                break
    return steps, time.perf_counter() - t0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _connect(port: int) -> EnvClient:
    client = EnvClient(f"127.0.0.1:{port}")
    for _ in range(600):
        try:
            await client.env_info("webshop")
            return client
        except AgentGymError:
            await asyncio.sleep(0.1)
    raise RuntimeError("server did not start")


async def over_server(port: int, tasks: list[int], concurrency: int) -> tuple[int, float]:
    client = await _connect(port)
    queue = list(tasks)
    steps = 0

    async def worker() -> None:
        nonlocal steps
        while queue:
            task = queue.pop()
            async with client.episode("webshop", task) as ep:
                while not ep.over:
                    await ep.step(await ep.expert())
                    steps += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - t0
    await client.close()
    return steps, elapsed


async def memory(port: int, server: psutil.Process, n: int) -> tuple[float, float, float]:
    """(RSS MB with no episode, KB per episode on the search page, KB per episode on a product page)."""
    client = await _connect(port)
    await asyncio.sleep(0.5)
    base = server.memory_info().rss
    episodes = [await client.open_episode("webshop", i) for i in range(n)]
    opened = server.memory_info().rss
    # The same query for all, so the shared search and product caches do not count per episode.
    for ep in episodes:
        await ep.step("search[water bottle]")
        await ep.step(f"click[{ep.last.available_actions[2][6:-1]}]")
    browsing = server.memory_info().rss
    for ep in episodes:
        await ep.close()
    await client.close()
    return base / 2**20, (opened - base) / n / 1024, (browsing - base) / n / 1024


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--tasks", type=int, default=300)
    ap.add_argument("--episodes", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=32)
    args = ap.parse_args()

    gen_s, write_s, size = build_time()
    print(f"catalog build: generate {gen_s:.2f}s + index {write_s:.2f}s, {size / 2**20:.1f} MB")
    t0 = time.perf_counter()
    registry.configure("webshop")
    print(f"configure (cached catalog): {time.perf_counter() - t0:.2f}s")

    rng = random.Random(0)
    cold = rng.sample(range(12000), args.tasks)
    steps, secs = in_process(cold)
    print(f"in-process expert, new searches: {steps} steps in {secs:.2f}s = {steps / secs:.0f} steps/s")
    steps, secs = in_process(cold)
    print(f"in-process expert, cached searches: {steps} steps in {secs:.2f}s = {steps / secs:.0f} steps/s")

    port = _free_port()
    cli = Path(sys.executable).parent / "agentgym"
    proc = psutil.Popen([str(cli), "serve", "--port", str(port), "--envs", "webshop", "--grace", "0"])
    try:
        other = rng.sample(range(12000), args.tasks)
        steps, secs = asyncio.run(over_server(port, other, args.concurrency))
        print(
            f"server expert, new searches, {args.concurrency} clients: {steps} steps in {secs:.2f}s"
            f" = {steps / secs:.0f} steps/s"
        )
        steps, secs = asyncio.run(over_server(port, other, args.concurrency))
        print(f"server expert, cached searches: {steps} steps in {secs:.2f}s = {steps / secs:.0f} steps/s")
        base, search_kb, item_kb = asyncio.run(memory(port, proc, args.episodes))
        print(
            f"server RSS {base:.0f} MB; per live episode: {search_kb:.1f} KB on the search page,"
            f" {item_kb:.1f} KB after a search and a product page ({args.episodes} episodes)"
        )
    finally:
        proc.terminate()
        proc.wait(30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
