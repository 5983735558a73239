"""BabyAI: carry out a grid-world mission through high-level text actions.

Semantics follow the original AgentGym's `agentenv-babyai`:
- task id -> level (id % 40 + 1, the original's 40-level list) and seed (id // 40); a create with
  an explicit seed plays that level with that seed instead;
- the agent sees minigrid's 7x7 partial view as text: the objects in view with their positions
  relative to the agent, what is straight ahead, and what it carries; the mission comes first;
- actions: turn left, turn right, move forward, go to <obj> <n>, pick up <obj> <n>,
  go through <door> <n>, toggle and go through <door> <n>, toggle, drop, check available
  actions. A high-level action is a path planned inside the visible cells and replayed as
  minigrid moves; the available ones are listed after every observation;
- reward: the level's own success reward, 1 - 0.9 * moves / the level's move budget, paid when the
  mission is accomplished; max 20 rounds.

Differences from the original, all deliberate: the episode also ends (unsuccessfully) when a
strict level reports failure or the level's move budget runs out, instead of silently going on;
every success counts as done (the original ignored successes rewarded 0.5 or less); boxes can be
toggled (opened), which the KeyInBox level needs; a sequence's first clause, once done, cannot fail
its second (levels.py: minigrid's check made level 16's two-door missions unsolvable).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

from agentgym.envs.babyai.expert import BotExpert, ExpertFailed, key_in_box_action, run_moves
from agentgym.envs.babyai.levels import LEVEL_COUNT, LEVELS, fix_sequences, level_of, make_level, seed_of
from agentgym.envs.babyai.view import View, look
from agentgym.envs.base import Env, Outcome
from agentgym.envs.registry import register

log = logging.getLogger(__name__)

INSTRUCTION = """\
You are an agent in a grid world of rooms joined by doors. Each game gives you a mission, such \
as "go to the red ball" or "open the blue door, then pick up a key". Finish it in as few moves \
as you can.

Every round you see what is in front of you (you see up to 6 cells ahead and 3 to each side, not \
through walls). Each object in view is named with a number, nearest first, e.g. "red ball 1", \
"grey closed door 2". Reply with one action:
- turn left / turn right / move forward
- go to <obj> <n>: walk up to an object and face it, e.g. "go to red ball 1"
- pick up <obj> <n>: walk up to a key, ball or box and pick it up (you can carry one thing)
- drop: put down what you carry in the cell in front of you
- go through <door> <n>: walk into an open door, e.g. "go through blue open door 1"
- toggle and go through <door> <n>: open a closed or locked door and step into it; a locked door \
needs a key of its colour in your hands
- toggle: open or close the door (or open the box) right in front of you
- check available actions: list the actions possible right now
Each observation ends with the actions available right now.

Reply in exactly this format:
Thought:
your reasoning

Action:
your action"""

_OBJECT_ACTION = re.compile(r"(go to|pick up|go through|toggle and go through) (.+)")
_NUMBERED = re.compile(r".+ \d+")
TEST_SEEDS = 10  # seeds 0-9 of every level form the test split
KEY_IN_BOX = "BabyAI-KeyInBox-v0"  # the bot cannot solve it: a scripted expert does
SEEDS = 1000


def normalize(action: str) -> str:
    """Lower-case words and numbers only, single spaces ("Go to the red ball 1." -> ...)."""
    text = " ".join(re.sub(r"[^a-z0-9 ]+", " ", action.lower()).split())
    return re.sub(r"^pickup\b", "pick up", text)


@register
class BabyAI(Env):
    name = "babyai"
    description = "Grid-world missions (BabyAI's 40 levels on minigrid) through high-level text actions."
    instruction = INSTRUCTION
    action_format = (
        "turn left | turn right | move forward | go to <obj> <n> | pick up <obj> <n> | drop | "
        "go through <door> <n> | toggle and go through <door> <n> | toggle | check available actions"
    )
    max_rounds = 20
    task_count = LEVEL_COUNT * SEEDS
    splits = {
        "train": [range(LEVEL_COUNT * TEST_SEEDS, LEVEL_COUNT * SEEDS)],
        "test": [range(0, LEVEL_COUNT * TEST_SEEDS)],
    }
    # Success pays 1 - 0.9 * moves / budget: at least 0.1 for any mission accomplished in time.
    success_threshold = 0.05
    execution = "thread"

    @classmethod
    def default_seed(cls, task_id: int) -> int:
        return seed_of(task_id)

    @classmethod
    def configure(cls, settings: Mapping[str, str]) -> None:
        make_level(1)  # import minigrid once per process, before the first episode
        # The original's numbering (level = id % 40 + 1, seed = id // 40), but minigrid's level
        # generator: whether a seed lays out as the original's babyai package did is not checked.
        cls.task_set = "the original's level and seed numbering on minigrid's generator; layouts not checked"

    def __init__(self) -> None:
        super().__init__()
        self.level_env: Any = None
        self.level = 0
        self.view: View | None = None
        self.expert: BotExpert | None = None

    def reset(self, task_id: int, seed: int, options: Mapping[str, str]) -> Outcome:
        level = level_of(task_id)
        if self.level_env is None or level != self.level:
            self.level_env = make_level(level)
            self.level = level
        self.level_env.reset(seed=seed)
        fix_sequences(self.level_env.instrs)
        self.expert = None
        mission = self.level_env.mission
        self.view = look(self.level_env)
        text = f"Your goal: {mission}\n{self.view.description}"
        return self._outcome(text, info={"level": LEVELS[level - 1], "seed": str(seed)})

    def step(self, action: str) -> Outcome:
        assert self.view is not None
        act = normalize(action)
        if act.startswith("check"):
            listing = ", ".join(f'"{a}"' for a in self.view.actions)
            return self._outcome(f"You can take these actions: {listing}.")
        moves = self.view.actions.get(act)
        if moves is None:
            return self._outcome(self._refusal(act, action), info={"invalid": "true"})
        env = self.level_env
        reward, terminated, truncated, _ = run_moves(env, moves, self._tell_expert)
        self.view = look(env)
        if terminated and reward > 0:
            text = f"{self.view.description}\nYou accomplished the mission: {env.mission}."
            return Outcome(text, reward=reward, done=True, success=True)
        if terminated:
            return Outcome(
                f"{self.view.description}\nThat broke the mission's rules: the mission failed.", done=True
            )
        if truncated:
            return Outcome(
                f"{self.view.description}\nYou used all {env.max_steps} moves this level allows: the mission failed.",
                done=True,
            )
        return self._outcome(self.view.description)

    def _refusal(self, act: str, raw: str) -> str:
        assert self.view is not None
        if act in self.view.refusals:
            return self.view.refusals[act]
        m = _OBJECT_ACTION.fullmatch(act)
        if m:
            what = m.group(2)
            if not _NUMBERED.fullmatch(what):
                return f'Name the object with its number as listed, e.g. "{m.group(1)} {what} 1".'
            if any(t.label == what for t in self.view.things):
                return f"You cannot {m.group(1)} {what}."
            return f"There is no {what} in view."
        shown = raw if len(raw) <= 80 else raw[:77] + "..."
        return f'"{shown}" is not a valid action. Use "check available actions" to see what you can do.'

    def _outcome(self, text: str, info: Mapping[str, str] | None = None) -> Outcome:
        assert self.view is not None
        actions = list(self.view.actions)
        listing = ", ".join(f'"{a}"' for a in actions)
        return Outcome(f"{text}\nAvailable actions: {listing}", available_actions=actions, info=info or {})

    def _tell_expert(self, move: int) -> None:
        if self.expert is None:
            return
        try:
            self.expert.observe(move)
        except Exception:
            # The bot cannot follow (e.g. a box it needed was opened): start a fresh one if asked.
            log.debug("babyai bot lost track; it will be recreated", exc_info=True)
            self.expert = None

    def expert_action(self) -> str:
        assert self.view is not None
        if LEVELS[self.level - 1] == KEY_IN_BOX:
            return key_in_box_action(self.view, self.level_env)
        if self.expert is None:
            self.expert = BotExpert(self.level_env)
        try:
            return self.expert.action(self.view)
        except ExpertFailed:
            raise
        except Exception as exc:
            raise ExpertFailed(
                f"the BabyAI bot failed on {LEVELS[self.level - 1]}: {type(exc).__name__}: {exc}"
            ) from exc

    def close(self) -> None:
        if self.level_env is not None:
            self.level_env.close()
        self.level_env = None
        self.expert = None
