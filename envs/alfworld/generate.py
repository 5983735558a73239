"""Generated ALFWorld games: a PDDL problem for each AgentGym task id, in ALFWorld's own terms.

ALFWorld's games are PDDL problems over its `alfred` domain, one per ALFRED trial, dumped from
AI2-THOR scenes; they are not in the `alfworld` package and cannot be downloaded here. The package
does ship, for every one of the 120 AI2-THOR floor plans, the object types present and the
receptacles with their interaction poses (`alfworld/gen/layouts`), ALFRED's object and receptacle
constants (what fits where, what can be heated, cooled, cleaned, sliced, opened), and ALFRED's
goal library (the goal in PDDL and its sentences per task type). From those, a task id's game
reference (games.py: task type, object, receptacle or lamp, floor plan, trial) becomes a game for
that task: the floor plan's receptacles where ALFRED places them, and objects of the scene's types
(at least one of the target, two for pick_two) scattered over receptacles that can hold them, none
of the targets already where the goal wants it. Everything is drawn from a random generator seeded
by the game's path, so a game reference always gives the same game.

The result is an ordinary ALFWorld game (`pddl_domain`, `grammar`, `pddl_problem`), played by
TextWorld's PDDL engine exactly like a game file; `game_files` writes them in ALFWorld's layout.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from agentgym.envs.alfworld import logic
from agentgym.envs.alfworld.games import GAME_FILE, GameRef

# ALFRED's id mangling for PDDL names: "Apple|-01.75|+00.95|-00.68" -> "Apple_bar__minus_01_dot_75...".
_MANGLE = str.maketrans({"-": "_minus_", "|": "_bar_", "+": "_plus_", ".": "_dot_", ",": "_comma_"})
_LAMPS = ("DeskLamp", "FloorLamp")
# Furniture a lamp stands on, in order of preference.
_LAMP_STANDS = (
    "Desk",
    "SideTable",
    "Dresser",
    "Shelf",
    "CoffeeTable",
    "TVStand",
    "DiningTable",
    "CounterTop",
)
# Receptacles each task type needs, besides its target.
_TOOLS = {
    "pick_clean_then_place_in_recep": "SinkBasin",
    "pick_heat_then_place_in_recep": "Microwave",
    "pick_cool_then_place_in_recep": "Fridge",
}
# Types the domain's actions name as constants: every problem must declare them.
_DOMAIN_RTYPES = ("SinkBasin", "Microwave", "Fridge")
_DOMAIN_OTYPES = ("Knife", "ButterKnife")


@dataclass(frozen=True)
class Constants:
    """ALFRED's constants, as the `alfworld` package ships them."""

    holds: dict[str, frozenset[str]]  # receptacle type -> object types it can hold
    static_receptacles: frozenset[str]
    portable: frozenset[str]
    movable_receptacles: frozenset[str]
    openable: frozenset[str]
    heatable: frozenset[str]
    coolable: frozenset[str]
    cleanable: frozenset[str]
    sliceable: frozenset[str]


@cache
def constants() -> Constants:
    from alfworld.gen import constants as c

    holds = {
        r: frozenset(o for o in objs if "Sliced" not in o) for r, objs in c.VAL_RECEPTACLE_OBJECTS.items()
    }
    movable = frozenset(c.MOVABLE_RECEPTACLES)
    portable = frozenset().union(*holds.values()) | movable
    actions = c.VAL_ACTION_OBJECTS
    return Constants(
        holds=holds,
        static_receptacles=frozenset(holds) - movable,
        portable=portable - set(_LAMPS),
        movable_receptacles=movable,
        openable=frozenset(c.OPENABLE_CLASS_LIST),
        heatable=frozenset(actions["Heatable"]),
        coolable=frozenset(actions["Coolable"]),
        cleanable=frozenset(actions["Cleanable"]),
        sliceable=frozenset(actions["Sliceable"]),
    )


@cache
def _layout(scene: int) -> tuple[list[str], dict[str, list[float]]]:
    from alfworld import gen

    base = Path(gen.__file__).parent / "layouts"
    with open(base / f"FloorPlan{scene}-objects.json") as f:
        types = json.load(f)
    with open(base / f"FloorPlan{scene}-openable.json") as f:
        poses = json.load(f)
    return types, poses


def _type_of(thor_id: str) -> str:
    parts = thor_id.split("|")
    return parts[-1] if parts[-1].endswith("Basin") else parts[0]


def _coords(thor_id: str) -> tuple[float, float, float]:
    x, y, z = (float(v) for v in thor_id.split("|")[1:4])
    return x, y, z


def _thor_id(kind: str, x: float, y: float, z: float) -> str:
    base = f"{kind}|{x:+06.2f}|{y:+06.2f}|{z:+06.2f}"
    if kind.endswith("Basin"):  # ALFRED names basins after their sink or bathtub
        base = f"{kind[: -len('Basin')]}|{x:+06.2f}|{y:+06.2f}|{z:+06.2f}|{kind}"
    return base


def mangle(name: str) -> str:
    return name.translate(_MANGLE)


@dataclass
class _Scene:
    rng: random.Random
    receptacles: dict[str, str] = field(default_factory=dict)  # thor id -> location id
    objects: dict[str, str] = field(default_factory=dict)  # thor id -> receptacle thor id
    extra_contains: set[tuple[str, str]] = field(default_factory=set)

    def locations(self) -> set[str]:
        return set(self.receptacles.values())

    def add_receptacle(self, thor_id: str, pose: tuple[int, int, int, int]) -> None:
        x, z, rot, horizon = pose
        loc = f"loc|{x}|{z}|{rot}|{horizon}"
        while loc in self.locations():  # one receptacle per location, as `go to` needs
            x += 1
            loc = f"loc|{x}|{z}|{rot}|{horizon}"
        self.receptacles[thor_id] = loc

    def new_receptacle(self, kind: str) -> str:
        while True:
            x, z = self.rng.uniform(-3, 3), self.rng.uniform(-3, 3)
            thor_id = _thor_id(kind, x, self.rng.uniform(0, 1.5), z)
            if thor_id not in self.receptacles:
                break
        pose = (round(x / 0.25), round(z / 0.25), self.rng.randrange(4), self.rng.choice((0, 30, 45)))
        self.add_receptacle(thor_id, pose)
        return thor_id

    def of_type(self, kind: str) -> list[str]:
        return sorted(r for r in self.receptacles if _type_of(r) == kind)

    def place(self, kind: str, receptacle: str) -> str:
        rx, ry, rz = _coords(receptacle)
        while True:
            thor_id = _thor_id(
                kind,
                rx + self.rng.uniform(-0.4, 0.4),
                ry + self.rng.uniform(0, 0.2),
                rz + self.rng.uniform(-0.4, 0.4),
            )
            if thor_id not in self.objects and thor_id not in self.receptacles:
                self.objects[thor_id] = receptacle
                return thor_id


@dataclass(frozen=True)
class GeneratedGame:
    ref: GameRef
    goal_text: str
    problem: str

    def game_data(self) -> dict[str, Any]:
        """The game as ALFWorld's game.tw-pddl holds it."""
        return {
            "pddl_domain": logic.domain(),
            "grammar": logic.grammar(self.goal_text),
            "pddl_problem": self.problem,
        }


def generate(ref: GameRef) -> GeneratedGame:
    c = constants()
    rng = random.Random(f"alfworld-{ref.path}")
    scene_types, poses = _layout(ref.scene)
    scene = _Scene(rng)

    task, target, goal_place = ref.task_type, ref.object_type, ref.target_type
    lamp = goal_place if task == "look_at_obj_in_light" else None
    recep = None if lamp else goal_place

    # Receptacles: the floor plan's, at their poses; one of each other static type it lists.
    for thor_id, (x, z, rot, horizon) in sorted(poses.items()):
        if _type_of(thor_id) in c.static_receptacles:
            scene.add_receptacle(thor_id, (round(x / 0.25), round(z / 0.25), int(rot) // 90, int(horizon)))
    present = {_type_of(r) for r in scene.receptacles}
    for kind in sorted(set(scene_types) & c.static_receptacles - present):
        for _ in range(rng.randint(2, 4) if kind == "StoveBurner" else 1):
            scene.new_receptacle(kind)
    for kind in (recep, _TOOLS.get(task)):
        if kind and not scene.of_type(kind):
            scene.new_receptacle(kind)

    # Objects: the target, then one or two of each other portable type of the scene.
    counts = {t: rng.randint(1, 2) for t in sorted(set(scene_types) & c.portable) if t != target}
    counts[target] = rng.randint(2, 3) if task == "pick_two_obj_and_place" else rng.randint(1, 2)
    for kind in sorted(counts, key=lambda t: (t != target, t)):
        places = [r for r in scene.receptacles if kind in c.holds.get(_type_of(r), ())]
        if kind == target:
            places = [r for r in places if _type_of(r) != recep] or [
                r for r in scene.receptacles if _type_of(r) not in (recep, *c.openable)
            ]
        for _ in range(counts[kind] if places else 0):
            where = rng.choice(sorted(places))
            scene.place(kind, where)
            if kind not in c.holds.get(_type_of(where), ()):
                scene.extra_contains.add((_type_of(where), kind))
    if recep and target not in c.holds.get(recep, ()):
        scene.extra_contains.add((recep, target))

    # Lamps stand on furniture; a look_at task's lamp is always there.
    for kind in _LAMPS:
        if kind in scene_types or kind == lamp:
            stands = [r for s in _LAMP_STANDS for r in scene.of_type(s)]
            stands = stands or [r for r in scene.receptacles if _type_of(r) not in c.openable]
            scene.place(kind, rng.choice(stands))

    start = _start_location(scene)
    problem = _problem(ref, scene, start, goal=logic.goal_pddl(task, target, recep or "", lamp or ""))
    template = rng.choice(logic.goal_templates(task))
    goal_text = template.format(obj=target.lower(), recep=(recep or "").lower(), toggle=(lamp or "").lower())
    return GeneratedGame(ref, goal_text, problem)


def _start_location(scene: _Scene) -> str:
    used = scene.locations()
    while True:
        x, z = scene.rng.randint(-12, 12), scene.rng.randint(-12, 12)
        loc = f"loc|{x}|{z}|{scene.rng.randrange(4)}|30"
        if loc not in used:
            return loc


def _problem(ref: GameRef, scene: _Scene, start: str, goal: str) -> str:
    c = constants()
    receptacles = sorted(scene.receptacles)
    objects = sorted(scene.objects)
    rtypes = sorted({_type_of(r) for r in receptacles} | set(_DOMAIN_RTYPES))
    otypes = sorted({_type_of(o) for o in objects} | set(_DOMAIN_OTYPES))
    locations = sorted(scene.locations() | {start})

    decls = ["agent1 - agent"]
    decls += [f"{mangle(loc)} - location" for loc in locations]
    decls += [f"{mangle(r)} - receptacle" for r in receptacles]
    decls += [f"{mangle(o)} - object" for o in objects]
    decls += [f"{t}Type - otype" for t in otypes]
    decls += [f"{t}Type - rtype" for t in rtypes]

    init = [f"(atLocation agent1 {mangle(start)})"]
    for r in receptacles:
        kind = _type_of(r)
        init.append(f"(receptacleType {mangle(r)} {kind}Type)")
        init.append(f"(receptacleAtLocation {mangle(r)} {mangle(scene.receptacles[r])})")
        if kind in c.openable:
            init.append(f"(openable {mangle(r)})")
    for o in objects:
        kind, where, name = _type_of(o), scene.objects[o], mangle(o)
        init.append(f"(objectType {name} {kind}Type)")
        init.append(f"(inReceptacle {name} {mangle(where)})")
        init.append(f"(objectAtLocation {name} {mangle(scene.receptacles[where])})")
        if kind in _LAMPS:
            init.append(f"(toggleable {name})")
            continue
        init.append(f"(pickupable {name})")
        for prop, kinds in (
            ("cleanable", c.cleanable),
            ("heatable", c.heatable),
            ("coolable", c.coolable),
            ("sliceable", c.sliceable),
            ("isReceptacleObject", c.movable_receptacles),
        ):
            if kind in kinds:
                init.append(f"({prop} {name})")
    present_objects = {_type_of(o) for o in objects}
    contains = {
        (r, o) for r in rtypes for o in c.holds.get(r, ()) if o in present_objects
    } | scene.extra_contains
    init += [f"(canContain {r}Type {o}Type)" for r, o in sorted(contains)]

    return (
        f"(define (problem plan_{ref.trial})\n(:domain alfred)\n(:objects\n"
        + "\n".join(decls)
        + "\n)\n(:init\n"
        + "\n".join(init)
        + "\n)\n"
        + goal.strip()
        + "\n"
    )


def traj_data(game: GeneratedGame) -> dict[str, Any]:
    """A traj_data.json in ALFRED's format, with the fields ALFWorld's tools read."""
    ref = game.ref
    lamp = ref.target_type if ref.task_type == "look_at_obj_in_light" else ""
    return {
        "task_id": ref.trial,
        "task_type": ref.task_type,
        "scene": {"floor_plan": f"FloorPlan{ref.scene}", "scene_num": ref.scene},
        "pddl_params": {
            "object_target": ref.object_type,
            "parent_target": "" if lamp else ref.target_type,
            "toggle_target": lamp,
            "mrecep_target": "",
            "object_sliced": False,
        },
        "turk_annotations": {"anns": [{"task_desc": game.goal_text[0].upper() + game.goal_text[1:] + "."}]},
    }


def game_files(
    root: str | os.PathLike[str], refs: Iterable[GameRef], as_split: str | None = None
) -> list[Path]:
    """Write the generated games of `refs` under `root` in ALFWorld's layout
    (`json_2.1.1/<split>/<task folder>/<trial>/{game.tw-pddl,traj_data.json}`), each under its
    own split or under `as_split`. Returns the game files written."""
    written = []
    for ref in refs:
        game = generate(ref)
        split = as_split or game.ref.split
        folder = Path(root) / "json_2.1.1" / split / game.ref.folder / game.ref.trial
        folder.mkdir(parents=True, exist_ok=True)
        data = {**game.game_data(), "solvable": True, "walkthrough": None}
        (folder / GAME_FILE).write_text(json.dumps(data))
        (folder / "traj_data.json").write_text(json.dumps(traj_data(game), indent=1))
        written.append(folder / GAME_FILE)
    return written
