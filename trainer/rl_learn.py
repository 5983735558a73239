"""The RL learner: a long-lived child process of the trainer that turns each step's rollouts into
one policy update and a new checkpoint.

    learner = LearnerProcess(RLConfig(out="runs/job/learner", model="runs/bc/final", ...))
    await learner.start()                      # loads the model once; saves policy/step-0
    result = await learner.update(0, sources, allowed={"job.step-0": 0})   # -> policy/step-1
    await learner.stop()

Why a process that stays: an RL step is small (one batch, one or a few optimizer steps), so
loading the model, its reference copy and the optimizer anew every step would cost more than the
update itself. Why a process at all: as for BC (trainer/learn.py), the trainer keeps serving
while it trains, torchrun ranks need processes, and a job cancelled kills it outright.

The protocol is files in `out`, so that every rank reads the same request and a restarted
trainer finds what was done:
    requests/step-K.json   written (atomically) by the trainer: the batch of step K (store
                           queries) and which weight versions may be in it
    results/step-K.json    written by rank 0 after `policy/step-(K+1)` is saved: the metrics
    policy/step-K/         Hugging Face model directories (what the policy servers load), the
                           newest with trainer_state.pt (optimizer, RNG) for resuming
A learner that starts finds its newest `policy/step-K` and continues from there (a trainer killed
mid-step re-sends the request; a step whose result exists is not done again).

The update, top to bottom (`Learner.update`): read the step's trajectories from the store; keep
those whose weight versions are allowed (staleness); per-turn returns and group advantages
(trainer/pg.py); token rows with the rollout's own logprobs as the behaviour policy; then for
each PPO epoch and mini-batch: forward, clipped surrogate + k3 KL to the frozen reference -
entropy bonus, averaged over every agent token of the mini-batch; backward, clip, step.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from agentgym.core.chat import ChatTokens, eos_token_ids
from agentgym.core.trajectory import ReadReport, Trajectory
from agentgym.trainer import dist as distributed
from agentgym.trainer import pg
from agentgym.trainer.bc import load_model, mfu, peak_tflops, save_checkpoint, wrap
from agentgym.trainer.data import conversation_tokens, load_trajectories
from agentgym.trainer.learn import die_with_parent

log = logging.getLogger(__name__)

LOG = "learner.log"
CONFIG = "learner.json"
REWARDS = ("score", "success")
STALE = ("correct", "drop")


class LearnerError(Exception):
    """The learner failed or refused a request; the message says why (with its log's tail)."""


@dataclass
class RLConfig:
    out: str  # the learner's folder (policy/, requests/, results/, learner.log)
    model: str | None = None  # the policy to start from: a checkpoint directory or hub id
    init: str | None = None  # or "tiny" | "mini" | "small": built from a config (tests)
    algorithm: str = "grpo"  # grpo | rloo | reinforce++
    reward: str = "score"  # the episode's outcome reward: the env's score, or success as 1/0
    step_rewards: bool = False  # returns from the env's per-step rewards instead of the outcome
    gamma: float = 1.0  # discount of per-step rewards
    scale: bool = True  # GRPO: divide by the group's std (False: Dr. GRPO)
    lr: float = 1e-6  # AdamW, constant
    weight_decay: float = 0.0
    grad_clip: float = 1.0  # global gradient-norm clip (0: none)
    clip_low: float = 0.2  # ratio clipped to [1 - clip_low, 1 + clip_high]
    clip_high: float = 0.2
    kl_coef: float = 0.0  # weight of the k3 KL to the frozen starting policy (0: no KL term)
    reference: bool | None = None  # keep the frozen reference (for the KL metric); None: when kl_coef > 0
    entropy_coef: float = 0.0  # entropy bonus (0: entropy is only logged)
    temperature: float = 1.0  # the rollouts' sampling temperature: logprobs are under softmax(logits/T)
    mini_batches: int = 1  # optimizer steps per epoch over the batch
    ppo_epochs: int = 1  # passes over the batch
    skip_zero_advantage: bool = True  # episodes whose advantages are all 0 are not trained on
    # How token losses make the mini-batch's: "token-mean" (every agent token counts the same, so
    # long episodes weigh more) or "seq-mean-token-mean" (each episode's mean, then the mean of those).
    aggregate: str = "token-mean"
    max_length: int = 4096  # tokens per episode (longer ones are cut)
    max_tokens: int = 16384  # padded tokens per micro-batch per device
    keep_checkpoints: int = 2  # newest policy/step-K kept on disk (the published one and its predecessor)
    seed: int = 0
    bf16: bool | None = None  # None: on CUDA
    gradient_checkpointing: bool = False
    fsdp: bool = False
    device: str | None = None
    peak_tflops: float | None = None
    poll_s: float = 0.2  # how often an idle learner looks for the next request


@dataclass
class Row:
    """One episode as the loss sees it."""

    key: str
    input_ids: list[int]
    mask: list[int]
    old_logp: list[float] | None  # the rollout's per-token logprobs; None: not recorded
    adv: list[float]  # per token (0 off the mask)


def allowed_staleness(t: Trajectory, allowed: dict[str, int]) -> int | None:
    """How many versions behind the trajectory is (its oldest version), None when it used a
    version not allowed at all; 0 when it names none (unknown: taken as current)."""
    if not t.weight_versions:
        return 0
    ages = [allowed.get(v) for v in t.weight_versions]
    return None if any(a is None for a in ages) else max(a for a in ages if a is not None)


def episode_reward(t: Trajectory, cfg: RLConfig) -> float:
    if cfg.reward == "success":
        return 1.0 if t.success else 0.0
    return float(t.reward or 0.0)


def build_rows(trajs: list[Trajectory], chat: ChatTokens, cfg: RLConfig) -> tuple[list[Row], dict[str, Any]]:
    """Token rows with per-token advantages, and what was counted on the way."""
    counts: Counter[str] = Counter()
    tokenized: list[tuple[Trajectory, list[int], list[int], list[float] | None]] = []
    for t in trajs:
        if t.input_ids is not None and t.loss_mask is not None and t.tokenizer == chat.fingerprint:
            ids, mask = list(t.input_ids), list(t.loss_mask)
            # The rollout's logprobs, when it recorded one for every generated token.
            lps = t.logprobs or []
            known = len(lps) == len(mask) and all(
                lp is not None for lp, m in zip(lps, mask, strict=True) if m
            )
            old = (
                [lp if lp is not None and m else 0.0 for lp, m in zip(lps, mask, strict=True)]
                if known
                else None
            )
        else:
            ids, mask = conversation_tokens(chat, t.conversations)
            old = None
            counts["retokenized"] += 1
        if old is None:
            counts["no_rollout_logprobs"] += 1
        if not any(mask):
            counts["no_agent_tokens"] += 1
            continue
        tokenized.append((t, ids, mask, old))
    returns: list[list[float]] = []
    for t, _, mask, _ in tokenized:
        turns = len(pg.turn_spans(mask))
        if cfg.step_rewards and t.step_rewards:
            g = pg.turn_returns(list(t.step_rewards), cfg.gamma)
            g = (g + [0.0] * turns)[:turns] if turns else g
        else:
            g = [episode_reward(t, cfg)] * turns
        returns.append(g)
    groups = [(t.env, t.task_id, t.seed) for t, *_ in tokenized]
    tokens = [[b - a for a, b in pg.turn_spans(mask)] for _, _, mask, _ in tokenized]
    per_turn = pg.advantages(returns, groups, cfg.algorithm, tokens=tokens, scale=cfg.scale)
    rows: list[Row] = []
    for (t, ids, mask, old), adv in zip(tokenized, per_turn, strict=True):
        if cfg.skip_zero_advantage and all(abs(a) < 1e-12 for a in adv):
            counts["zero_advantage"] += 1
            continue
        values = pg.token_values(mask, adv)
        if len(ids) > cfg.max_length:
            counts["truncated"] += 1
            ids, mask, values = ids[: cfg.max_length], mask[: cfg.max_length], values[: cfg.max_length]
            old = old[: cfg.max_length] if old is not None else None
        rows.append(Row(t.key, ids, mask, old, values))
    return rows, dict(counts)


def micro_batches(rows: list[Row], max_tokens: int) -> list[list[Row]]:
    """Rows sorted by length, cut so each padded micro-batch stays within max_tokens."""
    out: list[list[Row]] = []
    batch: list[Row] = []
    longest = 0
    for r in sorted(rows, key=lambda r: len(r.input_ids)):
        n = len(r.input_ids)
        if batch and max(longest, n) * (len(batch) + 1) > max_tokens:
            out.append(batch)
            batch, longest = [], 0
        batch.append(r)
        longest = max(longest, n)
    if batch:
        out.append(batch)
    return out


AGGREGATES = ("token-mean", "seq-mean-token-mean")


def collate(rows: list[Row], pad_id: int, torch: Any, per_sequence: bool = False) -> dict[str, Any]:
    """Right-padded tensors; `weight` is each token's share of the loss before the mini-batch's
    normalisation: 1 per agent token, or 1/(the episode's agent tokens) with `per_sequence`."""
    longest = max(len(r.input_ids) for r in rows)
    b = len(rows)
    ids = torch.full((b, longest), pad_id, dtype=torch.long)
    attn = torch.zeros((b, longest), dtype=torch.long)
    mask = torch.zeros((b, longest))
    weight = torch.zeros((b, longest))
    old = torch.zeros((b, longest))
    has_old = torch.zeros((b, 1), dtype=torch.bool)
    adv = torch.zeros((b, longest))
    for i, r in enumerate(rows):
        n = len(r.input_ids)
        ids[i, :n] = torch.tensor(r.input_ids)
        attn[i, :n] = 1
        mask[i, :n] = torch.tensor(r.mask, dtype=torch.float)
        weight[i, :n] = mask[i, :n] / max(1, sum(r.mask)) if per_sequence else mask[i, :n]
        adv[i, :n] = torch.tensor(r.adv)
        if r.old_logp is not None:
            old[i, :n] = torch.tensor(r.old_logp)
            has_old[i] = True
    return {
        "input_ids": ids,
        "attention_mask": attn,
        "mask": mask,
        "weight": weight,
        "old": old,
        "has_old": has_old,
        "adv": adv,
    }


class Learner:
    """The model, its frozen reference and the optimizer, in one process (or one rank)."""

    def __init__(self, cfg: RLConfig) -> None:
        import torch

        self.cfg = cfg
        self.torch = torch
        self.out = Path(cfg.out)
        self.d = distributed.setup(cfg.device)
        torch.manual_seed(cfg.seed)
        self.cuda = self.d.device.startswith("cuda")
        self.bf16 = cfg.bf16 if cfg.bf16 is not None else self.cuda
        resume = latest_policy(self.out)
        self.done = int(resume.name[5:]) if resume is not None else 0  # updates done
        model, self.tokenizer = load_model(cfg.model, cfg.init, cfg.seed, resume)
        self.chat = ChatTokens(self.tokenizer, eos_token_ids(model, self.tokenizer))
        use_ref = cfg.reference if cfg.reference is not None else cfg.kl_coef > 0
        self.ref = None
        if use_ref:  # the starting policy, frozen
            ref, _ = load_model(cfg.model, cfg.init, cfg.seed, None)
            self.ref = ref.to(self.d.device).eval().requires_grad_(False)
        model.to(self.d.device)
        if cfg.gradient_checkpointing:
            model.gradient_checkpointing_enable()
            model.config.use_cache = False
        self.n_params = sum(p.numel() for p in model.parameters())
        self.model = wrap(model, cfg, self.d, torch) if self.d.enabled else model
        decay = [p for p in self.model.parameters() if p.ndim >= 2]
        no_decay = [p for p in self.model.parameters() if p.ndim < 2]
        self.optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=cfg.lr, betas=(0.9, 0.95), fused=self.cuda,
        )  # fmt: skip
        if resume is not None and (resume / "trainer_state.pt").exists():
            state = torch.load(resume / "trainer_state.pt", map_location="cpu", weights_only=False)
            self.optimizer.load_state_dict(state["optimizer"])
            torch.set_rng_state(state["torch_rng"])
        self.peak = cfg.peak_tflops or peak_tflops(torch, self.d.device)
        if resume is None:
            self._save(0)  # the starting policy as a model directory the policy servers can load

    def _save(self, k: int) -> Path:
        path = self.out / "policy" / f"step-{k}"
        save_checkpoint(path, self.model, self.tokenizer, self.optimizer if k else None, {"step": k},
                        self.d, self.torch, self.cfg)  # fmt: skip
        return path

    def update(self, k: int, request: dict[str, Any]) -> dict[str, Any]:
        """One RL step on request `k`'s batch; saves policy/step-(k+1) and returns the metrics."""
        torch, cfg, d = self.torch, self.cfg, self.d
        started = time.perf_counter()
        report = ReadReport()
        # Sorted by key: the order episodes reached the store depends on timing, an update must not.
        loaded = sorted(load_trajectories(request["sources"], report=report), key=lambda t: t.key)
        allowed: dict[str, int] = request.get("allowed") or {}
        stale_mode = request.get("stale", "correct")
        kept, dropped_stale, unknown = [], 0, 0
        for t in loaded:
            age = allowed_staleness(t, allowed) if allowed else 0
            if age is None or (age > 0 and stale_mode == "drop"):
                dropped_stale += 1
                continue
            unknown += not t.weight_versions
            kept.append(t)
        rows, counts = build_rows(kept, self.chat, cfg)
        rollout = _rollout_stats(loaded, cfg)
        rng = random.Random(cfg.seed * 100003 + k)
        rng.shuffle(rows)
        sums: Counter[str] = Counter()
        tokens_seen, updates, grad_norms = 0, 0, []
        self.model.train()
        autocast = (
            torch.autocast(device_type="cuda", dtype=torch.bfloat16)
            if self.bf16 and self.cuda
            else nullcontext()
        )
        t_train = time.perf_counter()
        for _epoch in range(cfg.ppo_epochs):
            n_mb = max(1, min(cfg.mini_batches, len(rows)))
            for m in range(n_mb):
                mb = rows[m::n_mb]
                if not mb:
                    continue
                mine = mb[d.rank :: d.world]
                # The loss is a mean over the whole mini-batch, which every rank holds (each trains
                # on its share): agent tokens, or episodes for seq-mean-token-mean.
                per_seq = cfg.aggregate == "seq-mean-token-mean"
                total = float(len(mb)) if per_seq else float(sum(sum(r.mask) for r in mb))
                micro = micro_batches(mine, cfg.max_tokens) if mine else []
                n_micro = int(distributed.all_reduce_max(d, float(len(micro)), d.device))
                # Every rank takes the same number of forward/backward passes (collectives inside
                # DDP/FSDP): a rank with fewer rows passes a zero-weight copy of a row.
                while len(micro) < n_micro:
                    micro.append([Row(mb[0].key, mb[0].input_ids, [0] * len(mb[0].mask), None, mb[0].adv)])
                self.optimizer.zero_grad(set_to_none=True)
                for i, batch in enumerate(micro):
                    x = {
                        k2: v.to(d.device)
                        for k2, v in collate(batch, self.tokenizer.pad_token_id, torch, per_seq).items()
                    }
                    last = i == len(micro) - 1
                    sync = nullcontext() if (not d.enabled or cfg.fsdp or last) else self.model.no_sync()
                    with sync, autocast:
                        logits = self.model(
                            input_ids=x["input_ids"], attention_mask=x["attention_mask"]
                        ).logits[:, :-1]
                        targets = x["input_ids"][:, 1:]
                        mask = x["mask"][:, 1:]
                        logp = pg.token_logprobs(logits, targets, cfg.temperature)
                        old = torch.where(x["has_old"], x["old"][:, 1:], logp.detach())
                        adv = x["adv"][:, 1:]
                        surrogate, clipped, ratio = pg.clipped_surrogate(
                            logp, old, adv, cfg.clip_low, cfg.clip_high
                        )
                        loss_tok = surrogate
                        if self.ref is not None:
                            with torch.no_grad():
                                ref_logits = self.ref(
                                    input_ids=x["input_ids"], attention_mask=x["attention_mask"]
                                ).logits[:, :-1]
                                ref_logp = pg.token_logprobs(ref_logits, targets, cfg.temperature)
                            kl = pg.kl_k3(logp, ref_logp)
                            if cfg.kl_coef:
                                loss_tok = loss_tok + cfg.kl_coef * kl
                            sums["kl_ref"] += float(pg.masked_sum(kl.detach(), mask))
                        if cfg.entropy_coef:
                            ent = pg.entropy(logits, cfg.temperature)
                            loss_tok = loss_tok - cfg.entropy_coef * ent
                        else:
                            with torch.no_grad():
                                ent = pg.entropy(logits.detach(), cfg.temperature)
                        loss = pg.masked_sum(loss_tok, x["weight"][:, 1:]) * d.world / max(1.0, total)
                        loss.backward()
                    with torch.no_grad():
                        sums["tokens"] += float(mask.sum())
                        sums["pg_loss"] += float(pg.masked_sum(surrogate.detach(), mask))
                        sums["loss"] += float(pg.masked_sum(loss_tok.detach(), mask))
                        sums["entropy"] += float(pg.masked_sum(ent.detach(), mask))
                        sums["clipped"] += float(pg.masked_sum(clipped, mask))
                        sums["ratio"] += float(pg.masked_sum(ratio.detach(), mask))
                        sums["kl_rollout"] += float(pg.masked_sum(pg.kl_k3(logp.detach(), old), mask))
                        sums["abs_adv"] += float(pg.masked_sum(adv.abs(), mask))
                        tokens_seen += int(x["attention_mask"].sum())
                if cfg.grad_clip:
                    grad_norms.append(
                        float(torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip))
                    )
                self.optimizer.step()
                updates += 1
        train_s = time.perf_counter() - t_train
        for name in list(sums):
            sums[name] = distributed.all_reduce_sum(d, sums[name], d.device)
        tokens_seen = int(distributed.all_reduce_sum(d, float(tokens_seen), d.device))
        path = self._save(k + 1)
        self.done = k + 1
        n_tok = max(1.0, sums["tokens"])
        tps = tokens_seen / max(train_s, 1e-9)
        result = {
            "step": k, "model": str(path), "episodes": len(loaded), "trained_episodes": len(rows),
            "dropped_stale": dropped_stale, "unknown_version": unknown, "skipped_records": len(report.skipped),
            **{f"n_{name}": v for name, v in counts.items()}, **rollout,
            "updates": updates, "agent_tokens": int(sums["tokens"]),
            "loss": sums["loss"] / n_tok, "pg_loss": sums["pg_loss"] / n_tok, "entropy": sums["entropy"] / n_tok,
            "clip_frac": sums["clipped"] / n_tok, "ratio_mean": sums["ratio"] / n_tok,
            "kl_rollout": sums["kl_rollout"] / n_tok, "kl_ref": sums["kl_ref"] / n_tok if self.ref is not None else None,
            "adv_abs_mean": sums["abs_adv"] / n_tok,
            "grad_norm": sum(grad_norms) / len(grad_norms) if grad_norms else None,
            "train_tokens_per_s": round(tps, 1), "mfu": mfu(tps, self.n_params, self.peak, d.world),
            "learn_s": round(time.perf_counter() - started, 3), "update_s": round(train_s, 3),
        }  # fmt: skip
        for name, value in result.items():
            if isinstance(value, float) and not math.isfinite(value):
                raise LearnerError(
                    f"step {k}: {name} is {value} (the update diverged); lower lr or check rewards"
                )
        return result


def _rollout_stats(trajs: list[Trajectory], cfg: RLConfig) -> dict[str, Any]:
    """What the batch's episodes did (before any was dropped)."""
    n = max(1, len(trajs))
    generated = sum(sum(t.loss_mask) for t in trajs if t.loss_mask)
    return {
        "reward_mean": sum(episode_reward(t, cfg) for t in trajs) / n,
        "success": sum(bool(t.success) for t in trajs) / n,
        "rounds_mean": sum(t.rounds or 0 for t in trajs) / n,
        "max_steps": sorted({t.max_steps for t in trajs if t.max_steps}),
        "truncated": sum(t.finish == "truncated" for t in trajs) / n,
        "generated_tokens": generated,
        "weight_versions": dict(Counter(",".join(t.weight_versions) or "?" for t in trajs)),
    }


def latest_policy(out: Path) -> Path | None:
    """The newest complete policy/step-K (checkpoints are renamed into place once written). Its
    trainer_state.pt (optimizer, RNG) is there too, except under FSDP, where a resumed learner
    starts its optimizer afresh from the saved weights."""
    found = [
        p
        for p in (out / "policy").glob("step-*")
        if not p.name.endswith(".tmp") and (p / "config.json").exists()
    ]
    return max(found, key=lambda p: int(p.name[5:]), default=None)


def _write_json(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(value, indent=1))
    tmp.replace(path)


# --- the child process ---------------------------------------------------------------------------
def serve(config_path: str) -> int:
    """Load once, then do each request in turn until told to stop or the trainer dies."""
    from agentgym.core.logs import configure_logging

    configure_logging()
    cfg = RLConfig(**json.loads(Path(config_path).read_text()))
    out = Path(cfg.out)
    learner = Learner(cfg)
    if learner.d.main:
        _write_json(out / "ready.json", {"done": learner.done, "pid": os.getpid()})
    try:
        while True:
            k = learner.done
            request_path = out / "requests" / f"step-{k}.json"
            if (out / "stop").exists():
                return 0
            if not request_path.exists():
                ahead = [p.name for p in (out / "requests").glob("step-*.json") if int(p.stem[5:]) > k]
                if ahead:
                    raise LearnerError(f"asked for {', '.join(sorted(ahead))} but the newest policy is step-{k}: "
                                       f"the learner folder {out} lost checkpoints")  # fmt: skip
                time.sleep(cfg.poll_s)
                continue
            request = json.loads(request_path.read_text())
            result = learner.update(k, request)
            if learner.d.main:
                _write_json(out / "results" / f"step-{k}.json", result)
                log.info("rl step", extra={k2: v for k2, v in result.items() if not isinstance(v, dict)})
    finally:
        distributed.teardown(learner.d)


def main(argv: list[str]) -> int:
    config_path, nproc = argv[0], int(argv[2]) if argv[1:2] == ["--nproc"] else 1
    parent = os.environ.pop("AGENTGYM_PARENT_PID", None)
    if parent is not None:
        die_with_parent(int(parent))
    if nproc > 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={nproc}", "-m",
               "agentgym.trainer.rl_learn", config_path]  # fmt: skip
        return subprocess.run(cmd, preexec_fn=die_with_parent).returncode
    return serve(config_path)


# --- the trainer's side --------------------------------------------------------------------------
class LearnerProcess:
    """Starts the learner child, sends it steps, reads their results; see the module docstring."""

    def __init__(self, cfg: RLConfig, nproc: int = 1) -> None:
        self.cfg = cfg
        self.out = Path(cfg.out)
        self.nproc = max(1, nproc)
        self.proc: asyncio.subprocess.Process | None = None

    def result(self, k: int) -> dict[str, Any] | None:
        path = self.out / "results" / f"step-{k}.json"
        return json.loads(path.read_text()) if path.exists() else None

    async def start(self, timeout_s: float = 3600.0) -> None:
        """Start the child (once) and wait until it has loaded and saved policy/step-0."""
        if self.proc is not None and self.proc.returncode is None:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        self._forget_unreported()
        (self.out / "stop").unlink(missing_ok=True)
        (self.out / "ready.json").unlink(missing_ok=True)
        _write_json(self.out / CONFIG, asdict(self.cfg))
        cmd = [
            sys.executable,
            "-m",
            "agentgym.trainer.rl_learn",
            str(self.out / CONFIG),
            "--nproc",
            str(self.nproc),
        ]
        with (self.out / LOG).open("ab") as logf:
            self.proc = await asyncio.create_subprocess_exec(
                *cmd, stdout=logf, stderr=logf, stdin=asyncio.subprocess.DEVNULL, start_new_session=True,
                env={**os.environ, "AGENTGYM_LOG_FORMAT": "json", "AGENTGYM_PARENT_PID": str(os.getpid())},
            )  # fmt: skip
        log.info("learner started", extra={"pid": self.proc.pid, "out": str(self.out)})
        await self._wait(lambda: (self.out / "ready.json").exists(), timeout_s, "to load the model")

    def _forget_unreported(self) -> None:
        """A learner killed between saving policy/step-K and writing the result of step K-1 left a
        checkpoint nobody knows the metrics of: drop it, so step K-1 is done again."""
        while (newest := latest_policy(self.out)) is not None:
            k = int(newest.name[5:])
            if k == 0 or self.result(k - 1) is not None:
                return
            log.warning("dropping a checkpoint without its step's result", extra={"path": str(newest)})
            shutil.rmtree(newest)

    async def _wait(self, ready: Any, timeout_s: float, what: str) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout_s
        while not ready():
            if self.proc.returncode is not None:
                raise LearnerError(
                    f"the learner exited with code {self.proc.returncode} {what}: {self.tail()}"
                )
            if time.monotonic() > deadline:
                raise LearnerError(f"the learner took over {timeout_s:.0f} s {what}: {self.tail()}")
            try:
                await asyncio.wait_for(self.proc.wait(), self.cfg.poll_s)
            except TimeoutError:
                pass

    def tail(self) -> str:
        try:
            text = (self.out / LOG).read_bytes()[-3000:].decode(errors="replace")
        except OSError:
            return "(no log)"
        return " | ".join(text.strip().splitlines()[-6:])

    def policy(self, k: int) -> Path:
        return self.out / "policy" / f"step-{k}"

    async def update(self, k: int, request: dict[str, Any], timeout_s: float = 24 * 3600.0) -> dict[str, Any]:
        """Step k's result: at once when it exists, else by sending the request and waiting."""
        done = self.result(k)
        if done is not None:
            return done
        await self.start()
        _write_json(self.out / "requests" / f"step-{k}.json", request)
        await self._wait(lambda: self.result(k) is not None, timeout_s, f"in step {k}")
        result = self.result(k)
        assert result is not None
        return result

    async def stop(self, grace_s: float = 10.0) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        (self.out / "stop").touch()
        try:
            await asyncio.wait_for(self.proc.wait(), grace_s)
            return
        except TimeoutError:
            pass
        except asyncio.CancelledError:
            self.kill()
            raise
        self.kill()
        await self.proc.wait()

    def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
