"""SciWorld: elementary-science tasks in the ScienceWorld simulator (the `scienceworld` package).

Semantics follow AgentGym's `agentenv-sciworld`:
- task id -> (task, variation) as in the original (see tasks.py); 4,639 ids with scienceworld 1.2.3;
- reset loads the task and takes the action "look around"; the first observation is the task
  description, a newline, and what that look shows;
- every action goes to the simulator as typed; it answers in its own words ("No known action
  matches that input.", numbered choices for an ambiguous request, ...);
- the score is the simulator's, 0-100 (negative when the task is failed, which ends it); the
  episode ends when the simulator says the task is complete or failed. Success is a score of 100.

Reward per step is the change in score, so rewards (the first observation's included: some tasks
score the starting room) add up to the score; `Outcome.score` is the simulator's score itself.

Each episode owns a JVM (0.2-0.6 GB), so episodes run in worker processes (`execution =
"process"`) and a server hosts as many as its memory allows (`episode_memory_mb`: the server
divides the memory available by it). A JVM that dies
ends its own episode with an error naming it; other episodes carry on.

Expert: the simulator's gold action sequence for the task and variation. It is generated on the
first expert request (generation costs 0.1-4 s and memory, so plain episodes skip it) by loading
the task again with gold-path generation on and replaying the episode's actions, which
reproduces the state exactly (see engine.py on determinism). The expert then gives the next gold
action not yet taken, in order; actions taken off the gold path are skipped over, so it also
steers an episode back from harmless detours (looking, waiting), though not from arbitrary ones.
Gold paths can be longer than the 30-round limit (boil, melt: 40-130 actions): those tasks cannot
be finished within the limit, by the expert or anyone following the same procedure.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from agentgym.envs.base import Env, Outcome
from agentgym.envs.registry import register
from agentgym.envs.sciworld.engine import (
    DEFAULT_EPISODE_MB,
    DEFAULT_HEAP_MB,
    EngineDied,
    jvm_exit_code,
    jvm_pid,
    start_engine,
    stop_engine,
)
from agentgym.envs.sciworld.tasks import TaskTable, load_table

if TYPE_CHECKING:
    from scienceworld import ScienceWorldEnv

log = logging.getLogger(__name__)

T = TypeVar("T")

INSTRUCTION = """\
You are an agent in ScienceWorld, a simulated house with rooms, objects, living things and \
working physics, chemistry and electricity. Each round you get an observation and reply with \
one action toward the task you are given.

Actions (OBJ and LOC are things you can see, named as the observation names them):
- look around: describe the room you are in
- look at OBJ: describe one object; look in OBJ: list what a container holds
- go to LOC: walk to a room you can reach (through an open door)
- open OBJ / close OBJ: open or close a door or container
- pick up OBJ: take an object into your inventory; put down OBJ: drop it here
- move OBJ to OBJ: put an object into or onto another
- pour OBJ in OBJ: pour a liquid into a container; dunk OBJ in OBJ: dip a container into a liquid
- mix OBJ: mix what is in a container
- activate OBJ / deactivate OBJ: switch a device on or off
- connect OBJ to OBJ / disconnect OBJ: wire electrical parts
- use OBJ on OBJ: use a tool or device on something
- read OBJ, eat OBJ, flush OBJ
- focus on OBJ: declare the object your task is about (only when the task asks for it: \
focusing on the wrong thing fails the task)
- wait: let 10 time steps pass; wait1: let 1 time step pass
- inventory: list what you carry; task: repeat the task
If the answer is a numbered list (your request was ambiguous), reply with the number you mean.

Your score goes up as you complete parts of the task; the task is done at 100.

Reply in exactly this format:
Thought:
your reasoning

Action:
your next action"""

_NO_MATCH = "No known action matches that input."
_SETTINGS = {
    "max_episodes": "most live episodes on this server (default: available memory / episode_memory_mb, "
    "shared between the host's server processes)",
    "episode_memory_mb": f"memory budgeted per live episode, MB (default {DEFAULT_EPISODE_MB})",
    "jvm_heap_mb": f"heap limit of each episode's JVM, MB (default {DEFAULT_HEAP_MB})",
}


def _positive_int(settings: Mapping[str, str], key: str, default: int) -> int:
    raw = settings.get(key)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"sciworld.{key} must be a positive integer, got {raw!r}")
    return value


@register
class SciWorld(Env):
    name = "sciworld"
    description = "Elementary science experiments in the ScienceWorld simulator (JVM); score 0-100."
    instruction = INSTRUCTION
    action_format = "a ScienceWorld command, e.g. 'open door to kitchen', 'move metal pot to stove'"
    max_rounds = 30
    task_count = 0  # set by configure(): one id per (task, variation)
    success_threshold = 100.0
    execution = "process"
    table: TaskTable
    heap_mb = DEFAULT_HEAP_MB
    episode_memory_mb = DEFAULT_EPISODE_MB

    @classmethod
    def configure(cls, settings: Mapping[str, str]) -> None:
        unknown = sorted(set(settings) - set(_SETTINGS))
        if unknown:
            known = "; ".join(f"{k}: {v}" for k, v in _SETTINGS.items())
            raise ValueError(f"unknown sciworld settings {unknown}; known: {known}")
        cls.table = load_table()
        # The engine ships the tasks; ids number its (task, variation) pairs as the original does.
        cls.task_set = "original"
        cls.task_count = len(cls.table.entries)
        cls.splits = cls.table.splits
        cls.heap_mb = _positive_int(settings, "jvm_heap_mb", DEFAULT_HEAP_MB)
        # The server derives the capacity from memory, as for every process env, unless it is set.
        cls.episode_memory_mb = _positive_int(settings, "episode_memory_mb", DEFAULT_EPISODE_MB)
        cls.max_episodes = _positive_int(settings, "max_episodes", 0) if "max_episodes" in settings else None

    def __init__(self) -> None:
        super().__init__()
        # The JVM starts with the env, so a prewarmed worker process has it ready for a create.
        self.engine: ScienceWorldEnv = start_engine(self.heap_mb)
        self.pid = jvm_pid(self.engine)
        self.history: list[str] = []
        self.gold: list[str] | None = None
        self.last_score = 0

    # --- the episode -----------------------------------------------------------------------------
    def reset(self, task_id: int, seed: int, options: Mapping[str, str]) -> Outcome:
        self.task, self.variation = self.table.entries[task_id]
        self._load(generate_gold=False)
        self.gold = None
        self.history = []
        self.last_score = 0
        description = self._call(self.engine.get_task_description)
        first = self._advance("look around")
        # Some tasks give points for where the agent starts: that score counts from the start.
        return Outcome(
            f"{description}\n{first.observation}", reward=first.reward, score=first.score, info=first.info
        )

    def step(self, action: str) -> Outcome:
        return self._advance(action)

    def expert_action(self) -> str:
        if self.gold is None:
            self.gold = self._generate_gold()
        done = 0
        for action in self.history[1:]:  # the first is reset's "look around"
            if done < len(self.gold) and action == self.gold[done]:
                done += 1
        return self.gold[done] if done < len(self.gold) else "look around"

    def close(self) -> None:
        stop_engine(self.engine)

    # --- engine calls ------------------------------------------------------------------------------
    def _call(self, fn: Callable[..., T], *args: Any) -> T:
        """Call into the JVM; if it has died, say so instead of a bare py4j network error."""
        from py4j.protocol import Py4JError

        try:
            return fn(*args)
        except Py4JError as exc:
            code = jvm_exit_code(self.engine)
            if code is None:
                try:
                    code = self.engine._gateway.java_process.wait(timeout=1)
                except Exception:
                    raise exc from None
            raise EngineDied(
                f"the ScienceWorld JVM (pid {self.pid}) of this episode exited with code {code}"
            ) from exc

    def _load(self, generate_gold: bool) -> None:
        self._call(self.engine.load, self.task, self.variation, "", generate_gold)

    def _advance(self, action: str) -> Outcome:
        """One simulator step, scored as `ScienceWorldEnv.step` scores it. That method also
        builds an info dict listing every valid action-object combination, which costs 10-50x
        the step itself and is not used, so the server is driven directly."""
        server = self.engine.server
        text: str = self._call(server.step, action)
        self.history.append(action)
        score = round(100 * self._call(server.getScore))
        complete = bool(self._call(server.getCompleted))
        moves = int(self._call(server.getNumMoves))
        # The simulator's own move limit (100, as in AgentGym, which builds ScienceWorldEnv() with
        # its default) ends the episode past it, as ScienceWorldEnv.step does. Only runs allowed
        # more than the 30 rounds meet it; `info["ended"]` says so, since the text does not.
        out_of_moves = moves > self.engine.envStepLimit and not complete
        if out_of_moves or score < 0:
            complete = True
        reward = float(score - self.last_score)
        self.last_score = score
        info = {"task": self.task, "variation": str(self.variation), "moves": str(moves)}
        if out_of_moves:
            info["ended"] = f"the simulator's limit of {self.engine.envStepLimit} moves"
        if text.strip() == _NO_MATCH:
            info["invalid"] = "true"
        return Outcome(
            text,
            reward=reward,
            done=complete,
            success=score >= 100,
            score=float(score),
            info=info,
        )

    def _generate_gold(self) -> list[str]:
        """Reload the task with gold-path generation and replay this episode's actions."""
        last = self._call(self.engine.server.freeActionLook)
        self._load(generate_gold=True)
        gold = list(self._call(self.engine.get_gold_action_sequence))
        for action in self.history:
            self._call(self.engine.server.step, action)
        if self._call(self.engine.server.freeActionLook) != last:
            log.warning(
                "sciworld replay diverged",
                extra={"task": self.task, "variation": self.variation, "actions": len(self.history)},
            )
        return gold
