"""A blocking wrapper over `EnvClient`, for notebooks and scripts:

    with SyncEnvClient("127.0.0.1:50051") as client:
        with client.episode("wordle", task_id=7) as ep:
            print(ep.step(ep.expert()).observation)

The async client runs on an event loop in a background thread; every call blocks until done.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from agentgym.client.envclient import EnvClient, Episode
from agentgym.client.types import EnvInfo, ServerStatus, StepResult

T = TypeVar("T")


class SyncEnvClient:
    def __init__(self, addresses: str | Sequence[str], **kwargs: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="agentgym-client", daemon=True)
        self._thread.start()

        async def make() -> EnvClient:
            return EnvClient(addresses, **kwargs)

        self._client = self._run(make())

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._loop.is_closed():
            raise RuntimeError("SyncEnvClient is closed")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def __enter__(self) -> SyncEnvClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._loop.is_closed():
            return
        self._run(self._client.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def server_status(self, address: str | None = None) -> ServerStatus:
        return self._run(self._client.server_status(address))

    def envs(self) -> dict[str, EnvInfo]:
        return self._run(self._client.envs())

    def open_episode(self, env: str, task_id: int, **kwargs: Any) -> SyncEpisode:
        return SyncEpisode(self, self._run(self._client.open_episode(env, task_id, **kwargs)))

    @contextmanager
    def episode(self, env: str, task_id: int, *, seed: int | None = None, max_steps: int = 0,
                options: Mapping[str, str] | None = None) -> Iterator[SyncEpisode]:  # fmt: skip
        ep = self.open_episode(env, task_id, seed=seed, max_steps=max_steps, options=options)
        try:
            yield ep
        except BaseException:
            self._run(ep.episode._abort())
            raise
        else:
            ep.close()


class SyncEpisode:
    def __init__(self, client: SyncEnvClient, episode: Episode) -> None:
        self._client = client
        self.episode = episode

    def __getattr__(self, name: str) -> Any:
        # Read-only facts (instruction, initial, last, over, task_id, episode_id, ...).
        return getattr(self.episode, name)

    def step(self, action: str) -> StepResult:
        return self._client._run(self.episode.step(action))

    def step_many(self, actions: Sequence[str]) -> list[StepResult]:
        return self._client._run(self.episode.step_many(actions))

    def observe(self) -> StepResult:
        return self._client._run(self.episode.observe())

    def expert(self) -> str:
        return self._client._run(self.episode.expert())

    def reset(self, task_id: int, *, seed: int | None = None, max_steps: int = 0) -> StepResult:
        return self._client._run(self.episode.reset(task_id, seed=seed, max_steps=max_steps))

    def close(self) -> StepResult:
        return self._client._run(self.episode.close())
