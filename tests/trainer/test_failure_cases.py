"""The trainer under failure: a Push stream that outruns the disk (bytes bound, cancellation), a
store created on a fresh directory (its entry fsync'd), a disk that fills up and empties again,
and FSDP checkpoints that resume."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from agentgym.trainer import store as store_module
from agentgym.trainer.server import TrainerConfig, TrainerServer
from agentgym.trainer.service import IngestConfig
from agentgym.trainer.store import StoreFull, TrajectoryStore
from agentgym.v1 import trajectory_pb2 as tpb
from tests.conftest import wait_for
from tests.trainer.helpers import torchrun, trajectory
from tests.trainer.test_bc import expert_maze  # noqa: F401  (the fixture: expert maze trajectories)

PUSH = "/agentgym.v1.TrajectoryService/Push"
GARBAGE = b"\xff\xff\xff\xff not a protobuf"
SERVICE = "agentgym.v1.TrajectoryService"
UNAVAILABLE = grpc.StatusCode.UNAVAILABLE.value[0]


def push_request(seq: int, i: int, tokens: int = 64) -> bytes:
    return tpb.PushRequest(seq=seq, trajectory=trajectory(i, tokens=tokens).to_proto()).SerializeToString()


@contextlib.contextmanager
def stalled_writer(store: TrajectoryStore) -> Iterator[None]:
    """The store's writer thread blocks (as on a slow disk) until the block ends: appends queue up
    and no acknowledgement is sent."""
    store._wlock.acquire()
    try:
        yield
    finally:
        store._wlock.release()


async def start(tmp_path: Path, **ingest: object) -> TrainerServer:
    config = TrainerConfig(dir=tmp_path / "trainer", port=0, run_jobs=False, ingest=IngestConfig(**ingest))  # type: ignore[arg-type]
    return await TrainerServer.start(config)


# --- Push: bounded bytes in flight, and a cancelled stream never hangs ------------------------------
async def test_push_bounds_bytes_in_flight(tmp_path: Path) -> None:
    """A stream of large trajectories on a slow disk: the trainer holds at most its byte budget (plus
    the one request that crossed it), not its 4,096-request budget; all are stored in the end."""
    server = await start(tmp_path, max_in_flight_bytes=256 << 10)
    try:
        async with grpc.aio.insecure_channel(server.address) as ch:
            requests = [push_request(i + 1, i, tokens=8_000) for i in range(24)]  # ~90 KB each
            size = max(len(r) for r in requests)
            assert 40_000 < size < 128 << 10
            call = ch.stream_stream(PUSH)()
            with stalled_writer(server.store):
                writes = asyncio.ensure_future(_write_all(call, requests))
                # The reader takes what the budget allows, then stops reading the stream.
                assert await wait_for(lambda: len(server.store._pending) >= 2, 10)
                await asyncio.sleep(0.5)
                held = len(server.store._pending)
                assert held * min(len(r) for r in requests) <= (256 << 10) + size, held
                assert server.service.bytes_in_flight <= (256 << 10) + size
            await writes
            answers = [tpb.PushResponse.FromString(raw) async for raw in call]
            assert [a.WhichOneof("result") for a in answers] == ["stored"] * 24
            assert server.service.bytes_in_flight == 0
        assert len(server.store) == 24
    finally:
        await server.stop(0)


async def _write_all(call: grpc.aio.StreamStreamCall, requests: list[bytes]) -> None:
    for raw in requests:
        await call.write(raw)
    await call.done_writing()


def _readers() -> list[asyncio.Task[object]]:
    return [t for t in asyncio.all_tasks() if t.get_name() == "push-reader" and not t.done()]


async def test_a_cancelled_push_stream_never_hangs_its_reader(tmp_path: Path) -> None:
    """The client cancels while the stream's request budget is full (the disk is slow): the reader
    task ends at once instead of waiting forever for room to post its end-of-stream marker."""
    server = await start(tmp_path, max_in_flight=4)
    try:
        async with grpc.aio.insecure_channel(server.address) as ch:
            call = ch.stream_stream(PUSH)()
            with stalled_writer(server.store):
                for i in range(12):
                    await call.write(push_request(i + 1, i))
                assert await wait_for(lambda: len(server.store._pending) >= 4, 10)
                await asyncio.sleep(0.2)  # the reader is now waiting for room
                assert len(_readers()) == 1
                call.cancel()
                assert await wait_for(lambda: not _readers(), 5), "the push reader hangs after a cancel"
        # What was taken from the cancelled stream is still stored (appends are not cancelled).
        assert await wait_for(lambda: len(server.store) >= 4, 10)
        async with grpc.aio.insecure_channel(server.address) as ch:  # and the trainer serves on
            call = ch.stream_stream(PUSH)()
            await _write_all(call, [push_request(1, 100)])
            assert [tpb.PushResponse.FromString(r).WhichOneof("result") async for r in call] == ["stored"]
    finally:
        await server.stop(0)


# --- the store: a new store's directory entry, a full disk ------------------------------------------
def test_creating_a_store_fsyncs_the_new_directory_entries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """mkdir's new entry lives in the parent directory: without fsyncing the parent, a crash can
    lose the whole new store although its files were fsync'd."""
    synced: list[Path] = []
    real = store_module._fsync_dir
    monkeypatch.setattr(store_module, "_fsync_dir", lambda p: (synced.append(Path(p)), real(p)))
    with TrajectoryStore.open(tmp_path / "runs" / "trainer" / "store") as store:
        store.add([trajectory(1)])
    # Each directory created (runs, trainer, store) is made durable in its parent.
    for parent in (tmp_path, tmp_path / "runs", tmp_path / "runs" / "trainer"):
        assert parent in synced, (parent, synced)
    synced.clear()
    with TrajectoryStore.open(tmp_path / "runs" / "trainer" / "store") as store:  # reopening creates nothing
        assert len(store) == 1
    assert tmp_path not in synced


@contextlib.contextmanager
def small_tmpfs(where: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs mounted at `where` (needs root, or CAP_SYS_ADMIN); skips the test otherwise."""
    where.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", f"agentgym-test-{uuid.uuid4().hex[:8]}",
                           str(where)], capture_output=True, text=True)  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield where
    finally:
        if subprocess.run(["umount", str(where)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(where)], capture_output=True)


def fill(disk: Path) -> Path:
    """A file taking every free byte of `disk`."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        with contextlib.suppress(OSError):
            while True:
                os.write(fd, bytes(4096))
    finally:
        os.close(fd)
    return filler


async def health(address: str) -> int:
    async with grpc.aio.insecure_channel(address) as ch:
        reply = await health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=SERVICE))
        return reply.status


async def push_one(address: str, seq: int, i: int) -> tpb.PushResponse:
    """Push trajectory `i` (about 20 KB: more than the slack a full tmpfs leaves in a file's last page)."""
    async with grpc.aio.insecure_channel(address) as ch:
        call = ch.stream_stream(PUSH)()
        await _write_all(call, [push_request(seq, i, tokens=2_000)])
        (answer,) = [tpb.PushResponse.FromString(r) async for r in call]
        return answer


@pytest.fixture(params=["tmpfs", "injected"])
async def disk(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[Path, object]]:
    """Where the trainer writes, and how to fill and empty it: a real 1 MiB tmpfs (when this
    machine lets the test mount one), or ENOSPC injected at the store's own write call."""
    if request.param == "tmpfs":
        with small_tmpfs(tmp_path / "disk") as where:
            filler: list[Path] = []
            yield where, (lambda: filler.append(fill(where)), lambda: filler.pop().unlink())
    else:
        full = [False]
        real_write = os.write

        def write(fd: int, data: bytes) -> int:
            # Only the trainer's own files under this test's folder see a full disk.
            if full[0] and os.readlink(f"/proc/self/fd/{fd}").startswith(str(tmp_path)):
                raise OSError(errno.ENOSPC, "No space left on device")
            return real_write(fd, data)

        monkeypatch.setattr(store_module.os, "write", write)
        yield tmp_path, (lambda: full.__setitem__(0, True), lambda: full.__setitem__(0, False))


async def test_a_full_disk_turns_health_not_serving_until_space_returns(disk: tuple[Path, object]) -> None:
    where, (make_full, make_room) = disk  # type: ignore[misc]
    config = TrainerConfig(
        dir=where / "trainer", port=0, run_jobs=False, ingest=IngestConfig(space_retry_s=0.1)
    )
    server = await TrainerServer.start(config)
    try:
        assert (await push_one(server.address, 1, 1)).WhichOneof("result") == "stored"
        assert await health(server.address) == health_pb2.HealthCheckResponse.SERVING
        make_full()
        refused = await push_one(server.address, 2, 2)
        assert refused.error.code == UNAVAILABLE and "disk is full" in refused.error.message, refused
        assert await health(server.address) == health_pb2.HealthCheckResponse.NOT_SERVING
        again = await push_one(server.address, 3, 3)  # refused at once while full, not written
        assert again.error.code == UNAVAILABLE and "disk is full" in again.error.message
        assert isinstance(server.store._full, StoreFull) and not server.store.writable
        make_room()
        deadline = asyncio.get_running_loop().time() + 10
        while await health(server.address) != health_pb2.HealthCheckResponse.SERVING:
            assert asyncio.get_running_loop().time() < deadline, "health never returned to SERVING"
            await asyncio.sleep(0.05)
        for seq, i in ((4, 2), (5, 3)):  # the refused ones, re-sent
            assert (await push_one(server.address, seq, i)).WhichOneof("result") == "stored"
    finally:
        await server.stop(0)
    # Nothing of the refused writes was left on disk: the store reopens clean, holding what was stored.
    with TrajectoryStore.open(where / "trainer" / "store") as store:
        assert sorted(e.id for e in store.select()) == ["maze_1", "maze_2", "maze_3"]
        assert store.stats().torn_bytes == 0 and store.stats().corrupt_lines == 0


# --- FSDP checkpoints resume ------------------------------------------------------------------------
RUN = """
import json, os, sys
from agentgym.trainer.bc import BCConfig, train

class Stop(Exception):
    pass

stop_at = int(sys.argv[1])
seen = []

def on_step(step, total, loss):
    seen.append(step)
    if step == stop_at:
        raise Stop  # the job dies here: after the checkpoint of step 3, in the middle of the run

try:
    r = train(BCConfig(data=[{data!r}], out={out!r}, init="tiny", epochs=1, lr=3e-3, max_tokens=4096,
                       progress=False, save_every=3, keep_checkpoints=5, fsdp=True), on_step=on_step)
    steps = r.steps
except Stop:
    steps = None
# A file per rank: the two ranks' stdout lines can interleave.
with open(os.path.join(sys.argv[2], "rank-" + os.environ["RANK"] + ".json"), "w") as f:
    json.dump({{"rank": os.environ["RANK"], "seen": seen, "steps": steps}}, f)
"""


def test_fsdp_checkpoints_resume_with_their_optimizer_state(expert_maze: str, tmp_path: Path) -> None:  # noqa: F811
    import torch

    out = tmp_path / "run"
    script = tmp_path / "run.py"
    script.write_text(RUN.format(data=expert_maze, out=str(out)))
    first = torchrun(script, "4")
    assert [r["seen"] for r in first] == [[1, 2, 3, 4]] * 2 and first[0]["steps"] is None
    saved = out / "checkpoints" / "step-3"
    assert (saved / "model.safetensors").exists() and (saved / "trainer_state.pt").exists()
    state = torch.load(saved / "trainer_state.pt", weights_only=False)
    assert state["step"] == 3
    adam = state["optimizer"]["state"]
    assert adam and all(float(s["step"]) == 3 for s in adam.values())
    assert all(s["exp_avg"].abs().sum() > 0 for s in adam.values())  # the whole (unsharded) moments
    second = torchrun(script, "0")
    seen = second[0]["seen"]
    assert second[1]["seen"] == seen and seen[0] == 4  # went on after the checkpoint, not from step 1
    assert second[0]["steps"] == seen[-1] >= 6
    # AdamW's own step count went on from the checkpoint's: its state was loaded, not started afresh.
    newest = max((out / "checkpoints").glob("step-*"), key=lambda p: int(p.name[5:]))
    n = int(newest.name[5:])
    assert n > 3
    later = torch.load(newest / "trainer_state.pt", weights_only=False)
    assert later["step"] == n and {float(s["step"]) for s in later["optimizer"]["state"].values()} == {n}


def test_ingest_limits_are_flags_of_trainer_serve(tmp_path: Path) -> None:
    from agentgym.client.cli import build_parser
    from agentgym.client.cli.trainer import serve_config

    def config(*flags: str) -> IngestConfig:
        args = build_parser().parse_args(["trainer", "serve", "--dir", str(tmp_path), *flags])
        return serve_config(args).ingest

    assert config() == IngestConfig()  # the flags' defaults are the settings' defaults
    set_ = config("--max-in-flight", "8", "--max-in-flight-mb", "1.5", "--space-retry", "0.5")
    assert (set_.max_in_flight, set_.max_in_flight_bytes, set_.space_retry_s) == (8, 3 << 19, 0.5)
    with pytest.raises(SystemExit, match=r"trainer serve: space_retry_s 0.0: must be above 0"):
        config("--space-retry", "0")
    with pytest.raises(SystemExit, match=r"max_in_flight 0: at least 1"):
        config("--max-in-flight", "0")


async def test_garbage_on_the_work_stream_is_invalid_argument(tmp_path: Path) -> None:
    """A rollout worker's stream of bytes that are not WorkerMessages ends INVALID_ARGUMENT (grpc
    itself would answer UNKNOWN), first message or later; the trainer keeps serving."""
    from agentgym.v1 import trainer_pb2 as rpb

    hello = rpb.WorkerMessage(hello=rpb.WorkerHello(name="w")).SerializeToString()
    server = await start(tmp_path)
    try:
        async with grpc.aio.insecure_channel(server.address) as ch:
            for messages in ([GARBAGE], [hello, GARBAGE]):
                call = ch.stream_stream("/agentgym.v1.TrainerService/Work")(iter(messages), timeout=10)
                with pytest.raises(grpc.aio.AioRpcError) as info:
                    async for _ in call:
                        pass
                assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value
                assert "could not parse a WorkerMessage" in (info.value.details() or "")
            # The worker that sent garbage is gone.
            assert await wait_for(lambda: not server.work.workers, 5.0), server.work.workers
    finally:
        await server.stop(0)
