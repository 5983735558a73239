"""`agentgym export --format agenttraj`: write trajectories as the original AgentGym's tools read them.

    agentgym export --format agenttraj runs/expert.jsonl --out agenttraj.json
    agentgym export --format agenttraj runs/eval-a runs/trainer/store --env maze --out maze.json
    agentgym export --format agenttraj runs/trainer --min-reward 1 --out inference_maze.jsonl

IN may be trajectory files (JSON Lines or a JSON list), `agentgym eval`/`rollout` output folders
(their trajectories.jsonl), trainer stores (a folder holding STORE, read without its lock, so a
running trainer is fine) or trainer folders (their store/).

The output is a JSON array (--out FILE.json), as the original's BC and AgentEvol trainers load
their train file, or JSON Lines (--out FILE.jsonl), as its evaluator writes the inference files its
agentevol_filter.py reads. Each object has exactly:

    item_id        the original's id: its env prefix and the task index (lmrlgym_maze_3, sqlgym_7,
                   webshop_6; an env the original does not have keeps its own name)
    conversations  [{"from": "human"|"gpt", "loss": null|true|false, "value": str}, ...]; "loss" on
                   every turn (the original's chat templates index it): null on human turns, the
                   record's flag on gpt turns. The original knows no "system" turn: --system merge
                   (default) puts its text before the first human turn's, --system drop leaves it out.
    reward         float, and
    success        int 0/1, both only when the record has a reward (AgentTraj's published records
                   have neither; the evaluator's have both). success is the record's own; a record
                   without one gets the evaluator's rule, reward == 1.

Token fields (input_ids, loss_mask, logprobs) and the fabric's other fields are not written: the
original tokenizes the conversation with its own template. Task indices name the original's tasks
only where the env server loaded the original's data (docs/export.md).

Records are de-duplicated by key (record id and AgentEvol iteration; the first copy is kept).
--min-reward keeps reward >= R (the original's filter keeps reward > its per-env threshold) and,
like --successful-only, drops records that do not say. A missing input or a bad record stops the
export (--skip-bad skips and counts bad records instead); the output file is written whole or not
at all.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.markup import escape

from agentgym.core.trajectory import (
    ENV_ALIASES,
    ORIGINAL_PREFIXES,
    ReadReport,
    Trajectory,
    TrajectoryError,
    original_item_id,
    read_trajectories,
    split_item_id,
)

FORMATS = ("agenttraj",)
ROLLOUT_FILE = "trajectories.jsonl"  # what `agentgym eval` and `agentgym rollout` write in --out


class ExportError(Exception):
    """The export cannot go on; the message names the input and what is wrong."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="write trajectories in the original AgentGym's AgentTraj format",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "inputs", nargs="+", metavar="IN", help="trajectory files, output folders or trainer stores"
    )
    p.add_argument("--format", required=True, choices=FORMATS, help="agenttraj: the original AgentGym's")
    p.add_argument("--out", required=True, help="FILE.json (a JSON array) or FILE.jsonl (JSON Lines)")
    p.add_argument("--env", action="append", default=[], metavar="ENV[,ENV]",
                   help="only these envs (our names or the original's prefixes; repeatable)")  # fmt: skip
    p.add_argument("--min-reward", type=float, default=None, metavar="R", help="only rewards >= R")
    p.add_argument("--successful-only", action="store_true", help="only records whose success is true")
    p.add_argument("--system", choices=("merge", "drop"), default="merge",
                   help="a system turn: into the first human turn (default) or left out")  # fmt: skip
    p.add_argument("--skip-bad", action="store_true", help="skip and count bad records instead of stopping")
    p.set_defaults(func=run)


# --- one record -----------------------------------------------------------------------------------
def agenttraj_object(t: Trajectory, system: str = "merge") -> dict[str, Any]:
    """The original's object for one (valid) trajectory. Raises TrajectoryError when its task index
    is unknown (no task_id and an item id that does not end in one)."""
    task_id = t.task_id if t.task_id is not None else split_item_id(t.item_id)[1]
    turns: list[dict[str, Any]] = []
    prefix = ""
    for turn in t.conversations:
        if turn.role == "system":  # validation allows it first only, before the first human turn
            prefix = f"{turn.value}\n\n" if system == "merge" and turn.value else ""
            continue
        if turn.role == "human":
            # The original never trains on human turns (its records say null); ours do not either.
            turns.append({"from": "human", "loss": None, "value": prefix + turn.value})
            prefix = ""
        else:
            turns.append({"from": "gpt", "loss": turn.loss, "value": turn.value})
    obj: dict[str, Any] = {"item_id": original_item_id(t.env, task_id), "conversations": turns}
    if t.reward is not None:
        obj["reward"] = float(t.reward)
        obj["success"] = int(t.success) if t.success is not None else int(t.reward == 1)
    return obj


# --- inputs -----------------------------------------------------------------------------------------
@dataclass
class Summary:
    """What an export read, left out and wrote."""

    read: int = 0
    filtered: int = 0  # did not match --env / --min-reward / --successful-only
    duplicates: int = 0
    bad: list[tuple[str, str]] = field(default_factory=list)  # (where, why), with --skip-bad
    exported: Counter[str] = field(default_factory=Counter)  # per env
    no_reward: int = 0  # exported without reward and success
    system_turns: int = 0
    foreign: Counter[str] = field(default_factory=Counter)  # exported envs the original does not have


def resolve(path: Path) -> tuple[str, Path]:
    """("store", dir) or ("file", file) for one input; ExportError when it is neither."""
    from agentgym.trainer.store import MARKER

    if not path.exists():
        raise ExportError(f"no such file or folder: {path}")
    if not path.is_dir():
        return "file", path
    for store in (path, path / "store"):  # a store, or a trainer's folder holding one
        if (store / MARKER).exists():
            return "store", store
    if (path / ROLLOUT_FILE).is_file():
        return "file", path / ROLLOUT_FILE
    raise ExportError(
        f"{path} is a folder with neither {ROLLOUT_FILE} (an eval or rollout output) nor a trainer "
        "store (STORE, or store/STORE)"
    )


def read_input(path: Path, query: Any, skip_bad: bool, summary: Summary) -> Iterator[Trajectory]:
    """The trajectories of one input that match `query` (a trainer.store.Query: the same filter as
    on the store and in training), counting what is read and left out in `summary`."""
    from agentgym.trainer.store import StoreError, TrajectoryStore

    kind, where = resolve(path)
    if kind == "store":
        try:
            # readonly: a snapshot, without the writer's lock; strict refuses corrupt lines.
            with TrajectoryStore.open(where, readonly=True, strict=not skip_bad) as store:
                total = len(store)
                if total == 0:
                    raise ExportError(f"{where}: the trainer store holds no trajectories")
                selected = store.count(query)
                summary.read += total
                summary.filtered += total - selected
                for t in store.records(query):
                    try:
                        yield t.validate()
                    except TrajectoryError as exc:
                        if not skip_bad:
                            raise ExportError(f"{where}: {exc}") from None
                        summary.bad.append((str(where), str(exc)))
        except StoreError as exc:
            raise ExportError(f"{where}: {exc}") from None
        except OSError as exc:
            raise ExportError(f"cannot read {where}: {exc}") from None
        return
    report = ReadReport()
    try:
        for t in read_trajectories(where, strict=not skip_bad, report=report):
            if query.matches(t):
                yield t
            else:
                summary.filtered += 1
    except TrajectoryError as exc:
        raise ExportError(str(exc)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ExportError(f"cannot read {where}: {exc}") from None
    finally:
        summary.read += report.read
        summary.bad += [(w, why) for w, _, why in report.skipped]
    if report.read == 0 and not report.skipped:
        tasks = (
            f" ({report.no_conversation} AgentEval items without a conversation)"
            if report.no_conversation
            else ""
        )
        raise ExportError(f"{where} holds no trajectories{tasks}")


# --- the export -------------------------------------------------------------------------------------
def export(
    inputs: list[Path],
    out: Path,
    *,
    envs: list[str] | None = None,
    min_reward: float | None = None,
    successful_only: bool = False,
    system: str = "merge",
    skip_bad: bool = False,
) -> Summary:
    """Write the trajectories of `inputs` to `out` in the original's format: a JSON array, or JSON
    Lines when `out` ends in .jsonl. The file appears whole (a temp file renamed into place) or
    not at all; ExportError names what stopped it."""
    from agentgym.trainer.store import Query

    for path in inputs:  # every input checked before anything is read or written
        resolve(path)
    if out.is_dir():
        raise ExportError(f"--out {out} is a folder; name a file (FILE.json or FILE.jsonl)")
    wanted = {ENV_ALIASES.get(e, e) for e in envs or ()}
    query = Query.of(env=wanted or None, min_reward=min_reward, success=True if successful_only else None)
    lines = out.suffix == ".jsonl"
    summary = Summary()
    seen: set[str] = set()
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(b"" if lines else b"[")
            first = True
            for path in inputs:
                for t in read_input(path, query, skip_bad, summary):
                    if t.key in seen:
                        summary.duplicates += 1
                        continue
                    try:
                        obj = agenttraj_object(t, system)
                    except TrajectoryError as exc:
                        if not skip_bad:
                            raise ExportError(f"{path}: {exc}") from None
                        summary.bad.append((str(path), str(exc)))
                        continue
                    seen.add(t.key)
                    data = orjson.dumps(obj)
                    f.write(data + b"\n" if lines else (b"\n" if first else b",\n") + data)
                    first = False
                    summary.exported[t.env] += 1
                    summary.no_reward += "reward" not in obj
                    summary.system_turns += t.conversations[0].role == "system"
                    if t.env not in ORIGINAL_PREFIXES:
                        summary.foreign[t.env] += 1
            f.write(b"" if lines else b"]\n" if first else b"\n]\n")
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would make the export private
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return summary


def print_summary(console: Console, s: Summary, out: Path, system: str) -> None:
    total = sum(s.exported.values())
    per_env = ", ".join(
        f"{env} as {ORIGINAL_PREFIXES.get(env, env)}_N: {n}" for env, n in sorted(s.exported.items())
    )
    console.print(escape(f"exported {total} trajectories to {out}" + (f" ({per_env})" if per_env else "")))
    console.print(
        f"read {s.read}; left out: {s.filtered} filtered, {s.duplicates} duplicates, {len(s.bad)} bad"
    )
    for where, why in s.bad[:5]:
        console.print(escape(f"  bad: {why if why.startswith(where) else f'{where}: {why}'}"))
    if len(s.bad) > 5:
        console.print(f"  (and {len(s.bad) - 5} more)")
    if s.no_reward:
        console.print(f"[yellow]{s.no_reward} without a reward: written without reward and success (the "
                      "original's agentevol_filter.py needs a reward on every record)[/yellow]")  # fmt: skip
    if s.system_turns:
        how = "merged into the first human turn" if system == "merge" else "left out"
        console.print(f"{s.system_turns} system turn(s) {how}")
    if s.foreign:
        envs = ", ".join(sorted(s.foreign))
        console.print(f"[yellow]{sum(s.foreign.values())} of envs the original AgentGym does not have "
                      f"({escape(envs)}): written under our env names[/yellow]")  # fmt: skip


def run(args: argparse.Namespace) -> int:
    console = Console(soft_wrap=True)  # paths and messages stay whole, to copy or grep
    out = Path(args.out)
    try:
        summary = export([Path(p) for p in args.inputs], out, envs=[e for v in args.env for e in v.split(",") if e],
                         min_reward=args.min_reward, successful_only=args.successful_only, system=args.system,
                         skip_bad=args.skip_bad)  # fmt: skip
    except ExportError as exc:
        console.print(f"[red]agentgym export: {escape(str(exc))}[/red]")
        return 2
    except OSError as exc:
        console.print(f"[red]agentgym export: {escape(f'cannot write {out}: {exc}')}[/red]")
        return 1
    print_summary(console, summary, out, args.system)
    return 0
