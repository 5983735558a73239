"""The default catalog, generated deterministically from a seed so the env runs out of the box.

Products are spread evenly over the kinds in vocab.py (WebShop's five categories). Each gets a
brand, a title that names its kind and some of its attributes, a price (sometimes a range), 3-6
attributes (mostly typical of its kind), one value list per option group of its kind, a
description and feature lines that mention its attributes, and a few reviews.

Instructions (goals) follow the original's recipe: some of the product's attributes, one value
for every option group, and a price bound that is the larger of two of the first four multiples
of ten above its price; the sentence is one of several shopper phrasings, e.g.
"i need natural looking clip-in hair extensions in color ash blonde and size 18 inch, and price
lower than 40.00 dollars". Each product gets GOALS_PER_PRODUCT goals; the goal list, built in
product order, is shuffled with the original's seed (233), so task ids mix kinds and products.
"""

from __future__ import annotations

import random
import string
from collections.abc import Iterator, Sequence
from typing import Any

from agentgym.envs.webshop import vocab
from agentgym.envs.webshop.original import GOAL_SHUFFLE_SEED, price_tag, sampled_price
from agentgym.envs.webshop.reward import NO_PRICE_BOUND, PRICE_STEPS
from agentgym.envs.webshop.vocab import Kind

GENERATOR_VERSION = "1"
DEFAULT_SEED = 20220701
DEFAULT_PRODUCTS = 6000
GOALS_PER_PRODUCT = 2
# Words the shop's pages use as buttons: an option value must never equal one.
RESERVED = {"back to search", "< prev", "next >", "description", "features", "reviews", "buy now", "search"}


def _options(kind: Kind) -> list[tuple[str, tuple[str, ...]]]:
    return [vocab.OPTION_GROUPS[o] if isinstance(o, str) else o for o in kind.options]


def _title_case(phrase: str) -> str:
    return " ".join(w[:1].upper() + w[1:] for w in phrase.split())


def _price(rng: random.Random, low: float, high: float) -> float:
    return round(max(1.0, round(rng.uniform(low, high))) - rng.choice((0.01, 0.01, 0.05, 0.51)), 2)


class _Maker:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.brands = self._brands(600)
        self.asins: set[str] = set()
        # The attributes a product of each kind may have (a goal asks only for these).
        self.pools = {
            kind.query: (*kind.attributes, *vocab.COMMON_ATTRIBUTES[category])
            for category, kinds in vocab.KINDS.items()
            for kind in kinds
        }

    def _brands(self, n: int) -> list[str]:
        names: set[str] = set()
        while len(names) < n:
            names.add(
                self.rng.choice(vocab.BRAND_STARTS)
                + self.rng.choice(vocab.BRAND_MIDDLES)
                + self.rng.choice(vocab.BRAND_ENDS)
            )
        return sorted(names)

    def asin(self) -> str:
        while True:
            code = "B0" + "".join(self.rng.choices(string.ascii_uppercase + string.digits, k=8))
            if code not in self.asins:
                self.asins.add(code)
                return code

    def product(self, category: str, kind: Kind) -> dict[str, Any]:
        rng = self.rng
        asin = self.asin()
        brand = rng.choice(self.brands)
        typical = list(kind.attributes)
        own = rng.sample(typical, min(len(typical), rng.randint(2, 3)))
        own += rng.sample([a for a in vocab.COMMON_ATTRIBUTES[category] if a not in own], rng.randint(1, 3))
        options: dict[str, list[str]] = {}
        for name, values in _options(kind):
            k = min(len(values), rng.randint(2, 6))
            picked = set(rng.sample(values, k))
            options[name] = [v for v in values if v in picked]  # keep the vocabulary's order
        title = self._title(category, kind, brand, own)
        low = _price(rng, *kind.price)
        prices = [low] if rng.random() > 0.15 else [low, round(low * rng.uniform(1.15, 1.8), 2)]
        reviews = self._reviews()
        use = rng.choice(vocab.USES[category])
        description = self._description(kind, brand, own, use)
        bullets = self._bullets(kind, own, use)
        product = {
            "asin": asin,
            "name": title,
            "Title": title,
            "Description": description,
            "BulletPoints": bullets,
            "Reviews": reviews,
            "Rating": f"{sum(r['score'] for r in reviews) / len(reviews):.1f}" if reviews else "N.A.",
            "Price": price_tag(prices),
            "price": sampled_price(asin, prices),
            "options": options,
            "Attributes": own,
            "category": category,
            "query": kind.query,
            "product_category": kind.path,
        }
        self._check(product)
        return product

    def _title(self, category: str, kind: Kind, brand: str, own: list[str]) -> str:
        rng = self.rng
        shown = [_title_case(a) for a in rng.sample(own, min(len(own), rng.randint(1, 2)))]
        audience = vocab.AUDIENCES.get(category)
        tail = rng.choice(audience) if audience and rng.random() < 0.4 else rng.choice(vocab.SERIES)
        style = rng.randrange(3)
        if style == 0:
            return f"{brand} {shown[0]} {kind.title} {tail}"
        if style == 1:
            return f"{brand} {kind.title}, {' and '.join(shown)} - {tail}"
        return f"{kind.title} by {brand}, {', '.join(shown)} ({tail})"

    def _description(self, kind: Kind, brand: str, own: list[str], use: str) -> str:
        rng = self.rng
        lines = [f"The {brand} {kind.title.lower()} is made for {use}."]
        for attribute in own:
            lines.append(
                rng.choice(
                    (
                        f"Shoppers pick it for being {attribute}.",
                        f"Key feature: {attribute}.",
                        f"It stands out as {attribute} compared with similar items.",
                    )
                )
            )
        lines.append(rng.choice(("Backed by a 30-day return policy.", "Ships in recyclable packaging.", "")))
        return " ".join(line for line in lines if line)

    def _bullets(self, kind: Kind, own: list[str], use: str) -> list[str]:
        rng = self.rng
        noun = kind.title.lower()
        bullets = [
            f"{a.upper()} - {a.capitalize()} {noun}, ready for {use}." for a in rng.sample(own, len(own))
        ]
        bullets.append(
            rng.choice(
                ("WHAT YOU GET: the item and a quick start card.", "SUPPORT: friendly customer service.")
            )
        )
        return bullets

    def _reviews(self) -> list[dict[str, Any]]:
        rng = self.rng
        out = []
        for _ in range(rng.choice((0, 1, 2, 2, 3, 4))):
            score = rng.choice((5, 5, 5, 4, 4, 3, 2, 1))
            out.append(
                {
                    "title": rng.choice(vocab.REVIEW_TITLES[score]),
                    "score": score,
                    "body": rng.choice(vocab.REVIEW_BODIES[score]),
                }
            )
        return out

    def _check(self, product: dict[str, Any]) -> None:
        """Guard the generator's promises: option values are unique and never a button's name, and
        the product's text names no attribute of its kind that it does not have (the reward would
        count it, and every product of the kind would match a goal asking for it)."""
        values = [v for vs in product["options"].values() for v in vs]
        assert len(values) == len(set(values)), product["asin"]
        assert not RESERVED & set(values), product["asin"]
        text = " ".join([product["Title"], *product["BulletPoints"], product["Description"]]).lower()
        for attribute in self.pools[product["query"]]:
            if attribute in text and attribute not in product["Attributes"]:
                inside_own = any(attribute in own for own in product["Attributes"])
                assert inside_own, f"{product['asin']}: text names attribute {attribute!r}"

    # --- goals --------------------------------------------------------------------------------
    def goals(self, product: dict[str, Any], kind: Kind, n: int) -> Iterator[dict[str, Any]]:
        rng = self.rng
        seen: set[tuple] = set()
        tries = 0
        while len(seen) < n and tries < 50:
            tries += 1
            k = min(len(product["Attributes"]), rng.choice((1, 2, 2, 3)))
            attributes = rng.sample(product["Attributes"], k)
            pairs = [[name, rng.choice(values)] for name, values in product["options"].items()]
            key = (tuple(sorted(attributes)), tuple(v for _, v in pairs))
            if key in seen:
                continue
            seen.add(key)
            steps = [p for p in PRICE_STEPS if p > product["price"]][:4]
            if len(steps) >= 2:
                upper = sorted(rng.sample(steps, 2))[1]
                price_text = f", and price lower than {upper:.2f} dollars"
            else:
                upper, price_text = NO_PRICE_BOUND, ""
            text = self._instruction(kind, attributes, pairs) + price_text
            yield {
                "asin": product["asin"],
                "instruction_text": text,
                "attributes": attributes,
                "options": pairs,
                "price_upper": upper,
                "query": product["query"],
                "category": product["category"],
                "product_category": product["product_category"],
                "name": product["name"],
            }

    def _instruction(self, kind: Kind, attributes: Sequence[str], pairs: Sequence[Sequence[str]]) -> str:
        rng = self.rng
        joined = (
            attributes[0] if len(attributes) == 1 else ", ".join(attributes[:-1]) + " and " + attributes[-1]
        )
        listed = ", ".join(attributes)
        if not pairs:
            options = ""
        elif rng.random() < 0.5:
            options = " with " + ", and ".join(f"{n}: {v}" for n, v in pairs)
        else:
            options = " in " + " and ".join(f"{n.split()[0]} {v}" for n, v in pairs)
        bare = kind.bare
        return rng.choice(
            (
                f"i need {bare} with {joined}{options}",
                f"i am looking for {listed} {bare}{options}",
                f"find me {listed} {bare}{options}",
                f"i want to buy {bare} featuring {joined}{options}",
                f"looking for {bare}, {listed}{options}",
                f"i would like some {listed} {bare}{options}",
            )
        )


def generate(seed: int = DEFAULT_SEED, n_products: int = DEFAULT_PRODUCTS) -> tuple[list, list]:
    """(products in catalog order, goals in task order)."""
    maker = _Maker(seed)
    kinds = [(category, kind) for category, ks in sorted(vocab.KINDS.items()) for kind in ks]
    products, goals = [], []
    for i in range(n_products):
        category, kind = kinds[i % len(kinds)]
        product = maker.product(category, kind)
        products.append(product)
        goals.extend(maker.goals(product, kind, GOALS_PER_PRODUCT))
    # Catalog order mixes kinds like a scraped list; goal order is shuffled as the original does.
    order = list(range(len(products)))
    random.Random(seed + 1).shuffle(order)
    products = [products[i] for i in order]
    random.Random(GOAL_SHUFFLE_SEED).shuffle(goals)
    return products, goals
