"""Fleet discovery in EnvClient without Ray: a routing table served by a stand-in source (what the
fleet's controller serves, docs/fleet.md) over real servers; the rollout engine re-running episodes
whose server died under them; and the clear error when Ray is not installed."""

from __future__ import annotations

import asyncio
import copy
import sys
from collections import Counter
from pathlib import Path

import pytest

from agentgym.client import EnvClient
from agentgym.client.discovery import Discovery
from agentgym.client.errors import FailedPrecondition, Unavailable
from agentgym.client.policies import make_policy
from agentgym.client.policies.base import Policy, Turn
from agentgym.client.rollout import FileSink, Rollout, RolloutConfig
from agentgym.client.tasks import expand
from agentgym.core.fleet import RoutingTable, ServerEntry
from agentgym.core.trajectory import read_trajectories
from agentgym.server.app import Server
from agentgym.server.config import ServerConfig
from tests.conftest import StartServer, wait_for

FLEET = "ray://127.0.0.1:1/test"


def entry(server: Server, live: int = 0, capacity: int = 100, **flags: bool) -> ServerEntry:
    return {
        "address": f"127.0.0.1:{server.port}",
        "node_id": "n",
        "envs": {"maze": {"live": live, "capacity": capacity}},
        "healthy": flags.get("healthy", True),
        "draining": flags.get("draining", False),
    }


class Table:
    """A routing table the test edits; reads see a copy, as from a Ray call."""

    def __init__(self, *servers: ServerEntry) -> None:
        self.table: RoutingTable = {"fleet": "test", "version": 1, "servers": list(servers)}
        self.reads = 0

    def set(self, *servers: ServerEntry) -> None:
        self.table = {"fleet": "test", "version": self.table["version"] + 1, "servers": list(servers)}

    async def __call__(self) -> RoutingTable:
        self.reads += 1
        return copy.deepcopy(self.table)


def client_for(table: Table, refresh_s: float = 0.05) -> EnvClient:
    return EnvClient(Discovery(FLEET, refresh_s=refresh_s, source=table))


async def test_new_episodes_spread_by_load_and_new_servers_join(start_server: StartServer) -> None:
    a, b, c = [await start_server(envs=["maze"]) for _ in range(3)]
    # The controller saw `a` half full: new episodes go to `b` until both are equally loaded.
    table = Table(entry(a, live=10, capacity=20), entry(b, capacity=20))
    async with client_for(table, refresh_s=60) as client:
        eps = [await client.open_episode("maze", i) for i in range(10)]
        assert Counter(ep.address for ep in eps) == {f"127.0.0.1:{b.port}": 10}
        eps += [await client.open_episode("maze", i) for i in range(4)]
        assert Counter(ep.address for ep in eps)[f"127.0.0.1:{a.port}"] == 2  # then evenly
        assert client.discovery is not None
        table.set(entry(a, live=12, capacity=20), entry(b, live=12, capacity=20), entry(c, capacity=20))
        await client.discovery.refresh()  # what the background task does every refresh_s
        more = [await client.open_episode("maze", i) for i in range(6)]
        assert {ep.address for ep in more} == {f"127.0.0.1:{c.port}"}  # the new, empty one
        for ep in eps + more:
            await ep.close()


async def test_draining_unhealthy_and_gone_servers_get_no_new_episodes(start_server: StartServer) -> None:
    a, b = await start_server(envs=["maze"]), await start_server(envs=["maze"])
    table = Table(entry(a), entry(b))
    async with client_for(table) as client:
        on_a = None
        while on_a is None:  # one live episode on each
            ep = await client.open_episode("maze", 0)
            if ep.address == f"127.0.0.1:{a.port}":
                on_a = ep
            else:
                await ep.close()
        reads = table.reads
        table.set(entry(a, live=1, draining=True), entry(b))
        assert await wait_for(lambda: table.reads > reads, 5.0)  # within a refresh
        await asyncio.sleep(0.01)
        eps = [await client.open_episode("maze", i) for i in range(5)]
        assert {ep.address for ep in eps} == {f"127.0.0.1:{b.port}"}
        await on_a.step(await on_a.expert())  # the live stream stays where it is
        table.set(entry(a, live=1, healthy=False), entry(b))
        await client.refresh()
        eps += [await client.open_episode("maze", 1) for _ in range(3)]
        assert {ep.address for ep in eps} == {f"127.0.0.1:{b.port}"}
        # Gone from the table: still no new episodes; the live one finishes; its channel then closes.
        table.set(entry(b))
        await client.refresh()
        with_a = [s for s in client.servers if s.address == f"127.0.0.1:{a.port}"]
        assert with_a and with_a[0].gone
        while not on_a.over:
            await on_a.step(await on_a.expert())
        assert on_a.last.success
        await on_a.close()
        assert await wait_for(lambda: all(s.address != f"127.0.0.1:{a.port}" for s in client.servers), 5.0)
        # Nothing takes maze now: a retryable UNAVAILABLE (the rollout engine re-runs the episode).
        table.set(entry(b, draining=True))
        await client.refresh()
        with pytest.raises(
            Unavailable, match="draining, unhealthy or unreachable: replicas may be restarting"
        ):
            await client.open_episode("maze", 0)
        for ep in eps:
            await ep.close()
    for ep in client.servers:
        assert not ep.busy


class KillAfter(Policy):
    """The expert, which stops server `victim` in the middle of one of its episodes there."""

    def __init__(self, victim: Server, after_steps: int) -> None:
        self.inner = make_policy("expert")
        self.name, self.chat = self.inner.name, None
        self.victim, self.after, self.killed = victim, after_steps, False

    async def act(self, conversation, episode) -> Turn:  # type: ignore[no-untyped-def]
        if (
            not self.killed
            and episode.address.endswith(f":{self.victim.port}")
            and episode.last.step_index >= self.after
        ):
            self.killed = True
            await self.victim.stop(0)  # ends this episode's stream (and its siblings') with UNAVAILABLE
        return await self.inner.act(conversation, episode)


@pytest.mark.parametrize("fleet", [False, True], ids=["addresses", "fleet"])
async def test_episodes_whose_server_dies_are_rerun_elsewhere_once(
    start_server: StartServer, tmp_path: Path, fleet: bool
) -> None:
    victim = await Server.start(ServerConfig(port=0, envs=["maze"], grace_s=0))
    survivor = await start_server(envs=["maze"])
    policy = KillAfter(victim, after_steps=2)
    if fleet:
        table = Table(entry(victim), entry(survivor))
        client = client_for(table, refresh_s=0.2)
    else:
        client = EnvClient([f"127.0.0.1:{victim.port}", f"127.0.0.1:{survivor.port}"])
    out = tmp_path / "t.jsonl"
    async with client:
        summary = await Rollout(
            client, policy, RolloutConfig(concurrency=8, progress=False), [FileSink(out)]
        ).run(expand({"maze": list(range(40))}))
    assert policy.killed
    assert summary.finished == 40 and summary.failed == 0 and summary.ok, summary
    assert summary.reruns >= 1  # the episodes live on the victim, played again on the survivor
    ids = Counter(r.record_id for r in read_trajectories(out, strict=True))
    assert set(ids) == {f"maze_{i}" for i in range(40)} and set(ids.values()) == {1}
    assert summary.per_env["maze"]["episodes"] == 40 and summary.per_env["maze"]["success"] == 1.0


async def test_without_ray_a_fleet_address_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    async with EnvClient("ray://127.0.0.1:10001/agentgym") as client:
        with pytest.raises(FailedPrecondition, match=r"pip install 'agentgym\[ray\]'"):
            await client.envs()
    with pytest.raises(ValueError, match="a fleet address stands alone"):
        EnvClient(["ray://127.0.0.1:10001/agentgym", "127.0.0.1:50051"])
    with pytest.raises(ValueError, match="bad fleet address"):
        EnvClient("ray://127.0.0.1:10001/a/b")


def test_without_ray_the_ray_flag_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from agentgym.client.cli import main

    monkeypatch.setitem(sys.modules, "ray", None)
    monkeypatch.setenv("COLUMNS", "300")
    for verb in (["rollout", "--out", str(tmp_path / "t.jsonl")], ["eval", "--out", str(tmp_path / "e")]):
        code = main([*verb, "--ray", "--server", "ray://127.0.0.1:10001/agentgym", "--envs", "maze"])
        assert code == 2
        assert "pip install 'agentgym[ray]'" in capsys.readouterr().out
    code = main(["rollout", "--ray", "--out", str(tmp_path / "t.jsonl"), "--envs", "maze"])
    assert code == 2 and "--ray needs --server" in capsys.readouterr().out
