"""Build a task by solving it: call the env's own tools, keep the calls as the reference plan and
their cleaned results as the gold subgoals, then finish with the answer computed from them.

Because the gold comes from the same backend the agent queries, answers and subgoals are
consistent with what the tools return, by construction.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agentgym.envs.tools.action import ToolCall
from agentgym.envs.tools.progress import Subgoal
from agentgym.envs.tools.toolkit import validate

if TYPE_CHECKING:
    from agentgym.envs.tools.base import ToolEnv, ToolTask


class TaskRejected(Exception):
    """The sampled entities make a bad task (a tie, an empty answer); sample again."""


class Planner:
    def __init__(self, env: ToolEnv) -> None:
        self.env = env
        self.calls: list[ToolCall] = []
        self.subgoals: list[Subgoal] = []

    def __call__(self, tool_name: str, /, **args: Any) -> Any:
        """Call a tool, keep the call in the plan and its cleaned result as a subgoal."""
        result = self.quiet(tool_name, **args)
        self.subgoals.append(Subgoal("call", self.env.clean(tool_name, result), tool=tool_name))
        return result

    def quiet(self, tool_name: str, /, **args: Any) -> Any:
        """Call a tool and keep the call in the plan, without a subgoal."""
        spec = self.env.tool_specs[tool_name]
        checked = validate(spec, args)
        result = getattr(self.env, tool_name)(**checked)
        self.calls.append(ToolCall(tool_name, checked))
        return result

    def task(
        self,
        goal: str,
        answer: Any,
        *,
        template: str,
        context: dict[str, Any] | None = None,
        decimals: int | None = None,
        finish_args: dict[str, Any] | None = None,
    ) -> ToolTask:
        """Close the plan with `finish` and return the task. The answer subgoal is decisive unless
        state subgoals were added (then the state must be right too)."""
        from agentgym.envs.tools.base import ToolTask

        decisive = not any(g.kind == "state" for g in self.subgoals)
        args = {"answer": answer} if finish_args is None else finish_args
        self.calls.append(ToolCall("finish", args))
        if finish_args is None:
            self.subgoals.append(Subgoal("answer", answer, decimals=decimals, decisive=decisive))
        return ToolTask(
            goal=goal,
            subgoals=self.subgoals,
            plan=self.calls,
            answer=answer,
            context=dict(context or {}),
            template=template,
        )
