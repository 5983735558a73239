"""ALFWorld on TextWorld's PDDL engine, over real servers: generated games, game files in the
original's layout and AgentGym's mapping files (written by the tests in the original's formats:
ALFWorld's data cannot be downloaded here)."""

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
from agentgym.envs.base import EnvError
from tests.conftest import StartServer

alfworld = pytest.importorskip(
    "agentgym.envs.alfworld", reason="needs the alfworld package (textworld[pddl])"
)
from agentgym.envs.alfworld import generate as gen  # noqa: E402
from agentgym.envs.alfworld import tasks  # noqa: E402
from agentgym.envs.alfworld.games import GameRef, load_mappings  # noqa: E402
from agentgym.envs.alfworld.logic import TASK_TYPES  # noqa: E402
from agentgym.envs.alfworld.tasks import default_games  # noqa: E402

STEP_TIMEOUT_S = 120.0  # starting a kitchen translates its PDDL: seconds on a busy machine
NOTHING = "Nothing happens."


def first_of_type(task_type: str, ids: range) -> int:
    return next(i for i in ids if default_games()[i].task_type == task_type)


async def play_expert(ep: Episode) -> list[str]:
    """Follow the expert to the end; return the observations."""
    seen = [ep.initial.observation]
    while not ep.over:
        result = await ep.step(await ep.expert())
        seen.append(result.observation)
    return seen


def test_task_ids_follow_agentgym() -> None:
    cls = registry.configure("alfworld")
    games = default_games()
    assert cls.task_count == len(games) == 2620 and cls.max_rounds == 30
    assert cls.splits["train"] == [range(0, 2420)] and cls.splits["test"] == [range(2420, 2620)]
    assert {g.split for g in games[:2420]} == {"train"} and {g.split for g in games[2420:]} == {"valid_train"}
    # AgentGym's mix of task types, split by split.
    train = {t: sum(1 for g in games[:2420] if g.task_type == t) for t in TASK_TYPES}
    test = {t: sum(1 for g in games[2420:] if g.task_type == t) for t in TASK_TYPES}
    assert train == {
        "pick_and_place_simple": 672,
        "look_at_obj_in_light": 196,
        "pick_clean_then_place_in_recep": 448,
        "pick_heat_then_place_in_recep": 321,
        "pick_cool_then_place_in_recep": 394,
        "pick_two_obj_and_place": 389,
    }
    assert test == {
        "pick_and_place_simple": 46,
        "look_at_obj_in_light": 19,
        "pick_clean_then_place_in_recep": 37,
        "pick_heat_then_place_in_recep": 25,
        "pick_cool_then_place_in_recep": 28,
        "pick_two_obj_and_place": 45,
    }
    assert len({g.path for g in games}) == 2620
    assert [g.path for g in games[:2420]] == sorted(g.path for g in games[:2420])  # grouped by type
    assert tasks.build() == [g.path for g in games]  # a fixed list


def test_default_tasks_are_valid_alfred_tasks() -> None:
    """Every task is one ALFRED's definitions allow, in a floor plan that has what it needs."""
    from alfworld.gen import constants as c

    plans = tasks._floor_plans()
    holds = c.VAL_RECEPTACLE_OBJECTS
    needs = {
        "clean": ("Cleanable", "SinkBasin"),
        "heat": ("Heatable", "Microwave"),
        "cool": ("Coolable", "Fridge"),
    }
    objects, targets = set(), set()
    for g in default_games():
        room, present = plans[g.scene]
        assert room in c.GOALS_VALID[g.task_type], g
        assert g.object_type in present and g.target_type in present, g
        assert g.folder.split("-")[2] == "None" and g.trial.startswith("trial_G")
        if g.task_type == "look_at_obj_in_light":
            assert g.target_type == "DeskLamp" and any(g.object_type in v for v in holds.values()), g
            continue
        assert g.object_type in holds[g.target_type] and g.target_type not in c.MOVABLE_RECEPTACLES, g
        verb = g.task_type.split("_")[1]
        if verb in needs:
            kind, appliance = needs[verb]
            assert g.object_type in c.VAL_ACTION_OBJECTS[kind] and appliance in present, g
            assert g.target_type != appliance, g
        objects.add(g.object_type)
        targets.add(g.target_type)
    assert len(objects) > 40 and len(targets) > 20  # spread, as ALFRED balanced its tasks


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
    target = default_games()[task_id].object_type.lower()
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
    # The task list and generation do not depend on the process (hash seeds) or on what ran before.
    script = (
        "import hashlib; from agentgym.envs.alfworld.generate import generate as g; "
        "from agentgym.envs.alfworld.tasks import default_games as d; "
        f"print(hashlib.sha256((g(d()[{task_id}]).problem + g(d()[{task_id}]).goal_text"
        " + repr(d())).encode()).hexdigest())"
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
    ids 0 and 5 (train) and 2420 (valid_train), plus three games of ALFWorld's evaluation splits."""
    games = default_games()
    gen.game_files(tmp_path, [games[0], games[5], games[2420]])
    gen.game_files(tmp_path, [games[100], games[1500]], as_split="valid_seen")
    gen.game_files(tmp_path, [games[2000]], as_split="valid_unseen")
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
    assert (root / "json_2.1.1/train" / default_games()[0].folder).is_dir()
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
        with pytest.raises(InvalidArgument, match=r"json_2\.1\.1/train/.*is not in.*mapping files"):
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
    ref = default_games()[first_of_type("pick_cool_then_place_in_recep", range(2420, 2620))]
    (path,) = gen.game_files(tmp_path, [ref])
    data = json.loads(path.read_text())
    assert {"pddl_domain", "grammar", "pddl_problem", "solvable", "walkthrough"} <= set(data)
    assert "Your task is to: " in data["grammar"] and "UNKNOWN GOAL" not in data["grammar"]
    traj = json.loads((path.parent / "traj_data.json").read_text())
    assert traj["task_type"] == "pick_cool_then_place_in_recep" and traj["task_id"] == ref.trial
    assert (
        traj["pddl_params"]["object_target"] == ref.object_type
        and traj["pddl_params"]["parent_target"] == ref.target_type
    )
    assert path.parent.parent.parent.name == "valid_train"


def test_data_dir_setting_and_alfworld_data_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cls = registry.configure("alfworld")
    saved = {k: getattr(cls, k) for k in _CONFIGURED}
    try:
        gen.game_files(tmp_path, [default_games()[3]], as_split="valid_unseen")
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


# --- AgentGym's numbering, from its mapping files -------------------------------------------------

_CONFIGURED = ("data_root", "numbering", "mapping_dir", "extra_games", "task_count", "splits")
# Entries in the format of AgentGym's mappings_{train,test}.json (made up here: the real files are
# the original's data and are not shipped).
_TRAIN_MAP = [
    ("pick_heat_then_place_in_recep-Egg-None-DiningTable-12", "trial_T20190101_000000_000001"),
    ("look_at_obj_in_light-Book-None-DeskLamp-310", "trial_T20190101_000000_000002"),
    ("pick_two_obj_and_place-Pencil-None-Drawer-322", "trial_T20190101_000000_000003"),
]
_TEST_MAP = [
    ("pick_clean_then_place_in_recep-Ladle-None-CounterTop-4", "trial_T20190101_000000_000004"),
    ("pick_and_place_simple-Pillow-None-Sofa-215", "trial_T20190101_000000_000005"),
]


def write_mappings(folder: Path, train: list[tuple[str, str]], test: list[tuple[str, str]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    item = 0
    for name, entries in (("mappings_train.json", train), ("mappings_test.json", test)):
        rows = []
        for task_type, task_id in entries:
            rows.append({"item_id": item, "task_type": task_type, "task_id": task_id})
            item += 1
        (folder / name).write_text(json.dumps(rows, indent=4))
    return folder


def play_in_process(env: alfworld.ALFWorld, task_id: int) -> tuple[dict[str, str], list[str]]:
    outcome = env.reset(task_id, 0, {})
    info, seen = dict(outcome.info), [outcome.observation]
    while not outcome.done:
        outcome = env.step(env.expert_action())
        seen.append(outcome.observation)
    assert outcome.success
    return info, seen


def test_mapping_files_give_agentgym_numbering(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    maps = write_mappings(tmp_path / "configs", _TRAIN_MAP, _TEST_MAP)
    numbering = load_mappings(str(maps))
    assert numbering.train_count == 3 and numbering.splits == {"train": [range(0, 3)], "test": [range(3, 5)]}
    assert numbering.games[0] == GameRef("train", *_TRAIN_MAP[0])
    assert numbering.games[4] == GameRef("valid_train", *_TEST_MAP[1])

    cls = registry.configure("alfworld")
    saved = {k: getattr(cls, k) for k in _CONFIGURED}
    env = None
    try:
        assert "not the original's" in cls.task_set  # the default: this project's own task list
        cls.configure({"mapping_dir": str(maps)})
        assert cls.task_count == 5 and cls.splits == numbering.splits
        assert cls.task_set == "original"  # the original's mapping files: its numbering
        env = cls()
        # Without data, the game generated for the mapped task.
        info, generated = play_in_process(env, 3)
        assert info["game"] == "valid_train/" + "/".join(_TEST_MAP[0]) and info["task_type"].startswith(
            "pick_clean"
        )
        assert "Your task is to: " in generated[0] and "ladle" in generated[0]
        assert play_in_process(env, 1)[0]["task_type"] == "look_at_obj_in_light"

        # With data: the mapped games' files, in ALFWorld's layout, plus an evaluation split's game.
        data = tmp_path / "data"
        gen.game_files(data, [numbering.games[0], numbering.games[3]])
        gen.game_files(data, [default_games()[7]], as_split="valid_seen")
        monkeypatch.setenv("ALFWORLD_MAPPING_DIR", str(maps))  # the variable works as the setting does
        cls.configure({"data_dir": str(data)})
        assert (
            cls.mapping_dir == str(maps) and cls.task_count == 6 and cls.splits["valid_seen"] == [range(5, 6)]
        )
        info, from_file = play_in_process(env, 3)
        assert info["game"] == "valid_train/" + "/".join(_TEST_MAP[0]) and from_file == generated
        play_in_process(env, 5)
        with pytest.raises(
            EnvError, match=r"train/pick_two_obj_and_place-Pencil-None-Drawer-322/.*is not in"
        ):
            env.reset(2, 0, {})
    finally:
        if env is not None:
            env.close()
        for k, v in saved.items():
            setattr(cls, k, v)


def test_bad_mapping_files_are_refused_clearly(tmp_path: Path) -> None:
    def refused(folder: Path, match: str) -> None:
        with pytest.raises(ValueError, match=match):
            load_mappings(str(folder))

    refused(tmp_path / "nowhere", "is not a folder")
    only_train = tmp_path / "only_train"
    write_mappings(only_train, _TRAIN_MAP, _TEST_MAP)
    (only_train / "mappings_test.json").unlink()
    refused(only_train, "has no mappings_test.json")

    bad_json = write_mappings(tmp_path / "bad_json", _TRAIN_MAP, _TEST_MAP)
    (bad_json / "mappings_train.json").write_text('[{"item_id": 0, "task_type": ')
    refused(bad_json, r"mappings_train\.json is not valid JSON")
    (bad_json / "mappings_train.json").write_text('{"item_id": 0}')
    refused(bad_json, "expected a non-empty JSON list")

    gap = write_mappings(tmp_path / "gap", _TRAIN_MAP, _TEST_MAP)
    rows = json.loads((gap / "mappings_train.json").read_text())
    rows[2]["item_id"] = 5
    (gap / "mappings_train.json").write_text(json.dumps(rows))
    refused(gap, r"mappings_train\.json entry 2: item_id 5 where 2 was expected")
    # The test file's ids go on from the train file's (AgentGym's test ids start at 2420).
    restart = write_mappings(tmp_path / "restart", _TRAIN_MAP, _TEST_MAP)
    rows = json.loads((restart / "mappings_test.json").read_text())
    (restart / "mappings_test.json").write_text(json.dumps([{**r, "item_id": n} for n, r in enumerate(rows)]))
    refused(restart, r"mappings_test\.json entry 0: item_id 0 where 3 was expected")

    broken = write_mappings(tmp_path / "broken", _TRAIN_MAP, _TEST_MAP)
    rows = json.loads((broken / "mappings_test.json").read_text())
    for change, match in (
        ({"task_type": "pick_and_fly-Egg-None-Sky-12"}, "is not an ALFRED task folder"),
        ({"task_type": "pick_and_place_simple-Egg-None-Sofa-999"}, "floor plan 999"),
        ({"task_id": "../../etc"}, "is not a trial folder name"),
        ({"item_id": "3"}, "item_id '3' where 3 was expected"),
    ):
        (broken / "mappings_test.json").write_text(json.dumps([{**rows[0], **change}, rows[1]]))
        refused(broken, match)
    (broken / "mappings_test.json").write_text(
        json.dumps([{"item_id": 3, "task_type": rows[0]["task_type"]}])
    )
    refused(broken, "expected an object with item_id, task_type and task_id")

    # Through the env's settings: refused, and the configuration in place is kept.
    cls = registry.configure("alfworld")
    saved = {k: getattr(cls, k) for k in _CONFIGURED}
    try:
        with pytest.raises(ValueError, match=r"entry 2: item_id 5"):
            cls.configure({"mapping_dir": str(gap)})
        assert cls.task_count == saved["task_count"] and cls.numbering is saved["numbering"]
    finally:
        for k, v in saved.items():
            setattr(cls, k, v)
