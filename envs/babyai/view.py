"""What the BabyAI agent sees, in words, and the high-level actions it can take from there.

The agent sees minigrid's partial view: the 7x7 cells ahead of it (walls block the view). Every
object in view gets a name and a number ("red ball 1", "grey closed door 2"): objects of one name
are numbered nearest first. A high-level action ("go to red ball 1") is a path planned inside the
visible cells, as a list of minigrid's low-level actions; it is offered only when such a path
exists. Actions that are well formed but not possible here get a reason instead.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

# minigrid's low-level actions
LEFT, RIGHT, FORWARD, PICKUP, DROP, TOGGLE, DONE = range(7)
# minigrid's directions: 0 faces +x, 1 faces +y, 2 faces -x, 3 faces -y
_DIR_VEC = ((1, 0), (0, 1), (-1, 0), (0, -1))
_SHOWN_TYPES = ("door", "key", "ball", "box", "goal", "lava")
_PICKABLE = ("key", "ball", "box")

Pos = tuple[int, int]
State = tuple[int, int, int]  # x, y, direction


@dataclass(frozen=True, slots=True)
class Thing:
    """An object in view."""

    name: str  # "red ball", "grey locked door"
    number: int  # 1-based among things of this name, nearest first
    pos: Pos
    ahead: int  # cells in front of the agent (0: level with it)
    right: int  # cells to its right (negative: to its left)
    kind: str  # minigrid type: door, key, ball, box, goal, lava
    color: str

    @property
    def label(self) -> str:
        return f"{self.name} {self.number}"

    def where(self) -> str:
        parts = []
        if self.ahead:
            parts.append(_steps(self.ahead) + " ahead")
        if self.right > 0:
            parts.append(_steps(self.right) + " to your right")
        elif self.right < 0:
            parts.append(_steps(-self.right) + " to your left")
        return " and ".join(parts)


def _steps(n: int) -> str:
    return f"{n} step" if n == 1 else f"{n} steps"


@dataclass(slots=True)
class View:
    """The agent's view: a description, the available actions and why others are refused."""

    description: str
    # available action -> its low-level actions, in the order they are listed to the agent
    actions: dict[str, list[int]]
    # well-formed actions that are not possible here -> why
    refusals: dict[str, str] = field(default_factory=dict)
    things: list[Thing] = field(default_factory=list)


def door_state(obj: Any) -> str:
    if obj.is_open:
        return "open"
    return "locked" if obj.is_locked else "closed"


def object_name(obj: Any) -> str:
    if obj.type == "door":
        return f"{obj.color} {door_state(obj)} door"
    return f"{obj.color} {obj.type}"


def _passable(obj: Any) -> bool:
    return obj is None or (obj.can_overlap() and obj.type != "lava")


class _Planner:
    """Breadth-first search over (cell, direction) inside the visible cells, from the agent's state.
    Moves are tried forward, left, right, so among shortest paths the straightest comes first."""

    def __init__(self, env: Any, visible: set[Pos]) -> None:
        self.env = env
        self.visible = visible
        x, y = (int(v) for v in env.agent_pos)
        start: State = (x, y, int(env.agent_dir))
        self.parent: dict[State, tuple[State, int] | None] = {start: None}
        self.facing: dict[Pos, State] = {}  # cell -> first (nearest) state facing it
        self.standing: dict[Pos, State] = {}  # cell -> first state standing on it
        queue = deque([start])
        while queue:
            state = queue.popleft()
            sx, sy, d = state
            dx, dy = _DIR_VEC[d]
            front = (sx + dx, sy + dy)
            self.facing.setdefault(front, state)
            self.standing.setdefault((sx, sy), state)
            for move, nxt in self._moves(state, front):
                if nxt not in self.parent:
                    self.parent[nxt] = (state, move)
                    queue.append(nxt)

    def _moves(self, state: State, front: Pos) -> Iterator[tuple[int, State]]:
        x, y, d = state
        if front in self.visible and _passable(self.env.grid.get(*front)):
            yield FORWARD, (front[0], front[1], d)
        yield LEFT, (x, y, (d - 1) % 4)
        yield RIGHT, (x, y, (d + 1) % 4)

    def _path(self, state: State | None) -> list[int] | None:
        if state is None:
            return None
        moves: list[int] = []
        link = self.parent[state]
        while link is not None:
            state, move = link
            moves.append(move)
            link = self.parent[state]
        return moves[::-1]

    def to_face(self, pos: Pos) -> list[int] | None:
        return self._path(self.facing.get(pos))

    def to_stand_on(self, pos: Pos) -> list[int] | None:
        return self._path(self.standing.get(pos))


def look(env: Any) -> View:
    """Describe minigrid env `env` (unwrapped) from the agent's point of view and list its actions."""
    things, visible = _things_in_view(env)
    planner = _Planner(env, visible)
    carrying = env.carrying
    fx, fy = (int(v) for v in env.front_pos)
    front = env.grid.get(fx, fy) if 0 <= fx < env.width and 0 <= fy < env.height else None
    front_thing = next((t for t in things if t.pos == (fx, fy)), None)

    actions: dict[str, list[int]] = {"turn left": [LEFT], "turn right": [RIGHT]}
    refusals: dict[str, str] = {}
    if _passable(front):
        actions["move forward"] = [FORWARD]
    else:
        blocker = front_thing.label if front_thing else "a wall"
        refusals["move forward"] = f"You cannot move forward: {blocker} is in the way."

    # toggle the door or box right in front
    if front is not None and front.type in ("door", "box"):
        if front.type == "door" and front.is_locked and not _key_for(carrying, front):
            refusals["toggle"] = (
                f"You cannot toggle {_label(front_thing)}: it is locked and you do not carry a {front.color} key."
            )
        else:
            actions["toggle"] = [TOGGLE]
    else:
        refusals["toggle"] = (
            "There is nothing in front of you to toggle: only a door or a box can be toggled."
        )

    if carrying is not None:
        if front is None:
            actions["drop"] = [DROP]
        else:
            refusals["drop"] = "You cannot drop here: the cell in front of you is not empty."
    else:
        refusals["drop"] = "You cannot drop anything: you are not carrying anything."

    for t in things:
        if t.kind not in _PICKABLE:
            continue
        act = f"pick up {t.label}"
        if carrying is not None:
            refusals[act] = (
                f"You cannot pick up {t.label}: you are already carrying a {object_name(carrying)}. Drop it first."
            )
            continue
        path = planner.to_face(t.pos)
        if path is None:
            refusals[act] = f"You cannot pick up {t.label}: there is no path to it in view."
        else:
            actions[act] = [*path, PICKUP]

    for t in things:
        if t.kind != "door":
            continue
        obj = env.grid.get(*t.pos)
        through, toggle_through = f"go through {t.label}", f"toggle and go through {t.label}"
        if obj.is_open:
            path = planner.to_stand_on(t.pos)
            if path is None:
                refusals[through] = f"You cannot go through {t.label}: there is no path to it in view."
            else:
                actions[through] = path
            refusals[toggle_through] = f"{t.label} is already open: use go through {t.label}."
            continue
        refusals[through] = f"You cannot go through {t.label}: it is {door_state(obj)}. Toggle it first."
        if obj.is_locked and not _key_for(carrying, obj):
            refusals[toggle_through] = (
                f"You cannot toggle and go through {t.label}: it is locked and you do not carry a {obj.color} key."
            )
            continue
        path = planner.to_face(t.pos)
        if path is None:
            refusals[toggle_through] = (
                f"You cannot toggle and go through {t.label}: there is no path to it in view."
            )
        else:
            actions[toggle_through] = [*path, TOGGLE, FORWARD]

    for t in things:
        act = f"go to {t.label}"
        path = planner.to_face(t.pos)
        if path is None:
            refusals[act] = f"You cannot go to {t.label}: there is no path to it in view."
        else:
            # Already facing it: a no-op step ("done") still lets the level check its goal.
            actions[act] = path or [DONE]

    actions["check available actions"] = []
    return View(_describe(env, things, visible, front_thing), actions, refusals, things)


def _key_for(carrying: Any, door: Any) -> bool:
    return carrying is not None and carrying.type == "key" and carrying.color == door.color


def _label(thing: Thing | None) -> str:
    return thing.label if thing else "the door"


def _things_in_view(env: Any) -> tuple[list[Thing], set[Pos]]:
    _, vis_mask = env.gen_obs_grid()
    size = env.agent_view_size
    ax, ay = (int(v) for v in env.agent_pos)
    fdx, fdy = (int(v) for v in env.dir_vec)
    rdx, rdy = (int(v) for v in env.right_vec)
    visible: set[Pos] = {(ax, ay)}
    found: list[tuple[int, int, int, Pos, Any]] = []
    for i in range(size):
        for j in range(size):
            if not vis_mask[i, j]:
                continue
            ahead, right = size - 1 - j, i - size // 2
            x, y = ax + fdx * ahead + rdx * right, ay + fdy * ahead + rdy * right
            if not (0 <= x < env.width and 0 <= y < env.height) or (x, y) == (ax, ay):
                continue
            visible.add((x, y))
            obj = env.grid.get(x, y)
            if obj is not None and obj.type in _SHOWN_TYPES:
                found.append((abs(ahead) + abs(right), ahead, right, (x, y), obj))
    found.sort(key=lambda f: f[:3])
    counts: dict[str, int] = {}
    things = []
    for _, ahead, right, pos, obj in found:
        name = object_name(obj)
        counts[name] = counts.get(name, 0) + 1
        things.append(Thing(name, counts[name], pos, ahead, right, obj.type, obj.color))
    return things, visible


def _describe(env: Any, things: list[Thing], visible: set[Pos], front_thing: Thing | None) -> str:
    lines = []
    if things:
        lines.append("You see: " + "; ".join(f"{t.label}, {t.where()}" for t in things) + ".")
    else:
        lines.append("You see no objects.")
    lines.append(_straight_ahead(env, things, visible))
    carrying = env.carrying
    lines.append(
        f"You are carrying a {object_name(carrying)}." if carrying else "You are not carrying anything."
    )
    return "\n".join(lines)


def _straight_ahead(env: Any, things: list[Thing], visible: set[Pos]) -> str:
    """What the agent would run into walking straight on."""
    x, y = (int(v) for v in env.agent_pos)
    dx, dy = (int(v) for v in env.dir_vec)
    by_pos = {t.pos: t for t in things}
    for n in range(1, env.agent_view_size):
        pos = (x + dx * n, y + dy * n)
        if pos not in visible:
            return f"Ahead of you the floor is clear for {_steps(n - 1)}, as far as you can see."
        obj = env.grid.get(*pos)
        if obj is None or (obj.type == "door" and obj.is_open and n > 1):
            continue
        what = by_pos[pos].label if pos in by_pos else f"a {obj.type}"
        if n == 1:
            return f"Right in front of you is {what}."
        return f"Ahead of you: {what}, {_steps(n)} away."
    return f"Ahead of you the floor is clear for {_steps(env.agent_view_size - 1)}, as far as you can see."
