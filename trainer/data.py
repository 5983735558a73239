"""Training data: trajectories -> token ids and loss masks -> length-bucketed batches.

Where trajectories come from (`Source`): AgentTraj / JSON Lines files, folders of them, and
trajectory stores; each source is read through one `Query` (agentgym.trainer.store), so a filter
means the same on a file as on the store. A bad record in a file (not JSON, a conversation that
does not alternate, ...) is skipped, counted and reported by item id; `strict=True` refuses it.

Loss goes on agent turns only, and only where the record says so:
- a trajectory with token fields (`input_ids`, `loss_mask`) made with the same tokenizer (its
  `tokenizer` fingerprint matches) is used as it is: exactly what the policy saw and produced;
- otherwise the conversation is tokenized with the model's own chat template, turn by turn,
  with loss on `gpt` turns whose `loss` flag is true (AgentTraj's convention: the instruction,
  the environment's turns and the agent's "OK" are not trained on). Each trained turn is what
  the model generates at serve time: the content, the text the template puts around it (e.g.
  Llama-2's spaces) and the end-of-turn token, so the model learns to stop.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentgym.core.chat import ChatTokens
from agentgym.core.trajectory import ReadReport, Trajectory, TrajectoryError, Turn, read_trajectories
from agentgym.trainer.store import MARKER, Query, TrajectoryStore

log = logging.getLogger(__name__)


class DataError(ValueError):
    pass


@dataclass
class Source:
    """Trajectories to train on: a file, a folder of .json/.jsonl files, or a trajectory store,
    filtered by `query` (keyword arguments of Query.of; empty: everything)."""

    path: str
    query: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, value: str | dict[str, Any] | Source, query: dict[str, Any] | None = None) -> Source:
        if isinstance(value, Source):
            return value
        if isinstance(value, dict):
            return cls(str(value["path"]), dict(value.get("query") or {}))
        return cls(str(value), dict(query or {}))


@dataclass
class Example:
    input_ids: list[int]
    loss_mask: list[int]  # 1 where the token is a training target
    source: str  # the trajectory's key (record id and iteration)
    truncated: bool = False

    @property
    def targets(self) -> int:
        return sum(self.loss_mask)


def load_trajectories(
    sources: Iterable[str | dict[str, Any] | Source],
    *,
    strict: bool = False,
    report: ReadReport | None = None,
) -> Iterator[Trajectory]:
    """Trajectories of every source, each filtered by its query, streamed (a store is read one
    trajectory at a time). Bad file records are skipped into `report` (or raise with `strict`)."""
    report = report if report is not None else ReadReport()
    for item in sources:
        source = Source.of(item)
        path = Path(source.path)
        try:
            query = Query.of(**source.query)
        except (TypeError, ValueError) as exc:
            raise DataError(f"bad filter for {source.path}: {exc}") from None
        if not path.exists():
            raise DataError(f"training data {source.path} does not exist")
        if path.is_dir() and (path / MARKER).exists():
            with TrajectoryStore.open(path, readonly=True) as store:
                for t in store.records(query):
                    report.read += 1
                    yield t
            continue
        files = (
            sorted(p for p in path.rglob("*") if p.suffix in (".json", ".jsonl")) if path.is_dir() else [path]
        )
        for f in files:
            try:
                for t in read_trajectories(f, strict=strict, report=report):
                    if query.matches(t):
                        yield t
            except TrajectoryError as exc:
                raise DataError(str(exc)) from None


def conversation_tokens(chat: ChatTokens, turns: list[Turn]) -> tuple[list[int], list[int]]:
    """Token ids and loss mask of a (valid: see Trajectory.validate) conversation, framed by the
    chat template exactly as the policies frame a live conversation (so training and acting see
    the same tokens). A leading system turn goes into the first prompt."""
    system = [{"role": "system", "content": turns[0].value}] if turns[0].role == "system" else []
    ids: list[int] = []
    mask: list[int] = []
    first = True
    for t in turns[len(system) :]:
        if t.role == "human":
            part = (
                chat.initial([*system, {"role": "user", "content": t.value}])
                if first
                else chat.env_turn(t.value)
            )
            ids += part
            mask += [0] * len(part)
        else:
            part = chat.agent_turn(t.value)
            ids += part
            mask += [1 if t.loss else 0] * len(part)
        first = False
    return ids, mask


def tokenize(t: Trajectory, chat: ChatTokens, fingerprint: str, max_length: int) -> Example | None:
    """The trajectory as a training example, or None when it has nothing to train on."""
    if t.input_ids is not None and t.loss_mask is not None and t.tokenizer == fingerprint:
        ids, mask = list(t.input_ids), list(t.loss_mask)
    else:
        ids, mask = conversation_tokens(chat, t.conversations)
    # Tokens after the last target teach nothing: drop them.
    last = max((i for i, m in enumerate(mask) if m), default=-1)
    if last < 0:
        return None
    ids, mask = ids[: last + 1], mask[: last + 1]
    truncated = len(ids) > max_length
    if truncated:
        ids, mask = ids[:max_length], mask[:max_length]
        if not any(mask):
            return None
    return Example(ids, mask, t.key, truncated)


def tokenize_all(
    records: Iterable[Trajectory], chat: ChatTokens, fingerprint: str, max_length: int
) -> tuple[list[Example], dict[str, int]]:
    examples: list[Example] = []
    stats = {"records": 0, "examples": 0, "no_targets": 0, "truncated": 0, "tokens": 0, "targets": 0}
    for record in records:
        stats["records"] += 1
        ex = tokenize(record, chat, fingerprint, max_length)
        if ex is None:
            stats["no_targets"] += 1
            continue
        stats["truncated"] += ex.truncated
        examples.append(ex)
        stats["examples"] += 1
        stats["tokens"] += len(ex.input_ids)
        stats["targets"] += ex.targets
    return examples, stats


def batches(examples: list[Example], max_tokens: int, seed: int, *, pool: int = 256) -> list[list[Example]]:
    """Length-bucketed batches: shuffle, sort within pools of `pool` examples, cut into batches whose
    padded size (rows x longest) stays within `max_tokens`, then shuffle the batches. Deterministic
    for a seed (each epoch uses its own)."""
    rng = random.Random(seed)
    order = list(examples)
    rng.shuffle(order)
    out: list[list[Example]] = []
    for start in range(0, len(order), pool):
        chunk = sorted(order[start : start + pool], key=lambda e: len(e.input_ids))
        batch: list[Example] = []
        longest = 0
        for ex in chunk:
            n = len(ex.input_ids)
            if batch and max(longest, n) * (len(batch) + 1) > max_tokens:
                out.append(batch)
                batch, longest = [], 0
            batch.append(ex)
            longest = max(longest, n)
        if batch:
            out.append(batch)
    rng.shuffle(out)
    return out


def collate(batch: list[Example], pad_id: int) -> dict[str, Any]:
    """Right-padded tensors: input_ids, attention_mask, labels (-100 where not trained)."""
    import torch

    longest = max(len(e.input_ids) for e in batch)
    input_ids = torch.full((len(batch), longest), pad_id, dtype=torch.long)
    attention = torch.zeros((len(batch), longest), dtype=torch.long)
    labels = torch.full((len(batch), longest), -100, dtype=torch.long)
    for i, e in enumerate(batch):
        n = len(e.input_ids)
        ids = torch.tensor(e.input_ids)
        input_ids[i, :n] = ids
        attention[i, :n] = 1
        m = torch.tensor(e.loss_mask, dtype=torch.bool)
        labels[i, :n] = torch.where(m, ids, torch.full_like(ids, -100))
    return {"input_ids": input_ids, "attention_mask": attention, "labels": labels}
