"""ALFWorld task ids: which game each id is, and where a game's file is.

Ids 0-2419 form the `train` split and 2420-2619 the `test` split, as in AgentGym. Each id names a
game by its path under ALFWorld's `json_2.1.1/`: `<split>/<task folder>/<trial>`, where an ALFRED
task folder names the task, `<task type>-<object>-<movable receptacle>-<receptacle or lamp>-<floor
plan>`. Which game each id names comes from one of two lists:

- by default, this project's own list (tasks.py): 2,620 tasks drawn from ALFRED's task definitions
  with AgentGym's split sizes and task-type counts, under the folders AgentGym's ids come from
  (`train` for train ids, `valid_train` for test ids);
- with `mapping_dir` (`$ALFWORLD_MAPPING_DIR`), AgentGym's own numbering, read from the original's
  `mappings_train.json` and `mappings_test.json` (`agentenv-alfworld/configs/`): id i is the entry
  with `item_id` i, train entries under `train/`, test entries under `valid_train/`
  (`load_mappings`).

With real ALFWorld data (`data_dir`, ALFWorld's `$ALFWORLD_DATA`), id i plays
`json_2.1.1/<path i>/game.tw-pddl`; the ids after the list's are the games of ALFWorld's own
evaluation splits found there, `valid_seen` then `valid_unseen`, each in sorted path order. Without
data, id i is a game generated for its task (see generate.py).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from agentgym.envs.alfworld.logic import TASK_TYPES

AGENTGYM_TRAIN = range(0, 2420)
AGENTGYM_TEST = range(2420, 2620)
TRAIN_SPLIT, TEST_SPLIT = "train", "valid_train"  # the ALFWorld folders of AgentGym's ids
MAPPING_FILES = {TRAIN_SPLIT: "mappings_train.json", TEST_SPLIT: "mappings_test.json"}
EVAL_SPLITS = ("valid_seen", "valid_unseen")
# Where a game listed under one split may also be found (downloads differ in what they hold).
_ALL_SPLITS = ("train", "valid_train", "valid_seen", "valid_unseen")
GAME_FILE = "game.tw-pddl"


@dataclass(frozen=True, slots=True)
class GameRef:
    split: str
    folder: str  # e.g. pick_cool_then_place_in_recep-Apple-None-CounterTop-25
    trial: str  # ALFRED's trial_T<date>_<time>_<microseconds>, or the default list's trial_G<id>

    @property
    def path(self) -> str:
        return f"{self.split}/{self.folder}/{self.trial}"

    @property
    def task_type(self) -> str:
        return self.folder.split("-")[0]

    @property
    def object_type(self) -> str:
        return self.folder.split("-")[1]

    @property
    def target_type(self) -> str:
        """The receptacle the object goes to; for look_at_obj_in_light, the lamp."""
        return self.folder.split("-")[3]

    @property
    def scene(self) -> int:
        return int(self.folder.split("-")[4])


def parse_ref(path: str) -> GameRef:
    split, folder, trial = path.strip().split("/")
    return GameRef(split, folder, trial)


@dataclass(frozen=True, slots=True)
class Numbering:
    """The games of task ids 0.. in order; the first `train_count` form the train split."""

    games: tuple[GameRef, ...]
    train_count: int

    @property
    def splits(self) -> dict[str, list[range]]:
        return {"train": [range(0, self.train_count)], "test": [range(self.train_count, len(self.games))]}


def default_numbering() -> Numbering:
    from agentgym.envs.alfworld.tasks import default_games

    games = default_games()
    return Numbering(games, sum(1 for g in games if g.split == TRAIN_SPLIT))


def load_mappings(mapping_dir: str) -> Numbering:
    """AgentGym's numbering from its two mapping files in `mapping_dir`: each a JSON list of
    {"item_id": int, "task_type": "<task folder>", "task_id": "<trial folder>"}, with item ids
    running 0, 1, 2, ... through the train file and on through the test file."""
    folder = Path(mapping_dir).expanduser()
    if not folder.is_dir():
        raise ValueError(f"alfworld mapping_dir {mapping_dir!r} is not a folder")
    games: list[GameRef] = []
    counts = {}
    for split, name in MAPPING_FILES.items():
        path = folder / name
        if not path.is_file():
            raise ValueError(
                f"alfworld mapping_dir {mapping_dir!r} has no {name}; expected AgentGym's "
                f"mappings_train.json and mappings_test.json (agentenv-alfworld/configs/)"
            )
        try:
            entries = json.loads(path.read_text())
        except (ValueError, UnicodeDecodeError) as e:
            raise ValueError(f"{path} is not valid JSON: {e}") from None
        if not isinstance(entries, list) or not entries:
            raise ValueError(f"{path}: expected a non-empty JSON list of mapping entries")
        for n, entry in enumerate(entries):
            games.append(_mapping_entry(path, n, entry, split, expected_id=len(games)))
        counts[split] = len(entries)
    return Numbering(tuple(games), counts[TRAIN_SPLIT])


def _mapping_entry(path: Path, n: int, entry: object, split: str, expected_id: int) -> GameRef:
    where = f"{path} entry {n}"
    if not isinstance(entry, dict) or not {"item_id", "task_type", "task_id"} <= set(entry):
        raise ValueError(f"{where}: expected an object with item_id, task_type and task_id, got {entry!r}")
    item_id, folder, trial = entry["item_id"], entry["task_type"], entry["task_id"]
    if not isinstance(item_id, int) or isinstance(item_id, bool) or item_id != expected_id:
        raise ValueError(
            f"{where}: item_id {item_id!r} where {expected_id} was expected (item ids must run "
            "0, 1, 2, ... without gaps through mappings_train.json, then on through mappings_test.json)"
        )
    parts = folder.split("-") if isinstance(folder, str) and "/" not in folder else []
    if len(parts) != 5 or parts[0] not in TASK_TYPES or not all(parts) or not parts[4].isdigit():
        raise ValueError(
            f"{where}: task_type {folder!r} is not an ALFRED task folder "
            "(<task type>-<object>-<movable receptacle>-<receptacle>-<floor plan>, one of ALFWorld's six types)"
        )
    if int(parts[4]) not in _floor_plans():
        raise ValueError(
            f"{where}: task_type {folder!r} names floor plan {parts[4]}, which AI2-THOR does not have"
        )
    if not isinstance(trial, str) or not trial or "/" in trial or trial in (".", ".."):
        raise ValueError(f"{where}: task_id {trial!r} is not a trial folder name")
    return GameRef(split, folder, trial)


@cache
def _floor_plans() -> frozenset[int]:
    from alfworld.gen import constants

    return frozenset(n for numbers in constants.SCENE_TYPE.values() for n in numbers)


def dataset_root(data_dir: str) -> Path:
    root = Path(data_dir).expanduser() / "json_2.1.1"
    if not root.is_dir():
        raise ValueError(
            f"alfworld data_dir {data_dir!r} has no json_2.1.1 folder; expected ALFWorld's layout "
            "json_2.1.1/{train,valid_seen,valid_unseen}/<task>/trial_*/game.tw-pddl"
        )
    return root


def eval_games(root: Path) -> list[GameRef]:
    """The games of ALFWorld's evaluation splits present under `root`, in sorted order."""
    found = []
    for split in EVAL_SPLITS:
        base = root / split
        if not base.is_dir():
            continue
        for dirpath, _, files in sorted(os.walk(base)):
            if GAME_FILE in files:
                rel = Path(dirpath).relative_to(root)
                if len(rel.parts) == 3:
                    found.append(GameRef(*rel.parts))
    return found


def locate(root: Path, ref: GameRef) -> Path | None:
    """The game file of `ref` under `root`: in its own split, else in any other split."""
    for split in (ref.split, *(s for s in _ALL_SPLITS if s != ref.split)):
        path = root / split / ref.folder / ref.trial / GAME_FILE
        if path.is_file():
            return path
    return None
