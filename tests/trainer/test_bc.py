"""Behaviour cloning on CPU with a tiny model built from a config: learning, checkpoints, resume,
the hf policy loading the result, and torch.distributed (DDP and FSDP on gloo) under torchrun."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentgym.client import EnvClient
from agentgym.client.policies import make_policy
from agentgym.client.policies.base import Sampling
from agentgym.client.react import EpisodeSpec, run_episode
from agentgym.client.rollout import FileSink, Rollout, RolloutConfig
from agentgym.client.tasks import expand
from agentgym.server.app import Server
from agentgym.trainer.bc import BCConfig, train
from agentgym.trainer.data import DataError
from tests.trainer.helpers import torchrun


@pytest.fixture(scope="module")
def expert_maze(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Expert trajectories of 120 maze tasks, made over a real server."""
    import asyncio

    from agentgym.server.config import ServerConfig

    path = tmp_path_factory.mktemp("data") / "maze_expert.jsonl"

    async def make() -> None:
        srv = await Server.start(ServerConfig(port=0, envs=["maze"]))
        async with EnvClient(f"127.0.0.1:{srv.port}") as client:
            await Rollout(client, make_policy("expert"), RolloutConfig(progress=False), [FileSink(path)]).run(
                expand({"maze": list(range(25, 145))})
            )
        await srv.stop(0)

    asyncio.run(make())
    return str(path)


def test_loss_drops_on_expert_trajectories(expert_maze: str, tmp_path: Path) -> None:
    losses: list[float] = []
    result = train(BCConfig(data=[expert_maze], out=str(tmp_path / "bc"), init="tiny", epochs=2, lr=3e-3, max_tokens=8192,
                            progress=False, log_every=5), on_step=lambda step, total, loss: losses.append(loss))  # fmt: skip
    assert result.steps == len(losses) >= 10
    assert result.data_stats["examples"] == 120 and result.data_stats["truncated"] == 0
    assert sum(losses[-3:]) / 3 < 0.5 * sum(losses[:3]) / 3  # learned from the expert
    metrics = [json.loads(line) for line in (tmp_path / "bc" / "metrics.jsonl").read_text().splitlines()]
    assert (
        metrics[-1]["step"] == result.steps and "tokens_per_s" in metrics[-1] and "grad_norm" in metrics[-1]
    )
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in result.final.iterdir()}


async def test_checkpoint_loads_in_the_hf_policy(expert_maze: str, tmp_path: Path, server: Server) -> None:
    import asyncio

    result = await asyncio.to_thread(train, BCConfig(data=[expert_maze], out=str(tmp_path / "bc"), init="tiny", epochs=1,
                                                     lr=3e-3, max_tokens=8192, progress=False))  # fmt: skip
    policy = make_policy("hf", model=str(result.final), sampling=Sampling(max_new_tokens=32))
    await policy.start()
    try:
        async with EnvClient(f"127.0.0.1:{server.port}") as client:
            t = await run_episode(client, policy, EpisodeSpec("maze", 3), max_rounds=3)
    finally:
        await policy.close()
    assert t.rounds is not None and t.rounds >= 1 and t.conversations[3].role == "gpt"
    assert t.weight_version is not None and t.weight_version.startswith("final@")


def test_resume_continues_from_the_last_checkpoint(expert_maze: str, tmp_path: Path) -> None:
    out = str(tmp_path / "run")
    cfg = dict(
        data=[expert_maze],
        out=out,
        init="tiny",
        lr=3e-3,
        max_tokens=8192,
        progress=False,
        save_every=4,
        log_every=1,
    )
    first = train(BCConfig(epochs=1, **cfg))  # type: ignore[arg-type]
    checkpoints = sorted((tmp_path / "run" / "checkpoints").iterdir())
    assert checkpoints and all((c / "trainer_state.pt").exists() for c in checkpoints)
    assert len(checkpoints) <= 2  # older ones pruned
    steps_seen: list[int] = []
    second = train(BCConfig(epochs=2, **cfg), on_step=lambda step, total, loss: steps_seen.append(step))  # type: ignore[arg-type]
    last_saved = max(int(c.name[5:]) for c in checkpoints)
    assert steps_seen[0] == last_saved + 1  # picked up after the last checkpoint, not from scratch
    assert second.steps == 2 * first.steps or second.steps == steps_seen[-1]


def test_no_data_is_a_clear_error(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(DataError, match="no training examples"):
        train(BCConfig(data=[str(empty)], out=str(tmp_path / "x"), init="tiny", progress=False))
    with pytest.raises(DataError, match="does not exist"):
        train(
            BCConfig(
                data=[str(tmp_path / "missing.jsonl")], out=str(tmp_path / "y"), init="tiny", progress=False
            )
        )


@pytest.mark.parametrize("mode", ["ddp", "fsdp"])
def test_torchrun_two_processes_on_cpu(expert_maze: str, tmp_path: Path, mode: str) -> None:
    script = tmp_path / "run.py"
    script.write_text(
        "import json, os, sys\n"
        "from agentgym.trainer.bc import BCConfig, train\n"
        f"r = train(BCConfig(data=[{expert_maze!r}], out={str(tmp_path / 'out')!r}, init='tiny', epochs=1, lr=3e-3,\n"
        f"          max_tokens=8192, progress=False, resume=False, fsdp={mode == 'fsdp'}))\n"
        "with open(os.path.join(sys.argv[1], 'rank-' + os.environ['RANK'] + '.json'), 'w') as f:\n"
        "    json.dump({'rank': os.environ['RANK'], 'steps': r.steps, 'first': r.first_loss, 'last': r.last_loss}, f)\n"
    )
    results = torchrun(script)
    assert sorted(r["rank"] for r in results) == ["0", "1"]
    assert (
        results[0]["steps"] == results[1]["steps"] > 0 and results[0]["last"] == results[1]["last"]
    )  # one model
    assert results[0]["last"] < results[0]["first"]
    assert (tmp_path / "out" / "final" / "model.safetensors").exists()
