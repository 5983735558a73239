"""SciWorld on the real ScienceWorld simulator, over a real server. Every episode starts a JVM,
so these tests use few episodes."""

from __future__ import annotations

import os
import signal

import psutil
import pytest

from agentgym.client.envclient import EnvClient
from agentgym.client.errors import Internal, ResourceExhausted
from agentgym.envs import registry
from agentgym.server.service import available_memory_mb, memory_limit
from tests.conftest import StartServer, wait_for

sciworld = pytest.importorskip("agentgym.envs.sciworld", reason="needs the scienceworld package and Java")
SciWorld = sciworld.SciWorld

# Generous: a JVM start or a gold-path generation takes seconds on a busy 2-core machine.
STEP_TIMEOUT_S = 120.0
NO_MATCH = "No known action matches that input."


def first_id(task: str, variation: int = 0) -> int:
    cls = registry.configure("sciworld")
    return cls.table.entries.index((task, variation))


def _session_of(srv: object, episode_id: str) -> object:
    for session in srv.service.sessions:  # type: ignore[attr-defined]
        if session.episode_id == episode_id:
            return session
    raise AssertionError(f"no live session for episode {episode_id}")


def _jvm_of(worker_pid: int) -> psutil.Process:
    jvms = [p for p in psutil.Process(worker_pid).children(recursive=True) if p.name() == "java"]
    assert len(jvms) == 1, jvms
    return jvms[0]


def test_task_table_follows_the_original_numbering() -> None:
    cls = registry.configure("sciworld")
    entries = cls.table.entries
    # 23 tasks (30 less the seven the original skips), one id per variation, in the package's order.
    assert len({name for name, _ in entries}) == 23
    assert entries[0] == ("boil", 0) and entries[29] == ("boil", 29) and entries[30] == ("melt", 0)
    assert cls.task_count == len(entries) == 4639  # scienceworld 1.2.3
    covered = sorted(i for ranges in cls.splits.values() for r in ranges for i in r)
    assert covered == list(range(cls.task_count))  # train/dev/test partition the ids
    assert cls.success_threshold == 100 and cls.max_rounds == 30 and cls.execution == "process"


async def test_expert_reaches_100_and_episodes_replay_byte_for_byte(start_server: StartServer) -> None:
    srv = await start_server(envs=["sciworld"], step_timeout_s=STEP_TIMEOUT_S)
    tasks = [
        first_id("lifespan-shortest-lived", 3),
        first_id("find-non-living-thing", 7),
        first_id("power-component"),
    ]
    async with EnvClient(f"127.0.0.1:{srv.port}") as client:
        recorded: dict[int, tuple[list[str], list[str]]] = {}
        for task_id in tasks:
            async with client.episode("sciworld", task_id) as ep:
                assert ep.initial.observation.startswith("Your task is to")
                actions, observations = [], [ep.initial.observation]
                total = ep.initial.reward
                while not ep.over:
                    action = await ep.expert()
                    result = await ep.step(action)
                    actions.append(action)
                    observations.append(result.observation)
                    total += result.reward
                assert result.done and result.success, (task_id, actions, result)
                assert result.score == 100 and total == 100
                recorded[task_id] = (actions, observations)

                # The same task again on this stream: a reload in the same JVM replays exactly.
                await ep.reset(task_id)
                again = [ep.initial.observation] + [(await ep.step(a)).observation for a in actions]
                assert again == observations

        # ... and in another worker's JVM.
        task_id = tasks[0]
        actions, observations = recorded[task_id]
        async with client.episode("sciworld", task_id) as ep:
            again = [ep.initial.observation] + [(await ep.step(a)).observation for a in actions]
        assert again == observations


async def test_bad_actions_get_the_simulators_answer(start_server: StartServer) -> None:
    srv = await start_server(envs=["sciworld"], step_timeout_s=STEP_TIMEOUT_S, prewarm=0)
    async with (
        EnvClient(f"127.0.0.1:{srv.port}") as client,
        client.episode("sciworld", first_id("find-plant")) as ep,
    ):
        for action in ("xyzzy", "open", "focus on the unicorn", "move to", "ouvrir la porte 🚪", "a" * 5000):
            result = await ep.step(action)
            assert result.observation == NO_MATCH, action
            assert result.info["invalid"] == "true" and not result.done and result.score == 0
        result = await ep.step("open door to greenhouse")
        assert "invalid" not in result.info and not result.done
        assert result.step_index == 7


async def test_a_dead_jvm_ends_only_its_own_episode(start_server: StartServer) -> None:
    srv = await start_server(envs=["sciworld"], step_timeout_s=STEP_TIMEOUT_S, prewarm=0)
    async with EnvClient(f"127.0.0.1:{srv.port}") as client:
        task = first_id("find-animal")
        victim = await client.open_episode("sciworld", task)
        async with client.episode("sciworld", task) as survivor:
            worker = _session_of(srv, victim.episode_id).runner.proc.pid  # type: ignore[attr-defined]
            jvm = _jvm_of(worker)
            os.kill(jvm.pid, signal.SIGKILL)
            with pytest.raises(Internal, match=r"JVM \(pid \d+\) of this episode exited"):
                await victim.step("look around")
            assert not victim.alive
            # Its worker process exits and both processes' memory goes back to the system.
            assert await wait_for(lambda: not psutil.pid_exists(worker), 10.0)
            assert not psutil.pid_exists(jvm.pid)
            # The other episode carries on.
            result = await survivor.step("look around")
            assert result.observation.startswith("This room is called")
            assert srv.service.capacity.live == 1


async def test_capacity_comes_from_memory_and_is_enforced(
    start_server: StartServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    cls = registry.configure("sciworld")
    saved = {k: getattr(cls, k) for k in ("max_episodes", "heap_mb", "episode_memory_mb")}
    try:
        # The server derives the capacity from the declared memory per episode (as for every
        # process env; tests/server/test_failure_cases.py), unless max_episodes is set.
        cls.configure({"episode_memory_mb": str(10**9)})
        assert (cls.max_episodes, cls.episode_memory_mb) == (None, 10**9)
        assert memory_limit(cls, "process", 1)[0] == 1  # type: ignore[index]  # never below one
        cls.configure({"episode_memory_mb": "100"})
        available = available_memory_mb()
        assert available and abs(memory_limit(cls, "process", 1)[0] - available // 100) <= 2  # type: ignore[index]
        cls.configure({"max_episodes": "3", "jvm_heap_mb": "384"})
        assert (cls.max_episodes, cls.heap_mb) == (3, 384)
        for bad in ({"max_episodes": "0"}, {"jvm_heap_mb": "lots"}, {"heap": "1"}):
            with pytest.raises(ValueError, match="sciworld"):
                cls.configure(bad)
    finally:
        for k, v in saved.items():
            setattr(cls, k, v)

    monkeypatch.setattr(cls, "max_episodes", 1)
    srv = await start_server(envs=["sciworld"], step_timeout_s=STEP_TIMEOUT_S, prewarm=0)
    async with EnvClient(f"127.0.0.1:{srv.port}") as client:
        assert (await client.env_info("sciworld")).max_episodes == 1
        async with client.episode("sciworld", 0):
            with pytest.raises(ResourceExhausted, match="sciworld"):
                await client.open_episode("sciworld", 1)


def test_the_simulators_move_limit_ends_the_episode_and_says_so() -> None:
    """Past ScienceWorld's own move limit (100 by default, as in AgentGym) the episode ends
    unsolved. Long gold paths (boil: up to 174 actions) meet it when more than the 30 rounds are
    allowed; that, not a wrong gold path, is why they stop at 42-75 points (docs/expert-coverage.md)."""
    env = registry.make("sciworld")
    try:
        first = env.reset(first_id("find-plant"), 0, {})
        assert not first.done and "ended" not in first.info
        env.engine.envStepLimit = 3
        assert env.step("look around").info["moves"] == "0"  # looking is not a move
        steps = [env.step("wait1")]
        while not steps[-1].done and len(steps) < 5:
            steps.append(env.step("wait1"))
        last = steps[-1]
        assert last.done and not last.success and int(last.info["moves"]) > 3
        assert last.info["ended"] == "the simulator's limit of 3 moves"
        assert all("ended" not in s.info for s in steps[:-1])
    finally:
        env.close()
