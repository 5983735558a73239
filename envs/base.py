"""The env SDK: an environment is one small class with `reset` and `step`.

A new Python env is one file in this folder::

    from agentgym.envs.base import Env, Outcome
    from agentgym.envs.registry import register

    @register
    class Counter(Env):
        name = "counter"
        description = "Say 'up' three times."
        instruction = "Reply with Thought: ... then Action: up"
        action_format = "up"
        max_rounds = 5
        task_count = 10
        execution = "inline"      # pure, microsecond-scale steps may run on the event loop

        def reset(self, task_id, seed, options):
            self.n = 0
            return Outcome("Count is 0.", available_actions=["up"])

        def step(self, action):
            if action != "up":
                return Outcome(f"Unknown action {action!r}.", info={"invalid": "true"})
            self.n += 1
            return Outcome(f"Count is {self.n}.", reward=float(self.n == 3),
                           done=self.n == 3, success=self.n == 3)

        def expert_action(self):
            return "up"

The server owns everything cross-cutting: step counting, truncation at max rounds, the score when
the env does not set one, timeouts, capacity and errors. An env only implements the game.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Literal

# Where the server runs an env's code:
#   inline  - on the event loop. Only for pure, bounded, microsecond-scale code (no I/O, no sleeps):
#             a thread hop costs more than such a step. A hang here would stall the server.
#   thread  - in a thread pool; the step timeout applies. The default.
#   process - in a worker process of its own; the step timeout kills it, a crash costs only that
#             episode. For heavy or crash-prone engines (a JVM, a native library).
Execution = Literal["inline", "thread", "process"]


@dataclass(slots=True)
class Outcome:
    """What an env returns from `reset` and `step`."""

    observation: str
    reward: float = 0.0
    done: bool = False
    success: bool = False
    # The episode's score so far as the original benchmark reports it. None: the server uses the
    # sum of rewards.
    score: float | None = None
    available_actions: Sequence[str] = ()
    info: Mapping[str, str] = field(default_factory=dict)


class EnvError(Exception):
    """Raised by an env for a request it cannot serve (bad create option). Becomes INVALID_ARGUMENT."""


class Env(ABC):
    """Base class of every environment. Subclass, set the metadata, implement reset and step."""

    # --- metadata (class attributes; `configure` may adjust data-dependent ones) -----------------
    name: ClassVar[str]
    description: ClassVar[str] = ""
    # The ReAct instruction: first user turn of the conversation (task, action format, reply format).
    instruction: ClassVar[str]
    action_format: ClassVar[str]
    max_rounds: ClassVar[int]
    task_count: ClassVar[int]
    # Named subsets of task ids.
    splits: ClassVar[Mapping[str, Sequence[range]]] = {}
    # Score at or above which an episode is a success (AgentEvol's filter threshold).
    success_threshold: ClassVar[float] = 1.0
    execution: ClassVar[Execution] = "thread"
    # Most live episodes of this env per server. None: the server's limits, and for an env that
    # needs memory per episode (below; every `process` env) as many as the host's memory holds.
    max_episodes: ClassVar[int | None] = None
    # Memory one live episode takes, in MB (its worker process included for `process` envs), from
    # which the server derives the env's capacity: available memory / this, shared between the
    # server processes of the host. None: a `process` env is budgeted a plain worker process.
    episode_memory_mb: ClassVar[int | None] = None
    # Create options this env accepts: name -> one-line help. Unknown options are refused.
    create_options: ClassVar[Mapping[str, str]] = {}
    # Hidden envs (test fixtures) are hosted only when named explicitly.
    hidden: ClassVar[bool] = False
    # The agent's acknowledgement turn after the instruction; "" for the client's default.
    acknowledgement: ClassVar[str] = ""
    # Where task ids come from: "original" when task N is the original benchmark's task N (its data
    # is loaded); otherwise a few words on what they index instead, e.g. "built-in word list".
    task_set: ClassVar[str] = ""
    # The compatibility profile, set by the registry from the `profile` setting before `configure`
    # runs: "" (this project's texts and rules) or "agentgym" (the original's, from the operator's
    # own files; envs/compat.py). `configure` reads it to switch observation formats and rules.
    profile: ClassVar[str] = ""

    def __init__(self) -> None:
        # Seeded by the server on every reset so the same (task, seed) replays byte for byte.
        self.rng = random.Random(0)

    @classmethod
    def configure(cls, settings: Mapping[str, str]) -> None:
        """Called once per server process before any episode, with `--env-setting NAME.KEY=VALUE`
        pairs for this env (data directories, sizes). Load shared data here, not per episode."""

    @classmethod
    def default_seed(cls, task_id: int) -> int:
        """Seed used when a create leaves it unset."""
        return task_id

    @classmethod
    def has_expert(cls) -> bool:
        return cls.expert_action is not Env.expert_action

    # --- the episode ---------------------------------------------------------------------------
    @abstractmethod
    def reset(self, task_id: int, seed: int, options: Mapping[str, str]) -> Outcome:
        """Start task `task_id` (already range-checked) and return the first observation."""

    @abstractmethod
    def step(self, action: str) -> Outcome:
        """Apply one action (non-empty, stripped). Bad actions get an observation, not an exception."""

    def episode_instruction(self) -> str:
        """The instruction for the current episode; override when it depends on the task."""
        return self.instruction

    def expert_action(self) -> str:
        """The action an expert takes in the current state. Override to give the env an expert."""
        raise NotImplementedError(f"env {self.name!r} has no expert")

    def expert_thought(self, action: str) -> str | None:
        """Why the expert takes `action` now, in a sentence or two (the "Thought:" of behaviour-cloning
        data); None for a plain one. Called right after `expert_action`, before any step."""
        return None

    def close(self) -> None:
        """Release resources. Called exactly once when the episode ends for any reason."""


def ranges_contain(ranges: Sequence[range], task_id: int) -> bool:
    return any(task_id in r for r in ranges)
