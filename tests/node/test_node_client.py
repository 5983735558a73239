"""The Python client uses the Node.js server exactly like a Python one: routing by env across both
at once, the expert over gRPC, the same typed errors for the same mistakes."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Awaitable

from agentgym.client.envclient import EnvClient
from agentgym.client.errors import AgentGymError
from tests.conftest import StartServer
from tests.node.conftest import StartNode, requires_node

pytestmark = requires_node

SOKOBAN_TASKS = [0, 999, 1000, 1999, 2000, 2999]


async def solve_with_expert(client: EnvClient, env: str, task_id: int) -> tuple[str, bool, int]:
    async with client.episode(env, task_id) as ep:
        result = ep.initial
        while not result.over:
            result = await ep.step(await ep.expert())
        return ep.address, result.success, result.step_index


async def test_one_client_routes_envs_to_the_server_that_hosts_them(
    start_server: StartServer, start_node: StartNode
) -> None:
    py = await start_server(envs=["maze", "wordle"])
    node = await start_node("--envs", "sokoban")
    py_address = f"127.0.0.1:{py.port}"
    async with EnvClient([py_address, node.address]) as client:
        envs = await client.envs()
        assert {"maze", "wordle", "sokoban"} <= set(envs)
        sokoban = envs["sokoban"]
        assert sokoban.task_count == 3000 and sokoban.max_rounds == 40 and sokoban.has_expert
        assert sokoban.success_threshold == 1.0
        assert set(sokoban.splits) == {"train", "test", "easy", "medium", "hard"}
        assert len(sokoban.tasks("test")) == 300 and len(sokoban.tasks("train")) == 2700
        assert "Thought:" in sokoban.instruction and "Action:" in sokoban.instruction

        # Many episodes at once over one client: each goes to the server hosting its env, and the
        # experts solve them (Sokoban's over gRPC from the Node server).
        jobs = [solve_with_expert(client, "sokoban", t) for t in SOKOBAN_TASKS]
        jobs += [solve_with_expert(client, "maze", t) for t in (0, 7, 30)]
        results = await asyncio.gather(*jobs)
    for (address, success, steps), env in zip(results, ["sokoban"] * 6 + ["maze"] * 3, strict=True):
        assert address == (node.address if env == "sokoban" else py_address)
        assert success, f"{env} episode not solved by its expert in {steps} steps"
        assert steps <= 40


async def error_script(address: str) -> list[str]:
    """The same mistakes, in order; the name of the error (or "ok") each one gets."""
    seen: list[str] = []

    async def attempt(call: Awaitable[object]) -> None:
        try:
            await call
            seen.append("ok")
        except AgentGymError as exc:
            seen.append(type(exc).__name__)
            assert exc.message, f"{type(exc).__name__} without a message"

    async with EnvClient(address) as client:
        await attempt(client.open_episode("no-such-env", 0))
        await attempt(client.open_episode("conformance", 8))
        await attempt(client.open_episode("conformance", 0, options={"nope": "1"}))
        await attempt(client.open_episode("conformance", 0, options={"hang_s": "soon"}))
        async with client.episode("conformance", 0) as ep:
            await attempt(ep.step(""))
            await attempt(ep.step("x" * (64 * 1024 + 1)))
            await attempt(ep.reset(8))
            await attempt(ep.step("finish"))
            await attempt(ep.step("ping"))
            await attempt(ep.expert())
        full = [await client.open_episode("conformance", i) for i in range(4)]
        await attempt(client.open_episode("conformance", 4))
        for ep in full:
            await ep.close()
        async with client.episode("conformance", 1) as ep:
            await attempt(ep.step("crash"))
            await attempt(ep.step("ping"))
        async with client.episode("conformance", 2, options={"hang_s": "5"}) as ep:
            await attempt(ep.step("hang"))
    return seen


async def test_same_mistakes_give_the_same_typed_errors(
    start_server: StartServer, start_node: StartNode
) -> None:
    py = await start_server(envs=["maze", "conformance"], step_timeout_s=1.0)
    node = await start_node("--envs", "sokoban,conformance", "--step-timeout", "1")
    from_python = await error_script(f"127.0.0.1:{py.port}")
    from_node = await error_script(node.address)
    assert from_python == [
        "NotFound",
        "OutOfRange",
        "InvalidArgument",
        "InvalidArgument",
        "InvalidArgument",
        "InvalidArgument",
        "OutOfRange",
        "ok",
        "FailedPrecondition",
        "FailedPrecondition",
        "ResourceExhausted",
        "Internal",
        "FailedPrecondition",
        "DeadlineExceeded",
    ]
    assert from_node == from_python


async def test_envs_cli_lists_both_servers(start_server: StartServer, start_node: StartNode) -> None:
    py = await start_server(envs=["maze"])
    node = await start_node("--envs", "sokoban")
    proc = await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,
            "-c",
            "import sys; from agentgym.client.cli import main; sys.exit(main())",
            "envs",
            "--server",
            f"127.0.0.1:{py.port},{node.address}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "250"},
    )
    assert proc.returncode == 0, proc.stderr
    assert "maze" in proc.stdout and "sokoban" in proc.stdout
    assert "agentgym-python" in proc.stdout and "agentgym-node" in proc.stdout
