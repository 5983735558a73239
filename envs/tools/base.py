"""ToolEnv: the episode loop shared by the five tool-use envs (Weather, Movie, Academia, Sheet,
TODOList), after AgentBoard's tool tasks as AgentGym serves them.

An episode is one task: a goal in words, a backend (a weather service, a movie database, a
citation graph, a spreadsheet file, a to-do store) and gold subgoals. Each step the agent calls one
tool (`tool with Action Input: {...}`, see action.py); the env answers with the tool's result as
the observation, or with an error observation for a malformed action, an unknown tool or bad
arguments. Calling `finish` ends the episode. Reward: progress rate over the subgoals (see
progress.py); each step's reward is the gain in the best progress so far, so rewards sum to the
final progress rate, which is also the episode's score. Success: progress 1.

A subclass declares its tools as `@tool` methods and implements `make_task` (the task for an id,
deterministic) and `open_backend` / `close_backend`. Its tasks carry a reference plan, the tool
calls that solve them, which the expert replays.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from agentgym.envs.base import Env, Outcome
from agentgym.envs.tools.action import ActionError, ToolCall, parse_action
from agentgym.envs.tools.progress import ProgressTracker, Subgoal
from agentgym.envs.tools.toolkit import Param, ToolError, ToolSpec, collect, tool, validate

log = logging.getLogger(__name__)

ACTION_FORMAT = 'tool_name with Action Input: {"argument": value, ...}  (a JSON object; {} for none)'

REPLY_FORMAT = """\
Call exactly one tool per turn. Reply in exactly this format:
Thought:
your reasoning, in at most three sentences

Action:
tool_name with Action Input: {"argument": value}

The Action Input is a JSON object with the tool's arguments ({} when it takes none)."""

ANSWER_PARAM = Param(
    "answer",
    "any",
    "The answer to return.",
    type_label="['string', 'number', 'array']",
)


@dataclass
class ToolTask:
    """One task: the goal, its gold subgoals, and a reference plan that solves it."""

    goal: str
    subgoals: list[Subgoal]
    plan: list[ToolCall]
    answer: Any = None
    # Task-specific facts the backend needs (the user's date and city, the sheet's name, ...).
    context: dict[str, Any] = field(default_factory=dict)
    template: str = ""


class ToolEnv(Env):
    """Base of the tool envs: parse, dispatch, score, replay the reference plan as the expert."""

    action_format = ACTION_FORMAT
    tool_specs: ClassVar[dict[str, ToolSpec]] = {}
    # Other names the original also accepted for a tool, e.g. {"neighborCheck": "neighbourCheck"}.
    aliases: ClassVar[dict[str, str]] = {}
    # The tool that ends the episode when called successfully.
    finish_tool: ClassVar[str] = "finish"
    # The instruction's parts: what the agent does, notes after the tool list, a worked example.
    intro: ClassVar[str] = ""
    notes: ClassVar[str] = ""
    example: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.tool_specs = collect(cls)
        if cls.intro:
            cls.instruction = instruction(cls.intro, list(cls.tool_specs.values()), cls.notes, cls.example)

    # --- subclass hooks --------------------------------------------------------------------------
    def make_task(self, task_id: int) -> ToolTask:
        raise NotImplementedError

    def open_backend(self, task: ToolTask) -> None:
        """Create this episode's backend state (files, databases)."""

    def close_backend(self) -> None:
        """Free this episode's backend state."""

    def clean(self, tool_name: str, result: Any) -> Any:
        """A call's result as a subgoal record: the result without fields that vary or that the
        task does not ask about (the original's clean_observation)."""
        return result

    def state_met(self, subgoal: Subgoal) -> bool:
        """Whether the backend is in the state a state subgoal describes."""
        raise NotImplementedError(f"{self.name} has no state subgoals")

    def progress(self) -> tuple[float, float]:
        """(reward, best progress) after the latest step."""
        return self.tracker.update()

    # --- the episode ---------------------------------------------------------------------------
    def reset(self, task_id: int, seed: int, options: Mapping[str, str]) -> Outcome:
        self.close_backend()
        self.task = self.make_task(task_id)
        self.tracker = ProgressTracker(self.task.subgoals, self.state_met)
        self.calls: list[ToolCall] = []  # successful calls, arguments validated
        self.open_backend(self.task)
        text = (
            f"New task. Goal: {self.task.goal}\n"
            "Use the tools to reach the goal, and call finish when you are done. What is your first action?"
        )
        return Outcome(text, score=0.0, available_actions=list(self.tool_specs))

    def step(self, action: str) -> Outcome:
        info: dict[str, str] = {}
        done = False
        try:
            call = parse_action(action)
            spec = self.tool_specs.get(self.aliases.get(call.name, call.name))
            if spec is None:
                raise ToolError(
                    f"ERROR | There is no action named {call.name!r}. "
                    f"Valid actions: {', '.join(self.tool_specs)}."
                )
            info["tool"] = spec.name
            args = validate(spec, call.args)
            result = getattr(self, spec.name)(**args)
        except ActionError as exc:
            observation = str(exc)
            info["invalid"] = "true"
        except ToolError as exc:
            observation = str(exc)
            info["invalid"] = "true"
        else:
            self.calls.append(ToolCall(spec.name, args))
            self.tracker.record(spec.name, self.clean(spec.name, result))
            observation = render(result)
            done = spec.name == self.finish_tool
        reward, best = self.progress()
        info["progress"] = f"{best:.4f}"
        return Outcome(
            f"Observation: {observation}" + ("" if done else "\nWhat is your next action?"),
            reward=reward,
            done=done,
            success=best >= 1.0,
            score=best,
            available_actions=list(self.tool_specs),
            info=info,
        )

    def close(self) -> None:
        self.close_backend()

    # --- expert ----------------------------------------------------------------------------------
    def expert_action(self) -> str:
        """The next call of the reference plan not yet made (the plan is matched in order against
        the successful calls so far, so the agent's own detours do not derail it)."""
        return self.plan_cursor_call().render()

    def plan_cursor_call(self) -> ToolCall:
        plan = self.task.plan
        i = 0
        for c in self.calls:
            if i < len(plan) and same_call(c, plan[i]):
                i += 1
        return plan[min(i, len(plan) - 1)]


def same_call(a: ToolCall, b: ToolCall) -> bool:
    return a.name == b.name and a.args == b.args


def render(result: Any) -> str:
    """A result as the observation shows it: text as is, anything else in Python's notation (the
    original printed its results with str())."""
    return result if isinstance(result, str) else str(result)


def instruction(intro: str, specs: Sequence[ToolSpec], notes: str, example: str) -> str:
    """An env's ReAct instruction: what the agent does, every tool's documentation, the reply
    format, and one worked example."""
    tools = "\n\n".join(s.doc() for s in specs)
    return (
        f"{intro}\n\nThe tools (actions) you can use, with their parameters and results:\n\n{tools}\n\n"
        f"{notes}\n\n{REPLY_FORMAT}\n\nAn example:\n\n{example}"
    )


class AnswerToolEnv(ToolEnv):
    """A tool env whose tasks end with `finish(answer)` (all but Sheet), with the original's
    `check_valid_actions`."""

    @tool(
        "List the actions (tools) available in this environment.",
        returns="- actions (Type: array): the names of the available actions.",
    )
    def check_valid_actions(self) -> str:
        return f"You can use the following actions: {list(self.tool_specs)}"

    @tool(
        "Give the answer and end the task.",
        params=(ANSWER_PARAM,),
        returns="The answer you gave.",
    )
    def finish(self, answer: Any) -> Any:
        # As the original, a list answer is returned sorted: order never matters to the check.
        if isinstance(answer, list):
            return sorted(answer, key=_answer_order)
        return answer


def _answer_order(v: Any) -> tuple[int, float, str]:
    if isinstance(v, int | float) and not isinstance(v, bool):
        return (0, float(v), "")
    return (1, 0.0, str(v))


__all__ = [
    "ACTION_FORMAT",
    "AnswerToolEnv",
    "Param",
    "ToolEnv",
    "ToolError",
    "ToolTask",
    "instruction",
    "render",
    "tool",
]
