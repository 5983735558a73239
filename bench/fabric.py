"""Benchmark: env steps and whole episodes over the fabric, against the env in-process and against a
raw grpc.aio ping-pong of the same message sizes, all measured side by side in one run.

    python bench/fabric.py                  # TextCraft, 1/64/1024/4096 concurrent episodes
    python bench/fabric.py --env maze --seconds 5 --levels 1,64

The env server and the ping-pong server each run in a process of their own; this process is the
client. What the table shows:
- in-process: env.reset/env.step called directly, no transport (the env's own cost);
- ping-pong: a raw grpc.aio bidi echo with the same request/response sizes as a step (the
  transport's limit on this machine, with this client);
- fabric steps: steps over `agentgym serve` with the client SDK, N episodes stepping at once;
- fabric episodes: whole episodes (create incl. reset, one step, close), N at once;
- latency percentiles per step, and the server's RSS with N episodes open.
Ratios compare the fabric with ping-pong measured in the same run: the machine is shared and noisy,
so absolute numbers move between runs and the ratios are what to read.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import grpc
import psutil
from rich.console import Console
from rich.table import Table

from agentgym.client import EnvClient
from agentgym.envs import registry
from agentgym.v1 import env_pb2 as pb

HERE = Path(__file__).resolve().parent
AGENTGYM = str(Path(sys.executable).with_name("agentgym"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_ready(address: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    async with grpc.aio.insecure_channel(address) as ch:
        while True:
            try:
                await asyncio.wait_for(ch.channel_ready(), 1)
                return
            except TimeoutError:
                if time.monotonic() > deadline:
                    raise


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


# --- in-process ----------------------------------------------------------------------------------
def in_process(env_name: str, action: str, seconds: float) -> tuple[float, float]:
    env = registry.make(env_name)
    env.reset(0, 0, {})
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for _ in range(100):
            env.step(action)
        n += 100
    steps = n / (time.perf_counter() - t0)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        env = registry.make(env_name)
        env.reset(n % env.task_count, n, {})
        env.step(action)
        env.close()
        n += 1
    return steps, n / (time.perf_counter() - t0)


# --- ping-pong ---------------------------------------------------------------------------------------
async def pingpong(
    address: str, request: bytes, concurrency: int, seconds: float
) -> tuple[float, list[float]]:
    async with grpc.aio.insecure_channel(address) as ch:
        method = ch.stream_stream("/bench.Echo/PingPong", request_serializer=None, response_deserializer=None)
        stop = time.perf_counter() + seconds
        latencies: list[float] = []
        count = 0

        async def worker() -> None:
            nonlocal count
            call = method()
            while time.perf_counter() < stop:
                t = time.perf_counter()
                await call.write(request)
                await call.read()
                latencies.append(time.perf_counter() - t)
                count += 1
            await call.done_writing()
            await call.read()

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return count / (time.perf_counter() - t0), latencies


# --- fabric --------------------------------------------------------------------------------------------
async def fabric_steps(
    client: EnvClient, env: str, action: str, concurrency: int, seconds: float, server: psutil.Process
) -> tuple[float, list[float], float, int]:
    episodes = await asyncio.gather(
        *(client.open_episode(env, i % 100, max_steps=10**9) for i in range(concurrency))
    )
    rss = server.memory_info().rss
    stop = time.perf_counter() + seconds
    latencies: list[float] = []
    count = errors = 0

    async def worker(ep) -> None:  # type: ignore[no-untyped-def]
        nonlocal count, errors
        while time.perf_counter() < stop:
            t = time.perf_counter()
            try:
                await ep.step(action)
            except Exception:
                errors += 1
                return
            latencies.append(time.perf_counter() - t)
            count += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(ep) for ep in episodes))
    rate = count / (time.perf_counter() - t0)
    await asyncio.gather(*(ep.close() for ep in episodes))
    return rate, latencies, rss, errors


async def fabric_episodes(
    client: EnvClient, env: str, action: str, task_count: int, concurrency: int, seconds: float
) -> tuple[float, int]:
    stop = time.perf_counter() + seconds
    count = errors = 0

    async def worker(i: int) -> None:
        nonlocal count, errors
        while time.perf_counter() < stop:
            try:
                async with client.episode(env, (count + i) % task_count) as ep:
                    await ep.step(action)
            except Exception:
                errors += 1
                return
            count += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    return count / (time.perf_counter() - t0), errors


async def hold_open(
    client: EnvClient, env: str, n: int, server: psutil.Process
) -> tuple[int, float, float, int]:
    base = server.memory_info().rss
    t0 = time.perf_counter()
    results = await asyncio.gather(
        *(client.open_episode(env, i % 100) for i in range(n)), return_exceptions=True
    )
    took = time.perf_counter() - t0
    episodes = [r for r in results if not isinstance(r, BaseException)]
    errors = len(results) - len(episodes)
    rss = server.memory_info().rss
    await asyncio.gather(*(ep.step("inventory") for ep in episodes))  # every one is alive and answers
    await asyncio.gather(*(ep.close() for ep in episodes))
    return len(episodes), rss / 2**20, (rss - base) / max(1, len(episodes)) / 1024, errors + int(took < 0)


def step_messages(env_name: str, action: str) -> tuple[bytes, bytes]:
    """A real step's request and response bytes, so the ping-pong moves the same sizes."""
    env = registry.make(env_name)
    env.reset(0, 0, {})
    out = env.step(action)
    request = pb.SessionRequest(id=123456, step=pb.StepRequest(action=action)).SerializeToString()
    result = pb.StepResult(
        observation=out.observation, step_index=42, available_actions=out.available_actions, info=out.info
    )
    return request, pb.SessionResponse(id=123456, step=result).SerializeToString()


async def run(args: argparse.Namespace) -> None:
    console = Console(width=max(140, Console().width))
    env_name, action = args.env, args.action
    levels = [int(x) for x in args.levels.split(",")]
    cls = registry.configure(env_name)
    request, response = args.request, args.response
    env_port, echo_port = args.env_port, args.echo_port
    server = args.server_proc
    await wait_ready(f"127.0.0.1:{env_port}")
    await wait_ready(f"127.0.0.1:{echo_port}")
    server_proc = psutil.Process(server.pid)
    console.print(
        f"[bold]{env_name}[/bold]: step request {len(request)} B, response {len(response)} B; "
        f"{os.cpu_count()} CPUs; {args.seconds:g}s per measurement"
    )

    ip_steps, ip_episodes = in_process(env_name, action, args.seconds)
    table = Table(title=f"{env_name} over the fabric vs in-process vs raw grpc.aio ping-pong")
    for col in (
        "concurrent",
        "ping-pong msg/s",
        "fabric steps/s",
        "steps / ping-pong",
        "step p50 ms",
        "step p99 ms",
        "ping p50 ms",
        "episodes/s",
        "server RSS MB",
        "errors",
    ):
        table.add_column(col, justify="right")
    async with EnvClient(f"127.0.0.1:{env_port}") as client:
        for n in levels:
            pp_rate, pp_lat = await pingpong(f"127.0.0.1:{echo_port}", request, n, args.seconds)
            st_rate, st_lat, rss, st_err = await fabric_steps(
                client, env_name, action, n, args.seconds, server_proc
            )
            ep_rate, ep_err = await fabric_episodes(client, env_name, action, cls.task_count, n, args.seconds)
            table.add_row(
                str(n),
                f"{pp_rate:,.0f}",
                f"{st_rate:,.0f}",
                f"{st_rate / pp_rate:.0%}",
                f"{percentile(st_lat, 0.5) * 1e3:.2f}",
                f"{percentile(st_lat, 0.99) * 1e3:.2f}",
                f"{percentile(pp_lat, 0.5) * 1e3:.2f}",
                f"{ep_rate:,.0f}",
                f"{rss / 2**20:,.0f}",
                str(st_err + ep_err),
            )
        console.print(table)
        console.print(
            f"in-process (no transport): {ip_steps:,.0f} steps/s, {ip_episodes:,.0f} episodes/s "
            f"(create+reset+step+close) on one core"
        )
        if args.open:
            opened, rss_mb, per_kb, errors = await hold_open(client, env_name, args.open, server_proc)
            console.print(
                f"{opened:,} episodes held open at once by one server process: RSS {rss_mb:,.0f} MB "
                f"({per_kb:.1f} KB per episode), {errors} errors"
            )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--env", default="textcraft")
    parser.add_argument(
        "--action", default="inventory", help="the action every step sends (must not end the episode)"
    )
    parser.add_argument("--levels", default="1,64,1024,4096")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--open", type=int, default=10_000, help="episodes to hold open at once (0 to skip)")
    args = parser.parse_args()
    args.env_port, args.echo_port = free_port(), free_port()
    args.request, args.response = step_messages(args.env, args.action)
    args.server_proc = subprocess.Popen(
        [
            AGENTGYM,
            "--log-level",
            "warning",
            "serve",
            "--port",
            str(args.env_port),
            "--envs",
            args.env,
            "--max-episodes",
            str(max(20_000, args.open + 100)),
            "--idle-timeout",
            "0",
        ]
    )
    args.echo_proc = subprocess.Popen(
        [sys.executable, str(HERE / "pingpong_server.py"), str(args.echo_port), str(len(args.response))]
    )
    try:
        asyncio.run(run(args))
    finally:
        for p in (args.server_proc, args.echo_proc):
            p.terminate()
        for p in (args.server_proc, args.echo_proc):
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()


if __name__ == "__main__":
    main()
