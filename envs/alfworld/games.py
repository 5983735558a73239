"""ALFWorld task ids: AgentGym's numbering of ALFWorld games, and where each game's file is.

AgentGym numbers 2,620 ALFWorld games: ids 0-2419 are games of ALFWorld's `train` split and ids
2420-2619 games of its `valid_train` split, in the order of the original's two mapping files.
`agentgym_games.txt` (next to this file) lists them in that order, one per line, as the game's
path under `json_2.1.1/`: `<split>/<task folder>/<trial>`. An ALFRED task folder names the task:
`<task type>-<object>-<movable receptacle>-<receptacle or lamp>-<scene number>`.

With real ALFWorld data (`data_dir`, ALFWorld's `$ALFWORLD_DATA`), task id i plays
`json_2.1.1/<path i>/game.tw-pddl`; ids from 2620 on are the games of ALFWorld's own evaluation
splits found there, `valid_seen` then `valid_unseen`, each in sorted path order. Without data,
task id i is a game generated for the same task (see generate.py).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path

AGENTGYM_TRAIN = range(0, 2420)
AGENTGYM_TEST = range(2420, 2620)
EVAL_SPLITS = ("valid_seen", "valid_unseen")
# Where a game listed under one split may also be found (downloads differ in what they hold).
_ALL_SPLITS = ("train", "valid_train", "valid_seen", "valid_unseen")
GAME_FILE = "game.tw-pddl"


@dataclass(frozen=True, slots=True)
class GameRef:
    split: str
    folder: str  # e.g. pick_cool_then_place_in_recep-Mug-None-CoffeeMachine-23
    trial: str  # e.g. trial_T20190908_143209_571893

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


@cache
def agentgym_games() -> tuple[GameRef, ...]:
    with open(Path(__file__).with_name("agentgym_games.txt")) as f:
        return tuple(parse_ref(line) for line in f if line.strip())


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
