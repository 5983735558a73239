"""Small data files in the original WebShop's formats, written by the tests (the real ones are a
separate download): items_shuffle_1000.json, items_ins_v2_1000.json, items_human_ins.json."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

KINDS = [
    # query, category, product_category, noun, attributes, options
    (
        "men's shirts",
        "fashion",
        "Clothing, Shoes & Jewelry › Men › Clothing › Shirts › Casual Button-Down Shirts",
        "Button Down Shirt",
        ["slim fit", "long sleeve", "machine wash", "button closure"],
        {"Color": ["Black", "White", "Navy/Blue"], "Size": ["Small", "Medium", "Large"]},
    ),
    (
        "shampoo",
        "beauty",
        "Beauty & Personal Care › Hair Care › Shampoo & Conditioner › Shampoos",
        "Shampoo",
        ["sulfate free", "dry hair", "tea tree", "natural ingredients"],
        {"Scent": ["Lavender", "Tea Tree Mint"], "Size": ["8 Fl Oz", "16 Fl Oz"]},
    ),
    (
        "wireless headphones",
        "electronics",
        "Electronics › Headphones, Earbuds & Accessories › Headphones › Over-Ear Headphones",
        "Bluetooth Headphones",
        ["noise cancelling", "wireless bluetooth", "long battery", "carrying case"],
        {"Color": ["Black", "Silver"]},
    ),
]
BRANDS = ["Acme", "Borla", "Cantu", "Dorvo", "Elmo", "Farn", "Gizo", "Hollis"]


def _product(rng: random.Random, i: int, kind: tuple) -> tuple[dict[str, Any], list[str]]:
    query, category, path, noun, attributes, options = kind
    asin = f"B0TEST{i:04d}"
    own = rng.sample(attributes, 3)
    name = f"{BRANDS[i % len(BRANDS)]} {own[0].title()} {noun} Model {i}"
    price = f"${rng.randint(5, 90)}.99"
    if i % 7 == 3:
        price = f"${rng.randint(5, 20)}.50${rng.randint(25, 60)}.00"  # a range
    custom = {
        name: [{"value": v, "image": f"https://example.invalid/{asin}/{v}.jpg"} for v in values]
        for name, values in options.items()
    }
    raw = {
        "asin": asin,
        "name": name,
        "full_description": f"{name}. Great for {own[1]} and {own[2]}.",
        "small_description": [f"{own[0]} design", "Easy returns"] if i % 2 else f"{own[0]} design",
        "pricing": price,
        "customization_options": custom,
        "images": [f"https://example.invalid/{asin}.jpg"],
        "category": category,
        "query": f" {query.upper()} ",
        "product_category": path,
        "brand": BRANDS[i % len(BRANDS)],  # ignored by the loader
        "total_reviews": 3,
    }
    return raw, own


def write_original_files(directory: Path, n: int = 24, seed: int = 0) -> dict[str, Any]:
    """Write the three files and return what a loader should make of them."""
    rng = random.Random(seed)
    products, attributes, human = [], {}, {}
    for i in range(n):
        raw, own = _product(rng, i, KINDS[i % len(KINDS)])
        products.append(raw)
        entry: dict[str, Any] = {"attributes": own}
        if i % 3 != 2:  # two thirds have a synthetic instruction
            entry["instruction"] = f"Find me {own[0]}, {own[1]} {KINDS[i % len(KINDS)][0]}"
            entry["instruction_attributes"] = own[:2]
        if i != 5:  # one product without an attributes entry gets DUMMY_ATTR
            attributes[raw["asin"]] = entry
        if i % 4 == 0:
            values = [v["value"].lower() for vs in raw["customization_options"].values() for v in vs[:1]]
            human[raw["asin"]] = [
                {
                    "asin": raw["asin"],
                    "instruction": f"i want {own[0]} {KINDS[i % len(KINDS)][0]} in {' and '.join(values)}.",
                    "instruction_attributes": own[:1],
                    "instruction_options": values,
                },
                {"asin": raw["asin"], "instruction": "no attributes here", "instruction_attributes": [],
                 "instruction_options": []},
            ]  # fmt: skip
    # Entries the loader must skip: a "nan" ASIN, a repeated ASIN, an over-long ASIN.
    products.append({**products[0], "asin": "nan"})
    products.append({**products[1], "name": "duplicate"})
    products.append({**products[2], "asin": "B0TOOLONG123"})
    # Edge cases of the raw format.
    products[1]["customization_options"] = None
    products[6]["pricing"] = ""
    products[6]["customization_options"] = {"Color": None, "Style": [{"value": " Pack/Two "}]}
    (directory / "items_shuffle_1000.json").write_text(json.dumps(products))
    (directory / "items_ins_v2_1000.json").write_text(json.dumps(attributes))
    (directory / "items_human_ins.json").write_text(json.dumps(human))
    return {"products": products[:n], "attributes": attributes, "human": human}
