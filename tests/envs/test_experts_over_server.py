"""The core envs' experts solve 100% of their tasks over the real server, concurrently."""

from __future__ import annotations

import asyncio

import pytest

from agentgym.client import EnvClient


async def solve_all(client: EnvClient, env: str, concurrency: int = 64) -> tuple[int, list[int]]:
    info = (await client.server_status()).envs[env]
    queue = list(range(info.task_count))
    failed: list[int] = []

    async def worker() -> None:
        while queue:
            task_id = queue.pop()
            async with client.episode(env, task_id) as ep:
                while not ep.over:
                    await ep.step(await ep.expert())
                if not ep.last.success:
                    failed.append(task_id)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return info.task_count, failed


@pytest.mark.parametrize("env", ["maze", "wordle", "textcraft"])
async def test_expert_solves_every_task(client: EnvClient, env: str) -> None:
    total, failed = await solve_all(client, env)
    assert total > 500
    assert failed == [], f"{env}: expert failed {len(failed)} of {total} tasks: {failed[:10]}"
