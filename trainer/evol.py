"""AgentEvol (Xi et al., 2024): explore, filter by reward, learn from the base model, reload.

    agentgym train evol --base init:small --bc-data runs/expert.jsonl --envs maze,wordle --iterations 2 --out runs/evol

Iteration k, reading top to bottom of `run`:
1. explore: the current agent plays tasks from each env's train split, sampling (temperature > 0),
   through the rollout engine; with dynamic sampling each env's share of the episodes follows its
   difficulty for the agent (1 - success rate at the last evaluation, plus a floor), uniform
   otherwise (the paper's ablation);
2. filter: keep trajectories whose reward reaches the env's success threshold (1.0 for 0/1 envs,
   100 for SciWorld; the paper's 0.99 and 99);
3. learn: fine-tune the *base* model on the original data plus everything kept so far;
4. reload: load the new weights into the policy (the in-process hf policy, or SGLang servers via
   /update_weights_from_disk);
5. evaluate on held-out tasks (greedy) and write a report row: per-env success before and after,
   explored and kept counts, loss. The report is a JSON and Markdown table plus a PNG plot.
Iteration 0 is behaviour cloning from the base model when no --agent is given. Every step writes
its results under --out; rerunning resumes where a run stopped.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from agentgym.client.envclient import EnvClient
from agentgym.client.policies import Policy, Sampling, make_policy
from agentgym.client.rollout import FileSink, Rollout, RolloutConfig
from agentgym.client.tasks import expand
from agentgym.client.trajectory import read_jsonl
from agentgym.client.types import EnvInfo
from agentgym.trainer.bc import BCConfig, BCResult
from agentgym.trainer.bc import train as train_bc

log = logging.getLogger(__name__)


@dataclass
class EvolConfig:
    envs: list[str]
    bc_data: list[str]  # the original (expert/BC) trajectories
    out: str
    base: str  # base model: a directory/hub id, or "init:tiny" / "init:small" (from scratch)
    agent: str | None = None  # starting agent (a BC checkpoint); None: train it first (iteration 0)
    iterations: int = 1
    explore_episodes: int = 400  # per iteration, shared between envs
    samples_per_task: int = 1
    explore_temperature: float = 0.7
    explore_split: str = "train"
    eval_split: str = "test"
    eval_tasks: int = 50  # per env
    uniform: bool = False  # the ablation: equal shares instead of dynamic sampling
    share_floor: float = 0.1
    policy: str = "hf"  # hf (in-process) or sglang (remote servers, reloaded over HTTP)
    policy_url: str | None = None
    max_new_tokens: int = 128
    max_context_tokens: int | None = None
    concurrency: int = 64
    seed: int = 0
    bc: dict[str, Any] = field(default_factory=dict)  # BCConfig fields for every learn step (lr, epochs, ...)
    progress: bool = True


@dataclass
class IterationReport:
    iteration: int
    model: str
    success_before: dict[str, float]
    success_after: dict[str, float]
    explored: dict[str, int]
    kept: dict[str, int]
    kept_total: int
    train_examples: int
    loss_first: float
    loss_last: float


class AgentEvol:
    def __init__(self, cfg: EvolConfig, client: EnvClient) -> None:
        self.cfg = cfg
        self.client = client
        self.out = Path(cfg.out)
        self.infos: dict[str, EnvInfo] = {}
        self.policy: Policy | None = None

    # --- the loop ------------------------------------------------------------------------------------
    async def run(self) -> list[IterationReport]:
        cfg = self.cfg
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
        hosted = await self.client.envs()
        missing = [e for e in cfg.envs if e not in hosted]
        if missing:
            raise ValueError(f"no env server hosts {missing}; hosted: {', '.join(sorted(hosted))}")
        self.infos = {e: hosted[e] for e in cfg.envs}
        agent = cfg.agent or (await self._learn(0, kept_files=[]))[0]
        reports: list[IterationReport] = [r for r in self._load_reports() if r.iteration <= cfg.iterations]
        await self._start_policy(agent)
        try:
            before = await self._evaluate(
                agent, tag="agent-0" if not reports else f"iter-{reports[-1].iteration}"
            )
            for k in range(len(reports) + 1, cfg.iterations + 1):
                explored, kept = await self._explore(k, before)
                kept_files = [self.out / f"iter-{i}" / "kept.jsonl" for i in range(1, k + 1)]
                path, result = await self._learn(k, kept_files)
                await self._reload(path, k)
                after = await self._evaluate(path, tag=f"iter-{k}")
                reports.append(
                    IterationReport(
                        k,
                        path,
                        before,
                        after,
                        explored,
                        kept,
                        sum(_count(f) for f in kept_files),
                        result.data_stats.get("examples", 0),
                        result.first_loss,
                        result.last_loss,
                    )
                )
                self._write_report(reports)
                before = after
        finally:
            if self.policy is not None:
                await self.policy.close()
        self._write_report(reports)
        return reports

    # --- steps ---------------------------------------------------------------------------------------
    def _shares(self, success: dict[str, float]) -> dict[str, int]:
        """Episodes per env: equal, or following each env's difficulty for the current agent."""
        cfg = self.cfg
        if cfg.uniform:
            weights = dict.fromkeys(cfg.envs, 1.0)
        else:
            weights = {e: max(cfg.share_floor, 1.0 - success.get(e, 0.0)) for e in cfg.envs}
        total = sum(weights.values())
        return {e: max(1, round(cfg.explore_episodes * w / total)) for e, w in weights.items()}

    async def _explore(self, k: int, success: dict[str, float]) -> tuple[dict[str, int], dict[str, int]]:
        cfg = self.cfg
        folder = self.out / f"iter-{k}"
        folder.mkdir(parents=True, exist_ok=True)
        shares = self._shares(success)
        rng = random.Random(cfg.seed * 7919 + k)
        chosen: dict[str, list[int]] = {}
        for env, n in shares.items():
            pool = (
                self.infos[env].tasks(cfg.explore_split)
                if cfg.explore_split in self.infos[env].splits
                else self.infos[env].tasks()
            )
            tasks = max(1, n // cfg.samples_per_task)
            chosen[env] = sorted(rng.sample(pool, min(tasks, len(pool))))
        specs = expand(chosen, samples=cfg.samples_per_task)
        explore_file = folder / "explore.jsonl"
        sampling = Sampling(cfg.explore_temperature, 1.0, cfg.max_new_tokens)
        assert self.policy is not None
        self._set_sampling(sampling)
        summary = await Rollout(
            self.client, self.policy, self._rollout_config(), [FileSink(explore_file)]
        ).run(specs)
        log.info(
            "explored",
            extra={"iteration": k, "shares": shares, "finished": summary.finished, "failed": summary.failed},
        )
        # Filter: keep what reached the env's success threshold (the paper's 0.99 / 99).
        explored: dict[str, int] = dict.fromkeys(cfg.envs, 0)
        kept: dict[str, int] = dict.fromkeys(cfg.envs, 0)
        kept_file = folder / "kept.jsonl.tmp"
        with kept_file.open("w") as f:
            for record in read_jsonl(explore_file):
                env = record["env"]
                explored[env] += 1
                if float(record["reward"]) >= self.infos[env].success_threshold - 0.01:
                    record["iteration"] = k
                    f.write(json.dumps(record) + "\n")
                    kept[env] += 1
        kept_file.replace(folder / "kept.jsonl")
        return explored, kept

    async def _learn(self, k: int, kept_files: list[Path]) -> tuple[str, BCResult]:
        """Fine-tune the base model on the original data plus every kept trajectory so far."""
        cfg = self.cfg
        folder = self.out / ("agent-0" if k == 0 else f"iter-{k}") / "model"
        init = cfg.base[len("init:") :] if cfg.base.startswith("init:") else None
        bc = BCConfig(
            data=[*cfg.bc_data, *(str(f) for f in kept_files if f.exists() and f.stat().st_size)],
            out=str(folder),
            model=None if init else cfg.base,
            init=init,
            seed=cfg.seed,
            progress=cfg.progress,
            **cfg.bc,
        )
        if (folder / "final" / "config.json").exists() and (folder / "result.json").exists():
            saved = json.loads((folder / "result.json").read_text())
            return str(folder / "final"), BCResult(
                folder / "final",
                saved["steps"],
                saved["first_loss"],
                saved["last_loss"],
                saved["tokens_per_s"],
                saved.get("mfu"),
                saved["data_stats"],
            )
        result = await asyncio.to_thread(train_bc, bc)
        (folder / "result.json").write_text(
            json.dumps(
                {
                    "steps": result.steps,
                    "first_loss": result.first_loss,
                    "last_loss": result.last_loss,
                    "tokens_per_s": result.tokens_per_s,
                    "mfu": result.mfu,
                    "data_stats": result.data_stats,
                }
            )
        )
        log.info("learned", extra={"iteration": k, "model": str(result.final), "loss": result.last_loss})
        return str(result.final), result

    async def _start_policy(self, agent: str) -> None:
        cfg = self.cfg
        sampling = Sampling(0.0, 1.0, cfg.max_new_tokens)
        self.policy = make_policy(
            cfg.policy, model=agent, url=cfg.policy_url, sampling=sampling, seed=cfg.seed
        )
        await self.policy.start()
        if cfg.policy == "sglang":
            await self._reload(agent, 0)

    async def _reload(self, path: str, k: int) -> None:
        policy = self.policy
        assert policy is not None
        if hasattr(policy, "reload"):
            await policy.reload(path, weight_version=f"iter-{k}")
        elif hasattr(policy, "update_weights"):
            await policy.update_weights(path, weight_version=f"iter-{k}")
        else:
            raise ValueError(f"policy {policy.name!r} cannot load new weights")

    def _set_sampling(self, sampling: Sampling) -> None:
        assert self.policy is not None
        self.policy.sampling = sampling  # type: ignore[attr-defined]

    async def _evaluate(self, model: str, tag: str) -> dict[str, float]:
        """Success rate per env on held-out tasks, greedy; cached per model under --out."""
        cfg = self.cfg
        folder = self.out / "eval" / tag
        folder.mkdir(parents=True, exist_ok=True)
        chosen = {}
        for env in cfg.envs:
            pool = (
                self.infos[env].tasks(cfg.eval_split)
                if cfg.eval_split in self.infos[env].splits
                else self.infos[env].tasks()
            )
            chosen[env] = pool[: cfg.eval_tasks]
        self._set_sampling(Sampling(0.0, 1.0, cfg.max_new_tokens))
        assert self.policy is not None
        await Rollout(
            self.client, self.policy, self._rollout_config(), [FileSink(folder / "trajectories.jsonl")]
        ).run(expand(chosen))
        records = list(read_jsonl(folder / "trajectories.jsonl"))
        success = {
            env: sum(r["success"] for r in records if r["env"] == env)
            / max(1, sum(r["env"] == env for r in records))
            for env in cfg.envs
        }
        (folder / "success.json").write_text(json.dumps({"model": model, "success": success}, indent=2))
        log.info("evaluated", extra={"model": model, "success": success})
        return success

    def _rollout_config(self) -> RolloutConfig:
        cfg = self.cfg
        return RolloutConfig(
            concurrency=cfg.concurrency,
            max_context_tokens=cfg.max_context_tokens,
            progress=cfg.progress,
            max_failures=max(10, cfg.explore_episodes // 10),
        )

    # --- report --------------------------------------------------------------------------------------
    def _load_reports(self) -> list[IterationReport]:
        path = self.out / "report.json"
        if not path.exists():
            return []
        return [IterationReport(**r) for r in json.loads(path.read_text())["iterations"]]

    def _write_report(self, reports: list[IterationReport]) -> None:
        (self.out / "report.json").write_text(
            json.dumps({"iterations": [asdict(r) for r in reports]}, indent=2)
        )
        (self.out / "report.md").write_text(report_markdown(reports, self.cfg.envs))
        if reports:
            plot(reports, self.cfg.envs, self.out / "report.png")


def _count(path: Path) -> int:
    return sum(1 for _ in read_jsonl(path)) if path.exists() else 0


def report_markdown(reports: list[IterationReport], envs: list[str]) -> str:
    head = (
        "| iteration | "
        + " | ".join(f"{e} before | {e} after | {e} kept" for e in envs)
        + " | kept total | train loss |"
    )
    sep = "|---" * (1 + 3 * len(envs) + 2) + "|"
    rows = [
        f"| {r.iteration} | "
        + " | ".join(
            f"{r.success_before.get(e, 0) * 100:.1f}% | {r.success_after.get(e, 0) * 100:.1f}% | "
            f"{r.kept.get(e, 0)}/{r.explored.get(e, 0)}"
            for e in envs
        )
        + f" | {r.kept_total} | {r.loss_first:.3f} -> {r.loss_last:.3f} |"
        for r in reports
    ]
    return "\n".join([head, sep, *rows]) + "\n"


def plot(reports: list[IterationReport], envs: list[str], path: Path) -> None:
    """Success per env before the first iteration and after each one."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    xs = [0] + [r.iteration for r in reports]
    for env in envs:
        ys = [reports[0].success_before.get(env, 0) * 100] + [
            r.success_after.get(env, 0) * 100 for r in reports
        ]
        ax.plot(xs, ys, marker="o", label=env)
    ax.set_xlabel("AgentEvol iteration")
    ax.set_ylabel("success on held-out tasks (%)")
    ax.set_xticks(xs)
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
