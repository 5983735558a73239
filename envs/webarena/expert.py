"""The expert for the built-in WebArena tasks: it solves each one by reading the accessibility tree.

It knows WHAT a task asks from the task's template id and instantiation_dict (as a person reads the
intent), and finds HOW on the page: every element it acts on is picked from the observation by role
and name (the search box, a link with the product's name, the "Add to Cart" button), and every
answer is read off the page's text (the "Price: $12.34" line). It never looks at the sites' data.
When an element is not on screen it scrolls down, since observations show only the viewport.

    expert = WebArenaExpert(task)            # task: placeholders expanded, plus "urls": {site: base}
    action, thought = expert.next_action(observation)

Observation lines (envs/webarena/observation.py): "\\t"*depth + "[id] role 'name' prop: value ...".
"""

from __future__ import annotations

import ast
import re
from collections.abc import Generator, Iterable
from dataclasses import dataclass
from typing import Any

_LINE = re.compile(r"^(\t*)\[(\d+)\] (\S+) (.*)$")
# How many times the expert scrolls down looking for something before it gives up.
MAX_SCROLLS = 4
# How many times in a row it looks again at a page that has not loaded yet.
MAX_WAITS = 6
TEXT_ROLES = ("textbox", "searchbox", "combobox", "spinbutton")

Step = tuple[str, str]  # (action, thought)
Plan = Generator[Step, None, None]


@dataclass(frozen=True)
class Node:
    id: int
    role: str
    name: str
    depth: int
    props: str = ""


def _split_name(rest: str) -> tuple[str, str]:
    """The repr'd name at the start of `rest`, and the properties after it."""
    if not rest or rest[0] not in "'\"":
        return "", rest
    quote = rest[0]
    i = 1
    while i < len(rest):
        if rest[i] == "\\":
            i += 2
            continue
        if rest[i] == quote:
            try:
                return str(ast.literal_eval(rest[: i + 1])), rest[i + 1 :].strip()
            except (ValueError, SyntaxError):
                return rest[1:i], rest[i + 1 :].strip()
        i += 1
    return rest[1:], ""


def parse(observation: str) -> tuple[list[Node], str]:
    """The observation's elements, in order, and its URL line."""
    nodes, url = [], ""
    for line in observation.splitlines():
        if line.startswith("URL: "):
            url = line[5:].strip()
            continue
        m = _LINE.match(line)
        if m:
            name, props = _split_name(m[4])
            nodes.append(Node(int(m[2]), m[3], name, len(m[1]), props))
    return nodes, url


class Stuck(Exception):
    """The page lacks what the plan needs: the expert gives up (stops) with this reason."""


class WebArenaExpert:
    """One expert per episode; `next_action` is called with each new observation."""

    def __init__(self, task: dict[str, Any]) -> None:
        self.task = task
        self.values: dict[str, Any] = dict(task.get("instantiation_dict") or {})
        self.template = int(task.get("intent_template_id", -1))
        self.nodes: list[Node] = []
        self.url = ""
        self._plan: Plan | None = None
        self._done = False
        self._pending: int | None = None  # the element of the last page-loading action
        self._waits = 0

    def next_action(self, observation: str) -> tuple[str, str]:
        self.nodes, self.url = parse(observation)
        if self._done:
            return "stop [N/A]", "I could not finish this task."
        # Every click and Enter of the plans loads a page. Element ids belong to one document, so the
        # element acted on still being there means the new page has not arrived yet (a slow site):
        # look again rather than act on, or answer from, the old page.
        # A document still loading (its root is busy, or it has no content yet) is not read either.
        stale = self._pending is not None and any(n.id == self._pending for n in self.nodes)
        loading = not self.nodes[1:] or bool(re.search(r"\bbusy: (1|True)\b", self.nodes[0].props))
        if (stale or loading) and self._waits < MAX_WAITS:
            self._waits += 1
            return "scroll [up]", "The page has not finished loading; I look at it again."
        self._pending, self._waits = None, 0
        try:
            if self._plan is None:
                self._plan = self._make_plan()
                step = next(self._plan)
            else:
                step = self._plan.send(None)
        except StopIteration:
            self._done = True
            return "stop [N/A]", "The plan ended without an answer."
        except Stuck as exc:
            self._done = True
            return "stop [N/A]", f"I cannot continue: {exc}."
        m = re.match(r"(?:click \[(\d+)\]|type \[(\d+)\] \[.*\] \[1\])$", step[0], re.S)
        if m:
            self._pending = int(m[1] or m[2])
        return step

    # --- reading the page ------------------------------------------------------------------------
    def find(
        self, roles: Iterable[str], name: str | None = None, pattern: str | None = None, start: int = 0
    ) -> Node | None:
        roles = tuple(roles)
        for node in self.nodes[start:]:
            if node.role not in roles:
                continue
            if name is not None and node.name.strip() != name:
                continue
            if pattern is not None and not re.search(pattern, node.name):
                continue
            return node
        return None

    def text_match(self, pattern: str) -> re.Match[str] | None:
        for node in self.nodes:
            m = re.search(pattern, node.name)
            if m:
                return m
        return None

    def index(self, node: Node) -> int:
        return self.nodes.index(node)

    # --- plan building blocks (generators: each yields actions until its step is done) ----------
    def scroll_for(self, what: str, found: Any) -> Generator[Step, None, Any]:
        """Scroll down until `found()` returns something, and return it; then back up (a page may
        have been scrolled past it)."""
        for direction in ("down", "up"):
            for _ in range(MAX_SCROLLS):
                result = found()
                if result:
                    return result
                yield f"scroll [{direction}]", f"I do not see {what} here, so I scroll {direction}."
        result = found()
        if result:
            return result
        raise Stuck(f"{what} is not on the page")

    def click(self, roles: Iterable[str], name: str, why: str, prefix: bool = False) -> Plan:
        roles = tuple(roles)
        node = yield from self.scroll_for(
            f"the {roles[0]} {name!r}",
            lambda: (
                self.find(roles, pattern="^" + re.escape(name)) if prefix else self.find(roles, name=name)
            ),
        )
        yield f"click [{node.id}]", why

    def type_into(
        self, name: str, text: str, enter: bool, why: str, roles: Iterable[str] = TEXT_ROLES
    ) -> Plan:
        roles = tuple(roles)
        node = yield from self.scroll_for(f"the field {name!r}", lambda: self.find(roles, name=name))
        yield f"type [{node.id}] [{text}] [{1 if enter else 0}]", why

    def read(self, what: str, pattern: str) -> Generator[Step, None, str]:
        m = yield from self.scroll_for(what, lambda: self.text_match(pattern))
        return m[1]

    def answer(self, text: str, why: str) -> Plan:
        yield f"stop [{text}]", why

    def finish(self, why: str) -> Plan:
        # The answer of a navigation or change task is not graded (its URL or the pages are).
        yield "stop [done]", why

    # --- site routines ---------------------------------------------------------------------------
    def shop_search(self, query: str) -> Plan:
        yield from self.type_into(
            "Search", query, True, f"I search the shop for {query!r}.", roles=("searchbox", "textbox")
        )

    def open_product(self, product: str) -> Plan:
        yield from self.shop_search(product)
        yield from self.click(("link",), product, f"The results list {product}; I open its page.")

    def forum_post(self, title: str) -> Plan:
        yield from self.type_into(
            "Search", title, True, "I search the forum for the post's title.", roles=("searchbox", "textbox")
        )
        yield from self.click(("link",), title, "The post is in the results; I open it.")

    def admin_find(self, menu: str, keyword: str, action: str) -> Plan:
        yield from self.click(("link",), menu, f"I open the {menu} grid from the admin menu.")
        yield from self.type_into(
            "Search by keyword",
            keyword,
            True,
            f"I filter the grid by {keyword!r}.",
            roles=("searchbox", "textbox"),
        )
        yield from self.click(("link",), action, f"The row is there; I follow its {action.split()[0]} link.")

    def forum_page(self, forum: str) -> Plan:
        yield from self.click(("link",), "Forums", "I go to the list of forums.")
        yield from self.click(("link",), forum, f"I open f/{forum}.")

    def cell_names(self) -> list[list[str]]:
        """The rows of the tables on the page, as lists of cell names (header rows left out)."""
        rows: list[list[str]] = []
        for i, node in enumerate(self.nodes):
            if node.role != "row":
                continue
            cells = []
            for child in self.nodes[i + 1 :]:
                if child.depth <= node.depth:
                    break
                if child.role == "columnheader":
                    cells = []
                    break
                if child.role in ("cell", "gridcell") and child.depth == node.depth + 1:
                    cells.append(child.name.strip())
            if cells:
                rows.append(cells)
        return rows

    # --- the plans -------------------------------------------------------------------------------
    def _make_plan(self) -> Plan:
        plan = getattr(self, f"_plan_{self.template}", None)
        if plan is None:
            raise Stuck(f"the expert has no plan for template {self.template}")
        return plan(**self.values)

    # shopping: information
    def _plan_1001(self, product: str) -> Plan:
        yield from self.open_product(product)
        price = yield from self.read("the price", r"^Price: (\$[\d,]+\.\d\d)$")
        yield from self.answer(price, f"The product page says the price is {price}.")

    def _plan_1002(self, product: str) -> Plan:
        yield from self.open_product(product)
        sku = yield from self.read("the SKU", r"^SKU: (\S+)$")
        yield from self.answer(sku, f"The product page shows SKU {sku}.")

    def _plan_1003(self, product: str) -> Plan:
        yield from self.open_product(product)
        n = yield from self.read("the review count", r"^Customer reviews: (\d+)$")
        yield from self.answer(n, f"The product page counts {n} customer reviews.")

    def _plan_1004(self, extreme: str, category: str) -> Plan:
        yield from self.click(("link",), category, f"I open the {category} category.")
        order = "Price: low to high" if extreme == "cheapest" else "Price: high to low"
        yield from self.click(("link",), order, f"I sort it by {order.lower()}.")

        def first_product() -> Node | None:
            sort_link = self.find(("link",), name="Price: high to low")
            return self.find(("link",), start=self.index(sort_link) + 1) if sort_link else None

        node = yield from self.scroll_for("the first product", first_product)
        yield from self.answer(
            node.name, f"Sorted this way, the first product is the {extreme}: {node.name}."
        )

    # shopping: navigation
    def _plan_1005(self, query: str) -> Plan:
        yield from self.shop_search(query)
        yield from self.finish("The search results are shown.")

    def _plan_1006(self, product: str) -> Plan:
        yield from self.open_product(product)
        yield from self.finish("This is the product's page.")

    def _plan_1007(self, category: str) -> Plan:
        yield from self.click(("link",), category, f"I open the {category} category.")
        yield from self.click(("link",), "Price: low to high", "I sort it by price, low to high.")
        yield from self.finish("The category is sorted by price, low to high.")

    # shopping: cart and orders
    def _plan_1008(self, product: str) -> Plan:
        yield from self.open_product(product)
        yield from self.click(("button",), "Add to Cart", "I add it to the cart.")
        yield from self.finish("The product is in the cart.")

    def _plan_1009(self, qty: int, product: str) -> Plan:
        yield from self.open_product(product)
        yield from self.type_into("Qty", str(qty), False, f"I set the quantity to {qty}.")
        yield from self.click(("button",), "Add to Cart", f"I add {qty} to the cart.")
        yield from self.finish(f"{qty} units are in the cart.")

    def _plan_1010(self, product: str) -> Plan:
        yield from self.open_product(product)
        yield from self.click(("button",), "Add to Cart", "I add one to the cart.")
        yield from self.click(("link",), "My Cart", "I go to the cart.", prefix=True)
        yield from self.click(("link",), "Proceed to Checkout", "I proceed to checkout.")
        yield from self.click(("button",), "Place Order", "I place the order.")
        yield from self.finish("The order is placed.")

    def _my_order(self, order: str) -> Plan:
        yield from self.click(("link",), "My Orders", "I open my order history.")
        yield from self.click(("link",), f"View Order {order}", f"I open order #{order}.")

    def _plan_1011(self, order: str) -> Plan:
        yield from self._my_order(order)
        total = yield from self.read("the grand total", r"^Grand Total: (\$[\d,]+\.\d\d)$")
        yield from self.answer(total, f"The order's grand total is {total}.")

    def _plan_1012(self, order: str) -> Plan:
        yield from self._my_order(order)
        rows = yield from self.scroll_for("the ordered items", self.cell_names)
        names = [r[0] for r in rows]
        yield from self.answer(", ".join(names), "The order lists these products.")

    def _plan_1013(self, status: str) -> Plan:
        yield from self.click(("link",), "My Orders", "I open my order history.")
        rows = yield from self.scroll_for("the order table", self.cell_names)
        n = sum(status in r for r in rows)
        yield from self.answer(str(n), f"{n} of the orders listed have the status {status}.")

    # shop admin
    def _plan_1101(self, product: str) -> Plan:
        yield from self.admin_find("Products", product, f"Edit {product}")
        n = yield from self.read("the stock", r"^Quantity in stock: (\d+)$")
        yield from self.answer(n, f"The product has {n} units in stock.")

    def _plan_1102(self, customer: str) -> Plan:
        yield from self.admin_find("Customers", customer, f"View {customer}")
        email = yield from self.read("the email address", r"^Email: (\S+)$")
        yield from self.answer(email, f"The customer's email address is {email}.")

    def _plan_1103(self, order: str) -> Plan:
        yield from self.admin_find("Orders", order, f"View order {order}")
        status = yield from self.read("the status", r"^Status: (\w+)$")
        yield from self.answer(status, f"The order's status is {status}.")

    def _plan_1104(self, customer: str) -> Plan:
        yield from self.admin_find("Customers", customer, f"View {customer}")
        n = yield from self.read("the order count", r"^Orders placed: (\d+)$")
        yield from self.answer(n, f"The customer has placed {n} orders.")

    def _plan_1105(self, product: str, price: str) -> Plan:
        yield from self.admin_find("Products", product, f"Edit {product}")
        yield from self.type_into("Price", price, False, f"I set the price to {price}.")
        yield from self.click(("button",), "Save", "I save the product.")
        yield from self.finish("The new price is saved.")

    def _plan_1106(self, product: str, qty: int) -> Plan:
        yield from self.admin_find("Products", product, f"Edit {product}")
        yield from self.type_into("Quantity", str(qty), False, f"I set the quantity to {qty}.")
        yield from self.click(("button",), "Save", "I save the product.")
        yield from self.finish("The new stock quantity is saved.")

    def _plan_1107(self, status: str) -> Plan:
        yield from self.click(("link",), "Orders", "I open the orders grid.")
        yield from self.click(("link",), status, f"I filter the orders by the status {status}.")
        yield from self.finish(f"The grid shows the {status} orders.")

    def _plan_1108(self, customer: str) -> Plan:
        yield from self.admin_find("Customers", customer, f"View {customer}")
        yield from self.finish("This is the customer's page.")

    # forum
    def _plan_1201(self, title: str) -> Plan:
        yield from self.forum_post(title)
        n = yield from self.read("the comment count", r"^(\d+) comments$")
        yield from self.answer(n, f"The post has {n} comments.")

    def _author_link(self) -> Node | None:
        by = self.find(("StaticText",), pattern=r"^Submitted by")
        return self.find(("link",), start=self.index(by) + 1) if by else None

    def _plan_1202(self, title: str) -> Plan:
        yield from self.forum_post(title)
        node = yield from self.scroll_for("the author", self._author_link)
        yield from self.answer(node.name, f"The post was submitted by {node.name}.")

    def _plan_1203(self, forum: str) -> Plan:
        yield from self.forum_page(forum)
        yield from self.click(("link",), "Top", "I sort the forum by top score.")

        def first_post() -> Node | None:
            headings = [n for n in self.nodes if n.role == "heading"]
            return headings[1] if len(headings) > 1 else None

        node = yield from self.scroll_for("the first post", first_post)
        yield from self.answer(node.name, "The first post sorted by top score is the highest-scoring one.")

    def _plan_1204(self, forum: str) -> Plan:
        yield from self.click(("link",), "Forums", "I go to the list of forums.")

        def count() -> str | None:
            link = self.find(("link",), name=forum)
            if link is None:
                return None
            for node in self.nodes[self.index(link) + 1 : self.index(link) + 3]:
                m = re.search(r"(\d+) posts?", node.name)
                if m:
                    return m[1]
            return None

        n = yield from self.scroll_for(f"the post count of {forum}", count)
        yield from self.answer(n, f"The forum list says f/{forum} has {n} posts.")

    def _plan_1205(self, forum: str) -> Plan:
        yield from self.forum_page(forum)
        yield from self.finish(f"This is f/{forum}.")

    def _plan_1206(self, sort: str, forum: str) -> Plan:
        yield from self.forum_page(forum)
        yield from self.click(("link",), sort.title(), f"I sort the forum by {sort}.")
        yield from self.finish(f"These are the {sort} posts of f/{forum}.")

    def _plan_1207(self, title: str) -> Plan:
        yield from self.forum_post(title)
        node = yield from self.scroll_for("the author", self._author_link)
        yield f"click [{node.id}]", f"I open the profile of {node.name}, who submitted the post."
        yield from self.finish("This is the author's profile.")

    def _plan_1208(self, title: str) -> Plan:
        yield from self.forum_post(title)
        yield from self.click(("button",), "Upvote", "I upvote the post.")
        yield from self.finish("The post is upvoted.")

    def _plan_1209(self, user: str, title: str) -> Plan:
        yield from self.forum_post(title)
        yield from self.click(("button",), f"Downvote comment by {user}", f"I downvote {user}'s comment.")
        yield from self.finish("The comment is downvoted.")

    def _plan_1210(self, title: str, comment: str) -> Plan:
        yield from self.forum_post(title)
        yield from self.type_into("Comment", comment, False, "I write the reply.")
        yield from self.click(("button",), "Post comment", "I post the comment.")
        yield from self.finish("The reply is posted.")

    def _plan_1211(self, forum: str, title: str, body: str) -> Plan:
        yield from self.forum_page(forum)
        yield from self.click(("link",), "Submit a new post", "I start a new post in this forum.")
        yield from self.type_into("Title", title, False, "I enter the title.")
        yield from self.type_into("Body", body, False, "I enter the body.")
        yield from self.click(("button",), "Create submission", "I submit the post.")
        yield from self.finish("The post is created.")
