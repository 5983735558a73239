"""Policies that need no model: the env's own `expert`, and `random` over the available actions."""

from __future__ import annotations

import random

from agentgym.client.envclient import Episode
from agentgym.client.policies.base import Policy, Turn
from agentgym.client.policies.chat import Conversation
from agentgym.client.types import EnvInfo


def react_reply(action: str, thought: str | None = None) -> str:
    """An agent reply in the ReAct format every env's instruction asks for."""
    if thought is None:
        thought = (
            f"I will {action}." if "\n" not in action and len(action) <= 200 else "I will take this action."
        )
    return f"Thought:\n{thought}\n\nAction:\n{action}"


class ExpertPolicy(Policy):
    """Asks the env's expert (over the episode's own stream) and answers in the ReAct format."""

    name = "expert"

    async def act(self, conversation: Conversation, episode: Episode) -> Turn:
        action, thought = await episode.expert_reply()
        return Turn(react_reply(action, thought or None))


class RandomPolicy(Policy):
    """Uniform over the actions the env lists; for envs that list none, over the alternatives of its
    action format (which mostly earns the env's invalid-action reply: the floor of performance)."""

    name = "random"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.formats: dict[str, list[str]] = {}

    def prepare(self, envs: dict[str, EnvInfo]) -> None:
        self.formats = {
            name: [a.strip() for a in info.action_format.split("|") if a.strip()]
            for name, info in envs.items()
        }

    async def act(self, conversation: Conversation, episode: Episode) -> Turn:
        rng = random.Random(f"{self.seed}/{episode.env}/{episode.task_id}/{episode.last.step_index}")
        actions = list(episode.last.available_actions)
        if not actions:
            actions = self.formats.get(episode.env) or ["look"]
        return Turn(react_reply(rng.choice(actions), thought="I will try something."))
