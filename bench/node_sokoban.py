"""Steps/s of the Node.js server's Sokoban over gRPC from the Python client, against the Python
server's Maze (also inline, microsecond steps) measured in the same run as the baseline.

    .venv/bin/python bench/node_sokoban.py [--seconds 5] [--concurrency 1,16,64,256]

Each server runs as its own process on a free loopback port. N episodes run at once over one
EnvClient; each steps random moves and resets to a new task when its episode ends. Besides
steps/s (bounded here by the Python client), it prints each server's CPU time per step, which is
what the server would cost on a machine where the client is not the bottleneck.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

from agentgym.client.envclient import EnvClient

ROOT = Path(__file__).resolve().parents[1]


def start(cmd: list[str]) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    assert proc.stderr is not None
    for line in proc.stderr:
        doc = json.loads(line)
        if doc.get("event") == "server started":
            # Keep draining its logs so a full pipe never blocks the server.
            threading.Thread(target=proc.stderr.read, daemon=True).start()
            return proc, str(doc["address"])
    raise RuntimeError(f"{cmd[0]} did not start")


async def run(address: str, env: str, actions: list[str], n: int, seconds: float) -> tuple[float, int]:
    steps = 0
    async with EnvClient(address) as client:
        # Task ids come from the server: each env has its own count (Maze 556, Sokoban thousands),
        # and an id past it is refused OUT_OF_RANGE.
        tasks = (await client.env_info(env)).task_count
        deadline = time.monotonic() + seconds

        async def one(i: int) -> None:
            nonlocal steps
            rng = random.Random(i)
            async with client.episode(env, rng.randrange(tasks)) as ep:
                while time.monotonic() < deadline:
                    result = await ep.step(rng.choice(actions))
                    steps += 1
                    if result.over:
                        await ep.reset(rng.randrange(tasks))

        t0 = time.monotonic()
        await asyncio.gather(*(one(i) for i in range(n)))
        return steps / (time.monotonic() - t0), steps


def measure(
    proc: subprocess.Popen[str],
    address: str,
    env: str,
    actions: list[str],
    n: int,
    seconds: float,
) -> tuple[float, float]:
    """(steps/s, server CPU microseconds per step)."""
    server = psutil.Process(proc.pid)
    before = server.cpu_times()
    rate, steps = asyncio.run(run(address, env, actions, n, seconds))
    after = server.cpu_times()
    cpu = (after.user - before.user) + (after.system - before.system)
    return rate, cpu / max(1, steps) * 1e6


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--concurrency", default="1,16,64,256")
    args = p.parse_args()
    node = shutil.which("node")
    if node is None:
        sys.exit("node is not installed")
    servers = [
        start([node, str(ROOT / "envs/node/src/main.js"), "--port", "0", "--envs", "sokoban"]),
        start([str(Path(sys.executable).parent / "agentgym"), "serve", "--port", "0", "--envs", "maze"]),
    ]
    (node_proc, node_address), (py_proc, py_address) = servers
    moves = ["up", "down", "left", "right"]
    print(
        f"{'episodes':>8} {'node sokoban steps/s':>21} {'(server us/step)':>17} "
        f"{'python maze steps/s':>20} {'(server us/step)':>17} {'ratio':>6}"
    )
    try:
        for n in (int(c) for c in args.concurrency.split(",")):
            node_rate, node_us = measure(node_proc, node_address, "sokoban", moves, n, args.seconds)
            py_moves = [f"move {m}" for m in moves]
            py_rate, py_us = measure(py_proc, py_address, "maze", py_moves, n, args.seconds)
            print(
                f"{n:>8} {node_rate:>21.0f} {node_us:>17.0f} {py_rate:>20.0f} {py_us:>17.0f} "
                f"{node_rate / py_rate:>6.2f}"
            )
    finally:
        for proc, _ in servers:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)


if __name__ == "__main__":
    main()
