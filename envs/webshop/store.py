"""The shop's catalog as one SQLite file: products, goals (task order) and a full-text index.

The original searches a Lucene (pyserini) index with BM25 and shows the top 50 hits. Here the same
documents go into an SQLite FTS5 table (Porter stemming, BM25 ranking): a product's document is its
title, description, first feature line and option list, lower-cased, as in the original's index.
A query is the OR of its words without Lucene's English stop words, as Lucene's query parser reads
free text; ties are broken by catalog order.

The file is built once (from the generated catalog or from the original's JSON files) and cached;
it carries the string it was built from and is rebuilt when that changes. Every thread opens its
own read-only connection.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sqlite3
import tempfile
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from agentgym.envs._data import _cache_dirs

log = logging.getLogger(__name__)

SEARCH_RETURN_N = 50
# Lucene's English stop words, which its analyzer drops from queries.
STOP_WORDS = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their then "
    "there these they this to was will with".split()
)
# Queries longer than this many words are cut (Lucene refuses more than 1,024 clauses).
MAX_QUERY_TERMS = 128

_WORD = re.compile(r"[^\W_]+")
_POSSESSIVE = re.compile(r"['’]s\b")

Product = Mapping[str, Any]
Goal = Mapping[str, Any]


def normalize_text(text: str) -> str:
    """Lower-case and drop possessive 's, as Lucene's English analyzer does, for docs and queries."""
    return _POSSESSIVE.sub("", text.lower())


def document_text(product: Product) -> str:
    """What the index holds for a product (the original indexes these four fields)."""
    options = ", and ".join(f"{name}: {', '.join(values)}" for name, values in product["options"].items())
    bullets = product["BulletPoints"]
    return normalize_text(
        " ".join([product["Title"], product["Description"], bullets[0] if bullets else "", options])
    )


def match_expression(keywords: str) -> str | None:
    """An FTS5 MATCH expression: the OR of the query's words, or None when no word is left."""
    words = [w for w in _WORD.findall(normalize_text(keywords)) if w not in STOP_WORDS]
    if not words:
        return None
    return " OR ".join(f'"{w}"' for w in words[:MAX_QUERY_TERMS])


# --- building --------------------------------------------------------------------------------------
def write_database(path: Path, products: Iterable[Product], goals: Sequence[Goal], source: str) -> None:
    """Write a catalog file at `path` (which must not exist)."""
    db = sqlite3.connect(path)
    try:
        db.executescript(
            """
            PRAGMA journal_mode = OFF;
            PRAGMA synchronous = OFF;
            CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
            CREATE TABLE products (id INTEGER PRIMARY KEY, asin TEXT NOT NULL UNIQUE, doc TEXT NOT NULL);
            CREATE TABLE goals (id INTEGER PRIMARY KEY, doc TEXT NOT NULL);
            CREATE VIRTUAL TABLE docs USING fts5(contents, content='', tokenize='porter unicode61');
            """
        )
        n = 0
        for n, product in enumerate(products, start=1):
            db.execute(
                "INSERT INTO products (id, asin, doc) VALUES (?, ?, ?)",
                (n, product["asin"], json.dumps(product, separators=(",", ":"))),
            )
            db.execute("INSERT INTO docs (rowid, contents) VALUES (?, ?)", (n, document_text(product)))
        db.executemany(
            "INSERT INTO goals (id, doc) VALUES (?, ?)",
            ((i, json.dumps(g, separators=(",", ":"))) for i, g in enumerate(goals)),
        )
        db.execute("INSERT INTO docs (docs) VALUES ('optimize')")
        db.executemany(
            "INSERT INTO meta VALUES (?, ?)",
            [("source", source), ("products", str(n)), ("goals", str(len(goals)))],
        )
        db.commit()
    finally:
        db.close()


def _source_of(path: Path) -> str | None:
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            row = db.execute("SELECT value FROM meta WHERE key = 'source'").fetchone()
        finally:
            db.close()
    except sqlite3.Error:
        return None
    return row[0] if row else None


def cached_database(
    name: str, source: str, build: Callable[[Path], None], directories: Sequence[Path] | None = None
) -> Path:
    """The path of catalog file `name` built from `source`, building it with `build(path)` when
    none of `directories` (default: the env data caches) has it. Written to a temporary file and
    renamed, so readers never see half a file and concurrent builders do not clash."""
    directories = list(directories) if directories is not None else _cache_dirs()
    for directory in directories:
        path = directory / name
        if path.is_file() and _source_of(path) == source:
            return path
    errors = []
    for directory in directories:
        try:
            directory.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".tmp")
            os.close(fd)
            os.unlink(tmp)
        except OSError as exc:
            errors.append(f"{directory}: {exc}")
            continue
        try:
            build(Path(tmp))
            os.replace(tmp, directory / name)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        log.info("built webshop catalog", extra={"file": str(directory / name)})
        return directory / name
    raise OSError(f"no writable cache directory for {name}: {'; '.join(errors)}")


# --- reading ---------------------------------------------------------------------------------------
class Catalog:
    """Read access to a catalog file, shared by every episode of a process."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        meta = dict(self._db().execute("SELECT key, value FROM meta").fetchall())
        self.source = meta["source"]
        self.num_products = int(meta["products"])
        self.num_goals = int(meta["goals"])
        # Per-instance caches: products and goals are immutable, searches are pure.
        self.product = lru_cache(maxsize=8192)(self._product)
        self.goal = lru_cache(maxsize=4096)(self._goal)
        self.search = lru_cache(maxsize=16384)(self._search)

    def _db(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
            self._local.db = db
        return db

    def _product(self, asin: str) -> Product | None:
        """The product with this ASIN (upper case), or None."""
        row = self._db().execute("SELECT doc FROM products WHERE asin = ?", (asin,)).fetchone()
        return json.loads(row[0]) if row else None

    def _goal(self, index: int) -> Goal:
        row = self._db().execute("SELECT doc FROM goals WHERE id = ?", (index,)).fetchone()
        if row is None:
            raise IndexError(f"no goal {index}")
        goal: Goal = json.loads(row[0])
        return goal

    def _search(self, keywords: str) -> tuple[str, ...]:
        """ASINs of the top hits for `keywords`, best first."""
        expression = match_expression(keywords)
        if expression is None:
            return ()
        rows = self._db().execute(
            "SELECT p.asin FROM docs JOIN products p ON p.id = docs.rowid"
            " WHERE docs MATCH ? ORDER BY docs.rank, docs.rowid LIMIT ?",
            (expression, SEARCH_RETURN_N),
        )
        return tuple(asin for (asin,) in rows)
