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

`read_agenttraj` also loads the original AgentTraj / AgentTraj-L / AgentEval files as published
(a JSON list, or JSON Lines, of {"item_id", "conversations"} objects; AgentEval items have
"conversations": null).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

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
