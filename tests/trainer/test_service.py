"""TrajectoryService over a real socket: acknowledgements, bad input in band, Stats, ListIds, shutdown."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from agentgym.core.trajectory import Trajectory, Turn
from agentgym.trainer.server import TrainerConfig, TrainerServer
from agentgym.trainer.service import IngestConfig
from agentgym.trainer.store import TrajectoryStore, scan_lines
from agentgym.v1 import trajectory_pb2 as tpb
from tests.trainer.helpers import trajectory

PUSH = "/agentgym.v1.TrajectoryService/Push"
INVALID = grpc.StatusCode.INVALID_ARGUMENT.value[0]


@pytest.fixture
async def trainer(tmp_path: Path) -> AsyncIterator[TrainerServer]:
    config = TrainerConfig(
        dir=tmp_path / "trainer", port=0, ingest=IngestConfig(max_trajectory_bytes=64 << 10)
    )
    server = await TrainerServer.start(config)
    yield server
    await server.stop(0)


@pytest.fixture
async def channel(trainer: TrainerServer) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(trainer.address) as ch:
        yield ch


def push_request(seq: int, t: Trajectory, **overrides: object) -> bytes:
    """The request carrying `t` (not validated: the server's validation is what is tested), with
    message fields overridden."""
    msg = t.to_proto()
    for key, value in overrides.items():
        setattr(msg, key, value)
    return tpb.PushRequest(seq=seq, trajectory=msg).SerializeToString()


async def exchange(channel: grpc.aio.Channel, requests: list[bytes]) -> list[tpb.PushResponse]:
    """Send all requests on one stream, pipelined, and read every answer."""
    call = channel.stream_stream(PUSH)()
    for raw in requests:
        await call.write(raw)
    await call.done_writing()
    answers = []
    while (raw := await call.read()) is not grpc.aio.EOF:
        answers.append(tpb.PushResponse.FromString(raw))
    assert await call.code() == grpc.StatusCode.OK
    return answers


async def test_push_acknowledges_in_order_and_deduplicates(
    trainer: TrainerServer, channel: grpc.aio.Channel, tmp_path: Path
) -> None:
    requests = [push_request(i + 1, trajectory(i)) for i in range(100)]
    requests.append(push_request(101, trajectory(5)))  # a duplicate within the stream
    answers = await exchange(channel, requests)
    assert [a.seq for a in answers] == list(range(1, 102))
    assert all(a.WhichOneof("result") == "stored" for a in answers)
    assert [a.stored.duplicate for a in answers] == [False] * 100 + [True]
    assert answers[3].id == "maze_3"
    # Every acknowledged trajectory is on disk, once: durably written before the answer was sent.
    on_disk = [key for key, _ in scan_lines(trainer.store.path)]
    assert sorted(on_disk) == sorted(f"maze_{i}" for i in range(100))
    # A second stream re-sending everything stores nothing new.
    again = await exchange(channel, requests[:50])
    assert all(a.stored.duplicate for a in again)
    assert trainer.store.get("maze_7") == trajectory(7)
    assert trainer.store.path == tmp_path / "trainer" / "store"  # the store lives in the trainer's dir


async def test_bad_input_is_answered_in_band_and_the_stream_survives(
    trainer: TrainerServer, channel: grpc.aio.Channel
) -> None:
    good = trajectory(1)
    bad: dict[str, bytes] = {
        "could not parse a PushRequest from 2 bytes": b"\x0a\xff",
        "request 2 carries no trajectory": tpb.PushRequest(seq=2).SerializeToString(),
        "the trajectory has an empty id": push_request(3, good, id=""),
        "item_id must be a non-empty string": push_request(4, good, item_id="", id="maze_1"),
        "input_ids has 64 tokens but loss_mask has 2": push_request(5, trajectory(1, loss_mask=[0, 1], validate=False)),
        "more than this trainer's limit of 65536": push_request(6, trajectory(1, tokens=40_000)),
        "extra_json repeats typed field(s) ['env']": push_request(7, good, extra_json='{"env": "wordle"}'),
        "extra_json must be a JSON object": push_request(8, good, extra_json="[]"),
        "id must be the trajectory's key 'maze_1'": push_request(9, good, id="maze_2"),
        "no conversation": push_request(10, dataclasses.replace(good, conversations=[])),
        "reward must be a finite number": push_request(11, dataclasses.replace(good, reward=float("inf"))),
        "logprobs[70] is -inf": push_request(12, trajectory(1, tokens=80, logprobs=[None] * 70 + [float("-inf")] * 10, validate=False)),
        "its key is longer than 1024 bytes": push_request(13, dataclasses.replace(good, item_id="m" * 1025 + "_1")),
        "conversations[1] is a human turn where a gpt turn belongs": push_request(
            14, dataclasses.replace(good, conversations=[Turn("human", "a"), Turn("human", "b")])),
        "'maze_1@7': id must be the trajectory's key 'maze_1'": push_request(15, good, id="maze_1@7"),
    }  # fmt: skip
    answers = await exchange(channel, [*bad.values(), push_request(99, good)])
    assert len(answers) == len(bad) + 1
    for (message, _), answer in zip(bad.items(), answers, strict=False):
        assert answer.WhichOneof("result") == "error", message
        assert answer.error.code == INVALID and message in answer.error.message, (
            message,
            answer.error.message,
        )
    assert answers[0].seq == 0 and answers[2].seq == 3
    assert answers[-1].seq == 99 and answers[-1].stored.duplicate is False  # the stream went on
    assert len(trainer.store) == 1 and trainer.service.rejected == len(bad)


async def test_stats_list_ids_health_and_reflection(
    trainer: TrainerServer, channel: grpc.aio.Channel
) -> None:
    reqs = [push_request(i, trajectory(i)) for i in range(12)]
    reqs += [push_request(100 + i, trajectory(i, sample=1, iteration=3)) for i in range(4)]
    await exchange(channel, reqs)
    stats = await channel.unary_unary(
        "/agentgym.v1.TrajectoryService/Stats",
        request_serializer=tpb.StatsRequest.SerializeToString,
        response_deserializer=tpb.StatsResponse.FromString,
    )(tpb.StatsRequest())
    assert stats.trajectories == 16 and stats.successes == 4 + 2
    assert stats.path == str(trainer.store.path) and stats.implementation.startswith("agentgym-python")
    assert [(e.env, e.trajectories) for e in stats.envs] == [("maze", 16)]
    assert [(it.HasField("iteration"), it.iteration, it.trajectories) for it in stats.iterations] == [
        (False, 0, 12), (True, 3, 4),
    ]  # fmt: skip
    assert len(stats.segments) == 1 and stats.segments[0].trajectories == 16 and stats.bytes > 0
    list_ids = channel.unary_stream(
        "/agentgym.v1.TrajectoryService/ListIds",
        request_serializer=tpb.ListIdsRequest.SerializeToString,
        response_deserializer=tpb.ListIdsResponse.FromString,
    )
    chunks = [c async for c in list_ids(tpb.ListIdsRequest(filter=tpb.TrajectoryFilter(iteration=3)))]
    assert [list(c.ids) for c in chunks] == [[f"maze_{i}#1@3" for i in range(4)]]
    assert list(chunks[0].record_ids) == [f"maze_{i}#1" for i in range(4)]
    wins = [
        c async for c in list_ids(tpb.ListIdsRequest(filter=tpb.TrajectoryFilter(success=True, iteration=-1)))
    ]
    assert list(wins[0].ids) == ["maze_0", "maze_3", "maze_6", "maze_9"]
    # Query streams the stored trajectories themselves.
    query = channel.unary_stream(
        "/agentgym.v1.TrajectoryService/Query",
        request_serializer=tpb.QueryRequest.SerializeToString,
        response_deserializer=tpb.Trajectory.FromString,
    )
    got = [
        Trajectory.from_proto(m)
        async for m in query(tpb.QueryRequest(filter=tpb.TrajectoryFilter(iteration=3, limit=2)))
    ]
    assert got == [trajectory(i, sample=1, iteration=3) for i in range(2)]
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        [m async for m in query(tpb.QueryRequest(filter=tpb.TrajectoryFilter(min_reward=1, max_reward=0)))]
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "min_reward" in str(
        refused.value.details()
    )
    health = await health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service="agentgym.v1.TrajectoryService")
    )
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    reflect = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")])
    )
    services = [s.name async for r in reflect for s in r.list_services_response.service]
    assert "agentgym.v1.TrajectoryService" in services


async def test_shutdown_refuses_new_pushes_and_keeps_what_was_acknowledged(tmp_path: Path) -> None:
    server = await TrainerServer.start(TrainerConfig(dir=tmp_path / "t", port=0))
    async with grpc.aio.insecure_channel(server.address) as ch:
        call = ch.stream_stream(PUSH)()
        for i in range(50):
            await call.write(push_request(i + 1, trajectory(i)))
        acked = [tpb.PushResponse.FromString(await call.read()) for _ in range(50)]
        assert all(a.WhichOneof("result") == "stored" for a in acked)
        server.service.draining = True  # what stop() does first
        await call.write(push_request(51, trajectory(51)))
        refused = tpb.PushResponse.FromString(await call.read())
        assert (
            refused.error.code == grpc.StatusCode.UNAVAILABLE.value[0]
            and "shutting down" in refused.error.message
        )
        await server.stop(0.5)
    with TrajectoryStore.open(tmp_path / "t" / "store") as store:
        assert len(store) == 50 and "maze_51" not in store


async def test_mangled_requests_never_break_the_stream(
    trainer: TrainerServer, channel: grpc.aio.Channel
) -> None:
    """Random byte damage to valid requests: each is stored or refused in band, none ends the stream."""
    import random

    rng = random.Random(0)
    valid = push_request(1, trajectory(1, tokens=32))
    mangled = []
    for _ in range(300):
        raw = bytearray(valid)
        for _ in range(rng.randint(1, 4)):
            raw[rng.randrange(len(raw))] = rng.randrange(256)
        mangled.append(bytes(raw[: rng.randint(1, len(raw))] if rng.random() < 0.3 else raw))
    answers = await exchange(channel, [*mangled, push_request(2, trajectory(2))])
    assert len(answers) == 301 and answers[-1].WhichOneof("result") == "stored"
    kinds = {a.WhichOneof("result") for a in answers[:-1]}
    assert "error" in kinds
    assert {a.error.code for a in answers if a.WhichOneof("result") == "error"} == {INVALID}
