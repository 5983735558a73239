"""TextCraft's recipe book, converted from the `minecraft-data` package's crafting recipes.

minecraft-data (PrismarineJS format) lists every crafting-table recipe by numeric item id and
spells out each wooden or coloured variant as its own recipe. TextCraft, like Minecraft's own
data packs, speaks of generic ingredients ("4 planks"). The conversion therefore:

1. turns each shaped/shapeless recipe into {ingredient name: count} -> (output, count);
2. collapses recipes of one output that differ only in one ingredient whose alternatives are
   variants of one thing (sharing a name part, like oak_planks/birch_planks or coal/charcoal) into
   one recipe over a *tag* ("planks", "oak_logs", "any_coal");
3. drops "unpacking" recipes (one *_block -> nine items) and, in a fixed order, any recipe that
   would close a cycle, as the original TextCraft does;
4. computes each item's minimum crafting depth; goals are craftable items sorted by depth.

Run `python -m agentgym.envs.textcraft.recipes` (or `make data`) to build the cached JSON.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache, cached_property
from importlib import metadata

from agentgym.envs._data import cached_json

MINECRAFT_VERSION = "1.16.2"  # the era of the original TextCraft's recipes


@dataclass(frozen=True)
class Recipe:
    output: str  # item name, e.g. "oak_planks"
    count: int  # items produced by one craft
    inputs: tuple[tuple[str, int], ...]  # (item or tag name, count), sorted by name

    @cached_property
    def command(self) -> str:
        """The crafting command as the agent sees it."""
        ins = ", ".join(f"{n} {display(i)}" for i, n in self.inputs)
        return f"craft {self.count} {display(self.output)} using {ins}"


def display(name: str) -> str:
    return name.replace("_", " ")


# ---------------------------------------------------------------------------------------------
# conversion from minecraft-data


def _load_minecraft(version: str) -> tuple[dict[int, str], dict[str, list[dict]]]:
    import minecraft_data

    root = os.path.join(os.path.dirname(minecraft_data.__file__), "data", "data", "pc", version)
    with open(os.path.join(root, "items.json")) as f:
        items = {i["id"]: i["name"] for i in json.load(f)}
    with open(os.path.join(root, "recipes.json")) as f:
        recipes = json.load(f)
    return items, recipes


def _ingredients(raw: dict, items: dict[int, str]) -> Counter[str]:
    if "inShape" in raw:
        cells: Iterable = (c for row in raw["inShape"] for c in row)
    else:
        cells = raw["ingredients"]
    out: Counter[str] = Counter()
    for c in cells:
        if c is None:
            continue
        cid = c["id"] if isinstance(c, dict) else c
        if cid is None or cid < 0:
            continue
        out[items[cid]] += 1
    return out


def _tokens(name: str) -> list[str]:
    return name.split("_")


def _common_token_suffix(names: list[str]) -> list[str]:
    toks = [_tokens(n) for n in names]
    out: list[str] = []
    for parts in zip(*(reversed(t) for t in toks), strict=False):
        if len(set(parts)) != 1:
            break
        out.insert(0, parts[0])
    return out


def _common_char_suffix(names: list[str]) -> str:
    out = os.path.commonprefix([n[::-1] for n in names])[::-1]  # noqa: RUF071 - characters intended
    return out.lstrip("_")


def _variant_tag_name(members: list[str]) -> str | None:
    """A name for a set of interchangeable items, or None if they are not variants of one thing."""
    if not _are_variants(members):
        return None
    if len(members) == 2:  # "coal_or_charcoal" reads better than any invented group name
        a, b = sorted(members, key=lambda n: (len(n), n))
        return f"{a}_or_{b}"
    suffix = _common_token_suffix(members)
    if suffix:
        return "_".join(suffix)
    shortest = min(members, key=lambda n: (len(n), n))
    common = [t for t in _tokens(shortest) if all(t in _tokens(m) for m in members)]
    if common:
        return "_".join([*common, _tokens(shortest)[-1] + "s"])
    return _common_char_suffix(members)


def _are_variants(members: list[str]) -> bool:
    """Variants of one thing share a name part (oak_log/oak_wood) or a long ending (coal/charcoal)."""
    if _common_token_suffix(members):
        return True
    if set.intersection(*(set(_tokens(m)) for m in members)):
        return True
    return len(_common_char_suffix(members)) >= 4


class _TagTable:
    def __init__(self, item_names: set[str]) -> None:
        self.item_names = item_names
        self.by_members: dict[frozenset[str], str] = {}
        self.members: dict[str, list[str]] = {}

    def tag_for(self, members: Iterable[str]) -> str | None:
        key = frozenset(members)
        if key in self.by_members:
            return self.by_members[key]
        base = _variant_tag_name(sorted(key))
        if base is None:
            return None
        name = base if base not in self.item_names else f"any_{base}"
        n = 2
        while name in self.members or name in self.item_names:
            name = f"{base}_{n}"
            n += 1
        self.by_members[key] = name
        self.members[name] = sorted(key)
        return name


def _collapse(
    output_recipes: list[tuple[int, Counter[str]]], tags: _TagTable
) -> list[tuple[int, Counter[str]]]:
    """Merge recipes of one output that differ only in one variant ingredient, until none do."""
    recipes = [(c, Counter(ins)) for c, ins in output_recipes]
    changed = True
    while changed:
        changed = False
        groups: dict[tuple, list[int]] = {}
        for idx, (count, ins) in enumerate(recipes):
            for key, n in ins.items():
                rest = tuple(sorted((k, v) for k, v in ins.items() if k != key))
                groups.setdefault((count, rest, n), []).append(idx)
        for (count, rest, n), idxs in sorted(groups.items(), key=lambda kv: (-len(kv[1]), str(kv[0]))):
            if len(idxs) < 2:
                continue
            alternatives = {next(k for k in recipes[i][1] if k not in dict(rest)): i for i in idxs}
            chosen = _choose_variants(list(alternatives))
            if chosen is None:
                continue
            tag = tags.tag_for(chosen)
            if tag is None:
                continue
            drop = {alternatives[m] for m in chosen}
            merged = Counter(dict(rest))
            merged[tag] = n
            recipes = [r for i, r in enumerate(recipes) if i not in drop] + [(count, merged)]
            changed = True
            break
    return recipes


def _choose_variants(alternatives: list[str]) -> list[str] | None:
    if _variant_tag_name(sorted(alternatives)) is not None:
        return sorted(alternatives)
    # Not all interchangeable (e.g. planks and bamboo): take the largest family by last name part.
    by_last = Counter(_tokens(a)[-1] for a in alternatives)
    last, n = min(by_last.items(), key=lambda kv: (-kv[1], kv[0]))
    subset = sorted(a for a in alternatives if _tokens(a)[-1] == last)
    if n >= 2 and _variant_tag_name(subset) is not None:
        return subset
    return None


def build_book(version: str = MINECRAFT_VERSION) -> dict:
    items, raw_recipes = _load_minecraft(version)
    tags = _TagTable(set(items.values()))
    recipes: list[Recipe] = []
    for result_id in sorted(raw_recipes, key=lambda k: items[int(k)]):
        output = items[int(result_id)]
        parsed = []
        for raw in raw_recipes[result_id]:
            ins = _ingredients(raw, items)
            if not ins:
                continue
            parsed.append((int(raw["result"]["count"]), ins))
        for count, ins in _collapse(parsed, tags):
            # Unpacking a storage block into nine items only creates cycles (original TextCraft rule).
            if len(ins) == 1 and next(iter(ins)).endswith("_block"):
                continue
            recipes.append(Recipe(output, count, tuple(sorted(ins.items()))))

    # Drop recipes that would make an item depend on itself, in a fixed order.
    kept: list[Recipe] = []
    depends: dict[str, set[str]] = {}

    def closure(name: str) -> set[str]:
        names = {name, *tags.members.get(name, ())}
        out: set[str] = set(names)
        for n in names:
            out |= depends.get(n, set())
        return out

    for r in recipes:
        needed: set[str] = set()
        for name, _ in r.inputs:
            needed |= closure(name)
        if r.output in needed:
            continue
        kept.append(r)
        depends.setdefault(r.output, set()).update(needed)
        # Items that depended on r.output now depend on its inputs too.
        for deps in depends.values():
            if r.output in deps:
                deps |= needed

    return {
        "minecraft_version": version,
        "tags": tags.members,
        "recipes": [
            {"output": r.output, "count": r.count, "inputs": [list(i) for i in r.inputs]} for r in kept
        ],
    }


def _source() -> str:
    return f"minecraft-data=={metadata.version('minecraft-data')};{MINECRAFT_VERSION};converter=2"


@cache
def load_book() -> RecipeBook:
    return RecipeBook(cached_json("textcraft_recipes.json", _source(), build_book))


# ---------------------------------------------------------------------------------------------
# the book as the game uses it


class RecipeBook:
    def __init__(self, doc: dict) -> None:
        self.tags: dict[str, tuple[str, ...]] = {t: tuple(m) for t, m in doc["tags"].items()}
        self.tag_of: dict[str, list[str]] = {}
        for tag, members in self.tags.items():
            for m in members:
                self.tag_of.setdefault(m, []).append(tag)
        self.recipes: dict[str, list[Recipe]] = {}
        for r in doc["recipes"]:
            rec = Recipe(r["output"], r["count"], tuple((n, c) for n, c in r["inputs"]))
            self.recipes.setdefault(rec.output, []).append(rec)
        self.items: set[str] = set(self.recipes)
        for recs in self.recipes.values():
            for r in recs:
                for name, _ in r.inputs:
                    if name in self.tags:
                        self.items.update(self.tags[name])
                    else:
                        self.items.add(name)
        self._depth: dict[str, int] = {}
        self.goals: list[tuple[str, int]] = sorted(
            ((item, self.depth(item)) for item in self.recipes if self.depth(item) >= 1),
            key=lambda x: (x[1], x[0]),
        )

    def is_tag(self, name: str) -> bool:
        return name in self.tags

    def craftable(self, name: str) -> bool:
        if name in self.tags:
            return any(m in self.recipes for m in self.tags[name])
        return name in self.recipes

    def fetchable(self, name: str) -> bool:
        """`get` works for base items, and for a tag with a base member (the tag itself is then held,
        as in the original, where "get 1 oak logs" works)."""
        if name in self.tags:
            return any(self.fetchable(m) for m in self.tags[name])
        return name in self.items and name not in self.recipes

    def recipes_for(self, name: str) -> list[Recipe]:
        if name in self.tags:
            return [r for m in self.tags[name] for r in self.recipes.get(m, ())]
        return self.recipes.get(name, [])

    def depth(self, name: str) -> int:
        """Fewest crafting levels to make `name` from base items (0 for base items)."""
        if name in self._depth:
            return self._depth[name]
        self._depth[name] = 0  # guards against any residual cycle
        if name in self.tags:
            d = min(self.depth(m) for m in self.tags[name])
        else:
            recs = self.recipes.get(name, [])
            d = min((max(self.depth(i) + 1 for i, _ in r.inputs) for r in recs), default=0)
        self._depth[name] = d
        return d

    def matches(self, slot: str, held: str) -> bool:
        """Whether inventory item `held` can fill a recipe slot naming item or tag `slot`."""
        return held == slot or (slot in self.tags and held in self.tags[slot])


if __name__ == "__main__":
    book = load_book()
    print(
        f"{sum(len(v) for v in book.recipes.values())} recipes, {len(book.tags)} tags, {len(book.goals)} goals"
    )
