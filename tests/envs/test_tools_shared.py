"""Shared parts of the tool envs: the action parser, argument checking, the progress-rate reward."""

from __future__ import annotations

import pytest

from agentgym.envs.tools.action import ActionError, ToolCall, parse_action
from agentgym.envs.tools.progress import ProgressTracker, Subgoal, values_match
from agentgym.envs.tools.toolkit import Param, ToolError, ToolSpec, validate

# --- action syntax ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "name", "args"),
    [
        ("get_user_current_date with Action Input: {}", "get_user_current_date", {}),
        ("Action: get_user_current_date with Action Input: {}", "get_user_current_date", {}),
        (
            'Thought:\nI need the place.\n\nAction:\nget_latitude_longitude with Action Input: {"name": "Paris"}',
            "get_latitude_longitude",
            {"name": "Paris"},
        ),
        ('Action: get_tasks\nAction Input: {"project_id": "12"}', "get_tasks", {"project_id": "12"}),
        ("finish with Action Input: {'answer': 'Yes'}", "finish", {"answer": "Yes"}),
        (
            "update_project with Action Input: {'project_id': '1', 'is_favorite': True}",
            "update_project",
            {"project_id": "1", "is_favorite": True},
        ),
        ('finish with Action Input: ```json\n{"answer": [1, 2]}\n```', "finish", {"answer": [1, 2]}),
        (
            'finish with Action Input: {"answer": "a {brace} and \\"quote\\""} trailing words',
            "finish",
            {"answer": 'a {brace} and "quote"'},
        ),
        (
            "filter_cells with Action Input: {'query': re.compile('^(A|B)$')}",
            "filter_cells",
            {"query": "^(A|B)$"},
        ),
        ("get_all_values with Action Input:", "get_all_values", {}),
        ("`get_all_values` with Action Input: {}", "get_all_values", {}),
    ],
)
def test_parse_action_accepts_the_original_forms(text: str, name: str, args: dict) -> None:
    call = parse_action(text)
    assert (call.name, call.args) == (name, args)


@pytest.mark.parametrize(
    "text",
    [
        "get_user_current_date",  # no Action Input at all
        "I think the answer is 5",
        'finish with Action Input: {"answer": 5',  # unbalanced
        "finish with Action Input: {'answer': __import__('os').system('true')}",  # code, not a literal
        "finish with Action Input: [1, 2]",  # not an object
        "finish with Action Input: answer=5",
    ],
)
def test_parse_action_refuses_malformed_actions(text: str) -> None:
    with pytest.raises(ActionError):
        parse_action(text)


def test_rendered_calls_parse_back() -> None:
    call = ToolCall("update_range", {"start_position": "A1", "values_list": [[1.5, "x"]], "unset": None})
    back = parse_action(call.render())
    assert back == ToolCall("update_range", {"start_position": "A1", "values_list": [[1.5, "x"]]})


# --- argument checking ------------------------------------------------------------------------------
SPEC = ToolSpec(
    "demo",
    "",
    (
        Param("lat", "number", ""),
        Param("n", "integer", ""),
        Param("name", "string", ""),
        Param("flag", "boolean", ""),
        Param("rows", "array", ""),
        Param("mode", "string", "", enum=("asc", "des")),
        Param("extra", "integer", "", required=False, default=7),
    ),
    "",
)


def test_validate_coerces_what_an_http_api_would_accept() -> None:
    out = validate(
        SPEC,
        {
            "lat": "52.5",
            "n": 3.0,
            "name": 934433,
            "flag": "True",
            "rows": "[[1], [2]]",
            "mode": "asc",
            "unknown": 1,
        },
    )
    assert out == {
        "lat": 52.5,
        "n": 3,
        "name": "934433",
        "flag": True,
        "rows": [[1], [2]],
        "mode": "asc",
        "extra": 7,
    }


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"n": 1, "name": "x", "flag": True, "rows": [], "mode": "asc"}, "needs the argument 'lat'"),
        (
            {"lat": "north", "n": 1, "name": "x", "flag": True, "rows": [], "mode": "asc"},
            "'lat' of demo must be a number",
        ),
        ({"lat": True, "n": 1, "name": "x", "flag": True, "rows": [], "mode": "asc"}, "must be a number"),
        ({"lat": 1, "n": 1.5, "name": "x", "flag": True, "rows": [], "mode": "asc"}, "must be an integer"),
        ({"lat": 1, "n": 1, "name": ["x"], "flag": True, "rows": [], "mode": "asc"}, "must be a string"),
        ({"lat": 1, "n": 1, "name": "x", "flag": "maybe", "rows": [], "mode": "asc"}, "must be a boolean"),
        (
            {"lat": 1, "n": 1, "name": "x", "flag": True, "rows": "not a list", "mode": "asc"},
            "must be an array",
        ),
        ({"lat": 1, "n": 1, "name": "x", "flag": True, "rows": [], "mode": "up"}, "must be one of"),
        (
            {"lat": float("nan"), "n": 1, "name": "x", "flag": True, "rows": [], "mode": "asc"},
            "must be a number",
        ),
    ],
)
def test_validate_refuses_bad_arguments_with_an_error_observation(args: dict, message: str) -> None:
    with pytest.raises(ToolError, match=message) as err:
        validate(SPEC, args)
    assert str(err.value).startswith("ERROR | ")


# --- matching -------------------------------------------------------------------------------------
def test_values_match_rules() -> None:
    assert values_match("Yes", " yes ")
    assert values_match(2021, "2021")
    assert not values_match("2021-01-01", 2021)
    assert values_match(18.5, 18.54, decimals=1)
    assert not values_match(18.5, 18.6, decimals=1)
    assert not values_match(18.5, 18.54)
    assert values_match(["b", "a"], ["a", "b"])
    assert not values_match(["a", "a"], ["a", "b"])
    assert values_match([14.7, 28.1], [28.1, 14.7], decimals=1)
    assert values_match({"a": [1, 2], "b": "X"}, {"b": "x", "a": [2, 1]})
    assert not values_match({"a": 1}, {"a": 1, "b": 2})
    assert values_match(None, None) and not values_match(None, "None")
    # A place matches within 50 km, the rest must be equal (the original's weather rule).
    near = {"latitude": 48.85, "longitude": 2.35, "daily": {"time": ["2023-01-01"]}}
    assert values_match(near, {"latitude": 48.9, "longitude": 2.3, "daily": {"time": ["2023-01-01"]}})
    assert not values_match(near, {"latitude": 45.76, "longitude": 4.83, "daily": {"time": ["2023-01-01"]}})
    assert not values_match(near, {"latitude": 48.9, "longitude": 2.3, "daily": {"time": ["2023-01-02"]}})


# --- progress rate and rewards -------------------------------------------------------------------
def _tracker() -> ProgressTracker:
    return ProgressTracker(
        [
            Subgoal("call", "Paris", tool="get_user_current_location"),
            Subgoal("call", {"results": [1]}, tool="get_latitude_longitude"),
            Subgoal("call", "2023-05-10", tool="get_user_current_date"),
            Subgoal("answer", "good"),
        ]
    )


def test_progress_counts_subgoals_and_rewards_sum_to_the_rate() -> None:
    t = _tracker()
    rewards = []
    t.record("get_user_current_location", "Paris")
    rewards.append(t.update()[0])
    t.record("get_user_current_location", "Paris")  # a repeat meets nothing new
    rewards.append(t.update()[0])
    t.record("get_latitude_longitude", {"results": [1]})
    rewards.append(t.update()[0])
    assert rewards == [0.25, 0.0, 0.25]
    assert t.best == pytest.approx(0.5)
    assert sum(rewards) == pytest.approx(t.best)
    assert [g.describe() for g in t.unmet()] == ["get_user_current_date -> '2023-05-10'", "answer 'good'"]


def test_a_result_counts_only_for_its_own_tool() -> None:
    t = _tracker()
    t.record("get_air_quality_level", "good")  # not the final answer
    assert t.update() == (0.0, 0.0)
    t.record("get_user_current_date", "Paris")  # right value, wrong tool
    assert t.update() == (0.0, 0.0)


def test_a_correct_answer_solves_the_task() -> None:
    t = _tracker()
    t.record("get_user_current_location", "Paris")
    assert t.update() == (0.25, 0.25)
    t.record("finish", "Good")
    assert t.update() == (0.75, 1.0)


def test_a_wrong_answer_keeps_partial_progress() -> None:
    t = _tracker()
    t.record("get_user_current_location", "Paris")
    t.update()
    t.record("finish", "poor")
    assert t.update() == (0.0, 0.25)


def test_state_subgoals_and_an_answer_that_is_not_decisive() -> None:
    state = {"deleted": False}
    t = ProgressTracker(
        [Subgoal("state", ("deleted", "1")), Subgoal("answer", "done", decisive=False)],
        state_check=lambda g: state["deleted"],
    )
    t.record("finish", "done")  # saying "done" is not doing it
    assert t.update() == (0.5, 0.5)
    state["deleted"] = True
    assert t.update() == (0.5, 1.0)


def test_progress_never_goes_down() -> None:
    state = {"ok": True}
    t = ProgressTracker([Subgoal("state", "x"), Subgoal("state", "y")], state_check=lambda g: state["ok"])
    assert t.update() == (1.0, 1.0)
    state["ok"] = False  # undone later: the best progress stands, as in the original
    assert t.update() == (0.0, 1.0)


def test_a_task_needs_subgoals() -> None:
    with pytest.raises(ValueError):
        ProgressTracker([])
