"""AgentEvol (Xi et al., 2024) as a trainer job: explore, filter, learn from base, publish, evaluate.

    agentgym trainer submit evol --envs maze --base init:mini --bc-store iteration=-1 \\
        --policy-url http://127.0.0.1:30000 --env-server 127.0.0.1:50051 --iterations 2

Reading `run_evol` top to bottom, every step a `JobContext.step` (done once, resumable):
0. the starting agent: `--agent`, or behaviour cloning from the base model on the original data;
   it is published to the policy servers as "<job>.iter-0" and evaluated;
then for iteration k = 1..N:
1. explore: rollout workers play tasks of each env's train split with sampling (temperature > 0)
   against the policy servers; each env's share follows its difficulty for the agent (1 - success
   at the last evaluation, with a floor: dynamic sampling), or is equal (`uniform`, the paper's
   ablation). Every trajectory streams into the store tagged with iteration k and the weight
   version that produced it;
2. filter: a store query per env: iteration k, produced by version "<job>.iter-(k-1)", reward at
   least the env's success threshold (1.0 for 0/1 envs, 100 for SciWorld; the paper's 0.99, 99);
3. learn: behaviour cloning from the *base* model on the original data plus every iteration's
   filtered trajectories so far, in a child process (trainer/learn.py);
4. publish: every policy server loads the new weights as "<job>.iter-k" (all or none);
5. evaluate: greedy rollouts on held-out tasks; a report row (success before and after, explored
   and kept per env, loss) goes to report.json, report.md and report.png in the job's folder.
"""

from __future__ import annotations

import asyncio
import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from agentgym.core.envinfo import EnvInfo, list_envs
from agentgym.core.security import ClientSecurity
from agentgym.core.trajectory import make_item_id, make_key, make_record_id
from agentgym.trainer.jobs import JobContext, JobError
from agentgym.trainer.specs import EvolSpec, RLSpec
from agentgym.trainer.store import Query
from agentgym.v1 import trainer_pb2 as rpb

# Reward at or above the env's success threshold minus this counts as a success (the paper's
# 0.99 for a threshold of 1, 99 for 100).
THRESHOLD_SLACK = 0.01


@dataclass
class IterationReport:
    iteration: int
    model: str
    weight_version: str
    success_before: dict[str, float]
    success_after: dict[str, float]
    explored: dict[str, int]
    kept: dict[str, int]
    stale: int  # explored by another weight version than the one published (not kept)
    kept_total: int
    train_examples: int
    loss_first: float
    loss_last: float


async def hosted_envs(
    envs: list[str], servers: list[str], security: ClientSecurity | None = None
) -> dict[str, EnvInfo]:
    """What the env servers say about each of a job's envs; JobError when one is not hosted."""
    try:
        hosted = await list_envs(servers, security=security)
    except ConnectionError as exc:
        raise JobError(str(exc)) from None
    missing = [e for e in envs if e not in hosted]
    if missing:
        raise JobError(f"no env server hosts {missing}; hosted: {', '.join(sorted(hosted))}")
    return {e: hosted[e] for e in envs}


async def run_evol(ctx: JobContext, spec: EvolSpec) -> dict[str, Any]:
    infos = await hosted_envs(spec.envs, spec.env_servers, ctx.client)
    urls = spec.policy_urls

    def version(k: int) -> str:
        return f"{ctx.job.id}.iter-{k}"

    base = ctx.iteration_base()  # iteration k is stored as base + k (jobs share the store)

    def learn_config(k: int) -> Any:
        sources = spec.bc_data.sources(str(ctx.store.path))
        for i in range(1, k + 1):
            sources += [
                {"path": str(ctx.store.path), "query": q}
                for q in _kept_queries(spec, infos, base + i, version(i - 1))
            ]
        return ctx.bc_config(
            spec.base, sources, ctx.out / f"iter-{k}" / "model", spec.settings, spec.bc_data.strict
        )

    # --- iteration 0: the starting agent -------------------------------------------------------------
    if spec.agent:
        agent, learned = spec.agent, {}
    else:
        learned = await ctx.step("learn-0", "iteration 0: learn (behaviour cloning from the base model)",
                                 lambda: ctx.learn(learn_config(0), spec.nproc))  # fmt: skip
        agent = learned["final"]
    await ctx.step("publish-0", "iteration 0: publish", lambda: ctx.publish(urls, agent, version(0), None))
    before = await ctx.step(
        "eval-0", "iteration 0: evaluate", lambda: evaluate(ctx, spec, infos, 0, version(0))
    )
    reports = [IterationReport(**r) for r in ctx.state.get("reports", [])]

    # --- iterations -------------------------------------------------------------------------------------
    n = spec.iterations
    for k in range(len(reports) + 1, n + 1):
        previous = (agent, version(k - 1))
        await ctx.step(f"explore-{k}", f"iteration {k}/{n}: explore",
                       lambda k=k, before=before: explore(ctx, spec, infos, k, before, version(k - 1)))  # fmt: skip
        learned = await ctx.step(f"learn-{k}", f"iteration {k}/{n}: learn (from the base model)",
                                 lambda k=k: ctx.learn(learn_config(k), spec.nproc))  # fmt: skip
        await ctx.step(f"publish-{k}", f"iteration {k}/{n}: publish",
                       lambda k=k, learned=learned, previous=previous: ctx.publish(
                           urls, learned["final"], version(k), previous))  # fmt: skip
        after = await ctx.step(f"eval-{k}", f"iteration {k}/{n}: evaluate",
                               lambda k=k: evaluate(ctx, spec, infos, k, version(k)))  # fmt: skip
        explored, kept, stale = _counts(ctx, spec, infos, base + k, version(k - 1))
        reports.append(IterationReport(
            iteration=k, model=learned["final"], weight_version=version(k), success_before=before,
            success_after=after, explored=explored, kept=kept, stale=stale,
            kept_total=sum(sum(_counts(ctx, spec, infos, base + i, version(i - 1))[1].values()) for i in range(1, k + 1)),
            train_examples=learned["data_stats"].get("examples", 0), loss_first=learned["first_loss"],
            loss_last=learned["last_loss"],
        ))  # fmt: skip
        ctx.state["reports"] = [asdict(r) for r in reports]
        await asyncio.to_thread(write_report, ctx.out, reports, spec.envs)
        ctx.log(f"iteration {k}: success {_pct(before)} -> {_pct(after)}; kept {sum(kept.values())} "
                f"of {sum(explored.values())} explored")  # fmt: skip
        agent, before = learned["final"], after
    await asyncio.to_thread(write_report, ctx.out, reports, spec.envs)
    return {"agent": agent, "weight_version": version(n), "success": before,
            "iterations": [asdict(r) for r in reports]}  # fmt: skip


def _pct(success: dict[str, float]) -> str:
    return ", ".join(f"{e} {v:.1%}" for e, v in success.items())


def _kept_queries(spec: EvolSpec, infos: dict[str, EnvInfo], k: int, made_by: str) -> list[dict[str, Any]]:
    """The filter of (store) iteration k, one store query per env (each env has its own threshold)."""
    return [
        {"env": [e], "iteration": k, "weight_version": [made_by],
         "min_reward": infos[e].success_threshold - THRESHOLD_SLACK}
        for e in spec.envs
    ]  # fmt: skip


def _counts(ctx: JobContext, spec: EvolSpec, infos: dict[str, EnvInfo], k: int,
            made_by: str) -> tuple[dict[str, int], dict[str, int], int]:  # fmt: skip
    explored = {e: ctx.store.count(Query.of(env=e, iteration=k)) for e in spec.envs}
    kept = {q["env"][0]: ctx.store.count(Query.of(**q)) for q in _kept_queries(spec, infos, k, made_by)}
    current = sum(ctx.store.count(Query.of(env=e, iteration=k, weight_version=made_by)) for e in spec.envs)
    return explored, kept, sum(explored.values()) - current


def pool(info: EnvInfo, split: str) -> list[int]:
    return info.tasks(split) if split in info.splits else info.tasks()


def shares(spec: EvolSpec, success: dict[str, float]) -> dict[str, int]:
    """Episodes per env: equal, or following each env's difficulty for the current agent."""
    if spec.uniform:
        weights = dict.fromkeys(spec.envs, 1.0)
    else:
        weights = {e: max(spec.share_floor, 1.0 - success.get(e, 0.0)) for e in spec.envs}
    total = sum(weights.values())
    return {e: max(1, round(spec.explore_episodes * w / total)) for e, w in weights.items()}


def work_items(ctx: JobContext, spec: EvolSpec | RLSpec, purpose: str, episodes: list[rpb.WorkEpisode], *,
               iteration: int | None, version: str, temperature: float, max_steps: int = 0,
               abort_on_update: bool = False) -> list[rpb.WorkItem]:  # fmt: skip
    """Episodes cut into work items of `spec.work_chunk`, with everything a worker needs."""
    chunk = max(1, spec.work_chunk)
    return [
        rpb.WorkItem(
            job_id=ctx.job.id, purpose=purpose, episodes=episodes[i : i + chunk], iteration=iteration,
            weight_version=version, policy_urls=spec.policy_urls, env_servers=spec.env_servers,
            temperature=temperature, top_p=1.0, max_new_tokens=spec.max_new_tokens,
            concurrency=spec.concurrency, seed=spec.seed, max_steps=max_steps,
            abort_on_update=abort_on_update,
        )
        for i in range(0, len(episodes), chunk)
    ]  # fmt: skip


async def explore(ctx: JobContext, spec: EvolSpec, infos: dict[str, EnvInfo], k: int,
                  success: dict[str, float], version: str) -> dict[str, Any]:  # fmt: skip
    """Queue iteration k's exploration and wait for the workers; the store holds the result."""
    rng = random.Random(spec.seed * 7919 + k)
    planned = shares(spec, success)
    episodes = []
    for env, count in planned.items():
        tasks_of_env = pool(infos[env], spec.explore_split)
        tasks = sorted(
            rng.sample(tasks_of_env, min(max(1, count // spec.samples_per_task), len(tasks_of_env)))
        )
        episodes += [
            rpb.WorkEpisode(env=env, task_id=t, sample=s) for t in tasks for s in range(spec.samples_per_task)
        ]
    it = ctx.iteration_base() + k
    stored = {e.id for e in ctx.store.select(Query.of(iteration=it))}
    todo = [ep for ep in episodes if episode_key(ep, it) not in stored]
    ctx.log(f"explore: {len(episodes)} episodes ({', '.join(f'{e} {n}' for e, n in planned.items())}); "
            f"{len(episodes) - len(todo)} already stored")  # fmt: skip
    items = work_items(
        ctx, spec, "explore", todo, iteration=it, version=version, temperature=spec.explore_temperature
    )
    dones = await run_items(ctx, items)
    failed = sum(1 for d in dones for r in d.results if r.error)
    return {"planned": len(episodes), "played": len(todo), "failed": failed,
            "rollout_s": round(sum(d.seconds for d in dones), 3)}  # fmt: skip


def episode_key(ep: rpb.WorkEpisode, iteration: int) -> str:
    """The store key the episode's trajectory will have (see agentgym.core.trajectory)."""
    return make_key(make_record_id(make_item_id(ep.env, ep.task_id), ep.sample), iteration)


async def run_items(ctx: JobContext, items: list[rpb.WorkItem]) -> list[rpb.WorkDone]:
    """Queue items and wait, reporting progress as they finish."""
    if not items:
        return []
    done: list[rpb.WorkDone] = []
    total = sum(len(i.episodes) for i in items)
    if not ctx.work.workers:
        ctx.log("waiting for a rollout worker (agentgym trainer worker --trainer HOST:PORT)", "warning")

    async def one(item: rpb.WorkItem) -> None:
        (result,) = await ctx.work.run([item])
        done.append(result)
        ctx.set_progress(sum(len(d.results) for d in done) / max(1, total))

    await asyncio.gather(*(one(i) for i in items))
    return done


async def evaluate(ctx: JobContext, spec: EvolSpec | RLSpec, infos: dict[str, EnvInfo], k: int,
                   version: str, *, name: str = "iter") -> dict[str, float]:  # fmt: skip
    """Success per env on held-out tasks, greedy. Results are kept in eval/<name>-k.jsonl as they
    come, so a resumed evaluation plays only what is missing."""
    path = ctx.out / "eval" / f"{name}-{k}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    results = _read_results(path)
    episodes = [
        rpb.WorkEpisode(env=e, task_id=t)
        for e in spec.envs
        for t in pool(infos[e], spec.eval_split)[: spec.eval_tasks]
    ]
    todo = [ep for ep in episodes if (ep.env, ep.task_id) not in results]
    items = work_items(ctx, spec, "eval", todo, iteration=None, version=version, temperature=0.0)
    seconds = ctx.state.setdefault("rollout_s", {})

    async def one(item: rpb.WorkItem) -> None:
        (result,) = await ctx.work.run([item])
        seconds[f"eval-{name}-{k}"] = round(seconds.get(f"eval-{name}-{k}", 0.0) + result.seconds, 3)
        with path.open("a") as f:
            for r in result.results:
                row = {"env": r.env, "task_id": r.task_id, "success": r.success,
                       "reward": r.reward if r.HasField("reward") else None, "error": r.error,
                       "weight_versions": list(r.weight_versions)}  # fmt: skip
                f.write(json.dumps(row) + "\n")
                results[(r.env, r.task_id)] = row
        ctx.set_progress(len(results) / max(1, len(episodes)))

    if items and not ctx.work.workers:
        ctx.log("waiting for a rollout worker (agentgym trainer worker --trainer HOST:PORT)", "warning")
    await asyncio.gather(*(one(i) for i in items))
    stale = sum(
        1 for r in results.values() if r["weight_versions"] and set(r["weight_versions"]) != {version}
    )
    if stale:
        raise JobError(f"evaluation of {version}: {stale} episode(s) were played by other weights "
                       "(a policy server serves another version)")  # fmt: skip
    success = {
        e: sum(bool(r["success"]) for r in results.values() if r["env"] == e)
        / max(1, sum(r["env"] == e for r in results.values()))
        for e in spec.envs
    }
    (ctx.out / "eval" / f"{name}-{k}.json").write_text(
        json.dumps({"weight_version": version, "success": success})
    )
    ctx.log(f"evaluated {version}: {_pct(success)}")
    return success


def _read_results(path: Path) -> dict[tuple[str, int], dict[str, Any]]:
    out: dict[tuple[str, int], dict[str, Any]] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue  # a torn last line
            out[(row["env"], row["task_id"])] = row
    return out


# --- report ----------------------------------------------------------------------------------------------
def write_report(out: Path, reports: list[IterationReport], envs: list[str]) -> None:
    (out / "report.json").write_text(json.dumps({"iterations": [asdict(r) for r in reports]}, indent=2))
    (out / "report.md").write_text(report_markdown(reports, envs))
    if reports:
        plot(reports, envs, out / "report.png")


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
