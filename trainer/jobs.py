"""The trainer's job runner: jobs queue, run one at a time, log their progress, survive restarts.

    runner = JobRunner(Path("runs/trainer/jobs"), store, work_queue)
    runner.start()                          # runs queued jobs, oldest first, one at a time
    job = runner.submit(spec)               # BCSpec | EvolSpec (trainer/specs.py)
    async for event in runner.watch(job.id): ...

A job is a folder, `jobs/<id>/`:
    job.json       what `ListJobs` shows (state, step, progress, error, result), rewritten atomically
    events.jsonl   its log, one event a line (what `agentgym trainer logs` follows)
    state.json     the steps it completed and what each produced: a restarted trainer resumes a
                   RUNNING job here, skipping completed steps (`JobContext.step`)
    ...            what its steps write (models, reports)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from agentgym.core.security import ClientSecurity, default_client
from agentgym.core.weights import WeightsError, load_weights
from agentgym.trainer.bc import BCConfig
from agentgym.trainer.learn import LearnFailed, learn
from agentgym.trainer.specs import BCSpec, EvolSpec, RLSpec, Spec, spec_from_json, spec_to_json
from agentgym.trainer.store import TrajectoryStore
from agentgym.trainer.work import WorkFailed, WorkQueue
from agentgym.v1 import trainer_pb2 as rpb

log = logging.getLogger(__name__)

ENDED = frozenset({"SUCCEEDED", "FAILED", "CANCELLED"})
# Learn steps checkpoint this often (in optimizer steps) unless the spec says otherwise, so a
# trainer killed mid-learning resumes close to where it was.
SAVE_EVERY = 50


class JobError(Exception):
    """A job cannot continue; its message becomes the job's `error`."""


class UnknownJob(KeyError):
    pass


class JobEnded(ValueError):
    pass


def _write_json(path: Path, value: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(value, indent=1))
    tmp.replace(path)


@dataclass
class Job:
    id: str
    kind: str
    spec_json: str
    out: str
    state: str = "QUEUED"
    step: str = ""
    progress: float = 0.0
    error: str = ""
    created: float = 0.0
    started: float = 0.0
    ended: float = 0.0
    result_json: str = ""
    weight_version: str = ""

    def to_proto(self) -> rpb.Job:
        return rpb.Job(
            id=self.id, kind=self.kind, state=rpb.JobState.Value(self.state), spec_json=self.spec_json,
            out=self.out, step=self.step, progress=self.progress, error=self.error, created=self.created,
            started=self.started, ended=self.ended, result_json=self.result_json,
            weight_version=self.weight_version,
        )  # fmt: skip

    @property
    def spec(self) -> Spec:
        return spec_from_json(self.kind, self.spec_json)


class JobContext:
    """What a running job uses: its folder, the store, the work queue, its log and its steps."""

    def __init__(self, runner: JobRunner, job: Job) -> None:
        self.runner = runner
        self.job = job
        self.out = Path(job.out)
        self.store = runner.store
        self.work = runner.work
        self.client = runner.client  # how the job connects to env and policy servers
        self._state_path = self.out / "state.json"
        self.state: dict[str, Any] = (
            json.loads(self._state_path.read_text()) if self._state_path.exists() else {"steps": {}}
        )

    def log(self, message: str, level: str = "info", **fields: Any) -> None:
        self.runner.event(self.job, message, level)
        getattr(log, "warning" if level == "warning" else level)(
            message, extra={"job": self.job.id, **fields}
        )

    def set_step(self, step: str, progress: float = 0.0) -> None:
        self.job.step, self.job.progress = step, progress
        self.runner.save(self.job)
        self.log(step)

    def set_progress(self, progress: float) -> None:
        self.job.progress = max(0.0, min(1.0, progress))
        self.runner.save(self.job)

    async def step(self, name: str, label: str, run: Callable[[], Awaitable[Any]]) -> Any:
        """Run a step once: its result (JSON) is kept in state.json, and a resumed job gets it back
        without running it again."""
        steps = self.state["steps"]
        if name in steps:
            return steps[name]
        self.set_step(label)
        start = time.time()
        value = await run()
        steps[name] = value
        # When each step ran (a resumed step: its last run), for reports and bench/evol_overhead.py.
        self.state.setdefault("timing", {})[name] = [round(start, 3), round(time.time(), 3)]
        self.save_state()
        return value

    def iteration_base(self) -> int:
        """Where this job's iterations start in the store. Jobs share one store, whose keys carry
        the iteration: a job's step k is stored as iteration base + k, base being past every
        iteration stored or reserved by an earlier job, so a second job never mistakes the first
        one's trajectories for its own. Chosen once, when the job first runs, and kept."""
        if "iteration_base" not in self.state:
            stored = [k for k in self.store.stats().per_iteration if k is not None]
            reserved = [
                self.runner.reserved_iterations(j) for j in self.runner.jobs.values() if j.id != self.job.id
            ]
            self.state["iteration_base"] = max([-1, *stored, *reserved]) + 1
            self.save_state()
        base: int = self.state["iteration_base"]
        return base

    def save_state(self) -> None:
        """Write state.json now (a job keeping its own records in `state` between steps)."""
        _write_json(self._state_path, self.state)

    def bc_config(self, base: str, data: list[dict[str, Any]], out: Path, settings: dict[str, Any],
                  strict: bool) -> BCConfig:  # fmt: skip
        init = base[len("init:") :] if base.startswith("init:") else None
        return BCConfig(
            data=data, out=str(out), model=None if init else base, init=init, strict=strict,
            progress=False, resume=True, **{"save_every": SAVE_EVERY, **settings},
        )  # fmt: skip

    async def learn(self, cfg: BCConfig, nproc: int) -> dict[str, Any]:
        def progress(step: int, total: int, loss: float) -> None:
            self.set_progress(step / max(1, total))
            if step == total or step % max(1, total // 10) == 0:
                self.log(f"learn: step {step}/{total}, loss {loss:.4f}")

        try:
            return await learn(cfg, nproc=nproc, on_progress=progress)
        except LearnFailed as exc:
            raise JobError(str(exc)) from None

    async def publish(self, urls: list[str], path: str, version: str,
                      previous: tuple[str, str] | None) -> str:  # fmt: skip
        if not urls:
            return version
        try:
            await load_weights(urls, path, version, previous=previous, security=self.client)
        except WeightsError as exc:
            raise JobError(f"publishing {version}: {exc}") from None
        self.job.weight_version = version
        self.runner.save(self.job)
        self.log(f"published {version} to {len(urls)} policy server(s)")
        return version


JobFn = Callable[[JobContext, Any], Awaitable[dict[str, Any]]]


async def run_bc(ctx: JobContext, spec: BCSpec) -> dict[str, Any]:
    """A BC job: learn, then (when policy servers are named) publish."""
    cfg = ctx.bc_config(spec.base, spec.data.sources(str(ctx.store.path)), ctx.out / "model", spec.settings,
                        spec.data.strict)  # fmt: skip
    result: dict[str, Any] = await ctx.step("learn", "learn", lambda: ctx.learn(cfg, spec.nproc))
    version = spec.weight_version or ctx.job.id
    await ctx.step(
        "publish", "publish", lambda: ctx.publish(spec.policy_urls, result["final"], version, None)
    )
    return result


def _job_functions() -> dict[str, JobFn]:
    from agentgym.trainer.evol import run_evol
    from agentgym.trainer.rl import run_rl

    return {"bc": run_bc, "evol": run_evol, "rl": run_rl}  # type: ignore[dict-item]


class JobRunner:
    def __init__(self, folder: Path, store: TrajectoryStore, work: WorkQueue,
                 client: ClientSecurity | None = None) -> None:  # fmt: skip
        self.folder = folder
        self.store = store
        self.work = work
        self.client = client or default_client()
        self.jobs: dict[str, Job] = {}
        self._events: dict[str, list[dict[str, Any]]] = {}
        self._changed: dict[str, asyncio.Event] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._running: tuple[str, asyncio.Task[dict[str, Any]]] | None = None
        self._stopping = False
        folder.mkdir(parents=True, exist_ok=True)
        self._load()

    def reserved_iterations(self, job: Job) -> int:
        """The last store iteration a job may use (-1: none): its base plus its planned steps."""
        path = Path(job.out) / "state.json"
        try:
            base = json.loads(path.read_text()).get("iteration_base")
        except (OSError, ValueError):
            return -1
        if base is None:
            return -1
        spec = job.spec
        steps = getattr(spec, "steps", None) or getattr(spec, "iterations", 0)
        return int(base) + int(steps)

    # --- persistence -----------------------------------------------------------------------------
    def _load(self) -> None:
        for path in sorted(self.folder.glob("job-*/job.json")):
            job = Job(**json.loads(path.read_text()))
            if job.state == "RUNNING":
                job.state = "QUEUED"  # the trainer stopped mid-job: it resumes from its last step
                job.step = "resuming"
            self.jobs[job.id] = job
            events = path.with_name("events.jsonl")
            self._events[job.id] = (
                [json.loads(line) for line in events.read_text().splitlines() if line.strip()]
                if events.exists()
                else []
            )
        if any(j.state == "QUEUED" for j in self.jobs.values()):
            log.info(
                "jobs to resume or start",
                extra={"jobs": [j.id for j in self.jobs.values() if j.state == "QUEUED"]},
            )

    def save(self, job: Job) -> None:
        _write_json(Path(job.out) / "job.json", asdict(job))

    def event(self, job: Job, message: str, level: str = "info") -> None:
        events = self._events.setdefault(job.id, [])
        event = {"seq": len(events) + 1, "time": round(time.time(), 3), "level": level, "message": message,
                 "step": job.step, "progress": round(job.progress, 4), "state": job.state}  # fmt: skip
        events.append(event)
        with (Path(job.out) / "events.jsonl").open("a") as f:
            f.write(json.dumps(event) + "\n")
        self._notify(job.id)

    def _notify(self, job_id: str) -> None:
        ev = self._changed.pop(job_id, None)
        if ev is not None:
            ev.set()

    # --- the API ------------------------------------------------------------------------------------
    def submit(self, spec: Spec) -> Job:
        n = max((int(j.id.split("-")[1]) for j in self.jobs.values()), default=0) + 1
        job_id = f"job-{n:06d}"
        out = self.folder / job_id
        out.mkdir(parents=True)
        job = Job(id=job_id, kind=spec.kind, spec_json=spec_to_json(spec), out=str(out), created=time.time())
        self.jobs[job_id] = job
        self.save(job)
        self.event(job, f"submitted ({spec.kind})")
        self._wake.set()
        return job

    def get(self, job_id: str) -> Job:
        job = self.jobs.get(job_id)
        if job is None:
            raise UnknownJob(f"no job {job_id!r}; the trainer has {', '.join(sorted(self.jobs)) or 'none'}")
        return job

    def cancel(self, job_id: str) -> Job:
        job = self.get(job_id)
        if job.state in ENDED:
            raise JobEnded(f"job {job_id} has already ended ({job.state})")
        if self._running is not None and self._running[0] == job_id:
            self._running[1].cancel()  # the run loop marks it CANCELLED
        else:
            self._end(job, "CANCELLED", error="cancelled before it started")
        return job

    def retarget(self, job_id: str, policy_urls: list[str], env_servers: list[str]) -> None:
        """Point a queued evol or rl job at other policy and env servers (an embedded run that
        resumes a job gets new ports). Only before the runner starts."""
        job = self.get(job_id)
        spec = job.spec
        assert isinstance(spec, EvolSpec | RLSpec) and job.state == "QUEUED"
        spec.policy_urls, spec.env_servers = policy_urls, env_servers
        job.spec_json = spec_to_json(spec)
        self.save(job)

    async def watch(self, job_id: str, after: int = 0) -> AsyncIterator[dict[str, Any]]:
        job = self.get(job_id)
        sent = after
        while True:
            events = self._events.get(job_id, [])
            while sent < len(events):  # the list may grow while an event is being sent
                yield events[sent]
                sent += 1
            if job.state in ENDED:
                return
            ev = self._changed.setdefault(job_id, asyncio.Event())
            await ev.wait()

    # --- running -------------------------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="job-runner")

    async def stop(self) -> None:
        """Stop running jobs without ending them: a running job stays RUNNING on disk and resumes
        when the trainer starts again."""
        self._stopping = True
        if self._running is not None:
            self._running[1].cancel()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        functions = _job_functions()
        while True:
            queued = sorted((j for j in self.jobs.values() if j.state == "QUEUED"), key=lambda j: j.id)
            if not queued:
                self._wake.clear()
                await self._wake.wait()
                continue
            job = queued[0]
            job.state, job.started = "RUNNING", job.started or time.time()
            self.save(job)
            ctx = JobContext(self, job)
            ctx.log("started" if job.step != "resuming" else "resumed from its last completed step")
            task = asyncio.create_task(functions[job.kind](ctx, job.spec), name=job.id)
            self._running = (job.id, task)
            try:
                result = await asyncio.shield(task)
            except asyncio.CancelledError:
                if self._stopping:
                    raise
                self._end(job, "CANCELLED", error="cancelled")
            except (JobError, WorkFailed) as exc:
                self._end(job, "FAILED", error=str(exc))
            except Exception as exc:  # a bug in a job must not stop the runner
                log.exception("job raised", extra={"job": job.id})
                self._end(job, "FAILED", error=f"{type(exc).__name__}: {exc}")
            else:
                job.result_json = json.dumps(result)
                self._end(job, "SUCCEEDED")
            finally:
                self._running = None

    def _end(self, job: Job, state: str, error: str = "") -> None:
        job.state, job.error, job.ended = state, error, time.time()
        job.step = ""
        if state == "SUCCEEDED":
            job.progress = 1.0
        self.save(job)
        self.event(
            job, state.lower() + (f": {error}" if error else ""), "error" if state == "FAILED" else "info"
        )
        log.info("job ended", extra={"job": job.id, "state": state, "error": error})
