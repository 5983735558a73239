"""`agentgym rollout|eval --ray`: the rollout engine on Ray actors across a cluster, one run's results here.

    agentgym rollout --ray --server ray://head:10001/agentgym --policy sglang --policy-url http://gpu:30000 \\
        --envs maze --tasks all --out runs/maze.jsonl

    engine = RayRollout(client, policy, policy_spec, "ray://head:10001/agentgym", config, sinks, workers=4)
    summary = await engine.run(specs)

N rollout-worker actors (default one per alive node; spread over the nodes in turn, each pinned
to its node: Ray's SPREAD strategy put two 0-CPU workers on one node of two) each run the
ordinary engine (client/rollout.py: concurrency, deadlines, re-runs of transient failures) with
their own EnvClient and their own policy, built from the same spec as the CLI's. This process (the
driver) keeps the queue: it hands each worker small batches of episodes, at most `--concurrency`
plus one batch in flight per worker, and each batch's finished trajectories come back as soon as
the batch is done. The driver alone writes them, through the run's sinks (the --out file, resumable,
or a trainer over grpc://), counts them, and keeps the one progress bar and the failure budget, so
the output and the table are the same as without --ray.

A worker that dies (its node lost, its process killed): the batches it held go back to the front of
the queue for the others, counted as re-runs; an answer is recorded once per (task, sample) and any
second answer is dropped, so nothing is written or counted twice. Episodes already played to the end
by the dead worker but not yet returned are played again. Ray does not restart workers; the driver
starts a replacement on the alive node with the fewest of them (at most as many replacements in a
run as workers at first). When none is left, the run stops with what it has and says why (resume it
with the same --out).

Ray is imported only here (and in client/discovery.py), and only with --ray: the driver must be
connected (client.discovery.connect_ray) before `run`. Workers import agentgym: install it on every
node (the same version), as the env servers need it too.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import time
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from agentgym.client.discovery import import_ray
from agentgym.client.envclient import EnvClient
from agentgym.client.errors import AgentGymError, FailedPrecondition
from agentgym.client.policies.base import Policy
from agentgym.client.react import EpisodeSpec
from agentgym.client.rollout import Outcome, Rollout, RolloutConfig, RolloutSummary, Sink
from agentgym.core.security import ClientSecurity

log = logging.getLogger(__name__)


class RolloutWorkerActor:
    """A rollout worker (made a Ray actor by RayRollout): the rollout engine over its own client
    and policy; `play(batch)` answers one Outcome per episode, writing nothing itself."""

    def __init__(
        self,
        server: str,
        policy: dict[str, Any],
        config: RolloutConfig,
        envs: list[str],
        security: ClientSecurity | None,
    ) -> None:
        self.server, self.policy_spec, self.config, self.envs = server, policy, config, envs
        self.security = security

    async def start(self) -> dict[str, str]:
        """Connect, start the policy, learn the envs; where the worker runs."""
        from agentgym.client.policies import make_policy

        ray = import_ray()
        self.client = EnvClient(self.server, security=self.security)
        self.policy = make_policy(**self.policy_spec)
        await self.policy.start()
        self.engine = Rollout(self.client, self.policy, self.config)
        await self.engine.prepare(set(self.envs))
        self.slots = asyncio.Semaphore(self.config.concurrency)
        return {"node_id": ray.get_runtime_context().get_node_id(), "pid": str(os.getpid())}

    async def play(self, specs: list[EpisodeSpec]) -> list[Outcome]:
        return list(await asyncio.gather(*(self._one(s) for s in specs)))

    async def _one(self, spec: EpisodeSpec) -> Outcome:
        async with self.slots:
            return await self.engine.play(spec)

    async def close(self) -> None:
        await self.policy.close()
        await self.client.close()


@dataclass
class _Worker:
    index: int
    handle: Any
    node_id: str = ""
    in_flight: int = 0  # episodes sent and not answered
    alive: bool = True


def _alive_nodes(ray: Any) -> list[str]:
    return [n["NodeID"] for n in ray.nodes() if n["Alive"]]


def _kill(ray: Any, handle: Any) -> None:
    try:
        ray.kill(handle, no_restart=True)
    except Exception:  # already dead
        pass


def _cause(exc: BaseException) -> BaseException:
    """The worker's own exception inside Ray's RayTaskError wrapper."""
    return getattr(exc, "cause", None) or exc


class RayRollout:
    """The driver of a --ray run: see the module docstring. `policy` validates the CLI's policy
    flags here and is never started; `policy_spec` is what each worker builds its own from."""

    def __init__(
        self,
        client: EnvClient,
        policy: Policy,
        policy_spec: dict[str, Any],
        server: str,
        config: RolloutConfig,
        sinks: Sequence[Sink] = (),
        *,
        workers: int | None = None,
        worker_cpus: float = 0.0,
        security: ClientSecurity | None = None,
    ) -> None:
        if workers is not None and workers < 1:
            raise ValueError(f"--ray-workers must be at least 1, got {workers}")
        self.recorder = Rollout(client, policy, config, sinks)
        self.client = client
        self.policy_spec = policy_spec
        self.server = server
        self.config = config
        self.workers_wanted = workers
        self.worker_cpus = worker_cpus
        self.security = security
        self.workers: list[_Worker] = []
        self.workers_started: list[_Worker] = []
        self.worker_deaths = 0
        self._first_workers = 0
        self._replacements = 0
        self._starting: set[asyncio.Task[_Worker | None]] = set()
        self._worker_config = config
        self._envs: list[str] = []
        self.duplicates = 0  # answers for an episode already recorded (dropped)

    @property
    def summary(self) -> RolloutSummary:
        return self.recorder.summary

    async def run(self, specs: Sequence[EpisodeSpec]) -> RolloutSummary:
        ray = import_ray()
        if not ray.is_initialized():
            raise FailedPrecondition("RayRollout needs a Ray connection: call connect_ray(address) first")
        rec = self.recorder
        rec._t0 = time.perf_counter()
        todo = await rec.plan(specs)
        envs = sorted({s.env for s in todo})
        hosted = await self.client.envs()
        missing = [e for e in envs if e not in hosted]
        if missing:
            raise AgentGymError(f"no server hosts env(s) {missing}")
        try:
            if todo:
                await self._start_workers(ray, envs)
                await self._drive(ray, todo)
        finally:
            await self._stop_workers(ray)
            for sink in rec.sinks:
                await sink.close()
        summary = rec.summarize()
        if self.workers_started:
            workers, nodes = len(self.workers_started), len({w.node_id for w in self.workers_started})
            summary.placement = (
                f"{workers} rollout worker{'s' if workers > 1 else ''} on {nodes} node{'s' if nodes > 1 else ''}"
                + (f", {self.worker_deaths} lost" if self.worker_deaths else "")
            )
        return summary

    # --- workers -------------------------------------------------------------------------------------
    async def _start_workers(self, ray: Any, envs: list[str]) -> None:
        nodes = await asyncio.to_thread(_alive_nodes, ray)
        n = self.workers_wanted or len(nodes)
        # The engine in each worker: no bar (the driver's is the one), no budget (the driver keeps it).
        self._worker_config = replace(self.config, progress=False, max_failures=None)
        self._envs = envs
        started = await asyncio.gather(
            *(self._start_one(ray, i, nodes[i % len(nodes)]) for i in range(n)), return_exceptions=True
        )
        errors = [f"{type(_cause(e)).__name__}: {_cause(e)}" for e in started if isinstance(e, BaseException)]
        self.workers = [w for w in started if isinstance(w, _Worker)]
        self.workers_started = list(self.workers)
        self._first_workers = len(self.workers)
        if not self.workers:
            raise AgentGymError(f"no rollout worker started on the Ray cluster: {errors[0]}")
        for e in errors:
            log.warning("rollout worker did not start", extra={"error": e})
        log.info("rollout workers started",
                 extra={"workers": len(self.workers), "nodes": len({w.node_id for w in self.workers})})  # fmt: skip

    async def _start_one(self, ray: Any, index: int, node_id: str) -> _Worker:
        """A worker on `node_id`: one per node in turn, rather than Ray's SPREAD strategy, which put
        two 0-CPU workers on one node of two in our tests. The placement is strict (a soft one, too,
        put both on one node at times); when it cannot start there (the node was lost meanwhile),
        it starts wherever Ray puts it."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        try:
            return await self._start_on(ray, index, NodeAffinitySchedulingStrategy(node_id, soft=False))
        except Exception as exc:
            cause = _cause(exc)
            log.warning("rollout worker did not start on its node; starting it anywhere",
                        extra={"node_id": node_id, "error": f"{type(cause).__name__}: {cause}"})  # fmt: skip
            return await self._start_on(ray, index, "DEFAULT")

    async def _start_on(self, ray: Any, index: int, strategy: Any) -> _Worker:
        actor = ray.remote(RolloutWorkerActor).options(
            num_cpus=self.worker_cpus, scheduling_strategy=strategy, max_restarts=0, max_task_retries=0
        )
        handle = await asyncio.to_thread(
            actor.remote, self.server, self.policy_spec, self._worker_config, self._envs, self.security
        )
        try:
            info = await self._call(handle.start)
        except BaseException:
            await asyncio.to_thread(_kill, ray, handle)
            raise
        return _Worker(index, handle, node_id=info["node_id"])

    async def _replace(self, ray: Any) -> _Worker | None:
        """A new worker for a lost one, on the alive node with the fewest of ours; None if none starts."""
        try:
            nodes = await asyncio.to_thread(_alive_nodes, ray)
            mine = Counter(w.node_id for w in self.workers if w.alive)
            w = await self._start_one(ray, len(self.workers_started), min(nodes, key=lambda n: mine[n]))
        except Exception as exc:
            cause = _cause(exc)
            log.warning("no replacement rollout worker", extra={"error": f"{type(cause).__name__}: {cause}"})
            return None
        log.info("replacement rollout worker started", extra={"worker": w.index, "node_id": w.node_id})
        return w

    async def _stop_workers(self, ray: Any) -> None:
        for task in self._starting:
            task.cancel()
        alive = [w for w in self.workers if w.alive]
        if alive:
            # The policy's and the client's goodbyes, briefly; then the actors go.
            closing = [asyncio.ensure_future(self._call(w.handle.close)) for w in alive]
            _, late = await asyncio.wait(closing, timeout=5.0)
            for task in closing:
                if task in late:
                    task.cancel()
                elif not task.cancelled():
                    task.exception()  # a worker that died meanwhile: nothing to say
        await asyncio.to_thread(lambda: [_kill(ray, w.handle) for w in self.workers])
        self.workers = []

    @staticmethod
    async def _call(method: Any, *args: Any) -> Any:
        """An actor call, awaited without blocking the loop (Ray's submit runs in a thread)."""
        ref = await asyncio.to_thread(method.remote, *args)
        return await asyncio.wrap_future(ref.future())

    # --- the queue -----------------------------------------------------------------------------------
    async def _drive(self, ray: Any, todo: list[EpisodeSpec]) -> None:
        rec = self.recorder
        pending: deque[EpisodeSpec] = deque(todo)
        recorded: set[str] = set()
        per_worker = self.config.concurrency
        batch = max(1, min(per_worker // 4 or 1, math.ceil(len(todo) / (len(self.workers) * 8))))
        in_flight: dict[asyncio.Task[Any], tuple[_Worker, list[EpisodeSpec]]] = {}
        progress = rec._progress(len(todo))
        with progress:
            bar = progress.add_task("rollout", total=len(todo), **rec._fields())
            try:
                while (pending or in_flight) and not rec.stopping:
                    # Round-robin, a batch at a time, so every worker gets work before any gets more.
                    sent = True
                    while pending and sent:
                        sent = False
                        for w in self.workers:
                            if w.alive and pending and w.in_flight < per_worker + batch:
                                chunk = [pending.popleft() for _ in range(min(batch, len(pending)))]
                                w.in_flight += len(chunk)
                                in_flight[asyncio.create_task(self._call(w.handle.play, chunk))] = (w, chunk)
                                sent = True
                    if not in_flight and not self._starting:
                        rec.summary.stopped = (
                            f"every rollout worker died; {len(pending)} episodes not played "
                            "(resume with the same output)"
                        )
                        log.error("rollout stopped", extra={"reason": rec.summary.stopped})
                        break
                    done, _ = await asyncio.wait(
                        {*in_flight, *self._starting}, return_when=asyncio.FIRST_COMPLETED
                    )
                    for task in done:
                        if task in self._starting:
                            self._starting.discard(task)
                            if (new := task.result()) is not None:
                                self.workers.append(new)
                                self.workers_started.append(new)
                            continue
                        w, chunk = in_flight.pop(task)
                        w.in_flight -= len(chunk)
                        try:
                            outcomes = task.result()
                        except Exception as exc:
                            self._lost(ray, w, chunk, exc, pending, recorded)
                            continue
                        for outcome in outcomes:
                            if outcome.spec.record_id in recorded:
                                self.duplicates += 1
                                continue
                            recorded.add(outcome.spec.record_id)
                            await rec.record(outcome)
                            progress.update(bar, advance=1, **rec._fields())
            finally:
                for task in in_flight:
                    task.cancel()  # the workers go with _stop_workers; their episodes are not written

    def _lost(
        self,
        ray: Any,
        w: _Worker,
        chunk: list[EpisodeSpec],
        exc: BaseException,
        pending: deque[EpisodeSpec],
        recorded: set[str],
    ) -> None:
        """A worker's batch got no answer: the worker is gone (or broken). The batch goes back to
        the front of the queue for the others, and a replacement worker starts, at most as many in
        a run as workers started at first (a worker that dies of a bug is not replaced forever)."""
        again = [s for s in chunk if s.record_id not in recorded]
        pending.extendleft(reversed(again))
        self.summary.reruns += len(again)
        if not w.alive:
            return
        w.alive = False
        self.worker_deaths += 1
        cause = _cause(exc)
        log.warning(
            "rollout worker lost; its episodes go to the others",
            extra={"worker": w.index, "node_id": w.node_id, "requeued": len(again),
                   "error": f"{type(cause).__name__}: {str(cause)[:300]}"},
        )  # fmt: skip
        if self._replacements < self._first_workers:
            self._replacements += 1
            self._starting.add(asyncio.create_task(self._replace(ray)))
