"""TrainerService over real gRPC, in one process: job specs and their errors, a BC job from submit to
published weights, cancelling, and rollout work that a vanished worker leaves behind."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from agentgym.client.policies.hf import HFPolicy
from agentgym.client.policies.hf_server import PolicyServer
from agentgym.client.react import EpisodeSpec
from agentgym.client.rollout import Rollout, RolloutConfig
from agentgym.client.sinks import GrpcSink
from agentgym.core.rpc import stub
from agentgym.server.app import Server
from agentgym.trainer.server import TrainerConfig, TrainerServer
from agentgym.v1 import trainer_pb2 as rpb
from agentgym.v1 import trajectory_pb2 as tpb
from tests.conftest import wait_for

SERVICE = rpb.DESCRIPTOR.services_by_name["TrainerService"]


@pytest.fixture
async def trainer(tmp_path: Path) -> AsyncIterator[TrainerServer]:
    server = await TrainerServer.start(TrainerConfig(dir=tmp_path / "trainer", port=0))
    yield server
    await server.stop(0)


@pytest.fixture
async def channel(trainer: TrainerServer) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(trainer.address) as ch:
        yield ch


async def rpc(channel: grpc.aio.Channel, method: str, request: Any) -> Any:
    return await stub(channel, SERVICE, method)(request, timeout=10)


def is_model(path: str) -> bool:
    return (Path(path) / "config.json").exists()


BC = rpb.BCJob(base="init:tiny", data=rpb.DataSpec(store=tpb.TrajectoryFilter(envs=["maze"])))


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (rpb.SubmitRequest(), "no job in the request"),
        (rpb.SubmitRequest(bc=rpb.BCJob(data=BC.data)), "no base model"),
        (rpb.SubmitRequest(bc=rpb.BCJob(base="init:huge", data=BC.data)), "the built-in sizes are"),
        (rpb.SubmitRequest(bc=rpb.BCJob(base="init:tiny")), "bc: no data"),
        (rpb.SubmitRequest(bc=rpb.BCJob(base="init:tiny", data=rpb.DataSpec())), "no data"),
        (rpb.SubmitRequest(bc=rpb.BCJob(base="m", data=BC.data, settings={"learning_rate": "1"})),
         "unknown BC setting 'learning_rate'; the settings are: .*lr"),
        (rpb.SubmitRequest(bc=rpb.BCJob(base="m", data=BC.data, settings={"lr": "fast"})), "lr='fast': expected float"),
        (rpb.SubmitRequest(bc=rpb.BCJob(base="m", data=rpb.DataSpec(store=tpb.TrajectoryFilter(min_reward=2, max_reward=1)))),
         "min_reward 2.0 is above max_reward 1.0"),
        (rpb.SubmitRequest(bc=rpb.BCJob(base="m", data=BC.data, policy_urls=["10.0.0.1:30000"])), "give http://HOST:PORT"),
        (rpb.SubmitRequest(evol=rpb.EvolJob(base="m")), "evol: no envs"),
        (rpb.SubmitRequest(evol=rpb.EvolJob(envs=["maze,wordle"], base="m")), "one name per entry"),
        (rpb.SubmitRequest(evol=rpb.EvolJob(envs=["maze"], base="m", env_servers=["h:1"])), "no policy_urls"),
        (rpb.SubmitRequest(evol=rpb.EvolJob(envs=["maze"], base="m", policy_urls=["http://h:1"])), "no env_servers"),
        (rpb.SubmitRequest(evol=rpb.EvolJob(envs=["maze"], base="m", policy_urls=["http://h:1"], env_servers=["h:2"])),
         "no bc_data and no agent"),
    ],
)  # fmt: skip
async def test_a_bad_spec_is_refused_with_a_message(
    channel: grpc.aio.Channel, request_: Any, message: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await rpc(channel, "Submit", request_)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert __import__("re").search(message, info.value.details() or ""), info.value.details()


async def test_unknown_jobs_and_ended_jobs(trainer: TrainerServer, channel: grpc.aio.Channel) -> None:
    for method, request in (
        ("GetJob", rpb.GetJobRequest(id="job-9")),
        ("Cancel", rpb.CancelRequest(id="job-9")),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await rpc(channel, method, request)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND and "no job 'job-9'" in (
            info.value.details() or ""
        )
    with pytest.raises(grpc.aio.AioRpcError) as info:
        async for _ in stub(channel, SERVICE, "Watch")(rpb.WatchRequest(id="job-9")):
            pass
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    # An empty store: the job fails (no examples), and cancelling it afterwards is refused.
    job = await rpc(channel, "Submit", rpb.SubmitRequest(bc=BC))
    events = [e async for e in stub(channel, SERVICE, "Watch")(rpb.WatchRequest(id=job.id))]
    assert events[-1].state == rpb.FAILED and "no training examples" in events[-1].message
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await rpc(channel, "Cancel", rpb.CancelRequest(id=job.id))
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_a_worker_stream_must_start_with_hello(channel: grpc.aio.Channel) -> None:
    async def messages() -> AsyncIterator[rpb.WorkerMessage]:
        yield rpb.WorkerMessage(done=rpb.WorkDone(id="x"))

    with pytest.raises(grpc.aio.AioRpcError) as info:
        async for _ in stub(channel, SERVICE, "Work")(messages()):
            pass
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "hello" in (info.value.details() or "")


async def expert_data(trainer: TrainerServer, server: Server, tasks: range) -> None:
    """The expert's trajectories, pushed to the trainer over gRPC as a rollout would."""
    from agentgym.client import EnvClient
    from agentgym.client.policies import make_policy

    async with EnvClient(f"127.0.0.1:{server.port}") as client:
        summary = await Rollout(client, make_policy("expert"), RolloutConfig(progress=False),
                                [GrpcSink(trainer.address)]).run([EpisodeSpec("maze", t) for t in tasks])  # fmt: skip
    assert summary.finished == len(tasks)


async def test_bc_job_from_submit_to_published_weights(
    trainer: TrainerServer, channel: grpc.aio.Channel, start_server: Any, tiny_model: str
) -> None:
    server = await start_server(envs=["maze"])
    await expert_data(trainer, server, range(12))
    policy = HFPolicy(tiny_model)
    await policy.start()
    http = PolicyServer(policy, strict=True)
    port = await http.start()
    try:
        job = await rpc(channel, "Submit", rpb.SubmitRequest(bc=rpb.BCJob(
            base="init:tiny", data=BC.data, settings={"epochs": "1", "max_tokens": "2048", "lr": "1e-3"},
            policy_urls=[f"http://127.0.0.1:{port}"], weight_version="bc-1")))  # fmt: skip
        assert job.state == rpb.QUEUED and job.kind == "bc"
        events = [e async for e in stub(channel, SERVICE, "Watch")(rpb.WatchRequest(id=job.id))]
        done = await rpc(channel, "GetJob", rpb.GetJobRequest(id=job.id))
        assert done.state == rpb.SUCCEEDED, done.error
        messages = [e.message for e in events]
        assert "learn" in messages and any(m.startswith("learn: step") for m in messages)
        assert "published bc-1 to 1 policy server(s)" in messages
        result = json.loads(done.result_json)
        assert result["data_stats"]["examples"] == 12 and is_model(result["final"])
        # The policy server now serves the new weights, and says so on every reply.
        assert policy.weight_version == "bc-1" and policy.model_path == result["final"]
        assert done.weight_version == "bc-1"
        # Watching an ended job replays its log, from any point.
        again = [e.seq async for e in stub(channel, SERVICE, "Watch")(rpb.WatchRequest(id=job.id, after=2))]
        assert again == [e.seq for e in events][2:]
    finally:
        await http.stop()
        await policy.close()


async def test_cancel_a_queued_and_a_running_job(trainer: TrainerServer, channel: grpc.aio.Channel,
                                                start_server: Any) -> None:  # fmt: skip
    server = await start_server(envs=["maze"])
    await expert_data(trainer, server, range(40))
    slow = rpb.SubmitRequest(
        bc=rpb.BCJob(base="init:tiny", data=BC.data, settings={"epochs": "200", "max_tokens": "512"})
    )
    running = await rpc(channel, "Submit", slow)
    queued = await rpc(channel, "Submit", slow)
    assert await wait_for(lambda: trainer.jobs.jobs[running.id].step == "learn", 30)
    await rpc(channel, "Cancel", rpb.CancelRequest(id=queued.id))
    assert trainer.jobs.jobs[queued.id].state == "CANCELLED"
    assert await wait_for(
        lambda: (Path(trainer.jobs.jobs[running.id].out) / "model" / "learn.log").exists(), 30
    )
    await rpc(channel, "Cancel", rpb.CancelRequest(id=running.id))
    assert await wait_for(lambda: trainer.jobs.jobs[running.id].state == "CANCELLED", 30)
    listed = await rpc(channel, "ListJobs", rpb.ListJobsRequest())
    assert [(j.id, rpb.JobState.Name(j.state)) for j in listed.jobs] == [
        (running.id, "CANCELLED"), (queued.id, "CANCELLED")]  # fmt: skip
    # The learning process was killed with its job, not left training.
    import psutil

    assert not [
        p
        for p in psutil.Process().children(recursive=True)
        if "agentgym.trainer.learn" in " ".join(p.cmdline())
    ]


async def test_work_left_by_a_vanished_worker_is_offered_again(trainer: TrainerServer,
                                                               channel: grpc.aio.Channel) -> None:  # fmt: skip
    item = rpb.WorkItem(job_id="job-x", purpose="eval", episodes=[rpb.WorkEpisode(env="maze", task_id=1)])
    run = asyncio.create_task(trainer.work.run([item]))

    async def hello() -> AsyncIterator[rpb.WorkerMessage]:
        yield rpb.WorkerMessage(hello=rpb.WorkerHello(name="first"))
        await asyncio.Event().wait()  # holds the stream open, never answers

    first = stub(channel, SERVICE, "Work")(hello())
    got = await first.read()
    assert got.episodes[0].task_id == 1 and trainer.work.workers
    first.cancel()  # the worker vanishes mid-item
    assert await wait_for(lambda: trainer.work.queued == 1, 10)

    outbox: asyncio.Queue[rpb.WorkerMessage] = asyncio.Queue()
    await outbox.put(rpb.WorkerMessage(hello=rpb.WorkerHello(name="second")))

    async def second_messages() -> AsyncIterator[rpb.WorkerMessage]:
        while True:
            yield await outbox.get()

    second = stub(channel, SERVICE, "Work")(second_messages())
    again = await second.read()
    assert again.id == got.id
    await outbox.put(
        rpb.WorkerMessage(
            done=rpb.WorkDone(id=again.id, results=[rpb.EpisodeResult(env="maze", task_id=1, success=True)])
        )
    )
    (done,) = await asyncio.wait_for(run, 10)
    assert done.results[0].success
    second.cancel()
