"""Every policy backend against real env servers; SGLang and OpenAI over real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

from agentgym.client import EnvClient
from agentgym.client.policies import make_policy
from agentgym.client.policies.base import PolicyError, Sampling
from agentgym.client.policies.hf import HFPolicy
from agentgym.client.policies.hf_server import GENERATE_REQ_FIELDS, SAMPLING_PARAMS_FIELDS, PolicyServer
from agentgym.client.policies.openai import OpenAIPolicy
from agentgym.client.policies.sglang import SGLangPolicy, parse_generate_reply
from agentgym.client.react import EpisodeSpec, parse_action, run_episode
from agentgym.core.trajectory import Trajectory
from agentgym.server.app import Server

SAMPLING = Sampling(temperature=1.0, max_new_tokens=16)


@pytest.fixture
async def hf(tiny_model: str) -> AsyncIterator[HFPolicy]:
    policy = HFPolicy(tiny_model, SAMPLING, max_batch=8)
    await policy.start()
    yield policy
    await policy.close()


@pytest.fixture
async def policy_servers(hf: HFPolicy) -> AsyncIterator[list[PolicyServer]]:
    """Two SGLang-speaking servers (strict about field names), sharing one tiny model."""
    servers = [PolicyServer(hf, strict=True) for _ in range(2)]
    for s in servers:
        await s.start()
    yield servers
    for s in servers:
        await s.stop()


def segments_line_up(record: Trajectory, decode: Callable[[list[int]], str]) -> None:
    """Each run of loss-masked tokens decodes to the matching gpt turn, in order."""
    ids, mask, logprobs = record.input_ids, record.loss_mask, record.logprobs
    assert ids is not None and mask is not None and logprobs is not None
    assert len(ids) == len(mask) == len(logprobs)
    runs, current = [], []
    for tok, m in zip(ids, mask, strict=True):
        if m:
            current.append(tok)
        elif current:
            runs.append(current)
            current = []
    if current:
        runs.append(current)
    agent_turns = [t.value for t in record.conversations if t.role == "gpt" and t.loss]
    assert len(runs) == len(agent_turns) == record.rounds
    for run, text in zip(runs, agent_turns, strict=True):
        assert decode(run) == text
    generated = [lp for lp, m in zip(logprobs, mask, strict=True) if m]
    assert all(isinstance(lp, float) and lp <= 0 for lp in generated)


async def test_parse_action_last_action_wins() -> None:
    assert parse_action("Thought:\nx\n\nAction:\nmove up") == "move up"
    assert (
        parse_action("Action: a\nThought: no\nAction:\n  craft 1 stick using 2 planks  ")
        == "craft 1 stick using 2 planks"
    )
    assert parse_action("I think I'll go up") == "I think I'll go up"  # no Action: the env judges it
    assert parse_action("Action:\n") == "Action:"
    assert parse_action("Action: " + "é" * 10, max_bytes=5) == "éé"


async def test_hf_policy_end_to_end(server: Server, hf: HFPolicy) -> None:
    async with EnvClient(f"127.0.0.1:{server.port}") as client:
        records = [
            await run_episode(client, hf, EpisodeSpec(env, 1), max_rounds=3)
            for env in ("maze", "wordle", "textcraft")
        ]
    assert hf.stats["sequences"] >= 3
    for record in records:
        assert (
            record.policy == "hf" and (record.rounds or 0) >= 1 and record.weight_version == hf.weight_version
        )
        segments_line_up(record, hf.chat.decode)  # type: ignore[union-attr]


async def test_hf_batches_concurrent_requests(hf: HFPolicy) -> None:
    import asyncio

    prompts = [hf.chat.encode(f"hello {i}") for i in range(8)]  # type: ignore[union-attr]
    before = hf.stats["batches"]
    results = await asyncio.gather(*(hf.generate(p) for p in prompts))
    assert len(results) == 8 and all(r.token_ids for r in results)
    assert hf.stats["batches"] - before <= 2  # one or two batches, not eight


async def test_hf_reload_changes_the_weight_version(hf: HFPolicy, tiny_model: str) -> None:
    await hf.load_weights(tiny_model, "step-7")
    assert hf.weight_version == "step-7" and hf.describe()["weight_version"] == "step-7"
    with pytest.raises(PolicyError, match="is not a model directory"):
        await hf.load_weights("/nonexistent/model", "step-8")
    assert hf.weight_version == "step-7"  # a failed load leaves the weights as they were
    # Every policy has the one operation; those without weights refuse it.
    with pytest.raises(PolicyError, match="the expert policy has no weights to load"):
        await make_policy("expert").load_weights(tiny_model, "step-9")


async def test_sglang_policy_unbatched_sends_one_request_per_turn(
    server: Server, policy_servers: list[PolicyServer]
) -> None:
    policy = SGLangPolicy(f"http://127.0.0.1:{policy_servers[0].port}", sampling=SAMPLING, max_batch=1)
    await policy.start()
    try:
        async with EnvClient(f"127.0.0.1:{server.port}") as client:
            import asyncio

            records = await asyncio.gather(
                *(run_episode(client, policy, EpisodeSpec("maze", i), max_rounds=2) for i in range(4))
            )
    finally:
        await policy.close()
    turns = sum(r.rounds or 0 for r in records)
    assert turns and policy.http_requests == turns
    sent = [b for b in policy_servers[0].requests if "input_ids" in b]
    assert sent and all(isinstance(b["rid"], str) for b in sent)  # the single form, never a list


async def test_sglang_policy_token_in_token_out(
    server: Server, hf: HFPolicy, policy_servers: list[PolicyServer]
) -> None:
    urls = ",".join(f"http://127.0.0.1:{s.port}" for s in policy_servers)
    policy = SGLangPolicy(urls, sampling=SAMPLING)
    await policy.start()
    try:
        async with EnvClient(f"127.0.0.1:{server.port}") as client:
            import asyncio

            records = await asyncio.gather(
                *(run_episode(client, policy, EpisodeSpec("maze", i), max_rounds=3) for i in range(6))
            )
    finally:
        await policy.close()
    for record in records:
        segments_line_up(record, policy.chat.decode)  # type: ignore[union-attr]
        assert record.weight_version == hf.weight_version
    bodies = [b for s in policy_servers for b in s.requests if "input_ids" in b]
    assert bodies, "no /generate requests reached the servers"
    for body in bodies:  # exactly SGLang's field names (the strict servers would have refused others)
        assert set(body) <= GENERATE_REQ_FIELDS
        params = body["sampling_params"]  # one object, or one per prompt (seeded turns of a batch)
        for p in params if isinstance(params, list) else [params]:
            assert set(p) <= SAMPLING_PARAMS_FIELDS
            assert p["stop_token_ids"] == policy.chat.eos_ids  # type: ignore[union-attr]
            assert isinstance(p["sampling_seed"], int)  # temperature 1.0: every turn is seeded
        assert body["return_logprob"] is True and body["logprob_start_len"] == -1

    # Sticky routing: all turns of one episode went to one server; both servers got episodes.
    def episodes(server: PolicyServer) -> set[str]:
        rids = [
            r
            for b in server.requests
            if "rid" in b
            for r in (b["rid"] if isinstance(b["rid"], list) else [b["rid"]])
        ]
        return {r.rsplit("-", 1)[0] for r in rids}

    by_server = [episodes(s) for s in policy_servers]
    assert by_server[0] and by_server[1] and not by_server[0] & by_server[1]
    assert policy.sticky == {}  # forgotten when episodes end
    # Concurrent turns bound for one server travelled together (GenerateReqInput's batch form).
    turns = sum(r.rounds or 0 for r in records)
    assert policy.http_requests < turns
    assert any(
        isinstance(b["input_ids"][0], list) for s in policy_servers for b in s.requests if "input_ids" in b
    )


async def test_sglang_weight_update_and_flush(
    hf: HFPolicy, policy_servers: list[PolicyServer], tiny_model: str
) -> None:
    policy = SGLangPolicy(f"http://127.0.0.1:{policy_servers[0].port}")
    await policy.start()
    try:
        await policy.load_weights(tiny_model, "iter-1")
        assert policy.model_info["weight_version"] == "iter-1"
        await policy.flush_cache()
        with pytest.raises(PolicyError, match="could not load /no/such/model as iter-2"):
            await policy.load_weights("/no/such/model", "iter-2")
        assert hf.weight_version == "iter-1"  # the server still serves what it had
    finally:
        await policy.close()


def faulty_app(
    handler: Callable[[web.Request], Awaitable[web.Response]], info: dict[str, Any] | None = None
) -> web.Application:
    async def health(request: web.Request) -> web.Response:
        return web.Response(text="")

    async def model_info(request: web.Request) -> web.Response:
        return web.json_response(info or {})

    app = web.Application()
    app.router.add_get("/health", health)
    app.router.add_get("/model_info", model_info)
    app.router.add_post("/generate", handler)
    app.router.add_post("/v1/chat/completions", handler)
    return app


@pytest.fixture
async def serve_app() -> AsyncIterator[Callable[[web.Application], Awaitable[str]]]:
    runners = []

    async def serve(app: web.Application) -> str:
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        return f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]

    yield serve
    for r in runners:
        await r.cleanup()


@pytest.mark.parametrize(
    ("reply", "status", "message"),
    [
        ({"error": "CUDA out of memory"}, 500, "answered HTTP 500"),
        ("<html>bad gateway</html>", 200, "answered non-JSON"),
        ({"text": "hi", "meta_info": {"output_token_logprobs": []}}, 200, "no output_ids"),
        ({"output_ids": [5, 6], "meta_info": {"output_token_logprobs": [[-0.1, 5, None]]}}, 200, "do not line up"),
        ({"output_ids": [5], "text": "x"}, 200, "no meta_info"),
        ({"output_ids": [5], "meta_info": {"output_token_logprobs": [[-0.1, 5, None]],
          "finish_reason": {"type": "abort", "message": "server busy"}}}, 200, "aborted the request"),
    ],
)  # fmt: skip
async def test_sglang_error_paths(
    server: Server, tiny_model: str, serve_app: Any, reply: Any, status: int, message: str
) -> None:
    async def handler(request: web.Request) -> web.Response:
        if isinstance(reply, str):
            return web.Response(text=reply, status=status)
        return web.json_response(reply, status=status)

    url = await serve_app(faulty_app(handler, {"model_path": tiny_model}))
    policy = SGLangPolicy(url, sampling=SAMPLING, retries=0)
    await policy.start()
    try:
        async with EnvClient(f"127.0.0.1:{server.port}") as client:
            with pytest.raises(PolicyError, match=message):
                await run_episode(client, policy, EpisodeSpec("maze", 0))
    finally:
        await policy.close()


async def test_sglang_unreachable_and_misconfigured(tiny_model: str) -> None:
    policy = SGLangPolicy("http://127.0.0.1:1", tokenizer=tiny_model, retries=1)
    with pytest.raises(PolicyError, match="failed after 2 tries"):
        await policy.start()
    await policy.close()
    with pytest.raises(PolicyError, match="needs --policy-url"):
        make_policy("sglang")
    with pytest.raises(PolicyError, match="needs --model DIR"):
        make_policy("hf")
    ok = {"output_ids": [3, 4], "text": "x", "meta_info": {"output_token_logprobs": [[-1.0, 3, None], [-2.0, 4, None]],
          "finish_reason": {"type": "length", "length": 2}, "weight_version": "v9", "prompt_tokens": 7}}  # fmt: skip
    turn = parse_generate_reply(ok)
    assert (turn.token_ids, turn.logprobs, turn.finish_reason, turn.weight_version) == (
        [3, 4],
        [-1.0, -2.0],
        "length",
        "v9",
    )


async def test_openai_policy(server: Server, hf: HFPolicy, policy_servers: list[PolicyServer]) -> None:
    policy = OpenAIPolicy(f"http://127.0.0.1:{policy_servers[0].port}/v1", model="tiny", sampling=SAMPLING)
    await policy.start()
    try:
        async with EnvClient(f"127.0.0.1:{server.port}") as client:
            record = await run_episode(client, policy, EpisodeSpec("wordle", 2), max_rounds=2)
    finally:
        await policy.close()
    assert record.policy == "openai" and record.rounds == 2 and record.input_ids is None
    body = next(b for b in policy_servers[0].requests if "messages" in b)
    assert (
        body["model"] == "tiny"
        and body["messages"][0]["role"] == "user"
        and body["messages"][1]["role"] == "assistant"
    )


async def test_openai_retries_rate_limits_then_fails_clearly(server: Server, serve_app: Any) -> None:
    calls = {"n": 0}

    async def handler(request: web.Request) -> web.Response:
        calls["n"] += 1
        if calls["n"] <= 2:
            return web.json_response({"error": "rate limited"}, status=429)
        if calls["n"] == 3:
            return web.json_response(
                {
                    "choices": [
                        {"message": {"content": "Thought:\nok\n\nAction:\nmove up"}, "finish_reason": "stop"}
                    ]
                }
            )
        return web.json_response({"error": {"message": "invalid model"}}, status=400)

    url = await serve_app(faulty_app(handler))
    policy = OpenAIPolicy(url + "/v1", model="m", retries=3)
    await policy.start()
    try:
        async with EnvClient(f"127.0.0.1:{server.port}") as client:
            with pytest.raises(PolicyError, match="answered HTTP 400"):
                await run_episode(client, policy, EpisodeSpec("maze", 0))
    finally:
        await policy.close()
    assert calls["n"] == 4  # two 429s retried, one success (a real step), then the 400 ended it


async def test_expert_and_random(server: Server) -> None:
    expert, rnd = make_policy("expert"), make_policy("random", seed=3)
    async with EnvClient(f"127.0.0.1:{server.port}") as client:
        rnd.prepare(await client.envs())
        good = await run_episode(client, expert, EpisodeSpec("textcraft", 7))
        bad = await run_episode(client, rnd, EpisodeSpec("textcraft", 7))
        again = await run_episode(client, rnd, EpisodeSpec("textcraft", 7))
    assert good.success is True and good.conversations[3].value.startswith("Thought:\n")
    assert bad.success is False and bad.finish == "truncated"
    assert bad.conversations == again.conversations  # seeded


async def test_episodes_record_the_step_limit_and_each_steps_reward(server: Server) -> None:
    """max_steps is the limit the server put in force (the env's max_rounds unless the episode asked
    for another); step_rewards holds each step's own reward, one per round, summing to the score."""
    expert, rnd = make_policy("expert"), make_policy("random", seed=3)
    async with EnvClient(f"127.0.0.1:{server.port}") as client:
        envs = await client.envs()
        rnd.prepare(envs)
        solved = await run_episode(client, expert, EpisodeSpec("maze", 3))
        cut = await run_episode(client, rnd, EpisodeSpec("maze", 3), max_rounds=4)
        unlimited = await run_episode(client, rnd, EpisodeSpec("maze", 4))
    assert envs["maze"].max_rounds == 15
    assert (solved.success, solved.finish, solved.max_steps) == (True, "done", 15)
    assert solved.step_rewards is not None and len(solved.step_rewards) == solved.rounds
    assert solved.step_rewards[-1] == 1.0 and sum(solved.step_rewards) == solved.reward == 1.0
    assert (cut.finish, cut.rounds, cut.max_steps) == ("truncated", 4, 4)
    assert cut.step_rewards is not None and len(cut.step_rewards) == 4
    assert sum(cut.step_rewards) == cut.reward
    assert unlimited.max_steps == 15 and (unlimited.rounds or 0) <= 15
    assert unlimited.step_rewards is not None and len(unlimited.step_rewards) == unlimited.rounds
    assert sum(unlimited.step_rewards) == unlimited.reward
    for record in (solved, cut, unlimited):  # the same through both codecs
        assert Trajectory.from_json(record.to_json()) == record
        assert Trajectory.from_proto(record.to_proto()) == record


async def test_hf_logprobs_are_those_of_the_sampling_distribution(server: Server, tiny_model: str) -> None:
    """At temperature T each generated token's recorded logprob is log_softmax(logits / T) at its
    position, as a teacher-forced pass of the same model over the recorded input_ids computes it
    (top-p does not change it); greedy decoding records the raw distribution's."""
    import torch

    temperature = 0.7
    for top_p in (1.0, 0.9):
        policy = HFPolicy(
            tiny_model, Sampling(temperature=temperature, top_p=top_p, max_new_tokens=12), seed=5
        )
        await policy.start()
        try:
            async with EnvClient(f"127.0.0.1:{server.port}") as client:
                record = await run_episode(client, policy, EpisodeSpec("maze", 2), max_rounds=2)
            ids, mask, logprobs = record.input_ids, record.loss_mask, record.logprobs
            assert ids is not None and mask is not None and logprobs is not None
            with torch.inference_mode():
                logits = policy.model(input_ids=torch.tensor([ids])).logits[0].float()
            scaled = torch.log_softmax(logits / temperature, dim=-1)
            raw = torch.log_softmax(logits, dim=-1)
            generated = [i for i, m in enumerate(mask) if m]
            assert generated and generated[0] > 0
            for i in generated:  # token i was sampled from the distribution at position i - 1
                recorded = logprobs[i]
                assert recorded is not None
                assert recorded == pytest.approx(float(scaled[i - 1, ids[i]]), abs=1e-4)
            # ... and that is not the raw distribution's value (the old, off-policy record).
            assert max(abs(logprobs[i] - float(raw[i - 1, ids[i]])) for i in generated) > 0.1  # type: ignore[operator]
        finally:
            await policy.close()
    greedy = HFPolicy(tiny_model, Sampling(temperature=0.0, max_new_tokens=8))
    await greedy.start()
    try:
        prompt = greedy.chat.encode("hello")  # type: ignore[union-attr]
        gen = await greedy.generate(prompt)
        full = prompt + gen.token_ids
        with torch.inference_mode():
            raw = torch.log_softmax(greedy.model(input_ids=torch.tensor([full])).logits[0].float(), dim=-1)
        for k, tok in enumerate(gen.token_ids):
            assert gen.logprobs[k] == pytest.approx(float(raw[len(prompt) + k - 1, tok]), abs=1e-4)
    finally:
        await greedy.close()
