"""Loading BIRD-format text-to-SQL data: questions with gold SQL over SQLite databases.

BIRD (and the original AgentGym's sqlgym) lay a split out as

    <root>/<split>/<split>.json                          questions: db_id, question, evidence, SQL
    <root>/<split>/<split>_databases/<db_id>/<db_id>.sqlite

for the splits "train" and "dev". Also accepted: the split folder itself as the root
(`<root>/<split>.json`), and a `databases/` folder instead of `<split>_databases/`. Task ids
number the train questions first, then the dev questions, each in file order, as the original
does (BIRD: train 0-9427, dev 9428-10961).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

SPLITS = ("train", "dev")


@dataclass(frozen=True, slots=True)
class Question:
    split: str
    index: int  # position in its split's file
    db_id: str
    question: str
    evidence: str
    sql: str
    difficulty: str
    db_path: Path


class DatasetError(Exception):
    """The folder does not hold BIRD-format data; the message says what is missing."""


def _split_files(root: Path, split: str) -> tuple[Path, Path] | None:
    """(questions file, databases folder) of one split, or None when the split is absent."""
    for folder in (root / split, root):
        questions = folder / f"{split}.json"
        if not questions.is_file():
            continue
        for databases in (folder / f"{split}_databases", folder / "databases"):
            if databases.is_dir():
                return questions, databases
        raise DatasetError(
            f"{questions} has no databases folder beside it ({split}_databases/ or databases/)"
        )
    return None


def load(root: str | Path) -> dict[str, list[Question]]:
    """Questions of every split found under `root`, in file order."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(f"BIRD data folder {root} does not exist")
    out: dict[str, list[Question]] = {}
    for split in SPLITS:
        found = _split_files(root, split)
        if found is None:
            continue
        questions_file, databases = found
        try:
            items = json.loads(questions_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise DatasetError(f"cannot read {questions_file}: {exc}") from None
        if not isinstance(items, list):
            raise DatasetError(f"{questions_file} must hold a JSON list of questions")
        questions = []
        present: set[str] = set()  # databases already found on disk
        for i, item in enumerate(items):
            try:
                db_id, question, sql = item["db_id"], item["question"], item["SQL"]
            except (KeyError, TypeError):
                raise DatasetError(f"{questions_file} item {i} lacks db_id, question or SQL") from None
            db_path = databases / db_id / f"{db_id}.sqlite"
            if db_id not in present:
                if not db_path.is_file():
                    raise DatasetError(f"{questions_file} item {i}: database {db_path} is missing")
                present.add(db_id)
            questions.append(
                Question(
                    split=split,
                    index=i,
                    db_id=db_id,
                    question=question.strip(),
                    evidence=(item.get("evidence") or "").strip(),
                    sql=sql.strip(),
                    difficulty=item.get("difficulty") or "",
                    db_path=db_path,
                )
            )
        out[split] = questions
    if not out:
        raise DatasetError(
            f"no BIRD split under {root}: expected train/train.json or dev/dev.json (or train.json, dev.json)"
        )
    return out
