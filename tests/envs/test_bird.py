"""BIRD text-to-SQL: the loader on files in BIRD's layout, the generated set, the expert over a
real server, determinism, and queries that must not hurt (writes, runaway queries, huge results)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentgym.client.envclient import EnvClient
from agentgym.envs import registry
from agentgym.envs.bird import dataset, synthetic
from agentgym.envs.bird.env import Bird, extract_sql
from tests.conftest import StartServer


@contextlib.contextmanager
def bird_configured(**settings: str) -> Iterator[type[Bird]]:
    """Configure the (process-wide) bird class with `settings`, and back to the defaults after."""
    registry.configure("bird")
    Bird.configure(settings)
    try:
        yield Bird
    finally:
        Bird.configure({})


def _write_bird(root: Path, layout: str = "original") -> None:
    """A tiny BIRD dataset: train questions on `zoo`, dev questions on `bank`."""
    dbs = {
        "zoo": (
            "train",
            "CREATE TABLE animals (id INTEGER PRIMARY KEY, name TEXT, species TEXT, age INTEGER);"
            "INSERT INTO animals VALUES (1, 'Rex', 'lion', 7), (2, 'Mia', 'zebra', 3), (3, 'Leo', 'lion', 2);",
            [
                (
                    "How many lions are there?",
                    "lion refers to species = 'lion'",
                    "SELECT COUNT(*) FROM animals WHERE species = 'lion'",
                ),
                ("Name the oldest animal.", "", "SELECT name FROM animals ORDER BY age DESC LIMIT 1"),
            ],
        ),
        "bank": (
            "dev",
            "CREATE TABLE accounts (id INTEGER PRIMARY KEY, owner TEXT, balance REAL);"
            "INSERT INTO accounts VALUES (1, 'Ann', 120.5), (2, 'Bo', 80.0);",
            [
                (
                    "Who has more than 100 in their account?",
                    "",
                    "SELECT owner FROM accounts WHERE balance > 100",
                )
            ],
        ),
    }
    items: dict[str, list[dict[str, str]]] = {"train": [], "dev": []}
    for db_id, (split, script, questions) in dbs.items():
        split_dir = root / split if layout != "flat" else root
        db_folder = split_dir / ("databases" if layout == "databases" else f"{split}_databases") / db_id
        db_folder.mkdir(parents=True, exist_ok=True)
        with contextlib.closing(sqlite3.connect(db_folder / f"{db_id}.sqlite")) as db:
            db.executescript(script)
        for question, evidence, sql in questions:
            items[split].append({"db_id": db_id, "question": question, "evidence": evidence, "SQL": sql})
    for split, entries in items.items():
        split_dir = root / split if layout != "flat" else root
        (split_dir / f"{split}.json").write_text(json.dumps(entries))


@pytest.mark.parametrize("layout", ["original", "databases", "flat"])
def test_loader_reads_birds_layout(tmp_path: Path, layout: str) -> None:
    _write_bird(tmp_path, layout)
    splits = dataset.load(tmp_path)
    assert [q.question for q in splits["train"]] == ["How many lions are there?", "Name the oldest animal."]
    assert [(q.split, q.index, q.db_id) for q in splits["dev"]] == [("dev", 0, "bank")]
    assert splits["train"][0].evidence == "lion refers to species = 'lion'"
    assert splits["dev"][0].db_path.name == "bank.sqlite" and splits["dev"][0].db_path.is_file()


def test_loader_explains_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(dataset.DatasetError, match="no BIRD split"):
        dataset.load(tmp_path)
    _write_bird(tmp_path)
    (tmp_path / "dev" / "dev_databases" / "bank" / "bank.sqlite").unlink()
    with pytest.raises(dataset.DatasetError, match=r"bank\.sqlite is missing"):
        dataset.load(tmp_path)
    (tmp_path / "dev" / "dev.json").write_text('[{"question": "no db"}]')
    with pytest.raises(dataset.DatasetError, match="lacks db_id"):
        dataset.load(tmp_path)


async def test_env_on_loaded_data_over_server(start_server: StartServer, tmp_path: Path) -> None:
    _write_bird(tmp_path)
    with bird_configured(data_dir=str(tmp_path)) as cls:
        assert cls.task_count == 3 and cls.splits["dev"] == [range(2, 3)]
        srv = await start_server(envs=["bird"])
        async with EnvClient(f"127.0.0.1:{srv.port}") as client:
            info = await client.env_info("bird")
            assert info.task_count == 3 and info.max_rounds == 1
            assert info.original_tasks  # BIRD's own files: item id N is the original's task N
            async with client.episode("bird", 2) as ep:  # the dev question: ids follow train
                assert "CREATE TABLE accounts" in ep.initial.observation
                assert "Question: Who has more than 100 in their account?" in ep.initial.observation
                result = await ep.step(
                    "Thought: Ann has 120.5.\n\nAction:\n```sql\nSELECT owner FROM accounts WHERE balance >= 100\n```"
                )
                assert result.done and result.success and result.reward == 1.0
            async with client.episode("bird", 0) as ep:
                assert "Hint: lion refers to species = 'lion'" in ep.initial.observation
                result = await ep.step("SELECT COUNT(*) FROM animals")  # bare SQL, wrong answer
                assert result.done and not result.success and result.reward == 0.0
                assert "(3)" in result.observation


def test_generator_is_deterministic(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    synthetic.build(a)
    synthetic.build(b)
    for split in ("train", "dev"):
        assert (a / split / f"{split}.json").read_bytes() == (b / split / f"{split}.json").read_bytes()
    for db_id, (split, *_) in synthetic.DATABASES.items():
        dumps = []
        for root in (a, b):
            with contextlib.closing(
                sqlite3.connect(root / split / f"{split}_databases" / db_id / f"{db_id}.sqlite")
            ) as db:
                dumps.append("\n".join(db.iterdump()))
        assert dumps[0] == dumps[1]
    splits = dataset.load(a)
    assert len(splits["train"]) >= 40 and len(splits["dev"]) >= 20
    assert {q.db_id for q in splits["train"]} == {"school", "shop"} and {q.db_id for q in splits["dev"]} == {
        "library"
    }


async def test_expert_solves_every_task_over_server(start_server: StartServer) -> None:
    with bird_configured() as cls:
        srv = await start_server(envs=["bird"])
        async with EnvClient(f"127.0.0.1:{srv.port}") as client:
            for task_id in range(cls.task_count):
                async with client.episode("bird", task_id) as ep:
                    result = await ep.step(await ep.expert())
                    assert result.success and result.reward == 1.0 and result.done, (task_id, result)


async def test_same_task_same_episode(start_server: StartServer) -> None:
    with bird_configured():
        srv = await start_server(envs=["bird"])
        async with EnvClient(f"127.0.0.1:{srv.port}") as client:
            runs = []
            for _ in range(2):
                async with client.episode("bird", 5) as ep:
                    runs.append(
                        (ep.initial.observation, (await ep.step("SELECT * FROM teachers")).observation)
                    )
            assert runs[0] == runs[1]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def test_bad_queries_get_feedback_and_change_nothing(start_server: StartServer) -> None:
    with bird_configured(time_limit_s="1", max_rows="1000") as cls:
        db_path = cls.questions[0].db_path
        before = _digest(db_path)
        srv = await start_server(envs=["bird"], step_timeout_s=10.0)
        cases = {
            "SELEC * FROM students": 'near "SELEC": syntax error',
            "SELECT * FROM no_such_table": "no such table",
            "DELETE FROM students": "the DELETE statement was refused",
            "```sql\nDROP TABLE students;\n```": "the DROP statement was refused",
            "UPDATE students SET city = 'x'": "the UPDATE statement was refused",
            "INSERT INTO students (first_name, last_name) VALUES ('a', 'b')": "the INSERT statement was refused",
            "CREATE TABLE t (x)": "the CREATE statement was refused",
            "ATTACH DATABASE ':memory:' AS other": "the ATTACH statement was refused",
            "PRAGMA query_only = OFF": "the PRAGMA statement was refused",
            "VACUUM": "the VACUUM statement was refused",
            "SELECT 1; DELETE FROM students": "one statement at a time",
            "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) SELECT count(*) FROM n": "ran longer than 1 s",
            "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) SELECT x FROM n": "more than 1000 rows",
            "SELECT * FROM students a, students b": "more than 1000 rows",
            "SELECT zeroblob(2000000000)": "too big",
            "SELECT zeroblob(999999) FROM students": "larger than 64 MB",
            "```sql\n```": "No SQL statement found",
        }
        async with EnvClient(f"127.0.0.1:{srv.port}") as client:
            for action, expected in cases.items():
                async with client.episode("bird", 0) as ep:
                    result = await ep.step(action)
                    assert expected in result.observation, (action, result.observation)
                    assert result.done and result.reward == 0.0 and not result.success
        assert _digest(db_path) == before


def test_extract_sql() -> None:
    assert extract_sql("Thought: x\n\nAction:\n```sql\nSELECT 1\n```") == "SELECT 1"
    assert extract_sql("```SQL SELECT 2```") == "SELECT 2"
    assert extract_sql("```sql\nSELECT 1\n```\nthen\n```sql\nSELECT 3;\n```") == "SELECT 3;"
    assert extract_sql("Action:\n```sql\nSELECT 4") == "SELECT 4"  # unclosed fence
    assert extract_sql("Thought: hm\nAction: SELECT 5") == "SELECT 5"
    assert extract_sql("  SELECT 6  ") == "SELECT 6"
