"""The one trajectory record: ids and aliases, the one validation, both codecs, reading files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from agentgym.core.trajectory import (
    ReadReport,
    Trajectory,
    TrajectoryError,
    Turn,
    read_trajectories,
    split_item_id,
)
from agentgym.trainer.data import Source, load_trajectories
from agentgym.trainer.store import Query

CONVERSATION = [
    {"from": "human", "loss": None, "value": "Reach the goal."},
    {"from": "gpt", "loss": False, "value": "OK."},
    {"from": "human", "loss": None, "value": "You are at 1, 1."},
    {"from": "gpt", "loss": True, "value": "Thought: down.\n\nAction:\nmove down"},
]


def agenttraj(item_id: str, **fields: object) -> dict[str, object]:
    """An item as AgentGym publishes it in AgentTraj(-L): item_id and conversations, no reward."""
    return {"item_id": item_id, "conversations": CONVERSATION, **fields}


def full() -> Trajectory:
    return Trajectory(
        item_id="maze_3", conversations=[Turn(m["from"], m["value"], m["loss"]) for m in CONVERSATION],  # type: ignore[arg-type]
        reward=1.0, success=True, task_id=3, sample=2, iteration=4, seed=3, rounds=1, max_steps=15,
        step_rewards=[1.0], finish="done", policy="sglang", tokenizer="abc", input_ids=[5, 6, 7], loss_mask=[0, 1, 1], logprobs=[None, -0.5, -1e-9],
        weight_versions=["v1", "v2"], timing={"start": 1.5, "duration_s": 0.25}, extra={"note": {"a": [1]}},
    )  # fmt: skip


def test_ids_and_aliases() -> None:
    assert split_item_id("lmrlgym_maze_3") == ("maze", 3)
    assert split_item_id("sqlgym_12") == ("bird", 12)
    assert Trajectory.from_json(agenttraj("lmrlgym_wordle_7")).env == "wordle"
    t = full()
    assert (t.record_id, t.key, t.env, t.weight_version) == ("maze_3#2", "maze_3#2@4", "maze", None)
    with pytest.raises(TrajectoryError, match="not <env>_<task index>"):
        split_item_id("maze")


def test_json_and_proto_round_trip_exactly() -> None:
    t = full().validate()
    assert Trajectory.from_json(json.loads(t.dumps())) == t
    msg = t.to_proto()
    assert msg.id == t.key and math.isnan(msg.logprobs[0])
    assert Trajectory.from_proto(type(msg).FromString(msg.SerializeToString())) == t
    bare = Trajectory.from_json(agenttraj("webshop_6"))
    assert Trajectory.from_proto(bare.to_proto()) == bare
    assert bare.to_json()["conversations"] == CONVERSATION and "reward" not in bare.to_json()


def test_step_limit_and_step_rewards_round_trip() -> None:
    item = agenttraj("maze_1", rounds=3, max_steps=15, step_rewards=[0, -0.25, 1])  # JSON ints: floats
    t = Trajectory.from_json(item)
    assert t.max_steps == 15 and t.step_rewards == [0.0, -0.25, 1.0]
    assert all(type(v) is float for v in t.step_rewards)
    out = t.to_json()
    assert (out["max_steps"], out["step_rewards"]) == (15, [0.0, -0.25, 1.0])
    assert Trajectory.from_json(json.loads(t.dumps())) == t
    msg = t.to_proto()
    assert msg.max_steps == 15 and list(msg.step_rewards) == [0.0, -0.25, 1.0]
    assert Trajectory.from_proto(type(msg).FromString(msg.SerializeToString())) == t
    # A limit of 0 is kept (set, not unknown); rewards of 0 are kept (a list, not empty).
    zero = Trajectory.from_json(agenttraj("maze_1", rounds=1, max_steps=0, step_rewards=[0.0]))
    back = Trajectory.from_proto(zero.to_proto())
    assert back == zero and back.max_steps == 0 and back.step_rewards == [0.0]
    # Unset and empty: None, in the record, in JSON and on the wire.
    bare = Trajectory.from_json(agenttraj("maze_1", rounds=0, step_rewards=[]))
    assert bare.max_steps is None and bare.step_rewards is None
    assert "max_steps" not in bare.to_json() and "step_rewards" not in bare.to_json()
    msg = bare.to_proto()
    assert not msg.HasField("max_steps") and not msg.step_rewards
    assert Trajectory.from_proto(msg) == bare


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"conversations": CONVERSATION[1:]},
            "conversations\\[0\\] is a gpt turn where a human turn belongs",
        ),
        ({"conversations": [*CONVERSATION[:2], CONVERSATION[1]]}, "conversations\\[2\\] is a gpt turn"),
        ({"conversations": [{"from": "robot", "value": "x"}]}, "needs from \\(human\\|gpt\\|system\\)"),
        ({"conversations": []}, "no conversation"),
        ({"item_id": ""}, "item_id must be a non-empty string"),
        ({"reward": "high"}, "field 'reward' has the wrong type"),
        ({"reward": float("inf")}, "reward must be a finite number"),
        ({"input_ids": [1, 2], "loss_mask": [1]}, "input_ids has 2 tokens but loss_mask has 1"),
        ({"input_ids": [1], "loss_mask": [2]}, "loss_mask values must be 0 or 1"),
        ({"input_ids": [1], "loss_mask": [1], "logprobs": [1e999]}, "logprobs\\[0\\] is inf"),
        ({"loss_mask": [1]}, "loss_mask or logprobs without input_ids"),
        ({"sample": -1}, "sample must be a non-negative integer"),
        ({"max_steps": -1}, "max_steps must be a non-negative integer, got -1"),
        ({"max_steps": 2**32}, "max_steps 4294967296 is too large"),
        ({"max_steps": "15"}, "field 'max_steps' has the wrong type"),
        ({"rounds": 16, "max_steps": 15}, "rounds is 16 but max_steps is 15"),
        ({"step_rewards": 1.0}, "field 'step_rewards' has the wrong type"),
        (
            {"rounds": 2, "step_rewards": [0.0, 1e999]},
            "step_rewards\\[1\\] is inf; step rewards must be finite",
        ),
        ({"rounds": 2, "step_rewards": [float("nan"), 0.0]}, "step_rewards\\[0\\] is nan"),
        ({"rounds": 1, "step_rewards": ["1"]}, "step_rewards\\[0\\] is '1'"),
        (
            {"rounds": 3, "step_rewards": [0.0, 1.0]},
            "step_rewards must have one entry per round \\(3 rounds, 2 step rewards\\)",
        ),
    ],
)
def test_one_validation_with_one_set_of_messages(change: dict[str, object], message: str) -> None:
    with pytest.raises(TrajectoryError, match=message):
        Trajectory.from_json({**agenttraj("maze_1"), **change})


def test_step_fields_are_validated_on_the_wire_too() -> None:
    """from_proto refuses what validate refuses; a limit of 0 bounds nothing; without rounds the
    step rewards need no particular length."""
    ok = Trajectory.from_json(agenttraj("maze_1", rounds=2, max_steps=2, step_rewards=[0.0, 1.0]))
    msg = ok.to_proto()
    msg.rounds = 3
    with pytest.raises(TrajectoryError, match="rounds is 3 but max_steps is 2"):
        Trajectory.from_proto(msg)
    msg.max_steps = 0
    with pytest.raises(TrajectoryError, match="one entry per round \\(3 rounds, 2 step rewards\\)"):
        Trajectory.from_proto(msg)
    msg.step_rewards.append(float("-inf"))
    with pytest.raises(TrajectoryError, match="step_rewards\\[2\\] is -inf"):
        Trajectory.from_proto(msg)
    msg.step_rewards[2] = 0.5
    assert Trajectory.from_proto(msg).step_rewards == [0.0, 1.0, 0.5]
    msg.ClearField("rounds")
    msg.step_rewards.append(0.0)
    assert Trajectory.from_proto(msg).rounds is None


def test_a_system_turn_may_open_the_conversation() -> None:
    t = Trajectory.from_json(
        agenttraj("maze_1", conversations=[{"from": "system", "value": "Be brief."}, *CONVERSATION])
    )
    assert t.conversations[0].role == "system"


def write_agenttraj(path: Path, items: list[object], *, lines: bool) -> None:
    """A file in AgentTraj's layout (a JSON list) or as JSON Lines."""
    path.write_text("\n".join(json.dumps(i) for i in items) + "\n" if lines else json.dumps(items))


@pytest.mark.parametrize("lines", [False, True])
def test_a_corrupt_record_is_skipped_and_reported_by_item_id(tmp_path: Path, lines: bool) -> None:
    bad = agenttraj("maze_2", conversations=[CONVERSATION[0], CONVERSATION[2]])  # two human turns in a row
    path = tmp_path / ("traj.jsonl" if lines else "traj.json")
    write_agenttraj(path, [agenttraj("maze_1"), bad, agenttraj("maze_3")], lines=lines)
    report = ReadReport()
    got = [t.item_id for t in read_trajectories(path, report=report)]
    assert got == ["maze_1", "maze_3"]
    assert report.read == 2 and [s[1] for s in report.skipped] == ["maze_2"]
    assert "maze_2" in report.summary() and "human turn where a gpt turn belongs" in report.summary()
    with pytest.raises(TrajectoryError, match="maze_2"):
        list(read_trajectories(path, strict=True))


def test_a_line_that_is_not_json_is_skipped_unless_strict(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text(
        json.dumps(agenttraj("maze_1")) + "\n{not json\n" + json.dumps(agenttraj("maze_2")) + "\n"
    )
    report = ReadReport()
    assert [t.item_id for t in read_trajectories(path, report=report)] == ["maze_1", "maze_2"]
    assert report.skipped[0][0].endswith("t.jsonl:2")
    with pytest.raises(TrajectoryError, match="not valid JSON"):
        list(read_trajectories(path, strict=True))


def test_env_filter_keeps_agentgym_aliases(tmp_path: Path) -> None:
    """The bug this record fixed: `--envs maze` dropped every lmrlgym_maze_* record of AgentTraj."""
    path = tmp_path / "agenttraj.json"
    write_agenttraj(
        path, [agenttraj("lmrlgym_maze_1"), agenttraj("webshop_4"), agenttraj("maze_9")], lines=False
    )
    got = [t.item_id for t in load_trajectories([Source(str(path), {"env": ["maze"]})])]
    assert got == ["lmrlgym_maze_1", "maze_9"]


def test_min_reward_and_records_without_a_reward(tmp_path: Path) -> None:
    """AgentTraj's records carry no reward: a reward bound drops them unless keep_unrewarded."""
    path = tmp_path / "mixed.jsonl"
    write_agenttraj(path, [agenttraj("maze_1"), agenttraj("maze_2", reward=0.0), agenttraj("maze_3", reward=1.0)],
                    lines=True)  # fmt: skip
    strict = [t.item_id for t in load_trajectories([Source(str(path), {"min_reward": 1.0})])]
    kept = [
        t.item_id
        for t in load_trajectories([Source(str(path), {"min_reward": 1.0, "keep_unrewarded": True})])
    ]
    assert strict == ["maze_3"] and kept == ["maze_1", "maze_3"]
    assert Query.of(keep_unrewarded=True).matches(Trajectory.from_json(agenttraj("maze_1")))
