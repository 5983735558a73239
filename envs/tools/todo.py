"""TODOList: answer questions about, and make changes to, a to-do list with Todoist-style tools
(AgentBoard's tool-operation TODOList, served by AgentGym as `todo`; max 15 rounds).

Tools, names and arguments as the original's (which wrapped Todoist's REST API): the user's date
and city, get_projects, update_project(project_id, is_favorite), get_tasks(project_id),
get_task_description(task_id), get_task_duration(task_id), complete_task, update_task(task_id,
due_date), delete_task, check_valid_actions and finish(answer). Results have the original's
shapes. The backend is a SQLite file per episode (todo_world.py).

Tasks: ids 0-154 are the test set (the original's size), 155-999 a training set. Question tasks end
with the answer; operation tasks end with finish("done"), and, unlike the original (which took a
"done" on trust), their subgoals check the store: each required change is made, and nothing else
changed. Gold answers and end states come from solving each task with the tools on a scratch copy
of its account (planner.py).

With `todo.data` (the original's todo.jsonl) and the original's account (`todo.projects`, the
checkout's projects.json, which the original loaded into Todoist before every task), task id N is
the original's task N on the original's account: the goal, the user's date and city, the gold
answer and the gold end state come from the file. Under the profile the original's reward holds:
progress while the episode runs, and when it ends, 1 only if progress is 1 and the account equals
the gold end state (ids aside), else 0.
"""

from __future__ import annotations

import json
import random
import re
import shutil
import tempfile
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Any, ClassVar

from agentgym.envs.registry import register
from agentgym.envs.tools import original
from agentgym.envs.tools import todo_world as world
from agentgym.envs.tools.action import ToolCall
from agentgym.envs.tools.base import AnswerToolEnv, ToolError, ToolTask, tool
from agentgym.envs.tools.original import OriginalData, OriginalDataError, OriginalTask
from agentgym.envs.tools.progress import Subgoal
from agentgym.envs.tools.toolkit import Param

TEST_TASKS = 155
TASKS = 1000
# Consecutive task ids share an account, as the original's tasks shared one.
TASKS_PER_ACCOUNT = 5
# Where an AgentGym checkout keeps the account the original loaded before each task.
PROJECTS_IN_CHECKOUT = "toolusage/utils/todo/projects.json"
# The original's result messages (Todoist's answers as its tools wrapped them), and ours.
MESSAGES = {
    "project": ("The project was updated.", "Update the project successfully."),
    "complete": ("The task was completed.", "Complete task successfully."),
    "update": ("The task was updated.", "Update the task successfully"),
    "delete": ("The task was deleted.", "Delete the task successfully."),
}

_INTRO = """\
You are an agent that manages a user's to-do list (projects, each with tasks) by calling the tools \
of a to-do service. Get ids from get_projects and get_tasks; never make them up. Task priority \
goes from 1 (normal) to 4 (urgent)."""

_NOTES = """\
When you have the answer, call finish with it. When the task asks you to change the list, make \
the changes and then call finish with the answer "done"."""

_EXAMPLE = """\
Goal: Is "Water the house plants" a task of the Household Chores project? Answer Yes or No.
Thought:
I need the id of the Household Chores project.

Action:
get_projects with Action Input: {}
Observation: [{'id': '5120983344', 'order': 1, 'color': 'teal', 'name': 'Household Chores', 'is_favorite': False}]
Thought:
Now I list the project's tasks.

Action:
get_tasks with Action Input: {"project_id": "5120983344"}
Observation: [{'id': '7012384455', 'order': 1, 'content': 'Water the house plants', 'is_completed': False, 'priority': 1, 'due_date': '2024-03-02'}]
Thought:
The task is in the project.

Action:
finish with Action Input: {"answer": "Yes"}
Observation: Yes"""

_TASK_ID = (Param("task_id", "string", "The id of the task."),)


def _clean_ids(value: Any) -> Any:
    """The original compared results without their ids."""
    if isinstance(value, list):
        return [_clean_ids(v) for v in value]
    if isinstance(value, dict):
        return {k: _clean_ids(v) for k, v in value.items() if k != "id"}
    return value


@register
class TodoList(AnswerToolEnv):
    name = "todo"
    description = (
        "Manage a to-do list with Todoist-style tools (AgentBoard tool-operation TODOList); SQLite backend."
    )
    intro = _INTRO
    notes = _NOTES
    example = _EXAMPLE
    max_rounds = 15
    task_count = TASKS
    splits = {"test": [range(0, TEST_TASKS)], "train": [range(TEST_TASKS, TASKS)]}
    success_threshold = 1.0
    builtin_task_set = "built-in to-do tasks on generated accounts; not the original's"
    original_expert_gap = "this task's gold end state needs a change the tools cannot make"
    settings_help = {
        **AnswerToolEnv.settings_help,
        "projects": "with data: the original's account, AgentGym's agentenv-tool/Toolusage/"
        f"{PROJECTS_IN_CHECKOUT} (found there when data is in that checkout)",
    }
    # The original's account (projects and tasks, ids given here), loaded by `configure` with `data`.
    original_account: ClassVar[world.Account | None] = None

    @classmethod
    def configure_world(cls, settings: Mapping[str, str], data: OriginalData | None) -> None:
        if data is None:
            if settings.get("projects"):
                raise ValueError("todo.projects only applies with todo.data")
            cls.original_account = None
            return
        path = settings.get("projects") or original.sibling(settings["data"], PROJECTS_IN_CHECKOUT)
        if not path:
            raise OriginalDataError(
                "todo.data needs the original's account: set todo.projects to AgentGym's "
                f"agentenv-tool/Toolusage/{PROJECTS_IN_CHECKOUT}"
            )
        cls.original_account = load_projects(Path(path).expanduser())

    @classmethod
    def world_is_original(cls) -> bool:
        return True

    def __init__(self) -> None:
        super().__init__()
        self.store: world.Store | None = None
        self.tmp: str | None = None
        self.current_date = ""
        self.current_location = ""

    def make_task(self, task_id: int) -> ToolTask:
        from agentgym.envs.tools.todo_tasks import build_task

        return build_task(task_id)

    def open_backend(self, task: ToolTask) -> None:
        self.tmp = tempfile.mkdtemp(prefix="agentgym-todo-")
        self._load(str(Path(self.tmp) / "todo.sqlite3"), task.context["account"])

    def _load(self, path: str, account_seed: str) -> None:
        data = world.account(account_seed) if account_seed else self._original_account()
        self.store = world.Store(path, data)
        self.current_date = data.current_date
        self.current_location = data.current_location

    def close_backend(self) -> None:
        if self.store is not None:
            self.store.close()
            self.store = None
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None

    def clean(self, tool_name: str, result: Any) -> Any:
        return _clean_ids(result)

    def state_met(self, subgoal: Subgoal) -> bool:
        assert self.store is not None
        kind, *args = subgoal.expected
        if kind == "snapshot":
            return self.store.snapshot() == args[0]
        if kind == "status":
            return self.status() == args[0]
        row = self.store.db.execute(
            "SELECT due_date, is_completed FROM tasks WHERE id = ?", (args[0],)
        ).fetchone()
        if kind == "deleted":
            return row is None
        if kind == "completed":
            return row is not None and row[1] == 1
        if kind == "due":
            return row is not None and row[0] == args[1]
        if kind == "favorite":
            p = self.store.project(args[0])
            return p is not None and p["is_favorite"] == args[1]
        raise ValueError(f"unknown state subgoal {kind!r}")

    # --- the original's tasks and rules ----------------------------------------------------------
    def _original_account(self) -> world.Account:
        account, init = self.original_account, self.task.context
        assert account is not None
        return world.Account(init["current_date"], init["current_location"], account.projects, account.tasks)

    def status(self) -> dict[str, Any]:
        """The account as the original compared it with the gold end state: every project, then
        every open task project by project, without ids."""
        db = self._db()
        projects = db.projects()
        tasks = [t for p in projects for t in db.tasks(p["id"])]
        return {"projects": _clean_ids(projects), "tasks": _clean_ids(tasks)}

    def original_task(self, record: OriginalTask) -> ToolTask:
        """The original's task on its account. A task whose gold end state is the starting account
        is a question (its answer decides); otherwise the end state is a subgoal too."""
        assert self.original_account is not None
        gold = record.answer
        question = gold == initial_status(self.original_account)
        subgoals = [] if question else [Subgoal("state", ("status", gold), label="the original's end state")]
        subgoals += [Subgoal("answer", v, decisive=question) for v in record.subgoals]
        return ToolTask(
            goal=record.goal,
            subgoals=subgoals,
            plan=original_plan(self.original_account, record, self.max_rounds),
            answer=record.subgoals[0],
            context={**(record.init_config or {}), "account": ""},
            template="original",
        )

    def original_score(self, best: float, done: bool) -> float:
        # AgentGym's todo server: once the episode ends, 1 only if progress is 1 and the account
        # equals the gold end state; progress until then.
        if not done:
            return best
        if self.record is None:
            return float(best >= 1.0 and self.builtin_state_met())
        return float(best >= 1.0 and self.status() == self.record.answer)

    def _message(self, kind: str) -> str:
        return MESSAGES[kind][1 if self.profile else 0]

    # --- lookups ---------------------------------------------------------------------------------
    def _db(self) -> world.Store:
        assert self.store is not None, "no episode"
        return self.store

    def _task(self, task_id: str) -> dict[str, Any]:
        row = self._db().task_row(task_id.strip())
        if row is None:
            raise ToolError(f"Task {task_id} does not exist.")
        return row

    @staticmethod
    def _public(row: dict[str, Any]) -> dict[str, Any]:
        return {k: row[k] for k in ("id", "order", "content", "is_completed", "priority", "due_date")}

    # --- tools -----------------------------------------------------------------------------------
    @tool("Get the user's current date.", returns="The current date, YYYY-MM-DD.")
    def get_user_current_date(self) -> str:
        return self.current_date

    @tool("Get the user's current city.", returns="The name of the user's city.")
    def get_user_current_location(self) -> str:
        return self.current_location

    @tool(
        "Get all projects of the to-do account.",
        returns="- an array of projects with: id (string), order (integer), color (string), name (string), is_favorite (boolean).",
    )
    def get_projects(self) -> list[dict[str, Any]]:
        return self._db().projects()

    @tool(
        "Mark a project as a favorite, or not.",
        (
            Param("project_id", "string", "The id of the project."),
            Param(
                "is_favorite",
                "boolean",
                "Whether the project is a favorite.",
                type_label="boolean, Enum: [True, False]",
            ),
        ),
        "The updated project.",
        mutates=True,
    )
    def update_project(self, project_id: str, is_favorite: bool) -> dict[str, Any]:
        db = self._db()
        if db.project(project_id.strip()) is None:
            raise ToolError(f"Project {project_id} does not exist.")
        db.set_favorite(project_id.strip(), is_favorite)
        return {"message": self._message("project"), "project": db.project(project_id.strip())}

    @tool(
        "Get the open (not completed) tasks of a project.",
        (Param("project_id", "string", "The id of the project."),),
        "- an array of tasks with: id, order, content (the task's name), is_completed, priority (1 normal to 4 urgent), due_date.",
    )
    def get_tasks(self, project_id: str) -> list[dict[str, Any]]:
        db = self._db()
        if db.project(project_id.strip()) is None:
            raise ToolError(f"Project {project_id} does not exist.")
        return db.tasks(project_id.strip())

    @tool(
        "Get the description of a task (place, tips and other details).",
        _TASK_ID,
        "- id, content (the task's name), description.",
    )
    def get_task_description(self, task_id: str) -> dict[str, Any]:
        t = self._task(task_id)
        return {"id": t["id"], "content": t["content"], "description": t["description"]}

    @tool(
        "Get how long a task takes.",
        _TASK_ID,
        "- id, content (the task's name), duration as 'amount(unit)', e.g. '60(minute)'.",
    )
    def get_task_duration(self, task_id: str) -> dict[str, Any]:
        t = self._task(task_id)
        return {"id": t["id"], "content": t["content"], "duration": f"{t['duration']}({t['duration_unit']})"}

    @tool("Mark a task as completed.", _TASK_ID, "The completed task.", mutates=True)
    def complete_task(self, task_id: str) -> dict[str, Any]:
        t = self._task(task_id)
        self._db().complete(t["id"])
        task = self._public(t)
        del task["is_completed"]
        return {"message": self._message("complete"), "task": task}

    @tool(
        "Change the due date of a task.",
        (*_TASK_ID, Param("due_date", "string", "The new due date, YYYY-MM-DD.")),
        "The updated task.",
        mutates=True,
    )
    def update_task(self, task_id: str, due_date: str) -> dict[str, Any]:
        t = self._task(task_id)
        try:
            due = date.fromisoformat(due_date.strip()).isoformat()
        except ValueError:
            raise ToolError(
                f"Error: due_date must be a date in the format YYYY-MM-DD, got {due_date!r}."
            ) from None
        self._db().set_due(t["id"], due)
        return {"message": self._message("update"), "task": self._public(self._task(t["id"]))}

    @tool("Delete a task.", _TASK_ID, "The deleted task.", mutates=True)
    def delete_task(self, task_id: str) -> dict[str, Any]:
        t = self._task(task_id)
        self._db().delete(t["id"])
        return {"message": self._message("delete"), "task": self._public(t)}


# --- the original's account and the expert's plan for its tasks ---------------------------------
def load_projects(path: Path) -> world.Account:
    """The original's projects.json (a list of projects, each with its tasks), given ids as Todoist
    would (fixed here, so episodes replay). The original added each project by name only, so every
    project starts with Todoist's defaults: color "charcoal", not a favorite."""

    def bad(what: str) -> OriginalDataError:
        return OriginalDataError(f"todo.projects: {path}: {what}")

    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise bad(f"cannot read it: {exc}") from None
    except ValueError as exc:
        raise bad(f"not JSON: {exc}") from None
    if not isinstance(doc, list) or not doc:
        raise bad("must be a non-empty list of projects")
    rng = random.Random("todo/original")
    used: set[str] = set()

    def new_id() -> str:
        while (v := str(rng.randrange(10**9, 10**10))) in used:
            pass
        used.add(v)
        return v

    projects, tasks = [], []
    for i, p in enumerate(doc, start=1):
        if (
            not isinstance(p, dict)
            or not isinstance(p.get("name"), str)
            or not isinstance(p.get("tasks"), list)
        ):
            raise bad(f"project {i} must have a name (string) and tasks (a list)")
        pid = new_id()
        projects.append({"id": pid, "name": p["name"], "order": i, "color": "charcoal", "is_favorite": False})
        for j, t in enumerate(p["tasks"], start=1):
            where = f"project {i} ({p['name']!r}), task {j}"
            if not isinstance(t, dict):
                raise bad(f"{where} must be an object")
            for key, kind in (
                ("content", str),
                ("description", str),
                ("due_date", str),
                ("duration_unit", str),
            ):
                if not isinstance(t.get(key), kind):
                    raise bad(f"{where}: {key!r} must be a string")
            for key in ("duration", "priority"):
                if not isinstance(t.get(key), int) or isinstance(t.get(key), bool):
                    raise bad(f"{where}: {key!r} must be an integer")
            if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", t["due_date"]):
                raise bad(f"{where}: 'due_date' must be YYYY-MM-DD")
            tasks.append(
                {
                    "id": new_id(),
                    "project_id": pid,
                    "order": j,
                    "content": t["content"],
                    "description": t["description"],
                    "due_date": t["due_date"],
                    "duration": t["duration"],
                    "duration_unit": t["duration_unit"],
                    "priority": t["priority"],
                }
            )
    return world.Account("", "", projects, tasks)


def initial_status(account: world.Account) -> dict[str, Any]:
    """The original's status view of an untouched account."""
    keep = ("order", "content", "priority", "due_date")
    return {
        "projects": [{k: p[k] for k in ("order", "color", "name", "is_favorite")} for p in account.projects],
        "tasks": [
            {"order": t["order"], "content": t["content"], "is_completed": False}
            | {k: t[k] for k in keep if k not in ("order", "content")}
            for p in account.projects
            for t in account.tasks
            if t["project_id"] == p["id"]
        ],
    }


def original_plan(account: world.Account, record: OriginalTask, max_rounds: int) -> list[ToolCall]:
    """The calls that turn the account into the task's gold end state, then answer with the file's
    answer; the lists are read first when the rounds allow. Empty when the end state needs a
    change the tools cannot make (a new task, another priority)."""
    gold = record.answer
    calls: list[ToolCall] = []
    if len(gold["projects"]) != len(account.projects):
        return []
    for p, g in zip(account.projects, gold["projects"], strict=True):
        if not isinstance(g, dict) or g.get("name") != p["name"]:
            return []
        if g.get("is_favorite") is not p["is_favorite"]:
            calls.append(
                ToolCall("update_project", {"project_id": p["id"], "is_favorite": bool(g.get("is_favorite"))})
            )
    start = [t for p in account.projects for t in account.tasks if t["project_id"] == p["id"]]
    drop = "delete_task" if re.search(r"\b(delete|remove)", record.goal, re.IGNORECASE) else "complete_task"
    wanted = list(gold["tasks"])
    for t in start:
        g = wanted[0] if wanted else None
        if g is None or g.get("content") != t["content"] or g.get("order") != t["order"]:
            calls.append(ToolCall(drop, {"task_id": t["id"]}))
            continue
        wanted.pop(0)
        if g.get("priority") != t["priority"] or g.get("is_completed") is not False:
            return []
        if g.get("due_date") != t["due_date"]:
            calls.append(ToolCall("update_task", {"task_id": t["id"], "due_date": g.get("due_date")}))
    if wanted:
        return []
    reads = [ToolCall("get_projects", {})] + [
        ToolCall("get_tasks", {"project_id": p["id"]}) for p in account.projects
    ]
    if len(reads) + len(calls) + 1 <= max_rounds:
        calls = reads + calls
    return [*calls, ToolCall("finish", {"answer": record.subgoals[0]})]
