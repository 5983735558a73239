"""The default ALFWorld task list: 2,620 task references drawn from ALFRED's own task definitions.

AgentGym numbers 2,620 ALFWorld games (ids 0-2419 train, 2420-2619 test) through two mapping files
that name a game folder per id; this project does not ship those files (see games.py for using
them). Instead it draws its own list of the same size and split sizes, with the same number of
tasks of each type in each split, from what the installed `alfworld` package ships:

- which task types a kind of room can have (ALFRED's `GOALS_VALID` over `SCENE_TYPE`), and which
  object types each of its 120 floor plans holds (`alfworld/gen/layouts/FloorPlan*-objects.json`);
- ALFRED's task constraints: the object is one that some receptacle can hold, and the receptacle
  one that can hold it (`VAL_RECEPTACLE_OBJECTS`); clean / heat / cool tasks take objects ALFRED
  lists as cleanable / heatable / coolable (`VAL_ACTION_OBJECTS`) in a room with a sink basin /
  microwave / fridge, and never end in that same appliance; pick_two never ends in a coffee
  machine, toilet paper hanger or hand towel holder; movable receptacles (mug, bowl, ...) are
  objects, never targets; the toaster is never a target; object and receptacle are both in the
  floor plan;
- look_at tasks use a desk lamp the floor plan has (as all of AgentGym's do) and any object ALFRED
  lets one pick up there.

Per split and task type, tasks are drawn the way ALFRED balanced its dataset: the least used
object first, then its least used receptacle, then the least used floor plan for that pair, ties
broken by a random generator with a fixed seed; each drawn task gets one to three trials, like
ALFRED's repeated trials of one task. Train is in path order (grouped by task type, as AgentGym's
train ids are), test in a fixed shuffled order. Trial ids are this project's own,
`trial_G<task id>`, so they never pass for ALFRED's `trial_T<timestamp>` ones.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import TypeVar

from agentgym.envs.alfworld.games import TEST_SPLIT, TRAIN_SPLIT, GameRef, parse_ref
from agentgym.envs.alfworld.logic import TASK_TYPES

# Tasks of each type per split, as many as AgentGym's ids 0-2419 and 2420-2619 have.
TYPE_COUNTS = {
    TRAIN_SPLIT: {
        "look_at_obj_in_light": 196,
        "pick_and_place_simple": 672,
        "pick_clean_then_place_in_recep": 448,
        "pick_cool_then_place_in_recep": 394,
        "pick_heat_then_place_in_recep": 321,
        "pick_two_obj_and_place": 389,
    },
    TEST_SPLIT: {
        "look_at_obj_in_light": 19,
        "pick_and_place_simple": 46,
        "pick_clean_then_place_in_recep": 37,
        "pick_cool_then_place_in_recep": 28,
        "pick_heat_then_place_in_recep": 25,
        "pick_two_obj_and_place": 45,
    },
}
SEED = 2620
_LAMP = "DeskLamp"
_MAX_TRIALS = 3  # ALFRED kept up to three trials of each task
# ALFRED's per-task-type constraints: the action class the object needs, the appliance the room
# needs for it, and receptacles the task may not end in.
_OBJECT_CLASS = {
    "pick_clean_then_place_in_recep": "Cleanable",
    "pick_heat_then_place_in_recep": "Heatable",
    "pick_cool_then_place_in_recep": "Coolable",
}
_APPLIANCE = {
    "pick_clean_then_place_in_recep": "SinkBasin",
    "pick_heat_then_place_in_recep": "Microwave",
    "pick_cool_then_place_in_recep": "Fridge",
}
_NOT_TARGETS = {
    "pick_clean_then_place_in_recep": {"SinkBasin"},
    "pick_heat_then_place_in_recep": {"Microwave"},
    "pick_cool_then_place_in_recep": {"Fridge"},
    "pick_two_obj_and_place": {"CoffeeMachine", "ToiletPaperHanger", "HandTowelHolder"},
}
_NEVER_TARGETS = {"Toaster"}  # ALFRED leaves it out of its targets

T = TypeVar("T", str, int)
# task type -> object -> target (receptacle or lamp) -> floor plans
Combos = dict[str, dict[str, dict[str, list[int]]]]


def _floor_plans() -> dict[int, tuple[str, frozenset[str]]]:
    """Floor plan number -> (room type, object types in it)."""
    from alfworld import gen
    from alfworld.gen import constants as c

    base = Path(gen.__file__).parent / "layouts"
    plans = {}
    for room, numbers in c.SCENE_TYPE.items():
        for n in numbers:
            with open(base / f"FloorPlan{n}-objects.json") as f:
                plans[n] = (room, frozenset(json.load(f)))
    return plans


def valid_combos() -> Combos:
    """Every (task type, object, target, floor plan) ALFRED's task definitions allow."""
    from alfworld.gen import constants as c

    holds = {r: {o for o in objs if "Sliced" not in o} for r, objs in c.VAL_RECEPTACLE_OBJECTS.items()}
    movable = set(c.MOVABLE_RECEPTACLES)
    pickable = set().union(*holds.values())
    targets = sorted(set(holds) - movable - _NEVER_TARGETS)
    plans = _floor_plans()
    combos: Combos = {}
    for task in TASK_TYPES:
        by_object: dict[str, dict[str, list[int]]] = {}
        for n, (room, present) in sorted(plans.items()):
            appliance = _APPLIANCE.get(task)
            if room not in c.GOALS_VALID[task] or (appliance and appliance not in present):
                continue
            objects = pickable & present
            if task in _OBJECT_CLASS:
                objects &= c.VAL_ACTION_OBJECTS[_OBJECT_CLASS[task]]
            for obj in sorted(objects):
                if task == "look_at_obj_in_light":
                    places = [_LAMP] if _LAMP in present else []
                else:
                    places = [
                        r
                        for r in targets
                        if r in present and obj in holds[r] and r not in _NOT_TARGETS.get(task, ())
                    ]
                for place in places:
                    by_object.setdefault(obj, {}).setdefault(place, []).append(n)
        combos[task] = by_object
    return combos


def _least_used(options: Iterable[T], used: Counter[T], rng: random.Random) -> T:
    ordered = sorted(options)
    fewest = min(used[o] for o in ordered)
    return rng.choice([o for o in ordered if used[o] == fewest])


def _draw(task: str, count: int, combos: Combos, rng: random.Random) -> list[str]:
    """`count` task folders of one type (one per trial), balanced as described above."""
    by_object = combos[task]
    used_objects: Counter[str] = Counter()
    used_targets: dict[str, Counter[str]] = {o: Counter() for o in by_object}
    used_plans: dict[tuple[str, str], Counter[int]] = {}
    folders: list[str] = []
    while len(folders) < count:
        obj = _least_used(by_object, used_objects, rng)
        target = _least_used(by_object[obj], used_targets[obj], rng)
        plans = used_plans.setdefault((obj, target), Counter())
        plan = _least_used(by_object[obj][target], plans, rng)
        used_objects[obj] += 1
        used_targets[obj][target] += 1
        plans[plan] += 1
        trials = min(rng.randint(1, _MAX_TRIALS), count - len(folders))
        folders += [f"{task}-{obj}-None-{target}-{plan}"] * trials
    return folders


def build() -> list[str]:
    """The task list as game paths (`<split>/<task folder>/<trial>`), in task id order."""
    combos = valid_combos()
    paths: list[str] = []
    for split, counts in TYPE_COUNTS.items():
        rng = random.Random(f"alfworld-tasks-{SEED}-{split}")
        folders = [f for task, n in counts.items() for f in _draw(task, n, combos, rng)]
        if split == TRAIN_SPLIT:
            folders.sort()
        else:
            rng.shuffle(folders)
        paths += [f"{split}/{folder}/trial_G{len(paths) + i:04d}" for i, folder in enumerate(folders)]
    return paths


@cache
def default_games() -> tuple[GameRef, ...]:
    """The list, built on first use (about 0.1 s: it reads 120 small layout files)."""
    return tuple(parse_ref(p) for p in build())
