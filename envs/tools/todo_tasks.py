"""Task generation for the TodoList env (todo.py): templates, each solved with the env's own tools."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import date, timedelta
from functools import lru_cache
from typing import Any

from agentgym.envs.tools.base import ToolTask
from agentgym.envs.tools.planner import Planner, TaskRejected
from agentgym.envs.tools.progress import Subgoal
from agentgym.envs.tools.todo import TASKS_PER_ACCOUNT, TodoList


# --- tasks ---------------------------------------------------------------------------------------
class _Ask:
    def __init__(self, p: Planner, env: TodoList) -> None:
        self.p = p
        self.env = env
        self.wrote = False

    def projects(self) -> list[dict[str, Any]]:
        return list(self.p("get_projects"))

    def tasks(self, project: dict[str, Any]) -> list[dict[str, Any]]:
        return list(self.p("get_tasks", project_id=project["id"]))

    def all_tasks(self) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        return [(proj, t) for proj in self.projects() for t in self.tasks(proj)]

    def today(self) -> date:
        return date.fromisoformat(self.p("get_user_current_date"))

    def minutes(self, task: dict[str, Any]) -> int:
        text = self.p("get_task_duration", task_id=task["id"])["duration"]
        return int(text.split("(")[0])

    def write(self, tool_name: str, expect: tuple[Any, ...], label: str, **args: Any) -> Any:
        """Make a change, and require its effect as a state subgoal."""
        result = self.p.quiet(tool_name, **args)
        self.p.subgoals.append(Subgoal("state", expect, label=label))
        self.wrote = True
        return result


Template = Callable[[random.Random, _Ask], tuple[str, Any, int | None]]


def _pick_project(rng: random.Random, a: _Ask, min_tasks: int = 1) -> dict[str, Any]:
    db = a.env._db()
    options = [p for p in db.projects() if len(db.tasks(p["id"])) >= min_tasks]
    if not options:
        raise TaskRejected("no project")
    return rng.choice(options)


def _unique(values: list[Any], best: Any) -> None:
    if values.count(best) != 1:
        raise TaskRejected("tie")


def _t_due_date(rng: random.Random, a: _Ask) -> tuple[str, Any, int | None]:
    proj = _pick_project(rng, a)
    target = rng.choice(a.env._db().tasks(proj["id"]))
    a.projects()
    due = next(t["due_date"] for t in a.tasks(proj) if t["id"] == target["id"])
    goal = (
        f'When is "{target["content"]}" in the {proj["name"]} project due? Answer in the format YYYY-MM-DD.'
    )
    return goal, due, None


def _t_most_urgent_week(rng: random.Random, a: _Ask) -> tuple[str, Any, int | None]:
    today = a.today()
    soon = [
        t for _, t in a.all_tasks() if today <= date.fromisoformat(t["due_date"]) <= today + timedelta(days=7)
    ]
    if not soon:
        raise TaskRejected("nothing due")
    top = max(t["priority"] for t in soon)
    _unique([t["priority"] for t in soon], top)
    goal = (
        "Which task due in the next 7 days (today included) has the highest priority? "
        "Answer with the task's name."
    )
    return goal, next(t["content"] for t in soon if t["priority"] == top), None


def _t_longest(rng: random.Random, a: _Ask) -> tuple[str, Any, int | None]:
    proj = _pick_project(rng, a, 2)
    a.projects()
    tasks = a.tasks(proj)
    minutes = [a.minutes(t) for t in tasks]
    _unique(minutes, max(minutes))
    goal = f"Which task in the {proj['name']} project takes the longest? Answer with the task's name."
    return goal, tasks[minutes.index(max(minutes))]["content"], None


def _t_any_urgent(rng: random.Random, a: _Ask) -> tuple[str, Any, int | None]:
    proj = _pick_project(rng, a)
    level = rng.choice((3, 4))
    a.projects()
    yes = any(t["priority"] == level for t in a.tasks(proj))
    goal = f"Is there any open task with priority {level} in the {proj['name']} project? Answer Yes or No."
    return goal, "Yes" if yes else "No", None


def _t_over_an_hour(rng: random.Random, a: _Ask) -> tuple[str, Any, int | None]:
    proj = _pick_project(rng, a)
    limit = rng.choice((60, 90, 120, 150))
    a.projects()
    yes = any(a.minutes(t) > limit for t in a.tasks(proj))
    goal = f"Does any task in the {proj['name']} project take more than {limit} minutes? Answer Yes or No."
    return goal, "Yes" if yes else "No", None


def _t_detail(rng: random.Random, a: _Ask) -> tuple[str, Any, int | None]:
    proj = _pick_project(rng, a)
    target = rng.choice(a.env._db().tasks(proj["id"]))
    fields = dict(
        line[2:].split(": ", 1)
        for line in a.env._db().task_row(target["id"])["description"].splitlines()  # type: ignore[index]
    )
    field = rng.choice(sorted(fields))
    a.projects()
    a.tasks(proj)
    text = a.p("get_task_description", task_id=target["id"])["description"]
    value = next(line.split(": ", 1)[1] for line in text.splitlines() if line[2:].startswith(field + ":"))
    goal = (
        f'I forgot a detail of my task "{target["content"]}" in the {proj["name"]} project: what is its '
        f'"{field}"? Answer with the text written in the task\'s description.'
    )
    return goal, value, None


def _t_same_deadline(rng: random.Random, a: _Ask) -> tuple[str, Any, int | None]:
    db = a.env._db()
    everything = db.tasks()
    target = rng.choice(everything)
    same = sorted(
        t["content"] for t in everything if t["due_date"] == target["due_date"] and t["id"] != target["id"]
    )
    if not same:
        raise TaskRejected("no other task that day")
    found = sorted(
        t["content"]
        for _, t in a.all_tasks()
        if t["due_date"] == target["due_date"] and t["id"] != target["id"]
    )
    goal = (
        f'Which other tasks are due on the same day as "{target["content"]}"? Answer with a list of '
        "task names, like ['task1', 'task2']."
    )
    return goal, found, None


def _t_count_priority(rng: random.Random, a: _Ask) -> tuple[str, Any, int | None]:
    proj = _pick_project(rng, a)
    level = rng.choice((1, 2, 3, 4))
    a.projects()
    n = sum(1 for t in a.tasks(proj) if t["priority"] == level)
    goal = f"How many tasks in the {proj['name']} project have priority {level}? Answer with a number."
    return goal, n, 0


def _t_count_tasks(rng: random.Random, a: _Ask) -> tuple[str, Any, int | None]:
    proj = _pick_project(rng, a)
    a.projects()
    return (
        f"How many open tasks does the {proj['name']} project have? Answer with a number.",
        len(a.tasks(proj)),
        0,
    )


def _t_earliest_due(rng: random.Random, a: _Ask) -> tuple[str, Any, int | None]:
    proj = _pick_project(rng, a, 2)
    a.projects()
    tasks = a.tasks(proj)
    dues = [t["due_date"] for t in tasks]
    _unique(dues, min(dues))
    goal = f"Which task in the {proj['name']} project is due first? Answer with the task's name."
    return goal, tasks[dues.index(min(dues))]["content"], None


def _t_biggest_project(rng: random.Random, a: _Ask) -> tuple[str, Any, int | None]:
    counts = {proj["name"]: len(a.tasks(proj)) for proj in a.projects()}
    best = max(counts.values())
    _unique(list(counts.values()), best)
    goal = "Which project has the most open tasks? Answer with the project's name."
    return goal, next(n for n, c in counts.items() if c == best), None


def _t_total_minutes(rng: random.Random, a: _Ask) -> tuple[str, Any, int | None]:
    proj = _pick_project(rng, a)
    a.projects()
    total = sum(a.minutes(t) for t in a.tasks(proj))
    goal = f"How many minutes do all the tasks of the {proj['name']} project take together? Answer with a number."
    return goal, total, 0


def _t_by_priority(rng: random.Random, a: _Ask) -> tuple[str, Any, int | None]:
    proj = _pick_project(rng, a, 2)
    a.projects()
    tasks = a.tasks(proj)
    order = [t["content"] for t in sorted(tasks, key=lambda t: (-t["priority"], t["order"]))]
    goal = (
        f"List the tasks of the {proj['name']} project from the highest to the lowest priority. "
        "Answer with a list of task names."
    )
    return goal, order, None


def _t_days_left(rng: random.Random, a: _Ask) -> tuple[str, Any, int | None]:
    proj = _pick_project(rng, a)
    target = rng.choice(a.env._db().tasks(proj["id"]))
    today = a.today()
    a.projects()
    due = date.fromisoformat(next(t["due_date"] for t in a.tasks(proj) if t["id"] == target["id"]))
    goal = (
        f'How many days from today is "{target["content"]}" due? Answer with a number (negative if the '
        "due date has passed)."
    )
    return goal, (due - today).days, 0


def _t_overdue(rng: random.Random, a: _Ask) -> tuple[str, Any, int | None]:
    today = a.today()
    n = sum(1 for _, t in a.all_tasks() if date.fromisoformat(t["due_date"]) < today)
    return "How many open tasks are overdue (due before today)? Answer with a number.", n, 0


def _t_delete(rng: random.Random, a: _Ask) -> tuple[str, Any, int | None]:
    proj = _pick_project(rng, a)
    target = rng.choice(a.env._db().tasks(proj["id"]))
    a.projects()
    a.tasks(proj)
    a.write("delete_task", ("deleted", target["id"]), f"{target['content']} deleted", task_id=target["id"])
    return f'Please delete the task "{target["content"]}" from the {proj["name"]} project.', "done", None


def _t_favorite(rng: random.Random, a: _Ask) -> tuple[str, Any, int | None]:
    proj = _pick_project(rng, a)
    a.projects()
    a.write(
        "update_project",
        ("favorite", proj["id"], True),
        f"{proj['name']} favorite",
        project_id=proj["id"],
        is_favorite=True,
    )
    return f'Could you mark the project "{proj["name"]}" as a favorite?', "done", None


def _t_complete(rng: random.Random, a: _Ask) -> tuple[str, Any, int | None]:
    proj = _pick_project(rng, a)
    target = rng.choice(a.env._db().tasks(proj["id"]))
    a.projects()
    a.tasks(proj)
    a.write(
        "complete_task", ("completed", target["id"]), f"{target['content']} completed", task_id=target["id"]
    )
    return f'Please mark "{target["content"]}" in the {proj["name"]} project as completed.', "done", None


def _t_reschedule(rng: random.Random, a: _Ask) -> tuple[str, Any, int | None]:
    proj = _pick_project(rng, a)
    target = rng.choice(a.env._db().tasks(proj["id"]))
    shift = rng.choice((1, 2, 7))
    when = {1: "tomorrow", 2: "the day after tomorrow", 7: "one week from today"}[shift]
    today = a.today()
    a.projects()
    a.tasks(proj)
    due = (today + timedelta(days=shift)).isoformat()
    a.write(
        "update_task",
        ("due", target["id"], due),
        f"{target['content']} due {due}",
        task_id=target["id"],
        due_date=due,
    )
    return f'Please move the due date of "{target["content"]}" ({proj["name"]}) to {when}.', "done", None


def _t_postpone_and_count(rng: random.Random, a: _Ask) -> tuple[str, Any, int | None]:
    proj = _pick_project(rng, a)
    projects = a.projects()
    total = 0
    for other in projects:
        tasks = a.tasks(other)
        total += len(tasks)
        if other["id"] == proj["id"]:
            for t in tasks:
                due = (date.fromisoformat(t["due_date"]) + timedelta(days=1)).isoformat()
                a.write(
                    "update_task",
                    ("due", t["id"], due),
                    f"{t['content']} due {due}",
                    task_id=t["id"],
                    due_date=due,
                )
    goal = (
        f"Please postpone every task of the {proj['name']} project by one day. Then tell me how many open "
        "tasks there are across all projects, as a number."
    )
    return goal, total, 0


def _t_complete_urgent_and_count(rng: random.Random, a: _Ask) -> tuple[str, Any, int | None]:
    proj = _pick_project(rng, a, 2)
    level = rng.choice((2, 3))
    a.projects()
    tasks = a.tasks(proj)
    chosen = [t for t in tasks if t["priority"] >= level]
    if not chosen:
        raise TaskRejected("nothing to complete")
    for t in chosen:
        a.write("complete_task", ("completed", t["id"]), f"{t['content']} completed", task_id=t["id"])
    left = len(a.tasks(proj))
    goal = (
        f"Please complete every task of the {proj['name']} project with priority {level} or higher. Then "
        "tell me how many open tasks the project still has, as a number."
    )
    return goal, left, 0


def _t_tomorrow_except(rng: random.Random, a: _Ask) -> tuple[str, Any, int | None]:
    proj = _pick_project(rng, a, 2)
    level = rng.choice((1, 2))
    tomorrow = (a.today() + timedelta(days=1)).isoformat()
    a.projects()
    tasks = a.tasks(proj)
    chosen = [t for t in tasks if t["priority"] != level]
    if not chosen or len(chosen) == len(tasks):
        raise TaskRejected("no exception")
    for t in chosen:
        a.write(
            "update_task",
            ("due", t["id"], tomorrow),
            f"{t['content']} due {tomorrow}",
            task_id=t["id"],
            due_date=tomorrow,
        )
    goal = f"Please make every task of the {proj['name']} project due tomorrow, except those with priority {level}."
    return goal, "done", None


def _t_favorite_and_finish_first(rng: random.Random, a: _Ask) -> tuple[str, Any, int | None]:
    proj = _pick_project(rng, a, 2)
    a.projects()
    a.write(
        "update_project",
        ("favorite", proj["id"], True),
        f"{proj['name']} favorite",
        project_id=proj["id"],
        is_favorite=True,
    )
    tasks = a.tasks(proj)
    dues = [t["due_date"] for t in tasks]
    _unique(dues, min(dues))
    first = tasks[dues.index(min(dues))]
    a.write("complete_task", ("completed", first["id"]), f"{first['content']} completed", task_id=first["id"])
    goal = (
        f"Mark the {proj['name']} project as a favorite, and complete its task with the earliest due date. "
        "Then tell me the name of the task you completed."
    )
    return goal, first["content"], None


TEMPLATES: tuple[tuple[str, Template], ...] = (
    ("due_date", _t_due_date),
    ("most_urgent_week", _t_most_urgent_week),
    ("longest", _t_longest),
    ("any_priority", _t_any_urgent),
    ("over_an_hour", _t_over_an_hour),
    ("detail", _t_detail),
    ("same_deadline", _t_same_deadline),
    ("count_priority", _t_count_priority),
    ("count_tasks", _t_count_tasks),
    ("earliest_due", _t_earliest_due),
    ("biggest_project", _t_biggest_project),
    ("total_minutes", _t_total_minutes),
    ("by_priority", _t_by_priority),
    ("days_left", _t_days_left),
    ("overdue", _t_overdue),
    ("delete", _t_delete),
    ("favorite", _t_favorite),
    ("complete", _t_complete),
    ("reschedule", _t_reschedule),
    ("postpone_and_count", _t_postpone_and_count),
    ("complete_and_count", _t_complete_urgent_and_count),
    ("tomorrow_except", _t_tomorrow_except),
    ("favorite_and_complete_first", _t_favorite_and_finish_first),
)


@lru_cache(maxsize=2048)
def build_task(task_id: int) -> ToolTask:
    """Task `task_id`: template task_id % 23 on account task_id // 5 (re-drawn if the template
    does not fit the account)."""
    name, template = TEMPLATES[task_id % len(TEMPLATES)]
    rng = random.Random(f"todo/{task_id}")
    for attempt in range(200):
        seed = f"todo-account/{task_id // TASKS_PER_ACCOUNT}" + (f"/{attempt}" if attempt else "")
        env = TodoList()
        env._load(":memory:", seed)
        try:
            planner = Planner(env)
            ask = _Ask(planner, env)
            try:
                goal, answer, decimals = template(rng, ask)
            except TaskRejected:
                continue
            if len(planner.calls) + 1 > TodoList.max_rounds:
                continue
            if ask.wrote:
                planner.subgoals.append(
                    Subgoal("state", ("snapshot", env._db().snapshot()), label="nothing else changed")
                )
            return planner.task(goal, answer, template=name, context={"account": seed}, decimals=decimals)
        finally:
            env.close_backend()
    raise RuntimeError(f"todo task {task_id}: no valid instance of template {name!r}")
