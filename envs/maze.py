"""Maze (LMRL-Gym style): walk to the goal with `move up|down|left|right`.

Every task is on LMRL-Gym's 10x13 "double T" maze, as in the original benchmark. Task ids 0-24 are
the original's: goal at (8, 6), one task per valid start position, in the original's order. Task
ids 25 and up are the maze's other (start, goal) pairs at most 12 moves apart (the original's
longest path), so every task is solvable within the 15-round limit: 531 more tasks, in a fixed
shuffled order; the first 425 are the train split, the last 106 are held out for testing. Agents
see positions, not the map, so one shared layout is what makes the task learnable, as in LMRL-Gym.

Observations are the original's fully observed form: the goal's and the agent's coordinates
(row, column; moving down adds 1 to the row, right adds 1 to the column) and the adjacent walls.
A move into a wall, or an action that is not a move, leaves the agent where it is. Reaching the
goal gives reward 1, observation "Success" and ends the episode.

Under the "agentgym" compatibility profile (envs/compat.py, docs/compat.md) the conversation is
the original's: a one-line instruction and the acknowledgement (both from the operator's files),
then a first observation that is the original's task text (rules, an example, the reply format;
also from those files), a newline and the observation above. Steps follow the original's server:
a move is recognised only as written ("Move up" is not one) and the goal's observation is
"Success" with the newline LMRL-Gym ends it with.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Mapping
from functools import cache
from typing import ClassVar

from agentgym.envs.base import Env, EnvError, Outcome
from agentgym.envs.registry import register

Pos = tuple[int, int]
Grid = tuple[str, ...]  # rows; "#" wall, "." open

# LMRL-Gym's double-T maze (from mazelab) and its start positions in the original task order.
_DOUBLE_T: Grid = (
    "#############",
    "#.....#.....#",
    "###.#####.###",
    "###.#####.###",
    "###.#####.###",
    "###.......###",
    "######.######",
    "######.######",
    "######.######",
    "#############",
)
_DOUBLE_T_GOAL: Pos = (8, 6)
_DOUBLE_T_STARTS: tuple[Pos, ...] = (
    (1, 1),
    (1, 2),
    (1, 3),
    (1, 4),
    (1, 5),
    (1, 7),
    (1, 8),
    (1, 9),
    (1, 10),
    (1, 11),
    (2, 3),
    (3, 3),
    (4, 3),
    (5, 3),
    (5, 4),
    (5, 5),
    (5, 6),
    (6, 6),
    (7, 6),
    (5, 7),
    (5, 8),
    (5, 9),
    (4, 9),
    (3, 9),
    (2, 9),
)

ORIGINAL_TASKS = len(_DOUBLE_T_STARTS)
MAX_DISTANCE = 12  # the original's longest start: (1, 1) to (8, 6)
HELD_OUT = 106

MOVES: dict[str, Pos] = {"move up": (-1, 0), "move down": (1, 0), "move left": (0, -1), "move right": (0, 1)}
ACTIONS = list(MOVES)
# Order in which walls are named, as in the original's descriptions.
_WALL_WORDS = (
    ("to your right", (0, 1)),
    ("to your left", (0, -1)),
    ("above you", (-1, 0)),
    ("below you", (1, 0)),
)

INSTRUCTION = """\
You are solving a maze. Reach the goal in as few moves as possible.

Every round you are told where the goal is, where you are, and which neighbouring squares are \
walls. Positions are given as row, column: "move down" adds 1 to the row, "move right" adds 1 \
to the column, "move up" and "move left" subtract 1. Moving into a wall leaves you in place.

Example:
environment: The goal is at position 3, 4. Your current position is at position 1, 4. There are walls to your right, to your left.
action: move down
environment: The goal is at position 3, 4. Your current position is at position 2, 4. There is a wall to your left.
action: move down
environment: Success

The actions are "move up", "move down", "move left" and "move right". Reply in exactly this format:
Thought:
your reasoning

Action:
your move"""


@cache
def _other_pairs() -> tuple[tuple[Pos, Pos], ...]:
    """(start, goal) pairs beyond the original 25, within MAX_DISTANCE, in a fixed shuffled order."""
    cells = sorted((r, c) for r, row in enumerate(_DOUBLE_T) for c, v in enumerate(row) if v == ".")
    original = {(start, _DOUBLE_T_GOAL) for start in _DOUBLE_T_STARTS}
    pairs = []
    for goal in cells:
        dist = _distances(_DOUBLE_T, goal)
        pairs += [
            (s, goal) for s in cells if s != goal and dist[s] <= MAX_DISTANCE and (s, goal) not in original
        ]
    random.Random("agentgym-maze-pairs").shuffle(pairs)
    return tuple(pairs)


def task(task_id: int) -> tuple[Grid, Pos, Pos]:
    """(grid, goal, start) of a task id."""
    if task_id < ORIGINAL_TASKS:
        return _DOUBLE_T, _DOUBLE_T_GOAL, _DOUBLE_T_STARTS[task_id]
    start, goal = _other_pairs()[task_id - ORIGINAL_TASKS]
    return _DOUBLE_T, goal, start


def _distances(grid: Grid, goal: Pos) -> dict[Pos, int]:
    dist = {goal: 0}
    queue = deque([goal])
    while queue:
        r, c = queue.popleft()
        for dr, dc in MOVES.values():
            p = (r + dr, c + dc)
            if grid[p[0]][p[1]] == "." and p not in dist:
                dist[p] = dist[(r, c)] + 1
                queue.append(p)
    return dist


@cache
def _distance_map(task_id: int) -> dict[Pos, int]:
    grid, goal, _ = task(task_id)
    return _distances(grid, goal)


def observation(task_id: int) -> str:
    """A task's first observation (without the profile's task text): what compat.py checks the
    original's records against."""
    grid, goal, start = task(task_id)
    return _describe(grid, goal, start)


def _describe(grid: Grid, goal: Pos, pos: Pos) -> str:
    (gr, gc), (r, c) = goal, pos
    return f"The goal is at position {gr}, {gc}. Your current position is at position {r}, {c}. " + _walls(
        grid, pos
    )


def _walls(grid: Grid, pos: Pos) -> str:
    walls = [w for w, (dr, dc) in _WALL_WORDS if grid[pos[0] + dr][pos[1] + dc] == "#"]
    if not walls:
        return "There are no walls near you."
    if len(walls) == 1:
        return f"There is a wall {walls[0]}."
    return f"There are walls {', '.join(walls)}."


@register
class Maze(Env):
    name = "maze"
    description = "Walk to the goal of LMRL-Gym's double-T maze; tasks 0-24 are the original benchmark's."
    instruction = INSTRUCTION
    action_format = "move up | move down | move left | move right"
    max_rounds = 15
    task_count = ORIGINAL_TASKS + len(_other_pairs())
    splits = {
        "train": [range(ORIGINAL_TASKS, task_count - HELD_OUT)],
        "test": [range(0, ORIGINAL_TASKS), range(task_count - HELD_OUT, task_count)],
        "original": [range(0, ORIGINAL_TASKS)],
        "held_out": [range(task_count - HELD_OUT, task_count)],
    }
    execution = "inline"
    task_set = "ids 0-24 are the original's 25 tasks (split 'original'); 25 and up are this project's"
    # The profile's task text, set by envs/compat.py from the operator's files ("" without it).
    original_task_text: ClassVar[str] = ""

    @classmethod
    def configure(cls, settings: Mapping[str, str]) -> None:
        # The registry applies the profile's texts after this; a configuration without it has none.
        cls.original_task_text = ""

    def reset(self, task_id: int, seed: int, options: Mapping[str, str]) -> Outcome:
        self.task_id = task_id
        self.grid, self.goal, self.pos = task(task_id)
        first = self._describe()
        if self.profile == "agentgym":
            if not self.original_task_text:
                raise EnvError(
                    "maze: the agentgym profile is on but no task text was loaded (envs/compat.py)"
                )
            # The original's client puts its task text before the server's first observation.
            first = f"{self.original_task_text}\n{first}"
        return Outcome(first, available_actions=ACTIONS)

    def step(self, action: str) -> Outcome:
        original = self.profile == "agentgym"
        # The original's server matches a move exactly; ours forgives the case.
        move = MOVES.get(action if original else action.lower())
        if move is not None:
            nxt = (self.pos[0] + move[0], self.pos[1] + move[1])
            if self.grid[nxt[0]][nxt[1]] == ".":
                self.pos = nxt
        if self.pos == self.goal:
            return Outcome("Success\n" if original else "Success", reward=1.0, done=True, success=True)
        info = {"invalid": "true"} if move is None else {}
        return Outcome(self._describe(), available_actions=ACTIONS, info=info)

    def _describe(self) -> str:
        return _describe(self.grid, self.goal, self.pos)

    def expert_thought(self, action: str) -> str:
        (gr, gc), (r, c) = self.goal, self.pos
        return f"The goal is at {gr}, {gc} and I am at {r}, {c}. The shortest way there starts with {action}."

    def expert_action(self) -> str:
        """A shortest-path move (ties broken in a fixed order)."""
        dist = _distance_map(self.task_id)
        here = dist.get(self.pos)
        if here == 0:  # standing on the goal (cannot happen after reset): step off and back
            return next(
                a for a, (dr, dc) in MOVES.items() if self.grid[self.pos[0] + dr][self.pos[1] + dc] == "."
            )
        for a, (dr, dc) in MOVES.items():
            if dist.get((self.pos[0] + dr, self.pos[1] + dc), -1) == (here or 0) - 1:
                return a
        raise RuntimeError(f"maze task {self.task_id}: no path to the goal from {self.pos}")
