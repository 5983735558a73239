"""A hand-coded expert for ALFWorld's six task types, reading the engine's state.

Like ALFWorld's own hand-coded expert, it follows each task type's recipe: fetch an object of the
goal's type (go to the receptacle holding it, open it if closed, take it), clean / heat / cool it
at the sink basin / microwave / fridge if the task says so, then go to a receptacle of the goal's
type, open it if closed and put the object in (twice for pick_two, into the same receptacle); for
look_at, fetch the object and switch on the lamp where it stands. Unlike ALFWorld's, it reads where
things are from the engine's facts instead of searching, and it starts from any state: whatever
the agent holds that is not wanted is put down first. Commands are the engine's own admissible
commands for the chosen PDDL action, so the expert works with any game's wording.

ALFWorld's other expert, planning with Fast Downward from the current state, is exact but blows up
on the larger kitchens' pick_two tasks (measured: 4.7 GB and more than seven minutes for one plan).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

# Task type -> (property the object must have, receptacle type that gives it, PDDL action).
_TRANSFORMS = {
    "pick_clean_then_place_in_recep": ("isclean", "sinkbasin", "cleanobject"),
    "pick_heat_then_place_in_recep": ("ishot", "microwave", "heatobject"),
    "pick_cool_then_place_in_recep": ("iscool", "fridge", "coolobject"),
}


class World:
    """The engine's state, indexed for the expert. Ids are PDDL names; `names` gives "mug 1"."""

    def __init__(self, facts: Iterable[Any], state: Mapping[str, Any], names: Mapping[str, str]) -> None:
        self.names = names
        self.at = ""
        self.held = ""
        self.location: dict[str, str] = {}  # receptacle -> location
        self.rtype: dict[str, str] = {}
        self.otype: dict[str, str] = {}
        self.inside: dict[str, str] = {}  # object -> receptacle
        self.props: defaultdict[str, set[str]] = defaultdict(set)
        self.fits: set[tuple[str, str]] = set()  # (receptacle type, object type)
        for fact in facts:
            args = [v.name for v in fact.arguments]
            if fact.name == "atlocation":
                self.at = args[1]
            elif fact.name == "holds":
                self.held = args[1]
            elif fact.name == "receptacleatlocation":
                self.location[args[0]] = args[1]
            elif fact.name == "receptacletype":
                self.rtype[args[0]] = args[1].removesuffix("type")
            elif fact.name == "objecttype":
                self.otype[args[0]] = args[1].removesuffix("type")
            elif fact.name == "inreceptacle":
                self.inside[args[0]] = args[1]
            elif fact.name == "cancontain":
                self.fits.add((args[0].removesuffix("type"), args[1].removesuffix("type")))
            elif len(args) == 1:
                self.props[fact.name].add(args[0])
        self.actions = [
            (action.name, {v.name for v in action.mapping.values()}, command)
            for action, command in zip(state["_valid_actions"], state["_valid_commands"], strict=True)
        ]

    def by_name(self, ids: Iterable[str]) -> list[str]:
        return sorted(ids, key=lambda i: (self.names.get(i, i).split(" ")[0], _number(self.names.get(i, i))))

    def receptacles(self, kind: str) -> list[str]:
        return self.by_name(r for r, t in self.rtype.items() if t == kind)

    def objects(self, kind: str) -> list[str]:
        return self.by_name(o for o, t in self.otype.items() if t == kind)

    def command(self, action: str, *ids: str) -> str | None:
        for name, args, command in self.actions:
            if name == action and all(i in args for i in ids):
                return command
        return None


def _number(name: str) -> int:
    tail = name.rsplit(" ", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def next_action(world: World, task_type: str, obj: str, place: str) -> str | None:
    """The expert's next command for a task of `task_type` about object type `obj` and receptacle
    (or lamp) type `place`, all lower case; None if the state fits none of its cases."""
    w = world
    if task_type == "look_at_obj_in_light":
        if w.held and w.otype.get(w.held) == obj:
            for lamp in w.objects(place):
                if lamp in w.inside:
                    return _go(w, w.inside[lamp]) or w.command("toggleobject", lamp)
            return None
        return _put_away(w) if w.held else _fetch(w, w.objects(obj))

    prop, tool, transform = _TRANSFORMS.get(task_type, ("", "", ""))
    targets = w.receptacles(place)
    if not targets:
        return None

    def done(o: str) -> bool:
        return w.otype.get(o) == obj and (not prop or o in w.props[prop])

    # Put everything into the receptacle already holding the most finished objects (pick_two).
    dest = max(targets, key=lambda r: sum(done(o) for o, where in w.inside.items() if where == r))
    if w.held:
        if w.otype.get(w.held) != obj:
            return _put_away(w)
        if prop and w.held not in w.props[prop]:
            tools = w.receptacles(tool)
            return (_go(w, tools[0]) or w.command(transform, w.held, tools[0])) if tools else None
        return _go(w, dest) or _open(w, dest) or w.command("putobject", w.held, dest)
    return _fetch(w, [o for o in w.objects(obj) if not (w.inside.get(o) == dest and done(o))])


def _go(w: World, receptacle: str) -> str | None:
    if w.location.get(receptacle) == w.at:
        return None
    return w.command("gotolocation", receptacle)


def _open(w: World, receptacle: str) -> str | None:
    if receptacle in w.props["openable"] and receptacle not in w.props["opened"]:
        return w.command("openobject", receptacle)
    return None


def _fetch(w: World, candidates: list[str]) -> str | None:
    for o in candidates:
        if o in w.inside:
            r = w.inside[o]
            return _go(w, r) or _open(w, r) or w.command("pickupobject", o, r)
    return None


def _put_away(w: World) -> str | None:
    """Put down the held object: here if a receptacle here takes it, else at the first that does."""
    kind = w.otype.get(w.held, "")
    takers = [r for r in w.by_name(w.rtype) if (w.rtype[r], kind) in w.fits]
    here = [r for r in takers if w.location.get(r) == w.at]
    for r in here or takers[:1]:
        return _go(w, r) or _open(w, r) or w.command("putobject", w.held, r)
    return None
