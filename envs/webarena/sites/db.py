"""The sites' SQLite database: the generated data, plus every episode's writes kept apart by sandbox.

Base rows (the generated data) have sandbox ''. A write made by a browser whose sandbox cookie is S
is stored with sandbox S (new orders, posts, comments, votes, cart lines) or, for a change to a base
row (an admin's price or stock edit), as an override row keyed by (S, row). Every read of sandbox S
sees base rows plus S's own rows and overrides, so concurrent episodes, even of the same task,
never see each other's changes, and the base data never changes.

SQLite calls block, so they run on one dedicated thread (`Database.run`), never on the event loop;
one thread also means one connection and no locking between writers.
"""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from agentgym.envs.webarena.sites.data import (
    ADMIN_PASSWORD,
    ADMIN_USERNAME,
    FORUM_PASSWORD,
    SHIPPING,
    SHOP_PASSWORD,
    SiteData,
)

T = TypeVar("T")
BASE = ""  # the sandbox of the generated data

_SCHEMA = """
CREATE TABLE categories (id INTEGER PRIMARY KEY, name TEXT, slug TEXT UNIQUE);
CREATE TABLE products (id INTEGER PRIMARY KEY, category_id INTEGER, name TEXT, slug TEXT UNIQUE,
    sku TEXT, price REAL, stock INTEGER, description TEXT);
CREATE TABLE product_edits (sandbox TEXT, product_id INTEGER, price REAL, stock INTEGER,
    PRIMARY KEY (sandbox, product_id));
CREATE TABLE reviews (id INTEGER PRIMARY KEY, product_id INTEGER, author TEXT, rating INTEGER,
    title TEXT, text TEXT);
CREATE INDEX reviews_product ON reviews (product_id);
CREATE TABLE customers (id INTEGER PRIMARY KEY, first TEXT, last TEXT, email TEXT UNIQUE, city TEXT,
    phone TEXT, password TEXT);
CREATE TABLE admins (username TEXT PRIMARY KEY, password TEXT);
CREATE TABLE orders (id INTEGER PRIMARY KEY AUTOINCREMENT, sandbox TEXT, customer_id INTEGER,
    created TEXT, status TEXT, shipping REAL);
CREATE INDEX orders_customer ON orders (customer_id);
CREATE INDEX orders_sandbox ON orders (sandbox);
CREATE TABLE order_items (order_id INTEGER, product_id INTEGER, name TEXT, sku TEXT, qty INTEGER,
    price REAL);
CREATE INDEX order_items_order ON order_items (order_id);
CREATE TABLE cart (sandbox TEXT, customer_id INTEGER, product_id INTEGER, qty INTEGER, added INTEGER,
    PRIMARY KEY (sandbox, customer_id, product_id));
CREATE TABLE forums (id INTEGER PRIMARY KEY, name TEXT UNIQUE, title TEXT, description TEXT);
CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT UNIQUE, joined TEXT, password TEXT);
CREATE TABLE posts (id INTEGER PRIMARY KEY AUTOINCREMENT, sandbox TEXT, forum_id INTEGER,
    author_id INTEGER, title TEXT, slug TEXT, body TEXT, score INTEGER, created TEXT);
CREATE INDEX posts_forum ON posts (forum_id);
CREATE INDEX posts_sandbox ON posts (sandbox);
CREATE TABLE comments (id INTEGER PRIMARY KEY AUTOINCREMENT, sandbox TEXT, post_id INTEGER,
    author_id INTEGER, body TEXT, score INTEGER, created TEXT);
CREATE INDEX comments_post ON comments (post_id);
CREATE TABLE votes (sandbox TEXT, user_id INTEGER, kind TEXT, target_id INTEGER, dir INTEGER,
    PRIMARY KEY (sandbox, user_id, kind, target_id));
"""


def password_hash(password: str) -> str:
    return hashlib.sha256(password.encode()).hexdigest()


def load(conn: sqlite3.Connection, data: SiteData) -> None:
    """Create the schema and insert the generated data as the base sandbox."""
    conn.executescript(_SCHEMA)
    conn.executemany(
        "INSERT INTO categories VALUES (?,?,?)", [(c.id, c.name, c.slug) for c in data.categories]
    )
    conn.executemany(
        "INSERT INTO products VALUES (?,?,?,?,?,?,?,?)",
        [
            (p.id, p.category_id, p.name, p.slug, p.sku, p.price, p.stock, p.description)
            for p in data.products
        ],
    )
    conn.executemany(
        "INSERT INTO reviews (product_id, author, rating, title, text) VALUES (?,?,?,?,?)",
        [(p.id, r.author, r.rating, r.title, r.text) for p in data.products for r in p.reviews],
    )
    shop_pw = password_hash(SHOP_PASSWORD)
    conn.executemany(
        "INSERT INTO customers VALUES (?,?,?,?,?,?,?)",
        [(c.id, c.first, c.last, c.email, c.city, c.phone, shop_pw) for c in data.customers],
    )
    conn.execute("INSERT INTO admins VALUES (?,?)", (ADMIN_USERNAME, password_hash(ADMIN_PASSWORD)))
    for o in data.orders:
        conn.execute(
            "INSERT INTO orders VALUES (?,?,?,?,?,?)",
            (o.id, BASE, o.customer_id, o.created, o.status, SHIPPING),
        )
        conn.executemany(
            "INSERT INTO order_items VALUES (?,?,?,?,?,?)",
            [(o.id, i.product_id, data.product_by_id[i.product_id].name, data.product_by_id[i.product_id].sku, i.qty, i.price)
             for i in o.items],
        )  # fmt: skip
    forum_pw = password_hash(FORUM_PASSWORD)
    conn.executemany(
        "INSERT INTO forums VALUES (?,?,?,?)", [(f.id, f.name, f.title, f.description) for f in data.forums]
    )
    conn.executemany(
        "INSERT INTO users VALUES (?,?,?,?)", [(u.id, u.name, u.joined, forum_pw) for u in data.users]
    )
    for p in data.posts:
        conn.execute(
            "INSERT INTO posts VALUES (?,?,?,?,?,?,?,?,?)",
            (p.id, BASE, p.forum_id, p.author_id, p.title, p.slug, p.body, p.score, p.created),
        )
        conn.executemany(
            "INSERT INTO comments VALUES (?,?,?,?,?,?,?)",
            [(c.id, BASE, c.post_id, c.author_id, c.body, c.score, c.created) for c in p.comments],
        )
    # New rows of any sandbox get ids after the base data's, far enough to read as new.
    conn.execute("UPDATE sqlite_sequence SET seq = 100000 WHERE name IN ('orders', 'posts', 'comments')")
    conn.commit()


class Database:
    """One SQLite connection on its own thread; `run(fn, ...)` calls fn(conn, ...) there."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="webarena-sites-db")
        self._conn: sqlite3.Connection | None = None

    def _call(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        if self._conn is None:
            self._conn = sqlite3.connect(self.path, check_same_thread=True)
            self._conn.row_factory = sqlite3.Row
        try:
            result = fn(self._conn, *args)
            self._conn.commit()
            return result
        except BaseException:
            self._conn.rollback()
            raise

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._call, fn, args)

    def close(self) -> None:
        def _close() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        self._pool.submit(_close).result()
        self._pool.shutdown(wait=True)
