"""Policy-gradient arithmetic for multi-turn RL on agent tokens: returns, advantages, losses.

Pure functions, so each can be checked by hand on tiny inputs (tests/trainer/test_pg.py); the
learner (trainer/rl_learn.py) wires them into its loop.

Rewards and returns. An episode's agent turns are the runs of 1s in its loss mask (the same mask
as behaviour cloning: only tokens the policy generated). With outcome rewards (the default) every
turn's return is the episode's reward R (its score, or 1/0 for success). With per-step rewards,
turn t's return is G_t = sum over t' >= t of gamma^(t'-t) r_t', r being the env's reward for the
step that turn's action took. The episode's score for the baselines is G_0.

Advantages (per turn; every token of a turn gets its turn's):
- GRPO: A = (G_t - mean(G_0 of the group)) / (std(G_0 of the group) + eps), the group being every
  episode of one task in the batch; std is the sample standard deviation (n - 1), as DeepSeekMath
  and verl; `scale=False` leaves out the division (Dr. GRPO).
- RLOO: A = G_t - mean(G_0 of the group's other episodes) (leave one out).
- REINFORCE++: A = G_t, whitened over every agent token of the batch (token-weighted mean and
  sample standard deviation): a global baseline instead of a per-task one, no critic.
A group of one episode has no baseline under GRPO and RLOO: its advantages are 0.

Loss per agent token (PPO's clipped surrogate, importance ratio against the logprobs the rollout
recorded for the token: the behaviour policy):
    ratio = exp(logp - logp_rollout)
    pg    = max(-A * ratio, -A * clip(ratio, 1 - clip_low, 1 + clip_high))
    kl    = exp(ref - logp) - (ref - logp) - 1          (k3, Schulman's unbiased, >= 0 estimator)
    loss  = pg + kl_coef * kl - entropy_coef * entropy
and the batch loss is the mean over every agent token of the mini-batch (token-mean aggregation).
A token counts as clipped when the clipped term is the larger (it then gives no gradient).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Hashable, Sequence
from typing import Any

from agentgym.core.trajectory import turn_spans  # the record's rule, used here per turn

ALGORITHMS = ("grpo", "rloo", "reinforce++")
EPS = 1e-6


def turn_returns(step_rewards: Sequence[float], gamma: float = 1.0) -> list[float]:
    """G_t for each turn: the discounted sum of this and later step rewards."""
    out = [0.0] * len(step_rewards)
    acc = 0.0
    for t in range(len(step_rewards) - 1, -1, -1):
        acc = float(step_rewards[t]) + gamma * acc
        out[t] = acc
    return out


def advantages(
    returns: Sequence[Sequence[float]],
    groups: Sequence[Hashable],
    algorithm: str,
    *,
    tokens: Sequence[Sequence[int]] | None = None,
    scale: bool = True,
    eps: float = EPS,
) -> list[list[float]]:
    """Per-turn advantages of a batch of episodes.

    returns[i][t]: episode i's return from turn t (one entry per agent turn; returns[i][0] is its
    score); groups[i]: its group (the task); tokens[i][t]: agent tokens in turn t, needed by
    REINFORCE++'s token-weighted whitening (default: one token per turn)."""
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {algorithm!r}; choose one of {', '.join(ALGORITHMS)}")
    if len(returns) != len(groups):
        raise ValueError(f"{len(returns)} episodes but {len(groups)} group labels")
    score = [r[0] if r else 0.0 for r in returns]
    if algorithm == "reinforce++":
        counts = tokens if tokens is not None else [[1] * len(r) for r in returns]
        n = sum(c for cs in counts for c in cs)
        if n == 0:
            return [[0.0] * len(r) for r in returns]
        mean = (
            sum(g * c for r, cs in zip(returns, counts, strict=True) for g, c in zip(r, cs, strict=True)) / n
        )
        var = sum(
            c * (g - mean) ** 2
            for r, cs in zip(returns, counts, strict=True)
            for g, c in zip(r, cs, strict=True)
        ) / max(1, n - 1)
        std = math.sqrt(var)
        return [[(g - mean) / (std + eps) for g in r] for r in returns]
    members: dict[Hashable, list[int]] = defaultdict(list)
    for i, g in enumerate(groups):
        members[g].append(i)
    out: list[list[float]] = [[0.0] * len(r) for r in returns]
    for idx in members.values():
        n = len(idx)
        if n < 2:
            continue  # no baseline: advantage 0
        total = sum(score[i] for i in idx)
        mean = total / n
        std = math.sqrt(sum((score[i] - mean) ** 2 for i in idx) / (n - 1))
        for i in idx:
            if algorithm == "grpo":
                base, div = mean, (std + eps if scale else 1.0)
            else:  # rloo
                base, div = (total - score[i]) / (n - 1), 1.0
            out[i] = [(g - base) / div for g in returns[i]]
    return out


def token_values(mask: Sequence[int], per_turn: Sequence[float]) -> list[float]:
    """Spread per-turn values over the tokens: each agent token gets its turn's value, the rest 0.
    Turns beyond `per_turn` (none, normally) get its last value."""
    out = [0.0] * len(mask)
    for t, (a, b) in enumerate(turn_spans(mask)):
        v = per_turn[min(t, len(per_turn) - 1)] if per_turn else 0.0
        for i in range(a, b):
            out[i] = v
    return out


def token_logprobs(logits: Any, targets: Any, temperature: float = 1.0) -> Any:
    """log p(target) under softmax(logits / temperature), per position. logits [B, T, V], targets
    [B, T] (the token each position predicts)."""
    import torch

    scaled = logits.float() / temperature if temperature > 0 else logits.float()
    return torch.log_softmax(scaled, dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)


def entropy(logits: Any, temperature: float = 1.0) -> Any:
    """Entropy of softmax(logits / temperature) per position: [B, T, V] -> [B, T]."""
    import torch

    scaled = logits.float() / temperature if temperature > 0 else logits.float()
    logp = torch.log_softmax(scaled, dim=-1)
    return -(logp.exp() * logp).sum(-1)


def clipped_surrogate(
    logp: Any, old_logp: Any, adv: Any, clip_low: float = 0.2, clip_high: float = 0.2
) -> tuple[Any, Any, Any]:
    """PPO's clipped policy-gradient loss per token, whether it was clipped, and the ratio."""
    import torch

    ratio = torch.exp(logp - old_logp)
    unclipped = -adv * ratio
    clipped = -adv * torch.clamp(ratio, 1.0 - clip_low, 1.0 + clip_high)
    return torch.maximum(unclipped, clipped), (clipped > unclipped).float(), ratio


def kl_k3(logp: Any, ref_logp: Any) -> Any:
    """k3 estimate of KL(policy || reference) per token: exp(d) - d - 1 with d = ref - logp."""
    import torch

    d = ref_logp - logp
    return torch.exp(d) - d - 1.0


def masked_sum(values: Any, mask: Any) -> Any:
    return (values * mask).sum()
