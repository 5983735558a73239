"""The policy interface: given an episode's conversation so far, produce the agent's next turn.

Backends are asyncio-native; the rollout engine calls `act` from thousands of episode tasks at
once and each backend batches as it can (the hf backend batches in-process, SGLang and OpenAI
servers batch on their side).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agentgym.client.envclient import Episode
    from agentgym.client.policies.chat import Conversation
    from agentgym.client.types import EnvInfo
    from agentgym.core.chat import ChatTokens


class PolicyError(Exception):
    """The policy could not produce a turn (server error, malformed reply, misconfiguration)."""


@dataclass
class Turn:
    """One agent turn."""

    text: str  # the reply as text (Thought ... Action ...), without the end-of-turn token
    # Token-level backends: the ids exactly as generated (including the end-of-turn token when the
    # model produced it) and their log-probabilities (under the distribution each token was
    # sampled from: after temperature, before top-p).
    token_ids: list[int] | None = None
    logprobs: list[float] | None = None
    finish_reason: str = "stop"  # "stop" | "length" | "abort"
    weight_version: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    meta: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Sampling:
    temperature: float = 0.0
    top_p: float = 1.0
    max_new_tokens: int = 256


class Policy(ABC):
    """A backend that produces agent turns."""

    name: str = "policy"
    # Token-level policies keep the conversation as token ids (`chat` is set).
    chat: ChatTokens | None = None

    async def start(self) -> None:
        """Connect, load weights, check health. Called once before the first `act`."""

    async def close(self) -> None:
        """Release connections and memory."""

    def prepare(self, envs: dict[str, EnvInfo]) -> None:
        """Told what the envs of a run are, before `start`."""

    def finish(self, episode: Episode) -> None:
        """An episode this policy acted in is over (free per-episode state)."""

    @abstractmethod
    async def act(self, conversation: Conversation, episode: Episode) -> Turn:
        """The next agent turn for this conversation (the last message is the env's)."""

    async def load_weights(self, model_path: str, weight_version: str) -> None:
        """Serve the checkpoint at `model_path` from now on, as `weight_version` (the version every
        later turn carries). One operation for every policy that has weights; the others refuse."""
        raise PolicyError(f"the {self.name} policy has no weights to load")

    def describe(self) -> dict[str, str]:
        """Facts for run reports (backend, model, weight version)."""
        return {"policy": self.name}
