"""The viewer's episode index: one SQLite table of episode summaries and a full-text index.

Every episode the viewer shows is one row: what the filters and tables need (env, task, success,
reward, rounds, iteration, weight versions, ...) and where its record lies (a file and byte range,
a store line, or the record itself for sources without offsets). The text of its actions and
observations goes into an FTS5 table, so search is an index lookup, not a scan of the records.

The database is a cache in a temporary file (nothing the viewer reads is ever written to): it is
rebuilt on every start, and one thread uses it (`ViewerState` runs every call on its own
executor), which keeps SQLite's locking out of the picture.
"""

from __future__ import annotations

import math
import re
import sqlite3
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

MAX_TEXT = 1 << 16  # characters of an episode's text indexed for search
MAX_PER_PAGE = 500
SORTS = {
    "key": "env, task_id, sample, iteration, uid",  # env, then task, sample, iteration: 2 before 10
    "arrival": "uid",  # the order records were written in
    "reward": "reward IS NULL, reward, uid",
    "-reward": "reward IS NULL, reward DESC, uid",
    "rounds": "rounds IS NULL, rounds, uid",
    "-rounds": "rounds IS NULL, rounds DESC, uid",
}

_SCHEMA = """
CREATE TABLE ep (
    uid INTEGER PRIMARY KEY AUTOINCREMENT,
    run TEXT NOT NULL,
    key TEXT, item_id TEXT, env TEXT, task_id INTEGER, sample INTEGER,
    success INTEGER, reward REAL, rounds INTEGER, iteration INTEGER,
    versions TEXT,          -- "|v1|v2|": the weight versions that produced the agent turns
    finish TEXT, turns INTEGER, policy TEXT, t REAL,
    src TEXT, seg INTEGER, off INTEGER, len INTEGER   -- where the record is; src NULL: no record
);
CREATE INDEX ep_run ON ep(run, uid);
CREATE INDEX ep_run_env ON ep(run, env, uid);
CREATE INDEX ep_run_item ON ep(run, item_id);
CREATE INDEX ep_run_iteration ON ep(run, iteration);
CREATE INDEX ep_run_versions ON ep(run, versions);
-- The sorts (SORTS), so that a deep page of a sorted run is an index walk, not a sort.
CREATE INDEX ep_key ON ep(run, env, task_id, sample, iteration, uid);
CREATE INDEX ep_reward_up ON ep(run, reward IS NULL, reward, uid);
CREATE INDEX ep_reward_down ON ep(run, reward IS NULL, reward DESC, uid);
CREATE INDEX ep_rounds_up ON ep(run, rounds IS NULL, rounds, uid);
CREATE INDEX ep_rounds_down ON ep(run, rounds IS NULL, rounds DESC, uid);
CREATE TABLE blob (uid INTEGER PRIMARY KEY, data BLOB NOT NULL);
CREATE VIRTUAL TABLE ep_text USING fts5(body, content='', tokenize='unicode61');
"""


@dataclass(slots=True)
class Row:
    """One episode's summary as a source reads it (see the module docstring)."""

    run: str
    key: str
    item_id: str
    env: str
    task_id: int | None = None
    sample: int = 0
    success: bool | None = None
    reward: float | None = None
    rounds: int | None = None
    iteration: int | None = None
    versions: tuple[str, ...] = ()
    finish: str | None = None
    turns: int = 0
    policy: str | None = None
    t: float | None = None
    src: str | None = None  # a file path, "blob" (the record is kept in the index), or None
    seg: int | None = None
    off: int | None = None
    len: int | None = None
    text: str = ""  # actions and observations, for search
    data: bytes | None = None  # the record JSON when src == "blob"


_COLUMNS = [f.name for f in fields(Row) if f.name not in ("text", "data")]


@dataclass
class Filters:
    """An episode query, from the page's URL parameters; `parse` says what is wrong, if anything."""

    runs: list[str]
    env: str | None = None
    task: int | None = None
    item: str | None = None
    success: bool | None = None
    min_reward: float | None = None
    max_reward: float | None = None
    min_rounds: int | None = None
    max_rounds: int | None = None
    iteration: int | None = None
    version: str | None = None
    q: str | None = None
    sort: str = "key"
    page: int = 1
    per_page: int = 50

    @classmethod
    def parse(cls, params: Any, known_runs: set[str]) -> Filters:
        """From a multidict of query parameters. ValueError with a message for the page."""
        runs = params.getall("run", [])
        if not runs:
            raise ValueError("name at least one run (run=ID; GET /api/runs lists them)")
        unknown = [r for r in runs if r not in known_runs]
        if unknown:
            raise ValueError(f"unknown run {unknown[0]!r}; GET /api/runs lists the runs")
        f = cls(runs=runs)
        for name, cast in (
            ("task", int), ("min_rounds", int), ("max_rounds", int), ("iteration", int),
            ("page", int), ("per_page", int),
            ("min_reward", float), ("max_reward", float),
        ):  # fmt: skip
            raw = params.get(name, "")
            if raw == "":
                continue
            try:
                value = cast(raw)
            except ValueError:
                kind = "an integer" if cast is int else "a number"
                raise ValueError(f"{name} must be {kind}, got {raw!r}") from None
            if cast is float and not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {raw!r}")
            setattr(f, name, value)
        for name in ("env", "item", "version", "q"):
            setattr(f, name, params.get(name) or None)
        success = params.get("success", "")
        if success not in ("", "1", "0", "true", "false"):
            raise ValueError(f"success must be 1 or 0, got {success!r}")
        f.success = None if success == "" else success in ("1", "true")
        f.sort = params.get("sort") or "key"
        if f.sort not in SORTS:
            raise ValueError(f"sort must be one of {', '.join(SORTS)}, got {f.sort!r}")
        if f.page < 1:
            raise ValueError("page starts at 1")
        if not 1 <= f.per_page <= MAX_PER_PAGE:
            raise ValueError(f"per_page must be between 1 and {MAX_PER_PAGE}")
        if f.min_reward is not None and f.max_reward is not None and f.min_reward > f.max_reward:
            raise ValueError("min_reward is above max_reward")
        return f

    def where(self) -> tuple[str, list[Any]]:
        clauses = [f"run IN ({','.join('?' * len(self.runs))})"]
        args: list[Any] = list(self.runs)
        for column, value in (("env", self.env), ("task_id", self.task), ("item_id", self.item),
                              ("iteration", self.iteration)):  # fmt: skip
            if value is not None:
                clauses.append(f"{column} = ?")
                args.append(value)
        if self.success is not None:
            clauses.append("success = ?")
            args.append(int(self.success))
        for column, op, value in (
            ("reward", ">=", self.min_reward), ("reward", "<=", self.max_reward),
            ("rounds", ">=", self.min_rounds), ("rounds", "<=", self.max_rounds),
        ):  # fmt: skip
            if value is not None:
                clauses.append(f"{column} {op} ?")
                args.append(value)
        if self.version is not None:
            clauses.append("instr(versions, ?) > 0")
            args.append(f"|{self.version}|")
        match = fts_query(self.q or "")
        if match:
            clauses.append("uid IN (SELECT rowid FROM ep_text WHERE ep_text MATCH ?)")
            args.append(match)
        return " AND ".join(clauses), args


def fts_query(q: str) -> str:
    """An FTS5 query from what a person typed: every word must appear (as a word prefix). Quotes
    make each word a literal, so no input is an FTS syntax error."""
    words = re.findall(r"\w+", q)
    return " AND ".join(f'"{w}"*' for w in words[:16])


def episode_json(r: sqlite3.Row) -> dict[str, Any]:
    versions = [v for v in (r["versions"] or "").split("|") if v]
    return {
        "uid": r["uid"],
        "run": r["run"],
        "key": r["key"],
        "item_id": r["item_id"],
        "env": r["env"],
        "task_id": r["task_id"],
        "sample": r["sample"],
        "success": None if r["success"] is None else bool(r["success"]),
        "reward": r["reward"],
        "rounds": r["rounds"],
        "iteration": r["iteration"],
        "weight_version": versions[0] if len(versions) == 1 else None,
        "weight_versions": versions,
        "finish": r["finish"],
        "turns": r["turns"],
        "policy": r["policy"],
        "has_trajectory": r["src"] is not None,
    }


class EpisodeIndex:
    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.db.row_factory = sqlite3.Row
        # A cache rebuilt at every start: no journal, no fsync.
        self.db.execute("PRAGMA journal_mode=OFF")
        self.db.execute("PRAGMA synchronous=OFF")
        self.db.execute("PRAGMA temp_store=MEMORY")
        self.db.executescript(_SCHEMA)

    def add(self, rows: list[Row]) -> None:
        if not rows:
            return
        cur = self.db.cursor()
        cur.execute("BEGIN")
        placeholders = ",".join("?" * len(_COLUMNS))
        for r in rows:
            values = [getattr(r, c) for c in _COLUMNS]
            values[_COLUMNS.index("versions")] = "|" + "|".join(r.versions) + "|" if r.versions else ""
            values[_COLUMNS.index("success")] = None if r.success is None else int(r.success)
            cur.execute(f"INSERT INTO ep ({','.join(_COLUMNS)}) VALUES ({placeholders})", values)
            uid = cur.lastrowid
            if r.text:
                cur.execute("INSERT INTO ep_text(rowid, body) VALUES (?, ?)", (uid, r.text[:MAX_TEXT]))
            if r.data is not None:
                cur.execute("INSERT INTO blob(uid, data) VALUES (?, ?)", (uid, r.data))
        cur.execute("COMMIT")

    def drop_run(self, run: str) -> None:
        """Forget a run's rows (a JSON file rewritten whole). Their search entries stay behind, but
        match no row: uids are never reused."""
        self.db.execute("DELETE FROM blob WHERE uid IN (SELECT uid FROM ep WHERE run = ?)", (run,))
        self.db.execute("DELETE FROM ep WHERE run = ?", (run,))

    # --- queries ---------------------------------------------------------------------------------------
    def page(self, f: Filters) -> dict[str, Any]:
        t0 = time.perf_counter()
        where, args = f.where()
        total = self.db.execute(f"SELECT count(*) FROM ep WHERE {where}", args).fetchone()[0]
        rows = self.db.execute(
            f"SELECT * FROM ep WHERE {where} ORDER BY {SORTS[f.sort]} LIMIT ? OFFSET ?",
            [*args, f.per_page, (f.page - 1) * f.per_page],
        ).fetchall()
        return {
            "total": total,
            "page": f.page,
            "per_page": f.per_page,
            "episodes": [episode_json(r) for r in rows],
            "ms": round((time.perf_counter() - t0) * 1000, 2),
        }

    def facets(self, runs: list[str]) -> dict[str, list[Any]]:
        marks = ",".join("?" * len(runs))

        def distinct(column: str) -> list[Any]:
            return [
                r[0]
                for r in self.db.execute(
                    f"SELECT DISTINCT {column} FROM ep WHERE run IN ({marks}) AND {column} IS NOT NULL "
                    f"ORDER BY {column}",
                    runs,
                )
            ]

        versions = sorted({v for joined in distinct("versions") for v in joined.split("|") if v})
        return {"envs": distinct("env"), "iterations": distinct("iteration"), "versions": versions}

    def get(self, uid: int) -> sqlite3.Row | None:
        return self.db.execute("SELECT * FROM ep WHERE uid = ?", (uid,)).fetchone()

    def blob(self, uid: int) -> bytes | None:
        row = self.db.execute("SELECT data FROM blob WHERE uid = ?", (uid,)).fetchone()
        return None if row is None else bytes(row[0])

    def env_stats(self) -> dict[str, dict[str, dict[str, Any]]]:
        """{run: {env: {episodes, success, reward, rounds}}} over every run, and each run's
        episode count and earliest start under the keys "" (episodes) and "t"."""
        out: dict[str, dict[str, dict[str, Any]]] = {}
        for r in self.db.execute(
            "SELECT run, env, count(*) AS n, avg(success) AS s, avg(reward) AS rw, avg(rounds) AS rd, "
            "min(t) AS t FROM ep GROUP BY run, env ORDER BY run, env"
        ):
            out.setdefault(r["run"], {})[r["env"]] = {
                "episodes": r["n"],
                "success": r["s"],
                "reward": r["rw"],
                "rounds": r["rd"],
                "t": r["t"],
            }
        return out

    def tasks(self, run: str) -> dict[str, dict[str, Any]]:
        """Per item id of a run: episodes, mean success, reward and rounds, and one episode's uid."""
        out = {}
        for r in self.db.execute(
            "SELECT item_id, env, task_id, count(*) AS n, avg(success) AS s, avg(reward) AS rw, "
            "avg(rounds) AS rd, min(uid) AS uid FROM ep WHERE run = ? GROUP BY item_id",
            (run,),
        ):
            out[r["item_id"]] = {
                "env": r["env"],
                "task_id": r["task_id"],
                "episodes": r["n"],
                "success": r["s"],
                "reward": r["rw"],
                "rounds": r["rd"],
                "uid": r["uid"],
            }
        return out

    def count(self) -> int:
        return self.db.execute("SELECT count(*) FROM ep").fetchone()[0]

    def close(self) -> None:
        self.db.close()
