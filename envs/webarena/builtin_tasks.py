"""The built-in WebArena task set: tasks in WebArena's config format over the built-in sites.

`builtin_tasks()` returns the same list on every call and machine: each template is instantiated
from the sites' generated data (sites/data.py, fixed seed) with its own fixed-seed choices, and each
reference answer is computed from that data, so it is what the site shows (tests/envs/webarena/
test_builtin_tasks.py checks every one through HTTP). Templates cover WebArena's three kinds of
task (information seeking, navigation, content and configuration) on the three sites, with all
three evaluator kinds: string_match (exact_match, must_include), url_match and program_html.
No fuzzy_match: it needs an LLM judge. Template ids start at 1001 so they never read as WebArena's.

`agentgym webarena tasks --out DIR` writes them as WebArena config files (<task_id>.json).
"""

from __future__ import annotations

import copy
import random
from functools import cache
from typing import Any
from urllib.parse import quote_plus

from agentgym.envs.webarena.sites.data import DEFAULT_SEED, ORDER_STATUSES, SiteData, generate, money

Task = dict[str, Any]
_AUTH = {
    "shopping": "./.auth/shopping_state.json",
    "shopping_admin": "./.auth/shopping_admin_state.json",
    "reddit": "./.auth/reddit_state.json",
}
_START = {"shopping": "__SHOPPING__", "shopping_admin": "__SHOPPING_ADMIN__", "reddit": "__REDDIT__"}


def _fill(template: str, values: dict[str, Any]) -> str:
    out = template
    for key, value in values.items():
        out = out.replace("{{" + key + "}}", str(value))
    return out


def _eval(
    types: list[str],
    answers: dict[str, Any] | None = None,
    url: str = "",
    program: list[dict[str, Any]] | None = None,
    raw: str = "",
) -> dict[str, Any]:
    ev: dict[str, Any] = {
        "eval_types": types,
        "reference_answers": answers,
        "reference_url": url,
        "program_html": program or [],
        "string_note": "",
        "reference_answer_raw_annotation": raw,
    }
    if url:
        ev["url_note"] = "GOLD in PRED"
    return ev


def _exact(answer: str) -> dict[str, Any]:
    return _eval(["string_match"], {"exact_match": answer}, raw=answer)


def _include(*answers: str) -> dict[str, Any]:
    return _eval(["string_match"], {"must_include": list(answers)}, raw=", ".join(answers))


def _url(url: str) -> dict[str, Any]:
    return _eval(["url_match"], None, url=url)


def _html(*checks: tuple[str, str, dict[str, Any]]) -> dict[str, Any]:
    return _eval(
        ["program_html"],
        None,
        program=[{"url": u, "locator": loc, "required_contents": req} for u, loc, req in checks],
    )


# A template: (id, site, require_login, require_reset, intent_template, instances), where an instance is
# (instantiation_dict, eval).
Instance = tuple[dict[str, Any], dict[str, Any]]
Template = tuple[int, str, bool, bool, str, list[Instance]]


def _post_url(d: SiteData, post_id: int) -> str:
    post = next(p for p in d.posts if p.id == post_id)
    return f"__REDDIT__/f/{d.forum_by_id[post.forum_id].name}/{post.id}/{post.slug}"


_COMMENTS_TO_WRITE = (
    "Thanks for sharing, this was really helpful!",
    "I completely agree with this.",
    "Great question, following for answers.",
    "This made my day, thank you.",
    "I had a similar experience last month.",
    "Could you share more details?",
    "Interesting take, I had not thought of that.",
    "Bookmarking this for later.",
)
_NEW_POSTS = (
    ("Recommendations for a beginner?", "I am just getting started and would love some pointers."),
    ("What got you into this hobby?", "Curious to hear everyone's stories."),
    ("Monthly check-in thread", "Share what you have been up to this month."),
    ("Small win I wanted to share", "Finally finished a project I started last year."),
    ("Best resources you know of?", "Books, videos, anything that helped you learn."),
    ("A question for the veterans here", "What do you wish you had known earlier?"),
    ("Looking for a buddy to learn with", "Happy to share notes and progress every week."),
    ("Hot take, let us discuss", "I think the basics matter more than the gear."),
)


def _templates(d: SiteData) -> list[Template]:
    def pick(tid: int, seq: list[Any] | tuple[Any, ...], k: int) -> list[Any]:
        return random.Random(tid * 7919 + d.seed).sample(list(seq), k)

    me = d.shop_customer
    my_orders = [o for o in d.orders if o.customer_id == me.id]
    product_url = "__SHOPPING__/{slug}.html"
    cart = "__SHOPPING__/checkout/cart/"
    count = "document.querySelector('.cart-count').outerText"
    cart_items = "document.querySelector('.cart-items').outerText"
    author = {p.id: d.user_by_id[p.author_id].name for p in d.posts}
    out: list[Template] = []

    # --- shopping: information seeking -------------------------------------------------------
    out.append((1001, "shopping", False, False, "What is the price of {{product}}?",
                [({"product": p.name}, _exact(money(p.price))) for p in pick(1001, d.products, 12)]))  # fmt: skip
    out.append((1002, "shopping", False, False, "What is the SKU of {{product}}?",
                [({"product": p.name}, _exact(p.sku)) for p in pick(1002, d.products, 8)]))  # fmt: skip
    out.append((1003, "shopping", False, False, "How many customer reviews does {{product}} have?",
                [({"product": p.name}, _include(str(len(p.reviews)))) for p in pick(1003, d.products, 8)]))  # fmt: skip
    extremes = []
    for c in d.categories:
        prods = [p for p in d.products if p.category_id == c.id]
        extremes.append(
            ({"extreme": "cheapest", "category": c.name}, _exact(min(prods, key=lambda p: p.price).name))
        )
        extremes.append(
            (
                {"extreme": "most expensive", "category": c.name},
                _exact(max(prods, key=lambda p: p.price).name),
            )
        )
    out.append(
        (
            1004,
            "shopping",
            False,
            False,
            "What is the {{extreme}} product in the {{category}} category?",
            extremes,
        )
    )
    # --- shopping: navigation ------------------------------------------------------------------
    queries = [
        "yoga mat",
        "teapot",
        "earbuds",
        "coffee beans",
        "notebook",
        "puzzle",
        "hoodie",
        "headlamp",
        "olive oil",
        "speaker",
    ]
    out.append((1005, "shopping", False, False, 'Search the shop for "{{query}}"',
                [({"query": q}, _url(f"__SHOPPING__/catalogsearch/result/?q={quote_plus(q)}")) for q in queries]))  # fmt: skip
    out.append((1006, "shopping", False, False, "Open the product page of {{product}}",
                [({"product": p.name}, _url(product_url.format(slug=p.slug))) for p in pick(1006, d.products, 10)]))  # fmt: skip
    out.append((1007, "shopping", False, False, "Show me the products of the {{category}} category sorted by price from low to high",
                [({"category": c.name}, _url(f"__SHOPPING__/{c.slug}.html?product_list_order=price&product_list_dir=asc"))
                 for c in d.categories]))  # fmt: skip
    # --- shopping: content (cart, orders) ------------------------------------------------------
    out.append((1008, "shopping", True, True, "Add {{product}} to my shopping cart",
                [({"product": p.name}, _html((cart, cart_items, {"must_include": [p.name]}), (cart, count, {"exact_match": "1"})))
                 for p in pick(1008, [p for p in d.products if p.stock > 0], 12)]))  # fmt: skip
    qtys = [2, 3, 4, 5, 2, 3, 4, 6]
    out.append((1009, "shopping", True, True, "Add {{qty}} units of {{product}} to my shopping cart",
                [({"qty": n, "product": p.name}, _html((cart, cart_items, {"must_include": [p.name]}), (cart, count, {"exact_match": str(n)})))
                 for n, p in zip(qtys, pick(1009, [p for p in d.products if p.stock > 0], 8), strict=True)]))  # fmt: skip
    history = "__SHOPPING__/sales/order/history/"
    latest = "document.querySelector('.order-history tbody tr').outerText"
    out.append((1010, "shopping", True, True, "Buy one {{product}} and place the order",
                [({"product": p.name}, _html((history, latest, {"must_include": [p.name, "Pending"]})))
                 for p in pick(1010, [p for p in d.products if p.stock > 0], 8)]))  # fmt: skip
    out.append((1011, "shopping", True, False, "What was the grand total of my order #{{order}}?",
                [({"order": o.number}, _exact(money(o.total))) for o in pick(1011, my_orders, 8)]))  # fmt: skip
    out.append((1012, "shopping", True, False, "Which products did I buy in order #{{order}}?",
                [({"order": o.number}, _include(*[d.product_by_id[i.product_id].name for i in o.items]))
                 for o in pick(1012, my_orders, 8)]))  # fmt: skip
    out.append((1013, "shopping", True, False, "How many of my orders have the status {{status}}?",
                [({"status": s}, _include(str(sum(o.status == s for o in my_orders)))) for s in ORDER_STATUSES]))  # fmt: skip

    # --- shop admin ----------------------------------------------------------------------------
    out.append((1101, "shopping_admin", True, False, "How many units of {{product}} are in stock?",
                [({"product": p.name}, _exact(str(p.stock))) for p in pick(1101, d.products, 10)]))  # fmt: skip
    out.append((1102, "shopping_admin", True, False, "What is the email address of the customer {{customer}}?",
                [({"customer": c.name}, _exact(c.email)) for c in pick(1102, d.customers, 10)]))  # fmt: skip
    out.append((1103, "shopping_admin", True, False, "What is the status of order #{{order}}?",
                [({"order": o.number}, _exact(o.status)) for o in pick(1103, d.orders, 10)]))  # fmt: skip
    out.append((1104, "shopping_admin", True, False, "How many orders has the customer {{customer}} placed?",
                [({"customer": c.name}, _include(str(sum(o.customer_id == c.id for o in d.orders))))
                 for c in pick(1104, d.customers, 6)]))  # fmt: skip
    edit = "__SHOPPING_ADMIN__/catalog/product/edit/id/{id}/"
    new_prices = ["9.99", "14.50", "24.00", "31.25", "45.90", "59.99", "72.10", "88.00", "99.95", "120.00"]
    out.append((1105, "shopping_admin", True, True, "Change the price of {{product}} to ${{price}}",
                [({"product": p.name, "price": price},
                  _html((edit.format(id=p.id), "document.querySelector('#price').value", {"exact_match": price})))
                 for price, p in zip(new_prices, pick(1105, d.products, 10), strict=True)]))  # fmt: skip
    new_stock = [0, 5, 12, 25, 40, 75, 100, 150]
    out.append((1106, "shopping_admin", True, True, "Set the stock quantity of {{product}} to {{qty}}",
                [({"product": p.name, "qty": n}, _html((edit.format(id=p.id), "document.querySelector('#qty').value", {"exact_match": str(n)})))
                 for n, p in zip(new_stock, pick(1106, d.products, 8), strict=True)]))  # fmt: skip
    out.append((1107, "shopping_admin", True, False, "Show me all orders with the status {{status}}",
                [({"status": s}, _url(f"__SHOPPING_ADMIN__/sales/order/?status={s.lower()}")) for s in ORDER_STATUSES]))  # fmt: skip
    out.append((1108, "shopping_admin", True, False, "Open the admin page of the customer {{customer}}",
                [({"customer": c.name}, _url(f"__SHOPPING_ADMIN__/customer/index/edit/id/{c.id}/"))
                 for c in pick(1108, d.customers, 6)]))  # fmt: skip

    # --- forum ---------------------------------------------------------------------------------
    out.append((1201, "reddit", False, False, 'How many comments does the post "{{title}}" have?',
                [({"title": p.title}, _include(str(len(p.comments)))) for p in pick(1201, d.posts, 10)]))  # fmt: skip
    out.append((1202, "reddit", False, False, 'Who submitted the post "{{title}}"?',
                [({"title": p.title}, _exact(author[p.id])) for p in pick(1202, d.posts, 10)]))  # fmt: skip
    out.append((1203, "reddit", False, False, "What is the title of the highest-scoring post in f/{{forum}}?",
                [({"forum": f.name}, _exact(max((p for p in d.posts if p.forum_id == f.id), key=lambda p: p.score).title))
                 for f in d.forums]))  # fmt: skip
    out.append((1204, "reddit", False, False, "How many posts are there in f/{{forum}}?",
                [({"forum": f.name}, _include(str(sum(p.forum_id == f.id for p in d.posts)))) for f in d.forums]))  # fmt: skip
    out.append((1205, "reddit", False, False, "Open the forum f/{{forum}}",
                [({"forum": f.name}, _url(f"__REDDIT__/f/{f.name}")) for f in d.forums]))  # fmt: skip
    sorts = [("new", f.name) for f in d.forums[:4]] + [("top", f.name) for f in d.forums[4:]]
    out.append((1206, "reddit", False, False, "Show me the {{sort}} posts of f/{{forum}}",
                [({"sort": s, "forum": f}, _url(f"__REDDIT__/f/{f}/{s}")) for s, f in sorts]))  # fmt: skip
    out.append((1207, "reddit", False, False, 'Open the profile page of the user who submitted "{{title}}"',
                [({"title": p.title}, _url(f"__REDDIT__/user/{author[p.id]}")) for p in pick(1207, d.posts, 8)]))  # fmt: skip
    score = "document.querySelector('.submission__inner .vote-score').outerText"
    out.append((1208, "reddit", True, True, 'Upvote the post "{{title}}"',
                [({"title": p.title}, _html((_post_url(d, p.id), score, {"exact_match": str(p.score + 1)})))
                 for p in pick(1208, d.posts, 10)]))  # fmt: skip
    commented = [p for p in d.posts if p.comments]
    downvotes = []
    for p in pick(1209, commented, 8):
        c = random.Random(p.id).choice(p.comments)
        loc = f"document.querySelector('#comment-{c.id} .vote-score').outerText"
        downvotes.append(({"user": d.user_by_id[c.author_id].name, "title": p.title},
                          _html((_post_url(d, p.id), loc, {"exact_match": str(c.score - 1)}))))  # fmt: skip
    out.append(
        (1209, "reddit", True, True, 'Downvote the comment by {{user}} on the post "{{title}}"', downvotes)
    )
    bodies = "[...document.querySelectorAll('.comment-body')].map(e => e.outerText).join('\\n')"
    out.append((1210, "reddit", True, True, 'Reply to the post "{{title}}" with the comment "{{comment}}"',
                [({"title": p.title, "comment": text}, _html((_post_url(d, p.id), bodies, {"must_include": [text]})))
                 for text, p in zip(_COMMENTS_TO_WRITE, pick(1210, d.posts, 8), strict=True)]))  # fmt: skip
    creates = []
    for (title, body), f in zip(_NEW_POSTS, d.forums, strict=True):
        creates.append(({"forum": f.name, "title": title, "body": body}, _html(
            (f"__REDDIT__/f/{f.name}/new", "document.querySelector('.submission-title').outerText", {"exact_match": title}),
            ("last", "document.querySelector('.submission__body').outerText", {"must_include": [body]}),
        )))  # fmt: skip
    out.append(
        (
            1211,
            "reddit",
            True,
            True,
            'Create a post in f/{{forum}} titled "{{title}}" with the body "{{body}}"',
            creates,
        )
    )
    return out


@cache
def _build(seed: int) -> tuple[Task, ...]:
    tasks: list[Task] = []
    for tid, site, login, reset, template, instances in _templates(generate(seed)):
        for values, ev in instances:
            tasks.append(
                {
                    "sites": [site],
                    "task_id": len(tasks),
                    "require_login": login,
                    "storage_state": _AUTH[site] if login else None,
                    "start_url": _START[site],
                    "geolocation": None,
                    "intent_template": template,
                    "instantiation_dict": values,
                    "intent": _fill(template, values),
                    "require_reset": reset,
                    "eval": ev,
                    "intent_template_id": tid,
                }
            )
    return tuple(tasks)


def builtin_tasks(seed: int | None = None) -> list[dict[str, Any]]:
    """The built-in tasks in WebArena's config format, task_id 0..N-1 (a fresh deep copy each call)."""
    return copy.deepcopy(list(_build(DEFAULT_SEED if seed is None else seed)))
