"""BIRD's SQL runs under an allow-list of functions: SQLite's own scalar, aggregate, date, window
and math functions, which BIRD's gold queries use; anything else (fts3_tokenizer, load_extension,
JSON, introspection) is refused with an observation that says so."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from agentgym.client.envclient import EnvClient
from agentgym.envs.bird import dataset, synthetic
from agentgym.envs.bird.sqlexec import ALLOWED_FUNCTIONS, Limits, QueryError, run_query
from tests.conftest import StartServer
from tests.envs.test_bird import bird_configured

LIMITS = Limits(time_s=5.0, max_rows=10_000)


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bird") / "t.sqlite"
    with sqlite3.connect(path) as conn:
        conn.executescript(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, born TEXT, score REAL);"
            "INSERT INTO t VALUES (1, 'Ann', '1990-05-01', 3.5), (2, 'bo', '1985-12-24', 4.25), (3, 'Cy', NULL, NULL);"
        )
    return path


@pytest.mark.parametrize(
    ("sql", "name"),
    [
        ("SELECT fts3_tokenizer('simple')", "fts3_tokenizer"),  # hands out a pointer into the process
        ("SELECT load_extension('/tmp/x.so')", "load_extension"),
        ("SELECT sqlite_version()", "sqlite_version"),
        ("SELECT sqlite_compileoption_get(0)", "sqlite_compileoption_get"),
        ("SELECT json_extract('{\"a\": 1}', '$.a')", "json_extract"),
        ("SELECT name FROM t WHERE id = last_insert_rowid()", "last_insert_rowid"),
    ],
)
def test_functions_outside_the_allow_list_are_refused(db: Path, sql: str, name: str) -> None:
    with pytest.raises(QueryError, match=rf"the function {name}\(\) is not allowed"):
        run_query(db, sql, LIMITS)


def test_sqlites_own_functions_still_work(db: Path) -> None:
    """The functions BIRD's gold queries lean on: aggregates, CAST, IIF, string and date functions,
    window functions, LIKE and GLOB, ROUND, and the math functions."""
    rows = run_query(
        db,
        "SELECT COUNT(*), COUNT(DISTINCT name), SUM(score), AVG(score), MIN(score), MAX(score), TOTAL(score),"
        " GROUP_CONCAT(name, ','), CAST(SUM(IIF(score > 4, 1, 0)) AS REAL) * 100 / COUNT(*) FROM t",
        LIMITS,
    )
    assert rows == [(3, 3, 7.75, 3.875, 3.5, 4.25, 7.75, "Ann,bo,Cy", 100 / 3)]
    rows = run_query(
        db,
        "SELECT UPPER(name), LOWER(name), LENGTH(name), SUBSTR(name, 1, 1), INSTR(name, 'n'), REPLACE(name, 'n', 'm'),"
        " TRIM(' ' || name || ' '), IFNULL(born, 'unknown'), COALESCE(score, 0), NULLIF(id, 2),"
        " STRFTIME('%Y', born), DATE(born, '+1 day'), CAST(JULIANDAY('2000-01-01') - JULIANDAY(born) AS INTEGER),"
        " ROUND(score, 1), ABS(-id), RANK() OVER (ORDER BY score DESC), ROW_NUMBER() OVER (ORDER BY id),"
        " LAG(name) OVER (ORDER BY id), printf('%05.1f', score), typeof(score), SQRT(16), POWER(2, 3)"
        " FROM t WHERE name LIKE '%n%' OR name GLOB 'C*' ORDER BY id",
        LIMITS,
    )
    assert rows[0][:11] == ("ANN", "ann", 3, "A", 2, "Amm", "Ann", "1990-05-01", 3.5, 1, "1990")
    assert rows[0][11:] == ("1990-05-02", 3532, 3.5, 1, 1, 1, None, "003.5", "real", 4.0, 8.0)
    assert [r[0] for r in rows] == ["ANN", "CY"]


def _gold_questions() -> list[dataset.Question]:
    """The gold queries at hand: the generated set, and real BIRD when AGENTGYM_BIRD_DIR names it."""
    questions = [q for split in dataset.load(synthetic.ensure()).values() for q in split]
    if os.environ.get("AGENTGYM_BIRD_DIR"):
        questions += [q for split in dataset.load(os.environ["AGENTGYM_BIRD_DIR"]).values() for q in split]
    return questions


def test_no_gold_query_calls_a_refused_function() -> None:
    called: dict[str, list[str]] = {}
    for q in _gold_questions():
        with sqlite3.connect(f"file:{q.db_path}?mode=ro", uri=True) as conn:

            def note(action: int, arg1: object, arg2: object, *_: object, sql: str = q.sql) -> int:
                if action == sqlite3.SQLITE_FUNCTION:
                    called.setdefault(str(arg2).lower(), []).append(sql)
                return sqlite3.SQLITE_OK

            conn.set_authorizer(note)
            try:
                conn.execute(q.sql).fetchmany(1)
            except sqlite3.Error:
                continue  # a broken gold query is the data's problem, reported by the env itself
        run_query(q.db_path, q.sql, LIMITS)  # and it runs under the allow-list
    refused = {name: sqls[0] for name, sqls in called.items() if name not in ALLOWED_FUNCTIONS}
    assert not refused, refused
    assert {"count", "avg", "sum", "strftime"} <= set(called)  # the check saw the functions in use


async def test_a_refused_function_is_an_observation_not_an_error(start_server: StartServer) -> None:
    with bird_configured():
        srv = await start_server(envs=["bird"])
        async with EnvClient(f"127.0.0.1:{srv.port}") as client:
            async with client.episode("bird", 0) as ep:
                result = await ep.step("```sql\nSELECT fts3_tokenizer('simple')\n```")
                assert result.done and result.reward == 0.0 and not result.success
                assert "the function fts3_tokenizer() is not allowed" in result.observation
                assert "SQLite's built-in" in result.observation
            async with client.episode("bird", 0) as ep:  # and the next episode plays as usual
                result = await ep.step(await ep.expert())
                assert result.success
