"""The rollout engine: thousands of episodes at once, written as trajectories, resumable.

    engine = Rollout(client, policy, RolloutConfig(concurrency=1024), sinks=[FileSink("out.jsonl")])
    summary = await engine.run(specs)

- Bounded concurrency with asyncio-pool: at most `concurrency` episodes live at once.
- Each episode has a deadline; transient transport failures (a server unreachable, full, or
  restarting, or gone in the middle of the episode: UNAVAILABLE) are re-run from the start of the
  episode, on whichever server the client picks then, with backoff, a few times. Only the attempt
  that finishes is written and counted; `RolloutSummary.reruns` counts the re-runs.
- A failure budget: after `max_failures` failed episodes the run stops, cancelling what is in
  flight, and the summary says why (the CLI then exits non-zero).
- Resumable: sinks report the record ids they already hold, and those episodes are skipped.
- A progress bar shows episodes done, success so far, steps/s and tokens/s.

The steps of `run` are public so that other drivers can share them (client/ray_rollout.py plays
episodes on Ray actors and records them here): `plan` (what is left to play), `prepare` (the envs
and the policy), `play` (one episode, with its re-runs, to an `Outcome`), `record` (sinks, counts,
the failure budget), `summarize`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from asyncio_pool import AioPool
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from agentgym.client.envclient import EnvClient
from agentgym.client.errors import AgentGymError, Cancelled, Unavailable
from agentgym.client.policies.base import Policy, PolicyError
from agentgym.client.react import EpisodeSpec, run_episode
from agentgym.client.types import EnvInfo
from agentgym.core import metrics
from agentgym.core.trajectory import JsonlWriter, Trajectory, read_trajectories

log = logging.getLogger(__name__)


class Sink(Protocol):
    """Where finished trajectories (and failed episodes' reports) go."""

    async def done_ids(self) -> set[str]:
        """Record ids already stored (skipped when a run resumes)."""
        ...

    async def write(self, trajectory: Trajectory) -> None: ...

    async def failed(self, report: dict[str, Any]) -> None:
        """An episode that failed: {item_id, sample, env, task_id, error, time}."""
        ...

    async def close(self) -> None: ...


class FileSink:
    """JSON Lines file; failed episodes go to `<name>.errors.jsonl` beside it, and are retried on resume.

    Each record is flushed to the OS as it is written (a killed run loses nothing written); fsync
    runs every `fsync_every` records (0: only on close), off the hot path by default. For storage
    that must survive a power cut, stream to the trainer's store (`--sink grpc://...`)."""

    def __init__(self, path: str | Path, fsync_every: int = 0) -> None:
        self.path = Path(path)
        self.existing = {t.record_id for t in read_trajectories(self.path)} if self.path.exists() else set()
        self.writer = JsonlWriter(self.path, fsync_every)
        self.errors = JsonlWriter(self.path.with_name(self.path.stem + ".errors.jsonl"), fsync_every=0)

    async def done_ids(self) -> set[str]:
        return set(self.existing)

    async def write(self, trajectory: Trajectory) -> None:
        self.writer.write(trajectory)

    async def failed(self, report: dict[str, Any]) -> None:
        self.errors.write(report)

    async def close(self) -> None:
        self.writer.close()
        self.errors.close()


@dataclass
class RolloutConfig:
    concurrency: int = 256
    episode_timeout_s: float | None = 1800.0
    retries: int = 3  # transient failures retried per episode
    max_failures: int | None = None  # stop the run after this many failed episodes (None: never)
    max_rounds: dict[str, int] = field(default_factory=dict)  # per env; default: the env's own
    max_context_tokens: int | None = None
    progress: bool = True


@dataclass
class RolloutSummary:
    planned: int = 0
    skipped: int = 0  # already in the sinks (resumed)
    finished: int = 0
    failed: int = 0
    reruns: int = 0  # attempts replayed from the start after a transient failure (not episodes)
    placement: str = ""  # where the episodes ran, when not here ("2 rollout workers on 2 nodes")
    stopped: str = ""  # why the run stopped early, if it did
    per_env: dict[str, dict[str, float]] = field(default_factory=dict)
    errors: Counter[str] = field(default_factory=Counter)
    steps: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.stopped


@dataclass
class Outcome:
    """What playing one episode came to: its trajectory, or the error of its last attempt
    ("Kind: message", and Kind alone), and how many times it was re-run from the start."""

    spec: EpisodeSpec
    trajectory: Trajectory | None = None
    kind: str = ""
    error: str = ""
    reruns: int = 0


def _consume(future: asyncio.Future[Any]) -> None:
    """Episodes report their own errors; a cancelled one's future holds nothing worth raising."""
    if not future.cancelled():
        future.exception()


def _transient(exc: BaseException) -> bool:
    """Worth replaying the episode: the env server (not the env) was unreachable, full or restarting."""
    if isinstance(exc, AgentGymError):
        return exc.retryable or isinstance(exc, Unavailable | Cancelled)
    return False


class Rollout:
    def __init__(
        self,
        client: EnvClient,
        policy: Policy,
        config: RolloutConfig | None = None,
        sinks: Sequence[Sink] = (),
    ) -> None:
        self.client = client
        self.policy = policy
        self.config = config or RolloutConfig()
        self.sinks = list(sinks)
        self.summary = RolloutSummary()
        self._stop = asyncio.Event()
        self._envs: dict[str, EnvInfo] = {}
        self._stats: dict[str, Counter[str]] = {}
        self._reward: dict[str, float] = {}
        self._t0 = time.perf_counter()
        self._running: set[asyncio.Task[Any]] = set()
        self.max_action_bytes: int | None = None

    async def run(self, specs: Sequence[EpisodeSpec]) -> RolloutSummary:
        self._t0 = time.perf_counter()
        todo = await self.plan(specs)
        await self.prepare({s.env for s in todo})
        progress = self._progress(len(todo))
        try:
            with progress:
                task_id = progress.add_task("rollout", total=len(todo), **self._fields())
                async with AioPool(size=self.config.concurrency) as pool:
                    for spec in todo:
                        if self._stop.is_set():
                            break
                        future = await pool.spawn(self._episode(spec, progress, task_id))
                        future.add_done_callback(_consume)
                    # Stopping cancels the running episodes ourselves (see _stop_running): the
                    # pool's own cancel() leaks slots of tasks cancelled before they start.
        finally:
            for sink in self.sinks:
                await sink.close()
        return self.summarize()

    @property
    def stopping(self) -> bool:
        """The failure budget is spent: start nothing more."""
        return self._stop.is_set()

    async def plan(self, specs: Sequence[EpisodeSpec]) -> list[EpisodeSpec]:
        """The episodes still to play: those no sink holds yet (a resumed run skips the rest)."""
        done: set[str] = set()
        for sink in self.sinks:
            done |= await sink.done_ids()
        todo = [s for s in specs if s.record_id not in done]
        ids = [s.record_id for s in todo]
        if len(ids) != len(set(ids)):
            dup = [i for i, n in Counter(ids).items() if n > 1][:5]
            raise ValueError(f"the same episode is planned twice: {dup}")
        self.summary.planned, self.summary.skipped = len(specs), len(specs) - len(todo)
        return todo

    async def prepare(self, envs: set[str]) -> None:
        """Learn the envs to play from the servers and hand them to the policy."""
        self._envs = {name: info for name, info in (await self.client.envs()).items() if name in envs}
        missing = envs - set(self._envs)
        if missing:
            raise AgentGymError(f"no server hosts env(s) {sorted(missing)}")
        status = await self.client.server_status()
        self.max_action_bytes = status.max_action_bytes
        self.policy.prepare(self._envs)

    def summarize(self) -> RolloutSummary:
        self.summary.seconds = time.perf_counter() - self._t0
        self.summary.per_env = {
            env: {
                "episodes": c["episodes"],
                "success": c["success"] / max(1, c["episodes"]),
                "reward": self._reward.get(env, 0.0) / max(1, c["episodes"]),
                "rounds": c["rounds"] / max(1, c["episodes"]),
                "failed": c["failed"],
            }
            for env, c in sorted(self._stats.items())
        }
        return self.summary

    async def _episode(self, spec: EpisodeSpec, progress: Progress, task_id: Any) -> None:
        if self._stop.is_set():
            return
        task = asyncio.current_task()
        assert task is not None
        self._running.add(task)
        metrics.ROLLOUT_LIVE.inc()
        try:
            await self.record(await self.play(spec))
        finally:
            self._running.discard(task)
            metrics.ROLLOUT_LIVE.dec()
        progress.update(task_id, advance=1, **self._fields())

    async def play(self, spec: EpisodeSpec) -> Outcome:
        """Play one episode, re-running it from the start after transient failures (a server gone
        mid-episode included: the client sends the re-run wherever it routes new episodes then).
        Writes nothing: `record` does, once per episode."""
        cfg = self.config
        error: BaseException | None = None
        trajectory: Trajectory | None = None
        reruns = 0
        for attempt in range(cfg.retries + 1):
            try:
                async with asyncio.timeout(cfg.episode_timeout_s):
                    trajectory = await run_episode(
                        self.client,
                        self.policy,
                        spec,
                        max_rounds=cfg.max_rounds.get(spec.env),
                        max_context_tokens=cfg.max_context_tokens,
                        max_action_bytes=self.max_action_bytes,
                    )
            except TimeoutError:
                error = TimeoutError(f"episode exceeded its {cfg.episode_timeout_s:g}s deadline")
                break
            except (AgentGymError, PolicyError) as exc:
                error = exc
                if _transient(exc) and attempt < cfg.retries:
                    metrics.ROLLOUT_RETRIES.labels(spec.env).inc()
                    reruns += 1
                    log.info("episode re-run", extra={"item_id": spec.record_id, "error": str(exc)})
                    await asyncio.sleep(min(10.0, 0.2 * 2**attempt))
                    continue
                break
            except Exception as exc:  # a bug must not silently lose the episode
                log.exception("episode raised", extra={"item_id": spec.record_id})
                error = exc
                break
            else:
                error = None
                break
        if error is None:
            assert trajectory is not None
            return Outcome(spec, trajectory, reruns=reruns)
        kind = type(error).__name__
        return Outcome(spec, kind=kind, error=f"{kind}: {error}", reruns=reruns)

    async def record(self, outcome: Outcome) -> None:
        """Write a played episode to the sinks and count it (once: call this once per episode)."""
        self.summary.reruns += outcome.reruns
        if outcome.trajectory is not None:
            await self._finished(outcome.spec, outcome.trajectory)
        else:
            await self._failed(outcome.spec, outcome.kind, outcome.error)

    async def _finished(self, spec: EpisodeSpec, t: Trajectory) -> None:
        for sink in self.sinks:
            await sink.write(t)
        s = self.summary
        s.finished += 1
        s.steps += t.rounds or 0
        s.completion_tokens += sum(t.loss_mask or ())
        metrics.ROLLOUT_EPISODES.labels(spec.env, "finished").inc()
        metrics.ROLLOUT_SUCCESSES.labels(spec.env).inc(bool(t.success))
        metrics.ROLLOUT_COMPLETION_TOKENS.labels(spec.env).inc(sum(t.loss_mask or ()))
        c = self._stats.setdefault(spec.env, Counter())
        c["episodes"] += 1
        c["success"] += bool(t.success)
        c["rounds"] += t.rounds or 0
        self._reward[spec.env] = self._reward.get(spec.env, 0.0) + (t.reward or 0.0)

    async def _failed(self, spec: EpisodeSpec, kind: str, error: str) -> None:
        s = self.summary
        s.failed += 1
        metrics.ROLLOUT_EPISODES.labels(spec.env, "failed").inc()
        s.errors[kind] += 1
        self._stats.setdefault(spec.env, Counter())["failed"] += 1
        log.warning("episode failed", extra={"item_id": spec.record_id, "error": error})
        report = {
            "item_id": spec.item_id,
            "sample": spec.sample,
            "env": spec.env,
            "task_id": spec.task_id,
            "error": error,
            "time": time.time(),
        }
        for sink in self.sinks:
            await sink.failed(report)
        budget = self.config.max_failures
        if budget is not None and s.failed > budget and not self._stop.is_set():
            s.stopped = (
                f"failure budget spent: {s.failed} failed episodes (max_failures={budget}); last: {error}"
            )
            log.error("rollout stopped", extra={"reason": s.stopped})
            self._stop.set()
            current = asyncio.current_task()
            for task in list(self._running):
                if task is not current:
                    task.cancel()  # unfinished episodes are not written: a resumed run plays them

    # --- progress ----------------------------------------------------------------------------------
    def _fields(self) -> dict[str, str]:
        s = self.summary
        elapsed = max(1e-9, time.perf_counter() - self._t0)
        success = sum(c["success"] for c in self._stats.values())
        rate = f"{success / s.finished:.1%}" if s.finished else "-"
        return {
            "success": rate,
            "steps": f"{s.steps / elapsed:,.1f}",
            "tokens": f"{s.completion_tokens / elapsed:,.0f}",
            "failed": str(s.failed),
        }

    def _progress(self, total: int) -> Progress:
        return Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(
                "success {task.fields[success]}  steps/s {task.fields[steps]}  tokens/s {task.fields[tokens]}  "
                "failed {task.fields[failed]}"
            ),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            disable=not self.config.progress,
            transient=False,
        )
