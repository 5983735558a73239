"""Chat framing shared by rollout and training: a tokenizer's chat template, kept token-exact.

Token in, token out: the prompt of every turn is the previous prompt, plus the ids the policy
generated (verbatim), plus the tokens of the env's reply as the model's own chat template frames
it. Nothing is ever re-tokenized, so what the trainer sees is exactly what the policy produced.

`ChatTokens` learns the template's framing once, by rendering a probe conversation:
  render([user U], gen. prompt)                         -> "...U...<generation prompt>"
  render([user U, assistant A])                         -> the same, then head + "A" + tail + "<eos>\\n"
  render([user U, assistant A, user O], gen. prompt)    -> the same, then "<|im_start|>user\\nO<|im_end|>..."
so an env reply after an assistant turn that ended in <eos> is tokenized from
  (what the template puts after <eos>) + (user prefix) + reply + (user suffix and generation prompt).
The head and tail are text the template writes around an assistant's content inside the turn:
empty for ChatML, a space each for Llama-2-chat (`[/INST] A </s>`). Coming after the generation
prompt, they are generated (and trained on) like the content; the turn's text leaves them out.
Templates that rewrite earlier turns (e.g. drop past reasoning) are not prefix-stable; they are
refused with a clear error instead of silently drifting.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from functools import cached_property
from typing import Any


class ChatTemplateError(ValueError):
    """The tokenizer's chat template cannot frame conversations token-exactly (the message says why)."""


# The agent's acknowledgement after the instruction, this project's own words (the original's
# differ per env; the agentgym profile loads them from the operator's files: envs/compat.py).
ACK = "Understood. Each turn I will give my thought, then one action."

_U, _A, _O = "AGENTGYMPROBEUSER", "AGENTGYMPROBEASSISTANT", "AGENTGYMPROBEOBSERVATION"


def _render(tokenizer: Any, messages: list[dict[str, str]], generation_prompt: bool) -> str:
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)
    if not isinstance(text, str):
        raise ChatTemplateError("the tokenizer's apply_chat_template(tokenize=False) did not return text")
    return text


class ChatTokens:
    """Token bookkeeping for one tokenizer and its chat template."""

    def __init__(self, tokenizer: Any, eos_token_ids: list[int] | None = None) -> None:
        if getattr(tokenizer, "chat_template", None) is None:
            raise ChatTemplateError(
                "the tokenizer has no chat template; token-level policies need the model's own template"
            )
        self.tokenizer = tokenizer
        self._fast = (
            getattr(tokenizer, "backend_tokenizer", None) if getattr(tokenizer, "is_fast", False) else None
        )
        eos = eos_token_ids or [tokenizer.eos_token_id]
        self.eos_ids = [i for i in eos if i is not None]
        if not self.eos_ids:
            raise ChatTemplateError("the tokenizer has no EOS token")
        self.eos = self.eos_ids[0]
        prompt = _render(tokenizer, [{"role": "user", "content": _U}], True)
        base = _render(
            tokenizer, [{"role": "user", "content": _U}, {"role": "assistant", "content": _A}], False
        )
        ext = _render(
            tokenizer,
            [
                {"role": "user", "content": _U},
                {"role": "assistant", "content": _A},
                {"role": "user", "content": _O},
            ],
            True,
        )
        if not ext.startswith(base) or base.count(_A) != 1 or ext.count(_O) != 1:
            raise ChatTemplateError(
                "the chat template is not prefix-stable (it rewrites earlier turns), so conversations "
                "cannot be kept token-exact; use a model whose template only appends"
            )
        start = base.index(_A)
        # Text between the generation prompt and the content (Llama-2: a space) is generated too.
        # A template whose prompt is not where the rendered turn starts has no such text to learn.
        self.head = base[len(prompt) : start] if base.startswith(prompt) and len(prompt) <= start else ""
        after_assistant = base[start + len(_A) :]
        eos_text = tokenizer.decode([self.eos])
        end = after_assistant.find(eos_text) if eos_text else -1
        if end < 0:
            raise ChatTemplateError(
                f"the chat template ends assistant turns with {after_assistant[:20]!r}, not the EOS "
                f"token {eos_text!r}; token-exact conversations need the EOS to close a turn"
            )
        # Text between the content and the EOS (Llama-2: a space), e.g. `' ' + content + ' </s>'`.
        self.tail = after_assistant[:end]
        stops = [t for i in self.eos_ids[1:] if (t := tokenizer.decode([i])) and t in self.tail]
        if stops:
            raise ChatTemplateError(
                f"the chat template writes {stops[0]!r}, which also ends a generation, before the EOS "
                f"token {eos_text!r} that closes an assistant turn; generation would stop short of it"
            )
        self.after_eos = after_assistant[end + len(eos_text) :]
        self._prefixes: dict[tuple[str, str], list[int]] = {}
        self.user_prefix, self.user_suffix = ext[len(base) :].split(_O)
        # Llama-2 (`content.strip()`) and Llama-3 (`| trim`) drop the whitespace around a message:
        # env replies are stripped the same way, so their ids are those of the rendered conversation.
        padded = [
            {"role": "user", "content": _U},
            {"role": "assistant", "content": _A},
            {"role": "user", "content": f" \n{_O}\n "},
        ]
        self.strips_user = _render(tokenizer, padded, True) == ext
        # What an agent turn follows: an env turn, which ends with the generation prompt. Turns are
        # tokenized after it, so a tokenizer that treats the start of a text specially (Llama's
        # prepended "▁") gives the ids the turn has in the rendered conversation.
        self._anchor = self.after_eos + self.user_prefix + _O + self.user_suffix
        self._anchor_ids = self.encode(self._anchor)
        body = self._after_prompt(self.head + _A)
        closed = self._after_prompt(self.head + _A + self.tail)
        self.tail_ids = closed[len(body) :] if closed[: len(body)] == body else self.encode(self.tail)

    @cached_property
    def fingerprint(self) -> str:
        """Identifies the tokenizer and template: records made with it can be trained on as they are."""
        vocab = sorted(self.tokenizer.get_vocab().items())
        blob = json.dumps([vocab, self.tokenizer.chat_template, self.eos_ids], ensure_ascii=False)
        return hashlib.sha1(blob.encode()).hexdigest()[:16]

    def encode(self, text: str) -> list[int]:
        if self._fast is not None:  # the Rust tokenizer directly: a fraction of the wrapper's cost
            ids: list[int] = self._fast.encode(text, add_special_tokens=False).ids
            return ids
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return ids

    def initial(self, messages: list[dict[str, str]]) -> list[int]:
        """Prompt ids for the first agent turn (the whole conversation so far, rendered once).

        The usual start (instruction, acknowledgement, first observation) is the cached ids of
        the instruction and acknowledgement, up to and including the EOS that closes the latter,
        plus the observation framed like any env turn: the same ids as rendering it all, without
        re-encoding a long instruction for each of thousands of episodes.
        """
        if len(messages) == 3 and [m["role"] for m in messages] == ["user", "assistant", "user"]:
            key = (messages[0]["content"], messages[1]["content"])
            prefix = self._prefixes.get(key)
            if prefix is None:
                text = _render(self.tokenizer, messages[:2], False)
                if not text.endswith(self.after_eos):
                    return self.encode(_render(self.tokenizer, messages, True))
                prefix = self.encode(text[: len(text) - len(self.after_eos)])
                if len(self._prefixes) >= 256:
                    self._prefixes.clear()
                self._prefixes[key] = prefix
            return prefix + self.env_turn(messages[2]["content"])
        return self.encode(_render(self.tokenizer, messages, True))

    def env_turn(self, text: str) -> list[int]:
        """Ids to append after an assistant turn that ended with EOS: the env's reply, framed."""
        text = text.strip() if self.strips_user else text
        return self.encode(self.after_eos + self.user_prefix + text + self.user_suffix)

    def _after_prompt(self, text: str) -> list[int]:
        ids = self.encode(self._anchor + text)
        n = len(self._anchor_ids)
        if ids[:n] == self._anchor_ids:
            return ids[n:]
        return self.encode(text)  # a token spans the prompt's end: no exact split; the text alone

    def agent_turn(self, text: str) -> list[int]:
        """Ids of an agent turn whose text (as `decode` gives it and AgentTraj records hold it:
        the content, without the template's head and tail) is `text`, as the model generates them
        after its prompt: head, content, tail, EOS. Training targets exactly these."""
        return [*self._after_prompt(self.head + text + self.tail), self.eos]

    def close_turn(self, ids: Sequence[int] = ()) -> list[int]:
        """Ids that close the generated `ids` of a turn cut off before its EOS, as the template
        closes a turn: the tail (unless `ids` already end with it), then the EOS. Not generated:
        the caller gives them no loss."""
        n = len(self.tail_ids)
        if n and list(ids[-n:]) == self.tail_ids:
            return [self.eos]
        return [*self.tail_ids, self.eos]

    def decode(self, ids: list[int]) -> str:
        """The text of an agent turn's ids: EOS ids dropped, and the template's head and tail
        stripped when the text carries them (Llama-2's spaces around the content), as AgentTraj
        records hold a turn. So `agent_turn(decode(ids)) == ids` for ids the tokenizer would give
        the text, e.g. a generated turn of head + content + tail + EOS."""
        text: str = self.tokenizer.decode(
            [i for i in ids if i not in self.eos_ids], skip_special_tokens=False
        )
        return text.removeprefix(self.head).removesuffix(self.tail)


def role_messages(messages: list[dict[str, Any]]) -> list[dict[str, str]]:
    """AgentTraj messages ({from, value}) as chat messages ({role, content})."""
    return [{"role": "assistant" if m["from"] == "gpt" else "user", "content": m["value"]} for m in messages]


def eos_token_ids(model: Any, tokenizer: Any) -> list[int]:
    """The ids that end an agent turn: the tokenizer's EOS first, then the generation config's."""
    eos = getattr(model.generation_config, "eos_token_id", None)
    ids = [int(i) for i in (eos if isinstance(eos, list) else [eos] if eos is not None else [])]
    if tokenizer.eos_token_id is not None:
        ids = [int(tokenizer.eos_token_id)] + [i for i in ids if i != tokenizer.eos_token_id]
    return ids
