"""Rollout work: jobs queue it here; rollout workers take it over `TrainerService.Work` streams.

    results = await queue.run(items)         # a job: waits until every item is done by some worker

Each worker holds one item at a time. A worker whose stream breaks while holding an item (it
crashed, lost the network, was killed) has the item put back at the front of the queue for the
next worker; since explored trajectories are acknowledged by the store one by one and the store
de-duplicates by key, a re-run item plays only what the store does not hold yet.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import grpc

from agentgym.v1 import trainer_pb2 as rpb

log = logging.getLogger(__name__)


class WorkFailed(Exception):
    """A worker reported that it could not do an item at all (WorkDone.error)."""


@dataclass
class _Pending:
    item: rpb.WorkItem
    done: asyncio.Future[rpb.WorkDone]
    tries: int = 0


@dataclass
class WorkerInfo:
    name: str
    peer: str
    holding: str = ""  # the item id in hand
    finished: int = 0


@dataclass
class WorkQueue:
    draining: bool = False
    workers: dict[int, WorkerInfo] = field(default_factory=dict)
    _pending: deque[_Pending] = field(default_factory=deque)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _changed: asyncio.Event | None = None  # set (and replaced) whenever work arrives

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()
        self._changed = asyncio.Event()

    def _waiter(self) -> asyncio.Event:
        if self._changed is None:
            self._changed = asyncio.Event()
        return self._changed

    # --- the job's side -------------------------------------------------------------------------------
    async def run(self, items: list[rpb.WorkItem]) -> list[rpb.WorkDone]:
        """Queue `items` and wait until each is done; a cancelled caller withdraws what no worker
        took yet (items in a worker's hand finish there, and their results are dropped)."""
        loop = asyncio.get_running_loop()
        mine = []
        for item in items:
            item.id = item.id or f"{item.job_id}/w{next(self._ids)}"
            mine.append(_Pending(item, loop.create_future()))
        self._pending.extend(mine)
        self._notify()
        try:
            return list(await asyncio.gather(*(p.done for p in mine)))
        finally:
            withdrawn = [p for p in mine if not p.done.done()]
            if withdrawn:
                for p in withdrawn:
                    p.done.cancel()
                self._pending = deque(p for p in self._pending if p not in withdrawn)

    @property
    def queued(self) -> int:
        return len(self._pending)

    # --- the worker's side: the Work RPC ---------------------------------------------------------------
    async def work(
        self, requests: AsyncIterator[rpb.WorkerMessage], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[rpb.WorkItem]:
        try:
            first = await anext(aiter(requests))
        except StopAsyncIteration:
            return
        if first.WhichOneof("kind") != "hello":
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "a worker's first message must be hello")
        key = id(context)
        worker = WorkerInfo(first.hello.name or context.peer(), context.peer())
        self.workers[key] = worker
        dones: asyncio.Queue[rpb.WorkDone | None] = asyncio.Queue()

        async def read() -> None:
            try:
                async for msg in requests:
                    if msg.WhichOneof("kind") == "done":
                        await dones.put(msg.done)
            except (grpc.aio.AioRpcError, grpc.aio.AbortError, asyncio.CancelledError):
                pass  # gone, or bytes that did not parse (the RPC already ended INVALID_ARGUMENT)
            finally:
                await dones.put(None)

        reader = asyncio.create_task(read(), name=f"worker-{worker.name}")
        log.info("rollout worker connected", extra={"worker": worker.name, "peer": worker.peer})
        held: _Pending | None = None
        try:
            while not self.draining:
                held = await self._take(reader)
                if held is None:
                    return
                worker.holding = held.item.id
                yield held.item
                done = await dones.get()
                if done is None:
                    return  # gone mid-item: `finally` puts it back
                if done.id != held.item.id:
                    log.warning("worker answered another item", extra={"worker": worker.name, "id": done.id})
                if not held.done.done():
                    if done.error:
                        held.done.set_exception(WorkFailed(f"worker {worker.name}: {done.error}"))
                    else:
                        held.done.set_result(done)
                worker.finished += 1
                worker.holding = ""
                held = None
        finally:
            reader.cancel()
            self.workers.pop(key, None)
            if held is not None and not held.done.done():
                held.tries += 1
                log.warning(
                    "rollout worker left holding work: offered again",
                    extra={"worker": worker.name, "item": held.item.id, "tries": held.tries},
                )
                self._pending.appendleft(held)
                self._notify()
            log.info(
                "rollout worker disconnected", extra={"worker": worker.name, "finished": worker.finished}
            )

    async def _take(self, reader: asyncio.Task[None]) -> _Pending | None:
        """The next item for a worker; None when its stream ended (or the trainer drains) first."""
        while True:
            while self._pending and self._pending[0].done.done():
                self._pending.popleft()  # withdrawn
            if self._pending:
                return self._pending.popleft()
            if reader.done() or self.draining:
                return None
            waiter = asyncio.ensure_future(self._waiter().wait())
            await asyncio.wait([waiter, reader], return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()

    async def drain(self) -> None:
        self.draining = True
        self._notify()
