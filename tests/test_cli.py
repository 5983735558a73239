"""The `agentgym` command, run as a user would: real processes, real ports, signals."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

AGENTGYM = str(Path(sys.executable).with_name("agentgym"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_listening(port: int, proc: subprocess.Popen[str], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"server exited early: {proc.stderr.read() if proc.stderr else ''}"
        out = subprocess.run(
            [AGENTGYM, "envs", "--server", f"127.0.0.1:{port}"], capture_output=True, text=True
        )
        if out.returncode == 0:
            return
        time.sleep(0.2)
    raise TimeoutError(f"server on {port} not ready")


@pytest.fixture
def served() -> Iterator[tuple[int, subprocess.Popen[str]]]:
    port = free_port()
    proc = subprocess.Popen(
        [AGENTGYM, "serve", "--port", str(port), "--envs", "maze,wordle,textcraft,conformance", "--step-timeout", "2", "--grace", "1"],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_listening(port, proc)
        yield port, proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def test_envs_lists_what_the_server_hosts(served: tuple[int, subprocess.Popen[str]]) -> None:
    port, _ = served
    out = subprocess.run([AGENTGYM, "envs", "--server", f"127.0.0.1:{port}"], capture_output=True, text=True,
                         env={**os.environ, "COLUMNS": "200"}, check=True)  # fmt: skip
    for name in ("maze", "wordle", "textcraft", "conformance"):
        assert name in out.stdout
    assert "0/20000 episodes live" in out.stdout


def test_play_in_the_terminal(served: tuple[int, subprocess.Popen[str]]) -> None:
    port, _ = served
    moves = "\n".join(["move left", ":expert", "move down", "move down", "move down", "move down", "move right",
                       "move right", "move right", "move down", "move down", "move down", ":quit"])  # fmt: skip
    out = subprocess.run([AGENTGYM, "play", "maze", "--task", "3", "--server", f"127.0.0.1:{port}"], input=moves,
                         capture_output=True, text=True, timeout=60, env={**os.environ, "COLUMNS": "200"})  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "Your current position is at position 1, 4" in out.stdout
    assert "expert: move down" in out.stdout
    assert "Success" in out.stdout and "solved" in out.stdout


def test_play_without_a_server_starts_one() -> None:
    out = subprocess.run([AGENTGYM, "--log-level", "warning", "play", "wordle", "--task", "0"], input="s h i r e\n:quit\n",
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "Let's start Wordle!" in out.stdout


def test_play_reports_bad_task_clearly() -> None:
    out = subprocess.run([AGENTGYM, "--log-level", "warning", "play", "maze", "--task", "99999"], input="",
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode == 1 and "OUT_OF_RANGE" in out.stdout


async def test_an_error_in_play_on_the_default_server_is_reported_not_replayed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An error raised while using the default server reaches the caller as it is (it once made the
    client fall back to an embedded server mid-episode and fail with a RuntimeError)."""
    from rich.console import Console

    from agentgym.client.cli import common
    from agentgym.client.errors import OutOfRange
    from agentgym.server.app import Server
    from agentgym.server.config import ServerConfig

    server = await Server.start(ServerConfig(port=0, envs=["maze"]))
    monkeypatch.setattr(common, "DEFAULT_SERVER", f"127.0.0.1:{server.port}")
    try:
        with pytest.raises(OutOfRange):
            async with common.connect(None, ["maze"], Console(quiet=True)) as client:
                await client.open_episode("maze", 99999)
    finally:
        await server.stop(0)


def test_conformance_command(served: tuple[int, subprocess.Popen[str]]) -> None:
    port, _ = served
    out = subprocess.run([AGENTGYM, "conformance", f"127.0.0.1:{port}"], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "COLUMNS": "200"})  # fmt: skip
    assert out.returncode == 0, out.stdout
    assert "20 passed, 0 failed, 0 skipped" in out.stdout


def test_sigterm_shuts_down_gracefully_with_structured_logs(
    served: tuple[int, subprocess.Popen[str]],
) -> None:
    port, proc = served
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    assert proc.stderr is not None
    events = [json.loads(line) for line in proc.stderr.read().splitlines() if line.startswith("{")]
    names = [e["event"] for e in events]
    assert "server started" in names and "shutting down" in names and "server stopped" in names
    started = next(e for e in events if e["event"] == "server started")
    assert started["address"] == f"127.0.0.1:{port}" and "maze" in started["envs"]


def test_several_worker_processes_share_the_port() -> None:
    port = free_port()
    proc = subprocess.Popen([AGENTGYM, "--log-level", "warning", "serve", "--port", str(port), "--envs", "maze", "--workers", "2",
                             "--max-episodes", "100"], stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        wait_listening(port, proc)
        out = subprocess.run([AGENTGYM, "envs", "--server", f"127.0.0.1:{port}"], capture_output=True, text=True,
                             env={**os.environ, "COLUMNS": "200"}, check=True)  # fmt: skip
        assert "0/50 episodes live" in out.stdout  # each worker holds half the limit
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def test_bad_flags_are_clear() -> None:
    out = subprocess.run(
        [AGENTGYM, "serve", "--envs", "maze,pacman"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode != 0 and "no env named 'pacman'" in out.stderr
    out = subprocess.run(
        [AGENTGYM, "serve", "--max-episodes", "0"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode != 0 and "max_episodes must be at least 1" in out.stderr


def test_train_bc_successful_only_keeps_what_succeeded() -> None:
    # Expert data for BC: only the tasks the expert finished (a rollout keeps its failures too).
    from agentgym.client.cli import build_parser
    from agentgym.client.cli.train import bc_query
    from agentgym.core.trajectory import Trajectory, Turn
    from agentgym.trainer.store import Query

    def parsed(*flags: str) -> Query:
        args = build_parser().parse_args(
            ["train", "bc", "--init", "tiny", "--data", "x.jsonl", "--out", "o", *flags]
        )
        return Query.of(**bc_query(args))

    turns = [Turn("human", "go"), Turn("gpt", "Action:\nmove up", True)]
    records = [
        Trajectory(
            item_id=f"maze_{i}", conversations=turns, reward=None if ok is None else float(ok), success=ok
        )
        for i, ok in enumerate((True, False, None))
    ]
    assert [t.item_id for t in records if parsed("--successful-only").matches(t)] == ["maze_0"]
    assert len([t for t in records if parsed().matches(t)]) == 3
