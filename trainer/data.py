"""Training data: trajectory records -> token ids and loss masks -> length-bucketed batches.

Loss goes on agent turns only, and only where the record says so:
- a record with token fields (`input_ids`, `loss_mask`) made with the same tokenizer (its
  `tokenizer` fingerprint matches) is used as it is: exactly what the policy saw and produced;
- otherwise the conversation is tokenized with the model's own chat template, turn by turn,
  with loss on `gpt` turns whose `loss` flag is true (AgentTraj's convention: the instruction,
  the environment's turns and the agent's "OK" are not trained on). Each trained turn includes
  the end-of-turn token, so the model learns to stop.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentgym.client.policies.chat import ChatTokens
from agentgym.client.trajectory import read_agenttraj, record_id

log = logging.getLogger(__name__)


class DataError(ValueError):
    pass


@dataclass
class Example:
    input_ids: list[int]
    loss_mask: list[int]  # 1 where the token is a training target
    source: str  # record id
    truncated: bool = False

    @property
    def targets(self) -> int:
        return sum(self.loss_mask)


def load_records(
    sources: Iterable[str | Path],
    *,
    envs: set[str] | None = None,
    min_reward: float | None = None,
    iteration: int | None = None,
) -> Iterator[dict[str, Any]]:
    """Records from AgentTraj/AgentEval/JSONL files, directories of them, or trajectory stores."""
    for source in sources:
        path = Path(source)
        if not path.exists():
            raise DataError(f"training data {source} does not exist")
        if path.is_dir() and (path / "STORE").exists():
            from agentgym.trainer.store import Query, TrajectoryStore

            with TrajectoryStore.open(path, readonly=True) as store:
                yield from store.records(Query.of(env=envs, min_reward=min_reward, iteration=iteration))
            continue
        files = (
            sorted(p for p in path.rglob("*") if p.suffix in (".json", ".jsonl")) if path.is_dir() else [path]
        )
        for f in files:
            for record in read_agenttraj(f):
                if not record.get("conversations"):
                    continue  # AgentEval items carry no conversation
                if envs is not None and record.get("env", record["item_id"].rpartition("_")[0]) not in envs:
                    continue
                if min_reward is not None and float(record.get("reward", 0.0)) < min_reward:
                    continue
                if iteration is not None and record.get("iteration") != iteration:
                    continue
                yield record


def conversation_tokens(chat: ChatTokens, messages: list[dict[str, Any]]) -> tuple[list[int], list[int]]:
    """Token ids and loss mask of an AgentTraj conversation, framed by the chat template exactly as
    the policies frame a live conversation (so training and acting see the same tokens)."""
    if not messages or messages[0]["from"] != "human":
        raise DataError("a conversation must start with a human turn")
    ids: list[int] = []
    mask: list[int] = []
    first = True
    prev = None
    for m in messages:
        role = m["from"]
        if role == "system":
            raise DataError("system turns are not supported in AgentTraj conversations")
        if role == prev:
            raise DataError(f"two {role} turns in a row: AgentTraj conversations alternate human and gpt")
        if role == "human":
            part = (
                chat.initial([{"role": "user", "content": m["value"]}])
                if first
                else chat.env_turn(m["value"])
            )
            ids += part
            mask += [0] * len(part)
        else:
            part = [*chat.encode(m["value"]), chat.eos]
            ids += part
            mask += [1 if m.get("loss") else 0] * len(part)
        first = False
        prev = role
    return ids, mask


def tokenize(record: dict[str, Any], chat: ChatTokens, fingerprint: str, max_length: int) -> Example | None:
    """The record as a training example, or None when it has nothing to train on."""
    if "input_ids" in record and record.get("tokenizer") == fingerprint:
        ids, mask = list(record["input_ids"]), [int(bool(m)) for m in record["loss_mask"]]
    else:
        ids, mask = conversation_tokens(chat, record["conversations"])
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
    return Example(ids, mask, record_id(record), truncated)


def tokenize_all(
    records: Iterable[dict[str, Any]], chat: ChatTokens, fingerprint: str, max_length: int
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
