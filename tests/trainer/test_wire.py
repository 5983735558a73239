"""Records <-> agentgym.v1.Trajectory: the round trip is exact, whatever shape a record's fields have."""

from __future__ import annotations

import math
from typing import Any

import orjson
import pytest

from agentgym.client.trajectory import TrajectoryFormatError, from_proto, store_key, to_proto
from agentgym.v1 import trajectory_pb2 as tpb
from tests.trainer.helpers import record


def same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Equal as JSON: same keys, values and JSON types (1 is not 1.0, 1 is not true, null is not absent)."""
    return a == b and orjson.dumps(a, option=orjson.OPT_SORT_KEYS) == orjson.dumps(
        b, option=orjson.OPT_SORT_KEYS
    )


def round_trip(rec: dict[str, Any]) -> dict[str, Any]:
    wire = to_proto(rec).SerializeToString()
    return from_proto(tpb.Trajectory.FromString(wire))


def test_a_rollout_record_uses_the_typed_fields() -> None:
    rec = record(3, tokens=40, iteration=2)
    msg = to_proto(rec)
    assert msg.id == "maze_3@2" and msg.item_id == "maze_3" and msg.env == "maze" and msg.iteration == 2
    assert msg.task_id == 3 and msg.sample == 0 and msg.reward == 1.0 and msg.success is True
    assert [t.role for t in msg.conversations] == ["human", "gpt", "human", "gpt", "human"]
    assert not msg.conversations[0].HasField("loss") and msg.conversations[1].loss is False
    assert list(msg.input_ids) == rec["input_ids"] and list(msg.loss_mask) == rec["loss_mask"]
    # Tokens the policy did not generate carry NaN on the wire, null in the record.
    assert math.isnan(msg.logprobs[0]) and msg.logprobs[-1] == rec["logprobs"][-1]
    assert msg.weight_version == "v0" and not msg.weight_versions
    # Only the untyped fields travel as JSON.
    assert set(orjson.loads(msg.extra_json)) == {"seed", "rounds", "finish", "policy", "timing"}
    assert same(round_trip(rec), rec)


@pytest.mark.parametrize(
    "fields",
    [
        {},  # as written by the rollout engine
        {"weight_version": ["v1", "v2"]},  # an episode across a weight update
        {"weight_version": ["v1"]},  # a one-element list stays a list
        {"weight_version": ""},
        {"sample": 2, "iteration": 0},
        {"reward": 1, "success": True},  # an int reward, a bool success: kept as they are
        {"reward": 73.5, "success": 0},  # a 0-100 score
        {"logprobs": [None] * 64},  # nothing generated
        {"logprobs": [0] * 64},  # ints, not floats: carried as JSON
        {"loss_mask": [2] * 64},  # not 0/1: carried (the store refuses it, not the codec)
        {"input_ids": [], "loss_mask": [], "logprobs": []},
        {"env": ""},
        {"task_id": -1},
        {"iteration": None},
        {"conversations": None},  # AgentEval items
        {"conversations": []},
        {"conversations": [{"from": "human", "value": "no loss key"}]},
        {"conversations": [{"from": "gpt", "loss": True, "value": "x", "extra": 1}]},
        {"conversations": [{"from": "gpt", "loss": 1, "value": "x"}]},
        {"id": "a record field named id", "extra": {"nested": [1, 2.5, None, "☺"]}},
    ],
)
def test_round_trip_is_exact(fields: dict[str, Any]) -> None:
    rec = record(5, tokens=64, **fields)
    assert same(round_trip(rec), rec)


def test_agenttraj_items_round_trip() -> None:
    """Records as the original AgentTraj files have them: item_id and conversations only."""
    rec = {"item_id": "webshop_12", "conversations": [{"from": "human", "loss": None, "value": "hi"},
                                                       {"from": "gpt", "loss": True, "value": "Action: x"}]}  # fmt: skip
    msg = to_proto(rec)
    assert msg.id == "webshop_12" and not msg.HasField("reward") and not msg.extra_json
    assert same(round_trip(rec), rec)


def test_store_key_adds_sample_and_iteration() -> None:
    assert store_key(record(1)) == "maze_1"
    assert store_key(record(1, sample=3)) == "maze_1#3"
    assert store_key(record(1, sample=3, iteration=4)) == "maze_1#3@4"
    with pytest.raises(TrajectoryFormatError, match="no item_id"):
        store_key({"conversations": []})


def test_malformed_messages_do_not_decode() -> None:
    with pytest.raises(TrajectoryFormatError, match="repeats typed field"):
        from_proto(tpb.Trajectory(id="x", item_id="maze_1", extra_json='{"item_id": "maze_2"}'))
    with pytest.raises(TrajectoryFormatError, match="must be a JSON object"):
        from_proto(tpb.Trajectory(id="x", item_id="maze_1", extra_json="[1, 2]"))
    with pytest.raises(TrajectoryFormatError, match="not valid JSON"):
        from_proto(tpb.Trajectory(id="x", item_id="maze_1", extra_json="{nope"))
    with pytest.raises(TrajectoryFormatError, match="both weight_version and weight_versions"):
        from_proto(tpb.Trajectory(id="x", item_id="maze_1", weight_version="a", weight_versions=["b"]))


def test_unserializable_records_are_refused_at_the_client() -> None:
    with pytest.raises(TrajectoryFormatError, match="not JSON-serializable"):
        to_proto(record(1, timing=object()))
