"""The original's tool tasks and episode rules, for the compatibility profile (`profile=agentgym`).

Data. AgentBoard ships its tool tasks as JSON Lines, one task a line, in `data/tool-query/test.jsonl`
(academia, movie, weather) and `data/tool-operation/test.jsonl` (sheet, todo), every tool in one
file. AgentGym splits them by tool into `agentenv-tool/Toolusage/data/<env>.jsonl`, and each of its
tool servers (`agentenv_<env>/<env>_environment.py`) reads its file with AgentBoard's `ToolDataset`
and serves item id N as line N (0-based, blank lines not allowed). A line:

    {"id": N, "goal": "...", "subgoals": [...],
     "additional_info": {"answer": ..., "init_config": {...} | null, "goal_type": 0, "tool": "weather"},
     "difficulty": "easy" | "hard"}

`subgoals` is the list of gold values a progress rate counts (in AgentGym's files: the answer);
a sheet task instead carries its reference action path as text and, as `answer`, the gold sheet as
a JSON string. `init_config` holds the user's `current_date` and `current_location` (weather,
todo).

Given AgentGym's per-env file (or its `Toolusage/data` folder), task id N is the original's task N.
AgentBoard's combined file (or its `data` folder) is read too, this env's lines in file order; that
order is not checked against AgentGym's numbering, so the env does not call it "original".

Rules (AgentGym's servers and `Toolusage/toolusage/environment/<env>_env.py`): see `ToolEnv` in
base.py, which applies them under the profile. This module holds the parts that are plain text
handling: the two action regexes, the argument evaluation, the subgoal count, the sheet match.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from agentgym.envs.tools.action import _RE_COMPILE, ToolCall
from agentgym.envs.tools.progress import haversine_km

# Which AgentBoard file holds an env's tasks.
AGENTBOARD_FILE = {
    "weather": "tool-query",
    "movie": "tool-query",
    "academia": "tool-query",
    "sheet": "tool-operation",
    "todo": "tool-operation",
}
# Envs whose tasks need the user's date and city (AgentGym's servers read init_config for these).
NEEDS_INIT_CONFIG = ("weather", "todo")

# The original's texts (format facts).
INITIAL = (
    "Now new trial starts.\nYou should perform actions to accomplish the goal: {goal}\nGive me one action."
)
STEP_END = "\nGive me one action."
FORMAT_ERROR = (
    'Format error, please response in the format of  "Action: [your action] with Action Input: '
    "[your action input]"
)
BAD_PARAMS = "ERROR | Exception(Parameters in action input are not valid, please change your action input.)"
VALID_ACTIONS = "You can use following valid actions: {}"

# AgentGym's server splits the model's message with this (no flags: one line), and the env parses
# the rebuilt "<action> with Action Input: <input>" with the second (which needs "Action:").
_SERVER_ACTION = re.compile(r"\s*(.*?)\s*with\s*Action Input:\s*(.*?)$")
_ENV_ACTION = re.compile(r".*?Action:\s*(.*?)\s*with\s*Action Input:\s*(.*?)$", re.MULTILINE | re.DOTALL)
_SHEET_NAME = re.compile(r'"Sheet(\d{1,2})"')
_REFERENCE_STEP = re.compile(r"^Action \d+:\s*(.*)$")
SAME_PLACE_KM = 50.0


class OriginalDataError(ValueError):
    """The data file is missing or not in the original's layout; the message names file and line."""


@dataclass(frozen=True)
class OriginalTask:
    line: int  # 1-based line in `path`, for messages
    path: str
    goal: str
    subgoals: Any  # a list of gold values; for sheet, the reference action path (text)
    answer: Any
    init_config: dict[str, Any] | None
    difficulty: str
    goal_type: int | None


@dataclass(frozen=True)
class OriginalData:
    tasks: list[OriginalTask]
    # True when the ids follow AgentGym's per-env file (task N is line N of it).
    agentgym_numbering: bool
    source: str


# --- loading -------------------------------------------------------------------------------------
def load(path: str, env: str) -> OriginalData:
    """The tasks of `env` from `path`: AgentGym's `<env>.jsonl` or its folder, or AgentBoard's
    `test.jsonl` or its data folder."""
    p = Path(path).expanduser()
    if not p.exists():
        raise OriginalDataError(f"{env}.data: {p} does not exist")
    if p.is_dir():
        own = p / f"{env}.jsonl"
        board = p / AGENTBOARD_FILE[env] / "test.jsonl"
        if own.is_file():
            p = own
        elif board.is_file():
            p = board
        else:
            raise OriginalDataError(
                f"{env}.data: {p} holds neither {env}.jsonl (AgentGym's agentenv-tool/Toolusage/data) "
                f"nor {AGENTBOARD_FILE[env]}/test.jsonl (AgentBoard's data folder)"
            )
    rows = _read_lines(p)
    tools = {_tool_of(row, p, n) for n, row in rows}
    mine = [(n, row) for n, row in rows if _tool_of(row, p, n) in (env, None)]
    if not mine:
        raise OriginalDataError(f"{p}: no {env} task in the file (its tools: {sorted(map(str, tools))})")
    tasks = [_task(row, env, p, n) for n, row in mine]
    return OriginalData(tasks, agentgym_numbering=len(mine) == len(rows), source=str(p))


def _read_lines(p: Path) -> list[tuple[int, dict[str, Any]]]:
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise OriginalDataError(f"{p}: cannot read it: {exc}") from None
    lines = text.split("\n")
    while lines and not lines[-1].strip():  # a file may end with newlines
        lines.pop()
    if not lines:
        raise OriginalDataError(f"{p}: the file is empty")
    rows = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            # The original's loader fails on a blank line; skipping it would shift every id after it.
            raise OriginalDataError(f"{p}:{n}: blank line (one JSON task per line, ids are line numbers)")
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise OriginalDataError(f"{p}:{n}: not JSON: {exc}") from None
        if not isinstance(row, dict):
            raise OriginalDataError(f"{p}:{n}: a task must be a JSON object, got {type(row).__name__}")
        rows.append((n, row))
    return rows


def _tool_of(row: dict[str, Any], p: Path, n: int) -> str | None:
    info = row.get("additional_info")
    if not isinstance(info, dict):
        raise OriginalDataError(f'{p}:{n}: "additional_info" must be an object')
    tool = info.get("tool")
    if tool is not None and not isinstance(tool, str):
        raise OriginalDataError(f'{p}:{n}: "additional_info.tool" must be a string')
    return tool


def _task(row: dict[str, Any], env: str, p: Path, n: int) -> OriginalTask:
    def bad(what: str) -> OriginalDataError:
        return OriginalDataError(f"{p}:{n}: {what}")

    goal = row.get("goal")
    if not isinstance(goal, str) or not goal.strip():
        raise bad('"goal" must be a non-empty string')
    info = row["additional_info"]
    if "answer" not in info:
        raise bad('"additional_info.answer" is missing')
    if "subgoals" not in row:
        raise bad('"subgoals" is missing')
    subgoals, answer = row["subgoals"], info["answer"]
    if env == "sheet":
        if not isinstance(subgoals, str):
            raise bad('a sheet task\'s "subgoals" must be its reference action path (text)')
        if sheet_name(goal) is None:
            raise bad('a sheet task\'s goal must name its sheet as "SheetN"')
        gold_sheet(answer, bad)
        reference_plan(subgoals, bad)
    elif not isinstance(subgoals, list) or not subgoals:
        raise bad('"subgoals" must be a non-empty list')  # the original divides by its length
    init = info.get("init_config")
    if env in NEEDS_INIT_CONFIG:
        if not isinstance(init, dict):
            raise bad(
                '"additional_info.init_config" must be an object with current_date and current_location'
            )
        for key in ("current_date", "current_location"):
            if not isinstance(init.get(key), str) or not init[key].strip():
                raise bad(f'"additional_info.init_config.{key}" must be a non-empty string')
        try:
            date.fromisoformat(init["current_date"])
        except ValueError:
            raise bad('"additional_info.init_config.current_date" must be a date, YYYY-MM-DD') from None
    elif init is not None and not isinstance(init, dict):
        raise bad('"additional_info.init_config" must be an object or null')
    if env == "todo" and not (
        isinstance(answer, dict)
        and all(isinstance(answer.get(k), list) for k in ("projects", "tasks"))
        and all(isinstance(x, dict) for x in answer["projects"] + answer["tasks"])
    ):
        raise bad(
            'a todo task\'s "additional_info.answer" must be the end state {"projects": [...], "tasks": [...]}'
        )
    goal_type = info.get("goal_type")
    return OriginalTask(
        line=n,
        path=str(p),
        goal=goal,
        subgoals=subgoals,
        answer=answer,
        init_config=init,
        difficulty=str(row.get("difficulty", "")),
        goal_type=goal_type if isinstance(goal_type, int) else None,
    )


def sibling(data: str, relative: str) -> Path | None:
    """A file of the same AgentGym checkout as the data file (its Toolusage folder), if there."""
    p = Path(data).expanduser()
    folder = p if p.is_dir() else p.parent  # .../Toolusage/data
    candidate = folder.parent / relative
    return candidate if candidate.is_file() else None


# --- sheet tasks ---------------------------------------------------------------------------------
def sheet_name(goal: str) -> str | None:
    """The sheet a goal names, as the original's extract_sheet_name finds it."""
    m = _SHEET_NAME.search(goal)
    return f"Sheet{m.group(1)}" if m else None


def gold_sheet(answer: Any, bad: Callable[[str], Exception] | None = None) -> list[list[str]]:
    """A sheet task's gold values: its answer, a JSON string of a list of rows."""
    try:
        grid = json.loads(answer) if isinstance(answer, str) else None
    except ValueError:
        grid = None
    if not (isinstance(grid, list) and grid and all(isinstance(r, list) for r in grid)):
        if bad is None:
            raise ValueError("not a sheet")
        raise bad('a sheet task\'s "additional_info.answer" must be a JSON string of a list of rows')
    return [[v if isinstance(v, str) else str(v) for v in row] for row in grid]


def reference_plan(text: str, bad: Callable[[str], Exception] | None = None) -> list[ToolCall]:
    """A sheet task's reference action path ("Action 1: tool with Action Input: {...}" lines)."""
    calls = []
    for line in text.splitlines():
        m = _REFERENCE_STEP.match(line.strip())
        if m is None:
            continue
        step = re.match(r"(\w+)\s*with\s*Action Input:\s*(.*)$", m.group(1))
        args = _literal(step.group(2)) if step else None
        if step is None or not isinstance(args, dict):
            if bad is None:
                raise ValueError(line)
            raise bad(f"cannot read the reference action {line.strip()[:80]!r}")
        calls.append(ToolCall(step.group(1), args))
    return calls


def match_score(current: Any, gold: list[list[str]]) -> float:
    """The original sheet score: the share of equal cells over the rows and columns both sheets
    have (the column count read from each sheet's first row)."""
    if not isinstance(current, list) or not current:
        return 0.0
    rows = min(len(current), len(gold))
    cols = min(len(current[0]), len(gold[0]) if gold else 0)
    total = rows * cols
    if total == 0:
        return 0.0

    def at(grid: list[list[str]], r: int, c: int) -> Any:
        return grid[r][c] if c < len(grid[r]) else None

    same = sum(1 for r in range(rows) for c in range(cols) if at(current, r, c) == at(gold, r, c))
    return same / total


# --- the original's action handling --------------------------------------------------------------
class ActionFailed(Exception):
    """The action text did not parse; the message is the observation."""


def split_message(message: str) -> tuple[str, str] | None:
    """(action, action input) as AgentGym's server extracts them, or None (a format error)."""
    m = _SERVER_ACTION.search(message)
    return (m.group(1), m.group(2)) if m else None


def parse_action(action: str) -> tuple[str, Any]:
    """(tool name, evaluated input) of the rebuilt "<action> with Action Input: <input>", as the
    env's parse_action reads it. The original evaluated the input with eval(); we evaluate Python
    literals only (a sheet query's re.compile('...') is read as its pattern).

    The original needed "Action:" before the tool's name (without it: "ERROR | TypeError(cannot
    unpack non-iterable NoneType object)"). Our ReAct client sends the text after the reply's
    last "Action:" (client/react.py), so a missing "Action:" cannot be told from a stripped one;
    both are read as present."""
    m = _ENV_ACTION.match(action) or _ENV_ACTION.match(f"Action: {action}")
    if m is None:
        raise ActionFailed(BAD_PARAMS)
    try:
        params = ast.literal_eval(_RE_COMPILE.sub(r"\1", m.group(2)))
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        raise ActionFailed(BAD_PARAMS) from None
    return m.group(1), params


def _literal(text: str) -> Any:
    try:
        return ast.literal_eval(_RE_COMPILE.sub(r"\1", text.strip()))
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None


def ends_episode(action: str, env: str) -> bool:
    """The original ends an episode on any dispatched action whose text contains "finish" (sheet:
    in any case; the others: "finish" or "Finish"), whatever the tool."""
    if env == "sheet":
        return "finish" in action.lower()
    return "Finish" in action or "finish" in action


def failed_call(tool: str, kwargs: dict[str, Any]) -> str:
    """What the original records as the subgoal of a call the service refused."""
    return f"Calling {tool} with {kwargs} failed"


def count_met(gold: list[Any], records: list[Any], places: bool) -> int:
    """How many gold subgoals the records meet, each record used once (Python equality; with
    `places`, weather's rule: dicts with latitude/longitude match within 50 km, the rest equal)."""
    left = list(records)
    count = 0
    for g in gold:
        if places and isinstance(g, dict) and "latitude" in g and "longitude" in g:
            for r in left:
                if isinstance(r, dict) and "latitude" in r and "longitude" in r and _same_spot(g, r):
                    left.remove(r)
                    count += 1
                    break
        elif g in left:
            left.remove(g)
            count += 1
    return count


def _same_spot(a: dict[str, Any], b: dict[str, Any]) -> bool:
    try:
        km = haversine_km(
            float(a["latitude"]), float(a["longitude"]), float(b["latitude"]), float(b["longitude"])
        )
    except (TypeError, ValueError):
        return False
    place = ("latitude", "longitude")
    return km < SAME_PLACE_KM and {k: v for k, v in a.items() if k not in place} == {
        k: v for k, v in b.items() if k not in place
    }
