"""BIRD: answer a question about a SQLite database with one SQL query.

Semantics follow the original AgentGym's `agentenv-sqlgym` (BIRD through sqlgym):
- one round: the agent's answer is one SQL statement (in a ```sql fenced block, or bare); it is
  run on the question's database and the episode ends;
- reward 1 when the set of result rows equals the set of the gold query's rows (BIRD's execution
  accuracy: order and duplicates do not matter), else 0;
- task ids: the train questions first, then the dev questions, in file order.

The data is BIRD's own layout (see dataset.py), from `--env-setting bird.data_dir=DIR` or the
AGENTGYM_BIRD_DIR environment variable; without either, a small generated set (synthetic.py).

Differences from the original: the first observation shows the schema as CREATE TABLE statements
with a few rows of each table, and BIRD's evidence (hint) when the question has one (sqlgym
showed a one-line summary of tables and columns and no evidence); the agent's query runs read-only
under a time and row limit (sqlexec.py).
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path

from agentgym.envs.base import Env, Outcome
from agentgym.envs.bird import dataset, synthetic
from agentgym.envs.bird.sqlexec import Limits, QueryError, connect_readonly, run_query
from agentgym.envs.registry import register

INSTRUCTION = """\
You answer questions about a SQLite database by writing a SQL query. You are shown the database's \
tables (their CREATE TABLE statements and a few example rows), a question, and sometimes a hint \
that explains how terms in the question map onto the data.

Answer with exactly one SQLite SELECT statement whose result answers the question. It is run on \
the database (read-only) and its rows are compared with those of a correct query: row order and \
duplicates do not matter, but the columns must be exactly the ones asked for. You have one try.

Reply in exactly this format:
Thought:
your reasoning about the tables, joins and conditions needed

Action:
```sql
SELECT ...
```"""

SETTINGS = {
    "data_dir": "folder with BIRD-format data (default: $AGENTGYM_BIRD_DIR, else a generated set)",
    "time_limit_s": "longest a query may run, in seconds (default 10)",
    "max_rows": "most rows a query may return (default 100000)",
    "sample_rows": "example rows shown per table (default 3)",
}
_FENCE = re.compile(r"```[ \t]*(?:sql|sqlite)?[ \t]*\n?(.*?)```", re.DOTALL | re.IGNORECASE)
_OPEN_FENCE = re.compile(r"```[ \t]*(?:sql|sqlite)?", re.IGNORECASE)
DEFAULT_TIME_S = 10.0
DEFAULT_MAX_ROWS = 100_000
_SHOWN_ROWS = 10
_CELL_CHARS = 40


def extract_sql(answer: str) -> str:
    """The SQL in an answer: the last fenced block if there is one (an unclosed fence runs to the
    end), else the text after the last "Action:", else the whole answer."""
    blocks = [b.strip() for b in _FENCE.findall(answer) if b.strip()]
    if blocks:
        return blocks[-1]
    opened = list(_OPEN_FENCE.finditer(answer))
    if opened:
        return answer[opened[-1].end() :].strip()
    if "Action:" in answer:
        return answer.rsplit("Action:", 1)[1].strip()
    return answer.strip()


def _cell(value: object) -> str:
    text = repr(value) if isinstance(value, bytes) else str(value)
    return text if len(text) <= _CELL_CHARS else text[: _CELL_CHARS - 3] + "..."


def format_rows(rows: list[tuple[object, ...]]) -> str:
    if not rows:
        return "The query returned no rows."
    shown = "\n".join("(" + ", ".join(_cell(v) for v in row) + ")" for row in rows[:_SHOWN_ROWS])
    more = f"\n... and {len(rows) - _SHOWN_ROWS} more rows" if len(rows) > _SHOWN_ROWS else ""
    return f"The query returned {len(rows)} row{'s' if len(rows) != 1 else ''}:\n{shown}{more}"


@register
class Bird(Env):
    name = "bird"
    description = "Text-to-SQL on SQLite databases (BIRD format): one query, scored by execution match."
    instruction = INSTRUCTION
    action_format = "one SQLite SELECT statement, in a ```sql fenced block or bare"
    max_rounds = 1
    task_count = 0  # set by configure(): train + dev questions
    execution = "thread"

    questions: list[dataset.Question] = []
    limits = Limits(DEFAULT_TIME_S, DEFAULT_MAX_ROWS)
    sample_rows = 3
    data_dir: Path | None = None
    _schemas: dict[Path, str] = {}
    _schema_lock = threading.Lock()

    @classmethod
    def configure(cls, settings: Mapping[str, str]) -> None:
        unknown = sorted(set(settings) - set(SETTINGS))
        if unknown:
            raise ValueError(f"bird: unknown settings {unknown}; known: {', '.join(SETTINGS)}")
        root = settings.get("data_dir") or os.environ.get("AGENTGYM_BIRD_DIR")
        cls.data_dir = Path(root) if root else synthetic.ensure()
        # BIRD's own train and dev files, numbered as the original numbers them.
        cls.task_set = "original" if root else "generated databases and questions; not the original's"
        splits = dataset.load(cls.data_dir)
        train, dev = splits.get("train", []), splits.get("dev", [])
        cls.questions = train + dev
        cls.task_count = len(cls.questions)
        cls.splits = {
            "train": [range(0, len(train))],
            "dev": [range(len(train), len(cls.questions))],
            "test": [range(len(train), len(cls.questions))],  # BIRD's dev set is its public test set
        }
        cls.limits = Limits(
            time_s=float(settings.get("time_limit_s", DEFAULT_TIME_S)),
            max_rows=int(settings.get("max_rows", DEFAULT_MAX_ROWS)),
        )
        cls.sample_rows = int(settings.get("sample_rows", 3))
        cls._schemas = {}
        cls._gold.cache_clear()

    def reset(self, task_id: int, seed: int, options: Mapping[str, str]) -> Outcome:
        self.question = q = self.questions[task_id]
        text = f"Database: {q.db_id}\n{self.schema(q.db_path)}\n\nQuestion: {q.question}"
        if q.evidence:
            text += f"\nHint: {q.evidence}"
        info = {"db_id": q.db_id, "split": q.split}
        if q.difficulty:
            info["difficulty"] = q.difficulty
        return Outcome(text, info=info)

    def step(self, action: str) -> Outcome:
        q = self.question
        sql = extract_sql(action)
        info = {"gold_sql": q.sql}
        if not sql:
            return Outcome(
                "No SQL statement found: put one query in a ```sql fenced block.",
                done=True,
                info={**info, "invalid": "true"},
            )
        try:
            rows = run_query(q.db_path, sql, self.limits)
        except QueryError as exc:
            return Outcome(f"Error: {exc}", done=True, info={**info, "error": str(exc)})
        try:
            gold = self._gold(q.db_path, q.sql, self.limits)
        except QueryError as exc:  # a broken gold query is the data's fault, not the agent's
            return Outcome(format_rows(rows), done=True, info={**info, "gold_error": str(exc)})
        correct = set(rows) == gold
        return Outcome(
            format_rows(rows),
            reward=1.0 if correct else 0.0,
            done=True,
            success=correct,
            info={**info, "rows": str(len(rows))},
        )

    def expert_action(self) -> str:
        return f"```sql\n{self.question.sql}\n```"

    @staticmethod
    @lru_cache(maxsize=512)
    def _gold(db_path: Path, sql: str, limits: Limits) -> frozenset[tuple[object, ...]]:
        return frozenset(run_query(db_path, sql, limits))

    @classmethod
    def schema(cls, db_path: Path) -> str:
        """CREATE TABLE statements of a database, each followed by a few of its rows."""
        with cls._schema_lock:
            if db_path not in cls._schemas:
                cls._schemas[db_path] = _describe(db_path, cls.sample_rows)
            return cls._schemas[db_path]


def _describe(db_path: Path, sample_rows: int) -> str:
    conn = connect_readonly(db_path)
    try:
        tables = conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY rowid"
        ).fetchall()
        parts = []
        for name, sql in tables:
            part = (sql or f"CREATE TABLE {name} (...)").strip() + ";"
            if sample_rows > 0:
                quoted = '"' + name.replace('"', '""') + '"'
                cursor = conn.execute(f"SELECT * FROM {quoted} LIMIT {sample_rows}")
                columns = [d[0] for d in cursor.description]
                rows = cursor.fetchall()
                if rows:
                    lines = [" | ".join(columns)] + [" | ".join(_cell(v) for v in row) for row in rows]
                    part += f"\n/* {len(rows)} example rows of {name}:\n" + "\n".join(lines) + "\n*/"
            parts.append(part)
        return "\n\n".join(parts)
    finally:
        conn.close()
