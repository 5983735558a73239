"""The ReAct loop: one episode between a policy and an env, recorded as an AgentTraj trajectory.

The conversation starts as in AgentGym: the env's instruction (human), the agent's acknowledgement
(gpt, not trained on), the first observation (human). Then each round the policy replies with
"Thought: ... Action: ...", the action after the *last* "Action:" goes to the env, and the env's
observation becomes the next human turn, until the episode is done, truncated, out of rounds, or out
of context. A reply with no "Action:" is sent as it is, so the env answers with its own invalid-action
observation, as the original envs do.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

from agentgym.client.envclient import EnvClient, Episode
from agentgym.client.policies.base import Policy
from agentgym.client.policies.chat import Conversation
from agentgym.client.types import StepResult
from agentgym.core import metrics
from agentgym.core.trajectory import Trajectory, Turn, make_item_id, make_record_id

_ACTION = re.compile(r"Action\s*:", re.IGNORECASE)


def parse_action(reply: str, max_bytes: int | None = None) -> str:
    """The action in an agent reply: the text after the last "Action:" (the whole reply if none)."""
    matches = list(_ACTION.finditer(reply))
    action = reply[matches[-1].end() :] if matches else reply
    action = action.strip()
    if not action:
        action = reply.strip() or "(no action)"
    if max_bytes is not None and len(action.encode()) > max_bytes:
        action = action.encode()[:max_bytes].decode(errors="ignore")
    return action


@dataclass
class EpisodeSpec:
    env: str
    task_id: int
    seed: int | None = None
    sample: int = 0  # several samples of one task (exploration) have distinct record ids

    @property
    def item_id(self) -> str:
        return make_item_id(self.env, self.task_id)

    @property
    def record_id(self) -> str:
        return make_record_id(self.item_id, self.sample)


@dataclass
class _Played:
    conv: Conversation
    last: StepResult
    rounds: int = 0
    step_rewards: list[float] = field(default_factory=list)  # StepResult.reward of each step
    finish: str = "done"  # done | truncated | context
    policy_s: float = 0.0
    env_s: float = 0.0


async def run_episode(
    client: EnvClient,
    policy: Policy,
    spec: EpisodeSpec,
    *,
    max_rounds: int | None = None,
    max_context_tokens: int | None = None,
    max_action_bytes: int | None = None,
) -> Trajectory:
    """Play one episode and return its trajectory."""
    started = time.time()
    t = time.perf_counter()
    async with client.episode(spec.env, spec.task_id, seed=spec.seed, max_steps=max_rounds or 0) as ep:
        ep.sample = spec.sample  # policies derive each turn's sampling seed from (env, task, seed, sample)
        create_s = time.perf_counter() - t
        try:
            played = await _play(ep, policy, max_context_tokens, max_action_bytes)
        finally:
            policy.finish(ep)
    played.env_s += create_s
    return _record(spec, ep, played, policy, started)


async def _play(
    ep: Episode, policy: Policy, max_context_tokens: int | None, max_action_bytes: int | None
) -> _Played:
    conv = Conversation.start(ep.instruction, ep.initial.observation, policy.chat, ep.acknowledgement)
    p = _Played(conv, ep.initial)
    while True:
        if (
            max_context_tokens is not None
            and policy.chat is not None
            and p.conv.prompt_tokens >= max_context_tokens
        ):
            p.finish = "context"
            return p
        t = time.perf_counter()
        turn = await policy.act(p.conv, ep)
        p.policy_s += (dt := time.perf_counter() - t)
        metrics.child(metrics.ROLLOUT_POLICY_SECONDS, ep.env).observe(dt)
        p.conv.add_agent(turn)
        t = time.perf_counter()
        p.last = await ep.step(parse_action(turn.text, max_action_bytes))
        p.env_s += (dt := time.perf_counter() - t)
        metrics.child(metrics.ROLLOUT_STEP_SECONDS, ep.env).observe(dt)
        p.rounds += 1
        p.step_rewards.append(float(p.last.reward))
        p.conv.add_env(p.last.observation)
        if p.last.over:
            p.finish = "done" if p.last.done else "truncated"
            return p


def _record(spec: EpisodeSpec, ep: Episode, p: _Played, policy: Policy, started: float) -> Trajectory:
    tokens = p.conv.chat is not None and bool(p.conv.input_ids)
    return Trajectory(
        item_id=spec.item_id,
        conversations=[Turn(m["from"], m["value"], m["loss"]) for m in p.conv.messages],
        reward=float(p.last.score),
        success=bool(p.last.success),
        env=spec.env,
        task_id=spec.task_id,
        seed=ep.seed,
        sample=spec.sample,
        rounds=p.rounds,
        max_steps=ep.max_steps,
        step_rewards=list(p.step_rewards),
        finish=p.finish,
        policy=policy.name,
        tokenizer=p.conv.chat.fingerprint if tokens and p.conv.chat is not None else None,
        input_ids=p.conv.input_ids if tokens else None,
        loss_mask=p.conv.loss_mask if tokens else None,
        logprobs=p.conv.logprobs if tokens else None,
        weight_versions=list(dict.fromkeys(p.conv.weight_versions)),
        timing={
            "start": started,
            "duration_s": round(time.time() - started, 4),
            "policy_s": round(p.policy_s, 4),
            "env_s": round(p.env_s, 4),
        },
    )
