"""Load the original WebShop data files (for users who have them) into catalog rows and goals.

Files, in `data_dir` (names as the original ships them; override with the `products`,
`attributes` and `human_instructions` settings):

- `items_shuffle_1000.json` (or the full `items_shuffle.json`): a JSON list of scraped products.
  Fields read: `asin`, `name`, `full_description`, `small_description` (a string or a list),
  `pricing` (a string such as "$12.99" or "$12.99$15.99", empty when unknown),
  `customization_options` ({option name: [{"value": ..., "image": ...}, ...]} or null),
  `category`, `query`, `product_category` ("A › B › C"). Other fields are ignored.
- `items_ins_v2_1000.json` (or `items_ins_v2.json`): {asin: {"attributes": [...],
  "instruction": "Find me ...", "instruction_attributes": [...]}}; the last two only for products
  that have a synthetic instruction.
- `items_human_ins.json`: {asin: [{"instruction": ..., "instruction_attributes": [...],
  "instruction_options": [...]}, ...]}, used when `human_goals` is on.

Semantics kept from the original loader: the first `num_products` products (AgentGym uses 1,000);
ASINs that are "nan", longer than 10 characters or repeated are skipped; option names and values
are lower-cased and "/" in a value becomes " | "; a product without attributes gets the attribute
"DUMMY_ATTR"; a product without a price costs $100.0; a price range "$a to $b" is bought at a price
drawn uniformly in the range (the original draws it afresh at every start; here it is drawn once,
seeded by the ASIN, so runs agree). Reviews are not loaded (the original leaves them out too).

Goals (task ids), as the original builds them:
- synthetic (the default, and what AgentGym serves): for every product with an instruction, one
  goal per combination of its option values (option names sorted), the instruction followed by
  " with name: value, and name: value" and ", and price lower than X dollars", where X is the
  larger of two of the first four multiples of ten above the price, drawn from a generator seeded
  with 233 (no price clause when fewer than two such multiples exist);
- human: for every human instruction with attributes, four goals whose bounds are the first four
  multiples of ten above the price;
then the list is shuffled with a generator seeded with 233, so task id i is the original's
session i.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from agentgym.envs.webshop.reward import NO_PRICE_BOUND, PRICE_STEPS

LOADER_VERSION = "1"
GOAL_SHUFFLE_SEED = 233

DEFAULT_PRODUCT_FILES = ("items_shuffle_1000.json", "items_shuffle.json")
DEFAULT_ATTRIBUTE_FILES = ("items_ins_v2_1000.json", "items_ins_v2.json")
DEFAULT_HUMAN_FILE = "items_human_ins.json"


class DataError(ValueError):
    """The data directory or a file in it is missing or malformed."""


def _pick(data_dir: Path, name: str | None, defaults: tuple[str, ...]) -> Path:
    candidates = (name,) if name else defaults
    for candidate in candidates:
        path = data_dir / candidate
        if path.is_file():
            return path
    raise DataError(f"{data_dir}: none of {', '.join(candidates)} found")


def resolve_files(data_dir: Path, settings: Mapping[str, str], human_goals: bool) -> dict[str, Path]:
    files = {
        "products": _pick(data_dir, settings.get("products"), DEFAULT_PRODUCT_FILES),
        "attributes": _pick(data_dir, settings.get("attributes"), DEFAULT_ATTRIBUTE_FILES),
    }
    if human_goals:
        files["human"] = _pick(data_dir, settings.get("human_instructions"), (DEFAULT_HUMAN_FILE,))
    return files


def fingerprint(files: Mapping[str, Path], num_products: int | None, human_goals: bool) -> str:
    """Identifies a build: the files (path, size, modification time) and the loading options."""
    parts = [f"loader={LOADER_VERSION}", f"num_products={num_products}", f"human={human_goals}"]
    for key in sorted(files):
        st = files[key].stat()
        parts.append(f"{key}={files[key].resolve()}:{st.st_size}:{st.st_mtime_ns}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def parse_pricing(pricing: Any) -> list[float]:
    """Prices in a product's `pricing` field: one price, or the ends of a range."""
    if not pricing:
        return []
    pieces = pricing.split("$")[1:] if isinstance(pricing, str) else [str(p) for p in pricing]
    prices = []
    for piece in pieces:
        digits = re.sub(r"[^\d.]", "", piece)
        try:
            prices.append(float(Decimal(digits)))
        except InvalidOperation:
            continue
    return prices[:2]


def price_tag(prices: list[float]) -> str:
    if not prices:
        return "$100.0"
    if len(prices) == 1:
        return f"${prices[0]}"
    return f"${prices[0]} to ${prices[1]}"


def sampled_price(asin: str, prices: list[float]) -> float:
    """The price a product is bought at (a range gets a fixed draw inside it)."""
    if not prices:
        return 100.0
    if len(prices) == 1:
        return prices[0]
    return random.Random(f"webshop-price:{asin}").uniform(prices[0], prices[1])


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def convert_product(raw: Mapping[str, Any], attributes: Mapping[str, Any]) -> dict[str, Any]:
    """One product in the catalog's form from a raw `items_shuffle` entry."""
    asin = raw["asin"]
    prices = parse_pricing(raw.get("pricing"))
    options: dict[str, list[str]] = {}
    for option_name, contents in (raw.get("customization_options") or {}).items():
        if contents is None:
            continue
        options[option_name.lower()] = [str(c["value"]).strip().replace("/", " | ").lower() for c in contents]
    small = raw.get("small_description")
    bullets = [_as_text(b) for b in small] if isinstance(small, list) else [_as_text(small)]
    entry = attributes.get(asin) or {}
    return {
        "asin": asin,
        "name": _as_text(raw.get("name")),
        "Title": _as_text(raw.get("name")),
        "Description": _as_text(raw.get("full_description")),
        "BulletPoints": bullets,
        "Reviews": [],
        "Rating": "N.A.",
        "Price": price_tag(prices),
        "price": sampled_price(asin, prices),
        "options": options,
        "Attributes": entry.get("attributes") or ["DUMMY_ATTR"],
        "category": _as_text(raw.get("category")),
        "query": _as_text(raw.get("query")).lower().strip(),
        "product_category": _as_text(raw.get("product_category")),
    }


def _goal(product: Mapping[str, Any], text: str, attributes: list[str], options: list, upper: float) -> dict:
    return {
        "asin": product["asin"],
        "instruction_text": text,
        "attributes": attributes,
        "options": options,
        "price_upper": upper,
        "query": product["query"],
        "category": product["category"],
        "product_category": product["product_category"],
        "name": product["name"],
    }


def _steps_above(price: float) -> list[float]:
    return [p for p in PRICE_STEPS if p > price][:4]


def synthetic_goals(products: list[dict], attributes: Mapping[str, Any]) -> list[dict]:
    rng = random.Random(GOAL_SHUFFLE_SEED)
    goals = []
    for product in products:
        entry = attributes.get(product["asin"]) or {}
        instruction = entry.get("instruction")
        if instruction is None:
            continue
        steps = _steps_above(product["price"])
        if len(steps) >= 2:
            upper = sorted(rng.sample(steps, 2))[1]
            price_text = f", and price lower than {upper:.2f} dollars"
        else:
            upper, price_text = NO_PRICE_BOUND, ""
        names = sorted(product["options"])
        for combination in itertools.product(*(product["options"][n] for n in names)):
            pairs = list(zip(names, combination, strict=True))
            option_text = ", and ".join(f"{n}: {v}" for n, v in pairs)
            option_text = f" with {option_text}" if option_text else ""
            goals.append(
                _goal(
                    product,
                    f"{instruction}{option_text}{price_text}",
                    list(entry.get("instruction_attributes") or []),
                    [list(p) for p in pairs],
                    upper,
                )
            )
    return goals


def human_goals(products: list[dict], human: Mapping[str, Any]) -> list[dict]:
    goals = []
    for product in products:
        for item in human.get(product["asin"]) or []:
            attributes = list(item.get("instruction_attributes") or [])
            if not attributes:
                continue
            steps = _steps_above(product["price"])
            options = [[None, str(v)] for v in item.get("instruction_options") or []]
            text = str(item["instruction"]).strip(".")
            for i in range(4):
                if len(steps) >= 2:
                    if i >= len(steps):
                        continue
                    upper = steps[i]
                    price_text = f", and price lower than {upper:.2f} dollars"
                else:
                    upper, price_text = NO_PRICE_BOUND, ""
                goals.append(_goal(product, text + price_text, attributes, options, upper))
    return goals


def _read_json(path: Path) -> Any:
    try:
        with path.open(encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from exc


def load(files: Mapping[str, Path], num_products: int | None, use_human_goals: bool) -> tuple[list, list]:
    """(products, goals in task order) from the original's files."""
    raw_products = _read_json(files["products"])
    attributes = _read_json(files["attributes"])
    if not isinstance(raw_products, list) or not isinstance(attributes, dict):
        raise DataError("the products file must hold a JSON list and the attributes file an object")
    if num_products is not None:
        raw_products = raw_products[:num_products]
    seen: set[str] = set()
    products = []
    for raw in raw_products:
        asin = str(raw.get("asin", "nan"))
        if asin == "nan" or len(asin) > 10 or asin in seen:
            continue
        seen.add(asin)
        try:
            products.append(convert_product(raw, attributes))
        except (KeyError, TypeError, AttributeError) as exc:
            raise DataError(f"{files['products']}: product {asin} is malformed: {exc!r}") from exc
    if use_human_goals:
        human = _read_json(files["human"])
        if not isinstance(human, dict):
            raise DataError(f"{files['human']} must hold a JSON object")
        goals = human_goals(products, human)
    else:
        goals = synthetic_goals(products, attributes)
    random.Random(GOAL_SHUFFLE_SEED).shuffle(goals)
    return products, goals
