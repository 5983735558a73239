"""WebShop (Yao et al. 2022; AgentGym's `agentenv-webshop`): buy the product an instruction asks for.

The episode is a browsing session on a text shop: a search page, search results (10 per page, top
50 hits of a BM25 search), product pages with option groups, description / features / reviews
pages, and a purchase. Actions are `search[keywords]` and `click[text]`; clicked text is matched
case-insensitively against the page's clickables. As in the original text environment, an action
that does not apply (bad syntax, text not on the page, `click[search]`) leaves the page as it is
and returns it again, and `search[...]` works from any page (the original does not check for the
search bar; the setting `strict_search=1` limits it to the search page). `click[Buy Now]` ends the
episode with the original's reward in [0, 1] (reward.py); success is a reward of 1.

Settings (`--env-setting webshop.KEY=VALUE`):
  data_dir            directory with the original's files (original.py); default: generated catalog
  products, attributes, human_instructions   file names inside data_dir
  human_goals         1: goals from the human instructions file (default 0, as AgentGym)
  num_products        use only the first N products of the file (AgentGym: 1000)
  seed, catalog_size  the generated catalog (defaults 20220701 and 6000 products)
  strict_search       1: search only from the search page
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from agentgym.envs._data import _cache_dirs
from agentgym.envs.base import Env, EnvError, Outcome
from agentgym.envs.registry import register
from agentgym.envs.webshop import generate, original, pages, store
from agentgym.envs.webshop.reward import FUZZY_THRESHOLD, fuzzy_score, normalize_color, purchase_reward
from agentgym.envs.webshop.store import Catalog

INSTRUCTION = """\
You are shopping in an online store for the product described by the instruction shown at the top \
of every page. Each round you see the current page as text, its parts separated by [SEP], and you \
answer with one action:
- search[keywords]: search the store from the page with the search box, e.g. search[cotton crew \
socks for men];
- click[text]: click something shown on the page: a product ID in the search results, a button \
such as Next >, < Prev, Back to Search, Description, Features, Reviews or Buy Now, or an option \
value such as a size or a color on a product page.
Choose every option the instruction asks for by clicking its value before you click Buy Now. \
Buying ends the episode with a score between 0 and 1 for how well the product, its options and \
its price match the instruction. An action that does not fit the page changes nothing.

Reply in exactly this format:
Thought:
your reasoning

Action:
your action"""

SETTINGS = {
    "data_dir",
    "products",
    "attributes",
    "human_instructions",
    "human_goals",
    "num_products",
    "seed",
    "catalog_size",
    "strict_search",
}
SCHEMA_VERSION = "1"
# Sessions 0-499 are the original's test goals and 500-1499 its development goals.
TEST_GOALS, DEV_GOALS = 500, 1500

_ACTION = re.compile(r"(.+)\[(.+)\]")
_PRICE_CLAUSE = re.compile(r",? and price lower than [\d.]+ dollars$")
SEARCH_HINT = "search[<keywords>]"


def parse_action(action: str) -> tuple[str, str | None]:
    """(name, argument) of `name[argument]` (matched from the start, as the original does), or
    (action, None) when it has no brackets."""
    m = _ACTION.match(action)
    return (m.group(1), m.group(2)) if m else (action, None)


def _flag(settings: Mapping[str, str], key: str) -> bool:
    value = settings.get(key, "0").strip().lower()
    if value not in ("0", "1", "true", "false", "yes", "no"):
        raise ValueError(f"webshop.{key} must be 0 or 1, got {value!r}")
    return value in ("1", "true", "yes")


def _int(settings: Mapping[str, str], key: str, default: int | None) -> int | None:
    if key not in settings:
        return default
    try:
        value = int(settings[key])
    except ValueError:
        raise ValueError(f"webshop.{key} must be an integer, got {settings[key]!r}") from None
    if value < 1:
        raise ValueError(f"webshop.{key} must be at least 1, got {value}")
    return value


def open_catalog(settings: Mapping[str, str]) -> Catalog:
    """Build (once, cached) and open the catalog the settings describe."""
    unknown = set(settings) - SETTINGS
    if unknown:
        raise ValueError(f"unknown webshop settings {sorted(unknown)}; known: {sorted(SETTINGS)}")
    if settings.get("data_dir"):
        human = _flag(settings, "human_goals")
        num_products = _int(settings, "num_products", None)
        data_dir = Path(settings["data_dir"]).expanduser()
        files = original.resolve_files(data_dir, settings, human)
        source = f"schema={SCHEMA_VERSION};original={original.fingerprint(files, num_products, human)}"
        name = f"webshop-original-{source.rsplit('=', 1)[1][:16]}.sqlite"

        def build(path: Path) -> None:
            products, goals = original.load(files, num_products, human)
            store.write_database(path, products, goals, source)

        # The index lives next to the data (as the original's does), or in the user cache when
        # that directory is read-only.
        return Catalog(store.cached_database(name, source, build, [data_dir, *_cache_dirs()[1:]]))

    seed = _int(settings, "seed", generate.DEFAULT_SEED)
    size = _int(settings, "catalog_size", generate.DEFAULT_PRODUCTS)
    assert seed is not None and size is not None
    source = f"schema={SCHEMA_VERSION};generated={generate.GENERATOR_VERSION};seed={seed};n={size}"
    name = f"webshop-generated-{seed}-{size}-v{generate.GENERATOR_VERSION}.{SCHEMA_VERSION}.sqlite"

    def build_generated(path: Path) -> None:
        products, goals = generate.generate(seed, size)
        store.write_database(path, products, goals, source)

    return Catalog(store.cached_database(name, source, build_generated))


@register
class WebShop(Env):
    name = "webshop"
    description = "Find and buy the product an instruction describes on a text web shop (WebShop)."
    instruction = INSTRUCTION
    action_format = "search[keywords] | click[text on the page]"
    max_rounds = 10
    task_count = 0  # set by configure(): the number of goals
    success_threshold = 1.0
    execution = "thread"
    catalog: Catalog
    strict_search = False

    @classmethod
    def configure(cls, settings: Mapping[str, str]) -> None:
        from agentgym.envs.webshop.nouns import lexicon

        cls.catalog = open_catalog(settings)
        # AgentGym's task N: the original's files, its first 1,000 products, synthetic goals.
        as_agentgym = (
            bool(settings.get("data_dir"))
            and _int(settings, "num_products", None) == 1000
            and not _flag(settings, "human_goals")
        )
        cls.task_set = (
            "original"
            if as_agentgym
            else "the original's files with other settings than AgentGym's (num_products=1000, no human goals)"
            if settings.get("data_dir")
            else "generated catalog and goals; not the original's"
        )
        cls.strict_search = _flag(settings, "strict_search")
        lexicon()  # load the tagger's lexicon now, not at the first purchase
        n = cls.catalog.num_goals
        cls.task_count = n
        cls.splits = {
            "test": [range(0, min(n, TEST_GOALS))],
            "dev": [range(min(n, TEST_GOALS), min(n, DEV_GOALS))],
            "train": [range(min(n, DEV_GOALS), n)],
        }

    # --- the episode ---------------------------------------------------------------------------
    def reset(self, task_id: int, seed: int, options: Mapping[str, str]) -> Outcome:
        try:
            self.goal = self.catalog.goal(task_id)
        except IndexError:
            raise EnvError(f"webshop has no task {task_id}") from None
        self.instruction_text: str = self.goal["instruction_text"]
        self.steps = 0
        self._to_search()
        return self._outcome()

    def step(self, action: str) -> Outcome:
        self.steps += 1
        name, arg = parse_action(action)
        if arg is not None:
            arg = arg.lower()
        if name == "search" and arg and (self.view.has_search_bar or not self.strict_search):
            self._results(arg, 1)
        elif name == "click" and arg in self.view.clickables and arg != "search":
            assert arg is not None
            if arg == pages.BUY_NOW.lower():
                return self._buy()
            self._click(arg)
        else:
            return self._outcome(invalid=True)
        return self._outcome()

    # --- navigation (the original's page transitions) -------------------------------------------
    def _to_search(self) -> None:
        self.where = "search"
        self.keywords = ""
        self.page_no = 0
        self.asin: str | None = None
        self.options: dict[str, str] = {}
        self.view = pages.search_page(self.instruction_text)

    def _results(self, keywords: str, page_no: int) -> None:
        self.where = "results"
        self.keywords, self.page_no = keywords, page_no
        self.asin, self.options = None, {}
        hits = self.catalog.search(keywords)
        shown = hits[(page_no - 1) * pages.PRODUCTS_PER_PAGE : page_no * pages.PRODUCTS_PER_PAGE]
        products = [p for p in (self.catalog.product(a) for a in shown) if p is not None]
        self.view = pages.results_page(self.instruction_text, products, page_no, len(hits))

    def _item(self) -> None:
        self.where = "item"
        self.view = pages.item_page(self.instruction_text, self._product())

    def _product(self) -> Mapping:
        product = self.catalog.product(self.asin or "")
        if product is None:
            raise RuntimeError(f"product {self.asin} is not in the catalog")
        return product

    def _click(self, name: str) -> None:
        clickable = self.view.clickables[name]
        if name == pages.BACK_TO_SEARCH.lower():
            self._to_search()
        elif name == pages.NEXT_PAGE.lower() and self.where == "results":
            self._results(self.keywords, self.page_no + 1)
        elif name == pages.PREV_PAGE.lower() and self.where == "results":
            self._results(self.keywords, self.page_no - 1)
        elif name == pages.PREV_PAGE.lower() and self.where in pages.SUB_PAGES:
            self._item()
        elif name == pages.PREV_PAGE.lower() and self.where == "item":
            self._results(self.keywords, self.page_no)
        elif name in (s.lower() for s in pages.SUB_PAGES):
            self.where = name.capitalize()
            self.view = pages.sub_page(self.instruction_text, self._product(), self.where)
        else:
            if clickable.kind == "product":
                self.asin = clickable.target
            elif clickable.kind == "option":
                self.options[clickable.target] = name
            self._item()

    def _buy(self) -> Outcome:
        product = self._product()
        reward = purchase_reward(product, self.goal, product["price"], self.options)
        self.where = "done"
        self.view = pages.done_page(product["asin"], self.options, reward.total)
        info = {"page": "done", "asin": product["asin"], **reward.info()}
        total = reward.total
        return Outcome(self.view.text, reward=total, done=True, success=total >= 1.0, score=total, info=info)

    def _outcome(self, invalid: bool = False) -> Outcome:
        actions = [SEARCH_HINT] if self.view.has_search_bar else []
        actions += [f"click[{c}]" for c in self.view.clickables if c != "search"]
        info = {"page": self.where.lower()}
        if invalid:
            info["invalid"] = "true"
        return Outcome(self.view.text, available_actions=actions, info=info)

    # --- the expert -------------------------------------------------------------------------------
    def expert_action(self) -> str:
        """Search for the instruction (or, when that ranks the target too low to reach within the
        round limit, for the target's title), page to the target, open it, choose the goal's
        options, buy. From any other state, walk back towards that path."""
        target = self.goal["asin"]
        if self.where == "search":
            return f"search[{self._expert_query()}]"
        if self.where == "results":
            hits = self.catalog.search(self.keywords)
            if target not in hits:
                return "click[back to search]"
            wanted_page = hits.index(target) // pages.PRODUCTS_PER_PAGE + 1
            if wanted_page == self.page_no:
                return f"click[{target.lower()}]"
            return "click[next >]" if wanted_page > self.page_no else "click[< prev]"
        if self.where == "item" and self.asin == target:
            for value in self._goal_option_values():
                clickable = self.view.clickables[value]
                if self.options.get(clickable.target) != value:
                    return f"click[{value}]"
            return "click[buy now]"
        if self.where == "done":
            return "click[buy now]"  # nothing left to do; the episode is over
        return "click[< prev]"  # a sub page, or another product's page

    def _goal_option_values(self) -> list[str]:
        """The target's option values that realise the goal's options (fuzzy for human goals)."""
        product = self._product()
        chosen = []
        for name, wanted in self.goal["options"]:
            if name in product["options"] and wanted in product["options"][name]:
                value = wanted
            else:
                candidates = [v for vs in product["options"].values() for v in vs]
                scored = [(fuzzy_score(normalize_color(v), normalize_color(wanted)), v) for v in candidates]
                best = max(scored, default=(0, ""))
                if best[0] <= FUZZY_THRESHOLD:
                    continue
                value = best[1]
            if self.view.clickables.get(value, pages.Clickable("button")).kind == "option":
                chosen.append(value)
        return chosen

    def _expert_query(self) -> str:
        """The query that reaches the target in the fewest rounds: the instruction without its
        price clause, or the target's title."""
        target = self.goal["asin"]
        product = self.catalog.product(target)
        candidates = [_PRICE_CLAUSE.sub("", self.instruction_text)]
        if product is not None:
            candidates.append(product["Title"])
        best: tuple[int, str] | None = None
        for query in candidates:
            query = " ".join(query.replace("[", " ").replace("]", " ").lower().split())
            hits = self.catalog.search(query)
            if target in hits:
                pages_to_turn = hits.index(target) // pages.PRODUCTS_PER_PAGE
                if best is None or pages_to_turn < best[0]:
                    best = (pages_to_turn, query)
                if pages_to_turn == 0:
                    break
        return best[1] if best else candidates[-1].lower()
