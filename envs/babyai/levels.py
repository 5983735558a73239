"""BabyAI's 40 levels in the original AgentGym's order, and making them quietly.

A task id picks a level and a seed as in the original: level number = id % 40 + 1 (1-based),
seed = id // 40. The levels are minigrid's registered BabyAI environments.

One fix to minigrid's mission check (`fix_sequences`): when the first clause of "X, then Y" (or
"Y after you X") is completed, minigrid checks the same move against the second clause at once,
and a strict clause fails it. So in OpenDoorsOrderN4Debug (level 16), "open the red door, then
open the blue door" failed the moment the red door opened (red is not blue), which made every
two-door mission of that level unsolvable. Here the move that completes the first clause may
complete the second too, but cannot fail it.
"""

from __future__ import annotations

import os
import warnings
from functools import cache
from typing import Any

# Level number (1-based) -> minigrid environment id, in the original's order. One difference:
# level 4 is "GoToObjS6-v1". minigrid registered "GoToObjS6-v0" with a 4x4 room by mistake and
# replaced it by v1 (a 6x6 room, as the name says); the old id no longer exists.
LEVELS: tuple[str, ...] = (
    "BabyAI-GoToRedBallGrey-v0",
    "BabyAI-GoToRedBall-v0",
    "BabyAI-GoToRedBallNoDists-v0",
    "BabyAI-GoToObjS6-v1",
    "BabyAI-GoToLocalS8N7-v0",
    "BabyAI-GoToObjMazeS7-v0",
    "BabyAI-GoToImpUnlock-v0",
    "BabyAI-GoToSeqS5R2-v0",
    "BabyAI-GoToRedBlueBall-v0",
    "BabyAI-GoToDoor-v0",
    "BabyAI-GoToObjDoor-v0",
    "BabyAI-Open-v0",
    "BabyAI-OpenRedDoor-v0",
    "BabyAI-OpenDoorLoc-v0",
    "BabyAI-OpenRedBlueDoorsDebug-v0",
    "BabyAI-OpenDoorsOrderN4Debug-v0",
    "BabyAI-Pickup-v0",
    "BabyAI-UnblockPickup-v0",
    "BabyAI-PickupLoc-v0",
    "BabyAI-PickupDistDebug-v0",
    "BabyAI-PickupAbove-v0",
    "BabyAI-PutNextLocalS6N4-v0",
    "BabyAI-PutNextS7N4Carrying-v0",
    "BabyAI-Unlock-v0",
    "BabyAI-UnlockLocalDist-v0",
    "BabyAI-KeyInBox-v0",
    "BabyAI-UnlockPickupDist-v0",
    "BabyAI-BlockedUnlockPickup-v0",
    "BabyAI-UnlockToUnlock-v0",
    "BabyAI-ActionObjDoor-v0",
    "BabyAI-FindObjS7-v0",
    "BabyAI-KeyCorridorS6R3-v0",
    "BabyAI-OneRoomS20-v0",
    "BabyAI-MoveTwoAcrossS8N9-v0",
    "BabyAI-SynthS5R2-v0",
    "BabyAI-SynthLoc-v0",
    "BabyAI-SynthSeq-v0",
    "BabyAI-MiniBossLevel-v0",
    "BabyAI-BossLevel-v0",
    "BabyAI-BossLevelNoUnlock-v0",
)
LEVEL_COUNT = len(LEVELS)


def level_of(task_id: int) -> int:
    """1-based level number of a task id."""
    return task_id % LEVEL_COUNT + 1


def seed_of(task_id: int) -> int:
    return task_id // LEVEL_COUNT


def _quiet(*args: Any, **kwargs: Any) -> None:
    """Stands in for `print` in minigrid modules that report rejected samples on stdout."""


@cache
def _import_minigrid() -> None:
    # pygame (a minigrid dependency) greets on import unless told not to.
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import minigrid  # noqa: F401  (registers the BabyAI ids with gymnasium)
        from minigrid.core import mission
        from minigrid.envs.babyai.core import roomgrid_level
    # Level generation prints every rejected sample ("Sampling rejected: ...") to stdout. Shadow
    # `print` in those modules only, rather than redirecting sys.stdout, which other threads share.
    roomgrid_level.print = _quiet  # type: ignore[attr-defined]
    mission.print = _quiet  # type: ignore[attr-defined]
    _define_sequences()


def _ordered(seq: Any, first: Any, first_flag: str, second: Any, second_flag: str, action: int) -> str:
    """minigrid's check of a two-clause sequence, `first` to be done before `second`, except that
    the move completing `first` cannot fail `second` (see the module's docstring)."""
    if getattr(seq, first_flag) == "success":
        status = second.verify(action)
        setattr(seq, second_flag, status)
        return status if status in ("success", "failure") else "continue"
    status = first.verify(action)
    setattr(seq, first_flag, status)
    if status == "failure":
        return "failure"
    if status == "success":
        # Still checked (clauses track state per move, e.g. what was carried), but only a success counts.
        then = "success" if second.verify(action) == "success" else "continue"
        setattr(seq, second_flag, then)
        return then
    if seq.strict and second.verify(action) == "success":
        return "failure"  # the second clause done first: a strict sequence fails, as in minigrid
    return "continue"


# minigrid's sequence classes -> ours (subclasses: the bot tells clauses apart with isinstance).
_SEQUENCES: dict[type, type] = {}


def _define_sequences() -> None:
    from minigrid.envs.babyai.core.verifier import AfterInstr, BeforeInstr

    class Before(BeforeInstr):  # type: ignore[misc]
        """X, then Y."""

        def verify(self, action: int) -> str:
            return _ordered(self, self.instr_a, "a_done", self.instr_b, "b_done", action)

    class After(AfterInstr):  # type: ignore[misc]
        """X after you Y."""

        def verify(self, action: int) -> str:
            return _ordered(self, self.instr_b, "b_done", self.instr_a, "a_done", action)

    for cls in (Before, After):
        cls.__module__, cls.__qualname__ = __name__, f"_{cls.__name__}"  # picklable by name
        globals()[cls.__qualname__] = cls
    _SEQUENCES.update({BeforeInstr: Before, AfterInstr: After})


def fix_sequences(instr: Any) -> None:
    """Give a freshly generated mission's sequences our check (call after every reset)."""
    fixed = _SEQUENCES.get(type(instr))
    if fixed is not None:
        instr.__class__ = fixed
    for part in (getattr(instr, "instr_a", None), getattr(instr, "instr_b", None)):
        if part is not None:
            fix_sequences(part)


def make_level(level: int) -> Any:
    """A fresh minigrid environment (unwrapped) for a 1-based level number."""
    _import_minigrid()
    import gymnasium

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return gymnasium.make(LEVELS[level - 1], disable_env_checker=True).unwrapped
