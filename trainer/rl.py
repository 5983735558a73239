"""Multi-turn RL as a trainer job: GRPO, RLOO or REINFORCE++, with ScalingInter-RL's horizon schedule.

    agentgym trainer submit rl --envs maze --model runs/bc/final --policy-url http://127.0.0.1:30000 \\
        --env-server 127.0.0.1:50051 --steps 30 --tasks-per-step 16 --group-size 8 --rounds 6,10,15 --stage-steps 10

Reading `run_rl` top to bottom, every step a `JobContext.step` (done once, resumable):
0. the learner process starts (trainer/rl_learn.py) and saves the starting policy as a model
   directory; it is published to the policy servers as "<job>.step-0" and evaluated on held-out
   tasks (greedy, the env's full horizon);
then for RL step k = 0..N-1:
1. rollout-k: `tasks_per_step` train tasks, drawn anew, each played `group_size` times with
   sampling, under the horizon of step k's stage (`RLSpec.horizon`: the env servers truncate at
   it); every trajectory streams into the store with iteration base + k (each job has its own
   range of the store's iterations: JobContext.iteration_base);
2. learn-k: the learner reads that iteration from the store, keeps what is fresh enough (the weight
   versions on every trajectory), and makes one update: policy/step-(k+1);
3. publish-(k+1): every policy server loads it as "<job>.step-(k+1)" (all or none);
4. eval-(k+1) every `eval_every` steps and at the end; a metrics row goes to metrics.jsonl and
   report.json / report.md / report.png.
Overlapped mode starts rollout-(k+1) as soon as rollout-k is done, so it runs while step k learns
and publishes; it plays on the weights of step k (one version stale) until the publish, then
either goes on with the new weights or abandons and replays the episodes that straddle it
(`inflight`). Lockstep mode runs the three in turn.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from typing import Any

from agentgym.core.envinfo import EnvInfo
from agentgym.trainer.evol import episode_key, evaluate, hosted_envs, pool, run_items, work_items
from agentgym.trainer.jobs import JobContext, JobError
from agentgym.trainer.rl_learn import LearnerError, LearnerProcess, RLConfig
from agentgym.trainer.rl_report import write_rl_report
from agentgym.trainer.specs import RLSpec
from agentgym.trainer.store import Query
from agentgym.v1 import trainer_pb2 as rpb

# An episode abandoned because the weights changed under it (inflight="abort") is played again at
# most this many times.
ABORT_RETRIES = 3
# How a worker reports such an episode (trainer.proto, WorkItem.abort_on_update).
ABORTED = "WeightsChanged:"


def learner_config(ctx: JobContext, spec: RLSpec) -> RLConfig:
    init = spec.model[len("init:") :] if spec.model.startswith("init:") else None
    settings = {"seed": spec.seed, **spec.settings}
    return RLConfig(
        out=str(ctx.out / "learner"), model=None if init else spec.model, init=init,
        algorithm=spec.algorithm, temperature=spec.temperature, **settings,
    )  # fmt: skip


async def run_rl(ctx: JobContext, spec: RLSpec) -> dict[str, Any]:
    infos = await hosted_envs(spec.envs, spec.env_servers, ctx.client)
    urls = spec.policy_urls
    learner = LearnerProcess(learner_config(ctx, spec), spec.nproc)

    def version(k: int) -> str:
        return f"{ctx.job.id}.step-{k}"

    try:
        try:
            await learner.start()
        except LearnerError as exc:
            raise JobError(str(exc)) from None
        # --- the starting policy ---------------------------------------------------------------------
        await ctx.step("publish-0", "publish the starting policy",
                       lambda: ctx.publish(urls, str(learner.policy(0)), version(0), None))  # fmt: skip
        before: dict[str, float] = {}
        if spec.eval_tasks and not spec.skip_start_eval:
            before = await ctx.step("eval-0", "evaluate the starting policy",
                                    lambda: evaluate(ctx, spec, infos, 0, version(0), name="step"))  # fmt: skip
        rows: list[dict[str, Any]] = ctx.state.setdefault("rows", [])

        # --- RL steps -----------------------------------------------------------------------------------
        pending: asyncio.Task[dict[str, Any]] | None = None
        try:
            for k in range(len(rows), spec.steps):
                started = time.time()
                rolled = await (pending if pending is not None else rollout(ctx, spec, infos, k, version(k)))
                pending = None
                if spec.overlap and k + 1 < spec.steps:  # the next batch plays while this one learns
                    pending = asyncio.create_task(rollout(ctx, spec, infos, k + 1, version(k)))
                learned = await ctx.step(f"learn-{k}", f"step {k + 1}/{spec.steps}: learn",
                                         lambda k=k: _learn(learner, spec, ctx, k, version))  # fmt: skip
                t_sync = time.time()
                await ctx.step(f"publish-{k + 1}", f"step {k + 1}/{spec.steps}: publish",
                               lambda k=k, learned=learned: ctx.publish(
                                   urls, learned["model"], version(k + 1), (str(learner.policy(k)), version(k))))  # fmt: skip
                sync_s = time.time() - t_sync
                after, eval_s = None, 0.0
                if spec.eval_tasks and (
                    (spec.eval_every and (k + 1) % spec.eval_every == 0) or k + 1 == spec.steps
                ):
                    t_eval = time.time()
                    after = await ctx.step(f"eval-{k + 1}", f"step {k + 1}/{spec.steps}: evaluate",
                                           lambda k=k: evaluate(ctx, spec, infos, k + 1, version(k + 1), name="step"))  # fmt: skip
                    eval_s = time.time() - t_eval
                row = _row(
                    spec, k, version(k + 1), rolled, learned, sync_s, eval_s, time.time() - started, after
                )
                if k == 0 and before:
                    row["eval_before"] = before
                rows.append(row)
                ctx.save_state()
                await asyncio.to_thread(_write_rows, ctx, rows, spec.envs)
                ctx.log(_summary(row))
        finally:
            if pending is not None:
                pending.cancel()
    except asyncio.CancelledError:
        learner.kill()
        raise
    finally:
        await learner.stop()
    last_eval = next((r["eval_success"] for r in reversed(rows) if r.get("eval_success")), None)
    return {"model": str(learner.policy(spec.steps)), "weight_version": version(spec.steps),
            "success_before": before, "success": last_eval, "steps": rows}  # fmt: skip


async def _learn(
    learner: LearnerProcess, spec: RLSpec, ctx: JobContext, k: int, version: Any
) -> dict[str, Any]:
    # Which weight versions may be in step k's batch, and how stale each is: lockstep rollouts of
    # step k use version k only; overlapped ones start on version k-1 (and may finish on k).
    allowed = {version(k): 0}
    if spec.overlap and k > 0:
        allowed[version(k - 1)] = 1
    request = {
        "step": k,
        "sources": [
            {"path": str(ctx.store.path), "query": {"iteration": ctx.iteration_base() + k, "env": spec.envs}}
        ],
        "allowed": allowed,
        "stale": spec.stale,
    }
    try:
        return await learner.update(k, request)
    except LearnerError as exc:
        raise JobError(str(exc)) from None


async def rollout(
    ctx: JobContext, spec: RLSpec, infos: dict[str, EnvInfo], k: int, version: str
) -> dict[str, Any]:
    return await ctx.step(f"rollout-{k}", f"step {k + 1}/{spec.steps}: roll out (horizon {spec.horizon(k) or 'env default'})",
                          lambda: _play(ctx, spec, infos, k, version))  # fmt: skip


def plan(spec: RLSpec, infos: dict[str, EnvInfo], k: int) -> list[rpb.WorkEpisode]:
    """Step k's episodes: tasks drawn from each env's train split (shared evenly), each played
    `group_size` times (samples 0..n-1). The same for a seed and step, so a resumed step plays
    the same batch."""
    rng = random.Random(spec.seed * 7919 + k)
    per_env = [spec.tasks_per_step // len(spec.envs) + (i < spec.tasks_per_step % len(spec.envs))
               for i in range(len(spec.envs))]  # fmt: skip
    episodes = []
    for env, count in zip(spec.envs, per_env, strict=True):
        tasks = pool(infos[env], spec.train_split)
        for task in sorted(rng.sample(tasks, min(count, len(tasks)))):
            episodes += [rpb.WorkEpisode(env=env, task_id=task, sample=s) for s in range(spec.group_size)]
    return episodes


async def _play(
    ctx: JobContext, spec: RLSpec, infos: dict[str, EnvInfo], k: int, version: str
) -> dict[str, Any]:
    started = time.time()
    episodes = plan(spec, infos, k)
    it = ctx.iteration_base() + k  # jobs share the store: see JobContext.iteration_base
    stored = {e.id for e in ctx.store.select(Query.of(iteration=it))}
    todo = [ep for ep in episodes if episode_key(ep, it) not in stored]
    abort = spec.inflight == "abort"
    failed, aborted, played, seconds = 0, 0, 0, 0.0
    for attempt in range(ABORT_RETRIES + 1):
        if not todo:
            break
        items = work_items(ctx, spec, "explore", todo, iteration=it, version=version, temperature=spec.temperature,
                           max_steps=spec.horizon(k), abort_on_update=abort)  # fmt: skip
        dones = await run_items(ctx, items)
        played += len(todo)
        seconds += sum(d.seconds for d in dones)
        again = {
            (r.env, r.task_id, r.sample) for d in dones for r in d.results if r.error.startswith(ABORTED)
        }
        aborted += len(again)
        failed += sum(1 for d in dones for r in d.results if r.error and not r.error.startswith(ABORTED))
        todo = (
            [ep for ep in todo if (ep.env, ep.task_id, ep.sample) in again] if attempt < ABORT_RETRIES else []
        )
    if failed:
        ctx.log(f"rollout {k}: {failed} episode(s) failed (see the worker's log); the step learns from the rest",
                "warning")  # fmt: skip
    return {"planned": len(episodes), "played": played, "failed": failed, "aborted": aborted,
            "horizon": spec.horizon(k), "rollout_s": round(time.time() - started, 3),
            "worker_s": round(seconds, 3)}  # fmt: skip


def _row(spec: RLSpec, k: int, version: str, rolled: dict[str, Any], learned: dict[str, Any], sync_s: float,
         eval_s: float, wall_s: float, after: dict[str, float] | None) -> dict[str, Any]:  # fmt: skip
    row = {"step": k, "horizon": rolled["horizon"], "weight_version": version, **learned,
           "failed": rolled["failed"], "aborted": rolled["aborted"], "rollout_s": rolled["rollout_s"],
           "sync_s": round(sync_s, 3), "eval_s": round(eval_s, 3), "wall_s": round(wall_s, 3),
           "rollout_tokens_per_s": round(learned.get("generated_tokens", 0) / max(rolled["rollout_s"], 1e-9), 1),
           "eval_success": after}  # fmt: skip
    return row


def _summary(row: dict[str, Any]) -> str:
    text = (f"step {row['step'] + 1}: reward {row['reward_mean']:.3f}, success {row['success']:.1%}, "
            f"rounds {row['rounds_mean']:.1f} (horizon {row['horizon'] or 'default'}), "
            f"clip {row['clip_frac']:.3f}, entropy {row['entropy']:.3f}; rollout {row['rollout_s']:.0f}s, "
            f"learn {row['learn_s']:.0f}s, sync {row['sync_s']:.1f}s")  # fmt: skip
    if row.get("eval_success"):
        text += "; held-out " + ", ".join(f"{e} {v:.1%}" for e, v in row["eval_success"].items())
    return text


def _write_rows(ctx: JobContext, rows: list[dict[str, Any]], envs: list[str]) -> None:
    with (ctx.out / "metrics.jsonl").open("w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    write_rl_report(ctx.out, rows, envs)
