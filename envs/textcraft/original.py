"""TextCraft as the original plays it: its recipe files, its goals, its rules and texts.

The original (AgentGym's `agentenv-textcraft`, from archiki/ADaPT's TextCraft) reads a folder
`recipes/` of Minecraft recipe JSON files (`<name>.json`, one recipe each, as Minecraft 1.16's data
pack has them). `load_recipes` replays its `CraftingTree`:

- only `minecraft:crafting_shaped` (ingredient counts: how often each `key` symbol occurs in
  `pattern`) and `minecraft:crafting_shapeless` (`ingredients`, repeated entries counted) are read;
  an ingredient is `{"item": id}` or `{"tag": id}`, of a list of alternatives the first;
  `result` is an id (count 1) or `{"item": id, "count": n}` (count 1 when absent);
- a recipe whose only ingredient ends in `_block` (unpacking a storage block) is dropped;
- `group` makes the output a member of tag `minecraft:<group>` (unless that is the output's id);
- files are read in order, and a recipe is dropped when one of its ingredients (by id) already
  depends on its output (the original's cycle guard, which depends on the order);
- a tag ingredient none of whose members has a recipe becomes an item of that name (fetchable:
  "get 1 oak logs").

Files are read in sorted name order. The original reads them in `os.listdir` order, which the
file system decides (ext4: hash order); on another machine its order, and with it the order of
goals of equal depth, can differ. `file_order=listdir` reads them as the directory lists them.

Goals are the items with a recipe, in the order their first recipe was read, stably sorted by
minimum crafting depth; item id N is goal N (the original takes `N % goals`). The first
observation lists the goal's recipe tree (every recipe of the goal, then of each ingredient, a
tag standing for all its members' recipes) and up to 10 distractors: recipes that use an
ingredient of the tree, sampled up to 10 per ingredient per recipe of the tree. The original
samples from Python sets, whose order changes with every process (string hashing); here the sets
are sorted first and the episode's seeded generator draws, so an episode replays exactly.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import random
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from agentgym.envs.textcraft.recipes import RecipeBook

NAMESPACE = "minecraft:"
MAX_DISTRACTORS = 10
SHAPED, SHAPELESS = "minecraft:crafting_shaped", "minecraft:crafting_shapeless"
FILE_ORDERS = ("sorted", "listdir")


class RecipeError(ValueError):
    """The recipes folder or a file in it is missing or malformed (the message names the file and
    the field)."""


# The original's value types, with its field names and order: the text of "Could not find a valid
# recipe for ..." is the repr of an ItemTagWithCount.
@dataclass(frozen=True)
class ItemTag:
    tag: str | None = None
    item_id: str | None = None

    @property
    def name(self) -> str:
        return self.item_id or self.tag or ""


@dataclass(frozen=True)
class ItemTagWithCount:
    item_tag: ItemTag
    count: int


@dataclass(frozen=True, eq=False)  # identity: the same recipe may be listed under an item and a tag
class Recipe:
    inputs: tuple[ItemTagWithCount, ...]
    output: ItemTagWithCount
    origin: str = ""  # the file it was read from, for error messages

    @cached_property
    def recipe_str(self) -> str:
        ins = ", ".join(f"{i.count} {item_str(i.item_tag.name)}" for i in self.inputs)
        return f"craft {self.output.count} {item_str(self.output.item_tag.name)} using {ins}"


def item_str(item_id: str) -> str:
    """An id as the agent reads and writes it: "minecraft:oak_planks" -> "oak planks"."""
    return item_id.replace(NAMESPACE, "").replace("_", " ")


class Crafting:
    """The original's crafting tree: recipes by item and by tag, the tags, the items, the goals."""

    def __init__(
        self,
        recipes: Iterable[Recipe],
        tags_of: Mapping[str, tuple[str, ...]],
        tag_set: set[str],
        itemid_set: set[str],
        goals: list[str] | None = None,
        tag_recipes: Mapping[str, list[Recipe]] | None = None,
    ) -> None:
        self.itemid_recipes: dict[str, list[Recipe]] = {}
        self.tag_recipes: dict[str, list[Recipe]] = dict(tag_recipes or {})
        for r in recipes:
            self.itemid_recipes.setdefault(r.output.item_tag.name, []).append(r)
            # The original lists a recipe under its output's group, even one equal to its own id.
            if tag_recipes is None and r.output.item_tag.tag is not None:
                self.tag_recipes.setdefault(r.output.item_tag.tag, []).append(r)
        # item -> its tags (the original has at most one: its item_id_to_tag).
        self.tags_of = dict(tags_of)
        self.tag_set = tag_set
        self.itemid_set = itemid_set
        self._depth: dict[str, int] = {}
        self._path: list[str] = []  # the items whose depth is being computed, outermost first
        if goals is None:
            with_depth = [(item, self.depth(item)) for item in self.itemid_recipes]
            goals = [item for item, d in sorted(with_depth, key=lambda x: x[1]) if d >= 1]
        self.goals = goals
        # The original's collect_item_uses: recipes by ingredient, item recipes then tag recipes.
        self.item_uses: dict[str, list[Recipe]] = {}
        for table in (self.itemid_recipes, self.tag_recipes):
            for recs in table.values():
                for r in recs:
                    for i in r.inputs:
                        self.item_uses.setdefault(i.item_tag.name, []).append(r)

    def is_craftable(self, name: str | None) -> bool:
        return name in self.itemid_recipes or name in self.tag_recipes

    def is_valid_item(self, name: str | None) -> bool:
        return name in self.itemid_set

    def is_tag(self, name: str | None) -> bool:
        return name in self.tag_set

    def fetchable(self, item: str) -> bool:
        """What `get` accepts: a known item that is not a tag and has no recipe."""
        return self.is_valid_item(item) and not self.is_craftable(item) and not self.is_tag(item)

    def members(self, tag: str) -> list[str]:
        return [item for item, tags in self.tags_of.items() if tag in tags]

    def depth(self, name: str) -> int:
        """Fewest crafting levels to make `name` (0 for what has no recipe), as the original's
        get_min_depth; a cycle, on which the original recurses without end, is an error."""
        if name in self._depth:
            if self._depth[name] < 0:
                raise self._cycle(name)
            return self._depth[name]
        recs = self.itemid_recipes.get(name) or self.tag_recipes.get(name) or []
        self._depth[name] = -1
        self._path.append(name)
        d = min((max(self.depth(i.item_tag.name) + 1 for i in r.inputs) for r in recs), default=0)
        self._path.pop()
        self._depth[name] = d
        return d

    def _cycle(self, name: str) -> RecipeError:
        cycle = [*self._path[self._path.index(name) :], name]
        files = []
        for made, used in itertools.pairwise(cycle):
            recs = self.itemid_recipes.get(made) or self.tag_recipes.get(made) or []
            files += [r.origin for r in recs if r.origin and any(i.item_tag.name == used for i in r.inputs)]
        where = f" (recipes in {', '.join(dict.fromkeys(files))})" if files else ""
        return RecipeError(
            f"the recipes make {item_str(name)} out of itself: {' -> '.join(map(item_str, cycle))}{where}; "
            "the original recurses on such a cycle without end"
        )

    def recipe_tree(self, name: str, visited: frozenset[str] = frozenset()) -> list[Recipe]:
        """The original's traverse_recipe_tree: the recipes of `name`, then of each ingredient
        (repeats included: each draws its own distractor sample)."""
        if name in visited:
            return []
        current = self.itemid_recipes.get(name) or self.tag_recipes.get(name) or []
        out = list(current)
        for r in current:
            for i in r.inputs:
                out.extend(self.recipe_tree(i.item_tag.name, visited | {name}))
        return out

    def matches(self, need: ItemTag, given: ItemTag) -> bool:
        if need.item_id is not None:
            return given.item_id == need.item_id
        if need.tag is not None:
            return given.tag == need.tag or need.tag in self.tags_of.get(given.item_id or "", ())
        return False

    def craft(self, output_id: str | None, given: list[ItemTagWithCount]) -> ItemTagWithCount | None:
        """The output of the first recipe of `output_id` whose ingredients are exactly `given`
        (each ingredient matched by the first entry that fits, with the recipe's exact count)."""
        for recipe in self.itemid_recipes.get(output_id or "", ()):
            remaining = list(given)
            for need in recipe.inputs:
                found = next((g for g in remaining if self.matches(need.item_tag, g.item_tag)), None)
                if found is None or found.count != need.count:
                    break
                remaining.remove(found)
            else:
                if not remaining:
                    return recipe.output
        return None


# --- the loader ------------------------------------------------------------------------------------
def recipes_dir(path: str | os.PathLike[str]) -> Path:
    """The folder of recipe files: `path` itself, or its `recipes/` (the original's minecraft_dir)."""
    root = Path(path)
    if not root.is_dir():
        raise RecipeError(f"textcraft recipes {root}: no such directory")
    if any(root.glob("*.json")):
        return root
    if (root / "recipes").is_dir() and any((root / "recipes").glob("*.json")):
        return root / "recipes"
    raise RecipeError(
        f"textcraft recipes {root}: no recipe files (*.json) in it or in {root / 'recipes'} "
        "(give the original's agentenv_textcraft/recipes folder)"
    )


def _files(folder: Path, order: str) -> list[Path]:
    if order not in FILE_ORDERS:
        raise RecipeError(f"textcraft file_order {order!r}: expected one of {', '.join(FILE_ORDERS)}")
    names = os.listdir(folder)
    if order == "sorted":
        names.sort()
    return [folder / n for n in names if n.endswith(".json") and (folder / n).is_file()]


class _Slot:
    """A recipe ingredient while loading (the original converts some tags to items afterwards)."""

    def __init__(self, tag: ItemTag, count: int) -> None:
        self.tag, self.count = tag, count


def _ingredient(where: str, value: Any) -> tuple[str, str]:
    """("item" | "tag", id) of an ingredient entry; of a list of alternatives, the first."""
    if isinstance(value, list):
        if not value:
            raise RecipeError(f"{where}: an empty list of alternatives")
        value = value[0]
    if not isinstance(value, dict):
        raise RecipeError(f"{where}: expected an object with 'item' or 'tag', got {json.dumps(value)[:60]}")
    for kind in ("item", "tag"):
        if kind in value:
            if not isinstance(value[kind], str) or not value[kind]:
                raise RecipeError(f"{where}: '{kind}' is not a non-empty string")
            return kind, value[kind]
    raise RecipeError(f"{where}: neither 'item' nor 'tag' in {json.dumps(value)[:60]}")


def load_recipes(path: str | os.PathLike[str], order: str = "sorted") -> Crafting:
    """The original's CraftingTree over the recipe files in `path` (module docstring)."""
    folder = recipes_dir(path)
    tag_set: set[str] = set()
    itemid_set: set[str] = set()
    item_id_to_tag: dict[str, str] = {}
    transitive: dict[str, set[str]] = {}
    kept: list[tuple[list[_Slot], ItemTagWithCount, str]] = []
    for file in _files(folder, order):
        doc = _read_json(file)
        kind = doc.get("type")
        if not isinstance(kind, str):
            raise RecipeError(f"{file}: no 'type' field (e.g. \"minecraft:crafting_shaped\")")
        slots: list[_Slot] = []
        if kind == SHAPED:
            pattern, key = doc.get("pattern"), doc.get("key")
            if not isinstance(pattern, list) or not all(isinstance(row, str) for row in pattern):
                raise RecipeError(f"{file}: field 'pattern' is not a list of strings")
            if not isinstance(key, dict) or not key:
                raise RecipeError(f"{file}: field 'key' is not an object of symbol -> ingredient")
            for symbol, value in key.items():
                ing_kind, ing = _ingredient(f"{file}: key {symbol!r}", value)
                (itemid_set if ing_kind == "item" else tag_set).add(ing)
                count = sum(row.count(symbol) for row in pattern)
                slots.append(_Slot(ItemTag(item_id=ing) if ing_kind == "item" else ItemTag(tag=ing), count))
        elif kind == SHAPELESS:
            ingredients = doc.get("ingredients")
            if not isinstance(ingredients, list) or not ingredients:
                raise RecipeError(f"{file}: field 'ingredients' is not a non-empty list")
            index: dict[str, _Slot] = {}
            for n, value in enumerate(ingredients):
                ing_kind, ing = _ingredient(f"{file}: ingredients[{n}]", value)
                (itemid_set if ing_kind == "item" else tag_set).add(ing)
                if ing in index:
                    index[ing].count += 1
                else:
                    index[ing] = _Slot(ItemTag(item_id=ing) if ing_kind == "item" else ItemTag(tag=ing), 1)
                    slots.append(index[ing])
        else:
            continue  # smelting, stonecutting, special recipes: not crafting-table recipes
        output_id, output_count = _result(file, doc.get("result"))
        itemid_set.add(output_id)
        if len(slots) == 1 and slots[0].tag.name.endswith("_block"):
            continue  # unpacking a storage block: only creates cycles
        output_tag = None
        if "group" in doc:
            if not isinstance(doc["group"], str):
                raise RecipeError(f"{file}: field 'group' is not a string")
            output_tag = NAMESPACE + doc["group"]
            if output_tag != output_id:
                tag_set.add(output_tag)
                item_id_to_tag[output_id] = output_tag
        deps = transitive.setdefault(output_id, set())
        if any(output_id in transitive.get(s.tag.name, ()) for s in slots):
            continue  # an ingredient already needs the output: the original's cycle guard
        kept.append(
            (slots, ItemTagWithCount(ItemTag(tag=output_tag, item_id=output_id), output_count), file.name)
        )
        for s in slots:
            deps.add(s.tag.name)
            deps.update(transitive.get(s.tag.name, ()))

    # A tag ingredient none of whose members has a recipe becomes an item of that name.
    with_recipes = {out.item_tag.name for _, out, _ in kept}
    converted: set[str] = set()
    for slots, _, _ in kept:
        for s in slots:
            if s.tag.item_id is None:
                tag = s.tag.name
                if not any(t == tag and item in with_recipes for item, t in item_id_to_tag.items()):
                    s.tag = ItemTag(item_id=tag)
                    converted.add(tag)
    itemid_set |= converted
    tag_set -= converted

    recipes = [
        Recipe(tuple(ItemTagWithCount(s.tag, s.count) for s in slots), out, f) for slots, out, f in kept
    ]
    for r in recipes:
        if not r.inputs:
            raise RecipeError(f"{folder / r.origin}: the recipe has no ingredients")
    try:
        crafting = Crafting(recipes, {i: (t,) for i, t in item_id_to_tag.items()}, tag_set, itemid_set)
    except RecipeError as exc:
        raise RecipeError(f"textcraft recipes {folder}: {exc}") from None
    if not crafting.goals:
        raise RecipeError(f"textcraft recipes {folder}: no crafting recipe in it")
    return crafting


def _read_json(file: Path) -> dict[str, Any]:
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RecipeError(f"{file}: cannot be read: {exc}") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RecipeError(
            f"{file}: not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from None
    if not isinstance(doc, dict):
        raise RecipeError(f"{file}: not a JSON object (one recipe per file)")
    return doc


def _result(file: Path, result: Any) -> tuple[str, int]:
    if isinstance(result, str) and result:
        return result, 1
    if isinstance(result, dict) and isinstance(result.get("item"), str) and result["item"]:
        count = result.get("count") or 1
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise RecipeError(f"{file}: field 'result.count' is not a positive whole number")
        return result["item"], count
    raise RecipeError(f"{file}: field 'result' is neither an item id nor an object with 'item'")


def from_book(book: RecipeBook, goals: list[str]) -> Crafting:
    """The built-in recipe book in the original's terms (ids with the `minecraft:` namespace), for
    the profile without the original's files: its tags whose members have no recipe become items,
    as the original converts them; task ids keep the book's goal order."""

    def ns(name: str) -> str:
        return NAMESPACE + name

    craftable_tags = {t for t, members in book.tags.items() if any(m in book.recipes for m in members)}
    tag_set = {ns(t) for t in craftable_tags}
    itemid_set = {ns(i) for i in book.items} | {ns(t) for t in book.tags if t not in craftable_tags}
    recipes = []
    for output, recs in book.recipes.items():
        itemid_set.add(ns(output))
        for r in recs:
            ins = tuple(
                ItemTagWithCount(ItemTag(tag=ns(n)) if n in craftable_tags else ItemTag(item_id=ns(n)), c)
                for n, c in r.inputs
            )
            # No single output tag: an item can be in several of the book's tags (tags_of below).
            recipes.append(Recipe(ins, ItemTagWithCount(ItemTag(item_id=ns(output)), r.count)))
    tags_of = {
        ns(m): tuple(ns(t) for t in tags if t in craftable_tags)
        for m, tags in book.tag_of.items()
        if any(t in craftable_tags for t in tags)
    }
    by_output: dict[str, list[Recipe]] = {}
    for r in recipes:
        by_output.setdefault(r.output.item_tag.name, []).append(r)
    # A tag of the book stands for its members' recipes (the original's tags: recipes by group).
    tag_recipes = {
        ns(t): [r for m in book.tags[t] for r in by_output.get(ns(m), ())] for t in sorted(craftable_tags)
    }
    return Crafting(
        recipes, tags_of, tag_set, itemid_set, goals=[ns(g) for g in goals], tag_recipes=tag_recipes
    )


def to_book(crafting: Crafting) -> RecipeBook:
    """The original's recipes as this project's recipe book (ids without the namespace), for our
    rules on the original's data."""

    def bare(name: str) -> str:
        return name.removeprefix(NAMESPACE)

    tags: dict[str, list[str]] = {}
    for item, item_tags in crafting.tags_of.items():
        for t in item_tags:
            if crafting.is_tag(t):
                tags.setdefault(bare(t), []).append(bare(item))
    recipes = [
        {
            "output": bare(r.output.item_tag.name),
            "count": r.output.count,
            "inputs": sorted([bare(i.item_tag.name), i.count] for i in r.inputs),
        }
        for recs in crafting.itemid_recipes.values()
        for r in recs
    ]
    return RecipeBook({"tags": tags, "recipes": recipes})


# --- an episode under the original's rules ---------------------------------------------------------
_ACTIONS = (
    ("craft", re.compile(r"craft (.*) using (.*)")),
    ("get", re.compile(r"get ([0-9]+) (.*)")),
    ("inventory", re.compile(r"inventory")),
)
_COUNT = re.compile(r"([0-9]+) (.*)")


class _Failed(Exception):
    pass


def clean_action(action: str) -> str:
    """What the original's client sends: only letters, digits, commas and spaces, spaces collapsed."""
    return " ".join(re.sub(r"[^A-Za-z0-9, ]+", "", action).split())


class Game:
    """One episode: the goal, the inventory (insertion ordered, as the original lists it), steps."""

    def __init__(self, crafting: Crafting, goal: str) -> None:
        self.crafting = crafting
        self.goal = goal
        self.inventory: dict[str, int] = {}

    def first_observation(self, rng: random.Random) -> str:
        tree = self.crafting.recipe_tree(self.goal)
        distractors: list[Recipe] = []
        for r in tree:
            for i in r.inputs:
                uses = self.crafting.item_uses.get(i.item_tag.name)
                if uses:
                    distractors.extend(rng.sample(uses, min(len(uses), MAX_DISTRACTORS)))
        shown = {r.recipe_str for r in tree}
        pool = sorted({d.recipe_str for d in distractors} - shown)
        commands = sorted(shown) + rng.sample(pool, min(len(pool), MAX_DISTRACTORS))
        rng.shuffle(commands)
        return "Crafting commands:\n{}\n\nGoal: craft {}.".format("\n".join(commands), item_str(self.goal))

    def step(self, action: str) -> tuple[str, bool, bool]:
        """(observation, goal reached, action failed)."""
        observation = None
        won = False
        try:
            for kind, regex in _ACTIONS:
                m = regex.match(action)
                if not m:
                    continue
                if kind == "craft":
                    observation, won = self._craft(m.group(1), m.group(2))
                elif kind == "get":
                    observation, won = self._get(int(m.group(1)), m.group(2))
                else:
                    observation = "Inventory: " + (
                        "".join(f"[{item_str(i)}] ({n}) " for i, n in self.inventory.items())
                        or "You are not carrying anything."
                    )
            if observation is None:
                raise _Failed(f"Could not execute {action}")
        except _Failed as exc:
            return str(exc), False, True
        return observation, won, False

    def _obj(self, text: str) -> ItemTag:
        item_id = NAMESPACE + text.replace(" ", "_")
        return ItemTag(tag=item_id) if self.crafting.is_tag(item_id) else ItemTag(item_id=item_id)

    def _get(self, amount: int, text: str) -> tuple[str, bool]:
        obj = self._obj(text)
        if (
            self.crafting.is_craftable(obj.name)
            or obj.item_id is None
            or not self.crafting.is_valid_item(obj.item_id)
        ):
            raise _Failed(f"Could not find {text}")
        self._add(obj.item_id, amount)
        return f"Got {amount} {text}", obj.item_id == self.goal

    def _craft(self, target: str, ingredients: str) -> tuple[str, bool]:
        m = _COUNT.match(target)
        output = (
            ItemTagWithCount(self._obj(m.group(2)), int(m.group(1)))
            if m
            else ItemTagWithCount(self._obj(target), 1)
        )
        given = []
        for part in ingredients.split(","):
            pm = _COUNT.match(part.strip())
            if not pm:
                raise _Failed(f"Wrong item format: {part.strip()}")
            given.append(ItemTagWithCount(self._obj(pm.group(2)), int(pm.group(1))))
        if any(
            g.item_tag.item_id not in self.inventory or self.inventory[g.item_tag.item_id] < g.count
            for g in given
        ):
            raise _Failed(f"Could not find enough items to craft {output.item_tag.item_id}")
        made = self.crafting.craft(output.item_tag.item_id, given)
        if made is None:
            raise _Failed(f"Could not find a valid recipe for {output}")
        for g in given:
            item = g.item_tag.item_id or ""
            self.inventory[item] -= g.count
            if self.inventory[item] == 0:
                del self.inventory[item]
        made_id = made.item_tag.item_id or ""
        self._add(made_id, made.count)
        return f"Crafted {made.count} {made_id}", made_id == self.goal

    def _add(self, item: str, amount: int) -> None:
        self.inventory[item] = self.inventory.get(item, 0) + amount

    def expert_plan(self) -> list[str]:
        return Planner(self.crafting, self.inventory).plan(self.goal)


class Planner:
    """The expert under the original's rules: fetch what is missing, then craft upwards, one craft
    per batch with the recipe's exact counts and one concrete item per ingredient."""

    def __init__(self, crafting: Crafting, inventory: Mapping[str, int]) -> None:
        self.c = crafting
        self.inv: Counter[str] = Counter({k: v for k, v in inventory.items() if v > 0})
        self.actions: list[str] = []

    def plan(self, goal: str) -> list[str]:
        self._make(goal, 1, frozenset())
        return self.actions

    def _set_aside(self, need: ItemTag, n: int, path: frozenset[str]) -> str:
        """Hold n of one item filling `need` (made if missing), set aside for the craft in hand."""
        if need.item_id is not None:
            item = need.item_id
        else:
            members = self.c.members(need.tag or "")
            if not members:
                raise RuntimeError(f"nothing fills {need.tag}")
            # Held in full, else the most held, else one to fetch, else the shallowest to craft.
            order = {m: i for i, m in enumerate(members)}
            item = min(
                members,
                key=lambda m: (
                    self.inv[m] < n,
                    -self.inv[m],
                    not self.c.fetchable(m),
                    self.c.depth(m),
                    order[m],
                ),
            )
        if self.inv[item] < n:
            self._make(item, n - self.inv[item], path)
        self.inv[item] -= n
        return item

    def _make(self, item: str, n: int, path: frozenset[str]) -> None:
        if self.c.fetchable(item):
            self.actions.append(f"get {n} {item_str(item)}")
            self.inv[item] += n
            return
        recipes = self.c.itemid_recipes.get(item)
        if not recipes or item in path:
            raise RuntimeError(f"{item_str(item)} can be neither fetched nor crafted")
        recipe = min(
            recipes, key=lambda r: (max(self.c.depth(i.item_tag.name) for i in r.inputs), recipes.index(r))
        )
        batches = math.ceil(n / recipe.output.count)
        used = [
            (self._set_aside(i.item_tag, i.count * batches, path | {item}), i.count) for i in recipe.inputs
        ]
        ins = ", ".join(f"{k} {item_str(u)}" for u, k in used)
        self.actions.extend([f"craft {recipe.output.count} {item_str(item)} using {ins}"] * batches)
        self.inv[item] += recipe.output.count * batches
