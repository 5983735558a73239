"""Loading the original WebShop's data files (small ones in its format, written by the test)."""

from __future__ import annotations

import asyncio
import itertools
import random
import socket
import sys
import time
from pathlib import Path

import pytest

from agentgym.client.envclient import EnvClient
from agentgym.client.errors import AgentGymError
from agentgym.envs.webshop import original
from agentgym.envs.webshop.env import WebShop, open_catalog
from agentgym.envs.webshop.store import Catalog
from tests.envs.webshop_data import write_original_files


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    write_original_files(tmp_path)
    return tmp_path


def _files(data_dir: Path, human: bool = False) -> dict[str, Path]:
    return original.resolve_files(data_dir, {}, human)


def _env(catalog: Catalog) -> WebShop:
    cls = type("WebShopOnFiles", (WebShop,), {"catalog": catalog, "strict_search": False})
    return cls()


def test_products_are_converted_as_the_original_loader_does(data_dir: Path) -> None:
    products, _ = original.load(_files(data_dir), None, False)
    by_asin = {p["asin"]: p for p in products}
    assert len(products) == 24  # "nan", the repeated and the over-long ASIN are skipped
    assert "nan" not in by_asin and "B0TOOLONG123" not in by_asin
    assert by_asin["B0TEST0001"]["name"] != "duplicate"  # the first of a repeated ASIN wins
    shirt = by_asin["B0TEST0000"]
    assert shirt["options"] == {
        "color": ["black", "white", "navy | blue"],
        "size": ["small", "medium", "large"],
    }
    assert shirt["query"] == "men's shirts"  # lower-cased and stripped
    assert shirt["Rating"] == "N.A." and shirt["Reviews"] == []
    assert len(shirt["BulletPoints"]) == 1 and shirt["BulletPoints"][0].endswith(" design")  # a string
    assert by_asin["B0TEST0001"]["BulletPoints"][1] == "Easy returns"  # a list
    assert by_asin["B0TEST0001"]["options"] == {}  # customization_options null
    assert by_asin["B0TEST0006"]["options"] == {"style": ["pack | two"]}  # a null group is skipped
    assert by_asin["B0TEST0006"]["Price"] == "$100.0" and by_asin["B0TEST0006"]["price"] == 100.0
    assert by_asin["B0TEST0005"]["Attributes"] == ["DUMMY_ATTR"]
    ranged = by_asin["B0TEST0003"]
    low, high = (float(x) for x in ranged["Price"].lstrip("$").split(" to $"))
    assert low <= ranged["price"] <= high  # a range is bought at a fixed draw inside it
    assert original.load(_files(data_dir), None, False)[0] == products  # the draw is deterministic
    assert len(original.load(_files(data_dir), 10, False)[0]) == 10  # num_products


def test_price_parsing() -> None:
    assert original.parse_pricing("$12.99") == [12.99]
    assert original.parse_pricing("$1,299.00") == [1299.0]
    assert original.parse_pricing("$5.50$20.00") == [5.5, 20.0]
    assert original.parse_pricing("") == [] and original.parse_pricing(None) == []
    assert original.price_tag([12.99]) == "$12.99"
    assert original.price_tag([5.5, 20.0]) == "$5.5 to $20.0"


def test_synthetic_goals(data_dir: Path) -> None:
    products, goals = original.load(_files(data_dir), None, False)
    by_asin = {p["asin"]: p for p in products}
    attributes = original._read_json(data_dir / "items_ins_v2_1000.json")
    with_instruction = [p for p in products if "instruction" in attributes.get(p["asin"], {})]
    expected = sum(len(list(itertools.product(*p["options"].values()))) for p in with_instruction)
    assert len(goals) == expected > 0
    # Task order is the product-order list shuffled with the original's seed.
    unshuffled = original.synthetic_goals(products, attributes)
    random.Random(233).shuffle(unshuffled)
    assert goals == unshuffled
    for g in goals:
        product = by_asin[g["asin"]]
        instruction = attributes[g["asin"]]["instruction"]
        assert g["instruction_text"].startswith(instruction)
        assert g["attributes"] == attributes[g["asin"]]["instruction_attributes"]
        assert [n for n, _ in g["options"]] == sorted(product["options"])
        steps = [10.0 * i for i in range(1, 100) if 10.0 * i > product["price"]][:4]
        assert g["price_upper"] in steps[1:]  # the larger of two of the first four steps
        assert g["instruction_text"].endswith(f", and price lower than {g['price_upper']:.2f} dollars")
    shirt_goal = next(g for g in goals if g["asin"] == "B0TEST0000")
    assert (
        " with color: " in shirt_goal["instruction_text"] and ", and size: " in shirt_goal["instruction_text"]
    )


def test_human_goals(data_dir: Path) -> None:
    products, goals = original.load(_files(data_dir, human=True), None, True)
    by_asin = {p["asin"]: p for p in products}
    # Every product with index % 4 == 0 has one usable human instruction: four price bounds each.
    assert len(goals) == 4 * 6
    for g in goals:
        assert not g["instruction_text"].endswith(".")  # the original strips the final period
        steps = [10.0 * i for i in range(1, 100) if 10.0 * i > by_asin[g["asin"]]["price"]][:4]
        assert g["price_upper"] in steps
        assert all(name is None for name, _ in g["options"])
    uppers = sorted(g["price_upper"] for g in goals if g["asin"] == "B0TEST0000")
    assert len(set(uppers)) == 4


def test_missing_files_are_reported(tmp_path: Path) -> None:
    with pytest.raises(original.DataError, match="items_shuffle"):
        original.resolve_files(tmp_path, {}, False)
    with pytest.raises(ValueError, match="unknown webshop settings"):
        open_catalog({"data_dri": str(tmp_path)})


def test_catalog_from_files_is_searchable_and_solvable(data_dir: Path) -> None:
    catalog = open_catalog({"data_dir": str(data_dir)})
    assert catalog.num_products == 24
    assert list(data_dir.glob("webshop-original-*.sqlite")), "the index is cached next to the data"
    assert open_catalog({"data_dir": str(data_dir)}).path == catalog.path  # reused, not rebuilt
    assert catalog.search("Acme Slim Fit Button Down Shirt Model 0")[0] == "B0TEST0000"
    env = _env(catalog)
    for task in range(catalog.num_goals):
        env.reset(task, task, {})
        for _ in range(10):
            out = env.step(env.expert_action())
            if out.done:
                break
        assert out.done and out.reward == 1.0, (task, env.goal, out.info)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_loader_through_the_cli_server(data_dir: Path) -> None:
    # `agentgym serve --env-setting webshop.data_dir=...` in a process of its own: env settings
    # are per process, and this one must not inherit the default catalog other tests configured.
    port = _free_port()
    cli = Path(sys.executable).parent / "agentgym"
    args = [str(cli), "serve", "--port", str(port), "--envs", "webshop", "--grace", "0"]
    args += ["--env-setting", f"webshop.data_dir={data_dir}", "--env-setting", "webshop.human_goals=1"]
    proc = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    try:
        async with EnvClient(f"127.0.0.1:{port}") as client:
            deadline = time.monotonic() + 60
            while True:
                try:
                    info = await client.env_info("webshop")
                    break
                except AgentGymError:
                    assert proc.returncode is None, "server exited"
                    assert time.monotonic() < deadline, "server did not come up"
                    await asyncio.sleep(0.2)
            assert info.task_count == 24
            # The original's files, but human goals (AgentGym plays synthetic ones on 1,000 products).
            assert not info.original_tasks and "other settings than AgentGym's" in info.task_set
            for task in (0, 5, 23):
                async with client.episode("webshop", task) as ep:
                    assert ep.initial.observation.startswith("WebShop [SEP] Instruction: [SEP] i want ")
                    while not ep.over:
                        result = await ep.step(await ep.expert())
                    assert result.done and result.reward == 1.0
    finally:
        if proc.returncode is None:
            proc.terminate()
        await asyncio.wait_for(proc.communicate(), 30)
