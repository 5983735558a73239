"""The built-in task set: its format, its determinism, and that every reference answer is true on the
running built-in sites, checked through HTTP the way a person would find it (search, open, read), with
each state-changing task done through the sites' forms and its program_html checks read back."""

from __future__ import annotations

import asyncio
import json
import re
import secrets
from collections import Counter
from html import unescape
from typing import Any
from urllib.parse import quote_plus, urlsplit

import aiohttp
import pytest

from agentgym.envs.webarena.builtin_tasks import builtin_tasks
from agentgym.envs.webarena.sites import SANDBOX_COOKIE

pytestmark = pytest.mark.timeout(120)

KEYS = {
    "sites", "task_id", "require_login", "storage_state", "start_url", "geolocation", "intent_template",
    "instantiation_dict", "intent", "require_reset", "eval", "intent_template_id",
}  # fmt: skip
EVAL_KEYS = {
    "eval_types",
    "reference_answers",
    "reference_url",
    "program_html",
    "string_note",
    "reference_answer_raw_annotation",
}


def test_format_size_and_coverage() -> None:
    tasks = builtin_tasks()
    assert len(tasks) >= 200
    assert [t["task_id"] for t in tasks] == list(range(len(tasks)))
    kinds: Counter[str] = Counter()
    for t in tasks:
        assert KEYS <= set(t), t["task_id"]
        assert EVAL_KEYS <= set(t["eval"]), t["task_id"]
        assert t["start_url"] in ("__SHOPPING__", "__SHOPPING_ADMIN__", "__REDDIT__")
        assert t["geolocation"] is None
        assert (t["storage_state"] is not None) == t["require_login"]
        intent = t["intent_template"]
        for k, v in t["instantiation_dict"].items():
            intent = intent.replace("{{" + k + "}}", str(v))
        assert intent == t["intent"] and "{{" not in intent
        ev = t["eval"]
        for kind in ev["eval_types"]:
            kinds[kind] += 1
        if "string_match" in ev["eval_types"]:
            assert set(ev["reference_answers"]) <= {"exact_match", "must_include"}
            kinds.update(list(ev["reference_answers"]))
        if "url_match" in ev["eval_types"]:
            assert ev["reference_url"].startswith("__")
        if "program_html" in ev["eval_types"]:
            assert ev["program_html"] and all(
                set(p) == {"url", "locator", "required_contents"} for p in ev["program_html"]
            )
    assert all(
        kinds[k] >= 20 for k in ("string_match", "url_match", "program_html", "exact_match", "must_include")
    ), kinds
    assert len({t["intent_template_id"] for t in tasks}) >= 20
    assert len({t["intent"] for t in tasks}) == len(tasks)  # no task twice
    assert {t["require_login"] for t in tasks} == {True, False}
    json.dumps(tasks)  # plain JSON, as WebArena's config files


def test_deterministic_and_copied() -> None:
    a, b = builtin_tasks(), builtin_tasks()
    assert a == b
    a[0]["intent"] = "changed"
    assert builtin_tasks()[0]["intent"] != "changed"


# --- reading pages -------------------------------------------------------------------------------
def text(html: str) -> str:
    return unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))).strip()


def link(html: str, name: str) -> str:
    """The href of the link whose text or aria-label is exactly `name`."""
    for m in re.finditer(r"<a ([^>]*)>(.*?)</a>", html):
        label = re.search(r'aria-label="([^"]+)"', m[1])
        href = re.search(r'href="([^"]+)"', m[1])
        if href and unescape(label[1] if label else text(m[2])) == name:
            return unescape(href[1])
    raise AssertionError(f"no link {name!r} on the page")


def found(pattern: str, html: str) -> str:
    """The first group of `pattern` in `html`; "" when absent (as a locator on a missing element)."""
    m = re.search(pattern, html, re.S)
    return m[1] if m else ""


def element(html: str, locator: str) -> str:
    """What the task's program_html locator reads, for the locators the built-in tasks use."""
    if locator == "document.querySelector('.cart-count').outerText":
        return found(r'class="cart-count">([^<]*)<', html)
    if locator == "document.querySelector('.cart-items').outerText":
        return text(found(r'<table class="cart-items">(.*?)</table>', html))
    if locator == "document.querySelector('.order-history tbody tr').outerText":
        return text(found(r'<table class="order-history">.*?<tbody>(.*?)</tr>', html))
    if m := re.fullmatch(r"document\.querySelector\('#(\w+)'\)\.value", locator):
        return unescape(found(rf'id="{m[1]}" name="\w+" value="([^"]*)"', html))
    if locator == "document.querySelector('.submission__inner .vote-score').outerText":
        inner = html.split('<div class="submission__inner">', 1)[-1]
        return found(r'class="vote-score">([^<]*)<', inner)
    if m := re.fullmatch(r"document\.querySelector\('#comment-(\d+) \.vote-score'\)\.outerText", locator):
        part = html.split(f'id="comment-{m[1]}"', 1)[-1]
        return found(r'class="vote-score">([^<]*)<', part)
    if locator.startswith("[...document.querySelectorAll('.comment-body')]"):
        return "\n".join(text(b) for b in re.findall(r'<div class="comment-body">(.*?)</div>', html, re.S))
    if locator == "document.querySelector('.submission-title').outerText":
        return text(found(r'class="submission-title">(.*?)</h2>', html))
    if locator == "document.querySelector('.submission__body').outerText":
        return text(found(r'<div class="submission__body">(.*?)</div>', html))
    raise AssertionError(f"locator not understood by this test: {locator}")


def satisfied(value: str, required: dict[str, Any]) -> bool:
    if "exact_match" in required:
        return value.strip().lower() == str(required["exact_match"]).strip().lower()
    return all(str(x).lower() in value.lower() for x in required["must_include"])


class Browser:
    """One HTTP client with its own cookies, in its own sandbox (as one episode's browser context)."""

    def __init__(self, http: aiohttp.ClientSession, urls: dict[str, str]) -> None:
        self.http, self.urls = http, urls
        self.last = ""

    def url(self, site: str, path: str) -> str:
        """`path` under the site's base URL; a path already under the base's path (a link's href on
        the admin, whose base ends in /admin) is taken from the origin."""
        if path.startswith("http"):
            return path
        parts = urlsplit(self.urls[site])
        if parts.path and (path == parts.path or path.startswith(parts.path.rstrip("/") + "/")):
            return f"{parts.scheme}://{parts.netloc}{path}"
        return self.urls[site].rstrip("/") + path

    def expand(self, url: str) -> str:
        for site, key in (
            ("shopping_admin", "__SHOPPING_ADMIN__"),
            ("shopping", "__SHOPPING__"),
            ("reddit", "__REDDIT__"),
        ):
            url = url.replace(key, self.urls[site])
        return url

    async def get(self, site: str, path: str) -> str:
        async with self.http.get(self.url(site, path)) as r:
            assert r.status == 200, (path, r.status)
            self.last = str(r.url)
            return await r.text()

    async def post(self, site: str, path: str, form: dict[str, Any]) -> str:
        async with self.http.post(self.url(site, path), data={k: str(v) for k, v in form.items()}) as r:
            assert r.status == 200, (path, r.status, await r.text())
            self.last = str(r.url)
            return await r.text()

    async def login(self, site: str, accounts: dict[str, tuple[str, str]]) -> None:
        user, password = accounts[site]
        if site == "shopping":
            page = await self.post(site, "/customer/account/loginPost/", {"email": user, "pass": password})
            assert "Sign Out" in page
        elif site == "shopping_admin":
            page = await self.post(site, "/auth/login/", {"username": user, "password": password})
            assert "Sign Out" in page
        else:
            page = await self.post(site, "/login_check", {"_username": user, "_password": password})
            assert "Log out" in page


async def product_page(b: Browser, name: str) -> str:
    results = await b.get("shopping", f"/catalogsearch/result/?q={quote_plus(name)}")
    return await b.get("shopping", link(results, name))


async def admin_find(b: Browser, grid: str, search: str, action: str) -> str:
    page = await b.get("shopping_admin", f"{grid}?search={quote_plus(search)}")
    return await b.get("shopping_admin", link(page, action))


async def post_page(b: Browser, title: str) -> str:
    results = await b.get("reddit", f"/search?q={quote_plus(title)}")
    return await b.get("reddit", link(results, title))


def form_of(html: str, action_re: str) -> dict[str, str]:
    form = re.search(rf'<form[^>]*action="({action_re})"[^>]*>(.*?)</form>', html, re.S)
    assert form, action_re
    fields = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', form[2]))
    return {"_action": unescape(form[1]), **{k: unescape(v) for k, v in fields.items()}}


async def check(b: Browser, task: dict[str, Any], accounts: dict[str, tuple[str, str]]) -> None:
    """Find the task's answer as a person would, or do its change, and compare with the reference."""
    tid, v, ev = task["intent_template_id"], task["instantiation_dict"], task["eval"]
    answers = ev["reference_answers"] or {}
    exact = answers.get("exact_match")
    include = answers.get("must_include", [])
    if task["require_login"]:
        await b.login(task["sites"][0], accounts)
    found = ""
    if tid in (1001, 1002, 1003):
        page = text(await product_page(b, v["product"]))
        label = {1001: "Price: ", 1002: "SKU: ", 1003: "Customer reviews: "}[tid]
        found = re.search(re.escape(label) + r"(\S+)", page)[1]  # type: ignore[index]
    elif tid == 1004:
        home = await b.get("shopping", "/")
        cat = link(home, v["category"])
        page = await b.get(
            "shopping",
            cat
            + (
                "?product_list_order=price&product_list_dir="
                + ("asc" if v["extreme"] == "cheapest" else "desc")
            ),
        )
        found = text(re.search(r'class="product-item-link"[^>]*>(.*?)</a>', page)[1])  # type: ignore[index]
    elif tid in (1011, 1012):
        history = await b.get("shopping", "/sales/order/history/")
        page = await b.get("shopping", link(history, f"View Order {v['order']}"))
        found = re.search(r"Grand Total: (\S+)", text(page))[1] if tid == 1011 else text(page)  # type: ignore[index]
    elif tid == 1013:
        history = await b.get("shopping", "/sales/order/history/")
        found = str(history.count(f"<td>{v['status']}</td>"))
    elif tid == 1101:
        page = await admin_find(b, "/catalog/product/", v["product"], f"Edit {v['product']}")
        found = re.search(r"Quantity in stock: (\d+)", text(page))[1]  # type: ignore[index]
    elif tid in (1102, 1104):
        page = text(await admin_find(b, "/customer/index/", v["customer"], f"View {v['customer']}"))
        found = re.search(r"Email: (\S+)" if tid == 1102 else r"Orders placed: (\d+)", page)[1]  # type: ignore[index]
    elif tid == 1103:
        page = await admin_find(b, "/sales/order/", v["order"], f"View order {v['order']}")
        found = re.search(r"Status: (\w+)", text(page))[1]  # type: ignore[index]
    elif tid in (1201, 1202):
        page = await post_page(b, v["title"])
        found = (
            re.search(r"(\d+) comments", text(page))[1]  # type: ignore[index]
            if tid == 1201
            else re.search(r'Submitted by <a href="/user/[^"]+">([^<]+)</a>', page)[1]  # type: ignore[index]
        )
    elif tid == 1203:
        page = await b.get("reddit", f"/f/{v['forum']}/top")
        found = text(re.search(r'class="submission-title">(.*?)</h2>', page)[1])  # type: ignore[index]
    elif tid == 1204:
        page = await b.get("reddit", "/forums")
        found = re.search(rf">{v['forum']}</a> <span>f/{v['forum']} has (\d+) posts</span>", page)[1]  # type: ignore[index]
    # --- state changes, done through the sites' forms --------------------------------------------
    elif tid in (1008, 1009, 1010):
        page = await product_page(b, v["product"])
        form = form_of(page, "/checkout/cart/add/")
        await b.post("shopping", form.pop("_action"), {**form, "qty": v.get("qty", 1)})
        if tid == 1010:
            checkout = await b.get(
                "shopping", link(await b.get("shopping", "/checkout/cart/"), "Proceed to Checkout")
            )
            await b.post("shopping", form_of(checkout, "/checkout/place/")["_action"], {})
    elif tid in (1105, 1106):
        page = await admin_find(b, "/catalog/product/", v["product"], f"Edit {v['product']}")
        price = re.search(r'name="price" value="([^"]*)"', page)[1]  # type: ignore[index]
        qty = re.search(r'name="qty" value="([^"]*)"', page)[1]  # type: ignore[index]
        action = re.search(r'<form method="post" action="([^"]+)">', page)[1]  # type: ignore[index]
        saved = await b.post(
            "shopping_admin", action, {"price": v.get("price", price), "qty": v.get("qty", qty)}
        )
        assert "You saved the product." in saved
    elif tid in (1208, 1209):
        page = await post_page(b, v["title"])
        label = 'aria-label="Upvote"' if tid == 1208 else f'aria-label="Downvote comment by {v["user"]}"'
        form = re.findall(
            r'<form class="inline" method="post" action="([^"]+)">(?:(?!</form>).)*?' + re.escape(label),
            page,
            re.S,
        )
        assert form, label
        await b.post("reddit", form[-1], {"dir": 1 if tid == 1208 else -1, "back": "/"})
    elif tid == 1210:
        page = await post_page(b, v["title"])
        action = re.search(r'<form method="post" action="([^"]+/comment)">', page)[1]  # type: ignore[index]
        await b.post("reddit", unescape(action), {"body": v["comment"]})
    elif tid == 1211:
        forum = await b.get("reddit", f"/f/{v['forum']}")
        await b.get("reddit", link(forum, "Submit a new post"))
        await b.post("reddit", "/submit", {"title": v["title"], "body": v["body"], "forum": v["forum"]})
    if exact is not None:
        assert found.lower() == exact.lower(), (task["task_id"], task["intent"], found, exact)
    for must in include:
        assert must.lower() in found.lower(), (task["task_id"], task["intent"], found, must)
    last = b.last
    for prog in ev["program_html"]:
        url = last if prog["url"] == "last" else b.expand(prog["url"])
        page = await b.get(task["sites"][0], url)
        value = element(page, prog["locator"])
        assert satisfied(value, prog["required_contents"]), (task["task_id"], task["intent"], value, prog)
    if ev["reference_url"]:
        site = task["sites"][0]
        for alternative in ev["reference_url"].split(" |OR| "):
            page = await b.get(site, b.expand(alternative))
            assert "<h1" in page, (task["task_id"], alternative)


async def test_every_reference_answer_is_true_on_the_sites(builtin_sites: Any) -> None:
    tasks = builtin_tasks()

    async def one(task: dict[str, Any]) -> None:
        jar = aiohttp.CookieJar(unsafe=True)  # cookies for 127.0.0.1 (an IP address)
        async with aiohttp.ClientSession(cookie_jar=jar) as http:
            http.cookie_jar.update_cookies({SANDBOX_COOKIE: "t" + secrets.token_hex(6)})
            await check(Browser(http, builtin_sites.urls), task, builtin_sites.accounts)

    sem = asyncio.Semaphore(16)

    async def bounded(task: dict[str, Any]) -> None:
        async with sem:
            await one(task)

    await asyncio.gather(*(bounded(t) for t in tasks))


async def test_sandboxes_keep_episodes_apart(builtin_sites: Any) -> None:
    """The same state-changing tasks in two sandboxes at once: each sees its own change only, and a
    third sandbox (and the base data) sees neither."""
    tasks = {
        t["intent_template_id"]: t for t in builtin_tasks() if t["intent_template_id"] in (1008, 1105, 1208)
    }
    jars = []
    for _ in range(3):
        jar = aiohttp.CookieJar(unsafe=True)
        jar.update_cookies({SANDBOX_COOKIE: "iso" + secrets.token_hex(6)})
        jars.append(jar)
    async with (
        aiohttp.ClientSession(cookie_jar=jars[0]) as a,
        aiohttp.ClientSession(cookie_jar=jars[1]) as b2,
    ):
        ba, bb = Browser(a, builtin_sites.urls), Browser(b2, builtin_sites.urls)
        for task in tasks.values():
            await asyncio.gather(
                check(ba, task, builtin_sites.accounts), check(bb, task, builtin_sites.accounts)
            )
        # Both voted once in their own sandbox: each sees base + 1, not base + 2.
        up = tasks[1208]["eval"]["program_html"][0]
        assert (
            element(await ba.get("reddit", ba.expand(up["url"])), up["locator"])
            == up["required_contents"]["exact_match"]
        )
    async with aiohttp.ClientSession(cookie_jar=jars[2]) as c:
        bc = Browser(c, builtin_sites.urls)
        for task in tasks.values():
            await bc.login(task["sites"][0], builtin_sites.accounts)
            for prog in task["eval"]["program_html"]:
                value = element(await bc.get(task["sites"][0], bc.expand(prog["url"])), prog["locator"])
                assert not satisfied(value, prog["required_contents"]), (task["intent"], value)
