"""Trajectory records on disk: AgentTraj-compatible JSON, plus token-level fields.

One record per episode (JSON Lines when we write them)::

    {"item_id": "maze_3",                       # AgentTraj: <env>_<task index>
     "conversations": [{"from": "human"|"gpt", "loss": null|false|true, "value": "..."}, ...],
     "reward": 1.0, "success": 1,               # AgentTraj/AgentEval: final score, 0/1
     "env": "maze", "task_id": 3, "seed": 3, "sample": 0, "rounds": 11,
     "finish": "done"|"truncated"|"context", "policy": "hf",
     "input_ids": [...], "loss_mask": [...], "logprobs": [...],   # token-level policies only
     "weight_version": "...", "completion_tokens": 120,
     "timing": {"start": 1.7e9, "duration_s": 3.2, "policy_s": 2.9, "env_s": 0.1}}

`to_proto` / `from_proto` convert a record to the `agentgym.v1.Trajectory` message that carries it to
the trainer and back (exactly: see trajectory.proto); `store_key` is its identity in the trainer's store.

`read_agenttraj` also loads the original AgentTraj / AgentTraj-L / AgentEval files as published
(a JSON list, or JSON Lines, of {"item_id", "conversations"} objects; AgentEval items have
"conversations": null).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from agentgym.v1 import trajectory_pb2 as tpb

# AgentGym's item_id prefixes that differ from our env names.
ENV_ALIASES = {"lmrlgym_maze": "maze", "lmrlgym_wordle": "wordle", "sqlgym": "bird"}


class TrajectoryFormatError(ValueError):
    pass


def split_item_id(item_id: str) -> tuple[str, int]:
    """("maze", 3) from "maze_3" (AgentGym's convention: the index follows the last underscore)."""
    prefix, sep, index = str(item_id).rpartition("_")
    if not sep or not index.isdigit():
        raise TrajectoryFormatError(f"item_id {item_id!r} is not <env>_<task index>")
    return ENV_ALIASES.get(prefix, prefix), int(index)


def record_id(record: dict[str, Any]) -> str:
    """A record's identity for resuming and de-duplication: item_id, plus the sample when > 0."""
    sample = int(record.get("sample") or 0)
    return record["item_id"] if sample == 0 else f"{record['item_id']}#{sample}"


def store_key(record: dict[str, Any]) -> str:
    """A record's key in the trainer's store: its record id, plus "@<iteration>" when it carries an
    AgentEvol iteration (each iteration explores the same tasks again, and every pass is kept)."""
    if not isinstance(record.get("item_id"), str) or not record["item_id"]:
        raise TrajectoryFormatError(f"record has no item_id: keys {sorted(record)[:10]}")
    key = record_id(record)
    iteration = record.get("iteration")
    return key if iteration is None else f"{key}@{iteration}"


def validate(record: Any, where: str) -> dict[str, Any]:
    if not isinstance(record, dict):
        raise TrajectoryFormatError(f"{where}: expected an object, got {type(record).__name__}")
    if "item_id" not in record:
        raise TrajectoryFormatError(f"{where}: no item_id")
    conv = record.get("conversations")
    if conv is not None:
        if not isinstance(conv, list):
            raise TrajectoryFormatError(f"{where}: conversations must be a list or null")
        for i, m in enumerate(conv):
            if (
                not isinstance(m, dict)
                or m.get("from") not in ("human", "gpt", "system")
                or not isinstance(m.get("value"), str)
            ):
                raise TrajectoryFormatError(
                    f"{where}: conversations[{i}] needs from (human|gpt) and a string value"
                )
    if "input_ids" in record and len(record["input_ids"]) != len(record.get("loss_mask", ())):
        raise TrajectoryFormatError(f"{where}: input_ids and loss_mask differ in length")
    return record


def read_agenttraj(path: str | Path) -> Iterator[dict[str, Any]]:
    """Records from an AgentTraj/AgentEval file: a JSON list or JSON Lines. A torn last line (a
    writer killed mid-line) is skipped; any other malformed line is an error naming file and line."""
    path = Path(path)
    with path.open("rb") as f:
        head = f.read(1 << 16).lstrip()
    if head.startswith(b"["):
        try:
            items = json.loads(path.read_text())
        except ValueError as exc:
            raise TrajectoryFormatError(f"{path}: not valid JSON: {exc}") from exc
        for i, item in enumerate(items):
            yield validate(item, f"{path}[{i}]")
        return
    yield from read_jsonl(path)


def read_jsonl(path: str | Path) -> Iterator[dict[str, Any]]:
    path = Path(path)
    with path.open("rb") as f:
        lines = f.read().split(b"\n")
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            item = orjson.loads(line)
        except ValueError as exc:
            if n == len(lines) or (n == len(lines) - 1 and not lines[-1]):
                continue  # torn tail: the write was cut off
            raise TrajectoryFormatError(f"{path}:{n}: not valid JSON: {exc}") from exc
        yield validate(item, f"{path}:{n}")


class JsonlWriter:
    """Appends records, one JSON line each, flushed per record (fsync'd every `fsync_every`)."""

    def __init__(self, path: str | Path, fsync_every: int = 1) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._repair_tail()
        self._f = self.path.open("ab")
        self.fsync_every = fsync_every
        self._since_sync = 0

    def _repair_tail(self) -> None:
        """Cut a torn last line left by a killed writer, so appends start on a fresh line."""
        if not self.path.exists() or self.path.stat().st_size == 0:
            return
        with self.path.open("rb+") as f:
            data = f.read()
            if data.endswith(b"\n"):
                return
            cut = data.rfind(b"\n") + 1
            f.truncate(cut)

    def write(self, record: dict[str, Any]) -> None:
        self._f.write(orjson.dumps(record) + b"\n")
        self._f.flush()
        self._since_sync += 1
        if self.fsync_every and self._since_sync >= self.fsync_every:
            os.fsync(self._f.fileno())
            self._since_sync = 0

    def close(self) -> None:
        if not self._f.closed:
            self._f.flush()
            os.fsync(self._f.fileno())
            self._f.close()


# --- the wire form: agentgym.v1.Trajectory ----------------------------------------------------------
# A record field goes into its typed field only when its value has exactly that field's shape (so
# that decoding gives back the same value and JSON type); anything else travels in extra_json.
_U32 = 1 << 32
_U64 = 1 << 64
_TURN_KEYS = frozenset(("from", "loss", "value"))


_NONE = type(None)


def _uint(value: Any, bound: int) -> bool:
    return type(value) is int and 0 <= value < bound


# The list checks below run over every token of a trajectory: they use map/set (C loops), not
# a Python expression per element.
def _uints(value: Any, bound: int) -> bool:
    return (
        type(value) is list
        and bool(value)
        and set(map(type, value)) == {int}
        and min(value) >= 0
        and max(value) < bound
    )


def _logprobs(value: Any) -> bool:
    """A non-empty list of floats (not NaN: NaN is the wire's null) and nulls."""
    if type(value) is not list or not value or not set(map(type, value)) <= {float, _NONE}:
        return False
    return not any(map(math.isnan, [v for v in value if v is not None]))


def _turn(turn: Any) -> bool:
    return (
        type(turn) is dict
        and turn.keys() == _TURN_KEYS
        and type(turn["from"]) is str
        and type(turn["value"]) is str
        and (turn["loss"] is None or type(turn["loss"]) is bool)
    )


def _typed(msg: tpb.Trajectory, key: str, value: Any) -> bool:
    """Set the typed field for `key` if `value` fits it exactly; False when it must go to extra_json."""
    match key:
        case "item_id" if type(value) is str and value:
            msg.item_id = value
        case "env" if type(value) is str:
            msg.env = value
        case "task_id" | "sample" if _uint(value, _U64):
            setattr(msg, key, value)
        case "iteration" if _uint(value, _U32):
            msg.iteration = value
        case "reward" if type(value) is float:
            msg.reward = value
        case "success" if type(value) is int and value in (0, 1):
            msg.success = bool(value)
        case "conversations" if type(value) is list and value and all(_turn(t) for t in value):
            msg.conversations.extend(
                tpb.Turn(role=t["from"], value=t["value"])
                if t["loss"] is None
                else tpb.Turn(role=t["from"], value=t["value"], loss=t["loss"])
                for t in value
            )
        case "input_ids" | "loss_mask" if _uints(value, _U32):
            getattr(msg, key).extend(value)
        case "logprobs" if _logprobs(value):
            msg.logprobs.extend([math.nan if v is None else v for v in value])
        case "weight_version" if type(value) is str:
            msg.weight_version = value
        case "weight_version" if type(value) is list and value and all(type(v) is str for v in value):
            msg.weight_versions.extend(value)
        case _:
            return False
    return True


def to_proto(record: dict[str, Any], id: str | None = None) -> tpb.Trajectory:
    """The message carrying `record` to the trainer; `id` defaults to `store_key(record)`.
    `from_proto` gives back an equal record (same keys, values and JSON types)."""
    msg = tpb.Trajectory(id=store_key(record) if id is None else id)
    extra = {key: value for key, value in record.items() if not _typed(msg, key, value)}
    if extra:
        try:
            msg.extra_json = orjson.dumps(extra).decode()
        except TypeError as exc:
            raise TrajectoryFormatError(f"record {msg.id!r} is not JSON-serializable: {exc}") from exc
    return msg


def from_proto(msg: tpb.Trajectory) -> dict[str, Any]:
    """The record a Trajectory message carries. Raises TrajectoryFormatError when extra_json is not
    a JSON object or repeats a typed field (the message is then not a valid trajectory)."""
    record: dict[str, Any] = {}
    if msg.item_id:
        record["item_id"] = msg.item_id
    if msg.conversations:
        record["conversations"] = [
            {"from": t.role, "loss": t.loss if t.HasField("loss") else None, "value": t.value}
            for t in msg.conversations
        ]
    if msg.HasField("reward"):
        record["reward"] = msg.reward
    if msg.HasField("success"):
        record["success"] = int(msg.success)
    for key in ("env", "task_id", "sample", "iteration", "weight_version"):
        if msg.HasField(key):
            record[key] = getattr(msg, key)
    if msg.weight_versions:
        if "weight_version" in record:
            raise TrajectoryFormatError("both weight_version and weight_versions are set; set one")
        record["weight_version"] = list(msg.weight_versions)
    if msg.input_ids:
        record["input_ids"] = list(msg.input_ids)
    if msg.loss_mask:
        record["loss_mask"] = list(msg.loss_mask)
    if msg.logprobs:
        record["logprobs"] = [None if v != v else v for v in msg.logprobs]  # NaN != NaN
    if msg.extra_json:
        try:
            extra = orjson.loads(msg.extra_json)
        except orjson.JSONDecodeError as exc:
            raise TrajectoryFormatError(f"extra_json is not valid JSON: {exc}") from exc
        if type(extra) is not dict:
            raise TrajectoryFormatError(f"extra_json must be a JSON object, got {type(extra).__name__}")
        twice = sorted(set(extra) & set(record))
        if twice:
            raise TrajectoryFormatError(f"extra_json repeats typed field(s) {twice}; set each field once")
        record.update(extra)
    return record
