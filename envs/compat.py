"""The "agentgym" compatibility profile: the original AgentGym's conversation openings, read at run
time from the operator's own copies of the original's files. None of the original's texts is
shipped with this project; without those files the profile cannot be turned on.

The original opens every episode with two fixed turns, then the env's first observation:

    human  the env's instruction                 (loss null)
    gpt    the env's acknowledgement             (loss false)
    human  the first observation                 (loss null)

Where the two fixed turns come from (docs/compat.md):

- `agenttraj=PATH`: an AgentTraj file (a JSON array or JSON Lines of the original's records,
  ``{"item_id": "webshop_6", "conversations": [...]}``; a folder: every *.json / *.jsonl in it).
  An env's records are those whose item id names it (`core.trajectory.split_item_id`: the
  original's prefixes ``lmrlgym_maze``, ``lmrlgym_wordle``, ``sqlgym`` map to maze, wordle, bird);
  their first two turns must agree across all of them.
- `agentgym_source=PATH`: a checkout of github.com/WooooDyy/AgentGym (or the installed `agentenv`
  package). Each env client module under ``agentenv/agentenv/envs/`` holds the opening as a class
  attribute: ``conversation_start`` on the client class (a tuple of two ``ConversationMessage``),
  or, for clients with an ``adapter_cls`` (webshop, alfworld, sciworld), that adapter's
  ``conversation_start_dict[ActionFormat.REACT]``. The files are parsed with `ast`, never imported
  or run: only literal strings (with ``+``, implicit concatenation and ``.strip()``) are read, and
  anything else (an f-string, a call) is reported with its file and line.

Both given: the source checkout wins for every env it defines (it is what the original's own
evaluation sends); AgentTraj is used for an env the checkout lacks, and a disagreement between the
two is logged. An env found in neither is an error naming the env and what was looked for: the
server refuses to start rather than silently use this project's texts.

Maze also takes its task text from these files: the original's maze opening is a one-line
instruction, and the task (rules, an example, the reply format) comes in the third turn, before the
first observation (``MazeEnvClient._fully_first_observation + "\\n" + observation``). From AgentTraj
it is the third turn of the maze records up to its last line (the observation).
"""

from __future__ import annotations

import ast
import logging
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from agentgym.core.trajectory import ENV_ALIASES, TrajectoryError, read_items, split_item_id

log = logging.getLogger(__name__)

PROFILE = "agentgym"


class CompatError(ValueError):
    """The profile's texts could not be read from the operator's files (the message says why)."""


@dataclass(frozen=True, slots=True)
class ClientClass:
    """Where the original defines an env's opening: `module` (under agentenv/agentenv/envs/), the env
    client class, and, for maze, the class attribute with the task text of the first observation."""

    module: str
    client: str
    task_text: str = ""


# Our env name -> the original's env client. The original also has searchqa and webarena, which
# this project does not host.
ORIGINAL_CLIENTS: dict[str, ClientClass] = {
    "academia": ClientClass("academia.py", "AcademiaEnvClient"),
    "alfworld": ClientClass("alfworld.py", "AlfWorldEnvClient"),
    "babyai": ClientClass("babyai.py", "BabyAIEnvClient"),
    "bird": ClientClass("sqlgym.py", "SqlGymEnvClient"),
    "maze": ClientClass("lmrlgym.py", "MazeEnvClient", task_text="_fully_first_observation"),
    "movie": ClientClass("movie.py", "MovieEnvClient"),
    "sciworld": ClientClass("sciworld.py", "SciworldEnvClient"),
    "sheet": ClientClass("sheet.py", "SheetEnvClient"),
    "textcraft": ClientClass("textcraft.py", "TextCraftEnvClient"),
    "todo": ClientClass("todo.py", "TodoEnvClient"),
    "weather": ClientClass("weather.py", "WeatherEnvClient"),
    "webshop": ClientClass("webshop.py", "WebshopEnvClient"),
    "wordle": ClientClass("lmrlgym.py", "WordleEnvClient", task_text="first_observation"),
}

# Where a checkout's env client modules are, for a checkout root, the `agentenv` project folder and
# an installed `agentenv` package (site-packages/agentenv).
SOURCE_LAYOUTS = ("agentenv/agentenv/envs", "agentenv/envs", "envs")
# The action format whose opening the original uses unless told otherwise (BaseEnvClient's default).
REACT = "REACT"
_STR_METHODS = {"strip", "lstrip", "rstrip"}

_ITEM_PREFIX = {env: prefix for prefix, env in ENV_ALIASES.items()}


@dataclass(frozen=True, slots=True)
class Opening:
    """An env's first two turns as the original has them, and where they were read."""

    instruction: str
    acknowledgement: str
    origin: str
    # Maze: the text before the first observation in the third turn (joined to it by "\n").
    task_text: str | None = None


def item_prefix(env: str) -> str:
    """The original's item-id prefix of an env ("lmrlgym_maze" for maze)."""
    return _ITEM_PREFIX.get(env, env)


# --- the profile --------------------------------------------------------------------------------
def apply_opening(cls: Any, settings: Mapping[str, str]) -> None:
    """Give env class `cls` the original's opening from the files named in `settings` (the
    registry calls this after the env's own `configure`, when `profile=agentgym`)."""
    got = opening(cls.name, settings)
    cls.instruction = got.instruction
    cls.acknowledgement = got.acknowledgement
    if got.task_text is not None:
        cls.original_task_text = got.task_text
    log.info("original opening loaded", extra={"env": cls.name, "origin": got.origin})


def opening(env: str, settings: Mapping[str, str]) -> Opening:
    """The original's opening of `env` from `settings` ("agentgym_source", "agenttraj"); raises
    CompatError with what was looked for when neither file has it."""
    source, traj = settings.get("agentgym_source", ""), settings.get("agenttraj", "")
    if not source and not traj:
        raise CompatError(
            f"{env}: the agentgym profile needs the original's texts, which are not shipped here: give "
            "an AgentTraj file (--agenttraj FILE) or an original AgentGym source checkout "
            "(--agentgym-source DIR)"
        )
    check_paths(source or None, traj or None)
    from_source = from_traj = None
    missing = []
    if source:
        try:
            from_source = source_opening(source, env)
        except CompatError as exc:
            # Not there, or not readable without running it (an f-string): the AgentTraj file may
            # have it. Without one, an unreadable text is reported as it is.
            if not traj and not isinstance(exc, _NotInSource):
                raise
            missing.append(str(exc))
    if traj:
        try:
            from_traj = agenttraj_opening(traj, env)
        except _NotInTraj as exc:
            missing.append(str(exc))
    if from_source is not None:
        if from_traj is not None:
            _compare(env, from_source, from_traj)
        return from_source
    if from_traj is not None:
        if source:
            log.warning("opening taken from the AgentTraj file: the source checkout does not give it",
                        extra={"env": env, "reason": missing[0], "agenttraj": traj})  # fmt: skip
        return from_traj
    raise CompatError(
        f"{env}: no opening found for the agentgym profile: {'; '.join(missing)}. Host {env} without "
        f"the profile (--env-setting {env}.profile=) or leave it out of --envs"
    )


def check_paths(source: str | None, agenttraj: str | None) -> None:
    """Clear errors for paths that cannot be what they should be (checked when a server starts)."""
    if source:
        envs_dir(source)
    if agenttraj:
        p = Path(agenttraj)
        if not p.exists():
            raise CompatError(f"agenttraj {agenttraj}: no such file")
        if p.is_dir() and not _traj_files(p):
            raise CompatError(f"agenttraj {agenttraj}: a folder with no .json or .jsonl file in it")


def _compare(env: str, source: Opening, traj: Opening) -> None:
    for what, a, b in (
        ("instruction", source.instruction, traj.instruction),
        ("acknowledgement", source.acknowledgement, traj.acknowledgement),
        ("task text", source.task_text, traj.task_text),
    ):
        if a is not None and b is not None and a != b:
            log.warning(
                "the source checkout and the AgentTraj file differ; the source checkout wins",
                extra={"env": env, "turn": what, "source": source.origin, "agenttraj": traj.origin,
                       "first_difference": _difference(a, b)},
            )  # fmt: skip


def _difference(a: str, b: str) -> str:
    i = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
    return f"at character {i}: {a[i : i + 30]!r} vs {b[i : i + 30]!r}"


# --- a source checkout ----------------------------------------------------------------------------
class _NotInSource(CompatError):
    """The checkout does not define this env (another source may)."""


def envs_dir(source: str | os.PathLike[str]) -> Path:
    """The folder of the original's env client modules in a checkout (or an installed package)."""
    root = Path(source)
    if not root.is_dir():
        raise CompatError(f"agentgym_source {source}: no such directory")
    for layout in SOURCE_LAYOUTS:
        d = root / layout
        if (d / "__init__.py").is_file():
            return d
    raise CompatError(
        f"agentgym_source {source}: not an AgentGym source checkout: none of "
        f"{', '.join(f'{layout}/__init__.py' for layout in SOURCE_LAYOUTS)} is in it (give the folder "
        "github.com/WooooDyy/AgentGym was cloned into, or the installed agentenv package)"
    )


def source_opening(source: str, env: str) -> Opening:
    """`env`'s opening from a source checkout (ORIGINAL_CLIENTS says where)."""
    where = ORIGINAL_CLIENTS.get(env)
    if where is None:
        raise _NotInSource(f"the original has no env client for {env!r}")
    module = _module(source, where.module, env)
    client = module.cls(where.client, env)
    turns, line = _conversation_start(module, client)
    instruction, ack = _two_turns(turns, f"{module.path}:{line}")
    task_text = module.string_attr(client, where.task_text) if where.task_text else None
    return Opening(instruction, ack, f"{module.path}:{line}", task_text)


def read_source_string(source: str, module: str, cls: str, attr: str) -> str:
    """A class attribute holding a literal string, e.g. ("lmrlgym.py", "WordleEnvClient",
    "first_observation"), read without running the code: for envs that take more texts from a
    checkout than their opening."""
    m = _module(source, module, cls)
    return m.string_attr(m.cls(cls, cls), attr)


def _module(source: str, name: str, env: str) -> _Module:
    path = envs_dir(source) / name
    if not path.is_file():
        raise _NotInSource(f"{path} not found (the original defines {env}'s opening there)")
    return _parse(str(path), path.stat().st_mtime_ns)


@cache
def _parse(path: str, _mtime_ns: int) -> _Module:
    try:
        tree = ast.parse(Path(path).read_text(encoding="utf-8"), filename=path)
    except (SyntaxError, UnicodeDecodeError) as exc:
        raise CompatError(f"{path}: cannot be parsed as Python: {exc}") from None
    return _Module(path, tree)


@dataclass
class _Module:
    """A parsed module of the original, read for literal values only."""

    path: str
    tree: ast.Module
    consts: dict[str, ast.expr] = field(init=False)

    def __post_init__(self) -> None:
        # Module-level NAME = <expr>, so a text kept in a constant can be followed.
        self.consts = {}
        for node in self.tree.body:
            if (
                isinstance(node, ast.Assign)
                and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)
            ):
                self.consts[node.targets[0].id] = node.value

    def cls(self, name: str, env: str) -> ast.ClassDef:
        for node in self.tree.body:
            if isinstance(node, ast.ClassDef) and node.name == name:
                return node
        raise _NotInSource(f"{self.path} has no class {name} (where the original defines {env}'s opening)")

    def attr(self, cls: ast.ClassDef, name: str) -> ast.expr | None:
        for node in cls.body:
            if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == name for t in node.targets
            ):
                return node.value
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and node.target.id == name
            ):
                return node.value
        return None

    def string_attr(self, cls: ast.ClassDef, name: str) -> str:
        node = self.attr(cls, name)
        if node is None:
            raise _NotInSource(f"{self.path}: class {cls.name} has no attribute {name}")
        return self.string(node, f"{cls.name}.{name}")

    def string(self, node: ast.expr, what: str, depth: int = 0) -> str:
        """A literal string expression's value, or CompatError naming the line and the construct."""
        if depth > 20:
            raise CompatError(f"{self.path}:{node.lineno}: {what}: constants refer to each other too deeply")
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value  # implicit concatenation ("a" "b") is already one constant
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            return self.string(node.left, what, depth + 1) + self.string(node.right, what, depth + 1)
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in _STR_METHODS
            and not node.args
            and not node.keywords
        ):
            return getattr(self.string(node.func.value, what, depth + 1), node.func.attr)()
        if isinstance(node, ast.Name) and node.id in self.consts:
            return self.string(self.consts[node.id], what, depth + 1)
        kind = (
            "an f-string, formatted when the original runs"
            if isinstance(node, ast.JoinedStr)
            else "not a literal string"
        )
        code = ast.unparse(node)
        raise CompatError(
            f"{self.path}:{node.lineno}: {what} is {kind} ({code[:60]}{'...' if len(code) > 60 else ''}); "
            "it cannot be read without running the original's code, which this project does not do. "
            "Give an AgentTraj file (--agenttraj) for this env instead"
        )


def _conversation_start(module: _Module, client: ast.ClassDef) -> tuple[list[tuple[str, str]], int]:
    """The opening turns of a client class: its own `conversation_start`, or its adapter's
    `conversation_start_dict[ActionFormat.REACT]` (what the original's clients set in __init__)."""
    node = module.attr(client, "conversation_start")
    what = f"{client.name}.conversation_start"
    if node is None:
        adapter = module.attr(client, "adapter_cls")
        if not isinstance(adapter, ast.Name):
            raise _NotInSource(
                f"{module.path}: class {client.name} has neither conversation_start nor an adapter_cls "
                "with a conversation_start_dict"
            )
        adapter_cls = module.cls(adapter.id, client.name)
        table = module.attr(adapter_cls, "conversation_start_dict")
        if not isinstance(table, ast.Dict):
            raise _NotInSource(f"{module.path}: class {adapter.id} has no conversation_start_dict literal")
        what = f"{adapter.id}.conversation_start_dict[ActionFormat.REACT]"
        node = next((v for k, v in zip(table.keys, table.values, strict=True) if _is_react(k)), None)
        if node is None:
            raise _NotInSource(
                f"{module.path}:{table.lineno}: {adapter.id}.conversation_start_dict has no ActionFormat.REACT entry"
            )
    if not isinstance(node, ast.Tuple | ast.List):
        raise CompatError(f"{module.path}:{node.lineno}: {what} is not a literal tuple of messages")
    turns = []
    for i, message in enumerate(node.elts):
        # ConversationMessage({...}) or a plain dict.
        if isinstance(message, ast.Call) and len(message.args) == 1 and not message.keywords:
            message = message.args[0]
        if not isinstance(message, ast.Dict):
            raise CompatError(f"{module.path}:{message.lineno}: {what}[{i}] is not a literal message")
        fields_ = {
            k.value: v
            for k, v in zip(message.keys, message.values, strict=True)
            if isinstance(k, ast.Constant)
        }
        for key in ("from", "value"):
            if key not in fields_:
                raise CompatError(f"{module.path}:{message.lineno}: {what}[{i}] has no {key!r}")
        turns.append(
            (
                module.string(fields_["from"], f"{what}[{i}]['from']"),
                module.string(fields_["value"], f"{what}[{i}]['value']"),
            )
        )
    return turns, node.lineno


def _is_react(key: ast.expr | None) -> bool:
    if isinstance(key, ast.Attribute):
        return key.attr == REACT
    return isinstance(key, ast.Constant) and key.value == REACT.lower()


def _two_turns(turns: list[tuple[str, str]], where: str) -> tuple[str, str]:
    roles = [role for role, _ in turns]
    if roles[:2] != ["human", "gpt"] or len(turns) != 2:
        raise CompatError(f"{where}: expected two turns, human then gpt; found {roles}")
    instruction, ack = turns[0][1], turns[1][1]
    if not ack:
        # The client stands its default in for an empty acknowledgement: it could not be reproduced.
        raise CompatError(f"{where}: the acknowledgement is empty, which the profile cannot reproduce")
    return instruction, ack


# --- an AgentTraj file ----------------------------------------------------------------------------
class _NotInTraj(CompatError):
    """The file has no records of this env (another source may)."""


@dataclass
class _EnvRecords:
    """What one env's records of an AgentTraj file open with."""

    # (instruction, acknowledgement) -> item ids opening with it
    openings: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    # item id -> the third turn (the first observation), where there is one
    first_observations: dict[str, str] = field(default_factory=dict)


def agenttraj_opening(path: str, env: str) -> Opening:
    """`env`'s opening from an AgentTraj file: the first two turns of its records, which must agree."""
    records = _scan_cached(path).get(env)
    if records is None:
        envs = ", ".join(sorted(_scan_cached(path))) or "none"
        prefixes = sorted({item_prefix(env), env})
        raise _NotInTraj(
            f"agenttraj {path} has no records of {env} (item ids {' or '.join(p + '_N' for p in prefixes)}); "
            f"envs it has: {envs}"
        )
    if len(records.openings) > 1:
        variants = sorted(records.openings.items(), key=lambda kv: -len(kv[1]))
        (a, ids_a), (b, ids_b) = variants[0], variants[1]
        turn = "instruction" if a[0] != b[0] else "acknowledgement"
        diff = _difference(a[0], b[0]) if a[0] != b[0] else _difference(a[1], b[1])
        raise CompatError(
            f"agenttraj {path}: the {env} records do not agree on their opening turns ({len(variants)} "
            f"variants): {len(ids_a)} records open like {_some(ids_a)}, {len(ids_b)} like {_some(ids_b)}; "
            f"their {turn}s differ {diff}. Keep one variant's records in the file"
        )
    ((instruction, ack), ids) = next(iter(records.openings.items()))
    origin = f"{path} ({len(ids)} {env} records)"
    _two_turns([("human", instruction), ("gpt", ack)], f"agenttraj {path}, record {ids[0]}")
    task_text = (
        _maze_task_text(path, records)
        if env == "maze"
        else _wordle_task_text(path, records)
        if env == "wordle"
        else None
    )
    return Opening(instruction, ack, origin, task_text)


def agenttraj_first_observations(path: str, env: str) -> dict[str, str]:
    """Item id -> the first observation (third turn) of `env`'s records, for envs whose first
    observation carries text of the original's (as maze's task text)."""
    records = _scan_cached(path).get(env)
    return dict(records.first_observations) if records else {}


def _some(ids: list[str], n: int = 3) -> str:
    return ", ".join(ids[:n]) + (f" and {len(ids) - n} more" if len(ids) > n else "")


def _maze_task_text(path: str, records: _EnvRecords) -> str:
    """The maze task text: each record's first observation is that text, "\\n", then one line (the
    observation of the task). It must be the same in every record."""
    from agentgym.envs import maze

    texts: dict[str, list[str]] = {}
    differing: list[str] = []
    for item_id, first in records.first_observations.items():
        text, sep, observation = first.rpartition("\n")
        if not sep or not observation.strip():
            raise CompatError(
                f"agenttraj {path}, record {item_id}: its third turn is not the maze task text followed by "
                "a line with the first observation"
            )
        texts.setdefault(text, []).append(item_id)
        task_id = split_item_id(item_id)[1]
        if task_id < maze.ORIGINAL_TASKS and observation != maze.observation(task_id):
            differing.append(item_id)
    text = _the_one_text(path, "maze", texts)
    if differing:
        # The text is what the profile takes; the observation itself is this project's, so say so.
        log.warning(
            "maze records whose first observation differs from this project's for the same task",
            extra={"agenttraj": path, "item_ids": differing[:10], "count": len(differing)},
        )
    return text


def _wordle_task_text(path: str, records: _EnvRecords) -> str:
    """The wordle task text: the original's first observation is one text for every task (its rules
    with the vocabulary list filled in), so the records' third turns must all be that text."""
    texts: dict[str, list[str]] = {}
    for item_id, first in records.first_observations.items():
        texts.setdefault(first, []).append(item_id)
    return _the_one_text(path, "wordle", texts)


def _the_one_text(path: str, env: str, texts: dict[str, list[str]]) -> str:
    """The task text every record of `env` carries in its third turn (text -> item ids)."""
    if not texts:
        raise _NotInTraj(f"agenttraj {path}: the {env} records have no third turn (the task text)")
    if len(texts) > 1:
        variants = sorted(texts.values(), key=len, reverse=True)
        raise CompatError(
            f"agenttraj {path}: the {env} records do not agree on the task text of their third turn "
            f"({len(variants)} variants): {_some(variants[0])} vs {_some(variants[1])}"
        )
    return next(iter(texts))


def _traj_files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.suffix in (".json", ".jsonl") and p.is_file())
    return [path]


def _scan_cached(path: str) -> dict[str, _EnvRecords]:
    files = _traj_files(Path(path))
    stamp = tuple((str(f), f.stat().st_mtime_ns, f.stat().st_size) for f in files)
    return _scan(path, stamp)


@cache
def _scan(path: str, stamp: tuple[tuple[str, int, int], ...]) -> dict[str, _EnvRecords]:
    """Every env's opening turns in one pass over the file(s) (a server configures its envs one by
    one; the file is read once). Records without a conversation (AgentEval task lists) are skipped."""
    out: dict[str, _EnvRecords] = {}
    interned: dict[str, str] = {}  # many records share one first observation: keep one copy
    conversations = 0
    for where, item in _items(stamp):
        if isinstance(item, TrajectoryError):
            raise CompatError(f"agenttraj {where}: {item}")
        if not isinstance(item, dict) or not item.get("conversations"):
            continue
        conversations += 1
        item_id = str(item.get("item_id", ""))
        try:
            env = split_item_id(item_id)[0]
        except TrajectoryError:
            continue  # not an env's record (no "<env>_<index>" id): nothing to take from it
        turns = item["conversations"]
        if not isinstance(turns, list) or len(turns) < 2 or not all(isinstance(t, dict) for t in turns[:3]):
            raise CompatError(f"agenttraj {where} ({item_id}): conversations is not a list of turns")
        roles = [t.get("from") for t in turns[:3]]
        if roles[:2] != ["human", "gpt"]:
            raise CompatError(
                f"agenttraj {where} ({item_id}): the conversation opens with {roles[:2]}, not human then gpt "
                "(the original's layout)"
            )
        values = [t.get("value") for t in turns[:3]]
        if not all(isinstance(v, str) for v in values):
            raise CompatError(f"agenttraj {where} ({item_id}): a turn's value is not a string")
        records = out.setdefault(env, _EnvRecords())
        records.openings.setdefault((values[0], values[1]), []).append(item_id)
        if len(values) > 2 and roles[2] == "human":
            records.first_observations[item_id] = interned.setdefault(values[2], values[2])
    if not conversations:
        raise CompatError(f"agenttraj {path}: no record with a conversation (an AgentEval task list?)")
    return out


def _items(stamp: tuple[tuple[str, int, int], ...]) -> Iterator[tuple[str, Any]]:
    for file, _, _ in stamp:
        try:
            yield from read_items(file)
        except (OSError, TrajectoryError) as exc:
            raise CompatError(f"agenttraj {file}: {exc}") from None
