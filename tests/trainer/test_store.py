"""The on-disk store: durability, de-duplication, crash damage, queries, rotation, locking."""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import logging
import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from agentgym.core.trajectory import Trajectory, TrajectoryError, Turn
from agentgym.trainer import store as store_module
from agentgym.trainer.store import (
    NO_ITERATION,
    NotAStore,
    StoreCorrupt,
    StoreFailed,
    StoreLocked,
    TrajectoryStore,
    scan_lines,
    segment_name,
)
from tests.trainer.helpers import record, trajectory


def segments(path: Path) -> list[Path]:
    return sorted(path.glob("segment-*.log"))


async def test_appends_are_durable_and_deduplicated(tmp_path: Path) -> None:
    store = TrajectoryStore.open(tmp_path / "s")
    recs = [trajectory(i) for i in range(200)]
    # Concurrent appends, each record twice in the same burst (duplicates inside one batch).
    results = await asyncio.gather(*(store.append(r) for r in recs + recs))
    assert results[:200] == [False] * 200 and results[200:] == [True] * 200
    assert await store.append(recs[7]) is True  # and once more, after it was written
    assert len(store) == 200 and store.stats().duplicates == 201
    await store.aclose()
    lines = list(scan_lines(tmp_path / "s"))
    assert len(lines) == 200 and sorted(k for k, _ in lines) == sorted(r.key for r in recs)
    assert dict(lines)["maze_42"] == record(42)  # on disk: the trajectory's JSON, as the rollout writes it
    reopened = TrajectoryStore.open(tmp_path / "s")
    assert len(reopened) == 200
    assert reopened.get("maze_42") == recs[42]  # the trajectory exactly as appended
    assert reopened.get("maze_4242") is None
    reopened.close()


async def test_group_commit_shares_fsyncs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = store_module._sync_data
    monkeypatch.setattr(store_module, "_sync_data", lambda fd: (calls.append(fd), real(fd)))
    grouped = TrajectoryStore.open(tmp_path / "g")
    await asyncio.gather(*(grouped.append(trajectory(i)) for i in range(300)))
    await grouped.aclose()
    assert 1 <= len(calls) < 30, "300 concurrent appends should share a handful of fsyncs"
    calls.clear()
    single = TrajectoryStore.open(tmp_path / "one", max_batch=1)
    await asyncio.gather(*(single.append(trajectory(i)) for i in range(50)))
    await single.aclose()
    assert len(calls) == 50


async def test_queries_and_training_iteration(tmp_path: Path) -> None:
    store = TrajectoryStore.open(tmp_path / "s")
    store.add(trajectory(i, env="maze") for i in range(30))  # rewards 1.0 on every third task
    store.add(trajectory(i, env="wordle", reward=i / 10, success=int(i >= 5)) for i in range(10))
    store.add(trajectory(i, env="maze", iteration=1, sample=1) for i in range(6))
    agenttraj = {"item_id": "textcraft_4", "conversations": [{"from": "human", "loss": None, "value": "x"}]}
    store.add([Trajectory.from_json(agenttraj)])
    assert len(store) == 47
    assert store.count(env="maze") == 36
    assert store.count(env=["maze", "wordle"], iteration=NO_ITERATION) == 40
    assert [e.id for e in store.select(iteration=1)] == [f"maze_{i}#1@1" for i in range(6)]
    assert [e.record_id for e in store.select(iteration=1)][:2] == ["maze_0#1", "maze_1#1"]
    assert store.count(env="maze", success=True, iteration=NO_ITERATION) == 10
    assert store.count(success=False) == 20 + 5 + 4  # the AgentTraj item has no success
    assert [e.id for e in store.select(env="wordle", min_reward=0.3, max_reward=0.5)] == [
        "wordle_3", "wordle_4", "wordle_5",
    ]  # fmt: skip
    # The AgentTraj item's env comes from its item_id; it has no reward, so no bound matches it...
    assert [e.env for e in store.select(ids=["textcraft_4"])] == ["textcraft"]
    assert list(store.select(env="textcraft", min_reward=-1e9)) == []
    # ...unless unrewarded trajectories are asked for.
    assert store.count(env="textcraft", min_reward=-1e9, keep_unrewarded=True) == 1
    assert store.get("textcraft_4") == Trajectory.from_json(agenttraj)
    good = list(store.records(env="maze", min_reward=1.0, iteration=NO_ITERATION))
    assert [r.item_id for r in good] == [f"maze_{i}" for i in range(0, 30, 3)]
    assert good[1] == trajectory(3)
    stats = store.stats()
    assert stats.per_env["wordle"].trajectories == 10 and stats.per_env["wordle"].successes == 5
    assert stats.per_env["wordle"].mean_reward == pytest.approx(0.45)
    assert list(stats.per_iteration) == [None, 1] and stats.per_iteration[1].trajectories == 6
    store.close()


async def test_segments_rotate_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "s"
    store = TrajectoryStore.open(path, segment_bytes=20_000, max_batch=8)
    for i in range(0, 200, 10):
        await asyncio.gather(*(store.append(trajectory(j, tokens=100)) for j in range(i, i + 10)))
    stats = store.stats()
    assert len(stats.segments) > 5 and sum(s.trajectories for s in stats.segments) == 200
    assert all(s.bytes < 20_000 + 8 * 2_000 for s in stats.segments)  # a batch never splits across two
    assert [r.item_id for r in store.records()] == [f"maze_{i}" for i in range(200)]
    await store.aclose()
    reopened = TrajectoryStore.open(path, segment_bytes=20_000)
    assert len(reopened) == 200 and [s.name for s in reopened.stats().segments] == [
        segment_name(n) for n in range(1, len(stats.segments) + 1)
    ]
    await reopened.append(trajectory(999))  # appends go to the last segment
    assert reopened.entry("maze_999").segment == len(stats.segments)  # type: ignore[union-attr]
    await reopened.aclose()


def test_torn_tail_is_cut_on_reopen(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "s"
    with TrajectoryStore.open(path) as store:
        store.add(trajectory(i) for i in range(10))
        last = store.entry("maze_9")
        assert last is not None
    seg = segments(path)[0]
    os.truncate(seg, last.offset + last.length // 2)  # a write cut off mid-line
    with caplog.at_level(logging.WARNING), TrajectoryStore.open(path) as store:
        assert len(store) == 9 and "maze_9" not in store
        assert seg.stat().st_size == last.offset  # cut back to the last whole line
        assert store.stats().torn_bytes == last.length // 2 and store.stats().corrupt_lines == 0
        store.add([trajectory(9)])  # and the store goes on from a clean line
    assert any("torn tail cut" in r.message for r in caplog.records)
    with TrajectoryStore.open(path) as store:
        assert len(store) == 10 and store.get("maze_9") == trajectory(9)
        again = store.entry("maze_9")
        assert again is not None and again.offset == last.offset  # written where the torn one began
        # The line holds its storing time, whose digits vary: compare the file with the entry, not the old size.
        assert seg.stat().st_size == again.offset + again.length
        assert store.stats().torn_bytes == 0


def test_garbage_after_the_last_line_is_a_torn_tail(tmp_path: Path) -> None:
    path = tmp_path / "s"
    with TrajectoryStore.open(path) as store:
        store.add(trajectory(i) for i in range(5))
    seg = segments(path)[0]
    size = seg.stat().st_size
    with seg.open("ab") as f:  # what a power cut can leave: zeros, and a line with no valid checksum
        f.write(b"\0" * 4096 + b"\n" + b"deadbeef\t{}\t{}\n" + b"\0" * 100)
    with TrajectoryStore.open(path, readonly=True) as store:  # a reader ignores it and leaves it
        assert len(store) == 5 and seg.stat().st_size > size
    with TrajectoryStore.open(path) as store:
        assert len(store) == 5 and seg.stat().st_size == size


def test_corrupt_line_mid_segment_is_reported_and_skipped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "s"
    with TrajectoryStore.open(path) as store:
        store.add(trajectory(i) for i in range(10))
        victim = store.entry("maze_4")
        assert victim is not None
    seg = segments(path)[0]
    data = bytearray(seg.read_bytes())
    at = victim.offset + victim.length - 20  # inside the record's JSON
    data[at] ^= 0x01  # one flipped bit
    seg.write_bytes(bytes(data))
    with caplog.at_level(logging.ERROR), TrajectoryStore.open(path) as store:
        assert len(store) == 9 and "maze_4" not in store and "maze_9" in store
        assert store.stats().corrupt_lines == 1
        assert seg.stat().st_size == len(data)  # evidence kept: corruption is not cut
    errors = [r for r in caplog.records if "corrupt line" in r.message]
    assert len(errors) == 1 and errors[0].offset == victim.offset and errors[0].reason == "checksum mismatch"  # type: ignore[attr-defined]
    with pytest.raises(StoreCorrupt, match="1 corrupt line"):
        TrajectoryStore.open(path, strict=True)
    # Damage after opening is caught when the record is read.
    with TrajectoryStore.open(path) as store:
        e = store.entry("maze_7")
        assert e is not None
        data[e.offset + 30] ^= 0x01
        seg.write_bytes(bytes(data))
        with pytest.raises(StoreCorrupt, match="'maze_7' is damaged on disk"):
            list(store.records())


def test_not_a_store(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(NotAStore, match=r"not a trajectory store \(no STORE file\).*notes.txt"):
        TrajectoryStore.open(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]  # nothing written into it
    with pytest.raises(NotAStore, match="is a file"):
        TrajectoryStore.open(tmp_path / "notes.txt")
    with pytest.raises(NotAStore, match="does not exist"):
        TrajectoryStore.open(tmp_path / "missing", readonly=True)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "STORE").write_bytes(orjson.dumps({"format": "something-else"}))
    with pytest.raises(NotAStore, match="does not name the 'agentgym-trajectory-store' format"):
        TrajectoryStore.open(tmp_path / "other")


def test_a_second_process_cannot_write_the_store(tmp_path: Path) -> None:
    path = tmp_path / "s"
    code = (
        "import sys, time\n"
        "from agentgym.trainer.store import TrajectoryStore\n"
        f"s = TrajectoryStore.open({str(path)!r})\n"
        "print('open', flush=True)\n"
        "sys.stdin.read()\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        with pytest.raises(StoreLocked, match=rf"locked by another process \(pid {holder.pid}\)"):
            TrajectoryStore.open(path)
        with TrajectoryStore.open(path, readonly=True) as reader:  # reading needs no lock
            assert len(reader) == 0
    finally:
        holder.communicate("", timeout=30)
    with TrajectoryStore.open(path) as store:  # the lock died with its holder
        store.add([trajectory(1)])


async def test_invalid_records_are_refused(tmp_path: Path) -> None:
    store = TrajectoryStore.open(tmp_path / "s")

    def bad(**fields: object) -> Trajectory:
        return dataclasses.replace(trajectory(1), **fields)  # type: ignore[arg-type]

    cases = {
        "item_id must be a non-empty string": bad(item_id=""),
        "no conversation": bad(conversations=[]),
        "input_ids has 64 tokens but loss_mask has 3": bad(loss_mask=[0, 1, 1]),
        "loss_mask values must be 0 or 1": bad(loss_mask=[2] * 64),
        "logprobs must have one entry per input id": bad(logprobs=[None]),
        "logprobs\\[3\\] is -inf": bad(logprobs=[None] * 3 + [float("-inf")] * 61),
        "reward must be a finite number": bad(reward=float("nan")),
        "needs from": bad(conversations=[Turn("robot", "x")]),
        "is a gpt turn where a human turn belongs": bad(conversations=[Turn("gpt", "x")]),
    }
    for message, t in cases.items():
        with pytest.raises(TrajectoryError, match=message):
            await store.append(t)
        with pytest.raises(TrajectoryError, match=message):
            store.add([trajectory(2), t])  # one bad trajectory: nothing of the batch is written
    assert len(store) == 0 and store.stats().bytes == 0
    await store.aclose()


async def test_a_failed_fsync_stops_writes_until_reopened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "s"
    store = TrajectoryStore.open(path)
    await store.append(trajectory(1))

    def broken(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(store_module, "_sync_data", broken)
    with pytest.raises(StoreFailed, match="refuses writes until the trainer is restarted"):
        await store.append(trajectory(2))
    monkeypatch.undo()
    with pytest.raises(StoreFailed):
        await store.append(trajectory(3))
    assert len(store) == 1
    await store.aclose()
    # Record 2 reached the file but was never acknowledged: reopening keeps it (harmless: a re-send
    # of it is answered "already stored").
    with TrajectoryStore.open(path) as reopened:
        assert sorted(e.id for e in reopened.select()) == ["maze_1", "maze_2"]
