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

The original's data and rules. With the setting `data` (the original's task file, original.py),
task id N is the file's task N: its goal and gold come from the file (`original_task`). With the
compatibility profile (`profile=agentgym`) an episode follows AgentGym's tool servers: their
observation texts, the message split and "Action:" parse, the end of an episode on any dispatched
action containing "finish", the progress count with Python equality, and each env's reward
(`original_score`). The score is the number the original reports at each step; each step's reward
is its change, so rewards still sum to the score.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from agentgym.envs.base import Env, EnvError, Outcome
from agentgym.envs.tools import original
from agentgym.envs.tools.action import ActionError, ToolCall, parse_action
from agentgym.envs.tools.original import OriginalData, OriginalTask
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

    # Settings `configure` takes: name -> help.
    settings_help: ClassVar[dict[str, str]] = {
        "data": "the original's task file: AgentGym's agentenv-tool/Toolusage/data/<env>.jsonl "
        "(or that folder), or AgentBoard's data/tool-*/test.jsonl; task id N is its task N",
    }
    # The original's tasks, when `data` is set.
    original_data: ClassVar[OriginalData | None] = None
    # What task ids index without `data`.
    builtin_task_set: ClassVar[str] = "built-in simulated tasks; not the original's"
    # Why the expert cannot solve the original's tasks ("" when it can).
    original_expert_gap: ClassVar[str] = ""
    # The built-in task count and splits, restored when `data` is dropped.
    _builtin: ClassVar[tuple[int, Mapping[str, Sequence[range]]]] = (0, {})

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.tool_specs = collect(cls)
        if cls.intro:
            cls.instruction = instruction(cls.intro, list(cls.tool_specs.values()), cls.notes, cls.example)
        if "task_count" in vars(cls):
            cls._builtin = (cls.task_count, dict(cls.splits))
            cls.task_set = cls.builtin_task_set

    # --- configuration ---------------------------------------------------------------------------
    @classmethod
    def configure(cls, settings: Mapping[str, str]) -> None:
        unknown = sorted(set(settings) - set(cls.settings_help))
        if unknown:
            raise ValueError(f"{cls.name}: unknown settings {unknown}; known: {sorted(cls.settings_help)}")
        data = original.load(settings["data"], cls.name) if settings.get("data") else None
        cls.configure_world(settings, data)  # raises before anything changes
        cls.original_data = data
        if data is None:
            cls.task_count, cls.splits = cls._builtin[0], dict(cls._builtin[1])
            cls.task_set = cls.builtin_task_set
        else:
            cls.task_count, cls.splits = len(data.tasks), {"test": [range(0, len(data.tasks))]}
            cls.task_set = cls.original_task_set(data)

    @classmethod
    def configure_world(cls, settings: Mapping[str, str], data: OriginalData | None) -> None:
        """Load the backend's shared data (and, with `data`, the original's world if the env can)."""

    @classmethod
    def world_is_original(cls) -> bool:
        """Whether, with `data`, the backend starts each task in the original's world (so the
        file's gold holds in it)."""
        return False

    @classmethod
    def original_task_set(cls, data: OriginalData) -> str:
        if not cls.world_is_original():
            return (
                f"the original's {cls.name} tasks (goals and gold answers) on a simulated world that "
                "does not hold their answers; not comparable"
            )
        if not data.agentgym_numbering:
            return f"AgentBoard's {cls.name} tasks in file order; ids not checked against AgentGym's"
        return "original"

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

    def original_task(self, record: OriginalTask) -> ToolTask:
        """The task of one line of the original's data: its goal, and its gold values as answer
        subgoals (for our rules; the profile counts them as the original did). No reference plan:
        the answers are facts of the original's services."""
        return ToolTask(
            goal=record.goal,
            subgoals=[Subgoal("answer", v) for v in record.subgoals],
            plan=[],
            answer=record.answer,
            context=dict(record.init_config or {}),
            template="original",
        )

    def original_clean(self, tool_name: str, result: Any) -> Any:
        """A call's result as the original recorded it for the progress count."""
        return self.clean(tool_name, result)

    def original_progress(self) -> float:
        """The progress rate now, as the original counted it: the share of the file's gold values
        among the recorded results."""
        if self.record is None:
            return self.builtin_answer_share()
        gold = self.record.subgoals
        return original.count_met(gold, self.original_records, places=False) / len(gold)

    def builtin_answer_share(self) -> float:
        """A built-in task under the profile: the share of its answer subgoals met (the original's
        files list only answers as subgoals; our tasks' lookups would make any first call count)."""
        marks = [
            m for g, m in zip(self.tracker.subgoals, self.tracker.met(), strict=True) if g.kind == "answer"
        ]
        return sum(marks) / len(marks) if marks else self.tracker.rate()

    def builtin_state_met(self) -> bool:
        return all(
            m for g, m in zip(self.tracker.subgoals, self.tracker.met(), strict=True) if g.kind == "state"
        )

    def original_score(self, best: float, done: bool) -> float:
        """The reward the original reports after a step, from the best progress so far."""
        return best

    def invalid_action(self, name: str) -> str:
        return f"ERROR | Invalid action: {name}."

    # --- the episode ---------------------------------------------------------------------------
    def reset(self, task_id: int, seed: int, options: Mapping[str, str]) -> Outcome:
        self.close_backend()
        data = type(self).original_data
        self.record: OriginalTask | None = data.tasks[task_id] if data is not None else None
        self.task = self.make_task(task_id) if self.record is None else self.original_task(self.record)
        self.tracker = ProgressTracker(self.task.subgoals, self.state_met)
        self.calls: list[ToolCall] = []  # successful calls, arguments validated
        self.refused: list[ToolCall] = []  # calls the service refused, arguments validated
        # The profile's bookkeeping: results as the original recorded them, best progress, score.
        self.original_records: list[Any] = []
        self.original_best = 0.0
        self.original_reported = 0.0
        self.open_backend(self.task)
        if self.profile:
            text = original.INITIAL.format(goal=self.task.goal)
        else:
            text = (
                f"New task. Goal: {self.task.goal}\n"
                "Use the tools to reach the goal, and call finish when you are done. What is your first action?"
            )
        return Outcome(text, score=0.0, available_actions=list(self.tool_specs))

    def step(self, action: str) -> Outcome:
        if self.profile:
            return self._step_original(action)
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
            result = self._call(spec.name, args)
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

    def _call(self, tool_name: str, args: dict[str, Any]) -> Any:
        """Run a tool with checked arguments; a call the service refuses is remembered (an expert
        replaying a plan written for another service must not repeat it forever)."""
        try:
            return getattr(self, tool_name)(**args)
        except ToolError:
            self.refused.append(ToolCall(tool_name, args))
            raise

    # --- the original's step (profile agentgym) ----------------------------------------------------
    def _step_original(self, message: str) -> Outcome:
        info: dict[str, str] = {}
        split = original.split_message(message)
        if split is None:  # AgentGym's server answers this itself, without the "Observation:" frame
            info["invalid"] = "true"
            return self._original_outcome(original.FORMAT_ERROR, False, info)
        action = f"{split[0]} with Action Input: {split[1]}"
        observation, done = self._dispatch_original(action, info)
        if "Invalid" not in observation:  # the original skipped its update after such a text
            self.original_best = max(self.original_best, self.original_progress())
        return self._original_outcome(f"Observation: {observation}{original.STEP_END}", done, info)

    def _dispatch_original(self, action: str, info: dict[str, str]) -> tuple[str, bool]:
        """(observation, done) of one rebuilt action, as the original's env.step: a parse or
        argument failure is an exception there (never done); a tool name it does not know, or a
        call its service refused, is an answer (done when the action text contains "finish")."""
        try:
            name, params = original.parse_action(action)
        except original.ActionFailed as exc:
            info["invalid"] = "true"
            return str(exc), False
        spec = self.tool_specs.get(self.aliases.get(name, name))
        if spec is None:
            info["invalid"] = "true"
            return self.invalid_action(name), original.ends_episode(action, self.name)
        info["tool"] = spec.name
        if not isinstance(params, dict):
            if spec.params:
                try:  # the original indexed the input by argument name: the same error, word for word
                    params[spec.params[0].name]
                except Exception as exc:
                    info["invalid"] = "true"
                    return f"ERROR | {type(exc).__name__}({exc})", False
            params = {}
        missing = next((p.name for p in spec.params if p.required and p.name not in params), None)
        try:
            if missing is not None:
                raise ToolError(f"ERROR | KeyError({missing!r})")
            args = validate(spec, params, keep_none=True)
        except ToolError as exc:
            info["invalid"] = "true"
            return str(exc), False
        try:
            result = self._call(spec.name, args)
        except ToolError as exc:  # the service's refusal: the original returned it as the result
            self.original_records.append(original.failed_call(spec.name, args))
            return str(exc), original.ends_episode(action, self.name)
        except Exception as exc:
            log.warning("tool raised under the agentgym profile", extra={"env": self.name, "tool": spec.name})
            info["invalid"] = "true"
            return f"ERROR | {type(exc).__name__}({exc})", False
        self.calls.append(ToolCall(spec.name, args))
        self.tracker.record(spec.name, self.clean(spec.name, result))
        self.original_records.append(self.original_clean(spec.name, result))
        return render(result), original.ends_episode(action, self.name)

    def _original_outcome(self, observation: str, done: bool, info: dict[str, str]) -> Outcome:
        score = self.original_score(self.original_best, done)
        reward, self.original_reported = score - self.original_reported, score
        info["progress"] = f"{self.original_best:.4f}"
        return Outcome(
            observation,
            reward=reward,
            done=done,
            success=score >= 1.0,
            score=score,
            available_actions=list(self.tool_specs),
            info=info,
        )

    def close(self) -> None:
        self.close_backend()

    # --- expert ----------------------------------------------------------------------------------
    def expert_action(self) -> str:
        """The next call of the reference plan not yet made (the plan is matched in order against
        the successful calls so far, so the agent's own detours do not derail it)."""
        return self.render_action(self.plan_cursor_call())

    def render_action(self, call: ToolCall) -> str:
        """A call as the agent writes it: under the profile with "Action:" and a Python literal,
        which the original's parser needs."""
        if not self.profile:
            return call.render()
        args = {k: v for k, v in call.args.items() if v is not None}
        return f"Action: {call.name} with Action Input: {args!r}"

    def plan_cursor_call(self) -> ToolCall:
        plan = self.task.plan
        if not plan:
            raise EnvError(f"no expert for the original's {self.name} tasks: {self.original_expert_gap}")
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
        if self.profile:
            return original.VALID_ACTIONS.format(list(self.tool_specs))
        return f"You can use the following actions: {list(self.tool_specs)}"

    @tool(
        "Give the answer and end the task.",
        params=(ANSWER_PARAM,),
        returns="The answer you gave.",
    )
    def finish(self, answer: Any) -> Any:
        # As the original, a list answer is returned sorted: order never matters to the check.
        if isinstance(answer, list):
            # The profile sorts as the original did (a list of numbers and text fails there).
            return sorted(answer) if self.profile else sorted(answer, key=_answer_order)
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
