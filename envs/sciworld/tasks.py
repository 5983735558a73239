"""SciWorld's task table: task id -> (ScienceWorld task, variation), in the original's order.

AgentGym numbers SciWorld tasks by walking the `scienceworld` package's task list in its own
order, skipping seven tasks (5-1, 5-2, 9-1, 9-2, 9-3, 10-1, 10-2), and giving each remaining task
one id per variation (0 .. its variation count - 1). We do the same. Splits are the package's own
per-task train/dev/test variations, mapped onto those ids.

Variation counts and splits live in the simulator (the JVM), so the table is built once with a
JVM and cached as JSON, keyed by the package version.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from importlib import metadata

from agentgym.envs._data import cached_json

# Tasks the original leaves out of its numbering.
EXCLUDED = frozenset({"5-1", "5-2", "9-1", "9-2", "9-3", "10-1", "10-2"})
SPLITS = ("train", "dev", "test")


@dataclass(frozen=True, slots=True)
class TaskTable:
    # Per id: (task name, variation).
    entries: tuple[tuple[str, int], ...]
    # Split name -> contiguous id ranges.
    splits: dict[str, list[range]]
    # Task name -> its "N-M" number in the package.
    numbers: dict[str, str]


def _build() -> dict[str, object]:
    from agentgym.envs.sciworld.engine import start_engine

    engine = start_engine()
    try:
        rows = []
        for number, name in engine.tasks.items():
            if number in EXCLUDED:
                continue
            engine.load(name, 0, "")
            rows.append(
                {
                    "number": number,
                    "name": name,
                    "variations": engine.get_max_variations(name),
                    "train": engine.get_variations_train(),
                    "dev": engine.get_variations_dev(),
                    "test": engine.get_variations_test(),
                }
            )
        return {"tasks": rows}
    finally:
        engine.close()


def _ranges(ids: Iterable[int]) -> list[range]:
    """Sorted ids as the fewest contiguous ranges."""
    out: list[range] = []
    for i in sorted(ids):
        if out and out[-1].stop == i:
            out[-1] = range(out[-1].start, i + 1)
        else:
            out.append(range(i, i + 1))
    return out


@cache
def load_table() -> TaskTable:
    version = metadata.version("scienceworld")
    doc = cached_json("sciworld_tasks.json", f"scienceworld=={version}", _build)
    entries: list[tuple[str, int]] = []
    split_ids: dict[str, list[int]] = {s: [] for s in SPLITS}
    numbers = {}
    for row in doc["tasks"]:
        first = len(entries)
        entries.extend((row["name"], v) for v in range(row["variations"]))
        numbers[row["name"]] = row["number"]
        for split in SPLITS:
            split_ids[split].extend(first + v for v in row[split] if v < row["variations"])
    return TaskTable(tuple(entries), {s: _ranges(ids) for s, ids in split_ids.items()}, numbers)
