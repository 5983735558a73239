"""The rollout engine and `agentgym eval`/`rollout`: scale, resumption, failure budgets, formats."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from agentgym.client import EnvClient
from agentgym.client.policies import make_policy
from agentgym.client.rollout import FileSink, Rollout, RolloutConfig
from agentgym.client.tasks import TaskSpecError, expand, select_tasks, tasks_from_item_file
from agentgym.core.trajectory import (
    JsonlWriter,
    ReadReport,
    Trajectory,
    TrajectoryError,
    Turn,
    read_items,
    read_trajectories,
    split_item_id,
)
from agentgym.server.app import Server
from tests.conftest import StartServer
from tests.test_cli import AGENTGYM, free_port, wait_listening


async def test_two_thousand_concurrent_episodes_lose_nothing(
    start_server: StartServer, tmp_path: Path
) -> None:
    srv = await start_server(envs=["wordle"])
    out = tmp_path / "wordle.jsonl"
    async with EnvClient(f"127.0.0.1:{srv.port}") as client:
        specs = expand({"wordle": list(range(2000))})
        engine = Rollout(
            client, make_policy("expert"), RolloutConfig(concurrency=2000, progress=False), [FileSink(out)]
        )
        summary = await engine.run(specs)
    assert summary.finished == 2000 and summary.failed == 0 and summary.ok
    ids = [r.item_id for r in read_trajectories(out, strict=True)]
    assert len(ids) == 2000 and len(set(ids)) == 2000
    assert set(ids) == {f"wordle_{i}" for i in range(2000)}
    assert summary.per_env["wordle"]["success"] == 1.0


async def test_resume_skips_finished_records(server: Server, tmp_path: Path) -> None:
    out = tmp_path / "t.jsonl"
    async with EnvClient(f"127.0.0.1:{server.port}") as client:
        first = await Rollout(
            client, make_policy("expert"), RolloutConfig(progress=False), [FileSink(out)]
        ).run(expand({"wordle": list(range(10))}))
        assert first.finished == 10
        second = await Rollout(
            client, make_policy("expert"), RolloutConfig(progress=False), [FileSink(out)]
        ).run(expand({"wordle": list(range(15))}))
    assert second.skipped == 10 and second.finished == 5
    assert Counter(r.item_id for r in read_trajectories(out, strict=True)).most_common(1)[0][1] == 1


async def test_samples_have_distinct_record_ids(server: Server, tmp_path: Path) -> None:
    out = tmp_path / "s.jsonl"
    async with EnvClient(f"127.0.0.1:{server.port}") as client:
        summary = await Rollout(
            client, make_policy("random", seed=1), RolloutConfig(progress=False), [FileSink(out)]
        ).run(expand({"maze": [0, 1]}, samples=3))
    assert summary.finished == 6
    records = list(read_trajectories(out, strict=True))
    assert sorted((r.item_id, r.sample) for r in records) == [
        (f"maze_{t}", s) for t in (0, 1) for s in range(3)
    ]
    assert sorted(r.record_id for r in records) == sorted(
        f"maze_{t}" + (f"#{s}" if s else "") for t in (0, 1) for s in range(3)
    )


def run_cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([AGENTGYM, "--log-level", "warning", *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "COLUMNS": "200"})  # fmt: skip


def test_eval_expert_and_random_from_the_cli(tmp_path: Path) -> None:
    out = run_cli(
        "eval",
        "--policy",
        "expert",
        "--envs",
        "maze,wordle,textcraft",
        "--max-tasks",
        "40",
        "--out",
        str(tmp_path / "e"),
    )
    assert out.returncode == 0, out.stdout + out.stderr
    results = json.loads((tmp_path / "e" / "results.json").read_text())
    assert {env: m["success"] for env, m in results["per_env"].items()} == {
        "maze": 1.0,
        "textcraft": 1.0,
        "wordle": 1.0,
    }
    assert "| success % | 100.0 | 100.0 | 100.0 | 100.0 |" in (tmp_path / "e" / "results.md").read_text()
    assert "AgentEval: expert" in out.stdout
    out = run_cli(
        "eval",
        "--policy",
        "random",
        "--envs",
        "maze,wordle,textcraft",
        "--max-tasks",
        "40",
        "--out",
        str(tmp_path / "r"),
    )
    assert out.returncode == 0, out.stdout + out.stderr
    random_results = json.loads((tmp_path / "r" / "results.json").read_text())
    assert random_results["average"]["success"] < 0.2  # far below the expert's 1.0


def test_killed_rollout_resumes_without_redoing_episodes(tmp_path: Path) -> None:
    out = tmp_path / "run.jsonl"
    cmd = [AGENTGYM, "--log-level", "warning", "rollout", "--policy", "expert", "--envs", "wordle", "--tasks", "all",
           "--concurrency", "4", "--no-progress", "--out", str(out)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not out.exists() or out.read_bytes().count(b"\n") < 100):
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = out.read_bytes()
    done_before = {r.item_id for r in read_trajectories(out, strict=True)}
    assert 100 <= len(done_before) < 2000, "kill the run mid-way"
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    records = list(read_trajectories(out, strict=True))
    ids = [r.item_id for r in records]
    assert len(ids) == len(set(ids)) == 2000  # everything, once
    # The records written before the kill are untouched (a torn last line, if any, was cut).
    complete = before[: before.rfind(b"\n") + 1]
    assert out.read_bytes().startswith(complete)
    assert (
        f"{len(done_before)} already done" in result.stdout
        or f"{len(done_before) - 0} already done" in result.stdout
    )


def test_env_server_going_away_spends_the_failure_budget(tmp_path: Path) -> None:
    port = free_port()
    server = subprocess.Popen([AGENTGYM, "--log-level", "warning", "serve", "--port", str(port), "--envs", "maze"],
                              stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        wait_listening(port, server)
        out = tmp_path / "r.jsonl"
        cmd = [AGENTGYM, "--log-level", "warning", "rollout", "--policy", "random", "--envs", "maze", "--tasks", "all",
               "--server", f"127.0.0.1:{port}", "--concurrency", "8", "--retries", "1", "--max-failures", "5",
               "--no-progress", "--out", str(out)]  # fmt: skip
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and (not out.exists() or out.read_bytes().count(b"\n") < 20):
            time.sleep(0.05)
        server.kill()
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if server.poll() is None:
            server.kill()
    assert proc.returncode == 1, stdout + stderr
    assert "stopped: failure budget spent" in stdout
    errors = [e for _, e in read_items(tmp_path / "r.errors.jsonl")]  # failure reports, not trajectories
    assert len(errors) >= 6 and all(
        "UNAVAILABLE" in e["error"] or "Unavailable" in e["error"] for e in errors
    )
    assert all(e["env"] == "maze" and e["item_id"] == f"maze_{e['task_id']}" for e in errors)
    assert len(list(read_trajectories(out, strict=True))) < 556


def test_agenttraj_files_as_published(tmp_path: Path) -> None:
    traj = [{"item_id": "webshop_6", "conversations": [{"from": "human", "loss": None, "value": "task"},
             {"from": "gpt", "loss": True, "value": "Thought: x\n\nAction:\nsearch[shoes]"}]},
            {"item_id": "lmrlgym_maze_3", "conversations": [{"from": "human", "loss": None, "value": "go"}]}]  # fmt: skip
    list_file = tmp_path / "webshop_train.json"
    list_file.write_text(json.dumps(traj))
    assert [(r.item_id, r.env, r.task_id) for r in read_trajectories(list_file, strict=True)] == [
        ("webshop_6", "webshop", None), ("lmrlgym_maze_3", "maze", None),
    ]  # fmt: skip
    evalset = tmp_path / "maze_test.json"
    evalset.write_text(
        json.dumps(
            [
                {"item_id": "lmrlgym_maze_3", "conversations": None},
                {"item_id": "maze_4", "conversations": None},
            ]
        )
    )
    assert [(s.env, s.task_id) for s in tasks_from_item_file(evalset)] == [("maze", 3), ("maze", 4)]
    report = ReadReport()  # AgentEval items are tasks, not trajectories: counted, not bad
    assert list(read_trajectories(evalset, strict=True, report=report)) == []
    assert report.no_conversation == 2 and not report.skipped
    assert split_item_id("sciworld_12") == ("sciworld", 12)
    assert split_item_id("lmrlgym_maze_3") == ("maze", 3)
    with pytest.raises(TrajectoryError, match="not <env>_<task index>"):
        split_item_id("webshop")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"item_id": "x_1", "conversations": [{"from": "robot", "value": "hi"}]}]))
    with pytest.raises(
        TrajectoryError, match=r"bad.json\[0\]: trajectory 'x_1': conversations\[0\] needs from"
    ):
        list(read_trajectories(bad, strict=True))
    report = ReadReport()  # not strict: skipped and reported by item id
    assert list(read_trajectories(bad, report=report)) == []
    assert [(item, "needs from" in why) for _, item, why in report.skipped] == [("x_1", True)]


def line(item_id: str) -> str:
    """One AgentTraj trajectory as a JSON line."""
    return (
        json.dumps({"item_id": item_id, "conversations": [{"from": "human", "loss": None, "value": "go"}]})
        + "\n"
    )


def test_jsonl_torn_tail_is_skipped_and_repaired(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text(line("maze_1") + line("maze_2") + '{"item_id": "ma')
    assert [r.item_id for r in read_trajectories(path, strict=True)] == ["maze_1", "maze_2"]
    writer = JsonlWriter(path)
    writer.write(Trajectory(item_id="maze_3", conversations=[Turn("human", "go")]))
    writer.close()
    assert [r.item_id for r in read_trajectories(path, strict=True)] == ["maze_1", "maze_2", "maze_3"]
    assert path.read_text().endswith("\n") and path.read_text().count("\n") == 3  # the torn line was cut
    path.write_text(line("maze_1") + "not json\n" + line("maze_2"))
    with pytest.raises(TrajectoryError, match=r"x.jsonl:2: not valid JSON"):
        list(read_trajectories(path, strict=True))
    report = ReadReport()  # not strict: the bad line is skipped and reported
    assert [r.item_id for r in read_trajectories(path, report=report)] == ["maze_1", "maze_2"]
    assert [(where.endswith("x.jsonl:2"), "not valid JSON" in why) for where, _, why in report.skipped] == [
        (True, True)
    ]


async def test_task_selection(client: EnvClient) -> None:
    info = await client.env_info("maze")
    assert select_tasks(info, "0-3,7") == [0, 1, 2, 3, 7]
    assert select_tasks(info, "split:original") == list(range(25))
    assert select_tasks(info, None, default_split="test")[:25] == list(range(25))
    assert len(select_tasks(info, "all")) == 556
    with pytest.raises(TaskSpecError, match="out of range"):
        select_tasks(info, "556")
    with pytest.raises(TaskSpecError, match="has no split 'dev'"):
        select_tasks(info, "split:dev")
    with pytest.raises(TaskSpecError, match="bad task selection"):
        select_tasks(info, "first-ten")
    specs = expand({"maze": [0, 1, 2], "wordle": [5]})
    assert [s.record_id for s in specs] == ["maze_0", "wordle_5", "maze_1", "maze_2"]  # interleaved


def test_cli_errors_are_clear(tmp_path: Path) -> None:
    out = run_cli("eval", "--policy", "hf", "--envs", "maze", "--out", str(tmp_path / "x"))
    assert out.returncode == 2 and "needs --model DIR" in out.stdout
    out = run_cli(
        "eval", "--policy", "expert", "--envs", "maze", "--tasks", "99999", "--out", str(tmp_path / "y")
    )
    assert out.returncode == 2 and "out of range" in out.stdout


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__]))
