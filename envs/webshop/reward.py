"""WebShop's purchase reward (Yao et al. 2022, section 3.2), re-implemented from its definition.

    reward = r_type * (attributes matched + options matched + [price <= bound])
                    / (goal attributes + goal options + 1)

- attribute matched: a goal attribute fuzzily equals one of the product's attributes (token-set
  ratio above 85), or appears verbatim in its title, features or description;
- option matched: a goal option value fuzzily equals one of the chosen option values (token-set
  ratio above 85), after both are reduced to the first colour word they contain;
- r_type, the product-type gate: 1 when the bought product shares the goal's search query, at
  least two of its category path levels, or more than 20% of the nouns of its name; 0.5 when none
  of these holds; capped at 0.1 when under 10% of the name's nouns are shared, and 0 when none is.

Fuzzy scores follow `thefuzz` (which the original uses): strings are lower-cased, stripped of
Latin-1 accents and punctuation, and the score is rounded to an integer before the comparison.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from rapidfuzz import fuzz
from rapidfuzz.utils import default_process

from agentgym.envs.webshop.nouns import nouns

# The colour words the original reduces option values to (first one contained wins, in this order).
COLOR_SET = (
    "alabaster apricot aqua ash asphalt azure banana beige black blue blush bordeaux bronze brown "
    "burgundy camel camo caramel champagne charcoal cheetah chestnut chocolate christmas coffee "
    "cognac copper coral cranberry cream crystal dark denim eggplant elephant espresso fuchsia gold "
    "granite grape graphite grass gray green grey heather indigo ivory ivy khaki lavender lemon "
    "leopard light lilac lime magenta maroon mauve merlot midnight mint mocha multicolor mushroom "
    "mustard natural navy nude olive orange peach pewter pink plum purple rainbow red rose royal "
    "rust sand sapphire seashell silver skull slate steel stone stonewash sunflower tan taupe teal "
    "tiger turquoise violet walnut wheat white wine yellow"
).split()

# Goal price bounds are the multiples of ten up to 990 dollars.
PRICE_STEPS = tuple(10.0 * i for i in range(1, 100))
# The bound used when a goal has no price clause.
NO_PRICE_BOUND = 1_000_000.0
FUZZY_THRESHOLD = 85
CATEGORY_SEPARATOR = "›"

_LATIN1_HIGH = {i: None for i in range(128, 256)}


def _process(s: str) -> str:
    return default_process(s.translate(_LATIN1_HIGH))


def fuzzy_score(a: str, b: str) -> int:
    """Token-set similarity 0-100, as thefuzz's `token_set_ratio` computes it."""
    pa, pb = _process(a), _process(b)
    if not pa or not pb:
        return 0
    return round(fuzz.token_set_ratio(pa, pb))


def normalize_color(value: str) -> str:
    """The first colour word contained in `value`, or `value` itself."""
    for color in COLOR_SET:
        if color in value:
            return color
    return value


@dataclass(frozen=True, slots=True)
class TypeMatch:
    r_type: float
    query_match: bool
    category_match: bool
    title_score: float


def type_match(
    product_query: str,
    product_category: str,
    product_name: str,
    goal_query: str,
    goal_category: str,
    goal_name: str,
) -> TypeMatch:
    query_match = product_query == goal_query
    bought_levels = {level.strip() for level in product_category.split(CATEGORY_SEPARATOR)}
    goal_levels = {level.strip() for level in goal_category.split(CATEGORY_SEPARATOR)}
    category_match = len(bought_levels & goal_levels) >= 2
    wanted = nouns(goal_name)
    title_score = len(nouns(product_name) & wanted) / len(wanted) if wanted else 0.2
    r_type = 1.0
    if not (query_match or category_match or title_score > 0.2):
        r_type = 0.5
    if title_score < 0.1:
        r_type = 0.1
    if title_score == 0.0:
        r_type = 0.0
    return TypeMatch(r_type, query_match, category_match, title_score)


def attribute_matches(
    goal_attributes: Sequence[str],
    attributes: Sequence[str],
    title: str,
    bullet_points: Sequence[str],
    description: str,
) -> int:
    """How many goal attributes the product has (in its attribute list, or in its text)."""
    title_l, bullets_l, description_l = title.lower(), " ".join(bullet_points).lower(), description.lower()
    count = 0
    for wanted in goal_attributes:
        if any(fuzzy_score(have, wanted) > FUZZY_THRESHOLD for have in attributes) or (
            wanted in title_l or wanted in bullets_l or wanted in description_l
        ):
            count += 1
    return count


def option_matches(goal_values: Iterable[str], chosen_values: Iterable[str]) -> int:
    """How many goal option values are among the chosen ones (fuzzily, colours reduced)."""
    chosen = [normalize_color(v) for v in chosen_values]
    return sum(
        any(fuzzy_score(c, g) > FUZZY_THRESHOLD for c in chosen)
        for g in (normalize_color(v) for v in goal_values)
    )


@dataclass(frozen=True, slots=True)
class Reward:
    total: float
    type: TypeMatch
    attributes_matched: int
    attributes_wanted: int
    options_matched: int
    options_wanted: int
    price_ok: bool

    def info(self) -> dict[str, str]:
        """Components for the step's info map (short strings)."""
        out = {
            "r_type": f"{self.type.r_type:g}",
            "r_att": f"{self.attributes_matched}/{self.attributes_wanted}",
            "r_price": str(self.price_ok).lower(),
            "query_match": str(self.type.query_match).lower(),
            "category_match": str(self.type.category_match).lower(),
            "title_score": f"{self.type.title_score:.4g}",
        }
        if self.options_wanted:
            out["r_option"] = f"{self.options_matched}/{self.options_wanted}"
        return out


def purchase_reward(product: Mapping, goal: Mapping, price: float, chosen: Mapping[str, str]) -> Reward:
    """Score buying `product` at `price` with options `chosen` (name -> value) against `goal`.

    `product` needs query, product_category, name, Attributes, Title, BulletPoints, Description;
    `goal` needs query, product_category, name, attributes, options ([name, value] pairs) and
    price_upper.
    """
    kind = type_match(
        product["query"],
        product["product_category"],
        product["name"],
        goal["query"],
        goal["product_category"],
        goal["name"],
    )
    wanted_attrs = goal["attributes"]
    n_attr = attribute_matches(
        wanted_attrs, product["Attributes"], product["Title"], product["BulletPoints"], product["Description"]
    )
    goal_values = [value for _, value in goal["options"]]
    n_opt = option_matches(goal_values, chosen.values())
    price_ok = price <= goal["price_upper"]
    total = (n_attr + n_opt + int(price_ok)) / (len(wanted_attrs) + len(goal_values) + 1) * kind.r_type
    return Reward(total, kind, n_attr, len(wanted_attrs), n_opt, len(goal_values), price_ok)
