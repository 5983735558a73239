"""Client SDK: many streams on one channel, routing across servers, the sync wrapper, typed errors."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from agentgym.client import EnvClient, SyncEnvClient
from agentgym.client.errors import NotFound, ResourceExhausted
from agentgym.server.app import Server
from tests.conftest import StartServer


async def test_thousands_of_concurrent_episodes_on_one_channel(start_server: StartServer) -> None:
    srv = await start_server(envs=["maze"])
    async with EnvClient(f"127.0.0.1:{srv.port}") as client:
        assert len(client.servers[0].channels) == 1
        episodes = await asyncio.gather(*(client.open_episode("maze", i % 556) for i in range(2000)))
        assert srv.service.capacity.live == 2000

        async def play(ep) -> bool:  # type: ignore[no-untyped-def]
            while not ep.over:
                await ep.step(await ep.expert())
            await ep.close()
            return ep.last.success

        results = await asyncio.gather(*(play(ep) for ep in episodes))
        assert all(results)


async def test_routes_by_env_and_balances_by_load(start_server: StartServer) -> None:
    a = await start_server(envs=["maze", "wordle"])
    b = await start_server(envs=["maze"])
    async with EnvClient([f"127.0.0.1:{a.port}", f"127.0.0.1:{b.port}"]) as client:
        eps = [await client.open_episode("maze", i) for i in range(40)]
        per_server = Counter(ep.address for ep in eps)
        assert set(per_server.values()) == {20}, per_server  # least-loaded first: an even split
        wordle = [await client.open_episode("wordle", i) for i in range(5)]
        assert {ep.address for ep in wordle} == {f"127.0.0.1:{a.port}"}  # only a hosts wordle
        with pytest.raises(NotFound, match="no reachable server hosts env 'textcraft'"):
            await client.open_episode("textcraft", 0)
        for ep in eps + wordle:
            await ep.close()


async def test_fails_over_when_a_server_is_full_or_down(start_server: StartServer) -> None:
    small = await start_server(envs=["maze"], max_episodes=2)
    big = await start_server(envs=["maze"])
    async with EnvClient([f"127.0.0.1:{small.port}", f"127.0.0.1:{big.port}"], refresh_s=60) as client:
        await client.refresh()
        # The client's view says small is empty; it fills up and the client moves on.
        small.service.capacity.live_per_env["maze"] = 0
        eps = [await client.open_episode("maze", i) for i in range(10)]
        assert Counter(ep.address for ep in eps)[f"127.0.0.1:{small.port}"] <= 2
        for ep in eps:
            await ep.close()
    # One address that is not listening: episodes go to the live one.
    async with EnvClient(["127.0.0.1:1", f"127.0.0.1:{big.port}"], connect_timeout_s=1.0) as client:
        async with client.episode("maze", 0) as ep:
            assert ep.address == f"127.0.0.1:{big.port}"


async def test_full_single_server_raises_resource_exhausted(start_server: StartServer) -> None:
    srv = await start_server(envs=["maze"], max_episodes=1)
    async with EnvClient(f"127.0.0.1:{srv.port}") as client, client.episode("maze", 0):
        with pytest.raises(ResourceExhausted):
            await client.open_episode("maze", 1)


async def test_env_info_and_splits(client: EnvClient) -> None:
    info = await client.env_info("maze")
    assert info.max_rounds == 15 and info.has_expert and info.task_count == 556
    assert info.tasks("original") == list(range(25))
    assert len(info.tasks("train")) + len(info.tasks("test")) == 556
    with pytest.raises(KeyError, match="has no split 'dev'"):
        info.tasks("dev")


async def test_episode_closed_when_block_raises(client: EnvClient, server: Server) -> None:
    with pytest.raises(RuntimeError):
        async with client.episode("maze", 0) as ep:
            await ep.step("move up")
            raise RuntimeError("agent bug")
    assert not ep.alive
    # The server sees the cancelled stream and frees the env (checked by the fixture, too).
    for _ in range(100):
        if server.service.capacity.live == 0:
            break
        await asyncio.sleep(0.01)
    assert server.service.capacity.live == 0


async def test_sync_client(server: Server) -> None:
    # The blocking client runs in a thread, as in a notebook; the server keeps this loop.
    await asyncio.to_thread(use_sync_client, f"127.0.0.1:{server.port}")


def use_sync_client(address: str) -> None:
    with SyncEnvClient(address) as client:
        assert "textcraft" in client.envs()
        with client.episode("textcraft", 3) as ep:
            assert ep.instruction.startswith("You are crafting items")
            while not ep.over:
                result = ep.step(ep.expert())
            assert result.success and result.reward == 1.0
        with client.episode("maze", 1) as ep:
            assert [r.step_index for r in ep.step_many(["move up", "move down"])] == [1, 2]
