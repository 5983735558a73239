"""Llama-2-style chat templates: text between an assistant's content and its EOS, kept token-exact.

Llama-2-chat renders `<s>[INST] user [/INST] assistant </s><s>[INST] user [/INST]`: the space
before the content and the one before `</s>` come after the generation prompt, so the model
generates them. Rollouts keep them verbatim, training from text records (which hold the content
alone) puts them back, and both give the ids of the template's own rendering.

The tokenizers are trained here on a few sentences (no download): one like Llama-2's (a BPE
whose normalizer prepends "▁" to every text between special tokens, so a turn's ids depend on
what precedes it), one byte-level BPE.
"""

from __future__ import annotations

from typing import Any

import pytest

from agentgym.client.policies.base import Turn
from agentgym.client.policies.chat import Conversation
from agentgym.core.chat import ACK, ChatTemplateError, ChatTokens
from agentgym.core.trajectory import Trajectory
from agentgym.core.trajectory import Turn as Message
from agentgym.trainer.data import conversation_tokens, tokenize

# Llama-2-chat's template, as its tokenizer_config.json carries it.
LLAMA2_TEMPLATE = (
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
    "{% set system_message = messages[0]['content'] %}"
    "{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}"
    "{% for message in loop_messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% endif %}"
    "{% if loop.index0 == 0 and system_message != false %}"
    "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
    "{% else %}{% set content = message['content'] %}{% endif %}"
    "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ ' ' + content.strip() + ' ' + eos_token }}{% endif %}"
    "{% endfor %}"
)

INSTRUCTION = "You are in a maze. Reply with a thought and an action."
EPISODE = [  # (agent reply, env observation after it)
    # The template strips messages: the env's trailing newline is not in the rendered conversation.
    ("Thought: the goal is up.\nAction: move up", "There is a wall above you.\n"),
    ("Thought: go around it.\nAction: move left", "You moved left. The goal is at 8, 6."),
]
FIRST_OBSERVATION = "The goal is at position 8, 6."
CORPUS = [INSTRUCTION, ACK, FIRST_OBSERVATION, *(t for pair in EPISODE for t in pair)] * 3


def build_tokenizer(kind: str) -> Any:
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    if kind == "llama":
        # Llama-2's fast tokenizer: "▁" prepended to each text between special tokens, spaces as "▁",
        # no pre-tokenizer (training splits at "▁" so that, like SentencePiece, no token spans one).
        tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
        tok.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="never")
        alphabet = [chr(c) for c in range(32, 127)] + ["▁", "\n"]
    else:
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        alphabet = pre_tokenizers.ByteLevel.alphabet()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<unk>", "<s>", "</s>", "<|eot|>"],
        initial_alphabet=alphabet,
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS, trainer)
    if kind == "llama":
        tok.pre_tokenizer = None
        tok.decoder = decoders.Sequence(
            [decoders.Replace("▁", " "), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
        )
    else:
        tok.decoder = decoders.ByteLevel()
    hf = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<unk>"
    )
    hf.chat_template = LLAMA2_TEMPLATE
    return hf


@pytest.fixture(scope="module", params=["llama", "bytelevel"])
def tok(request: pytest.FixtureRequest) -> Any:
    return build_tokenizer(request.param)


@pytest.fixture(scope="module")
def chat(tok: Any) -> ChatTokens:
    return ChatTokens(tok)


def rendered(tok: Any, messages: list[dict[str, str]], generation_prompt: bool) -> list[int]:
    """The template's own ids for a conversation."""
    out = tok.apply_chat_template(messages, tokenize=True, add_generation_prompt=generation_prompt)
    return list(out if isinstance(out, list) else out["input_ids"])


def generated(tok: Any, history: list[dict[str, str]], reply: str) -> list[int]:
    """What a model that learned its template generates after the prompt: the rest of the rendered turn."""
    prompt = rendered(tok, history, True)
    full = rendered(tok, [*history, {"role": "assistant", "content": reply}], False)
    assert full[: len(prompt)] == prompt
    return full[len(prompt) :]


def messages() -> list[dict[str, str]]:
    out = [
        {"role": "user", "content": INSTRUCTION},
        {"role": "assistant", "content": ACK},
        {"role": "user", "content": FIRST_OBSERVATION},
    ]
    for reply, observation in EPISODE:
        out += [{"role": "assistant", "content": reply}, {"role": "user", "content": observation}]
    return out


def rollout(chat: ChatTokens) -> tuple[Conversation, list[list[int]]]:
    """The episode as a token-level policy plays it, each reply generated as the template renders it."""
    history = messages()[:3]
    conv = Conversation.start(INSTRUCTION, FIRST_OBSERVATION, chat, acknowledgement=ACK)
    replies = []
    for reply, observation in EPISODE:
        ids = generated(chat.tokenizer, history, reply)
        replies.append(ids)
        conv.add_agent(Turn(text="", token_ids=ids, logprobs=[-0.5] * len(ids)))
        conv.add_env(observation)
        history += [{"role": "assistant", "content": reply}, {"role": "user", "content": observation}]
    return conv, replies


def test_the_template_is_learned_with_its_head_and_tail(chat: ChatTokens) -> None:
    assert (chat.head, chat.tail, chat.after_eos) == (" ", " ", "")
    assert (chat.user_prefix, chat.user_suffix, chat.strips_user) == ("<s>[INST] ", " [/INST]", True)
    # The tail's ids as they follow content (Llama-like: "▁", which encoding " " alone does not give).
    assert chat.tail_ids == generated(chat.tokenizer, messages()[:3], "Action: move up")[-2:-1]


def test_generated_turns_carry_head_tail_and_eos_and_decode_to_the_content(chat: ChatTokens) -> None:
    history = messages()[:3]
    for reply, _ in EPISODE:
        ids = generated(chat.tokenizer, history, reply)
        assert ids[-2:] == [*chat.tail_ids, chat.eos]
        assert chat.decode(ids) == reply  # as AgentTraj records hold it: no head or tail space
        assert chat.agent_turn(reply) == ids  # and back: what training targets


def test_rollout_ids_are_the_rendered_conversation(chat: ChatTokens) -> None:
    conv, replies = rollout(chat)
    assert conv.input_ids == rendered(chat.tokenizer, messages(), True)
    assert [m["value"] for m in conv.messages if m["from"] == "gpt"] == [ACK] + [r for r, _ in EPISODE]
    # Loss on exactly the generated ids (head, content, tail, EOS), verbatim.
    spans = [i for i, m in enumerate(conv.loss_mask) if m]
    assert [conv.input_ids[i] for i in spans] == [t for ids in replies for t in ids]
    starts = [len(rendered(chat.tokenizer, messages()[: 3 + 2 * k], True)) for k in range(len(replies))]
    assert spans == [s + j for s, ids in zip(starts, replies, strict=True) for j in range(len(ids))]


def test_training_from_text_gives_the_rollouts_ids_and_mask(chat: ChatTokens) -> None:
    conv, _ = rollout(chat)
    turns = [Message(m["from"], m["value"], m["loss"]) for m in conv.messages]
    assert conversation_tokens(chat, turns) == (conv.input_ids, conv.loss_mask)
    record = Trajectory(item_id="maze_1", conversations=turns).validate()  # no token fields: from text
    ex = tokenize(record, chat, chat.fingerprint, 10_000)
    last = max(i for i, m in enumerate(conv.loss_mask) if m)
    assert ex is not None and ex.input_ids == conv.input_ids[: last + 1]
    assert ex.loss_mask == conv.loss_mask[: last + 1] and ex.input_ids[-2:] == [*chat.tail_ids, chat.eos]


def test_cached_instruction_prefix_gives_the_rendered_ids(chat: ChatTokens) -> None:
    before = len(chat._prefixes)
    for obs in ("First observation.", "Another start, with more text: 1, 2, 3.\n"):
        convo = [{"role": "user", "content": INSTRUCTION * 5},
                 {"role": "assistant", "content": ACK}, {"role": "user", "content": obs}]  # fmt: skip
        assert chat.initial(convo) == rendered(chat.tokenizer, convo, True)
    assert len(chat._prefixes) == before + 1


def test_close_turn_adds_what_the_template_closes_a_turn_with(chat: ChatTokens) -> None:
    full = generated(chat.tokenizer, messages()[:3], EPISODE[0][0])
    content = full[:-2]
    assert chat.close_turn(content) == [*chat.tail_ids, chat.eos]
    assert content + chat.close_turn(content) == full
    assert chat.close_turn(full[:-1]) == [chat.eos]  # the tail was generated: only the EOS is missing


def test_cut_off_turn_is_closed_with_tail_and_eos_without_loss(chat: ChatTokens) -> None:
    """Needs Conversation.add_agent to close a cut-off turn with `chat.close_turn(ids)`."""
    conv = Conversation.start(INSTRUCTION, FIRST_OBSERVATION, chat, acknowledgement=ACK)
    reply = EPISODE[0][0]
    cut = generated(chat.tokenizer, messages()[:3], reply)[:-2]  # length limit: no tail, no EOS
    conv.add_agent(Turn(text="", token_ids=cut, logprobs=[-0.5] * len(cut), finish_reason="length"))
    closing = [*chat.tail_ids, chat.eos]
    assert conv.input_ids[-len(closing) :] == closing
    assert conv.loss_mask[-len(closing) :] == [0] * len(closing)
    assert conv.loss_mask[-len(closing) - len(cut) : -len(closing)] == [1] * len(cut)
    assert conv.logprobs[-len(closing) :] == [None] * len(closing)
    conv.add_env(EPISODE[0][1])
    assert conv.input_ids == rendered(chat.tokenizer, messages()[:5], True)


def test_template_that_rewrites_history_is_refused(tok: Any) -> None:
    saved = tok.chat_template
    try:
        # Llama-2 framing of only the last two messages: earlier turns change as the chat grows.
        tok.chat_template = (
            "{% for m in messages[-2:] %}{% if m['role'] == 'user' %}"
            "{{ bos_token + '[INST] ' + m['content'].strip() + ' [/INST]' }}"
            "{% else %}{{ ' ' + m['content'].strip() + ' ' + eos_token }}{% endif %}{% endfor %}"
        )
        with pytest.raises(ChatTemplateError, match="not prefix-stable"):
            ChatTokens(tok)
    finally:
        tok.chat_template = saved


def test_template_whose_assistant_turns_have_no_eos_is_refused(tok: Any) -> None:
    saved = tok.chat_template
    try:
        tok.chat_template = LLAMA2_TEMPLATE.replace("' ' + eos_token", "' '")
        with pytest.raises(ChatTemplateError, match="not the EOS token"):
            ChatTokens(tok)
    finally:
        tok.chat_template = saved


def test_tail_holding_another_stop_token_is_refused(tok: Any) -> None:
    saved = tok.chat_template
    try:
        tok.chat_template = LLAMA2_TEMPLATE.replace("' ' + eos_token", "' <|eot|>' + eos_token")
        assert ChatTokens(tok).tail == " <|eot|>"  # an ordinary token here: generated like the rest
        # But a model that stops at <|eot|> never generates the EOS that closes its turns.
        with pytest.raises(ChatTemplateError, match="also ends a generation"):
            ChatTokens(tok, [tok.eos_token_id, tok.convert_tokens_to_ids("<|eot|>")])
    finally:
        tok.chat_template = saved
