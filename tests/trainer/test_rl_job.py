"""The rl job through the fabric on CPU: real gRPC, a real env server, an SGLang-API policy server
over HTTP, a rollout worker and the learner as a child process. Spec errors; a few real steps in
lockstep under a horizon schedule; overlapped steps with in-flight episodes aborted; and the
learner's update moving a tiny model the way the advantages say."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from agentgym.client.policies.hf import HFPolicy
from agentgym.client.policies.hf_server import PolicyServer
from agentgym.client.worker import RolloutWorker
from agentgym.core.chat import ChatTokens, eos_token_ids
from agentgym.core.rpc import stub
from agentgym.core.trajectory import JsonlWriter, Trajectory, Turn
from agentgym.trainer.rl_learn import Learner, RLConfig
from agentgym.trainer.server import TrainerConfig, TrainerServer
from agentgym.trainer.store import Query
from agentgym.v1 import trainer_pb2 as rpb

SERVICE = rpb.DESCRIPTOR.services_by_name["TrainerService"]
OK = {"envs": ["maze"], "model": "m", "policy_urls": ["http://h:1"], "env_servers": ["h:2"]}


@pytest.fixture
async def trainer(tmp_path: Path) -> AsyncIterator[TrainerServer]:
    server = await TrainerServer.start(TrainerConfig(dir=tmp_path / "trainer", port=0))
    yield server
    await server.stop(0)


async def rpc(trainer: TrainerServer, method: str, request: Any) -> Any:
    async with grpc.aio.insecure_channel(trainer.address) as channel:
        return await stub(channel, SERVICE, method)(request, timeout=10)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"envs": []}, "rl: no envs"),
        ({"model": ""}, "rl: no base model"),
        ({"policy_urls": []}, "rl: no policy_urls"),
        ({"algorithm": "ppo"}, "unknown algorithm 'ppo'; choose one of grpo, rloo, reinforce\\+\\+"),
        ({"group_size": 1}, "group_size 1: grpo compares episodes of a task, give at least 2"),
        ({"rounds": [6, 13, 20]}, "need stage_steps"),
        ({"rounds": [0]}, "every stage's horizon must be at least 1"),
        ({"stale": "keep"}, "stale 'keep': expected one of correct, drop"),
        ({"inflight": "wait"}, "inflight 'wait': expected one of finish, abort"),
        ({"settings": {"learning_rate": "1"}}, "unknown RL setting 'learning_rate'; the settings are: .*kl_coef"),
        ({"settings": {"kl_coef": "much"}}, "kl_coef='much': expected float"),
        ({"settings": {"reward": "progress"}}, "reward='progress': expected one of score, success"),
        ({"settings": {"mini_batches": "0"}}, "mini_batches=0: must be at least 1"),
    ],
)  # fmt: skip
async def test_a_bad_rl_spec_is_refused_with_a_message(trainer: TrainerServer, fields: dict[str, Any],
                                                       message: str) -> None:  # fmt: skip
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await rpc(trainer, "Submit", rpb.SubmitRequest(rl=rpb.RLJob(**{**OK, **fields})))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    import re

    assert re.search(message, info.value.details() or ""), info.value.details()


async def run_job(trainer: TrainerServer, server: Any, model: str, **fields: Any) -> tuple[rpb.Job, HFPolicy]:
    """An rl job against an hf policy server and an in-process worker, run to its end."""
    policy = HFPolicy(model, seed=0)
    await policy.start()
    http = PolicyServer(policy, strict=True)
    port = await http.start()
    stop = asyncio.Event()
    worker = RolloutWorker(trainer.address, env_servers=[f"127.0.0.1:{server.port}"], name="test")
    task = asyncio.create_task(worker.run(stop))
    try:
        job = rpb.RLJob(envs=["maze"], model=model, policy_urls=[f"http://127.0.0.1:{port}"],
                        env_servers=[f"127.0.0.1:{server.port}"], max_new_tokens=12, work_chunk=2, **fields)  # fmt: skip
        submitted = await rpc(trainer, "Submit", rpb.SubmitRequest(rl=job))
        async with grpc.aio.insecure_channel(trainer.address) as channel:
            async for _ in stub(channel, SERVICE, "Watch")(rpb.WatchRequest(id=submitted.id)):
                pass
        return await rpc(trainer, "GetJob", rpb.GetJobRequest(id=submitted.id)), policy
    finally:
        stop.set()
        await task
        await http.stop()
        await policy.close()


def no_learner_left() -> bool:
    import psutil

    return not [p for p in psutil.Process().children(recursive=True) if "rl_learn" in " ".join(p.cmdline())]


@pytest.mark.timeout(600)
async def test_rl_steps_in_lockstep_under_a_horizon_schedule(trainer: TrainerServer, start_server: Any,
                                                             tiny_model: str) -> None:  # fmt: skip
    server = await start_server(envs=["maze"])
    done, policy = await run_job(
        trainer, server, tiny_model, steps=3, tasks_per_step=2, group_size=2, rounds=[2, 3], stage_steps=2,
        eval_tasks=2, settings={"lr": "1e-3", "skip_zero_advantage": "false", "entropy_coef": "0.01",
                                "kl_coef": "0.05"},
    )  # fmt: skip
    assert done.state == rpb.SUCCEEDED, done.error
    job = f"{done.id}"
    # Each step's episodes are in the store under its iteration, played by that step's weights,
    # under that step's horizon (the env server truncated there), in groups of 2 per task.
    for k, horizon in ((0, 2), (1, 2), (2, 3)):
        trajs = list(trainer.store.records(Query.of(iteration=k)))
        assert len(trajs) == 4
        assert {t.max_steps for t in trajs} == {horizon}
        assert all((t.rounds or 0) <= horizon for t in trajs)
        assert {tuple(t.weight_versions) for t in trajs} == {(f"{job}.step-{k}",)}
        assert sorted(t.sample for t in trajs) == [0, 0, 1, 1]
        assert all(t.step_rewards is not None and len(t.step_rewards) == t.rounds for t in trajs)
    # The last weights are served, and they are not the starting ones.
    assert policy.weight_version == f"{job}.step-3" == done.weight_version
    out = Path(done.out)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 1, 2] and [r["horizon"] for r in rows] == [2, 2, 3]
    for r in rows:
        assert r["episodes"] == 4 and r["updates"] == 1 and r["dropped_stale"] == 0
        assert r["kl_ref"] is not None and r["kl_ref"] >= 0 and 0 <= r["clip_frac"] <= 1 and r["entropy"] > 0
        assert r["rollout_s"] > 0 and r["learn_s"] > 0 and r["sync_s"] >= 0 and r["train_tokens_per_s"] > 0
    assert rows[0]["eval_before"] is not None and rows[-1]["eval_success"] is not None
    assert (out / "report.png").stat().st_size > 1000 and "| 2 |" in (out / "report.md").read_text()
    result = json.loads(done.result_json)
    assert result["weight_version"] == f"{job}.step-3"
    assert await asyncio.to_thread(_differs, tiny_model, result["model"])
    assert no_learner_left()
    # A second job on the same store has its own iterations (after the first job's): it plays
    # its own batch instead of finding the first job's under the same keys.
    second, _ = await run_job(
        trainer, server, tiny_model, steps=1, tasks_per_step=2, group_size=2, eval_tasks=0
    )
    assert second.state == rpb.SUCCEEDED, second.error
    (row,) = json.loads(second.result_json)["steps"]
    assert row["episodes"] == 4 and row["weight_versions"] == {f"{second.id}.step-0": 4}
    mine = list(trainer.store.records(Query.of(weight_version=f"{second.id}.step-0")))
    assert len(mine) == 4 and all((t.iteration or 0) > 2 for t in mine)


def _differs(a: str, b: str) -> bool:
    from safetensors.torch import load_file

    x, y = load_file(str(Path(a) / "model.safetensors")), load_file(str(Path(b) / "model.safetensors"))
    return any(not (x[k] == y[k]).all() for k in x)


@pytest.mark.timeout(600)
async def test_overlapped_steps_abort_episodes_that_straddle_an_update(trainer: TrainerServer, start_server: Any,
                                                                       tiny_model: str) -> None:  # fmt: skip
    server = await start_server(envs=["maze"])
    done, _ = await run_job(
        trainer, server, tiny_model, steps=3, tasks_per_step=2, group_size=2, rounds=[3], overlap=True,
        inflight="abort", eval_tasks=0, settings={"lr": "1e-3", "skip_zero_advantage": "false"},
    )  # fmt: skip
    assert done.state == rpb.SUCCEEDED, done.error
    state = json.loads((Path(done.out) / "state.json").read_text())
    timing = state["timing"]
    # The rollout of step k+1 started before step k finished learning: the two overlapped.
    for k in (0, 1):
        assert timing[f"rollout-{k + 1}"][0] < timing[f"learn-{k}"][1]
    # No episode spans two versions (in-flight ones were aborted and replayed); each is at most one
    # version behind the step that learns from it.
    for k in range(3):
        for t in trainer.store.records(Query.of(iteration=k)):
            assert len(t.weight_versions) == 1
            age = k - int(t.weight_versions[0].rsplit("-", 1)[1])
            assert age in (0, 1) if k else age == 0
    assert no_learner_left()


def _record(chat: ChatTokens, task: int, sample: int, reply: str, reward: float) -> Trajectory:
    """A one-turn episode with token fields; no rollout logprobs, so the update is on-policy (ratio 1)."""
    instruction, observation = f"Solve task {task}.", "You are at the start."
    ids = chat.initial([{"role": "user", "content": instruction}])
    mask = [0] * len(ids)
    reply_ids = [*chat.encode(reply), chat.eos]
    ids, mask = ids + reply_ids, mask + [1] * len(reply_ids)
    env = chat.env_turn(observation)
    ids, mask = ids + env, mask + [0] * len(env)
    return Trajectory(
        item_id=f"maze_{task}", sample=sample, iteration=0, reward=reward, success=reward > 0,
        conversations=[Turn("human", instruction), Turn("gpt", reply, True), Turn("human", observation)],
        rounds=1, step_rewards=[reward], input_ids=ids, loss_mask=mask, tokenizer=chat.fingerprint,
    )  # fmt: skip


def _reply_logprob(learner: Learner, record: Trajectory) -> float:
    import torch

    from agentgym.trainer import pg

    ids = torch.tensor([record.input_ids])
    mask = torch.tensor([record.loss_mask], dtype=torch.float)[:, 1:]
    with torch.no_grad():
        logits = learner.model(input_ids=ids).logits[:, :-1]
    return float(pg.masked_sum(pg.token_logprobs(logits, ids[:, 1:], 1.0), mask))


@pytest.mark.parametrize("algorithm", ["grpo", "rloo", "reinforce++"])
def test_an_update_moves_the_policy_towards_the_rewarded_episode(tmp_path: Path, tiny_model: str,
                                                                algorithm: str) -> None:  # fmt: skip
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    learner = Learner(RLConfig(out=str(tmp_path / "learner"), model=tiny_model, algorithm=algorithm, lr=1e-3,
                               reference=True))  # fmt: skip
    chat = learner.chat
    assert isinstance(chat, ChatTokens) and eos_token_ids(learner.model, learner.tokenizer)
    good = _record(chat, 1, 0, "Thought: up.\nAction: move up", 1.0)
    bad = _record(chat, 1, 1, "Thought: down.\nAction: move down", 0.0)
    data = tmp_path / "batch.jsonl"
    w = JsonlWriter(data)
    for t in (good, bad):
        w.write(t)
    w.close()
    before = (_reply_logprob(learner, good), _reply_logprob(learner, bad))
    result = learner.update(0, {"sources": [{"path": str(data), "query": {}}], "allowed": {}})
    after = (_reply_logprob(learner, good), _reply_logprob(learner, bad))
    assert (
        result["trained_episodes"] == 2
        and result["updates"] == 1
        and result["kl_ref"] == pytest.approx(0, abs=1e-6)
    )
    assert after[0] > before[0] and after[1] < before[1]
    assert (tmp_path / "learner" / "policy" / "step-1" / "trainer_state.pt").exists()
    # Stale data: a version the request does not allow is dropped; with "drop", one step old too.
    stale = [_record(chat, 2, s, "Action: go", float(s)) for s in range(2)]
    for t, v in zip(stale, ["other", "v0"], strict=True):
        t.weight_versions = [v]
        t.iteration = 1
    data2 = tmp_path / "batch2.jsonl"
    w = JsonlWriter(data2)
    for t in stale:
        w.write(t)
    w.close()
    r = learner.update(1, {"sources": [{"path": str(data2), "query": {}}], "allowed": {"v1": 0, "v0": 1},
                           "stale": "drop"})  # fmt: skip
    assert r["episodes"] == 2 and r["dropped_stale"] == 2 and r["trained_episodes"] == 0


async def test_a_turn_on_new_weights_aborts_the_episode_when_asked() -> None:
    from types import SimpleNamespace

    from agentgym.client.policies.base import Policy
    from agentgym.client.policies.base import Turn as AgentTurn
    from agentgym.client.worker import AbortOnUpdate, WeightsChanged

    class Versions(Policy):
        """Answers each turn with the next weight version of a list."""

        def __init__(self, versions: list[str]) -> None:
            self.versions = versions

        async def act(self, conversation: Any, episode: Any) -> AgentTurn:
            return AgentTurn("Action: go", weight_version=self.versions.pop(0))

    policy = AbortOnUpdate(Versions(["v1", "v1", "v2"]))
    conv = SimpleNamespace(weight_versions=[])
    for _ in range(2):
        turn = await policy.act(conv, None)
        conv.weight_versions.append(turn.weight_version)
    with pytest.raises(WeightsChanged, match="aborted: the weights changed from v1 to v2 mid-episode"):
        await policy.act(conv, None)


@pytest.mark.parametrize("fsdp", [False, True], ids=["ddp", "fsdp"])
async def test_the_learner_as_two_processes_under_torchrun(
    tmp_path: Path, tiny_model: str, fsdp: bool
) -> None:
    from agentgym.core.chat import ChatTokens as Chat
    from agentgym.trainer.bc import load_model
    from agentgym.trainer.rl_learn import LearnerProcess

    model, tokenizer = load_model(tiny_model, None, 0, None)
    chat = Chat(tokenizer, eos_token_ids(model, tokenizer))
    data = tmp_path / "batch.jsonl"
    w = JsonlWriter(data)
    for task in range(3):  # three groups of two: both ranks get rows, one gets more
        for s in range(2):
            w.write(_record(chat, task, s, f"Action: go {'up' if s else 'down'}", float(s)))
    w.close()
    cfg = RLConfig(out=str(tmp_path / "learner"), model=tiny_model, lr=1e-3, fsdp=fsdp, poll_s=0.05)
    learner = LearnerProcess(cfg, nproc=2)
    try:
        result = await learner.update(0, {"sources": [{"path": str(data), "query": {}}], "allowed": {}})
    finally:
        await learner.stop()
    assert result["episodes"] == 6 and result["trained_episodes"] == 6 and result["updates"] == 1
    assert result["agent_tokens"] > 0 and result["loss"] == result["loss"]  # finite, not NaN
    assert await asyncio.to_thread(_differs, tiny_model, result["model"])
    assert learner.proc is not None and learner.proc.returncode == 0
