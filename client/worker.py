"""A rollout worker: plays the rollouts the trainer's jobs need, wherever it runs.

    agentgym trainer worker --trainer 10.0.0.2:50060 [--env-server 127.0.0.1:50051]

It holds one `TrainerService.Work` stream open to the trainer. For each WorkItem it plays the
episodes with the rollout engine, against the item's policy servers (SGLang's API; the `sglang`
policy, seeded per turn) on the item's env servers (or its own `--env-server`), then answers
WorkDone with a result per episode. Exploration items also stream every trajectory to the trainer
(TrajectoryService.Push, tagged with the item's iteration), skipping what the trainer already
holds, so an item re-run after a crash plays only what is missing. When the trainer goes away the
worker reconnects with backoff and carries on with whatever the trainer offers next.

One `security` (core/security.py; the CLI's --tls-ca/--tls-cert/--tls-key/--token-file, default
$AGENTGYM_TLS_CA and $AGENTGYM_TOKEN_FILE) serves every connection the worker makes: the trainer,
the env servers and the policy servers. Give each server's token file the worker's token.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc

from agentgym.client.envclient import EnvClient
from agentgym.client.policies.base import Policy, PolicyError, Sampling, Turn
from agentgym.client.react import EpisodeSpec
from agentgym.client.rollout import Rollout, RolloutConfig, RolloutSummary
from agentgym.client.sinks import GrpcSink
from agentgym.core.rpc import stub
from agentgym.core.security import ClientSecurity, connect, default_client
from agentgym.core.trajectory import Trajectory
from agentgym.v1 import trainer_pb2 as rpb

log = logging.getLogger(__name__)

SERVICE = rpb.DESCRIPTOR.services_by_name["TrainerService"]


class ResultSink:
    """Keeps each episode's result for WorkDone (a Sink of the rollout engine)."""

    def __init__(self) -> None:
        self.results: list[rpb.EpisodeResult] = []

    async def done_ids(self) -> set[str]:
        return set()

    async def write(self, t: Trajectory) -> None:
        r = rpb.EpisodeResult(env=t.env, task_id=t.task_id or 0, sample=t.sample, success=bool(t.success),
                              weight_versions=t.weight_versions)  # fmt: skip
        if t.reward is not None:
            r.reward = t.reward
        self.results.append(r)

    async def failed(self, report: dict[str, Any]) -> None:
        self.results.append(rpb.EpisodeResult(env=report["env"], task_id=report["task_id"],
                                              sample=report["sample"], error=report["error"]))  # fmt: skip

    async def close(self) -> None:
        pass


class WeightsChanged(PolicyError):
    """The policy servers loaded new weights in the middle of an episode that must not span them."""


class AbortOnUpdate(Policy):
    """A policy that abandons an episode at its first turn played by other weights than the
    episode's first turn (WorkItem.abort_on_update): the rollout engine reports it as failed, with
    an error starting "WeightsChanged:", and the job plays it again on the new weights."""

    def __init__(self, inner: Policy) -> None:
        self.inner = inner
        self.name = inner.name
        self.chat = inner.chat

    async def start(self) -> None:
        await self.inner.start()
        self.chat = self.inner.chat

    async def close(self) -> None:
        await self.inner.close()

    def prepare(self, envs: dict[str, Any]) -> None:
        self.inner.prepare(envs)

    def finish(self, episode: Any) -> None:
        self.inner.finish(episode)

    async def act(self, conversation: Any, episode: Any) -> Turn:
        turn = await self.inner.act(conversation, episode)
        first = conversation.weight_versions[0] if conversation.weight_versions else ""
        if first and turn.weight_version and turn.weight_version != first:
            raise WeightsChanged(
                f"aborted: the weights changed from {first} to {turn.weight_version} mid-episode"
            )
        return turn

    def describe(self) -> dict[str, str]:
        return self.inner.describe()


def default_policy(item: rpb.WorkItem, security: ClientSecurity | None = None) -> Policy:
    from agentgym.client.policies.sglang import SGLangPolicy

    sampling = Sampling(item.temperature, item.top_p or 1.0, item.max_new_tokens or 128)
    return SGLangPolicy(list(item.policy_urls), sampling=sampling, seed=item.seed, security=security)


class RolloutWorker:
    def __init__(
        self,
        trainer: str,
        *,
        env_servers: list[str] | None = None,
        name: str | None = None,
        make_policy: Any = None,
        reconnect_s: float = 1.0,
        security: ClientSecurity | None = None,
    ) -> None:
        self.trainer = trainer
        self.security = security or default_client()
        self.env_servers = env_servers or []
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        # make_policy(item) -> Policy; by default the sglang policy on the item's servers.
        self.make_policy = make_policy or (lambda item: default_policy(item, self.security))
        self.reconnect_s = reconnect_s
        self.items_done = 0
        self._clients: dict[tuple[str, ...], EnvClient] = {}

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Take and do work until `stop` is set (or forever), reconnecting when the trainer goes away."""
        stop = stop or asyncio.Event()
        backoff = self.reconnect_s
        try:
            while not stop.is_set():
                try:
                    await self._session(stop)
                    backoff = self.reconnect_s
                except grpc.aio.AioRpcError as exc:
                    log.warning("trainer stream ended; reconnecting",
                                extra={"trainer": self.trainer, "error": f"{exc.code().name}: {exc.details()}"})  # fmt: skip
                if stop.is_set():
                    break
                try:
                    await asyncio.wait_for(stop.wait(), backoff)
                except TimeoutError:
                    pass
                backoff = min(backoff * 2, 15.0)
        finally:
            for client in self._clients.values():
                await client.close()

    async def _session(self, stop: asyncio.Event) -> None:
        outbox: asyncio.Queue[rpb.WorkerMessage | None] = asyncio.Queue()
        await outbox.put(rpb.WorkerMessage(hello=rpb.WorkerHello(name=self.name)))

        async def requests() -> AsyncIterator[rpb.WorkerMessage]:
            while (msg := await outbox.get()) is not None:
                yield msg

        async with connect(self.trainer, self.security) as channel:
            call = stub(channel, SERVICE, "Work")(requests())
            stopper = asyncio.create_task(stop.wait())
            try:
                while True:
                    read = asyncio.ensure_future(call.read())
                    await asyncio.wait([read, stopper], return_when=asyncio.FIRST_COMPLETED)
                    if not read.done():
                        read.cancel()
                        call.cancel()
                        return
                    item = read.result()
                    if item is grpc.aio.EOF:
                        return
                    try:
                        done = await self.do(item)
                    except Exception as exc:  # a bug here must not take the worker down: report it
                        log.exception("work item raised", extra={"id": item.id})
                        done = rpb.WorkDone(id=item.id, error=f"{type(exc).__name__}: {exc}")
                    self.items_done += 1
                    await outbox.put(rpb.WorkerMessage(done=done))
            finally:
                stopper.cancel()
                await outbox.put(None)

    async def do(self, item: rpb.WorkItem) -> rpb.WorkDone:
        """Play one work item; never raises for the episodes' own failures (they are results)."""
        servers = tuple(self.env_servers or item.env_servers)
        if not servers:
            return rpb.WorkDone(
                id=item.id, error="no env server: the item names none and the worker has no --env-server"
            )
        client = self._clients.get(servers)
        if client is None:
            client = self._clients[servers] = EnvClient(list(servers), security=self.security)
        specs = [
            EpisodeSpec(ep.env, ep.task_id, ep.seed if ep.HasField("seed") else None, ep.sample)
            for ep in item.episodes
        ]
        results = ResultSink()
        sinks: list[Any] = [results]
        if item.purpose == "explore":
            iteration = item.iteration if item.HasField("iteration") else None
            sinks.append(GrpcSink(self.trainer, iteration=iteration, security=self.security))
        policy = self.make_policy(item)
        if item.abort_on_update:
            policy = AbortOnUpdate(policy)
        # The item's horizon, enforced by the env servers (CreateRequest.max_steps).
        max_rounds = {ep.env: item.max_steps for ep in item.episodes} if item.max_steps else {}
        started = time.perf_counter()
        log.info("work item", extra={"id": item.id, "purpose": item.purpose, "episodes": len(specs),
                                     "weight_version": item.weight_version})  # fmt: skip
        try:
            await policy.start()
            summary: RolloutSummary = await Rollout(
                client,
                policy,
                RolloutConfig(concurrency=item.concurrency or 64, progress=False, max_rounds=max_rounds),
                sinks,
            ).run(specs)
        except Exception as exc:  # the item as a whole could not run (no server, bad policy URL, ...)
            log.exception("work item failed", extra={"id": item.id})
            return rpb.WorkDone(id=item.id, error=f"{type(exc).__name__}: {exc}")
        finally:
            await policy.close()
        return rpb.WorkDone(id=item.id, results=results.results, error=summary.stopped,
                            seconds=time.perf_counter() - started)  # fmt: skip
