"""The trainer as a real process (`agentgym trainer serve`): kill -9 mid-stream loses nothing
acknowledged; the sink reconnects; `agentgym rollout --sink grpc://...` streams into it."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from agentgym.client.sinks import GrpcSink, SinkError, sink_for_url
from agentgym.core.trajectory import Trajectory, read_trajectories
from agentgym.trainer.store import TrajectoryStore, scan_lines
from agentgym.v1 import trajectory_pb2 as tpb
from tests.conftest import wait_for
from tests.trainer.helpers import AGENTGYM, free_port, start_trainer, trajectory, wait_serving

PUSH = "/agentgym.v1.TrajectoryService/Push"


class Trainer:
    """`agentgym trainer serve` on a fixed port and folder (its store in `dir`/store), restartable."""

    def __init__(self, dir: Path, log: Path) -> None:
        self.dir, self.log, self.port = dir, log, free_port()
        self.store = dir / "store"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = start_trainer(self.dir, self.port, self.log)
        wait_serving(self.port, self.proc, self.log)

    def kill9(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)


@pytest.fixture
def trainer(tmp_path: Path) -> Iterator[Trainer]:
    t = Trainer(tmp_path / "trainer", tmp_path / "trainer.log")
    t.start()
    yield t
    if t.proc is not None and t.proc.poll() is None:
        t.proc.kill()
        t.proc.wait()


async def push_all(
    address: str, records: list[Trajectory], kill_after: int | None = None, trainer: Trainer | None = None
) -> set[str]:
    """Stream `records` over one Push stream, at most 64 unacknowledged at a time (as the sink does);
    the ids acknowledged. With `kill_after`, SIGKILL the trainer once that many were acknowledged."""
    acked: set[str] = set()
    window = asyncio.Semaphore(64)
    async with grpc.aio.insecure_channel(address) as channel:
        call = channel.stream_stream(PUSH)()

        async def send() -> None:
            for seq, rec in enumerate(records, 1):
                await window.acquire()
                await call.write(tpb.PushRequest(seq=seq, trajectory=rec.to_proto()).SerializeToString())
            await call.done_writing()

        sender = asyncio.create_task(send())
        try:
            while (raw := await call.read()) is not grpc.aio.EOF:
                answer = tpb.PushResponse.FromString(raw)
                assert answer.WhichOneof("result") == "stored", answer
                acked.add(answer.id)
                window.release()
                if kill_after is not None and len(acked) == kill_after and trainer is not None:
                    trainer.kill9()
        except grpc.aio.AioRpcError as exc:
            assert kill_after is not None, exc
        finally:
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)
    return acked


async def test_kill9_mid_stream_loses_nothing_acknowledged(trainer: Trainer) -> None:
    records = [trajectory(i, tokens=2000) for i in range(1000)]  # about 20 KB each on the wire
    acked = await push_all(trainer.address, records, kill_after=300, trainer=trainer)
    assert 300 <= len(acked) < 1000, "the kill must come mid-stream"
    trainer.start()  # same store, same port
    on_disk = Counter(key for key, _ in scan_lines(trainer.store))
    assert set(acked) <= set(on_disk), "an acknowledged trajectory was lost"
    assert len(on_disk) < 1000, "the kill must come mid-stream"
    assert max(on_disk.values()) == 1, "a trajectory is stored twice"
    # The client re-sends everything: what was stored is answered "already stored".
    assert await push_all(trainer.address, records) == {r.key for r in records}
    assert trainer.stop() == 0
    lines = list(scan_lines(trainer.store))
    assert len(lines) == 1000 and len({key for key, _ in lines}) == 1000
    by_id = dict(lines)
    assert all(by_id[r.key] == r.to_json() for r in records)  # each record exactly as sent
    assert all(Trajectory.from_json(by_id[r.key]) == r for r in records)
    with TrajectoryStore.open(trainer.store) as store:
        assert len(store) == 1000 and store.stats().corrupt_lines == 0


async def test_sink_reconnects_and_resends_after_the_trainer_restarts(trainer: Trainer) -> None:
    sink = sink_for_url(f"grpc://{trainer.address}?timeout=60")
    assert isinstance(sink, GrpcSink) and await sink.done_ids() == set()
    records = [trajectory(i, tokens=500) for i in range(300)]
    for rec in records[:150]:
        await sink.write(rec)
    assert await wait_for(lambda: sink.stored >= 50, 30.0)
    trainer.kill9()
    for rec in records[150:200]:  # written while the trainer is down
        await sink.write(rec)
    trainer.start()
    for rec in records[200:]:
        await sink.write(rec)
    await sink.close()  # returns once all 300 are acknowledged
    assert sink.reconnects >= 1 and sink.stored + sink.duplicates == 300 and not sink.rejected
    assert trainer.stop() == 0
    keys = Counter(key for key, _ in scan_lines(trainer.store))
    assert set(keys) == {r.key for r in records} and max(keys.values()) == 1


async def test_sink_reports_what_was_not_acknowledged(tmp_path: Path) -> None:
    sink = GrpcSink(f"127.0.0.1:{free_port()}", close_timeout_s=1.0)  # nobody listens there
    assert await sink.done_ids() == set()  # logged, not fatal
    for i in range(5):
        await sink.write(trajectory(i))
    with pytest.raises(
        SinkError,
        match=r"5 of 5 trajectories were not acknowledged by the trainer at .* within 1s \(last error: UNAVAILABLE",
    ):
        await sink.close()


async def test_sink_reports_refused_trajectories(trainer: Trainer) -> None:
    sink = GrpcSink(trainer.address)
    await sink.write(trajectory(1))
    await sink.write(trajectory(2, loss_mask=[1], validate=False))
    await sink.failed({"item_id": "maze_3", "error": "TimeoutError: ..."})  # a failed episode: not sent
    with pytest.raises(
        SinkError, match=r"refused 1 of 2 trajectories: maze_2: INVALID_ARGUMENT: .*loss_mask has 1"
    ):
        await sink.close()
    assert sink.stored == 1


def test_sink_urls() -> None:
    sink = sink_for_url("grpc://trainer.local:6000?iteration=3&resume=0&timeout=9")
    assert (sink.address, sink.iteration, sink.resume, sink.close_timeout_s) == (
        "trainer.local:6000",
        3,
        False,
        9.0,
    )
    for bad, message in [("http://x:1", "unsupported scheme"), ("grpc://x", "expected grpc://HOST:PORT"),
                         ("grpc://x:1?what=1", "unknown option 'what'"), ("grpc://x:1?iteration=a", "iteration='a'")]:  # fmt: skip
        with pytest.raises(ValueError, match=message):
            sink_for_url(bad)


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([AGENTGYM, "--log-level", "warning", *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "COLUMNS": "200"})  # fmt: skip


def test_rollout_streams_into_the_trainer(trainer: Trainer, tmp_path: Path) -> None:
    def rollout(out: str, sink: str) -> subprocess.CompletedProcess[str]:
        return run("rollout", "--policy", "expert", "--envs", "maze", "--tasks", "0-19", "--no-progress",
                   "--out", str(tmp_path / out), "--sink", sink)  # fmt: skip

    first = rollout("a.jsonl", f"grpc://{trainer.address}")
    assert first.returncode == 0, first.stdout + first.stderr
    # A new --out file, the same trainer: it already holds these episodes, so they are skipped.
    second = rollout("b.jsonl", f"grpc://{trainer.address}")
    assert second.returncode == 0 and "20 already done" in second.stdout, second.stdout + second.stderr
    # AgentEvol's next iteration explores the same tasks again: kept apart, not skipped.
    third = rollout("c.jsonl", f"grpc://{trainer.address}?iteration=1")
    assert third.returncode == 0, third.stdout + third.stderr
    stats = run("trainer", "stats", "--trainer", trainer.address)
    assert stats.returncode == 0 and "│ maze  │           40 │        40 │  100.0% │" in stats.stdout, (
        stats.stdout
    )
    assert trainer.stop() == 0
    with TrajectoryStore.open(trainer.store) as store:
        assert len(store) == 40
        played = {r.item_id: r for r in read_trajectories(tmp_path / "a.jsonl", strict=True)}
        assert len(played) == 20
        assert {r.item_id: r for r in store.records(iteration=-1)} == played  # what the file has, exactly
        assert [r.iteration for r in store.records(iteration=1)] == [1] * 20
    offline = run("trainer", "stats", "--dir", str(trainer.dir))
    assert offline.returncode == 0 and "Per iteration" in offline.stdout, offline.stdout


def test_a_second_trainer_on_the_same_store_is_refused(trainer: Trainer, tmp_path: Path) -> None:
    out = run("trainer", "serve", "--dir", str(trainer.dir), "--port", str(free_port()))
    assert out.returncode != 0
    assert f"locked by another process (pid {trainer.proc.pid})" in out.stderr  # type: ignore[union-attr]
    other = tmp_path / "other"  # a trainer folder whose store/ holds something else
    (other / "store").mkdir(parents=True)
    (other / "store" / "notes.txt").write_text("mine")
    not_a_store = run("trainer", "serve", "--dir", str(other), "--port", str(free_port()))
    assert not_a_store.returncode != 0 and "is not a trajectory store" in not_a_store.stderr
