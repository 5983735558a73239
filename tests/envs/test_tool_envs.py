"""The five tool-use envs (Weather, Movie, Academia, Sheet, TODOList) over a real server: the
experts solve their tasks, episodes replay byte for byte, bad input gets an error observation,
and rewards are progress-rate increments. In-process checks cover every test-split task."""

from __future__ import annotations

import pytest

from agentgym.client.envclient import EnvClient
from agentgym.envs import registry
from agentgym.envs.tools.action import ToolCall
from tests.conftest import StartServer

TOOL_ENVS = ["weather", "movie", "academia", "sheet", "todo"]
ORIGINAL = {  # max rounds and test-set size of the original
    "weather": (10, 343),
    "movie": (12, 238),
    "academia": (12, 20),
    "sheet": (15, 20),
    "todo": (15, 155),
}
# An argument of the wrong type, per env (validated before anything else runs).
WRONG_TYPE = {
    "weather": 'get_elevation with Action Input: {"latitude": "north", "longitude": 2}',
    "movie": 'get_movie_details with Action Input: {"movie_id": ["1"]}',
    "academia": 'neighbourCheck with Action Input: {"graph": "CitationNet", "node": "x"}',
    "sheet": 'freeze_data with Action Input: {"dimension": "rows", "num": "many"}',
    "todo": 'update_project with Action Input: {"project_id": "1", "is_favorite": "perhaps"}',
}
# A valid call that never ends the episode, per env.
IDLE = {
    "weather": "check_valid_actions with Action Input: {}",
    "movie": "check_valid_actions with Action Input: {}",
    "academia": "loadPaperNet with Action Input: {}",
    "sheet": 'get_A1_annotation with Action Input: {"row": 1, "col": 1}',
    "todo": "get_projects with Action Input: {}",
}


def _sample(name: str) -> list[int]:
    """Test-split ids spread over the templates, and a few training ids."""
    cls = registry.configure(name)
    test = ORIGINAL[name][1]
    return sorted({*range(0, test, max(1, test // 10)), test, test + 7, cls.task_count - 1})


async def _play_expert(
    client: EnvClient, name: str, task_id: int
) -> tuple[list[str], list[str], list[float], object]:
    async with client.episode(name, task_id) as ep:
        actions, observations, rewards = [], [ep.initial.observation], []
        result = ep.initial
        while not result.over:
            action = await ep.expert()
            result = await ep.step(action)
            actions.append(action)
            observations.append(result.observation)
            rewards.append(result.reward)
        return actions, observations, rewards, result


@pytest.mark.parametrize("name", TOOL_ENVS)
async def test_expert_solves_tasks_over_the_server(start_server: StartServer, name: str) -> None:
    srv = await start_server(envs=[name], step_timeout_s=30.0)
    async with EnvClient(f"127.0.0.1:{srv.port}") as client:
        info = await client.env_info(name)
        assert (info.max_rounds, len(info.tasks("test"))) == ORIGINAL[name]
        assert info.has_expert and info.success_threshold == 1.0
        assert "Action Input" in info.instruction and "Thought:" in info.instruction
        for task_id in _sample(name):
            actions, _, rewards, result = await _play_expert(client, name, task_id)
            assert result.done and result.success, (task_id, actions[-1], result.observation[:300])
            assert result.score == pytest.approx(1.0)
            assert sum(rewards) == pytest.approx(1.0)  # rewards are progress increments
            assert len(actions) <= info.max_rounds
            assert actions[-1].startswith("finish with Action Input:")


@pytest.mark.parametrize("name", TOOL_ENVS)
async def test_same_task_id_same_episode(start_server: StartServer, name: str) -> None:
    srv = await start_server(envs=[name], step_timeout_s=30.0)
    task_id = ORIGINAL[name][1] // 2
    async with EnvClient(f"127.0.0.1:{srv.port}") as client:
        actions, observations, rewards, _ = await _play_expert(client, name, task_id)
        replay_obs, replay_rewards = [], []
        async with client.episode(name, task_id) as ep:
            replay_obs.append(ep.initial.observation)
            for action in actions:
                r = await ep.step(action)
                replay_obs.append(r.observation)
                replay_rewards.append(r.reward)
        assert replay_obs == observations and replay_rewards == rewards


@pytest.mark.parametrize("name", TOOL_ENVS)
async def test_bad_input_gets_an_error_observation(start_server: StartServer, name: str) -> None:
    srv = await start_server(envs=[name], step_timeout_s=30.0)
    bad = {
        "malformed JSON": 'check_valid_actions with Action Input: {"oops": ',
        "unknown tool": 'book_a_flight with Action Input: {"to": "Lisbon"}',
        "wrong argument type": WRONG_TYPE[name],
        "no tool call": "I would like to know the answer, please.",
        "missing argument": "finish with Action Input: {}"
        if name != "sheet"
        else "open_sheet with Action Input: {}",
    }
    async with EnvClient(f"127.0.0.1:{srv.port}") as client:
        cls = registry.configure(name)
        async with client.episode(name, 1, max_steps=cls.max_rounds + len(bad)) as ep:
            for what, action in bad.items():
                r = await ep.step(action)
                assert not r.over and r.reward == 0.0 and r.score == 0.0, what
                assert r.info.get("invalid") == "true", (what, r.observation)
                assert "error" in r.observation.lower(), (what, r.observation)
            # The episode goes on, and can still be solved.
            while not ep.over:
                r = await ep.step(await ep.expert())
            assert r.done and r.success


@pytest.mark.parametrize("name", TOOL_ENVS)
async def test_an_episode_without_finish_is_truncated_unsolved(start_server: StartServer, name: str) -> None:
    srv = await start_server(envs=[name], step_timeout_s=30.0)
    cls = registry.configure(name)
    async with EnvClient(f"127.0.0.1:{srv.port}") as client, client.episode(name, 2) as ep:
        if name == "sheet":
            await ep.step(f'open_sheet with Action Input: {{"name": "Sheet{2 % 20 + 1}"}}')
        steps = []
        while not ep.over:
            steps.append(await ep.step(IDLE[name]))
        last = steps[-1]
        assert last.truncated and not last.done and not last.success
        assert last.step_index == cls.max_rounds and last.score < 1.0


# --- in process: every test task, and the reward as progress -------------------------------------
@pytest.mark.parametrize("name", TOOL_ENVS)
def test_expert_solves_every_test_task_in_process(name: str) -> None:
    env = registry.make(name)
    test_ids = range(ORIGINAL[name][1])
    train_ids = range(ORIGINAL[name][1], env.task_count, 37)
    try:
        for task_id in [*test_ids, *train_ids]:
            env.reset(task_id, task_id, {})
            total, out = 0.0, None
            for _ in range(env.max_rounds):
                out = env.step(env.expert_action())
                total += out.reward
                if out.done:
                    break
            assert out is not None and out.done and out.success, (
                task_id,
                env.task.template,
                out.observation[:200],
            )
            assert total == pytest.approx(1.0) and out.score == pytest.approx(1.0)
    finally:
        env.close()


@pytest.mark.parametrize("name", ["weather", "movie", "academia", "todo"])
def test_partial_progress_then_a_wrong_answer(name: str) -> None:
    env = registry.make(name)
    task_id = next(
        i
        for i in range(ORIGINAL[name][1])
        if len(registry.make(name).make_task(i).plan) >= 3 and _is_question(name, i)
    )
    env.reset(task_id, 0, {})
    plan = env.task.plan
    n = len(env.task.subgoals)
    rewards = []
    for call in plan[:2]:
        out = env.step(call.render())
        rewards.append(out.reward)
    assert out.score == pytest.approx(2 / n) and not out.done and not out.success
    out = env.step(ToolCall("finish", {"answer": "certainly not this"}).render())
    rewards.append(out.reward)
    assert out.done and not out.success and out.reward == 0.0
    assert out.score == pytest.approx(2 / n) == pytest.approx(sum(rewards))
    env.close()


def _is_question(name: str, task_id: int) -> bool:
    task = registry.make(name).make_task(task_id)
    return all(g.kind != "state" for g in task.subgoals)


def test_todo_operation_needs_the_change_not_just_done() -> None:
    env = registry.make("todo")
    task_id = next(i for i in range(155) if env.make_task(i).template == "delete")
    env.reset(task_id, 0, {})
    kinds = [g.kind for g in env.task.subgoals]
    assert kinds.count("state") == 2 and kinds[-1] == "answer"  # the deletion, nothing else changed
    calls = len(kinds) - 3
    out = env.step(ToolCall("finish", {"answer": "done"}).render())
    assert out.done and not out.success and out.score == pytest.approx(1 / len(kinds))
    # Deleting the wrong task leaves the "nothing else changed" subgoal unmet.
    env.reset(task_id, 0, {})
    target = next(c for c in env.task.plan if c.name == "delete_task").args["task_id"]
    projects = env.get_projects()
    other = next(t["id"] for p in projects for t in env.get_tasks(p["id"]) if t["id"] != target)
    env.step(ToolCall("delete_task", {"task_id": other}).render())
    for call in env.task.plan:
        out = env.step(call.render())
    assert out.done and not out.success
    assert out.score == pytest.approx((calls + 2) / len(kinds))
    env.close()


def test_sheet_progress_is_the_share_of_cells_gained() -> None:
    env = registry.make("sheet")
    task_id = next(i for i in range(20) if env.make_task(i).template == "price_rise")
    env.reset(task_id, 0, {})
    plan = env.task.plan
    writes = [i for i, c in enumerate(plan) if c.name == "update_cell"]
    scores, rewards = [], []
    for call in plan[: writes[0] + 1]:
        out = env.step(call.render())
        scores.append(out.score)
        rewards.append(out.reward)
    assert scores[:-1] == [0.0] * (len(scores) - 1)  # opening and reading change no cell
    assert 0.0 < scores[-1] < 1.0 and float(out.info["match"]) > env.start_match
    out = env.step("finish with Action Input: {}")  # giving up early
    rewards.append(out.reward)
    assert out.done and not out.success and out.score == scores[-1] == pytest.approx(sum(rewards))
    env.close()


async def test_tool_envs_pass_the_conformance_suite(start_server: StartServer) -> None:
    from agentgym.client.conformance import Suite

    srv = await start_server(envs=[*TOOL_ENVS, "conformance"], step_timeout_s=2.0)
    results = await Suite(f"127.0.0.1:{srv.port}").run(
        only={"ListEnvs", "lifecycle", "determinism", "empty/oversize", "truncation", "leak"}
    )
    failures = [f"{r.name}: {r.detail}" for r in results if r.status != "PASS"]
    assert len(results) == 6 and not failures, failures


@pytest.mark.parametrize("name", TOOL_ENVS)
def test_random_calls_never_crash_an_env(name: str) -> None:
    """Every tool with arguments of random types and values: error observations, never an exception."""
    import random

    rng = random.Random(f"fuzz/{name}")
    pool = [None, True, -3, 0, 7, 2.5, "", "A1", "Z99", "AAA1", "rows", "col", "des", "SUM", "PaperNet",
            "2023-01-01", "=SUM(A1:C3)", "=A1/0", "^-1$", "[", "1e999", [[1, "x"]], [1, 2], {"a": 1}, "12345"]  # fmt: skip
    env = registry.make(name)
    try:
        for episode in range(8):
            env.reset(rng.randrange(env.task_count), episode, {})
            if name == "sheet":
                env.step(f'open_sheet with Action Input: {{"name": "{env.task.context["sheet"]}"}}')
            for _ in range(12):
                spec = rng.choice(list(env.tool_specs.values()))
                args = {p.name: rng.choice(pool) for p in spec.params if rng.random() < 0.9}
                out = env.step(ToolCall(spec.name, args).render())
                assert isinstance(out.observation, str) and out.observation.startswith("Observation: ")
                if out.done:
                    break
    finally:
        env.close()
