"""Run one untrusted SQL statement against a SQLite file, read-only and bounded.

Four fences, each enough on its own to stop a write: the file is opened with `mode=ro`, the
connection is `query_only`, an authorizer allows only reading, and ATTACH is refused (so no other
file can be reached). The authorizer also allows only SQLite's own functions (ALLOWED_FUNCTIONS):
a build's extra functions are not for agents (fts3_tokenizer hands out a pointer into the process,
load_extension loads code). A progress handler stops a statement that runs past its time limit (a
runaway recursive CTE, a huge cross join), at most `max_rows` rows and 64 MB of values are read
back, and SQLite's own limits cap the size of any one value and of the statement text.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Authorizer actions a read-only query needs. Everything else (INSERT, UPDATE, DELETE, CREATE,
# DROP, ALTER, ATTACH, PRAGMA, transactions, ...) is denied.
_ALLOWED = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION, sqlite3.SQLITE_RECURSIVE}
# The functions a query may call: SQLite's core scalar, aggregate, date and time, window and math
# functions (sqlite.org/lang_corefunc.html, lang_aggfunc, lang_datefunc, windowfunctions, lang_mathfunc),
# which cover what BIRD's gold queries use. Not allowed: introspection (sqlite_version, changes,
# last_insert_rowid, ...), extension loading, FTS/R-tree/JSON and anything else a build adds.
ALLOWED_FUNCTIONS = frozenset(
    """
abs char coalesce concat concat_ws format glob hex ifnull iif instr length like likelihood likely
lower ltrim max min nullif octet_length printf quote random randomblob replace round rtrim sign
soundex substr substring trim typeof unhex unicode unlikely upper zeroblob
avg count group_concat string_agg sum total
date time datetime julianday unixepoch strftime timediff current_date current_time current_timestamp
row_number rank dense_rank percent_rank cume_dist ntile lag lead first_value last_value nth_value
acos acosh asin asinh atan atan2 atanh ceil ceiling cos cosh degrees exp floor ln log log10 log2 mod
pi pow power radians sin sinh sqrt tan tanh trunc
""".split()
)
# Names of the authorizer's action codes, to say what was refused.
_ACTION_NAMES = {
    getattr(sqlite3, f"SQLITE_{name}"): name.replace("_", " ").lower()
    for name in (
        "CREATE_INDEX CREATE_TABLE CREATE_TEMP_INDEX CREATE_TEMP_TABLE CREATE_TEMP_TRIGGER "
        "CREATE_TEMP_VIEW CREATE_TRIGGER CREATE_VIEW DELETE DROP_INDEX DROP_TABLE DROP_TEMP_INDEX "
        "DROP_TEMP_TABLE DROP_TEMP_TRIGGER DROP_TEMP_VIEW DROP_TRIGGER DROP_VIEW INSERT PRAGMA "
        "TRANSACTION UPDATE ATTACH DETACH ALTER_TABLE REINDEX ANALYZE CREATE_VTABLE DROP_VTABLE SAVEPOINT"
    ).split()
    if hasattr(sqlite3, f"SQLITE_{name}")
}

MAX_VALUE_BYTES = 1_000_000  # longest string or blob a query may build
MAX_SQL_BYTES = 100_000
MAX_RESULT_BYTES = 64 << 20  # all values of a result together (many rows of big values)
_BATCH = 256  # rows fetched at a time
_PROGRESS_EVERY = 1_000  # virtual-machine instructions between deadline checks


class QueryError(Exception):
    """The statement failed, was refused, or exceeded a limit. The message is for the agent."""


@dataclass(frozen=True, slots=True)
class Limits:
    time_s: float
    max_rows: int


def connect_readonly(path: str | Path) -> sqlite3.Connection:
    """A read-only connection to an existing SQLite file (raises if it is missing)."""
    uri = Path(path).resolve().as_uri() + "?mode=ro"
    conn = sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None)
    conn.execute("PRAGMA query_only = ON")
    conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES)
    conn.setlimit(sqlite3.SQLITE_LIMIT_SQL_LENGTH, MAX_SQL_BYTES)
    conn.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
    return conn


def run_query(path: str | Path, sql: str, limits: Limits) -> list[tuple[Any, ...]]:
    """All rows of `sql` on the database at `path`, or QueryError saying why not."""
    try:
        conn = connect_readonly(path)
    except sqlite3.Error as exc:
        raise QueryError(f"cannot open the database: {exc}") from None
    refused: list[str] = []
    functions: list[str] = []  # called, and not allowed

    def authorize(action: int, arg1: str | None, arg2: str | None, *_: object) -> int:
        if action == sqlite3.SQLITE_FUNCTION:  # arg2: the function's name
            if (arg2 or "").lower() in ALLOWED_FUNCTIONS:
                return sqlite3.SQLITE_OK
            functions.append(arg2 or "?")
            return sqlite3.SQLITE_DENY
        if action in _ALLOWED:
            return sqlite3.SQLITE_OK
        refused.append(_ACTION_NAMES.get(action, str(action)))
        return sqlite3.SQLITE_DENY

    deadline = time.monotonic() + limits.time_s

    def past_deadline() -> int:
        return 1 if time.monotonic() > deadline else 0

    conn.set_authorizer(authorize)
    conn.set_progress_handler(past_deadline, _PROGRESS_EVERY)
    try:
        cursor = conn.execute(sql)
        rows: list[tuple[Any, ...]] = []
        size = 0
        while batch := cursor.fetchmany(_BATCH):
            rows.extend(batch)
            if len(rows) > limits.max_rows:
                raise QueryError(
                    f"the query returns more than {limits.max_rows} rows; it was stopped. Narrow it down."
                )
            size += sum(len(v) if isinstance(v, str | bytes) else 8 for row in batch for v in row)
            if size > MAX_RESULT_BYTES:
                raise QueryError(
                    f"the query's result is larger than {MAX_RESULT_BYTES >> 20} MB; it was stopped. Narrow it down."
                )
        return rows
    except QueryError:
        raise
    except sqlite3.Error as exc:
        if functions:
            raise QueryError(
                f"the function {functions[0]}() is not allowed: use SQLite's built-in scalar, aggregate, "
                "date and time, window and math functions."
            ) from None
        if refused:
            words = sql.split()
            kind = words[0].upper() if words and words[0].isalpha() else "this"
            raise QueryError(
                f"only read-only queries are allowed: the {kind} statement was refused "
                f"(it needs {refused[0]} access, and the database is read-only)."
            ) from None
        if "interrupted" in str(exc) and time.monotonic() > deadline:
            raise QueryError(f"the query ran longer than {limits.time_s:g} s and was stopped.") from None
        raise QueryError(f"{type(exc).__name__}: {exc}") from None
    except (sqlite3.Warning, ValueError, OverflowError, MemoryError) as exc:
        # sqlite3.Warning: older Pythons raise it for more than one statement
        raise QueryError(f"{type(exc).__name__}: {exc}") from None
    finally:
        conn.close()
