"""TextCraft on the original's recipe files and under the agentgym profile.

The recipes are made up, in the original's layout: a `recipes/` folder of Minecraft recipe JSON
files. The expected goals, recipe trees and texts follow the original's rules (envs/textcraft/
original.py says which), worked out by hand for this small world.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agentgym.client.envclient import EnvClient
from agentgym.envs import registry
from agentgym.envs.textcraft import TextCraft
from agentgym.envs.textcraft.original import RecipeError, load_recipes
from tests.conftest import StartServer

NS = "minecraft:"


def shaped(pattern: list[str], key: dict[str, Any], result: str, count: int | None = None, **kw: str) -> dict:
    out: dict[str, Any] = {"item": NS + result} | ({"count": count} if count else {})
    return {"type": "minecraft:crafting_shaped", **kw, "pattern": pattern, "key": key, "result": out}


def shapeless(ingredients: list[Any], result: str, count: int | None = None, **kw: str) -> dict:
    out: dict[str, Any] = {"item": NS + result} | ({"count": count} if count else {})
    return {"type": "minecraft:crafting_shapeless", **kw, "ingredients": ingredients, "result": out}


def item(name: str) -> dict[str, str]:
    return {"item": NS + name}


def tag(name: str) -> dict[str, str]:
    return {"tag": NS + name}


RECIPES: dict[str, dict] = {
    # Tag "plank" (from the group): its members have recipes, so it stays a tag. Tags "pine_logs"
    # and "birch_logs" have no members: they become items, fetched by that name.
    "a_pine_plank.json": shapeless([tag("pine_logs")], "pine_plank", 4, group="plank"),
    "b_birch_plank.json": shapeless([tag("birch_logs")], "birch_plank", 4, group="plank"),
    "c_rod.json": shaped(["#", "#"], {"#": tag("plank")}, "rod", 4, group="rods"),
    # Of a list of alternatives the first is taken.
    "d_torchlight.json": shaped(
        ["C", "R"], {"C": [item("ember"), item("coal")], "R": item("rod")}, "torchlight", 4
    ),
    "e_workbench.json": shaped(["##", "##"], {"#": tag("plank")}, "workbench"),
    "f_lantern.json": shaped(
        ["nnn", "ntn", "nnn"], {"n": item("iron_nugget"), "t": item("torchlight")}, "lantern"
    ),
    "g_ember_block.json": shaped(["eee", "eee", "eee"], {"e": item("ember")}, "ember_block"),
    # Unpacking a block is dropped; so is a recipe whose ingredient already needs its output.
    "h_ember_from_block.json": shapeless([item("ember_block")], "ember", 9),
    "i_rod_from_torchlight.json": shapeless([item("torchlight")], "rod", 1),
    "j_smelt_ember.json": {"type": "minecraft:smelting", "ingredient": item("coal"), "result": NS + "ember"},
    # Repeated shapeless ingredients are counted.
    "k_dye.json": shapeless([item("petal"), item("petal")], "dye"),
}
# The original's goals: items with a recipe in reading order, stably sorted by crafting depth.
GOALS = ["pine_plank", "birch_plank", "ember_block", "dye", "rod", "workbench", "torchlight", "lantern"]


def write_recipes(root: Path, recipes: dict[str, dict]) -> Path:
    folder = root / "agentenv_textcraft" / "recipes"
    folder.mkdir(parents=True)
    for name, doc in recipes.items():
        (folder / name).write_text(json.dumps(doc, indent=2))
    return folder


@pytest.fixture(autouse=True)
def _restore_default() -> Iterator[None]:
    yield
    registry.configure("textcraft", {})  # env classes hold one configuration per process


@pytest.fixture
def recipes(tmp_path: Path) -> str:
    return str(write_recipes(tmp_path, RECIPES))


@pytest.fixture
def source(tmp_path: Path) -> str:
    """A made-up AgentGym checkout holding the textcraft client's opening."""
    envs = tmp_path / "AgentGym" / "agentenv" / "agentenv" / "envs"
    envs.mkdir(parents=True)
    (envs / "__init__.py").write_text("")
    (envs / "textcraft.py").write_text(
        "class TextCraftEnvClient(BaseEnvClient):\n"
        "    conversation_start = (\n"
        '        ConversationMessage({"from": "human", "loss": None, "value": "Craft things."}),\n'
        '        ConversationMessage({"from": "gpt", "loss": False, "value": "OK."}),\n'
        "    )\n"
    )
    return str(tmp_path / "AgentGym")


def profiled(source: str, recipes: str | None = None) -> type[TextCraft]:
    settings = {"profile": "agentgym", "agentgym_source": source} | ({"recipes": recipes} if recipes else {})
    cls = registry.configure("textcraft", settings)
    assert issubclass(cls, TextCraft)
    return cls


def goal_of(observation: str) -> str:
    return observation.rsplit("\n\nGoal: craft ", 1)[1].removesuffix(".")


def commands_of(observation: str) -> list[str]:
    return observation.removeprefix("Crafting commands:\n").split("\n\nGoal: ")[0].split("\n")


def solve(env: TextCraft, task: int, limit: int = 60) -> int:
    env.rng.seed(task)
    env.reset(task, task, {})
    for n in range(1, limit + 1):
        out = env.step(env.expert_action())
        assert out.info == {}, (task, out.observation)
        if out.done:
            assert out.success and out.reward == 1.0
            return n
    raise AssertionError(f"task {task} not solved in {limit} steps")


# --- the loader ------------------------------------------------------------------------------------
def test_loader_follows_the_original(recipes: str) -> None:
    crafting = load_recipes(recipes)
    assert crafting.goals == [NS + g for g in GOALS]
    # The folder holding recipes/ (the original's minecraft_dir) is accepted too.
    assert load_recipes(Path(recipes).parent).goals == crafting.goals
    assert crafting.tag_set == {NS + "plank", NS + "rods"}
    assert {NS + "pine_logs", NS + "birch_logs"} <= crafting.itemid_set  # converted tags
    assert [r.recipe_str for r in crafting.itemid_recipes[NS + "rod"]] == ["craft 4 rod using 2 plank"]
    assert [r.recipe_str for r in crafting.itemid_recipes[NS + "torchlight"]] == [
        "craft 4 torchlight using 1 ember, 1 rod"
    ]
    assert [r.recipe_str for r in crafting.itemid_recipes[NS + "dye"]] == ["craft 1 dye using 2 petal"]
    assert NS + "ember" not in crafting.itemid_recipes  # unpacking the block was dropped
    # The directory's own order (the original's os.listdir) may keep other recipes: see below.
    assert set(load_recipes(recipes, "listdir").goals) <= set(crafting.goals) | {NS + "rod"}


def test_the_cycle_guard_depends_on_the_reading_order(tmp_path: Path) -> None:
    # Read after the recipe of rod from torchlight, the torchlight recipe is the one dropped.
    swapped = {("z_torchlight.json" if k == "d_torchlight.json" else k): v for k, v in RECIPES.items()}
    crafting = load_recipes(write_recipes(tmp_path, swapped))
    assert [r.recipe_str for r in crafting.itemid_recipes[NS + "rod"]] == [
        "craft 4 rod using 2 plank",
        "craft 1 rod using 1 torchlight",
    ]
    # Torchlight is now a base item, and rod and lantern are one level deep.
    assert crafting.fetchable(NS + "torchlight")
    order = ["pine_plank", "birch_plank", "rod", "lantern", "ember_block", "dye", "workbench"]
    assert crafting.goals == [NS + g for g in order]


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        (
            "c_rod.json",
            '{"type": "minecraft:crafting_shaped",\n "pattern": ["#"]\n "key": {}}',
            "not valid JSON.*line 3",
        ),
        ("c_rod.json", json.dumps({"pattern": ["#"]}), "no 'type' field"),
        (
            "c_rod.json",
            json.dumps(shaped(["#"], {"#": {"id": "x"}}, "rod")),
            "key '#': neither 'item' nor 'tag'",
        ),
        ("c_rod.json", json.dumps(shaped(["#"], {"#": item("x")}, "rod") | {"pattern": "#"}), "'pattern'"),
        ("k_dye.json", json.dumps(shapeless([item("petal")], "dye") | {"result": {"count": 1}}), "'result'"),
        ("k_dye.json", json.dumps(shapeless([], "dye")), "'ingredients' is not a non-empty list"),
        ("k_dye.json", json.dumps(shapeless(["petal"], "dye")), r"ingredients\[0\]: expected an object"),
        ("k_dye.json", "[1, 2]", "not a JSON object"),
    ],
)
def test_malformed_recipe_files_are_refused_with_the_file_and_field(
    tmp_path: Path, name: str, text: str, message: str
) -> None:
    folder = write_recipes(tmp_path, RECIPES)
    (folder / name).write_text(text)
    with pytest.raises(RecipeError, match=message) as err:
        load_recipes(folder)
    assert str(folder / name) in str(err.value)


def test_bad_folders_and_settings_are_refused(tmp_path: Path, recipes: str) -> None:
    with pytest.raises(RecipeError, match="no such directory"):
        registry.configure("textcraft", {"recipes": str(tmp_path / "missing")})
    (tmp_path / "empty").mkdir()
    with pytest.raises(RecipeError, match=r"no recipe files \(\*.json\)"):
        load_recipes(tmp_path / "empty")
    with pytest.raises(RecipeError, match="file_order 'random'"):
        registry.configure("textcraft", {"recipes": recipes, "file_order": "random"})
    with pytest.raises(ValueError, match="file_order only applies with recipes"):
        registry.configure("textcraft", {"file_order": "listdir"})
    with pytest.raises(ValueError, match="unknown settings recipe"):
        registry.configure("textcraft", {"recipe": recipes})
    # A cycle through a tag, on which the original recurses without end.
    looped = write_recipes(
        tmp_path / "looped", RECIPES | {"l_loop.json": shapeless([item("rod")], "pine_plank", group="plank")}
    )
    with pytest.raises(RecipeError, match=r"rod -> plank -> rod \(recipes in c_rod\.json, l_loop\.json\)"):
        load_recipes(looped)


# --- task ids and the first observation ------------------------------------------------------------
def test_task_n_is_the_original_goal_n(recipes: str, source: str) -> None:
    assert registry.configure("textcraft", {}).task_set != "original"
    for cls in (registry.configure("textcraft", {"recipes": recipes}), profiled(source, recipes)):
        assert cls.task_set == "original" and cls.task_count == len(GOALS)
        for task, goal in enumerate(GOALS):
            env = cls()
            env.rng.seed(task)
            assert goal_of(env.reset(task, task, {}).observation) == goal.replace("_", " ")


def test_profile_first_observation(recipes: str, source: str) -> None:
    cls = profiled(source, recipes)
    assert cls.instruction == "Craft things." and cls.acknowledgement == "OK."
    env = cls()
    env.rng.seed(3)
    first = env.reset(GOALS.index("workbench"), 3, {}).observation
    assert first.startswith("Crafting commands:\n") and first.endswith("\n\nGoal: craft workbench.")
    # The goal's recipes, then its ingredients' (a tag: all its members'), and the only recipe
    # using an ingredient that the tree does not have.
    assert sorted(commands_of(first)) == [
        "craft 1 workbench using 4 plank",
        "craft 4 birch plank using 1 birch logs",
        "craft 4 pine plank using 1 pine logs",
        "craft 4 rod using 2 plank",
    ]
    lantern = GOALS.index("lantern")
    commands = commands_of(env.reset(lantern, 3, {}).observation)
    assert {
        "craft 1 lantern using 8 iron nugget, 1 torchlight",
        "craft 4 torchlight using 1 ember, 1 rod",
    } <= set(commands)
    # Determinism: the same task and seed replay the same observation.
    a, b = cls(), cls()
    a.rng.seed(11)
    b.rng.seed(11)
    assert a.reset(lantern, 11, {}).observation == b.reset(lantern, 11, {}).observation


def test_profile_feedback_texts(recipes: str, source: str) -> None:
    env = profiled(source, recipes)()
    env.reset(GOALS.index("workbench"), 0, {})
    steps = [
        ("inventory", "Inventory: You are not carrying anything."),
        ("get 1 pine plank", "Could not find pine plank"),  # craftable
        ("get 1 plank", "Could not find plank"),  # a tag
        ("get 1 oak log", "Could not find oak log"),  # unknown
        ("Get 1 pine logs", "Could not execute Get 1 pine logs"),  # the original does not lower-case
        ("get 2 pine logs", "Got 2 pine logs"),
        ("craft 4 pine plank using pine logs", "Wrong item format: pine logs"),
        ("craft 4 pine plank using 1 pine_logs!", "Could not find enough items to craft minecraft:pine_plank"),
        ("craft 4 pine plank using 1 pine logs", "Crafted 4 minecraft:pine_plank"),
        ("craft 8 pine plank using 1 pine logs", "Crafted 4 minecraft:pine_plank"),  # the count asked is ignored
        ("inventory", "Inventory: [pine plank] (8) "),
        ("craft 1 workbench using 4 plank", "Could not find enough items to craft minecraft:workbench"),
        ("craft 1 workbench using 5 pine plank", "Could not find a valid recipe for ItemTagWithCount("
         "item_tag=ItemTag(tag=None, item_id='minecraft:workbench'), count=1)"),
        ("craft 4 plank using 1 pine plank", "Could not find a valid recipe for ItemTagWithCount("
         "item_tag=ItemTag(tag='minecraft:plank', item_id=None), count=4)"),
        ("dance", "Could not execute dance"),
    ]  # fmt: skip
    for action, expected in steps:
        out = env.step(action)
        assert (out.observation, out.done, out.reward) == (expected, False, 0.0), action
        assert out.info == (
            {} if expected.startswith(("Got", "Crafted", "Inventory")) else {"invalid": "true"}
        )
    out = env.step("craft 1 workbench using 4 pine plank")
    assert (out.observation, out.done, out.reward, out.success) == (
        "Crafted 1 minecraft:workbench",
        True,
        1.0,
        True,
    )


def test_our_rules_on_the_original_recipes(recipes: str) -> None:
    env = registry.make("textcraft", {"recipes": recipes})
    env.rng.seed(0)
    first = env.reset(GOALS.index("rod"), 0, {}).observation
    assert first.endswith("Goal: craft rod.") and "craft 4 rod using 2 plank" in first
    assert env.step("get 2 pine logs").observation == "Got 2 pine logs"
    assert (
        env.step("craft 8 pine plank using 2 pine logs").observation == "Crafted 8 pine plank"
    )  # two batches
    assert env.step("craft 4 rod using 2 pine plank").observation == "Crafted 4 rod"


# --- the expert ------------------------------------------------------------------------------------
@pytest.mark.parametrize("profile", ["", "agentgym"])
def test_expert_solves_every_task_on_the_original_recipes(recipes: str, source: str, profile: str) -> None:
    cls = profiled(source, recipes) if profile else registry.configure("textcraft", {"recipes": recipes})
    for task in range(cls.task_count):
        assert solve(cls(), task) <= cls.max_rounds


def test_profile_on_the_built_in_recipes(source: str) -> None:
    ours = list(registry.configure("textcraft", {}).goals)
    cls = profiled(source)
    # Task ids keep the built-in goal order.
    assert cls.task_set != "original" and cls.goals == ours
    env = cls()
    env.rng.seed(0)
    goal = cls.goals.index("crafting_table")
    assert "craft 1 crafting table using 4 planks" in env.reset(goal, 0, {}).observation
    assert env.step("get 1 oak log").observation == "Got 1 oak log"
    # The original's texts: a namespaced id after "Crafted", exact counts only.
    assert env.step("craft 4 oak planks using 1 oak log").observation == "Crafted 4 minecraft:oak_planks"
    assert env.step("craft 1 crafting table using 8 oak planks").observation.startswith(
        "Could not find enough items to craft minecraft:crafting_table"
    )
    for task in range(0, cls.task_count, 40):
        solve(cls(), task)


async def test_profile_over_a_real_server(recipes: str, source: str, start_server: StartServer) -> None:
    settings = {"profile": "agentgym", "agentgym_source": source, "recipes": recipes}
    srv = await start_server(envs=["textcraft"], env_settings={"textcraft": settings})
    async with EnvClient(f"127.0.0.1:{srv.port}") as client:
        info = await client.env_info("textcraft")
        assert (info.task_set, info.profile, info.task_count) == ("original", "agentgym", len(GOALS))
        for task, goal in enumerate(GOALS):
            async with client.episode("textcraft", task, seed=5) as ep:
                assert goal_of(ep.initial.observation) == goal.replace("_", " ")
                while not ep.over:
                    result = await ep.step(await ep.expert())
                    assert result.observation.startswith(("Got ", "Crafted ")), result
                assert result.success and result.observation.endswith(f" {NS}{goal}")
