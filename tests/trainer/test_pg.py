"""Policy-gradient arithmetic (trainer/pg.py) and the RL learner's pure helpers (trainer/rl_learn.py),
each checked against values worked out by hand on tiny inputs.

Every expectation below is written as the arithmetic that gives it (or the number, with the arithmetic
in a comment); none comes from calling the function under test."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from agentgym.core.trajectory import Trajectory, Turn
from agentgym.trainer import pg
from agentgym.trainer.rl_learn import (
    RLConfig,
    Row,
    allowed_staleness,
    build_rows,
    episode_reward,
    micro_batches,
)

EPS = 1e-6  # pg.EPS, the denominator's guard; written out so the hand values do not read it


def close(got: list[list[float]], expected: list[list[float]], tol: float = 1e-9) -> None:
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        assert g == pytest.approx(e, abs=tol), (got, expected)


def t64(values: list[float]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


# --- returns ---------------------------------------------------------------------------------------
def test_turn_returns_undiscounted() -> None:
    # gamma 1: G_t is the sum of this and later rewards.
    assert pg.turn_returns([0, 0, 1], 1.0) == pytest.approx([1.0, 1.0, 1.0])
    # [1, -0.5, 2]: G_2 = 2, G_1 = -0.5 + 2 = 1.5, G_0 = 1 + 1.5 = 2.5
    assert pg.turn_returns([1, -0.5, 2], 1.0) == pytest.approx([2.5, 1.5, 2.0])
    assert pg.turn_returns([1, -0.5, 2]) == pytest.approx([2.5, 1.5, 2.0])  # gamma 1 is the default


def test_turn_returns_discounted() -> None:
    # gamma 0.5 on [0, 0, 1]: G_2 = 1, G_1 = 0 + 0.5 * 1 = 0.5, G_0 = 0 + 0.5 * 0.5 = 0.25
    assert pg.turn_returns([0, 0, 1], 0.5) == pytest.approx([0.25, 0.5, 1.0])
    # gamma 0.5 on [1, -0.5, 2]: G_2 = 2, G_1 = -0.5 + 0.5 * 2 = 0.5, G_0 = 1 + 0.5 * 0.5 = 1.25
    assert pg.turn_returns([1, -0.5, 2], 0.5) == pytest.approx([1.25, 0.5, 2.0])
    # gamma 0: each turn's own reward
    assert pg.turn_returns([1, -0.5, 2], 0.0) == pytest.approx([1.0, -0.5, 2.0])
    assert pg.turn_returns([], 0.5) == []


# --- advantages: GRPO ------------------------------------------------------------------------------
def test_grpo_one_group() -> None:
    # [1, 0, 0, 1]: mean 0.5; sample variance (4 * 0.25) / 3 = 1/3; std sqrt(1/3) ~ 0.577
    std = math.sqrt(1 / 3)
    got = pg.advantages([[1.0], [0.0], [0.0], [1.0]], ["t"] * 4, "grpo")
    a = 0.5 / (std + EPS)  # ~ 0.866
    close(got, [[a], [-a], [-a], [a]])
    assert got[0][0] == pytest.approx(0.8660, abs=1e-4)


def test_dr_grpo_no_scaling() -> None:
    # scale=False: G - mean only
    got = pg.advantages([[1.0], [0.0], [0.0], [1.0]], ["t"] * 4, "grpo", scale=False)
    close(got, [[0.5], [-0.5], [-0.5], [0.5]])


def test_grpo_two_groups_interleaved() -> None:
    # group a: [1, 0] -> mean 0.5, sample var (0.25 + 0.25) / 1 = 0.5, std sqrt(0.5)
    # group b: [2, 4] -> mean 3,   sample var (1 + 1) / 1 = 2,        std sqrt(2)
    returns = [[1.0], [2.0], [0.0], [4.0]]
    groups = [("maze", 1, 1), ("maze", 2, 2), ("maze", 1, 1), ("maze", 2, 2)]  # tuples, as the learner
    sa, sb = math.sqrt(0.5), math.sqrt(2.0)
    got = pg.advantages(returns, groups, "grpo")
    close(got, [[0.5 / (sa + EPS)], [-1 / (sb + EPS)], [-0.5 / (sa + EPS)], [1 / (sb + EPS)]])
    close(pg.advantages(returns, groups, "grpo", scale=False), [[0.5], [-1.0], [-0.5], [1.0]])


def test_grpo_group_of_one_and_equal_group() -> None:
    # A lone episode has no baseline: 0, even next to a real group.
    close(pg.advantages([[1.0]], ["x"], "grpo"), [[0.0]])
    got = pg.advantages([[1.0], [1.0], [0.0]], ["x", "y", "y"], "grpo", scale=False)
    close(got, [[0.0], [0.5], [-0.5]])  # y: mean 0.5
    # All equal: G - mean = 0 and std 0; 0 / (0 + eps) = 0, not nan.
    got = pg.advantages([[1.0], [1.0], [1.0]], ["z"] * 3, "grpo")
    close(got, [[0.0], [0.0], [0.0]])
    assert all(math.isfinite(v) for r in got for v in r)


def test_grpo_multi_turn_baseline_on_the_score() -> None:
    # Per-step rewards with gamma 0.5: ep1 [0, 1] -> G = [0 + 0.5 * 1, 1] = [0.5, 1];
    # ep2 [1, 0] -> G = [1 + 0.5 * 0, 0] = [1, 0]. Scores (G_0) 0.5 and 1: mean 0.75,
    # sample var (0.25^2 + 0.25^2) / 1 = 0.125. Every turn's G_t minus the score baseline.
    s = math.sqrt(0.125) + EPS
    got = pg.advantages([[0.5, 1.0], [1.0, 0.0]], ["t", "t"], "grpo")
    close(got, [[(0.5 - 0.75) / s, (1 - 0.75) / s], [(1 - 0.75) / s, (0 - 0.75) / s]])
    assert got[1][1] == pytest.approx(-2.1213, abs=1e-4)  # -0.75 / 0.35355


# --- advantages: RLOO ------------------------------------------------------------------------------
def test_rloo() -> None:
    # [1, 0, 0, 1]: each minus the mean of the other three.
    # 1 - (0 + 0 + 1) / 3 = 2/3; 0 - (1 + 0 + 1) / 3 = -2/3
    got = pg.advantages([[1.0], [0.0], [0.0], [1.0]], ["t"] * 4, "rloo")
    close(got, [[2 / 3], [-2 / 3], [-2 / 3], [2 / 3]])
    # [3, 0, 6]: 3 - (0 + 6) / 2 = 0; 0 - (3 + 6) / 2 = -4.5; 6 - (3 + 0) / 2 = 4.5
    got = pg.advantages([[3.0], [0.0], [6.0]], ["u"] * 3, "rloo")
    close(got, [[0.0], [-4.5], [4.5]])
    # a group of one: 0
    close(pg.advantages([[5.0]], ["v"], "rloo"), [[0.0]])
    # multi-turn: each turn's G_t minus the other episodes' mean score;
    # ep0 baseline (0 + 2) / 2 = 1, ep1 baseline (1 + 2) / 2 = 1.5, ep2 baseline (1 + 0) / 2 = 0.5
    got = pg.advantages([[1.0, 3.0], [0.0], [2.0, 0.5]], ["w"] * 3, "rloo")
    close(got, [[1 - 1, 3 - 1], [0 - 1.5], [2 - 0.5, 0.5 - 0.5]])


# --- advantages: REINFORCE++ -----------------------------------------------------------------------
def test_reinforce_pp_token_weighted() -> None:
    # returns [[1], [0]] with 3 and 1 tokens: token values 1, 1, 1, 0.
    # mean 3/4 = 0.75; sample var (3 * 0.25^2 + 0.75^2) / (4 - 1) = (0.1875 + 0.5625) / 3 = 0.25; std 0.5
    got = pg.advantages([[1.0], [0.0]], ["a", "b"], "reinforce++", tokens=[[3], [1]])
    close(got, [[(1 - 0.75) / (0.5 + EPS)], [(0 - 0.75) / (0.5 + EPS)]])
    assert got[0][0] == pytest.approx(0.5, abs=1e-5) and got[1][0] == pytest.approx(-1.5, abs=1e-5)
    # The groups play no part: a global baseline.
    close(pg.advantages([[1.0], [0.0]], ["a", "a"], "reinforce++", tokens=[[3], [1]]), got)


def test_reinforce_pp_default_one_token_per_turn() -> None:
    # values 1, 0: mean 0.5, sample var (0.25 + 0.25) / 1 = 0.5
    s = math.sqrt(0.5) + EPS
    got = pg.advantages([[1.0], [0.0]], ["a", "b"], "reinforce++")
    close(got, [[0.5 / s], [-0.5 / s]])


def test_reinforce_pp_multi_turn() -> None:
    # Per-step returns [[2, 1], [0]], turns of 1, 2 and 1 tokens: token values 2, 1, 1, 0.
    # mean (2 + 1 + 1 + 0) / 4 = 1; sample var (1 + 0 + 0 + 1) / 3 = 2/3
    s = math.sqrt(2 / 3) + EPS
    got = pg.advantages([[2.0, 1.0], [0.0]], ["a", "b"], "reinforce++", tokens=[[1, 2], [1]])
    close(got, [[1 / s, 0.0], [-1 / s]])
    # no tokens at all: zeros
    close(pg.advantages([[1.0], [0.0]], ["a", "b"], "reinforce++", tokens=[[0], [0]]), [[0.0], [0.0]])


def test_advantages_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match=r"'ppo'.*grpo, rloo, reinforce\+\+"):
        pg.advantages([[1.0]], ["a"], "ppo")
    with pytest.raises(ValueError, match="2 episodes but 1 group"):
        pg.advantages([[1.0], [0.0]], ["a"], "grpo")


# --- turns and tokens ------------------------------------------------------------------------------
MASK = [0, 0, 1, 1, 0, 1, 0, 0, 1]


def test_turn_spans() -> None:
    assert pg.turn_spans(MASK) == [(2, 4), (5, 6), (8, 9)]
    assert pg.turn_spans([1, 1, 0]) == [(0, 2)]
    assert pg.turn_spans([0, 0]) == []
    assert pg.turn_spans([]) == []


def test_token_values() -> None:
    assert pg.token_values(MASK, [0.5, -1.0, 2.0]) == [0, 0, 0.5, 0.5, 0, -1.0, 0, 0, 2.0]
    # fewer values than turns: later turns get the last one
    assert pg.token_values(MASK, [0.5]) == [0, 0, 0.5, 0.5, 0, 0.5, 0, 0, 0.5]
    assert pg.token_values(MASK, []) == [0.0] * 9


# --- the clipped surrogate -------------------------------------------------------------------------
def surrogate(ratios: list[float], adv: list[float], **clip: float):
    """clipped_surrogate on float64 tensors with logp - old = log(ratio); also the gradient of the
    summed loss with respect to logp."""
    old = t64([-1.0] * len(ratios))
    logp = (old + t64([math.log(r) for r in ratios])).requires_grad_(True)
    loss, clipped, ratio = pg.clipped_surrogate(logp, old, t64(adv), **clip)
    loss.sum().backward()
    assert logp.grad is not None
    return loss.detach().tolist(), clipped.tolist(), ratio.detach().tolist(), logp.grad.tolist()


def test_surrogate_cases() -> None:
    # eps 0.2 (clip to [0.8, 1.2]); loss = max(-A r, -A clip(r)); d(-A r)/d logp = -A r (r = exp(logp - old))
    loss, clipped, ratio, grad = surrogate([1.1, 1.5, 0.5, 0.5, 1.5, 1.0], [2.0, 1.0, -1.0, 1.0, -1.0, 0.0])
    assert ratio == pytest.approx([1.1, 1.5, 0.5, 0.5, 1.5, 1.0])
    expected = [
        -2.0 * 1.1,  # inside the range: -A r = -2.2
        -1.0 * 1.2,  # r 1.5 > 1.2, A > 0: max(-1.5, -1.2) = -1.2, the clipped term
        1.0 * 0.8,  # r 0.5 < 0.8, A < 0: max(0.5, 0.8) = 0.8, clipped
        -1.0 * 0.5,  # r 0.5 < 0.8, A > 0: max(-0.5, -0.8) = -0.5, the unclipped term is larger
        1.0 * 1.5,  # r 1.5 > 1.2, A < 0: max(1.5, 1.2) = 1.5, unclipped
        0.0,  # A = 0
    ]
    assert loss == pytest.approx(expected, abs=1e-12)
    assert clipped == [0.0, 1.0, 1.0, 0.0, 0.0, 0.0]
    # clipped tokens give no gradient; the others -A r
    assert grad == pytest.approx([-2.0 * 1.1, 0.0, 0.0, -1.0 * 0.5, 1.0 * 1.5, 0.0], abs=1e-12)


def test_surrogate_asymmetric_clip() -> None:
    # clip_low 0.2, clip_high 0.28: the range is [0.8, 1.28]
    loss, clipped, _, grad = surrogate(
        [1.25, 1.3, 0.75, 0.85], [1.0, 1.0, -1.0, -1.0], clip_low=0.2, clip_high=0.28
    )
    expected = [
        -1.25,  # 1.25 < 1.28: inside (it would be clipped at 1.2 with a symmetric 0.2)
        -1.28,  # 1.3 > 1.28, A > 0: max(-1.3, -1.28)
        0.8,  # 0.75 < 0.8, A < 0: max(0.75, 0.8)
        0.85,  # inside
    ]
    assert loss == pytest.approx(expected, abs=1e-12)
    assert clipped == [0.0, 1.0, 1.0, 0.0]
    assert grad == pytest.approx([-1.25, 0.0, 0.0, 0.85], abs=1e-12)


def test_masked_out_token_contributes_nothing() -> None:
    # Token 1 is off the mask with a huge ratio exp(40) ~ 2.4e17 and A < 0 (so -A r is huge and kept).
    old = t64([-1.0, -1.0])
    logp = (old + t64([math.log(1.1), 40.0])).requires_grad_(True)
    loss, _, ratio = pg.clipped_surrogate(logp, old, t64([2.0, -1.0]))
    assert float(ratio[1].detach()) == pytest.approx(math.exp(40))
    mask = t64([1.0, 0.0])
    total = pg.masked_sum(loss, mask)
    assert float(total.detach()) == pytest.approx(-2.0 * 1.1)  # token 0 alone
    total.backward()
    assert logp.grad is not None
    assert logp.grad.tolist() == pytest.approx([-2.2, 0.0])
    # masked_sum is the plain sum of values times mask
    assert float(pg.masked_sum(t64([1.0, 2.0, 3.0]), t64([1.0, 0.0, 0.5]))) == pytest.approx(1 + 1.5)


# --- KL, entropy, logprobs -------------------------------------------------------------------------
def test_kl_k3() -> None:
    assert pg.kl_k3(t64([-0.3, -2.0]), t64([-0.3, -2.0])).tolist() == [0.0, 0.0]
    # d = ref - logp = 0.5: e^0.5 - 0.5 - 1 = 1.6487213 - 1.5 = 0.1487213
    assert float(pg.kl_k3(t64([-1.5]), t64([-1.0]))[0]) == pytest.approx(math.exp(0.5) - 0.5 - 1)
    assert float(pg.kl_k3(t64([-1.5]), t64([-1.0]))[0]) == pytest.approx(0.1487213, abs=1e-7)
    # d = -0.5: e^-0.5 + 0.5 - 1 = 0.1065307
    assert float(pg.kl_k3(t64([-1.0]), t64([-1.5]))[0]) == pytest.approx(0.1065307, abs=1e-7)
    g = torch.Generator().manual_seed(0)
    logp = -torch.rand(10_000, generator=g, dtype=torch.float64) * 5
    ref = -torch.rand(10_000, generator=g, dtype=torch.float64) * 5
    assert float(pg.kl_k3(logp, ref).min()) >= 0.0


def test_entropy() -> None:
    # uniform over V: log V, whatever the temperature
    for v in (2, 5, 32):
        h = pg.entropy(torch.zeros(1, 2, v))
        assert h.shape == (1, 2)
        assert h[0].tolist() == pytest.approx([math.log(v)] * 2, abs=1e-6)
        assert float(pg.entropy(torch.full((1, 1, v), 3.0), temperature=0.7)[0, 0]) == pytest.approx(
            math.log(v), abs=1e-6
        )
    # nearly one-hot: ~0
    assert float(pg.entropy(torch.tensor([[[0.0, -100.0, -100.0]]]))[0, 0]) == pytest.approx(0.0, abs=1e-6)
    # logits [0, ln 3]: p = [1/4, 3/4]; H = -(1/4 ln 1/4 + 3/4 ln 3/4) ~ 0.5623
    h = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    assert float(pg.entropy(torch.tensor([[[0.0, math.log(3)]]]))[0, 0]) == pytest.approx(h, abs=1e-6)
    # temperature 2 on [0, 2 ln 3] is softmax([0, ln 3]): the same p, the same H
    assert float(pg.entropy(torch.tensor([[[0.0, 2 * math.log(3)]]]), 2.0)[0, 0]) == pytest.approx(
        h, abs=1e-6
    )
    # a temperature of 0 (greedy) leaves the logits as they are
    assert float(pg.entropy(torch.tensor([[[0.0, math.log(3)]]]), 0.0)[0, 0]) == pytest.approx(h, abs=1e-6)


def test_token_logprobs() -> None:
    # B=1, T=2, V=3. Position 0: logits [ln 1, ln 2, ln 5] -> p = [1/8, 2/8, 5/8], target 2;
    # position 1: uniform, target 0.
    logits = torch.tensor([[[0.0, math.log(2), math.log(5)], [0.0, 0.0, 0.0]]])
    targets = torch.tensor([[2, 0]])
    got = pg.token_logprobs(logits, targets)
    assert got.shape == (1, 2)
    assert got[0].tolist() == pytest.approx([math.log(5 / 8), math.log(1 / 3)], abs=1e-6)
    # T = 2: logits / 2 = [0, ln sqrt 2, ln sqrt 5] -> p(2) = sqrt 5 / (1 + sqrt 2 + sqrt 5)
    got = pg.token_logprobs(logits, targets, temperature=2.0)
    p2 = math.sqrt(5) / (1 + math.sqrt(2) + math.sqrt(5))
    assert got[0].tolist() == pytest.approx([math.log(p2), math.log(1 / 3)], abs=1e-6)
    # the same as log_softmax(logits / T) gathered at the targets
    ref = torch.log_softmax(logits / 2.0, dim=-1)
    assert got[0].tolist() == pytest.approx([float(ref[0, 0, 2]), float(ref[0, 1, 0])], abs=1e-6)
    # bf16 logits are computed in float32
    assert pg.token_logprobs(logits.bfloat16(), targets).dtype == torch.float32


# --- the learner's pure helpers --------------------------------------------------------------------
def traj(**fields) -> Trajectory:
    fields.setdefault("item_id", "maze_3")
    fields.setdefault("conversations", [Turn("human", "x"), Turn("gpt", "y")])
    return Trajectory(**fields)


def test_allowed_staleness() -> None:
    allowed = {"job.step-2": 0, "job.step-1": 1, "job.step-0": 2}
    assert allowed_staleness(traj(weight_versions=["job.step-2"]), allowed) == 0
    # an episode that spanned an update: its oldest version's age
    assert allowed_staleness(traj(weight_versions=["job.step-1", "job.step-2"]), allowed) == 1
    assert allowed_staleness(traj(weight_versions=["job.step-0", "job.step-1"]), allowed) == 2
    # a version not allowed: None, even alongside allowed ones
    assert allowed_staleness(traj(weight_versions=["other.step-5"]), allowed) is None
    assert allowed_staleness(traj(weight_versions=["job.step-2", "other.step-5"]), allowed) is None
    # no versions recorded: taken as current
    assert allowed_staleness(traj(), allowed) == 0
    assert allowed_staleness(traj(), {}) == 0


def test_episode_reward() -> None:
    score, success = RLConfig(out="/tmp/x"), RLConfig(out="/tmp/x", reward="success")
    assert episode_reward(traj(reward=0.5, success=False), score) == 0.5
    assert episode_reward(traj(reward=None, success=True), score) == 0.0
    assert episode_reward(traj(reward=70.0, success=True), score) == 70.0
    assert episode_reward(traj(reward=0.5, success=True), success) == 1.0
    assert episode_reward(traj(reward=1.0, success=False), success) == 0.0
    assert episode_reward(traj(reward=1.0, success=None), success) == 0.0


def row(key: str, n: int) -> Row:
    return Row(key, list(range(n)), [1] * n, None, [0.0] * n)


def test_micro_batches() -> None:
    rows = [row(f"r{n}", n) for n in (5, 3, 8, 2, 7, 1)]
    got = micro_batches(rows, 10)
    # Sorted by length 1, 2, 3, 5, 7, 8: [1, 2, 3] pads to 3 * 3 = 9 <= 10, adding 5 would make
    # 5 * 4 = 20; [5, 7] would be 7 * 2 = 14; [7, 8] 16.
    assert [[len(r.input_ids) for r in b] for b in got] == [[1, 2, 3], [5], [7], [8]]
    for b in got:
        assert max(len(r.input_ids) for r in b) * len(b) <= 10
    assert sorted(r.key for b in got for r in b) == sorted(r.key for r in rows)
    # a big budget: one batch; a row longer than the budget: a batch of its own
    assert [len(b) for b in micro_batches(rows, 1000)] == [6]
    got = micro_batches([row("a", 2), row("b", 12), row("c", 3)], 10)
    assert [[r.key for r in b] for b in got] == [["a", "c"], ["b"]]
    assert micro_batches([], 10) == []


def test_build_rows_with_recorded_tokens() -> None:
    """Four samples of one task (rewards 1, 0, 0, 1) under Dr. GRPO, one lone task, one without agent
    tokens: the token fields are used as recorded (the fake chat's fingerprint matches)."""
    chat = SimpleNamespace(fingerprint="fp")
    mask = [0, 0, 1, 1, 0, 1]
    logprobs = [None, None, -0.1, -0.2, None, -0.3]

    def t(sample: int, reward: float, **kw) -> Trajectory:
        kw.setdefault("loss_mask", mask)
        return traj(item_id="maze_3", task_id=3, seed=3, sample=sample, reward=reward,
                    input_ids=[5, 6, 7, 8, 9, 10], logprobs=logprobs, tokenizer="fp", **kw)  # fmt: skip

    trajs = [t(0, 1.0), t(1, 0.0), t(2, 0.0), t(3, 1.0)]
    lone = traj(item_id="maze_4", task_id=4, seed=4, reward=1.0, input_ids=[1, 2], loss_mask=[0, 1],
                tokenizer="fp")  # fmt: skip
    silent = t(4, 1.0, loss_mask=[0] * 6)
    cfg = RLConfig(out="/tmp/x", scale=False)
    rows, counts = build_rows([*trajs, lone, silent], chat, cfg)  # type: ignore[arg-type]
    assert counts == {"no_rollout_logprobs": 1, "no_agent_tokens": 1, "zero_advantage": 1}
    assert [r.key for r in rows] == ["maze_3", "maze_3#1", "maze_3#2", "maze_3#3"]
    # mean 0.5: +-0.5 on every agent token, 0 elsewhere
    assert rows[0].adv == [0, 0, 0.5, 0.5, 0, 0.5]
    assert rows[1].adv == [0, 0, -0.5, -0.5, 0, -0.5]
    assert rows[0].old_logp == [0.0, 0.0, -0.1, -0.2, 0.0, -0.3]
    assert rows[0].mask == mask and rows[0].input_ids == [5, 6, 7, 8, 9, 10]


def test_collate_weights_tokens_or_episodes() -> None:
    from agentgym.trainer.rl_learn import collate

    rows = [
        Row("a", [5, 6, 7, 8], [0, 1, 1, 1], None, [0, 1, 1, 1]),
        Row("b", [5, 6], [0, 1], [0.0, -0.5], [0, -1]),
    ]
    tok = collate(rows, 0, torch)
    seq = collate(rows, 0, torch, per_sequence=True)
    # token-mean: every agent token weighs 1 (the mini-batch divides by its 4 agent tokens)
    assert tok["weight"].tolist() == [[0, 1, 1, 1], [0, 1, 0, 0]]
    # seq-mean-token-mean: each episode's tokens share 1 (the mini-batch divides by its 2 episodes)
    assert seq["weight"][0].tolist() == pytest.approx([0, 1 / 3, 1 / 3, 1 / 3])
    assert seq["weight"][1].tolist() == [0, 1, 0, 0]
    assert tok["has_old"].flatten().tolist() == [False, True] and tok["old"][1].tolist() == [0.0, -0.5, 0, 0]
    assert tok["attention_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 0, 0]]
