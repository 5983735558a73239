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
"""

from __future__ import annotations

import shutil
import tempfile
from datetime import date
from pathlib import Path
from typing import Any

from agentgym.envs.registry import register
from agentgym.envs.tools import todo_world as world
from agentgym.envs.tools.base import AnswerToolEnv, ToolError, ToolTask, tool
from agentgym.envs.tools.progress import Subgoal
from agentgym.envs.tools.toolkit import Param

TEST_TASKS = 155
TASKS = 1000
# Consecutive task ids share an account, as the original's tasks shared one.
TASKS_PER_ACCOUNT = 5

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
        data = world.account(account_seed)
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
        return {"message": "The project was updated.", "project": db.project(project_id.strip())}

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
        return {"message": "The task was completed.", "task": task}

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
        return {"message": "The task was updated.", "task": self._public(self._task(t["id"]))}

    @tool("Delete a task.", _TASK_ID, "The deleted task.", mutates=True)
    def delete_task(self, task_id: str) -> dict[str, Any]:
        t = self._task(task_id)
        self._db().delete(t["id"])
        return {"message": "The task was deleted.", "task": self._public(t)}
