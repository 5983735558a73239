"""The Node.js env server (envs/node) as a real subprocess on a free loopback port.

Tests here skip when `node` is not installed; they fail, with the command to run, when it is
installed but `npm ci` has not been (`make install` does it).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import grpc
import pytest

from agentgym.v1 import env_pb2 as pb

ROOT = Path(__file__).resolve().parents[2]
NODE_DIR = ROOT / "envs" / "node"
MAIN = NODE_DIR / "src" / "main.js"
NODE = shutil.which("node")

# Every test module here sets `pytestmark = requires_node`.
requires_node = pytest.mark.skipif(NODE is None, reason="node (Node.js >= 20) is not installed")


class NodeServer:
    """A running `node envs/node/src/main.js` process; its stderr (JSON log lines) is collected."""

    def __init__(self, args: list[str]) -> None:
        if not (NODE_DIR / "node_modules" / "@grpc" / "grpc-js").is_dir():
            pytest.fail(
                f"the Node server's packages are not installed: run `npm ci --prefix {NODE_DIR}` (or make install)"
            )
        assert NODE is not None
        self.proc = subprocess.Popen(
            [NODE, str(MAIN), "--port", "0", *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._started = threading.Event()
        self.port = 0
        threading.Thread(target=self._read, daemon=True).start()
        if not self._started.wait(30) or not self.port:
            self.proc.kill()
            raise RuntimeError("node server did not start:\n" + "".join(self.lines))

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)
            if not self._started.is_set():
                try:
                    doc = json.loads(line)
                except ValueError:
                    continue
                if doc.get("event") == "server started":
                    self.port = int(doc["port"])
                    self._started.set()
        self._started.set()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def logs(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.lines if line.strip()]

    def stop(self, timeout_s: float = 20.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise


async def list_envs(address: str) -> pb.ListEnvsResponse:
    async with grpc.aio.insecure_channel(address) as channel:
        method = channel.unary_unary(
            "/agentgym.v1.EnvService/ListEnvs",
            request_serializer=pb.ListEnvsRequest.SerializeToString,
            response_deserializer=pb.ListEnvsResponse.FromString,
        )
        return await method(pb.ListEnvsRequest(), timeout=10)


async def wait_live(address: str, target: int, within_s: float) -> int:
    deadline = time.monotonic() + within_s
    while True:
        live = (await list_envs(address)).server.live_episodes
        if live == target or time.monotonic() > deadline:
            return live
        await asyncio.sleep(0.05)


StartNode = Callable[..., Awaitable[NodeServer]]


@pytest.fixture
async def start_node() -> AsyncIterator[StartNode]:
    """`await start_node("--envs", "sokoban", ...)` starts a Node server on a free port. On teardown
    every server must report no live episode (no leak), then stop cleanly on SIGTERM (exit 0)."""
    servers: list[NodeServer] = []

    async def start(*args: str) -> NodeServer:
        srv = await asyncio.to_thread(NodeServer, ["--grace", "0", "--step-timeout", "2", *args])
        servers.append(srv)
        return srv

    yield start
    problems = []
    for srv in servers:
        if srv.proc.poll() is None:
            live = await wait_live(srv.address, 0, 3.0)
            if live:
                problems.append(f"{srv.address}: {live} live episodes")
        code = await asyncio.to_thread(srv.stop)
        if code != 0:
            problems.append(f"{srv.address}: exit code {code}\n{''.join(srv.lines[-20:])}")
    assert not problems, problems
