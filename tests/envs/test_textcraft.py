"""TextCraft semantics: recipes converted from minecraft-data, crafting rules, goals by depth."""

from __future__ import annotations

from agentgym.envs import registry
from agentgym.envs.textcraft.recipes import build_book, load_book


def test_recipes_come_from_minecraft_data() -> None:
    book = load_book()
    assert [r.command for r in book.recipes_for("crafting_table")] == [
        "craft 1 crafting table using 4 planks"
    ]
    assert "oak_planks" in book.tags["planks"] and "coal" in book.tags["coal_or_charcoal"]
    assert book.fetchable("oak_log") and not book.fetchable("oak_planks") and not book.fetchable("planks")
    # Goals are craftable items sorted by crafting depth, as in the original.
    depths = [d for _, d in book.goals]
    assert depths == sorted(depths) and depths[0] >= 1 and len(book.goals) > 400
    # The conversion is a pure function of the installed package.
    assert build_book()["recipes"][:5] == build_book()["recipes"][:5]


def test_crafting_rules() -> None:
    env = registry.make("textcraft")
    goal_index = next(i for i, (g, _) in enumerate(env.book.goals) if g == "crafting_table")
    first = env.reset(goal_index, goal_index, {})
    assert first.observation.startswith("Crafting commands:\n") and first.observation.endswith(
        "Goal: craft crafting table."
    )
    assert "craft 1 crafting table using 4 planks" in first.observation
    assert env.step("get 4 oak planks").observation == "Could not find oak planks"  # craftable: must craft
    assert env.step("get 1 oak log").observation == "Got 1 oak log"
    assert env.step("craft 4 oak planks using 1 oak log").observation == "Crafted 4 oak planks"
    assert env.step("inventory").observation == "Inventory: [oak planks] (4)"
    assert (
        env.step("craft 1 crafting table using 5 oak planks").observation
        == "Could not find enough items to craft crafting table"
    )
    assert (
        env.step("craft 1 crafting table using 3 oak planks").observation
        == "Could not find a valid recipe for crafting table"
    )
    assert env.step("craft 1 crafting table using 4 oak plank").info == {"invalid": "true"}
    assert env.step("dance").observation == "Could not execute dance"
    win = env.step("Craft 1 crafting table using 4 oak planks.")  # case and punctuation are forgiven
    assert (win.observation, win.reward, win.done, win.success) == (
        "Crafted 1 crafting table",
        1.0,
        True,
        True,
    )


def test_multiple_batches_in_one_craft() -> None:
    env = registry.make("textcraft")
    env.reset(0, 0, {})
    env.step("get 3 oak log")
    assert env.step("craft 12 oak planks using 3 oak log").observation == "Crafted 12 oak planks"
    assert env.step("craft 8 oak planks using 3 oak log").info == {"invalid": "true"}  # nothing left


def test_reset_is_deterministic_per_task_and_seed() -> None:
    a, b = registry.make("textcraft"), registry.make("textcraft")
    a.rng.seed(7)
    b.rng.seed(7)
    assert a.reset(100, 7, {}).observation == b.reset(100, 7, {}).observation
