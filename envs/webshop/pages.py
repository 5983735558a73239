"""The shop's pages as the original's text observations, with what can be clicked on each.

The original renders HTML pages and turns them into text by joining their visible strings with
" [SEP] ". The strings, in page order:

- search:   WebShop, Instruction:, <instruction>, Search
- results:  Instruction:, <instruction>, Back to Search, Page N (Total results: T), [< Prev],
            Next >, then per product: <ASIN>, <title>, <price>     (< Prev only after page 1;
            Next > always)
- item:     Instruction:, <instruction>, Back to Search, < Prev, then per option group: <name>,
            <values...>, then <title>, Price: <price>, Rating: <rating>, Description, Features,
            Reviews, Buy Now
- sub page: Instruction:, <instruction>, Back to Search, < Prev, then the description, the
            feature lines, or per review: "<title>", <score>, <body>
- done:     the thank-you page with the purchase and the score.

Clickables are lower-cased: buttons, then product ASINs, then option values.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

SEP = " [SEP] "
PRODUCTS_PER_PAGE = 10

BACK_TO_SEARCH = "Back to Search"
NEXT_PAGE = "Next >"
PREV_PAGE = "< Prev"
BUY_NOW = "Buy Now"
SUB_PAGES = ("Description", "Features", "Reviews")


@dataclass(frozen=True, slots=True)
class Clickable:
    kind: str  # "button", "product" or "option"
    target: str = ""  # a product's ASIN, or an option value's group


@dataclass(frozen=True, slots=True)
class Page:
    text: str
    # Lower-cased clickable text -> what it is, in page order (later entries win on a clash, as
    # in the original's dictionary).
    clickables: Mapping[str, Clickable]
    has_search_bar: bool = False


def _join(parts: Sequence[str]) -> str:
    # Blank strings are not text on the original's pages, so they leave no separator either.
    return SEP.join(p.strip() for p in parts if p.strip())


def _buttons(*names: str) -> dict[str, Clickable]:
    return {n.lower(): Clickable("button") for n in names}


def search_page(instruction: str) -> Page:
    return Page(_join(["WebShop", "Instruction:", instruction, "Search"]), _buttons("Search"), True)


def results_page(instruction: str, products: Sequence[Mapping], page: int, total: int) -> Page:
    parts = ["Instruction:", instruction, BACK_TO_SEARCH, f"Page {page} (Total results: {total})"]
    nav = [PREV_PAGE, NEXT_PAGE] if page > 1 else [NEXT_PAGE]
    parts += nav
    clickables = _buttons(BACK_TO_SEARCH, *nav)
    for p in products:
        parts += [p["asin"], p["Title"], p["Price"]]
    for p in products:
        clickables[p["asin"].lower()] = Clickable("product", p["asin"])
    return Page(_join(parts), clickables)


def item_page(instruction: str, product: Mapping) -> Page:
    parts = ["Instruction:", instruction, BACK_TO_SEARCH, PREV_PAGE]
    for name, values in product["options"].items():
        parts += [name, *values]
    parts += [product["Title"], f"Price: {product['Price']}", f"Rating: {product['Rating']}"]
    parts += [*SUB_PAGES, BUY_NOW]
    clickables = _buttons(BACK_TO_SEARCH, PREV_PAGE, *SUB_PAGES, BUY_NOW)
    for name, values in product["options"].items():
        for value in values:
            clickables[value] = Clickable("option", name)
    return Page(_join(parts), clickables)


def sub_page(instruction: str, product: Mapping, which: str) -> Page:
    parts = ["Instruction:", instruction, BACK_TO_SEARCH, PREV_PAGE]
    if which == "Description":
        parts.append(product["Description"])
    elif which == "Features":
        parts += product["BulletPoints"]
    else:
        for review in product["Reviews"]:
            parts += [f'"{review["title"]}"', str(review["score"]), review["body"]]
    return Page(_join(parts), _buttons(BACK_TO_SEARCH, PREV_PAGE))


def _html_safe_json(value: object) -> str:
    """JSON as the original's template filter writes it: sorted keys, <>&' escaped."""
    text = json.dumps(value, sort_keys=True)
    for ch, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("'", "\\u0027")):
        text = text.replace(ch, escape)
    return text


def done_page(asin: str, options: Mapping[str, str], reward: float) -> Page:
    # The original's page also has hidden debugging fields, which its text shows as empty or None.
    parts = [
        "Thank you for shopping with us!", "Your code:", "None", "(Paste it in your MTurk interface.)",
        "Purchased", "asin", asin, "options", _html_safe_json(dict(options)),
        "attrs", "None", "category", "None", "query", "None", "product category", "None",
        "Target", "asin", "options", "attrs", "price upper", "instuction text", "category",
        "product category", "query", "Goal", "None", "Reward",
        "Your score (min 0.0, max 1.0)", repr(float(reward)), "Reward Details", "None",
    ]  # fmt: skip
    return Page(_join(parts), {})
