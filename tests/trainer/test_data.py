"""Loss masks: exactly the agent's tokens are trained, checked token by token."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import orjson
import pytest
from transformers import AutoTokenizer

from agentgym.core.chat import ACK, ChatTokens
from agentgym.core.trajectory import ReadReport, Trajectory, TrajectoryError, Turn
from agentgym.trainer.data import (
    DataError,
    batches,
    collate,
    conversation_tokens,
    load_trajectories,
    tokenize,
)


@pytest.fixture(scope="module")
def chat(tiny_model: str) -> ChatTokens:
    return ChatTokens(AutoTokenizer.from_pretrained(tiny_model))


CONVERSATION = [
    Turn("human", "Solve the maze."),
    Turn("gpt", ACK, loss=False),
    Turn("human", "The goal is at position 8, 6."),
    Turn("gpt", "Thought:\nUp.\n\nAction:\nmove up", loss=True),
    Turn("human", "There is a wall above you."),
    Turn("gpt", "Thought:\nDown.\n\nAction:\nmove down", loss=True),
    Turn("human", "Success"),
]


def test_loss_mask_token_by_token(chat: ChatTokens) -> None:
    ids, mask = conversation_tokens(chat, CONVERSATION)
    # Built by hand, turn by turn: (tokens, trained?)
    expected: list[tuple[list[int], int]] = [
        (chat.encode("<|im_start|>user\nSolve the maze.<|im_end|>\n<|im_start|>assistant\n"), 0),
        ([*chat.encode(ACK), chat.eos], 0),  # the acknowledgement: loss false
        (chat.encode("\n<|im_start|>user\nThe goal is at position 8, 6.<|im_end|>\n<|im_start|>assistant\n"), 0),
        ([*chat.encode("Thought:\nUp.\n\nAction:\nmove up"), chat.eos], 1),  # the agent, with its end of turn
        (chat.encode("\n<|im_start|>user\nThere is a wall above you.<|im_end|>\n<|im_start|>assistant\n"), 0),
        ([*chat.encode("Thought:\nDown.\n\nAction:\nmove down"), chat.eos], 1),
        (chat.encode("\n<|im_start|>user\nSuccess<|im_end|>\n<|im_start|>assistant\n"), 0),
    ]  # fmt: skip
    assert ids == [t for part, _ in expected for t in part]
    assert mask == [m for part, m in expected for _ in part]
    # And the whole is what the model's template renders.
    rendered = chat.tokenizer.apply_chat_template(
        [{"role": "user" if t.role == "human" else "assistant", "content": t.value} for t in CONVERSATION],
        tokenize=False, add_generation_prompt=True,
    )  # fmt: skip
    assert ids == chat.encode(rendered)


def test_trailing_env_turn_dropped_and_truncation(chat: ChatTokens) -> None:
    record = Trajectory(item_id="maze_1", conversations=CONVERSATION).validate()
    ex = tokenize(record, chat, chat.fingerprint, max_length=10_000)
    assert (
        ex is not None and ex.loss_mask[-1] == 1 and ex.input_ids[-1] == chat.eos
    )  # ends on the agent's EOS
    full_targets = ex.targets
    short = tokenize(record, chat, chat.fingerprint, max_length=len(ex.input_ids) - 3)
    assert short is not None and short.truncated and short.targets == full_targets - 3
    assert tokenize(record, chat, chat.fingerprint, max_length=5) is None  # no target left
    no_loss = Trajectory(
        item_id="maze_2",
        conversations=[dataclasses.replace(t, loss=False if t.role == "gpt" else None) for t in CONVERSATION],
    ).validate()
    assert tokenize(no_loss, chat, chat.fingerprint, 10_000) is None


def test_token_records_are_used_as_they_are_when_the_tokenizer_matches(chat: ChatTokens) -> None:
    ids, mask = [5, 6, 7, 8, 9], [0, 0, 1, 1, 0]
    record = Trajectory(
        item_id="maze_3",
        conversations=CONVERSATION,
        input_ids=ids,
        loss_mask=mask,
        tokenizer=chat.fingerprint,
    ).validate()
    ex = tokenize(record, chat, chat.fingerprint, 100)
    assert ex is not None and ex.input_ids == [5, 6, 7, 8] and ex.loss_mask == [0, 0, 1, 1]
    other = dataclasses.replace(
        record, tokenizer="another-tokenizer"
    )  # made with another model: re-tokenize the text
    ex = tokenize(other, chat, chat.fingerprint, 10_000)
    assert ex is not None and ex.input_ids == conversation_tokens(chat, CONVERSATION)[0][: len(ex.input_ids)]


def test_bad_conversations_are_clear_errors(tmp_path: Path) -> None:
    """A conversation that does not start with the human instruction, or does not alternate, is not a
    trajectory: the one validation says which turn, and training data skips it by item id (or
    refuses it with strict)."""
    starts_with_gpt = {"item_id": "maze_4", "conversations": [t.to_json() for t in CONVERSATION[1:]]}
    two_humans = {
        "item_id": "maze_5",
        "conversations": [CONVERSATION[0].to_json(), CONVERSATION[2].to_json()],
    }
    with pytest.raises(TrajectoryError, match=r"conversations\[0\] is a gpt turn where a human turn belongs"):
        Trajectory.from_json(starts_with_gpt)
    with pytest.raises(TrajectoryError, match=r"conversations\[1\] is a human turn where a gpt turn belongs"):
        Trajectory.from_json(two_humans)
    good = {"item_id": "maze_1", "conversations": [t.to_json() for t in CONVERSATION]}
    data = tmp_path / "data.jsonl"
    data.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in (starts_with_gpt, good, two_humans)))
    report = ReadReport()
    assert [t.item_id for t in load_trajectories([str(data)], report=report)] == ["maze_1"]
    assert report.read == 1 and [item for _, item, _ in report.skipped] == ["maze_4", "maze_5"]
    assert "is a gpt turn where a human turn belongs" in report.skipped[0][2]
    assert "maze_4" in report.summary() and "2 bad record(s) skipped" in report.summary()
    with pytest.raises(DataError, match=r"data.jsonl:1: .*conversations\[0\] is a gpt turn"):
        list(load_trajectories([str(data)], strict=True))


def test_batches_respect_the_token_budget_and_labels(chat: ChatTokens) -> None:
    from agentgym.trainer.data import Example

    examples = [
        Example(list(range(1, n + 1)), [0] * (n // 2) + [1] * (n - n // 2), f"x_{n}")
        for n in range(5, 200, 7)
    ]
    out = batches(examples, max_tokens=400, seed=1)
    assert sorted(e.source for b in out for e in b) == sorted(
        e.source for e in examples
    )  # every example once
    assert all(len(b) * max(len(e.input_ids) for e in b) <= 400 for b in out)
    assert batches(examples, 400, seed=1) == out and batches(examples, 400, seed=2) != out
    t = collate(out[0], pad_id=0)
    for row, e in enumerate(out[0]):
        n = len(e.input_ids)
        assert t["attention_mask"][row].sum() == n
        assert (t["labels"][row, :n] != -100).sum() == e.targets
        assert (t["labels"][row, n:] == -100).all()
