"""The shop ("shopping", in the role of WebArena's One Stop Market) and its admin ("shopping_admin").

Paths follow Magento's where WebArena's tasks name them: /customer/account/login/,
/catalogsearch/result/?q=..., /checkout/cart/, /sales/order/history/,
/sales/order/view/order_id/N/ and, on the admin's port, /admin/sales/order/,
/admin/catalog/product/edit/id/N/, /admin/customer/index/. The admin's base URL ends in /admin as
WebArena's __SHOPPING_ADMIN__ does, and any admin page asked for without a sign-in shows the
sign-in form in place, as Magento's does.
"""

from __future__ import annotations

import datetime as dt
import math
import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from agentgym.envs.webarena.sites.data import ORDER_STATUSES, money
from agentgym.envs.webarena.sites.db import BASE, Database, password_hash
from agentgym.envs.webarena.sites.html import (
    Signer,
    e,
    page,
    page_number,
    pager,
    redirect,
    sandbox_of,
    with_query,
)

SHOP_NAME = "One Stop Market"
CUSTOMER_COOKIE = "shop_customer"
ADMIN_COOKIE = "shop_admin"
LIST_PAGE = 12  # products per catalogue page
GRID_PAGE = 20  # rows per admin grid page
HISTORY_PAGE = 10  # orders per page of a customer's history
GUEST = 0  # the cart owner of a browser that has not signed in

Row = sqlite3.Row
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# A product as the sandbox sees it: base row with the sandbox's admin edits applied.
_PRODUCT = (
    "SELECT p.id, p.category_id, p.name, p.slug, p.sku, COALESCE(e.price, p.price) AS price, "
    "COALESCE(e.stock, p.stock) AS stock, p.description FROM products p "
    "LEFT JOIN product_edits e ON e.product_id = p.id AND e.sandbox = ?"
)


def _terms_match(terms: list[str], text: str) -> bool:
    low = text.lower()
    return all(t in low for t in terms)


def _terms(query: str) -> list[str]:
    return [t for t in query.lower().split() if t]


def _orders_visible(
    c: sqlite3.Connection, sandbox: str, where: str = "1", args: tuple[Any, ...] = ()
) -> list[dict[str, Any]]:
    """Orders the sandbox sees (base + its own), newest first, with items and totals."""
    rows = c.execute(
        "SELECT o.*, cu.first || ' ' || cu.last AS customer, cu.email AS email FROM orders o "
        "JOIN customers cu ON cu.id = o.customer_id "
        f"WHERE o.sandbox IN (?, ?) AND ({where}) ORDER BY o.created DESC, o.id DESC",
        (BASE, sandbox, *args),
    ).fetchall()
    out = []
    for r in rows:
        items = c.execute("SELECT * FROM order_items WHERE order_id = ?", (r["id"],)).fetchall()
        subtotal = round(sum(i["qty"] * i["price"] for i in items), 2)
        out.append({**dict(r), "items": [dict(i) for i in items], "subtotal": subtotal,
                    "total": round(subtotal + r["shipping"], 2), "number": f"{r['id']:09d}"})  # fmt: skip
    return out


def _paginate(rows: list[Any], page_no: int, size: int) -> tuple[list[Any], int, int]:
    pages = max(1, math.ceil(len(rows) / size))
    page_no = min(page_no, pages)
    return rows[(page_no - 1) * size : page_no * size], page_no, pages


class Shop:
    """The storefront's handlers."""

    def __init__(self, db: Database, signer: Signer) -> None:
        self.db = db
        self.signer = signer

    # --- shared --------------------------------------------------------------------------------
    def customer_id(self, request: web.Request) -> int | None:
        account = self.signer.verify(request.cookies.get(CUSTOMER_COOKIE))
        return int(account) if account and account.isdigit() else None

    async def render(
        self, request: web.Request, title: str, body: str, message: str = "", error: str = ""
    ) -> web.Response:
        sandbox, cid = sandbox_of(request), self.customer_id(request)

        def head(c: sqlite3.Connection) -> tuple[int, list[Row], Row | None]:
            count = c.execute(
                "SELECT COALESCE(SUM(qty), 0) FROM cart WHERE sandbox = ? AND customer_id = ?",
                (sandbox, cid or GUEST),
            ).fetchone()[0]
            cats = c.execute("SELECT name, slug FROM categories ORDER BY id").fetchall()
            who = (
                c.execute("SELECT first, last FROM customers WHERE id = ?", (cid,)).fetchone()
                if cid
                else None
            )
            return count, cats, who

        count, cats, who = await self.db.run(head)
        account = (
            f'<span>Welcome, {e(who["first"])} {e(who["last"])}!</span> <a href="/customer/account/">My Account</a>'
            '<a href="/sales/order/history/">My Orders</a><a href="/customer/account/logout/">Sign Out</a>'
            if who
            else '<a href="/customer/account/login/">Sign In</a>'
        )
        header = (
            f'<a href="/"><strong>{SHOP_NAME}</strong></a> '
            '<form role="search" action="/catalogsearch/result/" method="get">'
            '<label for="search">Search</label> <input id="search" type="search" name="q" size="28"> '
            '<button type="submit">Search</button></form>'
            f'<nav aria-label="Account">{account} <a href="/checkout/cart/">My Cart '
            f'<span class="cart-count">{count}</span></a></nav>'
            '<nav aria-label="Categories">'
            + " ".join(f'<a href="/{e(r["slug"])}.html">{e(r["name"])}</a>' for r in cats)
            + "</nav>"
        )
        return page(f"{title} - {SHOP_NAME}", header, body, message, error)

    def need_login(self, request: web.Request) -> int:
        cid = self.customer_id(request)
        if cid is None:
            raise redirect(with_query("/customer/account/login/", referer=request.path_qs))
        return cid

    def product_list(self, rows: list[Row]) -> str:
        if not rows:
            return "<p>Your search returned no results.</p>"
        items = "".join(
            f'<li><a class="product-item-link" href="/{e(r["slug"])}.html">{e(r["name"])}</a> '
            f'<span class="price">{money(r["price"])}</span></li>'
            for r in rows
        )
        return f'<ol class="products" aria-label="Products">{items}</ol>'

    # --- catalogue -----------------------------------------------------------------------------
    async def home(self, request: web.Request) -> web.Response:
        def q(c: sqlite3.Connection) -> list[Row]:
            return c.execute(
                "SELECT c.name, c.slug, COUNT(p.id) AS n FROM categories c "
                "JOIN products p ON p.category_id = c.id GROUP BY c.id ORDER BY c.id"
            ).fetchall()

        cats = await self.db.run(q)
        body = (
            f"<h1>{SHOP_NAME}</h1><h2>Shop by category</h2><ul>"
            + "".join(
                f'<li><a href="/{e(r["slug"])}.html">{e(r["name"])}</a> ({r["n"]} products)</li>'
                for r in cats
            )
            + "</ul>"
        )
        return await self.render(request, "Home", body)

    async def slug_page(self, request: web.Request) -> web.Response:
        slug, sandbox = request.match_info["slug"], sandbox_of(request)

        def q(c: sqlite3.Connection) -> tuple[Row | None, Row | None]:
            cat = c.execute("SELECT * FROM categories WHERE slug = ?", (slug,)).fetchone()
            prod = None if cat else c.execute(_PRODUCT + " WHERE p.slug = ?", (sandbox, slug)).fetchone()
            return cat, prod

        cat, prod = await self.db.run(q)
        if cat is not None:
            return await self.category(request, cat)
        if prod is not None:
            return await self.product(request, prod)
        raise web.HTTPNotFound(text="Whoops, our bad... The page you requested was not found.")

    def _order_rows(self, rows: list[Row], order: str, direction: str) -> list[Row]:
        if order == "price":
            return sorted(rows, key=lambda r: (r["price"], r["name"]), reverse=direction == "desc")
        return sorted(rows, key=lambda r: r["name"], reverse=direction == "desc")

    def sorter(self, path: str, **params: object) -> str:
        links = (
            ("Name", "name", "asc"),
            ("Price: low to high", "price", "asc"),
            ("Price: high to low", "price", "desc"),
        )
        return (
            '<nav aria-label="Sort by"><span>Sort by:</span> '
            + " ".join(
                f'<a href="{e(with_query(path, **params, product_list_order=o, product_list_dir=d))}">{label}</a>'
                for label, o, d in links
            )
            + "</nav>"
        )

    async def category(self, request: web.Request, cat: Row) -> web.Response:
        sandbox = sandbox_of(request)
        rows = await self.db.run(
            lambda c: c.execute(_PRODUCT + " WHERE p.category_id = ?", (sandbox, cat["id"])).fetchall()
        )
        order = request.query.get("product_list_order", "name")
        direction = request.query.get("product_list_dir", "asc")
        rows = self._order_rows(rows, order, direction)
        shown, page_no, pages = _paginate(rows, page_number(request), LIST_PAGE)
        path = f"/{cat['slug']}.html"
        keep = {
            "product_list_order": request.query.get("product_list_order"),
            "product_list_dir": request.query.get("product_list_dir"),
        }
        body = (
            f"<h1>{e(cat['name'])}</h1><p>{len(rows)} items</p>{self.sorter(path)}"
            f"{self.product_list(shown)}{pager(path, page_no, pages, **keep)}"
        )
        return await self.render(request, cat["name"], body)

    async def search(self, request: web.Request) -> web.Response:
        query = request.query.get("q", "").strip()
        terms, sandbox = _terms(query), sandbox_of(request)
        rows = await self.db.run(lambda c: c.execute(_PRODUCT + " ORDER BY p.name", (sandbox,)).fetchall())
        rows = [r for r in rows if terms and _terms_match(terms, r["name"])]
        rows = self._order_rows(
            rows,
            request.query.get("product_list_order", "name"),
            request.query.get("product_list_dir", "asc"),
        )
        shown, page_no, pages = _paginate(rows, page_number(request), LIST_PAGE)
        body = (
            f"<h1>Search results for: '{e(query)}'</h1><p>{len(rows)} items</p>"
            f"{self.sorter('/catalogsearch/result/', q=query) if rows else ''}{self.product_list(shown)}"
            f"{pager('/catalogsearch/result/', page_no, pages, q=query)}"
        )
        return await self.render(request, f"Search results for: '{query}'", body)

    async def product(self, request: web.Request, prod: Row) -> web.Response:
        def q(c: sqlite3.Connection) -> tuple[list[Row], Row]:
            reviews = c.execute(
                "SELECT * FROM reviews WHERE product_id = ? ORDER BY id", (prod["id"],)
            ).fetchall()
            cat = c.execute("SELECT * FROM categories WHERE id = ?", (prod["category_id"],)).fetchone()
            return reviews, cat

        reviews, cat = await self.db.run(q)
        rating = (
            f"Rating: {sum(r['rating'] for r in reviews) / len(reviews):.1f} out of 5"
            if reviews
            else "Rating: no ratings yet"
        )
        stock = "Availability: In stock" if prod["stock"] > 0 else "Availability: Out of stock"
        review_html = "".join(
            f'<article class="review"><h3>{e(r["title"])}</h3><p>{r["rating"]} of 5 stars, by {e(r["author"])}</p>'
            f"<p>{e(r['text'])}</p></article>"
            for r in reviews
        )
        body = (
            f'<h1 class="page-title">{e(prod["name"])}</h1>'
            f'<p class="price">Price: {money(prod["price"])}</p><p class="sku">SKU: {e(prod["sku"])}</p>'
            f"<p>{rating}</p><p>Customer reviews: {len(reviews)}</p><p>{stock}</p>"
            '<form method="post" action="/checkout/cart/add/">'
            f'<input type="hidden" name="product_id" value="{prod["id"]}">'
            '<label for="qty">Qty</label> <input id="qty" name="qty" value="1" size="3" inputmode="numeric"> '
            '<button type="submit">Add to Cart</button></form>'
            f'<p>Category: <a href="/{e(cat["slug"])}.html">{e(cat["name"])}</a></p>'
            f"<h2>Description</h2><p>{e(prod['description'])}</p>"
            f"<h2>Customer Reviews</h2>{review_html or '<p>No reviews yet.</p>'}"
        )
        added = request.query.get("added", "")
        message = f"You added {prod['name']} to your shopping cart." if added else ""
        return await self.render(request, prod["name"], body, message=message)

    # --- cart and checkout -----------------------------------------------------------------
    async def _form_int(self, request: web.Request, name: str, low: int, high: int) -> int | None:
        form = await request.post()
        try:
            value = int(str(form.get(name, "")).strip())
        except ValueError:
            return None
        return value if low <= value <= high else None

    async def cart_add(self, request: web.Request) -> web.Response:
        form = await request.post()
        sandbox, owner = sandbox_of(request), self.customer_id(request) or GUEST
        try:
            pid, qty = int(str(form.get("product_id"))), int(str(form.get("qty", "1")).strip())
        except ValueError:
            raise web.HTTPBadRequest(text="The quantity must be a whole number.") from None

        def add(c: sqlite3.Connection) -> Row | None:
            prod = c.execute("SELECT slug FROM products WHERE id = ?", (pid,)).fetchone()
            if prod is None or not 1 <= qty <= 99:
                return None
            c.execute(
                "INSERT INTO cart VALUES (?,?,?,?,strftime('%s','now')) ON CONFLICT (sandbox, customer_id, product_id) "
                "DO UPDATE SET qty = MIN(99, qty + excluded.qty)",
                (sandbox, owner, pid, qty),
            )
            return prod

        prod = await self.db.run(add)
        if prod is None:
            raise web.HTTPBadRequest(text="Choose a quantity from 1 to 99 of an existing product.")
        raise redirect(f"/{prod['slug']}.html?added={qty}")

    async def cart_update(self, request: web.Request) -> web.Response:
        form = await request.post()
        sandbox, owner = sandbox_of(request), self.customer_id(request) or GUEST
        try:
            pid, qty = int(str(form.get("product_id"))), int(str(form.get("qty", "")).strip())
        except ValueError:
            raise web.HTTPBadRequest(text="The quantity must be a whole number.") from None
        if not 0 <= qty <= 99:
            raise web.HTTPBadRequest(text="Choose a quantity from 0 to 99.")

        def update(c: sqlite3.Connection) -> None:
            if qty == 0:
                c.execute(
                    "DELETE FROM cart WHERE sandbox = ? AND customer_id = ? AND product_id = ?",
                    (sandbox, owner, pid),
                )
            else:
                c.execute(
                    "UPDATE cart SET qty = ? WHERE sandbox = ? AND customer_id = ? AND product_id = ?",
                    (qty, sandbox, owner, pid),
                )

        await self.db.run(update)
        raise redirect("/checkout/cart/")

    async def cart_remove(self, request: web.Request) -> web.Response:
        form = await request.post()
        sandbox, owner = sandbox_of(request), self.customer_id(request) or GUEST
        pid = str(form.get("product_id", ""))
        await self.db.run(
            lambda c: c.execute(
                "DELETE FROM cart WHERE sandbox = ? AND customer_id = ? AND product_id = ?",
                (sandbox, owner, pid),
            )
        )
        raise redirect("/checkout/cart/")

    def _cart_rows(self, c: sqlite3.Connection, sandbox: str, owner: int) -> list[Row]:
        return c.execute(
            f"SELECT x.qty, q.* FROM cart x JOIN ({_PRODUCT}) q ON q.id = x.product_id "
            "WHERE x.sandbox = ? AND x.customer_id = ? ORDER BY x.added, x.product_id",
            (sandbox, sandbox, owner),
        ).fetchall()

    async def cart(self, request: web.Request) -> web.Response:
        sandbox, owner = sandbox_of(request), self.customer_id(request) or GUEST
        rows = await self.db.run(self._cart_rows, sandbox, owner)
        if not rows:
            return await self.render(
                request,
                "Shopping Cart",
                "<h1>Shopping Cart</h1><p>You have no items in your shopping cart.</p>",
            )
        lines = "".join(
            f'<tr><td><a href="/{e(r["slug"])}.html">{e(r["name"])}</a></td><td>{money(r["price"])}</td>'
            f'<td><form class="inline" method="post" action="/checkout/cart/update/">'
            f'<input type="hidden" name="product_id" value="{r["id"]}">'
            f'<input name="qty" value="{r["qty"]}" size="3" aria-label="Qty for {e(r["name"])}"> '
            f'<button type="submit" aria-label="Update {e(r["name"])}">Update</button></form></td>'
            f"<td>{money(r['qty'] * r['price'])}</td>"
            f'<td><form class="inline" method="post" action="/checkout/cart/remove/">'
            f'<input type="hidden" name="product_id" value="{r["id"]}">'
            f'<button type="submit" aria-label="Remove {e(r["name"])}">Remove</button></form></td></tr>'
            for r in rows
        )
        subtotal = sum(r["qty"] * r["price"] for r in rows)
        body = (
            "<h1>Shopping Cart</h1>"
            '<table class="cart-items"><thead><tr><th>Item</th><th>Price</th><th>Qty</th><th>Subtotal</th><th>Action</th>'
            f"</tr></thead><tbody>{lines}</tbody></table><p>Cart subtotal: {money(subtotal)}</p>"
            '<p><a href="/checkout/">Proceed to Checkout</a></p>'
        )
        return await self.render(request, "Shopping Cart", body)

    async def checkout(self, request: web.Request) -> web.Response:
        cid, sandbox = self.need_login(request), sandbox_of(request)

        def q(c: sqlite3.Connection) -> tuple[list[Row], Row]:
            return self._cart_rows(c, sandbox, cid), c.execute(
                "SELECT * FROM customers WHERE id = ?", (cid,)
            ).fetchone()

        rows, who = await self.db.run(q)
        if not rows:
            raise redirect("/checkout/cart/")
        subtotal = sum(r["qty"] * r["price"] for r in rows)
        body = (
            "<h1>Checkout</h1>"
            f"<p>Ship to: {e(who['first'])} {e(who['last'])}, {e(who['city'])}</p><h2>Order summary</h2><ul>"
            + "".join(f"<li>{e(r['name'])} x {r['qty']}: {money(r['qty'] * r['price'])}</li>" for r in rows)
            + f"</ul><p>Shipping: {money(5)}</p><p>Order total: {money(subtotal + 5)}</p>"
            '<form method="post" action="/checkout/place/"><button type="submit">Place Order</button></form>'
        )
        return await self.render(request, "Checkout", body)

    async def place(self, request: web.Request) -> web.Response:
        cid, sandbox = self.need_login(request), sandbox_of(request)

        def place(c: sqlite3.Connection) -> int | None:
            rows = self._cart_rows(c, sandbox, cid)
            if not rows:
                return None
            cur = c.execute(
                "INSERT INTO orders (sandbox, customer_id, created, status, shipping) VALUES (?,?,?,?,?)",
                (sandbox, cid, dt.date.today().isoformat(), "Pending", 5.0),
            )
            oid = int(cur.lastrowid or 0)
            c.executemany(
                "INSERT INTO order_items VALUES (?,?,?,?,?,?)",
                [(oid, r["id"], r["name"], r["sku"], r["qty"], r["price"]) for r in rows],
            )
            c.execute("DELETE FROM cart WHERE sandbox = ? AND customer_id = ?", (sandbox, cid))
            return oid

        oid = await self.db.run(place)
        if oid is None:
            raise redirect("/checkout/cart/")
        raise redirect(f"/checkout/onepage/success/?order_id={oid}")

    async def success(self, request: web.Request) -> web.Response:
        oid = request.query.get("order_id", "")
        body = "<h1>Thank you for your purchase!</h1>"
        if oid.isdigit():
            body += (
                f"<p>Your order number is: {int(oid):09d}.</p>"
                f'<p><a href="/sales/order/view/order_id/{int(oid)}/">View your order</a></p>'
            )
        return await self.render(request, "Success", body + '<p><a href="/">Continue Shopping</a></p>')

    # --- account -----------------------------------------------------------------------------
    async def login_form(self, request: web.Request, error: str = "") -> web.Response:
        referer = request.query.get("referer", "")
        body = (
            "<h1>Customer Login</h1><h2>Registered Customers</h2>"
            '<form method="post" action="/customer/account/loginPost/">'
            f'<input type="hidden" name="referer" value="{e(referer)}">'
            '<p><label for="email">Email</label> <input id="email" name="email" type="email" size="30"></p>'
            '<p><label for="pass">Password</label> <input id="pass" name="pass" type="password" size="30"></p>'
            '<p><button type="submit">Sign In</button></p></form>'
        )
        return await self.render(request, "Customer Login", body, error=error)

    async def login_post(self, request: web.Request) -> web.Response:
        form = await request.post()
        email, password = str(form.get("email", "")).strip().lower(), str(form.get("pass", ""))
        row = await self.db.run(
            lambda c: c.execute(
                "SELECT id FROM customers WHERE lower(email) = ? AND password = ?",
                (email, password_hash(password)),
            ).fetchone()
        )
        if row is None:
            return await self.login_form(
                request, "The account sign-in was incorrect or your account is disabled temporarily."
            )
        referer = str(form.get("referer", ""))
        response = redirect(
            referer if referer.startswith("/") and not referer.startswith("//") else "/customer/account/"
        )
        response.set_cookie(
            CUSTOMER_COOKIE, self.signer.sign(str(row["id"])), httponly=True, path="/", samesite="Lax"
        )
        raise response

    async def logout(self, request: web.Request) -> web.Response:
        response = redirect("/")
        response.del_cookie(CUSTOMER_COOKIE, path="/")
        raise response

    async def account(self, request: web.Request) -> web.Response:
        cid = self.need_login(request)
        who = await self.db.run(
            lambda c: c.execute("SELECT * FROM customers WHERE id = ?", (cid,)).fetchone()
        )
        body = (
            "<h1>My Account</h1><h2>Contact Information</h2>"
            f"<p>{e(who['first'])} {e(who['last'])}</p><p>{e(who['email'])}</p><p>City: {e(who['city'])}</p>"
            '<p><a href="/sales/order/history/">My Orders</a></p>'
        )
        return await self.render(request, "My Account", body)

    async def history(self, request: web.Request) -> web.Response:
        cid, sandbox = self.need_login(request), sandbox_of(request)
        orders = await self.db.run(_orders_visible, sandbox, "o.customer_id = ?", (cid,))
        shown, page_no, pages = _paginate(orders, page_number(request), HISTORY_PAGE)
        rows = "".join(
            f"<tr><td>{o['number']}</td><td>{o['created']}</td>"
            f"<td>{e(', '.join(i['name'] for i in o['items']))}</td><td>{money(o['total'])}</td><td>{o['status']}</td>"
            f'<td><a href="/sales/order/view/order_id/{o["id"]}/" aria-label="View Order {o["number"]}">View Order</a></td></tr>'
            for o in shown
        )
        body = (
            "<h1>My Orders</h1>"
            + (
                '<table class="order-history"><thead><tr><th>Order #</th><th>Date</th><th>Items</th><th>Order Total</th>'
                f"<th>Status</th><th>Action</th></tr></thead><tbody>{rows}</tbody></table>"
                if orders
                else "<p>You have placed no orders.</p>"
            )
            + pager("/sales/order/history/", page_no, pages)
        )
        return await self.render(request, "My Orders", body)

    async def order_view(self, request: web.Request) -> web.Response:
        cid, sandbox = self.need_login(request), sandbox_of(request)
        oid = int(request.match_info["order_id"])
        orders = await self.db.run(_orders_visible, sandbox, "o.customer_id = ? AND o.id = ?", (cid, oid))
        if not orders:
            raise web.HTTPNotFound(text="This order does not exist or is not yours.")
        return await self.render(
            request, f"Order # {orders[0]['number']}", order_detail(orders[0], admin=False)
        )


def order_detail(o: dict[str, Any], admin: bool) -> str:
    items = "".join(
        f"<tr><td>{e(i['name'])}</td><td>{e(i['sku'])}</td><td>{money(i['price'])}</td><td>{i['qty']}</td>"
        f"<td>{money(i['qty'] * i['price'])}</td></tr>"
        for i in o["items"]
    )
    who = f"<p>Customer Name: {e(o['customer'])}</p><p>Customer Email: {e(o['email'])}</p>" if admin else ""
    return (
        f"<h1>Order # {o['number']}</h1><p>Status: {o['status']}</p><p>Order Date: {o['created']}</p>{who}"
        '<h2>Items Ordered</h2><table class="order-details-items ordered"><thead><tr><th>Product Name</th><th>SKU</th>'
        f"<th>Price</th><th>Qty</th><th>Subtotal</th></tr></thead><tbody>{items}</tbody></table>"
        f"<p>Subtotal: {money(o['subtotal'])}</p><p>Shipping &amp; Handling: {money(o['shipping'])}</p>"
        f'<p class="grand-total">Grand Total: {money(o["total"])}</p>'
    )


def shop_app(db: Database, signer: Signer) -> web.Application:
    shop = Shop(db, signer)
    app = web.Application()
    app.add_routes(
        [
            web.get("/", shop.home),
            web.get("/catalogsearch/result/", shop.search),
            web.get("/checkout/cart/", shop.cart),
            web.post("/checkout/cart/add/", shop.cart_add),
            web.post("/checkout/cart/update/", shop.cart_update),
            web.post("/checkout/cart/remove/", shop.cart_remove),
            web.get("/checkout/", shop.checkout),
            web.post("/checkout/place/", shop.place),
            web.get("/checkout/onepage/success/", shop.success),
            web.get("/customer/account/login/", shop.login_form),
            web.post("/customer/account/loginPost/", shop.login_post),
            web.get("/customer/account/logout/", shop.logout),
            web.get("/customer/account/", shop.account),
            web.get("/sales/order/history/", shop.history),
            web.get(r"/sales/order/view/order_id/{order_id:\d+}/", shop.order_view),
            web.get(r"/{slug:[a-z0-9-]+}.html", shop.slug_page),
        ]
    )
    return app


# --- admin ---------------------------------------------------------------------------------------
class Admin:
    """The shop's admin panel, under /admin on its own port."""

    def __init__(self, db: Database, signer: Signer) -> None:
        self.db = db
        self.signer = signer

    def admin(self, request: web.Request) -> str | None:
        account = self.signer.verify(request.cookies.get(ADMIN_COOKIE))
        return account[len("admin:") :] if account and account.startswith("admin:") else None

    def render(
        self, request: web.Request, title: str, body: str, message: str = "", error: str = ""
    ) -> web.Response:
        user = self.admin(request)
        header = '<a href="/admin/dashboard/"><strong>One Stop Market Admin</strong></a> ' + (
            '<nav aria-label="Admin menu"><a href="/admin/dashboard/">Dashboard</a><a href="/admin/sales/order/">Orders</a>'
            '<a href="/admin/catalog/product/">Products</a><a href="/admin/customer/index/">Customers</a>'
            f'<span>Signed in as {e(user)}</span> <a href="/admin/auth/logout/">Sign Out</a></nav>'
            if user
            else ""
        )
        return page(f"{title} / Admin", header, body, message, error)

    def login_form(self, request: web.Request, next_path: str, error: str = "") -> web.Response:
        body = (
            "<h1>Welcome, please sign in</h1>"
            '<form method="post" action="/admin/auth/login/">'
            f'<input type="hidden" name="next" value="{e(next_path)}">'
            '<p><label for="username">Username</label> <input id="username" name="username" size="24"></p>'
            '<p><label for="login">Password</label> <input id="login" name="password" type="password" size="24"></p>'
            '<p><button type="submit">Sign in</button></p></form>'
        )
        return self.render(request, "Sign in", body, error=error)

    @web.middleware
    async def guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Every admin page without a sign-in answers with the sign-in form, as Magento's does."""
        if request.path == "/admin/auth/login/" or self.admin(request) is not None:
            return await handler(request)
        if not request.path.startswith("/admin"):
            raise redirect("/admin")
        return self.login_form(request, request.path_qs if request.method == "GET" else "/admin/dashboard/")

    async def login_post(self, request: web.Request) -> web.Response:
        form = await request.post()
        user, password = str(form.get("username", "")).strip(), str(form.get("password", ""))
        next_path = str(form.get("next", "")) or "/admin/dashboard/"
        ok = await self.db.run(
            lambda c: c.execute(
                "SELECT 1 FROM admins WHERE username = ? AND password = ?", (user, password_hash(password))
            ).fetchone()
        )
        if ok is None:
            return self.login_form(
                request,
                next_path,
                "The account sign-in was incorrect or your account is disabled temporarily.",
            )
        if not next_path.startswith("/admin") or next_path.rstrip("/") in ("/admin", "/admin/admin"):
            next_path = "/admin/dashboard/"
        response = redirect(next_path)
        response.set_cookie(
            ADMIN_COOKIE, self.signer.sign(f"admin:{user}"), httponly=True, path="/", samesite="Lax"
        )
        raise response

    async def logout(self, request: web.Request) -> web.Response:
        response = redirect("/admin")
        response.del_cookie(ADMIN_COOKIE, path="/")
        raise response

    async def root(self, request: web.Request) -> web.Response:
        raise redirect("/admin")

    async def dashboard(self, request: web.Request) -> web.Response:
        sandbox = sandbox_of(request)

        def q(c: sqlite3.Connection) -> tuple[int, int, int]:
            orders = c.execute(
                "SELECT COUNT(*) FROM orders WHERE sandbox IN (?, ?)", (BASE, sandbox)
            ).fetchone()[0]
            return (
                orders,
                c.execute("SELECT COUNT(*) FROM products").fetchone()[0],
                c.execute("SELECT COUNT(*) FROM customers").fetchone()[0],
            )

        orders, products, customers = await self.db.run(q)
        body = (
            "<h1>Dashboard</h1>"
            f'<ul><li><a href="/admin/sales/order/">Orders</a>: {orders}</li>'
            f'<li><a href="/admin/catalog/product/">Products</a>: {products}</li>'
            f'<li><a href="/admin/customer/index/">Customers</a>: {customers}</li></ul>'
        )
        return self.render(request, "Dashboard", body)

    def search_form(self, path: str, value: str, extra: str = "") -> str:
        return (
            f'<form role="search" method="get" action="{path}">{extra}'
            '<label for="grid-search">Search by keyword</label> '
            f'<input id="grid-search" type="search" name="search" value="{e(value)}" size="28"> '
            '<button type="submit">Search</button></form>'
        )

    async def orders(self, request: web.Request) -> web.Response:
        sandbox, search = sandbox_of(request), request.query.get("search", "").strip()
        status = request.query.get("status", "").strip().lower()
        orders = await self.db.run(_orders_visible, sandbox)
        if status:
            orders = [o for o in orders if o["status"].lower() == status]
        terms = _terms(search)
        if terms:
            orders = [o for o in orders if _terms_match(terms, f"{o['number']} {o['customer']} {o['email']}")]
        shown, page_no, pages = _paginate(orders, page_number(request), GRID_PAGE)
        filters = '<nav aria-label="Filter by status"><span>Status:</span> <a href="/admin/sales/order/">All statuses</a> ' + " ".join(
            f'<a href="{with_query("/admin/sales/order/", status=s.lower())}">{s}</a>' for s in ORDER_STATUSES
        ) + "</nav>"  # fmt: skip
        rows = "".join(
            f"<tr><td>{o['number']}</td><td>{o['created']}</td><td>{e(o['customer'])}</td><td>{money(o['total'])}</td>"
            f'<td>{o["status"]}</td><td><a href="/admin/sales/order/view/order_id/{o["id"]}/" '
            f'aria-label="View order {o["number"]}">View</a></td></tr>'
            for o in shown
        )
        body = (
            f"<h1>Orders</h1>{self.search_form('/admin/sales/order/', search)}{filters}<p>{len(orders)} records found</p>"
            '<table class="data-grid"><thead><tr><th>ID</th><th>Purchase Date</th><th>Bill-to Name</th><th>Grand Total</th>'
            f"<th>Status</th><th>Action</th></tr></thead><tbody>{rows}</tbody></table>"
            + pager("/admin/sales/order/", page_no, pages, search=search, status=status)
        )
        return self.render(request, "Orders", body)

    async def order_view(self, request: web.Request) -> web.Response:
        sandbox, oid = sandbox_of(request), int(request.match_info["order_id"])
        orders = await self.db.run(_orders_visible, sandbox, "o.id = ?", (oid,))
        if not orders:
            raise web.HTTPNotFound(text="This order no longer exists.")
        return self.render(request, f"Order # {orders[0]['number']}", order_detail(orders[0], admin=True))

    async def products(self, request: web.Request) -> web.Response:
        sandbox, search = sandbox_of(request), request.query.get("search", "").strip()
        rows = await self.db.run(lambda c: c.execute(_PRODUCT + " ORDER BY p.id", (sandbox,)).fetchall())
        terms = _terms(search)
        if terms:
            rows = [r for r in rows if _terms_match(terms, f"{r['name']} {r['sku']}")]
        shown, page_no, pages = _paginate(rows, page_number(request), GRID_PAGE)
        lines = "".join(
            f"<tr><td>{r['id']}</td><td>{e(r['name'])}</td><td>{e(r['sku'])}</td><td>{money(r['price'])}</td>"
            f'<td>{r["stock"]}</td><td><a href="/admin/catalog/product/edit/id/{r["id"]}/" aria-label="Edit {e(r["name"])}">Edit</a></td></tr>'
            for r in shown
        )
        body = (
            f"<h1>Products</h1>{self.search_form('/admin/catalog/product/', search)}<p>{len(rows)} records found</p>"
            '<table class="data-grid"><thead><tr><th>ID</th><th>Name</th><th>SKU</th><th>Price</th><th>Quantity</th>'
            f"<th>Action</th></tr></thead><tbody>{lines}</tbody></table>"
            + pager("/admin/catalog/product/", page_no, pages, search=search)
        )
        return self.render(request, "Products", body)

    async def product_edit(self, request: web.Request) -> web.Response:
        sandbox, pid = sandbox_of(request), int(request.match_info["id"])
        error = ""
        if request.method == "POST":
            form = await request.post()
            try:
                price = round(float(str(form.get("price", "")).strip().lstrip("$").replace(",", "")), 2)
                stock = int(str(form.get("qty", "")).strip())
                if price < 0 or stock < 0:
                    raise ValueError
            except ValueError:
                error = "Enter a price of 0 or more (e.g. 12.50) and a whole quantity of 0 or more."
            else:
                await self.db.run(
                    lambda c: c.execute(
                        "INSERT INTO product_edits VALUES (?,?,?,?) ON CONFLICT (sandbox, product_id) "
                        "DO UPDATE SET price = excluded.price, stock = excluded.stock",
                        (sandbox, pid, price, stock),
                    )
                )
                raise redirect(f"/admin/catalog/product/edit/id/{pid}/?saved=1")
        prod = await self.db.run(lambda c: c.execute(_PRODUCT + " WHERE p.id = ?", (sandbox, pid)).fetchone())
        if prod is None:
            raise web.HTTPNotFound(text="This product no longer exists.")
        body = (
            f"<h1>{e(prod['name'])}</h1><p>SKU: {e(prod['sku'])}</p><p>Price: {money(prod['price'])}</p>"
            f"<p>Quantity in stock: {prod['stock']}</p>"
            f'<form method="post" action="/admin/catalog/product/edit/id/{pid}/">'
            f'<p><label for="price">Price</label> <input id="price" name="price" value="{prod["price"]:.2f}" size="10"></p>'
            f'<p><label for="qty">Quantity</label> <input id="qty" name="qty" value="{prod["stock"]}" size="10"></p>'
            '<p><button type="submit">Save</button></p></form>'
        )
        message = "You saved the product." if request.query.get("saved") else ""
        return self.render(request, prod["name"], body, message=message, error=error)

    async def customers(self, request: web.Request) -> web.Response:
        search = request.query.get("search", "").strip()
        rows = await self.db.run(lambda c: c.execute("SELECT * FROM customers ORDER BY id").fetchall())
        terms = _terms(search)
        if terms:
            rows = [r for r in rows if _terms_match(terms, f"{r['first']} {r['last']} {r['email']}")]
        shown, page_no, pages = _paginate(rows, page_number(request), GRID_PAGE)
        lines = "".join(
            f"<tr><td>{r['id']}</td><td>{e(r['first'])} {e(r['last'])}</td><td>{e(r['email'])}</td><td>{e(r['city'])}</td>"
            f'<td><a href="/admin/customer/index/edit/id/{r["id"]}/" aria-label="View {e(r["first"])} {e(r["last"])}">View</a></td></tr>'
            for r in shown
        )
        body = (
            f"<h1>Customers</h1>{self.search_form('/admin/customer/index/', search)}<p>{len(rows)} records found</p>"
            '<table class="data-grid"><thead><tr><th>ID</th><th>Name</th><th>Email</th><th>City</th><th>Action</th></tr>'
            f"</thead><tbody>{lines}</tbody></table>"
            + pager("/admin/customer/index/", page_no, pages, search=search)
        )
        return self.render(request, "Customers", body)

    async def customer_view(self, request: web.Request) -> web.Response:
        sandbox, cid = sandbox_of(request), int(request.match_info["id"])

        def q(c: sqlite3.Connection) -> tuple[Row | None, list[dict[str, Any]]]:
            return c.execute("SELECT * FROM customers WHERE id = ?", (cid,)).fetchone(), _orders_visible(
                c, sandbox, "o.customer_id = ?", (cid,)
            )

        who, orders = await self.db.run(q)
        if who is None:
            raise web.HTTPNotFound(text="This customer no longer exists.")
        name = f"{who['first']} {who['last']}"
        body = (
            f"<h1>{e(name)}</h1><p>Email: {e(who['email'])}</p><p>Phone: {e(who['phone'])}</p><p>City: {e(who['city'])}</p>"
            f"<p>Orders placed: {len(orders)}</p>"
        )
        return self.render(request, name, body)


def admin_app(db: Database, signer: Signer) -> web.Application:
    admin = Admin(db, signer)
    app = web.Application(middlewares=[admin.guard])
    dashboard_paths = ("/admin", "/admin/", "/admin/admin", "/admin/admin/", "/admin/dashboard/")
    app.add_routes(
        [
            web.get("/", admin.root),
            *[web.get(p, admin.dashboard) for p in dashboard_paths],
            web.post("/admin/auth/login/", admin.login_post),
            web.get("/admin/auth/logout/", admin.logout),
            web.get("/admin/sales/order/", admin.orders),
            web.get(r"/admin/sales/order/view/order_id/{order_id:\d+}/", admin.order_view),
            web.get("/admin/catalog/product/", admin.products),
            web.route("*", r"/admin/catalog/product/edit/id/{id:\d+}/", admin.product_edit),
            web.get("/admin/customer/index/", admin.customers),
            web.get(r"/admin/customer/index/edit/id/{id:\d+}/", admin.customer_view),
        ]
    )
    return app
