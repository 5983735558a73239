"""Clients over a real fleet on the shared two-node 127.0.0.1 Ray cluster (tests/fleet/conftest.py):
EnvClient("ray://...") discovering and spreading over replicas on both nodes and picking up a new
one; `agentgym eval --server ray://...` giving the table plain servers give; and `agentgym rollout
--ray` over two rollout workers surviving the death of a node mid-run, every episode written once.

One fleet for the module, started through the controller's API (server/fleet/controller.py). The
node-killing test runs last: it leaves the cluster one node short (the fixture restores it for the
next module).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentgym.client import EnvClient
from agentgym.core.fleet import NAMESPACE
from agentgym.core.trajectory import read_trajectories
from tests.conftest import wait_for
from tests.fleet.conftest import LocalCluster, ray

FLEET = "client-tests"
AGENTGYM = str(Path(sys.executable).with_name("agentgym"))
# Small replicas (a test node has 2 CPUs), 8 episodes each so that a few live episodes scale the
# fleet up; no scale-down within the module.
EPISODES_PER_REPLICA = 8


@pytest.fixture(scope="module")
def fleet(ray_cluster: LocalCluster) -> Iterator[str]:
    """A fleet of maze replicas on both nodes; its ray:// address."""
    from agentgym.server.fleet.config import EnvFleet, FleetConfig
    from agentgym.server.fleet.controller import ControllerActor, controller_options

    config = FleetConfig(
        name=FLEET,
        envs={"maze": EnvFleet(min_replicas=2, max_replicas=3, cpus=0.5)},
        episodes_per_replica=EPISODES_PER_REPLICA,
        cooldown_s=600.0,
        drain_timeout_s=5.0,
        health_interval_s=0.5,
        health_timeout_s=1.0,
    )
    controller = ControllerActor.options(**controller_options(FLEET)).remote(config)
    ready = ray.get(controller.wait_ready.remote(60.0), timeout=90)
    assert ready["ready"], ready["error"]
    try:
        yield ray_cluster.fleet_address(FLEET)
    finally:
        try:
            ray.get(controller.shutdown.remote(2.0), timeout=30)
        finally:
            ray.kill(controller, no_restart=True)


def routing() -> dict:  # type: ignore[type-arg]
    return ray.get(ray.get_actor(FLEET, namespace=NAMESPACE).routing.remote(), timeout=10)  # type: ignore[no-any-return]


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([AGENTGYM, "--log-level", "warning", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "COLUMNS": "200"})  # fmt: skip


async def test_envclient_spreads_over_both_nodes_and_picks_up_a_new_replica(
    fleet: str, ray_cluster: LocalCluster
) -> None:
    table = await asyncio.to_thread(routing)
    nodes = {s["node_id"] for s in table["servers"]}
    assert nodes == {ray_cluster.head_node_id, ray_cluster.worker_node_id}, table
    async with EnvClient(fleet, fleet_refresh_s=0.5) as client:
        eps = [await client.open_episode("maze", i) for i in range(6)]
        per_server = Counter(ep.address for ep in eps)
        assert len(per_server) == 2 and set(per_server.values()) == {3}, per_server  # least loaded first
        assert all(a.startswith("127.0.0.1:") for a in per_server)
        # 6 live of 16 is under the 0.8 target; 14 is over: the controller adds a third replica,
        # and this client sends new episodes to it (the emptiest) within a refresh or two.
        eps += [await client.open_episode("maze", i) for i in range(8)]
        assert await wait_for(lambda: len(client.servers) == 3, 30.0), await asyncio.to_thread(routing)
        new = next(s for s in client.servers if s.address not in per_server)
        assert await wait_for(lambda: new.entry is not None and new.entry["healthy"], 10.0)
        more = [await client.open_episode("maze", i) for i in range(2)]
        assert {ep.address for ep in more} == {new.address}
        for ep in eps + more:  # every stream stayed on its server and finishes there
            while not ep.over:
                await ep.step(await ep.expert())
            assert ep.last.success
            await ep.close()


def test_eval_over_the_fleet_gives_the_plain_servers_table(fleet: str, tmp_path: Path) -> None:
    plain = routing()["servers"][0]["address"]
    # --concurrency within one replica's 8 episodes: the plain run has that one replica only.
    common = [
        "eval",
        "--policy",
        "expert",
        "--envs",
        "maze",
        "--max-tasks",
        "30",
        "--concurrency",
        "6",
        "--no-progress",
    ]
    over_fleet = run_cli(*common, "--server", fleet, "--out", str(tmp_path / "fleet"))
    assert over_fleet.returncode == 0, over_fleet.stdout + over_fleet.stderr
    direct = run_cli(*common, "--server", plain, "--out", str(tmp_path / "plain"))
    assert direct.returncode == 0, direct.stdout + direct.stderr
    a, b = (json.loads((tmp_path / d / "results.json").read_text()) for d in ("fleet", "plain"))
    assert a["per_env"] == b["per_env"] and a["average"] == b["average"]
    assert a["per_env"]["maze"]["episodes"] == 30 and a["per_env"]["maze"]["success"] == 1.0

    def table(out: str) -> list[str]:
        return [line for line in out.splitlines() if line.startswith("│")]

    assert table(over_fleet.stdout) == table(direct.stdout) and table(direct.stdout)
    assert len({r.record_id for r in read_trajectories(tmp_path / "fleet" / "trajectories.jsonl")}) == 30


def test_envs_and_conformance_take_a_fleet(
    fleet: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """In process: this test's Ray connection serves (no Ray client round trip)."""
    from agentgym.client.cli import main

    monkeypatch.setenv("COLUMNS", "300")

    servers = {s["address"] for s in routing()["servers"]}
    assert main(["envs", "--server", fleet]) == 0
    out = capsys.readouterr().out
    assert all(address in out for address in servers), out
    assert main(["conformance", fleet, "--only", "list_envs"]) == 0
    out = capsys.readouterr().out
    assert out.count("Conformance of 127.0.0.1:") == len(servers) and "0 failed" in out, out


def test_ray_rollout_survives_a_node_killed_mid_run(
    fleet: str, ray_cluster: LocalCluster, tmp_path: Path
) -> None:
    """Runs last: kills the second node (a rollout worker and the replicas on it)."""
    out = tmp_path / "maze.jsonl"
    tasks = 300
    cmd = [AGENTGYM, "--log-level", "warning", "rollout", "--ray", "--ray-workers", "2", "--server", fleet,
           "--policy", "expert", "--envs", "maze", "--tasks", f"0-{tasks - 1}", "--concurrency", "4",
           "--no-progress", "--out", str(out)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "COLUMNS": "200"})  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None:
            if out.exists() and out.read_bytes().count(b"\n") >= 40:
                break
            time.sleep(0.05)
        done_before = out.read_bytes().count(b"\n") if out.exists() else 0
        assert proc.poll() is None and 40 <= done_before < tasks, f"kill mid-run ({done_before} done)"
        killed = ray_cluster.kill_worker()
        t0 = time.monotonic()
        stdout, stderr = proc.communicate(timeout=120)
        took = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stdout + stderr
    ids = Counter(r.record_id for r in read_trajectories(out, strict=True))
    assert set(ids) == {f"maze_{t}" for t in range(tasks)} and set(ids.values()) == {1}, ids.most_common(3)
    assert f"{tasks} finished, 0 failed" in stdout, stdout
    assert "re-runs" in stdout, stdout  # the episodes cut short by the node's death were played again
    # One worker was on the killed node; its replacement started on the survivor.
    assert re.search(r"\d rollout workers on 2 nodes, 1 lost", stdout), stdout
    assert killed not in {s["node_id"] for s in routing()["servers"]}
    print(f"node killed after {done_before} of {tasks} episodes; {took:.1f}s from the kill to the end")
    print("\n".join(stdout.splitlines()[-4:]))
