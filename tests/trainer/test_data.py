"""Loss masks: exactly the agent's tokens are trained, checked token by token."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from agentgym.client.policies.chat import ACK, ChatTokens
from agentgym.trainer.data import DataError, batches, collate, conversation_tokens, tokenize


@pytest.fixture(scope="module")
def chat(tiny_model: str) -> ChatTokens:
    return ChatTokens(AutoTokenizer.from_pretrained(tiny_model))


CONVERSATION = [
    {"from": "human", "loss": None, "value": "Solve the maze."},
    {"from": "gpt", "loss": False, "value": ACK},
    {"from": "human", "loss": None, "value": "The goal is at position 8, 6."},
    {"from": "gpt", "loss": True, "value": "Thought:\nUp.\n\nAction:\nmove up"},
    {"from": "human", "loss": None, "value": "There is a wall above you."},
    {"from": "gpt", "loss": True, "value": "Thought:\nDown.\n\nAction:\nmove down"},
    {"from": "human", "loss": None, "value": "Success"},
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
        [{"role": "user" if m["from"] == "human" else "assistant", "content": m["value"]} for m in CONVERSATION],
        tokenize=False, add_generation_prompt=True,
    )  # fmt: skip
    assert ids == chat.encode(rendered)


def test_trailing_env_turn_dropped_and_truncation(chat: ChatTokens) -> None:
    record = {"item_id": "maze_1", "conversations": CONVERSATION}
    ex = tokenize(record, chat, chat.fingerprint, max_length=10_000)
    assert (
        ex is not None and ex.loss_mask[-1] == 1 and ex.input_ids[-1] == chat.eos
    )  # ends on the agent's EOS
    full_targets = ex.targets
    short = tokenize(record, chat, chat.fingerprint, max_length=len(ex.input_ids) - 3)
    assert short is not None and short.truncated and short.targets == full_targets - 3
    assert tokenize(record, chat, chat.fingerprint, max_length=5) is None  # no target left
    no_loss = {
        "item_id": "maze_2",
        "conversations": [dict(m, loss=False if m["from"] == "gpt" else None) for m in CONVERSATION],
    }
    assert tokenize(no_loss, chat, chat.fingerprint, 10_000) is None


def test_token_records_are_used_as_they_are_when_the_tokenizer_matches(chat: ChatTokens) -> None:
    ids, mask = [5, 6, 7, 8, 9], [0, 0, 1, 1, 0]
    record = {
        "item_id": "maze_3",
        "conversations": CONVERSATION,
        "input_ids": ids,
        "loss_mask": mask,
        "tokenizer": chat.fingerprint,
    }
    ex = tokenize(record, chat, chat.fingerprint, 100)
    assert ex is not None and ex.input_ids == [5, 6, 7, 8] and ex.loss_mask == [0, 0, 1, 1]
    other = dict(record, tokenizer="another-tokenizer")  # made with another model: re-tokenize the text
    ex = tokenize(other, chat, chat.fingerprint, 10_000)
    assert ex is not None and ex.input_ids == conversation_tokens(chat, CONVERSATION)[0][: len(ex.input_ids)]


def test_bad_conversations_are_clear_errors(chat: ChatTokens) -> None:
    with pytest.raises(DataError, match="must start with a human turn"):
        conversation_tokens(chat, CONVERSATION[1:])
    with pytest.raises(DataError, match="two human turns in a row"):
        conversation_tokens(chat, [CONVERSATION[0], CONVERSATION[2]])


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
