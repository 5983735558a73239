"""The `conformance` env: a fixture with known behaviour that `agentgym conformance` drives.

Every implementation of the contract should host it (when asked to) so the suite can check the
error paths that need a misbehaving env. It is hidden: hosted only when named (`--envs ...,conformance`).

Behaviour (other languages implement the same):
- 8 tasks, max_rounds 6, at most 4 live episodes per server (so capacity refusal is testable).
- reset: observation "conformance task T seed S"; available actions ping, finish, crash, hang.
- step "finish": observation "finished", reward 1, done, success.
- step "crash": the env raises (the server must answer INTERNAL and end the episode).
- step "hang": sleeps `hang_s` seconds (create option, default 60), past the step timeout.
- step "malformed" (not listed among the available actions): the env returns an outcome whose
  available actions are a number, not a list. The server's own code fails on it (the stand-in for
  a bug of the server): it must answer INTERNAL in band and end the stream, as for an env crash.
- step "stuck": echoed like any other action, but until the next step the expert cannot act (it
  raises): the server must answer FAILED_PRECONDITION and keep the episode.
- any other action: observation "echo ACTION step N", reward 0.
- expert: "finish".
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from agentgym.envs.base import Env, EnvError, Outcome
from agentgym.envs.registry import register

ACTIONS = ["ping", "finish", "crash", "hang"]


@register
class Conformance(Env):
    name = "conformance"
    description = "Protocol fixture for `agentgym conformance` (can crash and hang on request)."
    instruction = "Conformance fixture. Reply with Thought: ... then Action: ping | finish | crash | hang"
    action_format = "ping | finish | crash | hang | any text (echoed)"
    max_rounds = 6
    task_count = 8
    splits = {"train": [range(0, 6)], "test": [range(6, 8)]}
    execution = "thread"
    max_episodes = 4
    create_options = {"hang_s": "seconds a 'hang' step sleeps (default 60)"}
    hidden = True

    def reset(self, task_id: int, seed: int, options: Mapping[str, str]) -> Outcome:
        try:
            self.hang_s = float(options.get("hang_s", 60))
        except ValueError:
            raise EnvError(f"hang_s must be a number of seconds, got {options['hang_s']!r}") from None
        self.steps = 0
        self.stuck = False
        return Outcome(f"conformance task {task_id} seed {seed}", available_actions=ACTIONS)

    def step(self, action: str) -> Outcome:
        self.steps += 1
        self.stuck = action == "stuck"
        if action == "finish":
            return Outcome("finished", reward=1.0, done=True, success=True)
        if action == "crash":
            raise RuntimeError("crash requested by the client")
        if action == "malformed":
            return Outcome("malformed", available_actions=7)  # type: ignore[arg-type]
        if action == "hang":
            time.sleep(self.hang_s)
            return Outcome("woke up", available_actions=ACTIONS)
        return Outcome(f"echo {action} step {self.steps}", available_actions=ACTIONS)

    def expert_action(self) -> str:
        if self.stuck:
            raise RuntimeError("the expert has no action after 'stuck'")
        return "finish"
