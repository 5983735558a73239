"""Shared by the trainer tests: realistic trajectories, and the trainer as a real process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from agentgym.core.trajectory import Trajectory
from tests.test_cli import AGENTGYM, free_port

__all__ = ["AGENTGYM", "free_port", "record", "start_trainer", "torchrun", "trajectory", "wait_serving"]


def record(i: int, env: str = "maze", tokens: int = 64, **fields: Any) -> dict[str, Any]:
    """A trajectory's JSON object exactly as the rollout engine writes it (`Trajectory.to_json`, for a
    token-level policy), about `tokens` tokens long."""
    generated = tokens // 4
    rec: dict[str, Any] = {
        "item_id": f"{env}_{i}",
        "conversations": [
            {"from": "human", "loss": None, "value": f"You are in a maze. Task {i}."},
            {"from": "gpt", "loss": False, "value": "OK"},
            {"from": "human", "loss": None, "value": "You are at 1, 4." * (1 + tokens // 64)},
            {"from": "gpt", "loss": True, "value": "Thought:\nGo down.\n\nAction:\nmove down"},
            {"from": "human", "loss": None, "value": "Success! ☺ \t tab and newline\n"},
        ],
        "reward": float(i % 3 == 0),
        "success": int(i % 3 == 0),
        "env": env,
        "task_id": i,
        "seed": i,  # no "sample": the first sample (0) is not written
        "rounds": 1,
        "finish": "done",
        "policy": "hf",
        "input_ids": [(i * 7 + t) % 50_000 for t in range(tokens)],
        "loss_mask": [0] * (tokens - generated) + [1] * generated,
        "logprobs": [None] * (tokens - generated) + [-0.5 - t / 1000 for t in range(generated)],
        "weight_version": "v0",
        "timing": {"start": 1.7e9 + i, "duration_s": 0.25, "policy_s": 0.2, "env_s": 0.01},
    }
    rec.update(fields)
    return rec


def trajectory(
    i: int, env: str = "maze", tokens: int = 64, *, validate: bool = True, **fields: Any
) -> Trajectory:
    """`record(...)` as the typed Trajectory; `validate=False` keeps a deliberately invalid one."""
    return Trajectory.from_json(record(i, env, tokens, **fields), validate=validate)


def start_trainer(dir: Path, port: int, log: Path, *extra: str) -> subprocess.Popen[bytes]:
    """`agentgym trainer serve` as a real process (its store in `dir`/store), its logs (JSON lines)
    appended to `log`."""
    with log.open("ab") as f:
        return subprocess.Popen(
            [AGENTGYM, "trainer", "serve", "--dir", str(dir), "--port", str(port), "--grace", "1", *extra],
            stdout=subprocess.DEVNULL,
            stderr=f,
        )


def wait_serving(port: int, proc: subprocess.Popen[bytes], log: Path, timeout_s: float = 60.0) -> None:
    """Until the trainer's health check answers SERVING."""
    deadline = time.monotonic() + timeout_s
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            assert proc.poll() is None, f"trainer exited ({proc.returncode}): {log.read_text()}"
            try:
                req = health_pb2.HealthCheckRequest(service="agentgym.v1.TrajectoryService")
                if stub.Check(req, timeout=1).status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.05)
    raise TimeoutError(f"trainer on {port} not serving: {log.read_text()}")


def torchrun(script: Path, *args: str) -> list[dict[str, object]]:
    """Run `script ARGS... RESULTS_DIR` as two CPU processes; each rank writes RESULTS_DIR/rank-N.json
    (a file per rank: the ranks' stdout lines can interleave). Returns them in rank order."""
    exe = str(Path(sys.executable).with_name("torchrun"))
    results = Path(tempfile.mkdtemp(dir=script.parent))
    out = subprocess.run([exe, "--nproc-per-node", "2", "--master-port", str(free_port()), str(script), *args, str(results)],
                         capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    return [json.loads((results / f"rank-{rank}.json").read_text()) for rank in range(2)]
