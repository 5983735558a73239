"""ALFWorld on TextWorld's PDDL engine, over real servers: generated games, and game files in the
original's layout (written by the tests: ALFWorld's data cannot be downloaded here)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agentgym.client.envclient import EnvClient, Episode
from agentgym.client.errors import AgentGymError, InvalidArgument
from agentgym.envs import registry
from tests.conftest import StartServer

alfworld = pytest.importorskip(
    "agentgym.envs.alfworld", reason="needs the alfworld package (textworld[pddl])"
)
from agentgym.envs.alfworld import generate as gen  # noqa: E402
from agentgym.envs.alfworld.games import agentgym_games  # noqa: E402
from agentgym.envs.alfworld.logic import TASK_TYPES  # noqa: E402

STEP_TIMEOUT_S = 120.0  # starting a kitchen translates its PDDL: seconds on a busy machine
NOTHING = "Nothing happens."


def first_of_type(task_type: str, ids: range) -> int:
    return next(i for i in ids if agentgym_games()[i].task_type == task_type)


async def play_expert(ep: Episode) -> list[str]:
    """Follow the expert to the end; return the observations."""
    seen = [ep.initial.observation]
    while not ep.over:
        result = await ep.step(await ep.expert())
        seen.append(result.observation)
    return seen


def test_task_ids_follow_agentgym() -> None:
    cls = registry.configure("alfworld")
    games = agentgym_games()
    assert cls.task_count == len(games) == 2620 and cls.max_rounds == 30
    assert cls.splits["train"] == [range(0, 2420)] and cls.splits["test"] == [range(2420, 2620)]
    assert games[0].path.startswith("train/look_at_obj_in_light-AlarmClock-None-DeskLamp-301/trial_T2019")
    assert games[2420].split == "valid_train" and games[2420].task_type == "pick_cool_then_place_in_recep"
    assert {g.task_type for g in games} == set(TASK_TYPES)


async def test_expert_solves_every_task_type(start_server: StartServer) -> None:
    srv = await start_server(envs=["alfworld"], step_timeout_s=STEP_TIMEOUT_S)
    tasks = [first_of_type(t, range(0, 2420)) for t in TASK_TYPES] + [2420]
    async with EnvClient(f"127.0.0.1:{srv.port}") as client:
        for task_id in tasks:
            async with client.episode("alfworld", task_id) as ep:
                intro = ep.initial.observation
                assert intro.startswith(
                    "You are in the middle of a room. Looking quickly around you, you see "
                )
                assert "\nYour task is to: " in intro
                assert intro.endswith("AVAILABLE ACTIONS: " + ",".join(ep.initial.available_actions))
                assert "inventory" in ep.initial.available_actions
                await play_expert(ep)
                last = ep.last
                assert last.done and last.success and last.reward == 1.0 and last.score == 1.0, task_id
                assert last.step_index <= 30
                assert not last.observation.startswith("You arrive at loc")


async def test_expert_recovers_from_detours(start_server: StartServer) -> None:
    """The expert starts from any state: here, holding something unrelated, away from the start."""
    srv = await start_server(envs=["alfworld"], step_timeout_s=STEP_TIMEOUT_S, prewarm=0)
    task_id = first_of_type("pick_heat_then_place_in_recep", range(2420, 2620))
    target = agentgym_games()[task_id].object_type.lower()
    async with EnvClient(f"127.0.0.1:{srv.port}") as client, client.episode("alfworld", task_id) as ep:
        for goto in [a for a in ep.initial.available_actions if a.startswith("go to ")][::-1]:
            result = await ep.step(goto)
            takes = [a for a in result.available_actions if a.startswith("take ") and target not in a]
            if takes:
                result = await ep.step(takes[0])
                break
        assert "You pick up" in result.observation
        await play_expert(ep)
        assert ep.last.success and ep.last.step_index <= 30


async def test_the_same_task_id_gives_the_same_episode(start_server: StartServer) -> None:
    task_id = first_of_type("pick_two_obj_and_place", range(2420, 2620))
    # Generation does not depend on the process (hash seeds) or on what ran before.
    script = (
        "import hashlib; from agentgym.envs.alfworld.generate import generate as g; "
        f"print(hashlib.sha256((g({task_id}).problem + g({task_id}).goal_text).encode()).hexdigest())"
    )
    digests = set()
    for seed in ("1", "2"):
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            script,
            env={**os.environ, "PYTHONHASHSEED": seed},
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await proc.communicate()
        assert proc.returncode == 0
        digests.add(out.decode().strip())
    assert len(digests) == 1

    srv = await start_server(envs=["alfworld"], step_timeout_s=STEP_TIMEOUT_S, prewarm=0)
    async with EnvClient(f"127.0.0.1:{srv.port}") as client:
        async with client.episode("alfworld", task_id) as ep:
            first = await play_expert(ep)
            actions_seen = [ep.initial.available_actions]
            await ep.reset(task_id)  # the same game again, on the same stream and engine
            assert ep.initial.observation == first[0]
        async with client.episode("alfworld", task_id) as ep:  # and in another worker process
            second = await play_expert(ep)
            actions_seen.append(ep.initial.available_actions)
    assert first == second and actions_seen[0] == actions_seen[1]


async def test_bad_actions_get_nothing_happens(start_server: StartServer) -> None:
    srv = await start_server(envs=["alfworld"], step_timeout_s=STEP_TIMEOUT_S, prewarm=0)
    async with EnvClient(f"127.0.0.1:{srv.port}") as client:
        async with client.episode(
            "alfworld", first_of_type("pick_and_place_simple", range(2420, 2620))
        ) as ep:
            goto = next(a for a in ep.initial.available_actions if a.startswith("go to "))
            bad = [
                goto.upper(),  # commands match exactly, as in ALFWorld
                "take unicorn 1 from sofa 9",
                "put",
                "heat the house",
                "go to " + "x" * 5000,
                "ouvrir le frigo 🧊",
                "move apple 1 to diningtable 1",  # alfworld 0.4's wording; AgentGym's is "put ... in/on"
            ]
            for action in bad:
                result = await ep.step(action)
                assert result.observation == NOTHING, action
                assert result.info["invalid"] == "true" and not result.done
                assert result.available_actions == ep.initial.available_actions
            result = await ep.step(goto)
            assert result.observation != NOTHING and "invalid" not in result.info
            assert result.step_index == len(bad) + 1


# --- real game files ------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def file_server(tmp_path: Path) -> AsyncIterator[tuple[str, Path]]:
    """`agentgym serve` in its own process, playing game files from a folder in ALFWorld's layout:
    AgentGym's ids 0 and 5 (train) and 2420 (valid_train), plus three games of ALFWorld's
    evaluation splits."""
    gen.game_files(tmp_path, [0, 5, 2420])
    gen.game_files(tmp_path, [100, 1500], as_split="valid_seen")
    gen.game_files(tmp_path, [2000], as_split="valid_unseen")
    port = _free_port()
    log = tmp_path / "server.log"
    cli = "import sys; from agentgym.client.cli import main; sys.exit(main(sys.argv[1:]))"
    args = ["serve", "--envs", "alfworld", "--port", str(port), "--step-timeout", str(STEP_TIMEOUT_S)]
    args += ["--env-setting", f"alfworld.data_dir={tmp_path}"]
    with log.open("w") as err:  # the server writes it; this process needs no handle
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", cli, *args, stdout=asyncio.subprocess.DEVNULL, stderr=err
        )
    address = f"127.0.0.1:{port}"
    try:
        async with EnvClient(address, connect_timeout_s=2.0) as client:
            for _ in range(120):
                try:
                    await client.server_status()
                    break
                except AgentGymError:
                    if proc.returncode is not None:
                        raise AssertionError(log.read_text()) from None
                    await asyncio.sleep(0.5)
            else:
                raise AssertionError("the server did not come up")
        yield address, tmp_path
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 30)


async def test_game_files_in_the_original_layout(file_server: tuple[str, Path]) -> None:
    address, root = file_server
    assert (root / "json_2.1.1/train" / agentgym_games()[0].folder).is_dir()
    async with EnvClient(address) as client:
        info = await client.env_info("alfworld")
        assert info.task_count == 2623
        assert info.splits["valid_seen"] == [range(2620, 2622)]
        assert info.splits["valid_unseen"] == [range(2622, 2623)]
        for task_id in (0, 2420, 2621, 2622):
            async with client.episode("alfworld", task_id) as ep:
                await play_expert(ep)
                assert ep.last.success, task_id
        # The file of id 5 is a generated game: played from the file, it is the same episode.
        async with client.episode("alfworld", 5) as ep:
            from_file = await play_expert(ep)
        with pytest.raises(InvalidArgument, match=r"json_2\.1\.1/train/.*is not in"):
            await client.open_episode("alfworld", 1)
    env = registry.make("alfworld")  # generated games, in this process
    try:
        outcome = env.reset(5, 5, {})
        generated = [outcome.observation]
        while not outcome.done:
            outcome = env.step(env.expert_action())
            generated.append(outcome.observation)
    finally:
        env.close()
    assert from_file == generated


def test_written_files_are_alfworld_game_files(tmp_path: Path) -> None:
    (path,) = gen.game_files(tmp_path, [2420])
    data = json.loads(path.read_text())
    assert {"pddl_domain", "grammar", "pddl_problem", "solvable", "walkthrough"} <= set(data)
    assert "Your task is to: " in data["grammar"] and "UNKNOWN GOAL" not in data["grammar"]
    traj = json.loads((path.parent / "traj_data.json").read_text())
    assert traj["task_type"] == "pick_cool_then_place_in_recep"
    assert (
        traj["pddl_params"]["object_target"] == "Mug"
        and traj["pddl_params"]["parent_target"] == "CoffeeMachine"
    )
    assert path.parent.parent.parent.name == "valid_train"


def test_data_dir_setting_and_alfworld_data_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cls = registry.configure("alfworld")
    saved = {k: getattr(cls, k) for k in ("data_root", "extra_games", "task_count", "splits")}
    try:
        gen.game_files(tmp_path, [3], as_split="valid_unseen")
        monkeypatch.setenv("ALFWORLD_DATA", str(tmp_path))
        cls.configure({})
        assert cls.data_root == tmp_path / "json_2.1.1" and cls.task_count == 2621
        monkeypatch.setenv("ALFWORLD_DATA", str(tmp_path / "empty"))  # as `import alfworld` leaves it
        cls.configure({})
        assert cls.data_root is None and cls.task_count == 2620
        with pytest.raises(ValueError, match=r"no json_2\.1\.1"):
            cls.configure({"data_dir": str(tmp_path / "empty")})
        with pytest.raises(ValueError, match="unknown alfworld settings"):
            cls.configure({"datadir": str(tmp_path)})
    finally:
        for k, v in saved.items():
            setattr(cls, k, v)
