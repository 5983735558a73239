"""Benchmark: an env fleet (`agentgym fleet`, docs/fleet.md) on a two-node Ray cluster on this machine,
every node and server on 127.0.0.1.

    python bench/fleet.py                                  # 5 s per figure, 64 streams, 10,000 live
    python bench/fleet.py --seconds 1 --repeat 1 --live 2000

Side by side in one run, each figure the median of `repeat` rounds taken in turn:
1. steps/s (64 open episodes stepping) and episodes/s (create, one step, close):
   - `plain`: one `agentgym serve` process, the client given its address;
   - `list`: the fleet's two replicas (one per node), the client given their addresses;
   - `fleet`: the same two replicas through `ray://HOST:PORT/FLEET` (the controller's routing table,
     refreshed in the background; least-loaded routing by it). fleet vs list is what discovery and
     routing cost (target: under 5%); list vs plain is what a second server process brings here.
2. A node killed abruptly: time until its server leaves the routing table, and until Ray's restart
   of its replica serves again on the surviving node.
3. The controller with `live` episodes open across the fleet and 50 clients reading its routing
   table every second: its CPU (share of one core) and resident memory.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

# Keep every Ray node of this benchmark on 127.0.0.1 (read when Ray is imported).
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"

import psutil
import ray
from rich.console import Console
from rich.table import Table

from agentgym.client import EnvClient
from agentgym.core.fleet import NAMESPACE, accepts_new_episodes
from agentgym.server.fleet.config import FleetConfig
from agentgym.server.fleet.controller import ControllerActor, controller_options

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from fabric import AGENTGYM, fabric_episodes, fabric_steps, free_port, wait_ready  # noqa: E402

FLEET = "bench"
ENV, ACTION = "textcraft", "inventory"


def start_cluster(client_port: int) -> Any:
    from ray.cluster_utils import Cluster

    head = {
        "num_cpus": 2,
        "node_ip_address": "127.0.0.1",
        "include_dashboard": False,
        "ray_client_server_port": client_port,
        # Declare a dead node within ~2 s (Ray's default is ~15 s); the figure below says which.
        "_system_config": {
            "health_check_initial_delay_ms": 1000,
            "health_check_period_ms": 500,
            "health_check_timeout_ms": 500,
            "health_check_failure_threshold": 4,
        },
    }
    cluster = Cluster(initialize_head=True, head_node_args=head)
    worker = cluster.add_node(num_cpus=2, node_ip_address="127.0.0.1")
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, namespace=NAMESPACE, log_to_driver=False)
    return cluster, worker


async def throughput(
    address: str | list[str], concurrency: int, seconds: float, task_count: int
) -> tuple[float, float, int]:
    me = psutil.Process()
    async with EnvClient(address) as client:
        await client.envs()  # discovery (and a first ListEnvs) before the clock starts
        steps, _lat, _rss, errors = await fabric_steps(client, ENV, ACTION, concurrency, seconds, me)
        episodes, errors2 = await fabric_episodes(client, ENV, ACTION, task_count, concurrency, seconds)
    return steps, episodes, errors + errors2


async def node_death(controller: Any, cluster: Any, worker: Any, head_id: str) -> dict[str, float]:
    worker_id = str(worker.node_id)
    t0 = time.perf_counter()
    cluster.remove_node(worker, allow_graceful=False)
    out = back = None
    while back is None and time.perf_counter() - t0 < 120:
        table = await controller.routing.remote()
        now = time.perf_counter() - t0
        if out is None and not any(s["node_id"] == worker_id and s["healthy"] for s in table["servers"]):
            out = now
        serving = [s for s in table["servers"] if accepts_new_episodes(s, ENV)]
        if out is not None and len(serving) == 2 and all(s["node_id"] == head_id for s in serving):
            back = now
        await asyncio.sleep(0.01)
    return {"out_of_routing_s": out or float("nan"), "serving_again_s": back or float("nan")}


def cpu_seconds(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return float(t.user + t.system)


async def controller_at(
    controller: Any, fleet_address: str, live: int, window_s: float, pollers: int
) -> dict[str, float]:
    pid = await controller.__ray_call__.remote(lambda self: os.getpid())
    proc = psutil.Process(pid)
    rss_before = proc.memory_info().rss
    async with EnvClient(fleet_address) as client:
        t0 = time.perf_counter()
        eps = []
        for start in range(0, live, 1000):  # in batches: creates queue, not pile up
            batch = range(start, min(live, start + 1000))
            eps += await asyncio.gather(*(client.open_episode(ENV, i % 100) for i in batch))
        opened_s = time.perf_counter() - t0
        await asyncio.sleep(2 * 1.0)  # the health loop has seen them all
        table = await controller.routing.remote()
        seen = sum(s["envs"][ENV]["live"] for s in table["servers"])
        stop = time.perf_counter() + window_s

        async def poll() -> int:
            n = 0
            while time.perf_counter() < stop:
                await controller.routing.remote()
                n += 1
                await asyncio.sleep(1.0)
            return n

        c0, w0 = cpu_seconds(proc), time.perf_counter()
        polls = sum(await asyncio.gather(*(poll() for _ in range(pollers))))
        cpu = (cpu_seconds(proc) - c0) / (time.perf_counter() - w0)
        rss = proc.memory_info().rss
        await asyncio.gather(*(ep.close() for ep in eps))
    return {
        "live": float(live),
        "seen": float(seen),
        "opened_s": opened_s,
        "cpu_share": cpu,
        "rss_mb": rss / 2**20,
        "rss_before_mb": rss_before / 2**20,
        "polls_per_s": polls / window_s,
    }


async def run(args: argparse.Namespace, cluster: Any, worker: Any, client_port: int, plain_port: int) -> None:
    console = Console(width=max(120, Console().width))
    head_id = str(cluster.head_node.node_id)
    config = FleetConfig.from_dict(
        {
            "name": FLEET,
            "envs": {ENV: {"min_replicas": 2, "max_replicas": 2, "episodes_per_replica": 6000, "cpus": 0.5}},
        },
        {"idle_timeout_s": 0},
    )
    controller = ControllerActor.options(**controller_options(FLEET)).remote(config)
    try:
        t0 = time.perf_counter()
        ready = await controller.wait_ready.remote(300)
        assert ready["ready"], ready["error"]
        console.print(f"fleet of 2 replicas serving in {time.perf_counter() - t0:.1f}s")
        await wait_ready(f"127.0.0.1:{plain_port}")
        servers = (await controller.routing.remote())["servers"]
        assert {s["node_id"] for s in servers} == {head_id, str(worker.node_id)}, servers
        fleet_address = f"ray://127.0.0.1:{client_port}/{FLEET}"
        modes: dict[str, str | list[str]] = {
            "plain": f"127.0.0.1:{plain_port}",
            "list": [s["address"] for s in servers],
            "fleet": fleet_address,
        }
        for address in modes.values():  # warm-up: connections, the replicas' first episodes
            await throughput(address, args.concurrency, min(1.0, args.seconds), 100)
        results: dict[str, list[tuple[float, float, int]]] = {m: [] for m in modes}
        for _ in range(args.repeat):
            for mode, address in modes.items():
                results[mode].append(await throughput(address, args.concurrency, args.seconds, 100))

        table = Table(title=f"{ENV} over a 2-node fleet vs one plain server ({args.concurrency} streams)")
        for col in ("client given", "steps/s", "episodes/s", "errors", "vs list"):
            table.add_column(col, justify="right")
        med = {
            m: (statistics.median(r[0] for r in rs), statistics.median(r[1] for r in rs))
            for m, rs in results.items()
        }
        for mode, (steps, eps) in med.items():
            rel = f"{steps / med['list'][0]:.1%} / {eps / med['list'][1]:.1%}"
            errors = sum(r[2] for r in results[mode])
            label = {
                "plain": "one plain server",
                "list": "the 2 replicas' addresses",
                "fleet": "ray://.../bench",
            }[mode]
            table.add_row(label, f"{steps:,.0f}", f"{eps:,.0f}", str(errors), rel)
        console.print(table)
        cost_steps = 1 - med["fleet"][0] / med["list"][0]
        cost_eps = 1 - med["fleet"][1] / med["list"][1]
        console.print(
            f"discovery and routing cost: {cost_steps:+.1%} steps/s, {cost_eps:+.1%} episodes/s "
            f"(fleet vs the same replicas by address; target < 5%)"
        )

        at = await controller_at(controller, fleet_address, args.live, args.window, pollers=50)
        table = Table(title="the controller with live episodes across the fleet")
        for col in (
            "live episodes",
            "in its table",
            "opened in",
            "controller CPU",
            "RSS",
            "RSS idle",
            "routing calls/s",
        ):
            table.add_column(col, justify="right")
        table.add_row(
            f"{at['live']:,.0f}",
            f"{at['seen']:,.0f}",
            f"{at['opened_s']:.1f}s",
            f"{at['cpu_share']:.1%} of a core",
            f"{at['rss_mb']:.0f} MB",
            f"{at['rss_before_mb']:.0f} MB",
            f"{at['polls_per_s']:.0f}",
        )
        console.print(table)

        death = await node_death(controller, cluster, worker, head_id)
        console.print(
            f"node killed: its server out of routing after {death['out_of_routing_s']:.2f}s; "
            f"its replica restarted by Ray and serving on the head after {death['serving_again_s']:.1f}s "
            "(GCS declares a node dead after 4 missed 0.5 s health checks here)"
        )
    finally:
        await controller.shutdown.remote(0.0)
        ray.kill(controller)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=5.0, help="seconds per throughput figure")
    p.add_argument("--repeat", type=int, default=3, help="rounds of the three modes, taken in turn")
    p.add_argument("--concurrency", type=int, default=64, help="open episodes (streams) stepping")
    p.add_argument("--live", type=int, default=10_000, help="live episodes held for the controller figure")
    p.add_argument("--window", type=float, default=10.0, help="seconds the controller's CPU is measured over")
    args = p.parse_args()
    client_port, plain_port = free_port(), free_port()
    t0 = time.perf_counter()
    cluster, worker = start_cluster(client_port)
    Console().print(f"two-node cluster on 127.0.0.1 up in {time.perf_counter() - t0:.1f}s")
    plain = subprocess.Popen(
        [AGENTGYM, "--log-level", "warning", "serve", "--envs", ENV, "--port", str(plain_port)],
        stdout=subprocess.DEVNULL,
    )
    try:
        asyncio.run(run(args, cluster, worker, client_port, plain_port))
    finally:
        plain.terminate()
        plain.wait(10)
        ray.shutdown()
        cluster.shutdown()


if __name__ == "__main__":
    main()
