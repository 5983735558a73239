"""TextCraft: craft a Minecraft item from a given set of crafting commands.

Semantics follow the original TextCraft (Prasad et al.; AgentGym's `agentenv-textcraft`):
goals are craftable items sorted by crafting depth; the first observation lists the crafting
commands of the goal's recipe tree shuffled with up to ten distractors; actions are
`get N item`, `craft N item using M ingredient, K ingredient`, `inventory`; reward 1 when the
goal item is in the inventory. Base items are fetched with `get`; craftable ones must be crafted.
A recipe over a generic ingredient ("planks") accepts any variant ("oak planks").

One extension: a craft whose ingredient counts are an exact multiple of a recipe's crafts that
many batches at once, so deep goals fit in the round limit.

Data: the built-in recipes (recipes.py, from minecraft-data), or the original's `recipes/` folder
(setting `recipes=DIR`; task id N is then the original's goal N). The `agentgym` profile plays
the original's rules and texts on either (original.py; docs/envs/textcraft.md).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping
from typing import ClassVar

from agentgym.envs.base import Env, Outcome
from agentgym.envs.registry import register
from agentgym.envs.textcraft import original
from agentgym.envs.textcraft.recipes import Recipe, RecipeBook, display, load_book

INSTRUCTION = """\
You are crafting items in Minecraft using text commands. Each game gives you a short list of \
crafting commands of the form "craft [target] using [ingredients]" and a goal item.

Every round you see an observation and reply with one action. The actions are:
- get N item: fetch N of a base ingredient from the environment, e.g. "get 2 iron ingot". \
Just name the item; do not say where it comes from.
- craft N target using M ingredient, K ingredient: craft with one of the given commands, e.g. \
"craft 4 oak planks using 1 oak log" or "craft 1 golden carrot using 8 gold nugget, 1 carrot". \
Always give the quantities. Doubling every ingredient count crafts two batches at once.
- inventory: list what you are holding.

Only the crafting commands you are given work. When a command names a generic ingredient such \
as "planks", any specific kind ("dark oak planks") can be used in its place. Items that can be \
crafted cannot be fetched with get.

Reply in exactly this format:
Thought:
your reasoning

Action:
your next action"""

_CRAFT = re.compile(r"craft (.+?) using (.+)")
_GET = re.compile(r"get (\d+) (.+)")
_COUNT = re.compile(r"(\d+) (.+)")
_MAX_DISTRACTORS = 10

SETTINGS = {
    "recipes": "the original's recipes folder (agentenv_textcraft/recipes, or the folder holding it): task N "
    "is then the original's goal N",
    "file_order": "order the recipe files are read in: sorted (default) or listdir (the directory's own "
    "order, as the original reads them)",
}


def _command(r: Recipe) -> str:
    return r.command


class _Failed(Exception):
    pass


def _item(text: str) -> str:
    return text.strip().replace(" ", "_")


@register
class TextCraft(Env):
    name = "textcraft"
    description = "Craft a Minecraft item from given recipes (TextCraft); recipes from minecraft-data."
    instruction = INSTRUCTION
    action_format = "get N item | craft N item using M ingredient[, K ingredient...] | inventory"
    max_rounds = 20
    execution = "inline"
    task_count = 0  # set by configure(): the number of goal items
    task_set = "built-in recipes (minecraft-data 1.16.2, converted); not the original's"
    book: ClassVar[RecipeBook]  # the recipes as our rules use them
    goals: ClassVar[list[str]]  # goal items in task order
    # The recipes as the original's rules use them (the profile), ids with their namespace.
    crafting: ClassVar[original.Crafting | None] = None

    @classmethod
    def configure(cls, settings: Mapping[str, str]) -> None:
        if unknown := sorted(set(settings) - set(SETTINGS)):
            raise ValueError(
                f"textcraft: unknown settings {', '.join(unknown)}; known: {', '.join(SETTINGS)}"
            )
        path, order = settings.get("recipes", ""), settings.get("file_order", "")
        if order and not path:
            raise ValueError("textcraft: file_order only applies with recipes")
        cls._uses_cache = None
        if path:
            cls.crafting = original.load_recipes(path, order or "sorted")
            cls.book = original.to_book(cls.crafting)
            cls.goals = [g.removeprefix(original.NAMESPACE) for g in cls.crafting.goals]
            cls.task_set = "original"
        else:
            cls.book = load_book()
            cls.goals = [g for g, _ in cls.book.goals]
            cls.crafting = original.from_book(cls.book, cls.goals) if cls.profile == "agentgym" else None
            cls.task_set = "built-in recipes (minecraft-data 1.16.2, converted); not the original's"
        n = len(cls.goals)
        cls.task_count = n
        # Every fifth goal (in depth order) is held out, so both splits span all depths.
        test = [range(i, i + 1) for i in range(0, n, 5)]
        train = [range(i + 1, min(i + 5, n)) for i in range(0, n, 5) if i + 1 < n]
        cls.splits = {"train": train, "test": test}

    def reset(self, task_id: int, seed: int, options: Mapping[str, str]) -> Outcome:
        self.game: original.Game | None = None
        if self.profile == "agentgym":
            assert self.crafting is not None
            self.game = original.Game(self.crafting, self.crafting.goals[task_id])
            return Outcome(self.game.first_observation(self.rng))
        self.inventory: Counter[str] = Counter()
        self.goal = self.goals[task_id]
        tree = self._recipe_tree(self.goal)
        shown = {r.command for r in tree}
        # Distractors: recipes that use the tree's ingredients but are not needed.
        uses = self._uses()
        pool: set[str] = set()
        for r in sorted(tree, key=_command):
            for name, _ in r.inputs:
                candidates = uses.get(name, [])
                pool.update(c.command for c in self.rng.sample(candidates, min(10, len(candidates))))
        distractors = sorted(pool - shown)
        picked = self.rng.sample(distractors, min(_MAX_DISTRACTORS, len(distractors)))
        commands = sorted(shown) + picked
        self.rng.shuffle(commands)
        self.commands = commands
        text = "Crafting commands:\n" + "\n".join(commands) + f"\n\nGoal: craft {display(self.goal)}."
        return Outcome(text)

    def step(self, action: str) -> Outcome:
        if self.game is not None:
            # The original's client strips the action to letters, digits, commas and spaces.
            text, won, failed = self.game.step(original.clean_action(action))
            return Outcome(
                text, reward=float(won), done=won, success=won, info={"invalid": "true"} if failed else {}
            )
        action = " ".join(re.sub(r"[^a-z0-9, ]+", "", action.lower()).split())
        try:
            if action == "inventory":
                return Outcome(self._describe_inventory())
            if m := _GET.fullmatch(action):
                return self._get(int(m.group(1)), _item(m.group(2)))
            if m := _CRAFT.fullmatch(action):
                return self._craft(m.group(1), m.group(2))
            raise _Failed(f"Could not execute {action}")
        except _Failed as e:
            return Outcome(str(e), info={"invalid": "true"})

    # --- actions -------------------------------------------------------------------------------
    def _get(self, n: int, item: str) -> Outcome:
        if n <= 0 or not self.book.fetchable(item):
            raise _Failed(f"Could not find {display(item)}")
        self.inventory[item] += n
        return self._result(f"Got {n} {display(item)}", item)

    def _craft(self, target: str, ingredients: str) -> Outcome:
        m = _COUNT.fullmatch(target.strip())
        output = _item(m.group(2) if m else target)
        given: list[tuple[str, int]] = []
        for part in ingredients.split(","):
            pm = _COUNT.fullmatch(part.strip())
            if not pm:
                raise _Failed(f"Wrong item format: {part.strip()}")
            given.append((_item(pm.group(2)), int(pm.group(1))))
        if any(n <= 0 for _, n in given):
            raise _Failed(f"Wrong item format: {ingredients}")
        if any(self.inventory[name] < n for name, n in given):
            raise _Failed(f"Could not find enough items to craft {display(output)}")
        for recipe in self.book.recipes.get(output, ()):
            batches = self._batches(recipe, given)
            if batches:
                for name, n in given:
                    self.inventory[name] -= n
                    if not self.inventory[name]:
                        del self.inventory[name]
                made = recipe.count * batches
                self.inventory[output] += made
                return self._result(f"Crafted {made} {display(output)}", output)
        raise _Failed(f"Could not find a valid recipe for {display(output)}")

    def _batches(self, recipe: Recipe, given: list[tuple[str, int]]) -> int:
        """How many batches of `recipe` the given ingredients make exactly, or 0 if they do not fit."""
        if len(given) != len(recipe.inputs):
            return 0
        remaining = list(given)
        batches = 0
        for slot, need in recipe.inputs:
            match = next((g for g in remaining if self.book.matches(slot, g[0]) and g[1] % need == 0), None)
            if match is None:
                return 0
            k = match[1] // need
            if batches and k != batches:
                return 0
            batches = k
            remaining.remove(match)
        return batches

    def _result(self, text: str, item: str) -> Outcome:
        won = item == self.goal
        return Outcome(text, reward=1.0 if won else 0.0, done=won, success=won)

    def _describe_inventory(self) -> str:
        if not self.inventory:
            return "Inventory: You are not carrying anything."
        return "Inventory: " + " ".join(f"[{display(i)}] ({n})" for i, n in sorted(self.inventory.items()))

    # --- recipe tree ---------------------------------------------------------------------------
    def _recipe_tree(self, name: str) -> list[Recipe]:
        out: list[Recipe] = []
        seen: set[str] = set()

        def walk(n: str) -> None:
            if n in seen:
                return
            seen.add(n)
            for r in self.book.recipes_for(n):
                out.append(r)
                for i, _ in r.inputs:
                    walk(i)

        walk(name)
        return out

    _uses_cache: dict[str, list[Recipe]] | None = None

    @classmethod
    def _uses(cls) -> dict[str, list[Recipe]]:
        if cls._uses_cache is None:
            uses: dict[str, list[Recipe]] = {}
            for recs in cls.book.recipes.values():
                for r in recs:
                    for name, _ in r.inputs:
                        uses.setdefault(name, []).append(r)
            cls._uses_cache = {name: sorted(rs, key=_command) for name, rs in uses.items()}
        return cls._uses_cache

    # --- expert --------------------------------------------------------------------------------
    def expert_action(self) -> str:
        """First action of a plan from the current inventory: fetch what is missing, craft upwards."""
        if self.game is not None:
            return next(iter(self.game.expert_plan()), "inventory")
        plan = _Planner(self.book, self.inventory).plan(self.goal)
        return plan[0] if plan else "inventory"


class _Planner:
    def __init__(self, book: RecipeBook, inventory: Counter[str]) -> None:
        self.book = book
        self.inv = Counter(inventory)
        self.actions: list[str] = []

    def plan(self, goal: str) -> list[str]:
        if self.inv[goal] == 0:
            self._make(goal, 1, set())
        return self.actions

    def _holding(self, slot: str, n: int) -> str | None:
        """A single held item that fills `slot` n times, if any."""
        options = sorted((name for name, c in self.inv.items() if c >= n and self.book.matches(slot, name)))
        return options[0] if options else None

    def _ensure(self, slot: str, n: int, path: set[str]) -> str:
        """Make sure one concrete item filling `slot` is held n times; return its name."""
        held = self._holding(slot, n)
        if held:
            return held
        partial = sorted((c, name) for name, c in self.inv.items() if c and self.book.matches(slot, name))
        if partial:
            name = partial[-1][1]
        elif slot in self.book.tags:
            name = min(
                self.book.tags[slot], key=lambda m: (not self.book.fetchable(m), self.book.depth(m), m)
            )
            if not self.book.fetchable(name) and not self.book.recipes.get(name):
                name = slot  # only the tag itself can be fetched
        else:
            name = slot
        self._make(name, n - self.inv[name], path)
        return name

    def _make(self, name: str, n: int, path: set[str]) -> None:
        if n <= 0:
            return
        if self.book.fetchable(name):
            self.actions.append(f"get {n} {display(name)}")
            self.inv[name] += n
            return
        if name in path:
            raise RuntimeError(f"cyclic recipe for {name}")
        recipe = min(
            self.book.recipes[name], key=lambda r: (max(self.book.depth(i) for i, _ in r.inputs), r.command)
        )
        batches = math.ceil(n / recipe.count)
        used = []
        for slot, k in recipe.inputs:
            used.append((self._ensure(slot, k * batches, path | {name}), k * batches))
        for item, k in used:
            self.inv[item] -= k
        self.inv[name] += recipe.count * batches
        ins = ", ".join(f"{k} {display(i)}" for i, k in used)
        self.actions.append(f"craft {recipe.count * batches} {display(name)} using {ins}")
