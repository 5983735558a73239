"""Per-turn sampling seeds that depend on what is generated, never on when.

A policy that samples from one random stream shared by all episodes hands each episode whatever
random numbers are next when its turn happens to run, so which episode gets which numbers depends
on arrival order and batch composition (timing), and two runs with the same seed differ. Instead
each generation request carries its own seed, derived from the policy's seed, the episode's
identity and the turn index, and the backend samples that request from its own generator (the hf
policy from a `torch.Generator`; SGLang from `sampling_params.sampling_seed`).

An episode is identified by what makes it reproducible: env, task id and env seed, never the
server's episode id (a fresh uuid per episode). Several samples of one task (`--samples`, AgentEvol's
`samples_per_task`) share that identity: an episode that carries a `sample` attribute is told apart
by it; otherwise the policy numbers the episodes of one identity in the order their first turns
arrive, so a run still plays the same set of samples per task, though which record id gets which of
them can follow timing.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agentgym.client.envclient import Episode
    from agentgym.client.policies.chat import Conversation

# SGLang keeps sampling seeds in an int32 tensor (SamplingBatchInfo): stay below 2**31.
SEED_BITS = 31


def derive_seed(*parts: object) -> int:
    """A seed in [0, 2**31) from `parts` (by their str), the same in every process and run (unlike
    Python's salted `hash`)."""
    key = "\x1f".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big") >> (64 - SEED_BITS)


def agent_turns(conversation: Conversation) -> int:
    """How many agent (gpt) messages the conversation holds: the index of the turn to generate."""
    return sum(1 for m in conversation.messages if m.get("from") == "gpt")


class TurnSeeds:
    """Seeds for one policy's requests: `seeds(conversation, episode)` for the next turn.

    Call `finish(episode)` when an episode ends (the policies do, from `Policy.finish`)."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._numbered: dict[int, tuple[Any, int]] = {}  # id(episode) -> (episode, occurrence)
        self._occurrences: Counter[tuple[str, int, int]] = Counter()

    def identity(self, episode: Episode) -> tuple[str, int, int, int]:
        """(env, task id, env seed, sample) of an episode, stable across runs."""
        key = (str(episode.env), int(episode.task_id), int(episode.seed))
        sample = getattr(episode, "sample", None)
        if sample is None:
            entry = self._numbered.get(id(episode))
            if entry is None or entry[0] is not episode:
                entry = (episode, self._occurrences[key])
                self._occurrences[key] += 1
                self._numbered[id(episode)] = entry
            sample = entry[1]
        return (*key, int(sample))

    def __call__(self, conversation: Conversation, episode: Episode) -> int:
        return derive_seed(self.seed, *self.identity(episode), agent_turns(conversation))

    def finish(self, episode: Episode) -> None:
        self._numbered.pop(id(episode), None)
