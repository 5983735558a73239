"""`agentgym trainer`: the trainer process, its jobs, and the rollout workers that feed it.

    agentgym trainer serve --dir runs/trainer --port 50060      # store + job runner (one process)
    agentgym trainer worker --trainer 127.0.0.1:50060           # plays the rollouts jobs need
    agentgym trainer submit bc --base init:mini --query iteration=-1 --query env=maze --follow
    agentgym trainer submit evol --envs maze --base init:mini --bc-query iteration=-1 \\
        --policy-url http://127.0.0.1:30000 --env-server 127.0.0.1:50051 --iterations 2 --follow
    agentgym trainer jobs | logs JOB | cancel JOB | stats

`--trainer` defaults to 127.0.0.1:50060 (or $AGENTGYM_TRAINER); grpcs://HOST:PORT for TLS. The
verbs that connect take --tls-ca, --tls-cert/--tls-key and --token-file; `trainer serve` takes the
server's own (--tls-cert/--tls-key, --tls-client-ca, --auth-token-file, --insecure) and, for its
jobs' connections to env and policy servers, --client-tls-ca, --client-tls-cert/--client-tls-key
and --client-token-file (docs/security.md). Each verb is one `add_<verb>`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import grpc
from rich.console import Console
from rich.table import Table

from agentgym.client.cli.common import (
    add_client_security_args,
    add_server_security_args,
    client_security,
    server_security,
)
from agentgym.core.rpc import stub
from agentgym.core.security import ClientSecurity, SecurityError, connect
from agentgym.v1 import trainer_pb2 as rpb
from agentgym.v1 import trajectory_pb2 as tpb

if TYPE_CHECKING:
    from agentgym.trainer.server import TrainerConfig

SERVICE = rpb.DESCRIPTOR.services_by_name["TrainerService"]
STORE = tpb.DESCRIPTOR.services_by_name["TrajectoryService"]
DEFAULT_TRAINER = os.environ.get("AGENTGYM_TRAINER", "127.0.0.1:50060")


def _trainer_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--trainer", default=DEFAULT_TRAINER,
                   help=f"the trainer, HOST:PORT or grpcs://HOST:PORT (default {DEFAULT_TRAINER})")  # fmt: skip
    add_client_security_args(p)


async def call(
    address: str, method: str, request: Any, deadline_s: float = 30.0, security: ClientSecurity | None = None
) -> Any:
    async with connect(address, security) as channel:
        return await stub(channel, SERVICE, method)(request, timeout=deadline_s)


def _fail(verb: str, exc: grpc.aio.AioRpcError, address: str) -> SystemExit:
    return SystemExit(f"agentgym trainer {verb}: {address}: {exc.code().name}: {exc.details()}")


# --- filters and settings, shared by submit and `agentgym train` ----------------------------------------
FILTER_HELP = (
    "KEY=VALUE, repeatable: env (repeat for several), min_reward, max_reward, success (true|false), "
    "iteration (-1: none), weight_version, item_id, since, until (epoch seconds), limit, keep_unrewarded. "
    "A trajectory without a reward matches no reward bound unless keep_unrewarded=true."
)


def parse_filter(items: list[str]) -> tpb.TrajectoryFilter:
    f = tpb.TrajectoryFilter()
    for item in items:
        key, sep, value = item.partition("=")
        try:
            if not sep:
                raise ValueError
            if key == "env":
                f.envs.extend(v for v in value.split(",") if v)
            elif key == "weight_version":
                f.weight_versions.append(value)
            elif key == "item_id":
                f.item_ids.append(value)
            elif key in ("min_reward", "max_reward", "since", "until"):
                setattr(f, key, float(value))
            elif key in ("iteration", "limit"):
                setattr(f, key, int(value))
            elif key in ("success", "keep_unrewarded"):
                if value.lower() not in ("true", "false", "1", "0"):
                    raise ValueError
                setattr(f, key, value.lower() in ("true", "1"))
            else:
                raise ValueError
        except ValueError:
            raise SystemExit(f"bad filter {item!r}: {FILTER_HELP}") from None
    return f


def parse_settings(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"--set {item!r}: expected KEY=VALUE, a BC setting (e.g. lr=1e-5, epochs=2)")
        out[key] = value
    return out


def data_spec(files: list[str], query: list[str], strict: bool) -> rpb.DataSpec:
    spec = rpb.DataSpec(files=[os.path.abspath(f) for f in files], strict=strict)
    if query:
        spec.store.CopyFrom(parse_filter(query))
    return spec


def add_fleet_args(p: argparse.ArgumentParser, *, embedded: bool) -> None:
    """Where a job's rollouts run and how (for evol and rl jobs)."""
    p.add_argument("--policy-url", action="append", default=[],
                   help="policy server(s) to roll out against and publish weights to (repeatable"
                   + ("; default: an hf policy server in this process" if embedded else "") + ")")  # fmt: skip
    p.add_argument("--env-server", action="append", default=[],
                   help="env server(s) HOST:PORT (repeatable" + ("; default 127.0.0.1:50051 or an embedded one"
                                                                 if embedded else "") + ")")  # fmt: skip
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--concurrency", type=int, default=64, help="episodes at once per worker")
    p.add_argument("--seed", type=int, default=0)


def add_evol_args(p: argparse.ArgumentParser, *, embedded: bool) -> None:
    """The evol job's settings (trainer.proto's EvolJob), for `trainer submit evol` and `train evol`."""
    p.add_argument("--envs", required=True, help="comma-separated envs")
    p.add_argument("--base", required=True, help="base model: a directory or hub id, or init:tiny|mini|small")
    p.add_argument(
        "--agent", help="starting agent (a checkpoint); default: train it from --base on the BC data first"
    )
    p.add_argument(
        "--bc-data", action="append", default=[], help="original (expert) trajectory files (repeatable)"
    )
    p.add_argument("--bc-query", action="append", default=[], metavar="KEY=VALUE",
                   help="original trajectories from the trainer's store: " + FILTER_HELP)  # fmt: skip
    p.add_argument(
        "--strict", action="store_true", help="fail on a bad record in --bc-data instead of skipping it"
    )
    p.add_argument("--iterations", type=int, default=1)
    p.add_argument("--explore-episodes", type=int, default=400, help="per iteration, shared between envs")
    p.add_argument("--samples-per-task", type=int, default=1)
    p.add_argument("--explore-temperature", type=float, default=0.7)
    p.add_argument(
        "--eval-tasks", type=int, default=50, help="held-out tasks per env, evaluated after each step"
    )
    p.add_argument("--uniform", action="store_true", help="equal exploration shares (the paper's ablation)")
    add_fleet_args(p, embedded=embedded)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a BC setting for every learn step, e.g. lr=1e-5, epochs=2 (repeatable)")  # fmt: skip
    p.add_argument("--work-chunk", type=int, default=0, help="episodes per work item (default 256)")
    p.add_argument("--nproc", type=int, default=1, help="learning processes (torchrun), one per GPU")


def evol_request(args: argparse.Namespace) -> rpb.SubmitRequest:
    job = rpb.EvolJob(
        envs=[e for e in args.envs.split(",") if e], base=args.base, agent=args.agent or "",
        iterations=args.iterations, explore_episodes=args.explore_episodes, samples_per_task=args.samples_per_task,
        explore_temperature=args.explore_temperature, eval_tasks=args.eval_tasks, uniform=args.uniform,
        policy_urls=[u for us in args.policy_url for u in us.split(",") if u],
        env_servers=[s for ss in args.env_server for s in ss.split(",") if s], max_new_tokens=args.max_new_tokens,
        concurrency=args.concurrency, seed=args.seed, settings=parse_settings(args.set), work_chunk=args.work_chunk,
        nproc=args.nproc,
    )  # fmt: skip
    if args.bc_data or args.bc_query:
        job.bc_data.CopyFrom(data_spec(args.bc_data, args.bc_query, args.strict))
    return rpb.SubmitRequest(evol=job)


def add_rl_args(p: argparse.ArgumentParser, *, embedded: bool) -> None:
    """The rl job's settings (trainer.proto's RLJob), for `trainer submit rl` and `train rl`."""
    p.add_argument("--envs", required=True, help="comma-separated envs")
    p.add_argument("--model", required=True,
                   help="the policy to start from: a checkpoint directory (e.g. a BC model), a hub id, or init:SIZE")  # fmt: skip
    p.add_argument("--algorithm", choices=["grpo", "rloo", "reinforce++"], default="grpo")
    p.add_argument("--steps", type=int, default=10, help="RL steps (roll out, update, publish)")
    p.add_argument("--tasks-per-step", type=int, default=16, help="train tasks per step, shared between envs")
    p.add_argument("--group-size", type=int, default=8, help="episodes per task (the GRPO / RLOO group)")
    p.add_argument("--rounds", default="",
                   help="horizon per stage, e.g. 6,13,20 (ScalingInter-RL) or 20 (fixed); default: the env's own")  # fmt: skip
    p.add_argument("--stage-steps", type=int, default=0, help="RL steps per horizon stage")
    p.add_argument("--overlap", action="store_true",
                   help="roll out step k+1 while step k trains (one version stale) instead of lockstep")  # fmt: skip
    p.add_argument("--stale", choices=["correct", "drop"], default="correct",
                   help="one-version-stale trajectories: train on them (importance-corrected) or drop them")  # fmt: skip
    p.add_argument("--inflight", choices=["finish", "abort"], default="finish",
                   help="episodes in flight when weights are published: finish on the new weights, or abort and replay")  # fmt: skip
    p.add_argument("--temperature", type=float, default=1.0, help="sampling temperature of the rollouts")
    p.add_argument("--eval-tasks", type=int, default=50, help="held-out tasks per env (0: no evaluation)")
    p.add_argument(
        "--eval-every", type=int, default=0, help="evaluate every N steps (0: before and at the end)"
    )
    p.add_argument("--skip-start-eval", action="store_true", help="do not evaluate the starting policy")
    add_fleet_args(p, embedded=embedded)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a learner setting, e.g. lr=1e-6, kl_coef=0.01, clip_high=0.28, mini_batches=2 (repeatable)")  # fmt: skip
    p.add_argument("--work-chunk", type=int, default=0, help="episodes per work item (default 64)")
    p.add_argument("--nproc", type=int, default=1, help="learner processes (torchrun), one per GPU")


def rl_request(args: argparse.Namespace) -> rpb.SubmitRequest:
    try:
        rounds = [int(r) for r in args.rounds.split(",") if r.strip()]
    except ValueError:
        raise SystemExit(f"--rounds {args.rounds!r}: give horizons as numbers, e.g. 6,13,20") from None
    return rpb.SubmitRequest(rl=rpb.RLJob(
        envs=[e for e in args.envs.split(",") if e], model=args.model, algorithm=args.algorithm, steps=args.steps,
        tasks_per_step=args.tasks_per_step, group_size=args.group_size, rounds=rounds, stage_steps=args.stage_steps,
        overlap=args.overlap, stale=args.stale, inflight=args.inflight, temperature=args.temperature,
        max_new_tokens=args.max_new_tokens, eval_tasks=args.eval_tasks, eval_every=args.eval_every,
        policy_urls=[u for us in args.policy_url for u in us.split(",") if u],
        env_servers=[s for ss in args.env_server for s in ss.split(",") if s], concurrency=args.concurrency,
        seed=args.seed, settings=parse_settings(args.set), work_chunk=args.work_chunk, nproc=args.nproc,
        skip_start_eval=args.skip_start_eval,
    ))  # fmt: skip


# --- verbs ---------------------------------------------------------------------------------------------
def add_serve(verbs: argparse._SubParsersAction) -> None:
    from agentgym.trainer.server import DEFAULT_PORT

    p = verbs.add_parser("serve", help="run the trainer: trajectory store, job runner, rollout work",
                         description="Serve TrajectoryService and TrainerService on one port. Trajectories "
                         "pushed to it are acknowledged once fsync'd; jobs run one at a time and resume "
                         "after a restart.")  # fmt: skip
    p.add_argument("--dir", required=True, help="the trainer's folder: store/ and jobs/ (created if missing)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0 picks one)"
    )
    p.add_argument(
        "--segment-mb", type=float, default=256, help="seal a store segment at this size (default 256)"
    )
    p.add_argument(
        "--max-trajectory-mb", type=float, default=64, help="refuse larger trajectories in band (default 64)"
    )
    p.add_argument(
        "--max-in-flight",
        type=int,
        default=4096,
        help="requests one Push stream may have being stored (default 4096)",
    )
    p.add_argument("--max-in-flight-mb", type=float, default=256,
                   help="MiB of pushed trajectories being stored at once, all streams together; beyond it "
                        "streams are not read (default 256)")  # fmt: skip
    p.add_argument("--space-retry", type=float, default=5.0,
                   help="while the disk is full, seconds between checks that space returned (default 5)")  # fmt: skip
    p.add_argument("--grace", type=float, default=5.0, help="seconds streams get on shutdown (default 5)")
    p.add_argument("--max-batch", type=int, default=4096,
                   help="trajectories per group commit (one write + fsync); 1 = one fsync each (default 4096)")  # fmt: skip
    p.add_argument("--no-jobs", action="store_true", help="store only: do not run jobs")
    p.add_argument("--metrics-port", type=int, default=None,
                   help="serve Prometheus metrics at http://HOST:N/metrics (0: a free port; docs/metrics.md)")  # fmt: skip
    add_server_security_args(p)
    add_client_security_args(p, prefix="client-")
    p.set_defaults(func=run_serve)


def serve_config(args: argparse.Namespace) -> TrainerConfig:
    """The trainer's settings from `trainer serve` flags; SystemExit naming a bad one."""
    from agentgym.core.metrics import check_port
    from agentgym.trainer.server import TrainerConfig
    from agentgym.trainer.service import IngestConfig

    config = TrainerConfig(
        dir=args.dir, host=args.host, port=args.port, segment_bytes=int(args.segment_mb * (1 << 20)),
        ingest=IngestConfig(
            max_trajectory_bytes=int(args.max_trajectory_mb * (1 << 20)), max_in_flight=args.max_in_flight,
            max_in_flight_bytes=int(args.max_in_flight_mb * (1 << 20)), space_retry_s=args.space_retry,
        ), grace_s=args.grace,
        max_batch=args.max_batch, run_jobs=not args.no_jobs, metrics_port=args.metrics_port,
        security=server_security(args), client=client_security(args, prefix="client-"),
    )  # fmt: skip
    try:
        check_port(args.metrics_port)
        config.ingest.validate()
    except ValueError as exc:
        raise SystemExit(f"agentgym trainer serve: {exc}") from None
    return config


def run_serve(args: argparse.Namespace) -> int:
    from agentgym.trainer.server import serve
    from agentgym.trainer.store import StoreError

    config = serve_config(args)
    try:
        serve(config)
    except (StoreError, OSError, SecurityError) as exc:
        raise SystemExit(f"agentgym trainer serve: {exc}") from None
    return 0


def add_submit(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser("submit", help="queue a job (bc, evol or rl) on the trainer")
    kinds = p.add_subparsers(dest="kind", required=True, metavar="JOB")
    bc = kinds.add_parser("bc", help="behaviour cloning from files and/or the trainer's store")
    _trainer_arg(bc)
    bc.add_argument("--base", required=True, help="model directory or hub id, or init:tiny|mini|small")
    bc.add_argument(
        "--data", action="append", default=[], help="trajectory files on the trainer's disk (repeatable)"
    )
    bc.add_argument("--query", action="append", default=[], metavar="KEY=VALUE",
                    help="trajectories from the trainer's store: " + FILTER_HELP)  # fmt: skip
    bc.add_argument(
        "--strict", action="store_true", help="fail on a bad record in --data instead of skipping it"
    )
    bc.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="a BC setting (repeatable)"
    )
    bc.add_argument("--policy-url", action="append", default=[], help="policy servers that load the result")
    bc.add_argument("--weight-version", default="", help="the version to publish under (default: the job id)")
    bc.add_argument("--nproc", type=int, default=1)
    bc.add_argument("--follow", action="store_true", help="follow the job's log until it ends")
    bc.set_defaults(func=run_submit)
    evol = kinds.add_parser("evol", help="AgentEvol: explore, filter, learn from base, publish, evaluate")
    _trainer_arg(evol)
    add_evol_args(evol, embedded=False)
    evol.add_argument("--follow", action="store_true", help="follow the job's log until it ends")
    evol.set_defaults(func=run_submit)
    rl = kinds.add_parser("rl", help="multi-turn RL (GRPO, RLOO, REINFORCE++) with a horizon schedule")
    _trainer_arg(rl)
    add_rl_args(rl, embedded=False)
    rl.add_argument("--follow", action="store_true", help="follow the job's log until it ends")
    rl.set_defaults(func=run_submit)


def run_submit(args: argparse.Namespace) -> int:
    if args.kind == "bc":
        request = rpb.SubmitRequest(bc=rpb.BCJob(
            base=args.base, data=data_spec(args.data, args.query, args.strict), settings=parse_settings(args.set),
            policy_urls=[u for us in args.policy_url for u in us.split(",") if u],
            weight_version=args.weight_version, nproc=args.nproc,
        ))  # fmt: skip
    elif args.kind == "rl":
        request = rl_request(args)
    else:
        request = evol_request(args)
    security = client_security(args)
    try:
        job = asyncio.run(call(args.trainer, "Submit", request, security=security))
    except grpc.aio.AioRpcError as exc:
        raise _fail("submit", exc, args.trainer) from None
    print(f"{job.id} {rpb.JobState.Name(job.state)} ({job.out})", flush=True)
    return follow(args.trainer, job.id, security=security) if args.follow else 0


async def watch(
    address: str, job_id: str, console: Console, security: ClientSecurity | None = None
) -> rpb.Job:
    """Print a job's events as they come, until it ends; returns the ended job."""
    async with connect(address, security) as channel:
        async for e in stub(channel, SERVICE, "Watch")(rpb.WatchRequest(id=job_id)):
            stamp = time.strftime("%H:%M:%S", time.localtime(e.time))
            style = {"warning": "yellow", "error": "red"}.get(e.level, "default")
            progress = f" [{e.progress:.0%}]" if 0 < e.progress < 1 else ""
            console.print(
                f"[dim]{stamp}[/dim] {job_id}: [{style}]{e.message}[/{style}]{progress}", highlight=False
            )
        return await stub(channel, SERVICE, "GetJob")(rpb.GetJobRequest(id=job_id))  # type: ignore[no-any-return]


def follow(
    address: str, job_id: str, console: Console | None = None, security: ClientSecurity | None = None
) -> int:
    """Print a job's events until it ends; 0 if it succeeded."""
    try:
        job = asyncio.run(watch(address, job_id, console or Console(), security))
    except grpc.aio.AioRpcError as exc:
        raise _fail("logs", exc, address) from None
    return 0 if job.state == rpb.SUCCEEDED else 1


def add_jobs(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser("jobs", help="list the trainer's jobs")
    _trainer_arg(p)
    p.set_defaults(func=run_jobs)


def run_jobs(args: argparse.Namespace) -> int:
    try:
        request = rpb.ListJobsRequest()
        reply = asyncio.run(call(args.trainer, "ListJobs", request, security=client_security(args)))
    except grpc.aio.AioRpcError as exc:
        raise _fail("jobs", exc, args.trainer) from None
    table = Table(title=f"Jobs on {args.trainer}")
    for col in ("id", "kind", "state", "step", "progress", "weight version", "created", "error"):
        table.add_column(col, no_wrap=col in ("id", "kind", "state", "progress", "weight version", "created"))
    for j in reply.jobs:
        table.add_row(j.id, j.kind, rpb.JobState.Name(j.state), j.step, f"{j.progress:.0%}" if j.step else "",
                      j.weight_version, time.strftime("%m-%d %H:%M", time.localtime(j.created)), j.error[:60])  # fmt: skip
    Console().print(table)
    return 0


def add_logs(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser("logs", help="a job's log and progress, followed until it ends")
    _trainer_arg(p)
    p.add_argument("job")
    p.set_defaults(func=lambda args: follow(args.trainer, args.job, security=client_security(args)))


def add_cancel(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser("cancel", help="cancel a queued or running job")
    _trainer_arg(p)
    p.add_argument("job")
    p.set_defaults(func=run_cancel)


def run_cancel(args: argparse.Namespace) -> int:
    try:
        request = rpb.CancelRequest(id=args.job)
        job = asyncio.run(call(args.trainer, "Cancel", request, security=client_security(args)))
    except grpc.aio.AioRpcError as exc:
        raise _fail("cancel", exc, args.trainer) from None
    print(f"{job.id} {rpb.JobState.Name(job.state)}")
    return 0


def add_worker(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser("worker", help="a rollout worker: plays the rollouts the trainer's jobs need")
    _trainer_arg(p)
    p.add_argument("--env-server", action="append", default=[],
                   help="env server(s) to play on, overriding the jobs' (repeatable)")  # fmt: skip
    p.add_argument("--name", help="a name for the trainer's logs (default host:pid)")
    p.set_defaults(func=run_worker)


def run_worker(args: argparse.Namespace) -> int:
    from agentgym.client.worker import RolloutWorker

    worker = RolloutWorker(args.trainer, env_servers=[s for ss in args.env_server for s in ss.split(",") if s],
                           name=args.name, security=client_security(args))  # fmt: skip
    print(f"rollout worker {worker.name} taking work from {args.trainer}", flush=True)
    asyncio.run(worker.run())
    return 0


def add_stats(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser("stats", help="what the trajectory store holds")
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--dir", help="a trainer's folder (its store is opened read-only; works while it runs)"
    )
    where.add_argument(
        "--trainer", default=DEFAULT_TRAINER, help="a running trainer, HOST:PORT or grpcs://HOST:PORT"
    )
    add_client_security_args(p)
    p.set_defaults(func=run_stats)


def run_stats(args: argparse.Namespace) -> int:
    console = Console()
    if args.dir:
        from pathlib import Path

        from agentgym.trainer.service import stats_to_proto
        from agentgym.trainer.store import StoreError, TrajectoryStore

        try:
            with TrajectoryStore.open(Path(args.dir) / "store", readonly=True) as store:
                stats = stats_to_proto(store.stats())
        except StoreError as exc:
            raise SystemExit(f"agentgym trainer stats: {exc}") from None
    else:

        async def remote() -> tpb.StatsResponse:
            async with connect(args.trainer, client_security(args)) as channel:
                return await stub(channel, STORE, "Stats")(tpb.StatsRequest(), timeout=10)  # type: ignore[no-any-return]

        try:
            stats = asyncio.run(remote())
        except grpc.aio.AioRpcError as exc:
            raise _fail("stats", exc, args.trainer) from None
    print_stats(console, stats, live=not args.dir)
    return 0


def print_stats(console: Console, s: tpb.StatsResponse, live: bool = False) -> None:
    def rate(n: int, of: int) -> str:
        return f"{n / of:.1%}" if of else "-"

    envs = Table(title=f"Trajectory store {s.path}")
    for col in ("env", "trajectories", "successes", "success", "mean reward"):
        envs.add_column(col, justify="left" if col == "env" else "right")
    for e in s.envs:
        envs.add_row(e.env or "?", str(e.trajectories), str(e.successes), rate(e.successes, e.trajectories),
                     f"{e.mean_reward:.3f}")  # fmt: skip
    envs.add_row(
        "total", str(s.trajectories), str(s.successes), rate(s.successes, s.trajectories), "", style="bold"
    )
    console.print(envs)
    if any(it.HasField("iteration") for it in s.iterations):
        its = Table(title="Per iteration")
        for col in ("iteration", "trajectories", "successes", "success", "mean reward"):
            its.add_column(col, justify="right")
        for it in s.iterations:
            label = str(it.iteration) if it.HasField("iteration") else "none"
            its.add_row(label, str(it.trajectories), str(it.successes), rate(it.successes, it.trajectories),
                        f"{it.mean_reward:.3f}")  # fmt: skip
        console.print(its)
    console.print(
        f"{len(s.segments)} segment(s), {s.bytes / (1 << 20):.1f} MiB; corrupt lines skipped: {s.corrupt_lines}"
        + (f"; since start: {s.duplicates} duplicates, {s.rejected} refused" if live else "")
    )


VERBS: list[Callable[[argparse._SubParsersAction], None]] = [
    add_serve, add_worker, add_submit, add_jobs, add_logs, add_cancel, add_stats,
]  # fmt: skip


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("trainer", help="the trainer process, its jobs and rollout workers", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    verbs = p.add_subparsers(dest="verb", required=True, metavar="VERB")
    for add in VERBS:
        add(verbs)
