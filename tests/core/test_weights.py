"""Loading weights on several policy servers: retried, then all or none (rolled back)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web

from agentgym.core.weights import WeightsError, load_weights


class FakeServer:
    """SGLang's /update_weights_from_disk, answering as `answer(body, n)` says (n: calls so far)."""

    def __init__(self, answer: Callable[[dict[str, Any], int], dict[str, Any] | int]) -> None:
        self.answer = answer
        self.calls: list[dict[str, Any]] = []
        self.serving = "v0"

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.calls.append(body)
        reply = self.answer(body, len(self.calls))
        if isinstance(reply, int):
            return web.Response(status=reply, text="overloaded")
        if reply.get("success"):
            self.serving = body["weight_version"]
        return web.json_response(reply)


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[FakeServer], Any]]:
    runners = []

    async def start(fake: FakeServer) -> str:
        app = web.Application()
        app.add_routes([web.post("/update_weights_from_disk", fake.handle)])
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        return f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]

    yield start
    for r in runners:
        await r.cleanup()


OK = {"success": True, "message": "Succeeded to update model weights."}


async def test_every_server_loads(serve: Any) -> None:
    a, b = FakeServer(lambda body, n: OK), FakeServer(lambda body, n: OK)
    await load_weights([await serve(a), await serve(b)], "/ckpt/1", "v1")
    assert a.serving == b.serving == "v1"
    assert a.calls == [{"model_path": "/ckpt/1", "weight_version": "v1"}]


async def test_a_transient_refusal_is_retried(serve: Any) -> None:
    flaky = FakeServer(lambda body, n: 503 if n == 1 else OK)
    await load_weights([await serve(flaky)], "/ckpt/1", "v1", backoff_s=0.01)
    assert flaky.serving == "v1" and len(flaky.calls) == 2


async def test_a_refusal_rolls_the_others_back(serve: Any) -> None:
    good = FakeServer(lambda body, n: OK)
    bad = FakeServer(lambda body, n: {"success": False, "message": "out of memory"})
    urls = [await serve(good), await serve(bad)]
    with pytest.raises(WeightsError, match=r"1 of 2 policy server.* could not load /ckpt/2 as v2") as info:
        await load_weights(urls, "/ckpt/2", "v2", previous=("/ckpt/1", "v1"), retries=1, backoff_s=0.01)
    assert "out of memory" in str(info.value) and "rolled back 1 server(s) to v1" in str(info.value)
    assert good.serving == "v1"  # never left on a mix of versions
    assert [c["weight_version"] for c in good.calls] == ["v2", "v1"]
    assert len(bad.calls) == 2  # tried, then retried once
    assert info.value.serving == {urls[0]: "v1", urls[1]: "unknown"}


async def test_without_a_previous_version_the_error_says_what_is_served(serve: Any) -> None:
    good, bad = FakeServer(lambda body, n: OK), FakeServer(lambda body, n: 500)
    urls = [await serve(good), await serve(bad)]
    with pytest.raises(WeightsError, match="now serve v1 \\(no previous version to roll back to\\)"):
        await load_weights(urls, "/ckpt/1", "v1", retries=0)


async def test_an_unreachable_server_is_an_error_not_a_hang() -> None:
    with pytest.raises(WeightsError, match=r"ClientConnectorError|Cannot connect"):
        await load_weights(["http://127.0.0.1:9"], "/ckpt/1", "v1", retries=0)
