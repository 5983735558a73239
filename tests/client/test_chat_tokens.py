"""Token-exact conversations: ids and loss masks line up with the text, turn by turn."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from agentgym.client.policies.base import Turn
from agentgym.client.policies.chat import Conversation
from agentgym.core.chat import ChatTemplateError, ChatTokens, role_messages


@pytest.fixture(scope="module")
def chat(tiny_model: str) -> ChatTokens:
    return ChatTokens(AutoTokenizer.from_pretrained(tiny_model))


def agent_turn(chat: ChatTokens, text: str, eos: bool = True) -> Turn:
    ids = chat.encode(text) + ([chat.eos] if eos else [])
    return Turn(text="", token_ids=ids, logprobs=[-0.5] * len(ids))


def test_framing_matches_the_template_token_for_token(chat: ChatTokens) -> None:
    conv = Conversation.start("Solve the maze.", "The goal is at position 8, 6.", chat)
    for reply, obs in [("Thought:\nGo.\n\nAction:\nmove up", "There is a wall above you."),
                       ("Thought:\nAgain.\n\nAction:\nmove down", "Success")]:  # fmt: skip
        conv.add_agent(agent_turn(chat, reply))
        conv.add_env(obs)
    rendered = chat.tokenizer.apply_chat_template(
        role_messages(conv.messages), tokenize=False, add_generation_prompt=True
    )
    assert conv.input_ids == chat.encode(rendered)
    assert [m["from"] for m in conv.messages] == ["human", "gpt", "human", "gpt", "human", "gpt", "human"]
    assert [m["loss"] for m in conv.messages] == [None, False, None, True, None, True, None]


def test_loss_mask_covers_exactly_the_generated_tokens(chat: ChatTokens) -> None:
    conv = Conversation.start("Instruction.", "First observation.", chat)
    prompt = len(conv.input_ids)
    turn = agent_turn(chat, "Thought:\nhm\n\nAction:\nmove left")
    generated = list(turn.token_ids or [])
    conv.add_agent(turn)
    conv.add_env("Next observation.")
    mask = conv.loss_mask
    assert mask[:prompt] == [0] * prompt  # instruction, acknowledgement and observation: not trained
    span = [i for i, m in enumerate(mask) if m == 1]
    assert [conv.input_ids[i] for i in span] == generated  # the generated ids, verbatim, EOS included
    assert span == list(range(prompt, prompt + len(generated)))
    assert conv.logprobs[prompt : prompt + len(generated)] == [-0.5] * len(generated)
    assert all(lp is None for lp in conv.logprobs[:prompt])
    assert (
        chat.decode([conv.input_ids[i] for i in span])
        == conv.messages[3]["value"]
        == "Thought:\nhm\n\nAction:\nmove left"
    )


def test_generated_ids_are_never_retokenized(chat: ChatTokens) -> None:
    conv = Conversation.start("Instruction.", "Observation.", chat)
    # Ids a model could emit that re-tokenizing their text would not reproduce (bytes split oddly).
    odd = [chat.encode("A")[0], *chat.encode("ction"), *chat.encode(":\n"), chat.eos]
    conv.add_agent(Turn(text="", token_ids=odd))
    assert conv.input_ids[-len(odd) :] == odd


def test_cut_off_turn_is_closed_without_loss(chat: ChatTokens) -> None:
    conv = Conversation.start("Instruction.", "Observation.", chat)
    turn = agent_turn(chat, "Thought:\nthis goes on and on", eos=False)
    n = len(turn.token_ids or [])
    conv.add_agent(turn)
    assert conv.input_ids[-1] == chat.eos and conv.loss_mask[-1] == 0 and conv.logprobs[-1] is None
    assert conv.loss_mask[-n - 1 : -1] == [1] * n


def test_template_that_rewrites_history_is_refused(tiny_model: str) -> None:
    tok = AutoTokenizer.from_pretrained(tiny_model)
    # A template that renders only the last two messages: earlier turns change as the chat grows.
    tok.chat_template = (
        "{% for m in messages[-2:] %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    )
    with pytest.raises(ChatTemplateError, match="not prefix-stable"):
        ChatTokens(tok)
    tok.chat_template = None
    with pytest.raises(ChatTemplateError, match="no chat template"):
        ChatTokens(tok)


def test_cached_instruction_prefix_gives_the_rendered_ids(chat: ChatTokens) -> None:
    before = len(chat._prefixes)
    for obs in ("First observation.", "Another start, with more text: 1, 2, 3."):
        messages = [{"role": "user", "content": "A long shared instruction. " * 20},
                    {"role": "assistant", "content": "OK."}, {"role": "user", "content": obs}]  # fmt: skip
        rendered = chat.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        assert chat.initial(messages) == chat.encode(rendered)
    assert len(chat._prefixes) == before + 1  # one instruction, encoded once
