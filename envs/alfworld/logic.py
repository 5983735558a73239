"""ALFWorld's game logic as the `alfworld` package ships it: the PDDL domain (`alfred.pddl`), the
TextWorld grammar that words it (`alfred.twl2`), and the goal library of ALFRED task types.

Generated games use the package's domain and grammar with the wording of the ALFWorld release
AgentGym was built on (alfworld 0.3.3, whose game files its users download): the put action reads
"put X in/on Y" ("You put the X in/on the Y."), arriving somewhere reads "You arrive at loc N."
(which the env strips, as AgentGym does), and there is no `help` action. alfworld 0.4 renamed put
to "move X to Y" and added `help`; AgentGym's prompts and trajectories use the older words. Real
game files carry their own domain and grammar and are played as they are.
"""

from __future__ import annotations

import os
import re
from functools import cache

TASK_TYPES = (
    "pick_and_place_simple",
    "look_at_obj_in_light",
    "pick_clean_then_place_in_recep",
    "pick_heat_then_place_in_recep",
    "pick_cool_then_place_in_recep",
    "pick_two_obj_and_place",
)

# (text in alfworld 0.4's grammar, the AgentGym-era text)
_GRAMMAR_WORDING = (
    ('template :: "move {o} to {r}";', 'template :: "put {o} in/on {r}";'),
    ('"rhs": "You move the {o.name} to the {r.name}."', '"rhs": "You put the {o.name} in/on the {r.name}."'),
    (
        '"rhs": "You arrive at {r.name}. #examineReceptacle.feedback#"',
        '"rhs": "You arrive at {lend.name}. #examineReceptacle.feedback#"',
    ),
)
_HELP_ACTION_PDDL = re.compile(r"\(:action help\b.*?\n\)\n", re.S)
_HELP_ACTION_TWL2 = re.compile(r"action help \{.*?\n\}\n", re.S)


def _data_file(name: str) -> str:
    import alfworld

    with open(os.path.join(os.path.dirname(alfworld.__file__), "data", name)) as f:
        return f.read()


def _patched(text: str, pattern: re.Pattern[str], what: str) -> str:
    new, n = pattern.subn("", text)
    if n != 1:
        raise RuntimeError(f"alfworld's {what} changed: expected one help action, found {n}")
    return new


@cache
def domain() -> str:
    """The PDDL domain of generated games."""
    return _patched(_data_file("alfred.pddl"), _HELP_ACTION_PDDL, "alfred.pddl")


@cache
def grammar_template() -> str:
    """The grammar of generated games, with "UNKNOWN GOAL" where the goal text goes."""
    text = _patched(_data_file("alfred.twl2"), _HELP_ACTION_TWL2, "alfred.twl2")
    for old, new in _GRAMMAR_WORDING:
        if old not in text:
            raise RuntimeError(f"alfworld's alfred.twl2 changed: {old!r} not found")
        text = text.replace(old, new)
    return text


def grammar(goal_text: str) -> str:
    return grammar_template().replace("UNKNOWN GOAL", goal_text)


def goal_pddl(task_type: str, obj: str, recep: str, toggle: str) -> str:
    """The (:goal ...) section, closing the problem's (define ...), from alfworld's goal library."""
    from alfworld.gen import goal_library

    text: str = goal_library.gdict[task_type]["pddl"]
    return text.format(obj=obj, recep=recep, toggle=toggle, mrecep="").replace("#", "-")


def goal_templates(task_type: str) -> list[str]:
    """ALFWorld's goal sentences for a task type, e.g. 'put a clean {obj} in {recep}'."""
    from alfworld.gen import goal_library

    return list(goal_library.gdict[task_type]["templates"])
