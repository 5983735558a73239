"""The built-in sites over HTTP: start/stop, dying with their parent, sign-in pages as WebArena's
auto-login expects them, the shop's cart and checkout, the admin's guard, the forum's votes, the
sandbox cookie, and the `agentgym webarena` command."""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from typing import Any

import aiohttp
import psutil
import pytest

from agentgym.client.cli import build_parser
from agentgym.client.cli.webarena import _task_ids
from agentgym.envs.webarena.sites import SANDBOX_COOKIE, start_sites
from agentgym.envs.webarena.sites.data import generate

pytestmark = pytest.mark.timeout(90)


def session(sandbox: str | None = None) -> aiohttp.ClientSession:
    jar = aiohttp.CookieJar(unsafe=True)  # cookies for 127.0.0.1 (an IP address)
    if sandbox:
        jar.update_cookies({SANDBOX_COOKIE: sandbox})
    return aiohttp.ClientSession(cookie_jar=jar)


async def get(http: aiohttp.ClientSession, url: str, status: int = 200) -> str:
    async with http.get(url) as r:
        assert r.status == status, (url, r.status)
        return await r.text()


async def post(http: aiohttp.ClientSession, url: str, form: dict[str, Any]) -> tuple[str, str]:
    async with http.post(url, data={k: str(v) for k, v in form.items()}) as r:
        assert r.status == 200, (url, r.status, await r.text())
        return str(r.url), await r.text()


def cart_count(html: str) -> int:
    return int(re.search(r'class="cart-count">(\d+)<', html)[1])  # type: ignore[index]


def test_data_is_deterministic() -> None:
    assert generate(0) == generate.__wrapped__(0)  # a fresh generation equals the cached one
    assert generate.__wrapped__(1).products != generate(0).products
    d = generate(0)
    assert len({p.name for p in d.products}) == len(d.products)
    assert len({p.title for p in d.posts}) == len(d.posts)


async def test_sites_answer_with_accounts(builtin_sites: Any) -> None:
    assert set(builtin_sites.urls) == {"shopping", "shopping_admin", "reddit"}
    assert builtin_sites.urls["shopping_admin"].endswith("/admin")  # as WebArena's __SHOPPING_ADMIN__
    assert all(u.startswith("http://127.0.0.1:") for u in builtin_sites.urls.values())
    assert builtin_sites.accounts["shopping"] == ("emma.lopez@gmail.com", "Password.123")
    async with session() as http:
        shop = await get(http, builtin_sites.urls["shopping"] + "/customer/account/login/")
        # The names and labels WebArena's auto-login and login.py use.
        assert 'name="email"' in shop and 'name="pass"' in shop and ">Sign In</button>" in shop
        assert '<label for="email">Email</label>' in shop and '<label for="pass">Password</label>' in shop
        admin = await get(http, builtin_sites.urls["shopping_admin"])  # any admin page: the form in place
        assert 'name="username"' in admin and 'name="password"' in admin and ">Sign in</button>" in admin
        assert 'name="username"' in await get(
            http, builtin_sites.urls["shopping_admin"] + "/catalog/product/"
        )
        forum = await get(http, builtin_sites.urls["reddit"] + "/login")
        assert 'name="_username"' in forum and 'name="_password"' in forum and ">Log in</button>" in forum
        await get(http, builtin_sites.urls["shopping"] + "/no-such-page.html", status=404)


async def test_sign_in_right_and_wrong(builtin_sites: Any) -> None:
    urls, accounts = builtin_sites.urls, builtin_sites.accounts
    async with session() as http:
        _, page = await post(
            http, urls["shopping"] + "/customer/account/loginPost/", {"email": "x@y.z", "pass": "no"}
        )
        assert "sign-in was incorrect" in page
        _, page = await post(
            http, urls["shopping_admin"] + "/auth/login/", {"username": "admin", "password": "no"}
        )
        assert "sign-in was incorrect" in page
        _, page = await post(http, urls["reddit"] + "/login_check", {"_username": "nobody", "_password": "x"})
        assert "Invalid credentials" in page
        # A page that needs a sign-in sends the browser to the form and back afterwards.
        where, _ = await post(http, urls["reddit"] + "/vote/submission/1", {"dir": 1})
        assert "/login" in where
        user, password = accounts["shopping_admin"]
        where, page = await post(
            http,
            urls["shopping_admin"] + "/auth/login/",
            {"username": user, "password": password, "next": "/admin"},
        )
        assert where.endswith("/admin/dashboard/") and "Signed in as admin" in page
        email, password = accounts["shopping"]
        where, page = await post(
            http,
            urls["shopping"] + "/customer/account/loginPost/",
            {"email": email, "pass": password, "referer": "/sales/order/history/"},
        )
        assert where.endswith("/sales/order/history/") and "My Orders" in page


async def test_cart_checkout_and_sandbox(builtin_sites: Any) -> None:
    shop = builtin_sites.urls["shopping"]
    product = generate(0).products[0]
    email, password = builtin_sites.accounts["shopping"]
    mine, other = "a" + secrets.token_hex(6), "b" + secrets.token_hex(6)
    async with session(mine) as http, session(other) as them, session() as shared:
        await post(http, shop + "/customer/account/loginPost/", {"email": email, "pass": password})
        _, page = await post(http, shop + "/checkout/cart/add/", {"product_id": product.id, "qty": 3})
        assert f"You added {product.name}" in page and cart_count(page) == 3
        _, page = await post(http, shop + "/checkout/cart/update/", {"product_id": product.id, "qty": 2})
        assert cart_count(page) == 2 and product.name in page
        # Another sandbox, and a browser without the cookie (the shared "default" one), see no cart.
        assert cart_count(await get(them, shop + "/")) == 0
        assert cart_count(await get(shared, shop + "/")) == 0
        _, page = await post(http, shop + "/checkout/cart/remove/", {"product_id": product.id})
        assert "no items in your shopping cart" in page and cart_count(page) == 0
        await post(http, shop + "/checkout/cart/add/", {"product_id": product.id, "qty": 1})
        where, page = await post(http, shop + "/checkout/place/", {})
        assert "/checkout/onepage/success/" in where and "Your order number is" in page
        history = await get(http, shop + "/sales/order/history/")
        first_row = re.search(r"<tbody><tr>(.*?)</tr>", history)[1]  # type: ignore[index]
        assert product.name in first_row and "Pending" in first_row
        await post(them, shop + "/customer/account/loginPost/", {"email": email, "pass": password})
        assert (
            product.name
            not in re.search(r"<tbody><tr>(.*?)</tr>", await get(them, shop + "/sales/order/history/"))[1]
        )  # type: ignore[index]
        # Malformed input is refused with a message, not a crash.
        async with http.post(
            shop + "/checkout/cart/add/", data={"product_id": product.id, "qty": "lots"}
        ) as r:
            assert r.status == 400 and "whole number" in await r.text()


async def test_catalogue_search_sort_and_pages(builtin_sites: Any) -> None:
    shop = builtin_sites.urls["shopping"]
    d = generate(0)
    cat = d.categories[0]
    async with session() as http:
        page = await get(http, f"{shop}/{cat.slug}.html?product_list_order=price&product_list_dir=asc")
        prices = [
            float(p.replace(",", "")) for p in re.findall(r'<span class="price">\$([\d,.]+)</span>', page)
        ]
        assert prices == sorted(prices) and len(prices) == 12  # one page of 12 out of 15
        assert "Next page" in page and "Page 1 of 2" in page
        page2 = await get(http, f"{shop}/{cat.slug}.html?product_list_order=price&product_list_dir=asc&p=2")
        assert len(re.findall('class="price"', page2)) == 3
        results = await get(
            http, f"{shop}/catalogsearch/result/?q=" + "+".join(d.products[5].name.split()[-2:])
        )
        assert d.products[5].name in results
        assert "Your search returned no results" in await get(http, f"{shop}/catalogsearch/result/?q=zzzz")


async def test_admin_edit_and_forum_votes(builtin_sites: Any) -> None:
    urls, accounts = builtin_sites.urls, builtin_sites.accounts
    d = generate(0)
    product, post_ = d.products[3], d.posts[0]
    forum = d.forum_by_id[post_.forum_id].name
    post_url = f"{urls['reddit']}/f/{forum}/{post_.id}/{post_.slug}"
    async with session("x" + secrets.token_hex(6)) as http:
        user, password = accounts["shopping_admin"]
        await post(http, urls["shopping_admin"] + "/auth/login/", {"username": user, "password": password})
        edit = f"{urls['shopping_admin']}/catalog/product/edit/id/{product.id}/"
        _, page = await post(http, edit, {"price": "bad", "qty": 3})
        assert "Enter a price" in page
        _, page = await post(http, edit, {"price": "12.5", "qty": 7})
        assert "You saved the product." in page and 'value="12.50"' in page and "Quantity in stock: 7" in page
        # The storefront of the same sandbox shows the new price.
        assert "Price: $12.50" in await get(http, f"{urls['shopping']}/{product.slug}.html")
        user, password = accounts["reddit"]
        await post(http, urls["reddit"] + "/login_check", {"_username": user, "_password": password})
        vote = f"{urls['reddit']}/vote/submission/{post_.id}"
        back = f"/f/{forum}/{post_.id}/{post_.slug}"

        def score(html: str) -> int:
            inner = html.split('class="submission__inner"', 1)[1]
            return int(re.search(r'class="vote-score">(-?\d+)<', inner)[1])  # type: ignore[index]

        _, page = await post(http, vote, {"dir": 1, "back": back})
        assert score(page) == post_.score + 1 and 'aria-pressed="true" aria-label="Upvote"' in page
        _, page = await post(http, vote, {"dir": -1, "back": back})
        assert score(page) == post_.score - 1
        _, page = await post(http, vote, {"dir": -1, "back": back})  # the same vote again takes it back
        assert score(page) == post_.score
        _, page = await post(http, post_url + "/comment", {"body": "A sandboxed comment"})
        assert "A sandboxed comment" in page and f"{len(post_.comments) + 1} comments" in page
    async with session() as http:
        assert "Price: $12.50" not in await get(http, f"{urls['shopping']}/{product.slug}.html")
        assert "A sandboxed comment" not in await get(http, post_url)


def test_child_dies_with_its_parent() -> None:
    """The sites' process exits when the process that started it is killed (SIGKILL: no cleanup ran)."""
    code = (
        "import json, sys, time\n"
        "from agentgym.envs.webarena.sites import start_sites\n"
        "s = start_sites()\n"
        "print(json.dumps({'pid': s.process.pid, 'url': s.urls['shopping']}), flush=True)\n"
        "time.sleep(120)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        info = json.loads(parent.stdout.readline())  # type: ignore[union-attr]
        child = psutil.Process(info["pid"])
        assert child.is_running() and child.ppid() == parent.pid
    finally:
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
    deadline = time.monotonic() + 10
    while child.is_running() and child.status() != psutil.STATUS_ZOMBIE and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE


def test_stop_and_context_manager() -> None:
    with start_sites(ports={"reddit": 0}) as sites:
        proc = sites.process
        assert proc.poll() is None
    assert proc.returncode == 0  # closing stdin asked it to exit; it did, cleanly
    sites.stop()  # again: harmless
    with pytest.raises(ValueError):
        start_sites(ports={"gitlab": 1234}).stop()


def test_cli_tasks_and_parser(tmp_path: Any) -> None:
    parser = build_parser()
    args = parser.parse_args(["webarena", "tasks", "--out", str(tmp_path)])
    assert args.func(args) == 0
    files = sorted(tmp_path.iterdir(), key=lambda p: int(p.stem))
    assert len(files) >= 200 and files[0].name == "0.json"
    assert json.loads(files[7].read_text())["task_id"] == 7
    args = parser.parse_args(["webarena", "sites", "--shopping-port", "7770", "--host", "10.1.2.3"])
    assert args.shopping_port == 7770 and args.reddit_port == 0
    assert args.func(args) == 2  # a non-loopback address without --insecure is refused
    args = parser.parse_args(["webarena", "solve", "--tasks", "0-2,5", "--concurrency", "2"])
    assert _task_ids(args.tasks, 10) == [0, 1, 2, 5] and _task_ids("", 3) == [0, 1, 2]
    with pytest.raises(SystemExit, match="no built-in task 10"):
        _task_ids("9-10", 10)
