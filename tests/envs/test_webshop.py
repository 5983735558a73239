"""WebShop on the generated catalog: pages, navigation, bad input, reward, expert, determinism,
in process and over a real server."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

from agentgym.client.conformance import Suite
from agentgym.client.envclient import EnvClient
from agentgym.envs import registry
from agentgym.envs.base import Outcome
from agentgym.envs.webshop import generate, store
from agentgym.envs.webshop.env import WebShop
from tests.conftest import StartServer


@pytest.fixture(scope="module")
def shop() -> type[WebShop]:
    cls = registry.configure("webshop")
    assert issubclass(cls, WebShop)
    return cls


def new_env(shop: type[WebShop], task: int = 0) -> tuple[WebShop, Outcome]:
    env = shop()
    return env, env.reset(task, task, {})


def run_expert(env: WebShop) -> list[Outcome]:
    outs = []
    for _ in range(env.max_rounds):
        outs.append(env.step(env.expert_action()))
        if outs[-1].done:
            break
    return outs


def test_metadata_and_splits(shop: type[WebShop]) -> None:
    assert shop.task_count == generate.DEFAULT_PRODUCTS * generate.GOALS_PER_PRODUCT
    assert shop.max_rounds == 10 and shop.success_threshold == 1.0
    covered = sorted(i for ranges in shop.splits.values() for r in ranges for i in r)
    assert covered == list(range(shop.task_count))
    assert shop.splits["test"] == [range(0, 500)] and shop.splits["dev"] == [range(500, 1500)]


def test_search_page(shop: type[WebShop]) -> None:
    env, first = new_env(shop, 7)
    instruction = env.goal["instruction_text"]
    assert first.observation == f"WebShop [SEP] Instruction: [SEP] {instruction} [SEP] Search"
    assert list(first.available_actions) == ["search[<keywords>]"]
    assert re.search(r", and price lower than \d+\.00 dollars$", instruction)


def test_results_pages(shop: type[WebShop]) -> None:
    env, _ = new_env(shop)
    out = env.step("search[Shampoo]")
    parts = out.observation.split(" [SEP] ")
    assert parts[0] == "Instruction:" and parts[2:5] == [
        "Back to Search",
        "Page 1 (Total results: 50)",
        "Next >",
    ]
    products = parts[5:]
    assert len(products) == 30  # ASIN, title, price for each of 10 products
    asins = products[0::3]
    assert all(re.fullmatch(r"B0[A-Z0-9]{8}", a) for a in asins)
    assert all(p.startswith("$") for p in products[2::3])
    assert list(out.available_actions) == [
        "click[back to search]",
        "click[next >]",
        *(f"click[{a.lower()}]" for a in asins),
    ]
    page2 = env.step("click[Next >]")
    assert "Page 2 (Total results: 50) [SEP] < Prev [SEP] Next >" in page2.observation
    assert page2.observation.split(" [SEP] ")[6] not in asins
    for _ in range(4):
        last = env.step("click[next >]")
    assert last.observation.endswith("Page 6 (Total results: 50) [SEP] < Prev [SEP] Next >")  # past the end
    assert env.step("click[< prev]").observation.count(" [SEP] $") == 10  # page 5 is full
    assert env.step("search[zzzzqqq]").observation.endswith("Page 1 (Total results: 0) [SEP] Next >")


def test_item_page_and_sub_pages(shop: type[WebShop]) -> None:
    env, _ = new_env(shop)
    results = env.step("search[shampoo]")
    asin = results.observation.split(" [SEP] ")[5]
    item = env.step(f"click[{asin}]")
    product = env.catalog.product(asin)
    assert product is not None
    expected = ["Instruction:", env.goal["instruction_text"], "Back to Search", "< Prev"]
    for name, values in product["options"].items():
        expected += [name, *values]
    expected += [product["Title"], f"Price: {product['Price']}", f"Rating: {product['Rating']}"]
    expected += ["Description", "Features", "Reviews", "Buy Now"]
    assert item.observation == " [SEP] ".join(expected)
    option_values = [v for vs in product["options"].values() for v in vs]
    assert list(item.available_actions) == [
        "click[back to search]",
        "click[< prev]",
        "click[description]",
        "click[features]",
        "click[reviews]",
        "click[buy now]",
        *(f"click[{v}]" for v in option_values),
    ]
    head = " [SEP] ".join(expected[:4])
    assert env.step("click[Description]").observation == f"{head} [SEP] {product['Description']}"
    assert env.step("click[< Prev]").observation == item.observation
    features = env.step("click[features]").observation
    assert features == " [SEP] ".join([head, *product["BulletPoints"]])
    env.step("click[< prev]")
    reviews = env.step("click[reviews]").observation
    review_parts = [x for r in product["Reviews"] for x in (f'"{r["title"]}"', str(r["score"]), r["body"])]
    assert reviews == " [SEP] ".join([head, *review_parts])
    assert list(env.step("click[< prev]").available_actions) == list(item.available_actions)
    assert env.step("click[< prev]").observation == results.observation  # back to the same results
    assert env.step("click[back to search]").observation.startswith("WebShop [SEP] Instruction:")


BAD_ACTIONS = [
    "buy it",
    "click[]",
    "click[nothing here]",
    "click[search]",
    "search[]",
    "Search[shampoo]",
    "click[buy now]",
    "click[next >]",
    "[shampoo]",
    "search shampoo",
    "click[b0",
    "x" * 5000,
    "click[🛒]",
]


def test_bad_actions_leave_the_page_unchanged(shop: type[WebShop]) -> None:
    env, first = new_env(shop, 3)
    for action in BAD_ACTIONS:
        out = env.step(action)
        assert (out.observation, out.done, out.reward) == (first.observation, False, 0.0), action
        assert out.info.get("invalid") == "true", action
    results = env.step("search[water bottle]")
    for action in ["click[< prev]", "click[description]", "click[buy now]", "click[B0NOTHERE0]"]:
        out = env.step(action)
        assert out.observation == results.observation and out.info.get("invalid") == "true", action


def test_search_from_any_page_unless_strict(shop: type[WebShop]) -> None:
    # The original text env searches from any page; strict_search limits it to the search page.
    env, _ = new_env(shop)
    env.step("search[shampoo]")
    out = env.step("search[water bottle]")
    assert "invalid" not in out.info and "Page 1 (Total results: " in out.observation
    strict_cls = type("StrictShop", (shop,), {"strict_search": True})
    strict = strict_cls()
    strict.reset(0, 0, {})
    results = strict.step("search[shampoo]")
    out = strict.step("search[water bottle]")
    assert out.observation == results.observation and out.info["invalid"] == "true"


def _open_target(env: WebShop) -> Outcome:
    """Follow the expert until the target's page is open."""
    while True:
        action = env.expert_action()
        out = env.step(action)
        if env.where == "item" and env.asin == env.goal["asin"]:
            return out


def test_partial_reward_for_a_wrong_option(shop: type[WebShop]) -> None:
    task = next(t for t in range(100) if len(shop.catalog.goal(t)["options"]) == 2)
    env, _ = new_env(shop, task)
    _open_target(env)
    (name, wanted), (_, wanted2) = env.goal["options"]
    product = env.catalog.product(env.goal["asin"])
    assert product is not None
    wrong = next(v for v in product["options"][name] if v != wanted and v.split()[-1] != wanted.split()[-1])
    env.step(f"click[{wrong}]")
    env.step(f"click[{wanted2}]")
    out = env.step("click[Buy Now]")
    n_attr = len(env.goal["attributes"])
    assert out.done and not out.success
    assert out.info["r_option"] == "1/2" and out.info["r_att"] == f"{n_attr}/{n_attr}"
    assert out.reward == pytest.approx((n_attr + 1 + 1) / (n_attr + 2 + 1))
    assert out.observation.startswith("Thank you for shopping with us! [SEP] Your code: [SEP] None")
    assert f"[SEP] asin [SEP] {env.goal['asin']} [SEP] options [SEP] {{" in out.observation
    assert out.observation.endswith(
        f"[SEP] Your score (min 0.0, max 1.0) [SEP] {out.reward!r} [SEP] Reward Details [SEP] None"
    )


def test_buying_another_product(shop: type[WebShop]) -> None:
    env, _ = new_env(shop, 11)
    env.step("search[usb flash drive]")
    results = env.step("search[hdmi cable]")
    asin = results.observation.split(" [SEP] ")[5]
    env.step(f"click[{asin.lower()}]")
    out = env.step("click[buy now]")
    assert out.done and 0.0 <= out.reward < 1.0 and out.info["asin"] == asin
    assert set(out.info) >= {"r_type", "r_att", "r_price", "title_score"}


def test_expert_solves_a_sample_in_process(shop: type[WebShop]) -> None:
    for task in random.Random(1).sample(range(shop.task_count), 150):
        env, _ = new_env(shop, task)
        outs = run_expert(env)
        assert outs[-1].done and outs[-1].reward == 1.0 and outs[-1].success, (task, outs[-1].info)
        assert len(outs) <= shop.max_rounds


def test_expert_recovers_from_a_detour(shop: type[WebShop]) -> None:
    env, _ = new_env(shop, 42)
    env.step("search[garden hose]")
    env.step("click[next >]")
    other = env.view.clickables
    env.step(f"click[{next(c for c, k in other.items() if k.kind == 'product')}]")
    env.step("click[reviews]")
    outs = []
    for _ in range(12):
        outs.append(env.step(env.expert_action()))
        if outs[-1].done:
            break
    assert outs[-1].reward == 1.0


def test_same_task_same_episode(shop: type[WebShop]) -> None:
    def trace(task: int) -> list[tuple[str, tuple[str, ...], float]]:
        env, first = new_env(shop, task)
        return [(o.observation, tuple(o.available_actions), o.reward) for o in [first, *run_expert(env)]]

    assert trace(123) == trace(123)
    assert trace(123) != trace(124)


def test_generated_catalog_is_deterministic() -> None:
    a = generate.generate(seed=5, n_products=150)
    assert a == generate.generate(seed=5, n_products=150)
    assert a != generate.generate(seed=6, n_products=150)
    products, goals = a
    assert len({p["asin"] for p in products}) == 150 and len(goals) == 300
    assert {p["category"] for p in products} == {"beauty", "electronics", "fashion", "food", "garden"}


def test_catalog_cache_rebuilds_when_its_source_changes(tmp_path: Path) -> None:
    products, goals = generate.generate(seed=5, n_products=30)
    built: list[str] = []

    def build(source: str):
        def write(path: Path) -> None:
            built.append(source)
            store.write_database(path, products, goals, source)

        return write

    first = store.cached_database("c.sqlite", "v1", build("v1"), [tmp_path])
    assert store.cached_database("c.sqlite", "v1", build("v1"), [tmp_path]) == first
    store.cached_database("c.sqlite", "v2", build("v2"), [tmp_path])
    assert built == ["v1", "v2"]
    assert store.Catalog(first).source == "v2" and store.Catalog(first).num_goals == 60
    assert not list(tmp_path.glob("*.tmp"))


# --- over the server ---------------------------------------------------------------------------
async def test_expert_over_the_server(start_server: StartServer, shop: type[WebShop]) -> None:
    srv = await start_server(envs=["webshop"], step_timeout_s=30.0)
    rng = random.Random(7)
    tasks = [
        *rng.sample(range(500), 8),
        *rng.sample(range(500, 1500), 8),
        *rng.sample(range(1500, 12000), 14),
    ]
    async with EnvClient(f"127.0.0.1:{srv.port}") as client:
        for task in tasks:
            async with client.episode("webshop", task) as ep:
                while not ep.over:
                    result = await ep.step(await ep.expert())
                assert result.done and result.success and result.reward == 1.0, (task, result.info)
                assert result.score == 1.0 and result.step_index <= 10


async def test_same_task_twice_over_the_server(start_server: StartServer, shop: type[WebShop]) -> None:
    srv = await start_server(envs=["webshop"], step_timeout_s=30.0)
    async with EnvClient(f"127.0.0.1:{srv.port}") as client:

        async def trace(task: int) -> list[tuple[str, tuple[str, ...], float]]:
            async with client.episode("webshop", task) as ep:
                steps = [ep.initial]
                while not ep.over:
                    steps.append(await ep.step(await ep.expert()))
                return [(s.observation, s.available_actions, s.reward) for s in steps]

        assert await trace(2024) == await trace(2024)


async def test_bad_actions_over_the_server(start_server: StartServer, shop: type[WebShop]) -> None:
    srv = await start_server(envs=["webshop"], step_timeout_s=30.0)
    async with EnvClient(f"127.0.0.1:{srv.port}") as client:
        async with client.episode("webshop", 5) as ep:
            for action in BAD_ACTIONS[:8]:
                out = await ep.step(action)
                assert out.observation == ep.initial.observation and out.info["invalid"] == "true"
            assert not out.over and out.step_index == 8
            out = await ep.step("search[pillows]")
            assert "Total results:" in out.observation and out.step_index == 9
            out = await ep.step("click[nonsense]")
            assert out.truncated and not out.done  # the tenth round ends the episode


@pytest.mark.parametrize("execution", ["thread", "process"])
async def test_conformance_suite(start_server: StartServer, shop: type[WebShop], execution: str) -> None:
    srv = await start_server(envs=["webshop"], step_timeout_s=30.0, execution={"webshop": execution})
    results = await Suite(f"127.0.0.1:{srv.port}").run()
    assert not [f"{r.name}: {r.detail}" for r in results if r.status == "FAIL"]
