"""The tool envs on the original's task files, and under the agentgym profile (envs/tools/original.py).

The files are made up, in the original's layouts: AgentGym's per-env JSON Lines
(agentenv-tool/Toolusage/data/<env>.jsonl), AgentBoard's combined data/tool-*/test.jsonl, the todo
account (projects.json) and a small workbook standing in for the original's sheet file. None of the
original's tasks or texts is in this repository.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agentgym.client.envclient import EnvClient
from agentgym.envs import registry
from agentgym.envs.base import EnvError
from agentgym.envs.tools import original
from agentgym.envs.tools.base import ToolEnv
from agentgym.envs.tools.original import OriginalDataError
from tests.conftest import StartServer

TOOL_ENVS = ["weather", "movie", "academia", "sheet", "todo"]
STEP_END = "\nGive me one action."


def row(
    goal: str, subgoals: Any, answer: Any, tool: str, init: dict[str, str] | None = None
) -> dict[str, Any]:
    return {
        "id": 0,
        "goal": goal,
        "subgoals": subgoals,
        "additional_info": {"answer": answer, "init_config": init, "goal_type": 0, "tool": tool},
        "difficulty": "easy",
    }


WEATHER = [
    row(
        "Made-up weather task zero?",
        [12.5],
        12.5,
        "weather",
        {"current_date": "2023-03-10", "current_location": "Lisbon"},
    ),
    row(
        "Made-up weather task one?",
        [3.0, "breezy"],
        3.0,
        "weather",
        {"current_date": "2023-07-01", "current_location": "Oslo"},
    ),
]
MOVIE = [
    row("Made-up movie task zero?", ["Nowhere"], "Nowhere", "movie"),
    row("Made-up movie task one?", [7, "Somewhere"], 7, "movie"),
]
ACADEMIA = [row("Made-up academia task?", [2], 2, "academia")]

# The made-up account, in projects.json's layout, and its status as the original compared it.
PROJECTS = [
    {
        "name": "Garden",
        "is_favorite": False,
        "tasks": [
            {"content": "Water plants", "description": "- Place: yard", "due_date": "2015-06-02",
             "duration": 30, "duration_unit": "minute", "priority": 1},
            {"content": "Mow lawn", "description": "- Tool: mower", "due_date": "2015-06-05",
             "duration": 60, "duration_unit": "minute", "priority": 2},
        ],
    },
    {
        "name": "Errands",
        "is_favorite": False,
        "tasks": [
            {"content": "Buy milk", "description": "- Place: shop", "due_date": "2015-06-03",
             "duration": 15, "duration_unit": "minute", "priority": 4},
            {"content": "Post letter", "description": "- Place: post office", "due_date": "2015-06-04",
             "duration": 10, "duration_unit": "minute", "priority": 3},
        ],
    },
]  # fmt: skip


def status(
    drop: tuple[str, ...] = (), due: dict[str, str] | None = None, favorite: tuple[str, ...] = ()
) -> dict[str, Any]:
    projects = [
        {"order": i, "color": "charcoal", "name": p["name"], "is_favorite": p["name"] in favorite}
        for i, p in enumerate(PROJECTS, start=1)
    ]
    tasks = [
        {"order": j, "content": t["content"], "is_completed": False, "priority": t["priority"],
         "due_date": (due or {}).get(t["content"], t["due_date"])}
        for p in PROJECTS
        for j, t in enumerate(p["tasks"], start=1)
        if t["content"] not in drop
    ]  # fmt: skip
    return {"projects": projects, "tasks": tasks}


TODO_INIT = {"current_date": "2015-06-01", "current_location": "New York"}
TODO = [
    row("Made-up: when is Mow lawn due?", ["2015-06-05"], status(), "todo", TODO_INIT),
    row(
        "Made-up: I bought the milk; please update my list.",
        ["done"],
        status(drop=("Buy milk",)),
        "todo",
        TODO_INIT,
    ),
    row(
        "Made-up: move Water plants to 2015-06-09 and make Errands a favorite.",
        ["done"],
        status(due={"Water plants": "2015-06-09"}, favorite=("Errands",)),
        "todo",
        TODO_INIT,
    ),
]

# The made-up workbook: the task's sheet, and another one.
SHEETS = {
    "Sheet1": [["Item", "Qty"], ["pear", 3], ["fig", 1], ["kiwi", 2]],
    "Sheet2": [["Name"], ["x"]],
}
SHEET_GOLD = [["Item", "Qty"], ["pear", "3"], ["kiwi", "2"], ["fig", "1"]]
SHEET = [
    row(
        'Made-up: in "Sheet1", sort the table by "Qty" in descending order.',
        "Reference Action Path: \nAction 1: sort_sheet_by_col with Action Input: {'col_num': '2', 'order': 'des'}\n",
        json.dumps(SHEET_GOLD),
        "sheet",
    )
]
DATA = {"weather": WEATHER, "movie": MOVIE, "academia": ACADEMIA, "sheet": SHEET, "todo": TODO}


def jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def workbook(path: Path) -> Path:
    from openpyxl import Workbook

    wb = Workbook()
    wb.remove(wb.active)
    for name, rows in SHEETS.items():
        ws = wb.create_sheet(name)
        for r in rows:
            ws.append(r)
    path.parent.mkdir(parents=True, exist_ok=True)
    wb.save(path)
    return path


@pytest.fixture(autouse=True)
def _restore_default() -> Iterator[None]:
    # Env classes hold one configuration per process: give the other tests the defaults back.
    yield
    for name in TOOL_ENVS:
        registry.configure(name, {})


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A made-up AgentGym checkout: Toolusage/data/<env>.jsonl, the todo account and the workbook
    where the original keeps them, and an AgentTraj file for the profile's opening turns."""
    tool = tmp_path / "AgentGym" / "agentenv-tool" / "Toolusage"
    for name, rows in DATA.items():
        jsonl(tool / "data" / f"{name}.jsonl", rows)
    todo = tool / "toolusage" / "utils" / "todo" / "projects.json"
    todo.parent.mkdir(parents=True)
    todo.write_text(json.dumps(PROJECTS))
    workbook(tool / "toolusage" / "utils" / "sheet" / "Test Sheet-For Copy.xlsx")
    traj = [
        {
            "item_id": f"{name}_0",
            "conversations": [
                {"from": "human", "loss": None, "value": f"Made-up {name} instruction."},
                {"from": "gpt", "loss": False, "value": "Ok."},
                {"from": "human", "loss": None, "value": "made-up first observation"},
                {"from": "gpt", "loss": True, "value": "Thought: x\n\nAction: finish with Action Input: {}"},
            ],
        }
        for name in TOOL_ENVS
    ]
    (tmp_path / "traj.json").write_text(json.dumps(traj))
    return tool / "data"


def settings(checkout: Path, profile: bool, **extra: str) -> dict[str, str]:
    out = {"data": str(checkout), **extra}
    if profile:
        out |= {"profile": "agentgym", "agenttraj": str(checkout.parents[3] / "traj.json")}
    return out


def make(name: str, checkout: Path, profile: bool, **extra: str) -> ToolEnv:
    cls = registry.configure(name, settings(checkout, profile, **extra))
    env = cls()
    assert isinstance(env, ToolEnv)
    return env


# --- the data: ids, task sets, layouts -------------------------------------------------------------
@pytest.mark.parametrize("profile", [False, True])
def test_item_id_n_is_line_n(checkout: Path, profile: bool) -> None:
    for name, rows in DATA.items():
        env = make(name, checkout, profile)
        assert (env.task_count, env.splits) == (len(rows), {"test": [range(0, len(rows))]})
        for n, r in enumerate(rows):
            first = env.reset(n, 0, {}).observation
            assert r["goal"] in first
            if profile:
                assert first == original.INITIAL.format(goal=r["goal"])
            env.close()
    weather = make("weather", checkout, profile)
    weather.reset(1, 0, {})
    date = weather.step("Action: get_user_current_date with Action Input: {}").observation
    where = weather.step("Action: get_user_current_location with Action Input: {}").observation
    assert "2023-07-01" in date and "Oslo" in where  # line 1's init_config


def test_task_set_says_what_the_ids_index(checkout: Path, tmp_path: Path) -> None:
    builtin = {name: registry.configure(name, {}) for name in TOOL_ENVS}
    counts = {name: cls.task_count for name, cls in builtin.items()}
    assert all(cls.task_set and cls.task_set != "original" for cls in builtin.values())
    for name in TOOL_ENVS:
        cls = registry.configure(name, settings(checkout, True))
        # Only sheet and todo start in the original's world (its workbook, its account).
        assert (cls.task_set == "original") == (name in ("sheet", "todo")), (name, cls.task_set)
        if name in ("weather", "movie", "academia"):
            assert "simulated world" in cls.task_set and "not comparable" in cls.task_set
        assert registry.configure(name, {}).task_count == counts[name]  # the built-in tasks are back
    # AgentBoard's combined file: this env's lines, in order; not AgentGym's numbering.
    board = tmp_path / "agentboard" / "data"
    jsonl(board / "tool-operation" / "test.jsonl", [SHEET[0], TODO[1], SHEET[0], TODO[2]])
    projects = checkout.parent / "toolusage" / "utils" / "todo" / "projects.json"
    cls = registry.configure("todo", {"data": str(board), "projects": str(projects)})
    assert cls.task_count == 2 and cls.task_set.startswith("AgentBoard's todo tasks in file order")
    env = cls()
    assert TODO[2]["goal"] in env.reset(1, 0, {}).observation
    env.close()


def test_malformed_files_are_named_with_their_line(checkout: Path, tmp_path: Path) -> None:
    def refused(name: str, data: Path | str, match: str, **extra: str) -> None:
        with pytest.raises(OriginalDataError, match=match):
            registry.configure(name, {"data": str(data), **extra})

    refused("weather", tmp_path / "nope.jsonl", "does not exist")
    refused("weather", tmp_path, "holds neither weather.jsonl")
    bad = tmp_path / "bad.jsonl"
    good = json.dumps(WEATHER[0])
    for text, match in [
        ("", "the file is empty"),
        (f"{good}\n\n{good}\n", r"bad.jsonl:2: blank line"),
        (f"{good}\n{{oops\n", r"bad.jsonl:2: not JSON"),
        (f"{good}\n[1, 2]\n", r"bad.jsonl:2: a task must be a JSON object"),
        (json.dumps({**WEATHER[0], "goal": ""}), r"bad.jsonl:1: \"goal\""),
        (json.dumps({**WEATHER[0], "subgoals": []}), r"bad.jsonl:1: \"subgoals\" must be a non-empty list"),
        (json.dumps(row("g", [1], 1, "weather")), r"bad.jsonl:1: .*init_config"),
        (
            json.dumps(row("g", [1], 1, "weather", {"current_date": "June", "current_location": "X"})),
            "YYYY-MM-DD",
        ),
        (json.dumps(row("g", [1], 1, "movie")), "no weather task in the file"),
    ]:
        bad.write_text(text)
        refused("weather", bad, match)
    bad.write_text(json.dumps({**SHEET[0], "subgoals": ["x"]}))
    refused("sheet", bad, r"bad.jsonl:1: .*reference action path")
    bad.write_text(
        json.dumps({**SHEET[0], "additional_info": {**SHEET[0]["additional_info"], "answer": "[1"}})
    )
    refused("sheet", bad, r"bad.jsonl:1: .*JSON string of a list of rows")
    # Sheet and todo need the original's world; a checkout has it, a lone file does not.
    lone = jsonl(tmp_path / "lone" / "sheet.jsonl", SHEET)
    refused("sheet", lone, "needs the original's workbook")
    refused("sheet", lone, r"cannot read it as an \.xlsx", workbook=str(lone))
    other = jsonl(
        tmp_path / "lone" / "other.jsonl",
        [row('In "Sheet9", sort.', SHEET[0]["subgoals"], json.dumps(SHEET_GOLD), "sheet")],
    )
    book = checkout.parent / "toolusage" / "utils" / "sheet" / "Test Sheet-For Copy.xlsx"
    refused("sheet", other, r"other.jsonl:1: the workbook .* has no sheet Sheet9", workbook=str(book))
    todo = jsonl(tmp_path / "lone" / "todo.jsonl", TODO)
    refused("todo", todo, "needs the original's account")
    broken = tmp_path / "projects.json"
    broken.write_text(
        json.dumps([{**PROJECTS[0], "tasks": [{**PROJECTS[0]["tasks"][0], "priority": "high"}]}])
    )
    refused(
        "todo", todo, r"project 1 \('Garden'\), task 1: 'priority' must be an integer", projects=str(broken)
    )
    with pytest.raises(ValueError, match="unknown settings"):
        registry.configure("weather", {"data": str(checkout), "vocab": "x"})
    with pytest.raises(ValueError, match=r"only applies with sheet\.data"):
        registry.configure("sheet", {"workbook": str(book)})
    cls = registry.configure("movie", {"data": str(checkout)})
    with pytest.raises(OriginalDataError):
        registry.configure("movie", {"data": str(tmp_path / "missing")})
    assert cls.task_count == len(MOVIE)  # a refused configuration changes nothing


# --- the original's rules ----------------------------------------------------------------------------
def test_step_endings_and_format_errors(checkout: Path) -> None:
    env = make("movie", checkout, True)
    env.reset(0, 0, {})
    out = env.step("Thought: I check.\n\nAction: check_valid_actions with Action Input: {}")
    assert out.observation.startswith("Observation: You can use following valid actions: ['get_search_movie'")
    assert out.observation.endswith("']" + STEP_END) and not out.done
    # No "with Action Input:": the server's own answer, without the frame.
    out = env.step("I would rather chat.")
    assert (out.observation, out.done, out.info["invalid"]) == (original.FORMAT_ERROR, False, "true")
    # The input is a Python literal (the original eval'd it): JSON's true is refused.
    out = env.step('Action: finish with Action Input: {"answer": true}')
    assert out.observation == f"Observation: {original.BAD_PARAMS}{STEP_END}" and not out.done
    out = env.step("Action: finish with Action Input: {}")
    assert out.observation == f"Observation: ERROR | KeyError('answer'){STEP_END}" and not out.done
    out = env.step("Action: finish with Action Input: 5")
    assert out.observation.startswith("Observation: ERROR | TypeError(") and not out.done
    out = env.step("Action: finish with Action Input: {'answer': 'Nowhere'}")
    assert out.observation == f"Observation: Nowhere{STEP_END}" and out.done  # the frame even after finish
    # Our rules: our frame, and no frame text after finish.
    env = make("movie", checkout, False)
    env.reset(0, 0, {})
    assert env.step("check_valid_actions with Action Input: {}").observation.endswith(
        "What is your next action?"
    )
    assert env.step('finish with Action Input: {"answer": true}').observation == "Observation: True"


def test_any_action_containing_finish_ends_the_episode_under_the_profile(checkout: Path) -> None:
    lookup = 'Action: get_latitude_longitude with Action Input: {"name": "Finish"}'
    unknown = "Action: finish_up with Action Input: {}"
    for profile in (True, False):
        env = make("weather", checkout, profile)
        for action in (lookup, unknown):
            env.reset(0, 0, {})
            out = env.step(action)
            assert out.done == profile, (profile, action, out.observation)
    env = make("weather", checkout, True)
    env.reset(0, 0, {})
    out = env.step(unknown)
    assert out.observation == f"Observation: ERROR | Invalid action: finish_up.{STEP_END}"
    # Sheet's check ignores case; the others' does not.
    loud = "Action: get_note with Action Input: {'position': 'A1', 'note': 'FINISH'}"
    sheet = make("sheet", checkout, True)
    sheet.reset(0, 0, {})
    sheet.step("Action: open_sheet with Action Input: {'name': 'Sheet1'}")
    assert sheet.step(loud).done
    movie = make("movie", checkout, True)
    movie.reset(0, 0, {})
    assert not movie.step("Action: check_valid_actions with Action Input: {'why': 'FINISH'}").done


def _finish(env: ToolEnv, answer: Any, profile: bool) -> Any:
    action = f"finish with Action Input: {json.dumps({'answer': answer}) if not profile else repr({'answer': answer})}"
    return env.step(f"Action: {action}")


def test_rewards_weather_any_progress_counts_as_one(checkout: Path) -> None:
    # Task 1 has two gold values; the answer meets one of them.
    env = make("weather", checkout, True)
    env.reset(1, 0, {})
    out = _finish(env, 3.0, True)
    assert (out.score, out.reward, out.success, out.info["progress"]) == (1.0, 1.0, True, "0.5000")
    env.reset(1, 0, {})
    out = _finish(env, "3.0", True)  # the original compared with ==: text is not the number
    assert (out.score, out.success) == (0.0, False)
    env = make("weather", checkout, False)
    env.reset(1, 0, {})
    assert _finish(env, "3.0", False).score == 1.0  # ours: a right answer, in any form, solves it


def test_rewards_progress_rate_for_movie(checkout: Path) -> None:
    env = make("movie", checkout, True)
    env.reset(1, 0, {})
    out = _finish(env, 7, True)
    assert (out.score, out.reward, out.success) == (0.5, 0.5, False)
    env = make("movie", checkout, False)
    env.reset(1, 0, {})
    assert _finish(env, 7, False).score == 1.0


def test_rewards_todo_is_checked_against_the_end_state(checkout: Path) -> None:
    for profile in (True, False):
        env = make("todo", checkout, profile)
        env.reset(1, 0, {})  # "I bought the milk": the end state lacks Buy milk
        out = _finish(env, "done", profile)
        assert out.done and not out.success and out.score == (0.0 if profile else 0.5)
        if profile:
            assert out.info["progress"] == "1.0000"  # the answer alone was right
        env.reset(1, 0, {})
        store = env.store  # type: ignore[attr-defined]
        errands = next(p["id"] for p in store.projects() if p["name"] == "Errands")
        env.step(f"Action: get_tasks with Action Input: {{'project_id': '{errands}'}}")
        milk = next(t["id"] for t in store.tasks(errands) if t["content"] == "Buy milk")
        changed = env.step(f"Action: complete_task with Action Input: {{'task_id': '{milk}'}}").observation
        assert ("Complete task successfully." in changed) == profile  # the original's message
        out = _finish(env, "done", profile)
        assert out.done and out.success and out.score == 1.0


def test_rewards_sheet_match_over_the_shared_cells(checkout: Path) -> None:
    env = make("sheet", checkout, True)
    env.reset(0, 0, {})
    out = env.step("Action: open_sheet with Action Input: {'name': 'Sheet1'}")
    assert out.score == 0.5  # the original: the share of equal cells, already half
    out = env.step("Action: sort_sheet_by_col with Action Input: {'col_num': 2, 'order': 'des'}")
    assert (out.score, out.reward, out.success, out.done) == (1.0, 0.5, True, False)
    # Deleting past the data: Google Sheets' grid goes on, so the original allowed it.
    assert (
        "ERROR"
        not in env.step(
            "Action: delete_batch_data with Action Input: {'dimension': 'row', 'index_list': [30]}"
        ).observation
    )
    env = make("sheet", checkout, False)
    env.reset(0, 0, {})
    assert (
        env.step('open_sheet with Action Input: {"name": "Sheet1"}').score == 0.0
    )  # ours: progress from the start
    assert (
        "Error"
        in env.step(
            'delete_batch_data with Action Input: {"dimension": "row", "index_list": [30]}'
        ).observation
    )


def test_weather_places_match_within_50_km() -> None:
    gold = [{"latitude": 38.72, "longitude": -9.14, "name": "Lisbon"}, 4]
    near = {"latitude": 38.7, "longitude": -9.1, "name": "Lisbon"}
    assert original.count_met(gold, [near, 4.0], places=True) == 2
    assert original.count_met(gold, [near, 4.0], places=False) == 1
    assert original.count_met(gold, [{**near, "name": "Other"}], places=True) == 0
    assert original.count_met(gold, [{**near, "latitude": 40.4}], places=True) == 0


# --- experts ------------------------------------------------------------------------------------------
def _play(env: ToolEnv, task: int) -> Any:
    out = env.reset(task, 0, {})
    for _ in range(env.max_rounds):
        out = env.step(env.expert_action())
        if out.done:
            break
    return out


@pytest.mark.parametrize("profile", [False, True])
def test_experts_solve_sheet_and_todo_and_say_why_not_the_others(checkout: Path, profile: bool) -> None:
    for name in ("sheet", "todo"):
        env = make(name, checkout, profile)
        for task in range(env.task_count):
            out = _play(env, task)
            assert out.done and out.success and out.score == 1.0, (name, task, out.observation)
    for name, why in (("weather", "open-meteo"), ("movie", "TMDB"), ("academia", "DBLP")):
        env = make(name, checkout, profile)
        env.reset(0, 0, {})
        with pytest.raises(EnvError, match=why):
            env.expert_action()


async def test_an_original_todo_task_over_a_real_server(checkout: Path, start_server: StartServer) -> None:
    srv = await start_server(envs=["todo"], env_settings={"todo": settings(checkout, True)})
    async with EnvClient(f"127.0.0.1:{srv.port}") as client:
        info = await client.env_info("todo")
        assert (info.task_set, info.profile, info.task_count) == ("original", "agentgym", len(TODO))
        assert info.instruction == "Made-up todo instruction."
        async with client.episode("todo", 2) as ep:
            assert ep.initial.observation == original.INITIAL.format(goal=TODO[2]["goal"])
            rewards = []
            while not ep.over:
                result = await ep.step(await ep.expert())
                rewards.append(result.reward)
                assert result.observation.startswith("Observation: ") and result.observation.endswith(
                    STEP_END
                )
            assert result.done and result.success and result.score == 1.0 and sum(rewards) == 1.0
