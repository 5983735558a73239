"""No Chromium outlives an `agentgym serve` process hosting webarena: not on SIGTERM, not on SIGKILL."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from agentgym.client import EnvClient

from .conftest import T_EXACT

AGENTGYM = str(Path(sys.executable).with_name("agentgym"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def alive(procs: list[psutil.Process]) -> list[str]:
    left = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                left.append(f"{p.pid} {p.name()}")
        except psutil.NoSuchProcess:
            pass
    return left


@pytest.mark.timeout(90)
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_no_chromium_outlives_the_server(sig: signal.Signals, tiny_settings: dict[str, str]) -> None:
    port = free_port()
    flags = [f for k, v in tiny_settings.items() for f in ("--env-setting", f"webarena.{k}={v}")]
    proc = subprocess.Popen(
        [AGENTGYM, "serve", "--port", str(port), "--envs", "webarena", "--grace", "0", *flags],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip

    async def episode_then_signal() -> list[psutil.Process]:
        async with EnvClient(f"127.0.0.1:{port}") as client:
            deadline = time.monotonic() + 60
            while True:
                assert proc.poll() is None, f"server exited: {proc.stderr.read() if proc.stderr else ''}"
                try:
                    await client.server_status()
                    break
                except Exception:
                    if time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.2)
            async with client.episode("webarena", T_EXACT) as ep:
                assert "Tiny Home" in ep.last.observation
                tree = psutil.Process(proc.pid).children(recursive=True)
                assert any("chrom" in p.name().lower() for p in tree), [p.name() for p in tree]
                os.kill(proc.pid, sig)
                await asyncio.to_thread(proc.wait, 30)
        return tree

    try:
        tree = asyncio.run(episode_then_signal())
        # Chromium's own children (renderers, zygote) notice their parent's end by a closed pipe:
        # give them a moment.
        deadline = time.monotonic() + 15
        while alive(tree) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert alive(tree) == [], f"left after {sig.name}: {alive(tree)}"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
