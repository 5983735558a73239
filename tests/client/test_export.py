"""`agentgym export --format agenttraj`: our records as the original AgentGym's tools read them."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from agentgym.client import EnvClient
from agentgym.client.cli import build_parser
from agentgym.client.policies import make_policy
from agentgym.client.rollout import FileSink, Rollout, RolloutConfig
from agentgym.client.tasks import expand, tasks_from_item_file
from agentgym.core.trajectory import (
    ENV_ALIASES,
    ORIGINAL_PREFIXES,
    JsonlWriter,
    Trajectory,
    Turn,
    original_item_id,
    read_trajectories,
    split_item_id,
)
from agentgym.trainer.store import TrajectoryStore
from tests.conftest import StartServer
from tests.test_cli import AGENTGYM

KEYS = {"item_id", "conversations", "reward", "success"}
# The task names of the original's agentenv/utils/distributed_eval_task.py (its item-id prefixes).
THE_ORIGINALS = {"webshop", "alfworld", "babyai", "sciworld", "textcraft", "webarena", "sqlgym", "lmrlgym_maze",
                 "lmrlgym_wordle", "weather", "todo", "movie", "sheet", "academia"}  # fmt: skip
# agentenv/utils/agentevol_filter.py's categories, matched by prefix in this order.
FILTER_TASKS = ["webshop", "alfworld", "textcraft", "sciworld", "sqlgym", "lmrlgym_wordle", "lmrlgym_maze",
                "weather", "movie", "todo", "babyai"]  # fmt: skip


def export(*argv: str) -> int:
    """The command in this process (a subprocess costs seconds of startup); its exit code."""
    args = build_parser().parse_args(["export", "--format", "agenttraj", *argv])
    return int(args.func(args))


def check_shape(items: Any, *, rewarded: bool = True) -> None:
    """What the original's loaders read, with the types they expect."""
    assert type(items) is list and items
    for item in items:
        assert set(item) == (KEYS if rewarded else {"item_id", "conversations"}), item.keys()
        assert type(item["item_id"]) is str
        int(item["item_id"].split("_")[-1])  # how its evaluator reads the task index
        if rewarded:
            assert type(item["reward"]) is float
            assert type(item["success"]) is int and item["success"] in (0, 1)  # int, not bool
        assert type(item["conversations"]) is list and item["conversations"]
        for i, turn in enumerate(item["conversations"]):
            assert set(turn) == {"from", "loss", "value"}  # its templates index turn["loss"]
            assert turn["from"] == ("human" if i % 2 == 0 else "gpt")
            assert type(turn["value"]) is str
            assert turn["loss"] in (None, True, False)
            if turn["from"] == "human":
                assert turn["loss"] is None


def traj(item_id: str, reward: float | None = 1.0, success: bool | None = True, **kw: Any) -> Trajectory:
    turns = kw.pop("turns", None) or [
        Turn("human", "instruction"), Turn("gpt", "OK.", False), Turn("human", "obs"), Turn("gpt", "act", True)
    ]  # fmt: skip
    return Trajectory(item_id=item_id, conversations=turns, reward=reward, success=success, **kw).validate()


def write(path: Path, records: list[Trajectory]) -> Path:
    writer = JsonlWriter(path)
    for r in records:
        writer.write(r)
    writer.close()
    return path


# --- ids ------------------------------------------------------------------------------------------------
def test_one_table_gives_the_originals_prefixes_both_ways() -> None:
    assert set(ORIGINAL_PREFIXES.values()) == THE_ORIGINALS
    assert original_item_id("maze", 3) == "lmrlgym_maze_3"
    assert original_item_id("wordle", 5) == "lmrlgym_wordle_5"
    assert original_item_id("bird", 7) == "sqlgym_7"
    assert original_item_id("weather", 12) == "weather_12"  # not tool_weather_12
    assert original_item_id("sokoban", 2) == "sokoban_2"  # not the original's: our own name
    for env in [*ORIGINAL_PREFIXES, "sokoban"]:
        assert split_item_id(original_item_id(env, 41)) == (env, 41)
    # Reading is as before: our own ids, and the three prefixes that differ from our names.
    assert ENV_ALIASES == {"lmrlgym_maze": "maze", "lmrlgym_wordle": "wordle", "sqlgym": "bird"}
    assert split_item_id("maze_3") == ("maze", 3) and split_item_id("sqlgym_12") == ("bird", 12)


# --- real records ---------------------------------------------------------------------------------------
async def test_expert_rollout_exports_as_the_original_reads_it(
    start_server: StartServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    srv = await start_server(envs=["maze", "wordle", "bird"])
    run = tmp_path / "rollout"
    async with EnvClient(f"127.0.0.1:{srv.port}") as client:
        summary = await Rollout(
            client,
            make_policy("expert"),
            RolloutConfig(progress=False),
            [FileSink(run / "trajectories.jsonl")],
        ).run(expand({"maze": [0, 1, 2], "wordle": [0, 1], "bird": [0, 1]}))
    assert summary.finished == 7 and summary.ok
    records = list(read_trajectories(run / "trajectories.jsonl", strict=True))
    out = tmp_path / "agenttraj.json"
    assert export(str(run), "--out", str(out)) == 0
    assert "exported 7 trajectories" in capsys.readouterr().out
    items = json.loads(out.read_text())
    check_shape(items)
    by_id = {i["item_id"]: i for i in items}
    assert sorted(by_id) == sorted(
        ["lmrlgym_maze_0", "lmrlgym_maze_1", "lmrlgym_maze_2", "lmrlgym_wordle_0", "lmrlgym_wordle_1",
         "sqlgym_0", "sqlgym_1"]
    )  # fmt: skip
    for r in records:
        item = by_id[original_item_id(r.env, r.task_id or 0)]
        assert item["reward"] == r.reward == 1.0 and item["success"] == 1
        assert [t["value"] for t in item["conversations"]] == [t.value for t in r.conversations]
        # The acknowledgement is not trained on, the agent's actions are: as AgentTraj marks them.
        assert [t["loss"] for t in item["conversations"][1::2]] == [False] + [True] * (
            len(r.conversations) // 2 - 1
        )
    # The original's AgentEvol filter finds every record's category and threshold.
    for item in items:
        category = next(t for t in FILTER_TASKS if item["item_id"].startswith(t))
        assert item["item_id"] == f"{category}_{item['item_id'].rsplit('_', 1)[1]}"
    # Our reader reads the exported ids back to the same (env, task).
    assert sorted((s.env, s.task_id) for s in tasks_from_item_file(out)) == sorted(
        (r.env, r.task_id) for r in records
    )
    assert sorted((t.env, t.item_id) for t in read_trajectories(out, strict=True)) == sorted(
        (r.env, original_item_id(r.env, r.task_id or 0)) for r in records
    )


def test_every_env_in_the_table_and_the_record_rules(tmp_path: Path) -> None:
    records = [traj(f"{env}_{i}", task_id=i) for i, env in enumerate(ORIGINAL_PREFIXES)]
    records += [
        # A system turn, a gpt turn that does not say, and a flag on a human turn (never trained on).
        traj(
            "maze_90", turns=[Turn("system", "Be brief."), Turn("human", "go", True), Turn("gpt", "ok", None)]
        ),
        traj("sciworld_91", reward=100.0, success=True),  # SciWorld's 0-100 scale, kept
        traj("babyai_92", reward=0.5, success=None),  # no success: the original evaluator's rule
        traj("todo_93", reward=0.0, success=False),
        traj("sokoban_94"),  # an env the original does not have
    ]
    src = write(tmp_path / "mine.jsonl", records)
    out = tmp_path / "all.json"
    assert export(str(src), "--out", str(out)) == 0
    items = json.loads(out.read_text())
    check_shape(items)
    ids = [i["item_id"] for i in items]
    assert ids[: len(ORIGINAL_PREFIXES)] == [f"{p}_{i}" for i, p in enumerate(ORIGINAL_PREFIXES.values())]
    got = {i["item_id"]: i for i in items}
    assert got["lmrlgym_maze_90"]["conversations"] == [
        {"from": "human", "loss": None, "value": "Be brief.\n\ngo"},
        {"from": "gpt", "loss": None, "value": "ok"},
    ]
    assert (got["sciworld_91"]["reward"], got["sciworld_91"]["success"]) == (100.0, 1)
    assert (got["babyai_92"]["reward"], got["babyai_92"]["success"]) == (0.5, 0)
    assert (got["todo_93"]["reward"], got["todo_93"]["success"]) == (0.0, 0)
    assert "sokoban_94" in got
    assert [(s.env, s.task_id) for s in tasks_from_item_file(out)] == [
        (r.env, r.task_id if r.task_id is not None else split_item_id(r.item_id)[1]) for r in records
    ]
    # --system drop, and JSON Lines when --out ends in .jsonl (the evaluator's inference files).
    lines = tmp_path / "inference_maze.jsonl"
    assert export(str(src), "--env", "maze", "--system", "drop", "--out", str(lines)) == 0
    rows = [json.loads(line) for line in lines.read_text().splitlines()]
    check_shape(rows)
    assert rows[-1]["conversations"][0] == {"from": "human", "loss": None, "value": "go"}
    # Records without a reward (AgentTraj as published): no reward, no success.
    bare = write(tmp_path / "bare.jsonl", [traj("webshop_6", reward=None, success=None)])
    assert export(str(bare), "--out", str(tmp_path / "bare.json")) == 0
    check_shape(json.loads((tmp_path / "bare.json").read_text()), rewarded=False)


def test_filters_duplicates_and_a_trainer_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    records = [
        traj("maze_1", task_id=1),
        traj("maze_1", task_id=1, sample=1, reward=0.0, success=False),  # a second sample: its own record
        traj("bird_2", task_id=2, reward=0.0, success=False),
        traj("wordle_3", task_id=3, reward=None, success=None),
        traj("maze_1", task_id=1, iteration=2),  # explored again in AgentEvol iteration 2
    ]
    src = write(tmp_path / "a.jsonl", records)
    # A trainer folder whose store a trainer holds open (and locked) while we read it.
    with TrajectoryStore.open(tmp_path / "trainer" / "store") as store:
        store.add([*records[:3], traj("textcraft_4", task_id=4)])
        out = tmp_path / "x.json"
        assert export(str(src), str(tmp_path / "trainer"), str(src), "--out", str(out)) == 0
    printed = capsys.readouterr().out
    assert "exported 6 trajectories" in printed and "8 duplicates" in printed, printed
    assert "1 without a reward" in printed
    items = json.loads(out.read_text())
    assert [i["item_id"] for i in items] == ["lmrlgym_maze_1", "lmrlgym_maze_1", "sqlgym_2", "lmrlgym_wordle_3",
                                             "lmrlgym_maze_1", "textcraft_4"]  # fmt: skip

    def ids(*flags: str) -> list[str]:
        dest = tmp_path / "f.json"
        assert export(str(src), str(tmp_path / "trainer" / "store"), *flags, "--out", str(dest)) == 0
        return [i["item_id"] for i in json.loads(dest.read_text())]

    assert ids("--env", "sqlgym,textcraft") == ["sqlgym_2", "textcraft_4"]  # the original's names work
    assert ids("--env", "maze", "--env", "wordle") == ["lmrlgym_maze_1", "lmrlgym_maze_1", "lmrlgym_wordle_3",
                                                      "lmrlgym_maze_1"]  # fmt: skip
    assert ids("--min-reward", "1") == ["lmrlgym_maze_1", "lmrlgym_maze_1", "textcraft_4"]
    assert ids("--successful-only") == ["lmrlgym_maze_1", "lmrlgym_maze_1", "textcraft_4"]
    assert ids("--successful-only", "--env", "bird") == []
    assert (tmp_path / "f.json").read_text() == "[]\n"


# --- bad input -----------------------------------------------------------------------------------------
def test_bad_input_is_refused_clearly_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = write(tmp_path / "good.jsonl", [traj("maze_1"), traj("maze_2")])
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        good.read_text().splitlines()[0] + "\n{not json\n" + good.read_text().splitlines()[1] + "\n"
    )
    out = tmp_path / "out.json"
    out.write_text("previous export\n")

    def refused(*argv: str) -> str:
        assert export(*argv, "--out", str(out)) == 2
        assert out.read_text() == "previous export\n"  # untouched: never partly written
        assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".out")) == []  # no temp left
        return capsys.readouterr().out

    assert "no such file or folder: " in refused(str(good), str(tmp_path / "missing.jsonl"))
    # The good file's records were already on their way to the temp file when the bad line stopped it.
    assert "bad.jsonl:2: not valid JSON" in refused(str(good), str(bad))
    (tmp_path / "empty").mkdir()
    assert "neither trajectories.jsonl" in refused(str(tmp_path / "empty"))
    agenteval = tmp_path / "maze_test.json"
    agenteval.write_text(json.dumps([{"item_id": "lmrlgym_maze_3", "conversations": None}]))
    assert "holds no trajectories (1 AgentEval items" in refused(str(agenteval))
    invalid = tmp_path / "invalid.json"
    invalid.write_text(
        json.dumps([{"item_id": "maze_1", "conversations": [{"from": "robot", "value": "x"}]}])
    )
    assert "invalid.json[0]: trajectory 'maze_1': conversations[0] needs from" in refused(str(invalid))
    # --skip-bad: the bad line is counted and the rest exported.
    assert export(str(bad), "--skip-bad", "--out", str(out)) == 0
    assert "1 bad" in capsys.readouterr().out
    assert [i["item_id"] for i in json.loads(out.read_text())] == ["lmrlgym_maze_1", "lmrlgym_maze_2"]


def test_the_command_as_a_user_runs_it(tmp_path: Path) -> None:
    good = write(tmp_path / "good.jsonl", [traj("bird_1", task_id=1)])
    bad = tmp_path / "bad.jsonl"
    bad.write_text(good.read_text() + "{not json\n" + good.read_text())
    env = {**os.environ, "COLUMNS": "80"}

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        cmd = [AGENTGYM, "--log-level", "warning", "export", "--format", "agenttraj", *argv]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)

    missing = run(str(tmp_path / "nope"), str(bad), "--out", str(tmp_path / "p.json"))
    assert missing.returncode == 2 and f"no such file or folder: {tmp_path / 'nope'}" in missing.stdout
    malformed = run(str(bad), "--out", str(tmp_path / "p.json"))
    assert malformed.returncode == 2 and "bad.jsonl:2: not valid JSON" in malformed.stdout
    assert not (tmp_path / "p.json").exists()
