"""An episode's conversation, kept as text (AgentTraj messages) and, for token-level policies, as
token ids framed by `agentgym.core.chat.ChatTokens` (so training sees exactly what the policy saw)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agentgym.client.policies.base import PolicyError, Turn
from agentgym.core.chat import ACK, ChatTokens, role_messages


@dataclass
class Conversation:
    """An episode's conversation: AgentTraj messages, plus token ids for token-level policies."""

    messages: list[dict[str, Any]]
    chat: ChatTokens | None = None
    input_ids: list[int] = field(default_factory=list)
    loss_mask: list[int] = field(default_factory=list)
    logprobs: list[float | None] = field(default_factory=list)
    weight_versions: list[str] = field(default_factory=list)

    @classmethod
    def start(
        cls, instruction: str, observation: str, chat: ChatTokens | None, acknowledgement: str = ""
    ) -> Conversation:
        messages: list[dict[str, Any]] = [
            {"from": "human", "loss": None, "value": instruction},
            {"from": "gpt", "loss": False, "value": acknowledgement or ACK},
            {"from": "human", "loss": None, "value": observation},
        ]
        conv = cls(messages, chat)
        if chat is not None:
            conv.input_ids = chat.initial(role_messages(messages))
            conv.loss_mask = [0] * len(conv.input_ids)
            conv.logprobs = [None] * len(conv.input_ids)
        return conv

    @property
    def prompt_tokens(self) -> int:
        return len(self.input_ids)

    def add_agent(self, turn: Turn) -> None:
        if self.chat is not None:
            if turn.token_ids is None:
                raise PolicyError("a token-level conversation got a turn without token ids")
            ids = list(turn.token_ids)
            logprobs: list[float | None] = (
                list(turn.logprobs) if turn.logprobs is not None else [None] * len(ids)
            )
            if len(logprobs) != len(ids):
                raise PolicyError(f"turn has {len(ids)} tokens but {len(logprobs)} logprobs")
            self.input_ids += ids
            self.loss_mask += [1] * len(ids)
            self.logprobs += logprobs
            if not ids or ids[-1] not in self.chat.eos_ids:
                # Cut off (length limit): close the turn as the template would (its tail, e.g.
                # Llama-2's space, then EOS). Not generated: no loss.
                closing = self.chat.close_turn(ids)
                self.input_ids += closing
                self.loss_mask += [0] * len(closing)
                self.logprobs += [None] * len(closing)
            turn.text = self.chat.decode(ids)
        if turn.weight_version:
            self.weight_versions.append(turn.weight_version)
        self.messages.append({"from": "gpt", "loss": True, "value": turn.text})

    def add_env(self, observation: str) -> None:
        self.messages.append({"from": "human", "loss": None, "value": observation})
        if self.chat is not None:
            ids = self.chat.env_turn(observation)
            self.input_ids += ids
            self.loss_mask += [0] * len(ids)
            self.logprobs += [None] * len(ids)

    def chat_messages(self) -> list[dict[str, str]]:
        return role_messages(self.messages)
