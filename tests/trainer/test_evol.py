"""AgentEvol end to end on a tiny model: explore over a real env server, filter, learn, reload."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from agentgym.client import EnvClient
from agentgym.client.policies import make_policy
from agentgym.client.rollout import FileSink, Rollout, RolloutConfig
from agentgym.client.tasks import expand
from agentgym.client.types import EnvInfo
from agentgym.trainer.evol import AgentEvol, EvolConfig
from tests.conftest import StartServer
from tests.test_cli import AGENTGYM


async def test_one_full_iteration(start_server: StartServer, tmp_path: Path) -> None:
    srv = await start_server(envs=["conformance", "maze"])
    async with EnvClient(f"127.0.0.1:{srv.port}") as client:
        bc_data = tmp_path / "expert.jsonl"
        await Rollout(client, make_policy("expert"), RolloutConfig(progress=False), [FileSink(bc_data)]).run(
            expand({"conformance": list(range(6))})
        )
        cfg = EvolConfig(
            envs=["conformance"],
            bc_data=[str(bc_data)],
            out=str(tmp_path / "evol"),
            base="init:tiny",
            iterations=1,
            explore_episodes=6,
            eval_tasks=2,
            max_new_tokens=24,
            progress=False,
            bc={"epochs": 40, "lr": 3e-3, "max_tokens": 4096},
        )
        evol = AgentEvol(cfg, client)
        reports = await evol.run()
    (report,) = reports
    out = tmp_path / "evol"
    # Iteration 0 cloned the expert; iteration 1 explored, kept the successes, relearned from the base.
    assert (out / "agent-0" / "model" / "final" / "model.safetensors").exists()
    assert report.explored == {"conformance": 6} and report.kept["conformance"] == report.kept_total
    kept = [json.loads(line) for line in (out / "iter-1" / "kept.jsonl").read_text().splitlines()]
    assert all(r["reward"] >= 1.0 and r["iteration"] == 1 for r in kept) and len(kept) == report.kept_total
    explored = [json.loads(line) for line in (out / "iter-1" / "explore.jsonl").read_text().splitlines()]
    assert len(explored) == 6 and all(r["policy"] == "hf" and "input_ids" in r for r in explored)
    assert report.train_examples == 6 + report.kept_total  # original data plus everything kept
    assert report.loss_last < report.loss_first
    assert report.model.endswith("iter-1/model/final") and (Path(report.model) / "model.safetensors").exists()
    assert evol.policy is not None and evol.policy.weight_version == "iter-1"  # type: ignore[attr-defined]  # reloaded
    assert set(report.success_before) == set(report.success_after) == {"conformance"}
    assert "| 1 |" in (out / "report.md").read_text() and (out / "report.png").stat().st_size > 1000
    # The after-evaluation of iteration 1 used the reloaded weights.
    evals = [
        json.loads(line) for line in (out / "eval" / "iter-1" / "trajectories.jsonl").read_text().splitlines()
    ]
    assert {r["weight_version"] for r in evals} == {"iter-1"}


def test_dynamic_shares_follow_difficulty() -> None:
    info = EnvInfo("x", "", 10, {}, "", "", 5, True, 1, 0, 1.0)
    evol = AgentEvol(
        EvolConfig(envs=["easy", "hard"], bc_data=[], out="/tmp/x", base="init:tiny", explore_episodes=100),
        None,
    )  # type: ignore[arg-type]
    evol.infos = {"easy": info, "hard": info}
    shares = evol._shares({"easy": 0.9, "hard": 0.2})
    assert shares["hard"] > 5 * shares["easy"] and abs(sum(shares.values()) - 100) <= 1
    evol.cfg.uniform = True
    assert evol._shares({"easy": 0.9, "hard": 0.2}) == {"easy": 50, "hard": 50}


def test_train_bc_from_the_cli(tmp_path: Path) -> None:
    data = tmp_path / "d.jsonl"
    conv = [
        {"from": "human", "loss": None, "value": "go"},
        {"from": "gpt", "loss": True, "value": "Thought:\nok\n\nAction:\nfinish"},
    ]
    data.write_text(
        "\n".join(json.dumps({"item_id": f"conformance_{i}", "conversations": conv}) for i in range(8)) + "\n"
    )
    out = subprocess.run(
        [
            AGENTGYM,
            "--log-level",
            "warning",
            "train",
            "bc",
            "--data",
            str(data),
            "--init",
            "tiny",
            "--out",
            str(tmp_path / "run"),
            "--epochs",
            "3",
            "--lr",
            "3e-3",
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "trained" in out.stdout and (tmp_path / "run" / "final" / "config.json").exists()
    bad = subprocess.run(
        [
            AGENTGYM,
            "train",
            "bc",
            "--data",
            str(tmp_path / "none.jsonl"),
            "--init",
            "tiny",
            "--out",
            str(tmp_path / "x"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert bad.returncode != 0 and "does not exist" in bad.stderr
