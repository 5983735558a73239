"""Client-side failure cases: eval's rates when episodes fail, one bad prompt in a batched hf policy
server, the sglang policy's servers going down and coming back, and benchmarks that must reach their
tables (`make bench` runs them all)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from agentgym.client import EnvClient
from agentgym.client.policies.base import PolicyError, Sampling
from agentgym.client.policies.hf import HFPolicy
from agentgym.client.policies.hf_server import PolicyServer
from agentgym.client.policies.sglang import SGLangPolicy
from agentgym.client.react import EpisodeSpec, run_episode
from agentgym.server.app import Server
from tests.client.test_rollout import run_cli
from tests.conftest import wait_for


def test_eval_counts_failed_episodes_as_failures(tmp_path: Path) -> None:
    """The random policy with seed 1 crashes conformance tasks 1 and 4 (their env raises: the
    episode fails) and finishes 0, 2 and 5: 3 successes of 5 planned episodes is 60%, not the 100%
    of the 3 that finished."""
    out = tmp_path / "e"
    args = ("eval", "--policy", "random", "--seed", "1", "--envs", "conformance", "--tasks", "0,1,2,4,5",
            "--no-progress", "--out", str(out))  # fmt: skip
    for attempt in range(2):  # and the same once resumed: the failed episodes are retried, and fail again
        done = run_cli(*args)
        assert done.returncode == 0, done.stdout + done.stderr
        results = json.loads((out / "results.json").read_text())
        m = results["per_env"]["conformance"]
        assert (m["planned"], m["episodes"], m["failed"]) == (5, 3, 2), (attempt, m)
        assert m["success"] == 0.6 and m["success_finished"] == 1.0
        assert m["reward"] == 0.6 and m["reward_finished"] == 1.0
        assert results["average"]["success"] == 0.6 and results["average"]["success_finished"] == 1.0
        md = (out / "results.md").read_text()
        assert "| success % | 60.0 | 60.0 |" in md and "| success % of finished | 100.0 | 100.0 |" in md
        assert "| failed | 2 |" in md
        row = next(line for line in done.stdout.splitlines() if line.strip("│┃ ").startswith("conformance"))
        cells = [c.strip() for c in row.strip("│").split("│")]
        assert cells[1:5] == ["3/5", "2", "60.0", "100.0"], cells
        assert "2 episodes failed and count as failures" in done.stdout


# --- one bad prompt in a batch --------------------------------------------------------------------------
SAMPLING = Sampling(temperature=1.0, max_new_tokens=8)


@pytest.fixture
async def hf(tiny_model: str) -> AsyncIterator[HFPolicy]:
    policy = HFPolicy(tiny_model, SAMPLING, max_batch=8, batch_wait_ms=50)
    await policy.start()
    yield policy
    await policy.close()


async def test_hf_policy_isolates_a_bad_prompt_from_its_batch_mates(hf: HFPolicy) -> None:
    """A token id the model does not have fails its own request only; the requests that shared its
    batch are answered (before: the whole batch failed with the embedding's IndexError)."""
    assert hf.chat is not None
    good = [hf.chat.encode(f"hello {i}") for i in range(3)]
    vocab = hf.model.get_input_embeddings().num_embeddings
    results = await asyncio.gather(
        *(hf.generate(p, seed=i) for i, p in enumerate(good)), hf.generate([5, vocab + 7], seed=9),
        return_exceptions=True,
    )  # fmt: skip
    assert all(not isinstance(r, BaseException) and r.token_ids for r in results[:3]), results
    assert isinstance(results[3], PolicyError) and f"token id {vocab + 7}" in str(results[3])
    assert f"vocabulary of {vocab}" in str(results[3])


async def test_hf_server_answers_each_prompt_of_a_batch_on_its_own(hf: HFPolicy) -> None:
    """A batched /generate with a too-long prompt and a prompt of unknown token ids: those two come
    back as SGLang's abort replies, in place; the others are generated; the HTTP status is 200."""
    assert hf.chat is not None
    server = PolicyServer(hf, strict=True)
    await server.start()
    try:
        limit = hf.model.config.max_position_embeddings
        prompts = [hf.chat.encode("hello"), [5] * limit, [5, 1 << 20], hf.chat.encode("again")]
        body = {"rid": ["a", "b", "c", "d"], "input_ids": prompts, "return_logprob": True,
                "sampling_params": {"max_new_tokens": 4, "temperature": 1.0}}  # fmt: skip
        async with aiohttp.ClientSession() as http:
            async with http.post(f"http://127.0.0.1:{server.port}/generate", json=body) as resp:
                assert resp.status == 200, await resp.text()
                replies = await resp.json()
            # The single form still answers a bad prompt with an HTTP error.
            one = {"input_ids": [5, 1 << 20], "sampling_params": {"max_new_tokens": 4}}
            async with http.post(f"http://127.0.0.1:{server.port}/generate", json=one) as resp:
                assert resp.status == 400 and "token id 1048576" in await resp.text()
    finally:
        await server.stop()
    assert [r["meta_info"]["id"] for r in replies] == ["a", "b", "c", "d"]
    for i in (0, 3):
        assert replies[i]["output_ids"] and replies[i]["meta_info"]["finish_reason"]["type"] in (
            "stop",
            "length",
        )
    for i, message in ((1, f"does not fit the model's {limit}-token context"), (2, "token id 1048576")):
        finish = replies[i]["meta_info"]["finish_reason"]
        assert finish["type"] == "abort" and message in finish["message"] and finish["status_code"] == 400
        assert replies[i]["output_ids"] == [] and replies[i]["meta_info"]["output_token_logprobs"] == []


async def test_sglang_policy_resends_a_refused_batch_prompt_by_prompt(tiny_model: str) -> None:
    """A server that refuses a whole batch for one bad prompt (HTTP 400, as SGLang does when one
    prompt fails validation): the policy sends the batch's prompts one by one, so only the bad
    prompt's turn fails."""
    bad = 2047

    async def generate(request: web.Request) -> web.Response:
        body = await request.json()
        batch = isinstance(body["rid"], list)
        prompts = body["input_ids"] if batch else [body["input_ids"]]
        if any(bad in p for p in prompts):
            return web.json_response({"error": {"message": "token id out of range", "code": 400}}, status=400)
        replies = [{"text": "x", "output_ids": [7], "meta_info": {"id": rid, "output_token_logprobs": [[-0.5, 7, None]],
                    "finish_reason": {"type": "length", "length": 1}}}
                   for rid in (body["rid"] if batch else [body["rid"]])]  # fmt: skip
        return web.json_response(replies if batch else replies[0])

    async def health(request: web.Request) -> web.Response:
        return web.json_response({})

    async def model_info(request: web.Request) -> web.Response:
        return web.json_response({"model_path": tiny_model})

    app = web.Application()
    app.router.add_get("/health", health)
    app.router.add_get("/model_info", model_info)
    app.router.add_post("/generate", generate)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    policy = SGLangPolicy(f"http://127.0.0.1:{port}", sampling=SAMPLING, max_batch=8, batch_wait_ms=50)
    await policy.start()
    try:
        items = [(f"r{i}", [5, 6, bad if i == 2 else 8], None) for i in range(4)]
        futures = [asyncio.get_running_loop().create_future() for _ in items]
        for item, fut in zip(items, futures, strict=True):
            policy._enqueue(policy.urls[0], (*item, fut))
        results = await asyncio.gather(*futures, return_exceptions=True)
    finally:
        await policy.close()
        await runner.cleanup()
    assert [r["meta_info"]["id"] for i, r in enumerate(results) if i != 2] == ["r0", "r1", "r3"]
    assert isinstance(results[2], PolicyError) and "HTTP 400" in str(results[2])
    assert policy.healthy(policy.urls[0])  # a refused prompt says nothing about the server's health


# --- the sglang policy over several servers: one dies, then comes back ---------------------------------
async def test_sglang_policy_routes_around_a_dead_server_and_takes_it_back(
    server: Server, hf: HFPolicy
) -> None:
    """Two hf policy servers; B is listed first, so a tie in load sends new episodes to it. B is
    stopped (its port refuses connections): the turn bound for it moves to A, and later episodes
    never try B. B is started again on its port: the policy's probe finds it, and it takes episodes."""
    a, b = PolicyServer(hf), PolicyServer(hf)
    await a.start()
    port_b = await b.start()
    url_a, url_b = f"http://127.0.0.1:{a.port}", f"http://127.0.0.1:{port_b}"
    policy = SGLangPolicy([url_b, url_a], sampling=SAMPLING, retries=0, probe_s=0.1, max_probe_s=0.4)
    await policy.start()
    try:
        async with EnvClient(f"127.0.0.1:{server.port}") as client:
            first = await run_episode(client, policy, EpisodeSpec("maze", 0), max_rounds=2)
            assert first.rounds and len(b.requests) > 0 and not a.requests  # B took it
            await b.stop()  # B dies
            served_by_a = len(a.requests)
            later = [
                await run_episode(client, policy, EpisodeSpec("maze", i), max_rounds=2) for i in range(1, 5)
            ]
            assert all(r.rounds for r in later)  # every episode played, on A
            assert len(a.requests) > served_by_a and not policy.healthy(url_b)
            assert policy.failures[url_b] == 1  # only the first turn after B died tried it
            # B comes back on the same port: probed, it takes episodes again.
            b = PolicyServer(hf)
            await b.start(port=port_b)
            assert await wait_for(lambda: policy.healthy(url_b), 10), "the policy never took B back"
            back = await run_episode(client, policy, EpisodeSpec("maze", 5), max_rounds=2)
            assert back.rounds and b.requests  # B served it (ties go to B again)
    finally:
        await policy.close()
        await a.stop()
        await b.stop()


async def test_sglang_policy_with_every_server_down_fails_turns_clearly(hf: HFPolicy) -> None:
    a = PolicyServer(hf)
    await a.start()
    policy = SGLangPolicy(
        f"http://127.0.0.1:{a.port}", sampling=SAMPLING, retries=0, probe_s=0.1, max_probe_s=0.2
    )
    await policy.start()
    try:
        await a.stop()
        with pytest.raises(PolicyError, match="failed after 1 tries"):
            await policy._generate(policy.urls[0], [("r0", [5, 6], None)])
        assert not policy.healthy(policy.urls[0])
        with pytest.raises(PolicyError, match="no policy server is answering"):
            policy._route("episode-1")
    finally:
        await policy.close()


# --- benchmarks ---------------------------------------------------------------------------------------
ROOT = Path(__file__).resolve().parents[2]
# Not benchmarks: servers the benchmarks start.
BENCH_HELPERS = {"fake_sglang.py", "pingpong_server.py"}


def test_make_bench_runs_every_benchmark() -> None:
    makefile = (ROOT / "Makefile").read_text()
    target = makefile.split("\nbench:", 1)[1].split("\n\n", 1)[0]
    listed = set(re.findall(r"bench/(\w+\.py)", target))
    present = {p.name for p in (ROOT / "bench").glob("*.py")} - BENCH_HELPERS
    assert present <= listed, f"make bench leaves out {sorted(present - listed)}"


@pytest.mark.skipif(
    shutil.which("node") is None or not (ROOT / "envs/node/node_modules").is_dir(),
    reason="needs Node.js and envs/node's packages (make node)",
)
def test_node_sokoban_bench_reaches_its_table() -> None:
    """It asked the Python server for Maze task ids up to 2,025 (Maze has 556): OUT_OF_RANGE."""
    done = subprocess.run([sys.executable, str(ROOT / "bench/node_sokoban.py"), "--seconds", "0.5", "--concurrency", "1,8"],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [line.split() for line in done.stdout.splitlines() if line.split() and line.split()[0].isdigit()]
    assert [r[0] for r in rows] == ["1", "8"] and all(float(r[1]) > 0 and float(r[3]) > 0 for r in rows)
