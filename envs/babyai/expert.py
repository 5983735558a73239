"""The BabyAI expert: minigrid's BabyAI bot, its low-level moves expressed as our text actions.

The bot plans one low-level move at a time (turn, forward, pick up, drop, toggle). With a budget
of 20 rounds, one move per round would not finish most levels, so the expert compresses: it rolls
the bot forward on a copy of the level, then picks the available text action that lands furthest
along the bot's trajectory, or completes the mission outright; a walk off the bot's path (straight
to a far door, say) counts by how much shorter the bot's plan is from where it ends. "turn left", "move forward",
"toggle" etc. always match the bot's very next move, so the expert never does worse than one bot
move per round.

The bot keeps state across moves (what it has seen, its stack of subgoals), so it is created on
the first expert request and then told about every low-level move the episode makes, whoever
chose it (it plans how to undo moves it did not suggest). A text action whose path differs from
the bot's own can leave the bot with such undo plans even when it ends in the same place, so a
candidate counts only if, replayed on a copy with the bot told about each move, it leaves both
the level and the bot's plan as the bot's own moves would.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from agentgym.envs.babyai.view import _DIR_VEC, DONE, FORWARD, LEFT, RIGHT, View

log = logging.getLogger(__name__)

# Longest bot plan followed (low-level moves); BabyAI's longest levels take about 250.
MAX_PLAN = 400


class ExpertFailed(RuntimeError):
    """The bot cannot plan from here (minigrid's bot does not solve every level)."""


class _BotStuck(RuntimeError):
    pass


class _BoundedStack(list):  # type: ignore[type-arg]
    """The bot's subgoal stack, refusing to grow without end: told about moves it did not
    suggest, the bot can loop pushing subgoals forever inside one replan."""

    MAX_PUSHES = 200

    pushes = 0

    def append(self, item: Any) -> None:
        self.pushes += 1
        if self.pushes > self.MAX_PUSHES or len(self) > self.MAX_PUSHES:
            raise _BotStuck("the BabyAI bot keeps pushing subgoals")
        super().append(item)


def _replan(bot: Any, move: int | None = None) -> int:
    """One bot step, bounded."""
    bot.stack.pushes = 0
    return int(bot.replan(move))


def state_key(env: Any) -> tuple[Any, ...]:
    """What must agree for two states of a level to count as the same: the agent's cell,
    direction and load, and every non-wall object with its cell and door state."""
    objects = []
    for idx, obj in enumerate(env.grid.grid):
        if obj is not None and obj.type != "wall":
            state = (obj.is_open, obj.is_locked) if obj.type == "door" else ()
            objects.append((idx, obj.type, obj.color, state))
    carrying = env.carrying
    load = (carrying.type, carrying.color) if carrying is not None else None
    return (tuple(int(v) for v in env.agent_pos), int(env.agent_dir), load, tuple(objects))


def effect_key(env: Any) -> tuple[Any, ...]:
    """Changes when a low-level move did something (moved, turned, picked, dropped, toggled)."""
    front = env.grid.get(*env.front_pos)
    door = (front.is_open, front.is_locked) if front is not None and front.type == "door" else ()
    return (tuple(int(v) for v in env.agent_pos), int(env.agent_dir), id(env.carrying), id(front), door)


def run_moves(env: Any, moves: list[int], on_move: Any = None) -> tuple[float, bool, bool, int]:
    """Apply low-level moves until one has no effect or the level ends.
    Returns (reward, terminated, truncated, moves made)."""
    reward, terminated, truncated, made = 0.0, False, False, 0
    for move in moves:
        before = effect_key(env)
        _, r, terminated, truncated, _ = env.step(move)
        made += 1
        reward = float(r)
        if on_move is not None:
            on_move(move)
        if terminated or truncated or (move != DONE and effect_key(env) == before):
            break
    return reward, terminated, truncated, made


def end_pose(env: Any, moves: list[int]) -> tuple[tuple[int, int], int]:
    """Where the agent would stand and face after `moves`, if each succeeds."""
    x, y = (int(v) for v in env.agent_pos)
    d = int(env.agent_dir)
    for move in moves:
        if move == LEFT:
            d = (d - 1) % 4
        elif move == RIGHT:
            d = (d + 1) % 4
        elif move == FORWARD:
            x, y = x + _DIR_VEC[d][0], y + _DIR_VEC[d][1]
    return (x, y), d


class BotExpert:
    """Minigrid's BabyAI bot bound to one episode's level."""

    def __init__(self, env: Any) -> None:
        from minigrid.utils.baby_ai_bot import BabyAIBot

        self.env = env
        # The bot's own plan from the last request: (bot keys, points, finished); see _plan.
        self.cached: tuple[list[Any], list[tuple[Any, Any]], bool] | None = None
        try:
            self.bot = BabyAIBot(env)
            self.bot.stack = _BoundedStack(self.bot.stack)
            self.suggested: int = _replan(self.bot)
        except Exception as exc:
            raise ExpertFailed(f"the BabyAI bot cannot plan this level: {type(exc).__name__}: {exc}") from exc

    def observe(self, move: int) -> None:
        """Tell the bot about a low-level move just made in the episode."""
        self.suggested = _replan(self.bot, move)

    def _plan(self) -> tuple[list[tuple[Any, Any]], bool]:
        """The bot's own plan from here: the points it passes and whether it finishes. Rolling it
        out is most of a request's cost (each bot move replans), and when the episode took an
        action that lands on the last request's plan with the bot in the same state (level, plan,
        and what it has seen) the rest of that plan is the same, so it is reused."""
        key = bot_key(self.env, self.bot)
        if self.cached is not None and key in self.cached[0]:
            keys, points, finished = self.cached
            i = keys.index(key)
            self.cached = keys[i:], points[i:], finished
            return points[i:], finished
        keys: list[Any] = []
        points, finished = self._rollout(self.env, self.bot, self.suggested, record=True, keys=keys)
        self.cached = keys, points, finished
        return points, finished

    def action(self, view: View) -> str:
        """The available text action that saves the most moves of the bot's plan."""
        points, finished = self._plan()
        remaining = len(points) - 1 if finished else MAX_PLAN  # moves the bot still needs
        furthest = {point: i for i, point in enumerate(points)}
        here = furthest[points[0]]
        poses = {(key[0], key[1]) for key, _ in points[here + 1 :]}
        best: tuple[int, int, int] | None = None
        choice = ""
        failing: list[str] = []  # actions that would end the mission in failure
        for text, moves in view.actions.items():
            if not moves:
                continue
            walking = len(moves) > 1 and all(m in (LEFT, RIGHT, FORWARD, DONE) for m in moves)
            # Replaying is costly: skip paths that can neither end where the bot passes nor be walks.
            if len(moves) > 1 and not walking and end_pose(self.env, moves) not in poses:
                continue
            env, bot = copy.deepcopy((self.env, self.bot))
            suggestion = [self.suggested]

            def tell(move: int, bot: Any = bot, suggestion: list[int] = suggestion) -> None:
                suggestion[0] = _replan(bot, move)

            try:
                reward, terminated, _, made = run_moves(env, moves, tell)
            except Exception:
                continue  # the bot cannot follow this action
            if terminated:
                if reward <= 0:
                    failing.append(text)  # a failure ending (strict levels)
                    continue
                saved = remaining + 1  # finishing now beats everything else
            else:
                k = furthest.get((state_key(env), plan_signature(bot)), -1)
                if k > here:
                    saved = k - here
                elif walking:
                    # A walk off the bot's path (e.g. far across a room it would explore cell by
                    # cell): worth it if the bot's plan from there is shorter. Only as far as could
                    # still beat the best so far: each bot step costs a replan, and on the large
                    # levels unbounded rollouts made single expert requests take minutes.
                    limit = remaining - (best[0] if best else 1) + 1
                    rest, done = self._rollout(
                        env, bot, suggestion[0], record=False, on_copy=False, limit=limit
                    )
                    saved = remaining - (len(rest) - 1 if done else MAX_PLAN)
                else:
                    continue
            if saved <= 0:
                continue
            score = (saved, -made, -len(moves))
            if best is None or score > best:
                best, choice = score, text
        if choice:
            return choice
        # Nothing scored: the bot's own plan breaks down within a move or two (it cannot solve
        # PutNextS7N4Carrying or KeyInBox, say), so no point on it can be matched. Its next move
        # still maps to an action: take that, one move per round, as the bot itself would.
        for text, moves in view.actions.items():
            if moves == [self.suggested] and text not in failing:
                return text
        why = f"; these would fail the mission: {', '.join(failing)}" if failing else ""
        raise ExpertFailed(
            f"no available action follows the BabyAI bot's plan (it suggests move {self.suggested}){why}"
        )

    @staticmethod
    def _rollout(
        env: Any,
        bot: Any,
        move: int,
        record: bool,
        on_copy: bool = True,
        limit: int = MAX_PLAN,
        keys: list[Any] | None = None,
    ) -> tuple[list[tuple[Any, Any]], bool]:
        """Follow the bot's own plan from `move` on (a copy of, unless told otherwise) env and bot,
        for at most `limit` moves. Returns the points passed, each (state key, plan signature) when
        `record`, and whether the plan accomplished the mission; `keys` gets each point's bot_key
        (None for a final one)."""
        if on_copy:
            env, bot = copy.deepcopy((env, bot))
        points: list[tuple[Any, Any]] = [(state_key(env), plan_signature(bot)) if record else ((), ())]
        if keys is not None:
            keys.append(bot_key(env, bot))
        for _ in range(min(limit, MAX_PLAN)):
            _, reward, terminated, truncated, _ = env.step(move)
            if terminated or truncated:
                points.append((state_key(env), None) if record else ((), None))
                if keys is not None:
                    keys.append(None)
                return points, terminated and reward > 0
            try:
                move = _replan(bot, move)
            except Exception:
                log.debug("bot rollout stopped", exc_info=True)
                return points, False
            points.append((state_key(env), plan_signature(bot)) if record else ((), ()))
            if keys is not None:
                keys.append(bot_key(env, bot))
        return points, False


def bot_key(env: Any, bot: Any) -> tuple[Any, ...]:
    """Everything the bot's next moves depend on: the level, its plan and the cells it has seen."""
    return (state_key(env), plan_signature(bot), bot.vis_mask.tobytes())


def plan_signature(bot: Any) -> tuple[Any, ...]:
    """The bot's stack of subgoals, described so that a copy of the bot gives the same value."""
    return tuple((type(goal).__name__, goal.reason, _describe_datum(goal.datum)) for goal in bot.stack)


def _describe_datum(datum: Any) -> Any:
    if datum is None:
        return None
    if hasattr(datum, "obj_set"):  # an object description
        return ("desc", datum.type, datum.color, datum.loc)
    if hasattr(datum, "cur_pos"):  # a world object
        pos = datum.cur_pos
        return ("obj", datum.type, datum.color, None if pos is None else tuple(int(v) for v in pos))
    return tuple(int(v) for v in datum)  # a position


def key_in_box_action(view: View, env: Any) -> str:
    """KeyInBox (level 26), which minigrid's bot cannot solve (it does not look in boxes): open
    the box, take the key it held, open the locked door with it. Out of view, it heads for them
    (it knows where they are, as the bot knows the level it plans on)."""
    actions = view.actions

    def find(verb: str, kind: str) -> str | None:
        return next((a for a in actions if a.startswith(verb) and f" {kind} " in a), None)

    carrying = env.carrying
    if carrying is not None and carrying.type == "key":
        found, targets = find("toggle and go through", "door"), ("door",)
    else:
        front = env.grid.get(*env.front_pos)
        if front is not None and front.type == "box" and "toggle" in actions:
            return "toggle"  # the box gives way to the key it held
        found, targets = find("pick up", "key") or find("go to", "box"), ("key", "box")
    if found:
        return found
    # Out of view: walk towards the nearest target, turning to face it first.
    ax, ay = (int(v) for v in env.agent_pos)
    spots = [(abs(x - ax) + abs(y - ay), x, y) for x in range(env.width) for y in range(env.height)
             if (obj := env.grid.get(x, y)) is not None and obj.type in targets]  # fmt: skip
    if spots:
        _, x, y = min(spots)
        (fx, fy), (rx, ry) = (int(v) for v in env.dir_vec), (int(v) for v in env.right_vec)
        ahead, right = (x - ax) * fx + (y - ay) * fy, (x - ax) * rx + (y - ay) * ry
        if ahead > 0 and "move forward" in actions:
            return "move forward"
        return "turn right" if right > 0 else "turn left"
    return "move forward" if "move forward" in actions else "turn left"
