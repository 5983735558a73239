"""Trajectory <-> agentgym.v1.Trajectory and JSON: both codecs round-trip exactly; a record that is not
a valid trajectory is refused by the one validation, whichever codec it arrives through."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import orjson
import pytest

from agentgym.core.trajectory import Trajectory, TrajectoryError, Turn
from agentgym.v1 import trajectory_pb2 as tpb
from tests.trainer.helpers import record, trajectory


def same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Equal as JSON: same keys, values and JSON types (1 is not 1.0, 1 is not true, null is not absent)."""
    return a == b and orjson.dumps(a, option=orjson.OPT_SORT_KEYS) == orjson.dumps(
        b, option=orjson.OPT_SORT_KEYS
    )


def over_the_wire(t: Trajectory) -> Trajectory:
    wire = t.to_proto().SerializeToString()
    return Trajectory.from_proto(tpb.Trajectory.FromString(wire))


def through_json(t: Trajectory) -> Trajectory:
    return Trajectory.from_json(orjson.loads(t.dumps()))


def test_a_rollout_record_uses_the_typed_fields() -> None:
    rec = record(3, tokens=40, iteration=2)
    t = Trajectory.from_json(rec)
    msg = t.to_proto()
    assert msg.id == "maze_3@2" and msg.item_id == "maze_3" and msg.env == "maze" and msg.iteration == 2
    assert msg.task_id == 3 and msg.sample == 0 and msg.reward == 1.0 and msg.success is True
    assert (msg.seed, msg.rounds, msg.finish, msg.policy) == (3, 1, "done", "hf")
    assert not msg.HasField("tokenizer")
    assert [t.role for t in msg.conversations] == ["human", "gpt", "human", "gpt", "human"]
    assert not msg.conversations[0].HasField("loss") and msg.conversations[1].loss is False
    assert list(msg.input_ids) == rec["input_ids"] and list(msg.loss_mask) == rec["loss_mask"]
    # Tokens the policy did not generate carry NaN on the wire, null in the record.
    assert math.isnan(msg.logprobs[0]) and msg.logprobs[-1] == rec["logprobs"][-1]
    assert list(msg.weight_versions) == ["v0"]
    # Only the fields without a typed field travel as JSON.
    assert set(orjson.loads(msg.extra_json)) == {"timing"}
    assert over_the_wire(t) == t
    # The JSON the rollout engine writes is what to_json gives back, key for key and type for type.
    assert same(t.to_json(), rec)
    assert through_json(t) == t


@pytest.mark.parametrize(
    "fields",
    [
        {},  # as written by the rollout engine
        {"weight_version": ["v1", "v2"]},  # an episode across a weight update
        {"weight_version": ["v1"]},  # one version: the same as "v1"
        {"weight_version": ""},  # unknown
        {"sample": 2, "iteration": 0},
        {"reward": 1, "success": True},  # a JSON int reward is a float reward, a bool success is 1
        {"reward": 73.5, "success": 0},  # a 0-100 score
        {"logprobs": [None] * 64},  # nothing generated
        {"logprobs": [0] * 64},  # JSON ints: floats
        {"env": ""},  # derived from item_id
        {"iteration": None},
        {"tokenizer": "9f0c", "seed": 2**40, "rounds": 0, "finish": "context", "policy": "sglang"},
        {"conversations": [{"from": "human", "value": "no loss key"}]},
        {
            "conversations": [
                {"from": "system", "loss": None, "value": "sys"},
                {"from": "human", "loss": None, "value": "hi"},
                {"from": "gpt", "loss": True, "value": "Action: x"},
            ]
        },
        {"id": "a record field named id", "extra": {"nested": [1, 2.5, None, "☺"]}},  # unknown fields
    ],
)
def test_round_trip_is_exact(fields: dict[str, Any]) -> None:
    t = Trajectory.from_json({**record(5, tokens=64), **fields})
    assert over_the_wire(t) == t
    assert through_json(t) == t
    # Written again, the JSON is the same text: the first decoding fixed every JSON type.
    assert same(through_json(t).to_json(), t.to_json())
    assert over_the_wire(t).to_proto() == t.to_proto()


def test_json_values_are_normalised_once() -> None:
    """What is not kept verbatim: a JSON int reward becomes a float, one weight version is a string."""
    t = trajectory(5, reward=1, success=True, weight_version=["v1"], logprobs=[0] * 64)
    assert type(t.reward) is float and t.success is True and t.weight_versions == ["v1"]
    assert all(type(v) is float for v in t.logprobs or ())
    out = t.to_json()
    assert same(out, {**out, "reward": 1.0, "success": 1, "weight_version": "v1"})
    # Unknown fields are kept verbatim, in Trajectory.extra.
    extra = trajectory(5, id="a record field named id", extra={"nested": [1, 2.5, None, "☺"]})
    assert extra.extra == {"id": "a record field named id", "extra": {"nested": [1, 2.5, None, "☺"]}}
    assert over_the_wire(extra).extra == extra.extra


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"loss_mask": [2] * 64}, "loss_mask values must be 0 or 1"),
        ({"input_ids": [], "loss_mask": [], "logprobs": []}, "input_ids is empty"),
        ({"task_id": -1}, "task_id must be a non-negative integer"),
        ({"item_id": "_5", "env": ""}, "no env"),  # neither set nor derivable from item_id
        ({"conversations": None}, "no conversation"),  # AgentEval items: tasks, not trajectories
        ({"conversations": []}, "no conversation"),
        (
            {"conversations": [{"from": "gpt", "loss": True, "value": "x", "extra": 1}]},
            r"conversations\[0\] is a gpt turn where a human turn belongs",
        ),
        (
            {
                "conversations": [
                    {"from": "human", "loss": None, "value": "a"},
                    {"from": "human", "loss": None, "value": "b"},
                ]
            },
            r"conversations\[1\] is a human turn where a gpt turn belongs",
        ),
        ({"conversations": [{"from": "robot", "loss": None, "value": "x"}]}, "needs from"),
        ({"conversations": [{"from": "human", "loss": "yes", "value": "x"}]}, "needs from"),
        ({"reward": float("nan")}, "reward must be a finite number"),
        ({"reward": "1"}, "field 'reward' has the wrong type"),
        ({"success": 2}, "field 'success' has the wrong type"),
        ({"loss_mask": [0, 1]}, "input_ids has 64 tokens but loss_mask has 2"),
        ({"logprobs": [None] * 3 + [float("-inf")] * 61}, r"logprobs\[3\] is -inf"),
        ({"weight_version": [1]}, "field 'weight_version' has the wrong type"),
    ],
)
def test_invalid_records_are_refused_by_both_codecs(fields: dict[str, Any], message: str) -> None:
    rec = {**record(5), **fields}
    with pytest.raises(TrajectoryError, match=message):
        Trajectory.from_json(rec)
    try:
        unchecked = Trajectory.from_json(rec, validate=False)
    except TrajectoryError:
        return  # not even a record shape: there is nothing to send
    if unchecked.input_ids == [] or (unchecked.task_id or 0) < 0:
        return  # the wire cannot carry it (no token is no field; task_id is unsigned)
    with pytest.raises(TrajectoryError, match=message):
        unchecked.validate()
    with pytest.raises(TrajectoryError, match=message):
        Trajectory.from_proto(unchecked.to_proto())


def test_agenttraj_items_round_trip() -> None:
    """Records as the original AgentTraj files have them: item_id and conversations only."""
    rec = {"item_id": "webshop_12", "conversations": [{"from": "human", "loss": None, "value": "hi"},
                                                       {"from": "gpt", "loss": True, "value": "Action: x"}]}  # fmt: skip
    t = Trajectory.from_json(rec)
    assert t.env == "webshop" and t.task_id is None and t.reward is None and t.success is None
    msg = t.to_proto()
    assert msg.id == "webshop_12" and not msg.HasField("reward") and not msg.extra_json
    assert over_the_wire(t) == t and through_json(t) == t
    assert same(t.to_json(), {**rec, "env": "webshop"})  # the derived env is written out
    # AgentGym's item ids name our envs through its aliases.
    assert Trajectory.from_json({**rec, "item_id": "lmrlgym_maze_3"}).env == "maze"


def test_store_key_adds_sample_and_iteration() -> None:
    assert trajectory(1).key == "maze_1" and trajectory(1).record_id == "maze_1"
    assert trajectory(1, sample=3).key == "maze_1#3"
    assert trajectory(1, sample=3, iteration=4).key == "maze_1#3@4"
    assert trajectory(1, sample=3, iteration=4).record_id == "maze_1#3"
    with pytest.raises(TrajectoryError, match="no item_id"):
        Trajectory.from_json({"conversations": []})
    with pytest.raises(TrajectoryError, match="item_id must be a non-empty string"):
        Trajectory(item_id="", conversations=[Turn("human", "x")]).validate()


def test_malformed_messages_do_not_decode() -> None:
    human = [tpb.Turn(role="human", value="x")]
    with pytest.raises(TrajectoryError, match="repeats typed field"):
        Trajectory.from_proto(
            tpb.Trajectory(id="maze_1", item_id="maze_1", extra_json='{"item_id": "maze_2"}')
        )
    with pytest.raises(TrajectoryError, match="repeats typed field"):
        Trajectory.from_proto(
            tpb.Trajectory(id="maze_1", item_id="maze_1", extra_json='{"weight_version": "a"}')
        )
    with pytest.raises(TrajectoryError, match="must be a JSON object"):
        Trajectory.from_proto(tpb.Trajectory(id="maze_1", item_id="maze_1", extra_json="[1, 2]"))
    with pytest.raises(TrajectoryError, match="not valid JSON"):
        Trajectory.from_proto(tpb.Trajectory(id="maze_1", item_id="maze_1", extra_json="{nope"))
    with pytest.raises(TrajectoryError, match="timing must be a JSON object"):
        Trajectory.from_proto(tpb.Trajectory(id="maze_1", item_id="maze_1", conversations=human,
                                             extra_json='{"timing": 5}'))  # fmt: skip
    # The id is the trajectory's key, nothing else.
    with pytest.raises(TrajectoryError, match="id must be the trajectory's key 'maze_1@2'"):
        Trajectory.from_proto(tpb.Trajectory(id="maze_1", item_id="maze_1", iteration=2, conversations=human))
    with pytest.raises(TrajectoryError, match="loss_mask without input_ids"):
        Trajectory.from_proto(
            tpb.Trajectory(id="maze_1", item_id="maze_1", loss_mask=[1], conversations=human)
        )
    ok = Trajectory.from_proto(tpb.Trajectory(id="maze_1", item_id="maze_1", conversations=human))
    assert ok == Trajectory(item_id="maze_1", conversations=[Turn("human", "x")])


def test_unserializable_records_are_refused_at_the_client() -> None:
    t = dataclasses.replace(trajectory(1), timing={"start": object()})
    with pytest.raises(TrajectoryError, match="not JSON-serializable"):
        t.to_proto()
    with pytest.raises(TrajectoryError, match="not JSON-serializable"):
        t.dumps()
    odd = dataclasses.replace(trajectory(1), extra={"handle": object()})
    with pytest.raises(TrajectoryError, match="not JSON-serializable"):
        odd.to_proto()
