"""The fleet's server side on a real two-node Ray cluster on 127.0.0.1 (tests/fleet/conftest.py):
fleet up with replicas on both nodes, episodes through each replica, scale-up under load and
scale-down with a drain, a node killed abruptly, the CLI end to end, fleet down; bad configurations.

The tests of one module run in order on one fleet (each step starts from the state the last left:
starting replicas is what costs time here)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from agentgym.client.envclient import EnvClient, Episode
from agentgym.client.errors import AgentGymError, Unavailable
from agentgym.core.fleet import NAMESPACE, accepts_new_episodes
from tests.fleet.conftest import LocalCluster, ray

FLEET = "t-fleet"
# Small figures so that a handful of episodes drives scaling: 4 episodes per replica, a replica more
# past 50% (desired = ceil(live / 2)), fewer after 2 s low.
FLEET_SETTINGS: dict[str, Any] = {
    "name": FLEET,
    "envs": {"maze": {"min_replicas": 2, "max_replicas": 3, "episodes_per_replica": 4, "cpus": 0.5}},
    "target_utilisation": 0.5,
    "cooldown_s": 2.0,
    "drain_timeout_s": 60.0,
    "health_interval_s": 0.5,
    "health_timeout_s": 2.0,
}
SERVER_SETTINGS = {"grace_s": 0.0, "step_timeout_s": 5.0}
ROOT = Path(__file__).resolve().parents[2]


async def until(
    check: Callable[[], Awaitable[Any]], timeout_s: float, what: str, interval_s: float = 0.2
) -> Any:
    """Poll `check` until it returns something truthy; fail saying what did not happen."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout_s:g}s: {what}")
        await asyncio.sleep(interval_s)


@pytest.fixture(scope="module")
def controller(ray_cluster: LocalCluster) -> Any:
    from agentgym.server.fleet.config import FleetConfig
    from agentgym.server.fleet.controller import ControllerActor, controller_options

    config = FleetConfig.from_dict(FLEET_SETTINGS, SERVER_SETTINGS)
    handle = ControllerActor.options(**controller_options(FLEET)).remote(config)
    ready = ray.get(handle.wait_ready.remote(120))
    assert ready == {"ready": True, "error": ""}
    yield handle
    # Whatever a failing test left: no actors for the next module.
    try:
        ray.get(handle.shutdown.remote(0.0), timeout=60)
        ray.kill(handle)
    except Exception:
        pass


async def routing(controller: Any) -> dict[str, Any]:
    return await controller.routing.remote()  # type: ignore[no-any-return]


async def status(controller: Any) -> dict[str, Any]:
    return await controller.status.remote()  # type: ignore[no-any-return]


async def play_to_the_end(ep: Episode) -> bool:
    result = ep.initial
    while not ep.over:
        result = await ep.step(await ep.expert())
    return result.success


# --- fleet up, routing, episodes ---------------------------------------------------------------------
async def test_up_places_replicas_on_both_nodes(ray_cluster: LocalCluster, controller: Any) -> None:
    table = await routing(controller)
    assert table["fleet"] == FLEET and table["version"] >= 1
    servers = table["servers"]
    assert len(servers) == 2
    assert {s["node_id"] for s in servers} == {ray_cluster.head_node_id, ray_cluster.worker_node_id}
    for s in servers:
        assert s["address"].startswith("127.0.0.1:")
        assert s["envs"] == {"maze": {"live": 0, "capacity": 4}}
        assert accepts_new_episodes(s, "maze") and not accepts_new_episodes(s, "wordle")
    st = await status(controller)
    expected = {"desired": 2, "actual": 2, "healthy": 2, "min": 2, "max": 3}
    assert {k: st["envs"]["maze"][k] for k in expected} == expected
    assert [r["note"] for r in st["replicas"]] == ["serving", "serving"]
    # Served from the table the health loop keeps: a thousand calls cost milliseconds each, no I/O.
    t0 = time.perf_counter()
    await asyncio.gather(*(controller.routing.remote() for _ in range(200)))
    assert (time.perf_counter() - t0) / 200 < 0.05


async def test_an_episode_through_each_replica(controller: Any) -> None:
    for server in (await routing(controller))["servers"]:
        async with EnvClient(server["address"]) as client, client.episode("maze", task_id=1) as ep:
            assert await play_to_the_end(ep)


# --- autoscaling ----------------------------------------------------------------------------------
async def test_scale_up_under_load_then_down_with_a_drain(controller: Any) -> None:
    two = [s["address"] for s in (await routing(controller))["servers"]]
    async with EnvClient(two) as client:
        # 5 live episodes: past 50% of 2 x 4 -> desired ceil(5 / 2) = 3.
        eps = [await client.open_episode("maze", task_id=i) for i in range(5)]
        t0 = time.monotonic()

        async def third() -> list[dict[str, Any]]:
            servers = (await routing(controller))["servers"]
            return [s for s in servers if s["address"] not in two and accepts_new_episodes(s, "maze")]

        (new,) = await until(third, 40, "a third replica serving under load")
        scale_up_s = time.monotonic() - t0
        print(f"scale-up: a replica serving {scale_up_s:.1f}s after the load")
        # One live episode on each of the three: 3 live -> desired 2, so after the cool-down one
        # replica with a live episode drains.
        async with EnvClient(new["address"]) as on_new:
            eps.append(await on_new.open_episode("maze", task_id=7))
            keep: dict[str, Episode] = {}
            for ep in eps:
                keep.setdefault(ep.server.address, ep)
            assert len(keep) == 3, "each replica holds a live episode"
            for ep in eps:
                if ep not in keep.values():
                    await ep.close()

            async def draining() -> list[dict[str, Any]]:
                return [s for s in (await routing(controller))["servers"] if s["draining"]]

            (drained,) = await until(draining, 20, "a replica draining after the cool-down")
            assert drained["envs"]["maze"]["live"] == 1
            ep = keep[drained["address"]]
            # Its live episode goes on; a new one there is refused (clients go elsewhere).
            result = await ep.step(await ep.expert())
            assert result.step_index == 1
            async with EnvClient(drained["address"]) as direct:
                with pytest.raises(Unavailable):
                    await direct.open_episode("maze", task_id=2)
            assert await play_to_the_end(ep)
            await ep.close()

            async def removed() -> bool:
                addresses = [s["address"] for s in (await routing(controller))["servers"]]
                return drained["address"] not in addresses and len(addresses) == 2

            await until(removed, 15, "the drained replica removed once its episode ended")
            for other in keep.values():
                if other is not ep:
                    await other.close()
    st = await status(controller)
    assert st["envs"]["maze"]["actual"] == 2
    assert any("removed" in e["event"] for e in st["events"])


# --- the CLI, end to end (subprocesses through Ray client) ------------------------------------------
def agentgym(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    # As a driver on the cluster's GCS (not through Ray client, whose per-connection server process
    # costs seconds a call on this small machine); 127.0.0.1 as the fixture keeps it.
    env = {
        **os.environ,
        "COLUMNS": "200",
        "AGENTGYM_LOG_FORMAT": "text",
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    }
    env.pop("RAY_ADDRESS", None)
    return subprocess.run(
        [sys.executable, "-m", "agentgym.client.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=env,
    )


def test_cli_up_status_down(ray_cluster: LocalCluster, capsys: pytest.CaptureFixture[str]) -> None:
    from agentgym.client.cli import main

    common = ["--address", ray_cluster.gcs_address, "--name", "t-cli"]
    port = str(ray_cluster.client_port)
    up = agentgym("fleet", "up", *common, "--envs", "wordle", "--replica-cpus", "0.25", "--client-port", port)
    assert up.returncode == 0, up.stderr[-3000:]
    # The table, then the address clients use (through the head's Ray client server).
    assert "wordle" in up.stdout and "127.0.0.1:" in up.stdout and "healthy" in up.stdout
    assert up.stdout.strip().splitlines()[-1] == ray_cluster.fleet_address("t-cli")
    # status and a second up in this process (already connected: the CLI uses the connection).
    with pytest.raises(SystemExit, match="fleet 't-cli' is already up"):
        main(["fleet", "up", *common, "--envs", "wordle"])
    capsys.readouterr()
    assert main(["fleet", "status", *common, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["envs"]["wordle"]["actual"] == 1 and doc["replicas"][0]["healthy"]
    assert ray.is_initialized()
    down = agentgym("fleet", "down", *common, "--grace", "1")
    assert down.returncode == 0, down.stderr[-3000:]
    assert "1 replicas removed" in down.stdout
    assert not [a for a in ray.util.list_named_actors(all_namespaces=True) if a["name"].startswith("t-cli")]
    with pytest.raises(SystemExit, match="no fleet named 't-cli'"):
        main(["fleet", "status", *common])


# --- a node dies --------------------------------------------------------------------------------
async def test_node_killed_leaves_routing_and_the_replica_comes_back(
    ray_cluster: LocalCluster, controller: Any
) -> None:
    worker = ray_cluster.worker_node_id
    servers = (await routing(controller))["servers"]
    (doomed,) = [s for s in servers if s["node_id"] == worker]
    async with EnvClient(doomed["address"]) as client:
        ep = await client.open_episode("maze", task_id=3)
        await ep.step(await ep.expert())
        t0 = time.monotonic()
        ray_cluster.kill_worker()

        async def gone() -> bool:
            table = await routing(controller)
            return not any(s["node_id"] == worker and s["healthy"] for s in table["servers"])

        await until(gone, 10, "the dead node's server out of routing", interval_s=0.05)
        out_s = time.monotonic() - t0
        print(f"node death -> out of routing: {out_s:.2f}s")
        assert out_s < 8  # ~1-3 s measured here; the rest is slack for a loaded machine
        # Its live episode ends with UNAVAILABLE (the rollout engine re-runs such episodes elsewhere).
        with pytest.raises(AgentGymError) as err:
            for _ in range(50):
                await ep.step(await ep.expert())
        assert isinstance(err.value, Unavailable), err.value
        await ep.close()

    async def back() -> bool:
        table = await routing(controller)
        healthy = [s for s in table["servers"] if accepts_new_episodes(s, "maze")]
        return len(healthy) == 2 and all(s["node_id"] == ray_cluster.head_node_id for s in healthy)

    await until(back, 60, "the replica restarted by Ray on the surviving node, back in routing")
    print(f"node death -> replica back in routing: {time.monotonic() - t0:.1f}s")
    st = await status(controller)
    assert sum(r["restarts"] for r in st["replicas"]) == 1
    new = [s for s in (await routing(controller))["servers"] if s["address"] != doomed["address"]]
    async with EnvClient([s["address"] for s in new]) as client, client.episode("maze", task_id=4) as ep:
        assert await play_to_the_end(ep)


# --- fleet down -----------------------------------------------------------------------------------
async def test_down_leaves_no_actors(controller: Any) -> None:
    result = await controller.shutdown.remote(5.0)
    assert result == {"replicas": 2, "episodes_cut": 0}
    ray.kill(controller)
    await asyncio.sleep(0.5)
    names = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True)]
    assert not [n for n in names if n.startswith(FLEET)], names
    with pytest.raises(ValueError):
        ray.get_actor(FLEET, namespace=NAMESPACE)


# --- a replica that cannot start ------------------------------------------------------------------
async def test_a_replica_that_cannot_start_says_why(ray_cluster: LocalCluster) -> None:
    import socket

    from agentgym.server.fleet.config import FleetConfig
    from agentgym.server.fleet.controller import ControllerActor, controller_options

    with socket.socket() as taken:  # its metrics port is in use: the server's start fails on the node
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = FleetConfig.from_dict(
            {"name": "t-broken", "envs": {"maze": {"cpus": 0.25}}}, {"metrics_port": port}
        )
        handle = ControllerActor.options(**controller_options("t-broken")).remote(config)
        try:
            ready = await handle.wait_ready.remote(60)
            assert not ready["ready"]
            assert "a replica of maze failed to start" in ready["error"]
            assert "in use" in ready["error"], ready["error"]
            st = await handle.status.remote()
            assert st["envs"]["maze"]["error"] and st["envs"]["maze"]["healthy"] == 0
        finally:
            await handle.shutdown.remote(0.0)
            ray.kill(handle)


# --- bad configurations (no cluster) ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("fleet", "server", "message"),
    [
        ({"envs": ["nope"]}, {}, "no env named 'nope'"),
        (
            {"envs": {"maze": {"min_replicas": 3, "max_replicas": 2}}},
            {},
            "min_replicas (3) is more than max_replicas (2)",
        ),
        ({"envs": ["maze"], "min_replicas": 0}, {}, "min_replicas must be at least 1"),
        ({"envs": ["maze"], "target_utilisation": 1.5}, {}, "target_utilisation must be in (0, 1]"),
        ({"envs": []}, {}, "at least one env"),
        ({"envs": ["maze"], "name": "bad name"}, {}, "bad fleet name"),
        ({"envs": ["maze"], "replicas": 2}, {}, "unknown fleet settings ['replicas']"),
        ({"envs": {"maze": {"cpu": 1}}}, {}, "unknown settings for env maze: ['cpu']"),
        ({"envs": ["maze"]}, {"port": 5}, "[server] sets ['port']"),
        ({"envs": ["maze"]}, {"step_timeout": 5}, "unknown server settings ['step_timeout']"),
        ({"envs": ["maze"]}, {"step_timeout_s": -1}, "step_timeout_s must be positive"),
    ],
)
def test_bad_config_says_what_to_fix(fleet: dict[str, Any], server: dict[str, Any], message: str) -> None:
    from agentgym.server.fleet.config import FleetConfig

    with pytest.raises(ValueError) as err:
        FleetConfig.from_dict(fleet, server).validate()
    assert message in str(err.value)


def test_config_file_and_flags(tmp_path: Path) -> None:
    from agentgym.client.cli import build_parser
    from agentgym.client.cli.fleet import fleet_config

    path = tmp_path / "fleet.toml"
    path.write_text(
        '[fleet]\nname = "big"\ncooldown_s = 30\n[fleet.envs.maze]\nmin_replicas = 2\n'
        "[fleet.envs.sciworld]\nepisodes_per_replica = 4\n[server]\nstep_timeout_s = 9\n"
    )
    args = build_parser().parse_args(["fleet", "up", "--config", str(path), "--max-replicas", "6"])
    config = fleet_config(args)
    assert config.name == "big" and config.cooldown_s == 30 and config.server == {"step_timeout_s": 9}
    maze, sci = config.plan("maze"), config.plan("sciworld")
    assert (maze.min_replicas, maze.max_replicas, maze.episodes_per_replica, maze.memory_mb) == (
        2,
        6,
        1000,
        0,
    )
    # Resources follow the env's own figures: sciworld declares its memory per episode.
    assert sci.memory_mb == 4 * 800 and sci.ray_options() == {
        "num_cpus": 1.0,
        "memory": 4 * 800 * 1024 * 1024,
    }
    assert config.server_config("maze").max_episodes == 1000
    assert maze.desired(0, 0.8) == 2 and maze.desired(1601, 0.8) == 3 and maze.desired(10**6, 0.8) == 6
    bad = tmp_path / "bad.toml"
    bad.write_text("[fleet\n")
    with pytest.raises(ValueError, match=r"bad\.toml: not valid TOML"):
        fleet_config(build_parser().parse_args(["fleet", "up", "--config", str(bad)]))


def test_cli_errors_without_a_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    from agentgym.client.cli import main

    with pytest.raises(SystemExit, match="bad --address 'http://x'"):
        main(["fleet", "up", "--envs", "maze", "--address", "http://x"])
    with pytest.raises(SystemExit, match="no env named 'nope'"):
        main(["fleet", "up", "--envs", "nope", "--address", "auto"])
    with pytest.raises(SystemExit, match=r"cannot reach the Ray cluster at 127\.0\.0\.1:1"):
        main(["fleet", "status", "--address", "127.0.0.1:1"])
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    with pytest.raises(SystemExit, match=r"pip install 'agentgym\[ray\]'"):
        main(["fleet", "status"])
