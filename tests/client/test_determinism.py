"""Policy-side determinism: a turn's tokens depend on (prompt, seed, weights), never on timing.

The hf policy batches whatever arrives together; which requests share a batch, in what order, and
how much left padding that brings, follows timing. These tests check that none of it changes a
request's tokens: sampling draws from a per-request generator seeded by the request's own seed, and
greedy decoding of a prompt in a mixed, left-padded batch matches decoding it alone.

Batching does change logits by float rounding (CPU matmul kernels block by shape; about 1e-6 on the
tiny model), so a token could flip at an exact near-tie. Measured, each prompt generated alone and
in shuffled batches of 8: the tiny random model, greedy, T=1 and T=0.7/top-p 0.9, 0 of 300 prompts
each (32 new tokens, prompts of 5-300 tokens) differed; a mini model behaviour-cloned on 60 Maze
expert episodes, playing 24 Maze tasks for 8 rounds, 0 of 192 greedy turns (6,576 tokens) and 0 of
185 T=0.7 turns (6,295 tokens) differed. The tests below assert the same on their 30 prompts.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import pytest

from agentgym.client.policies.base import PolicyError, Sampling
from agentgym.client.policies.chat import Conversation
from agentgym.client.policies.hf import HFPolicy
from agentgym.client.policies.hf_server import PolicyServer
from agentgym.client.policies.seeding import TurnSeeds, agent_turns, derive_seed
from agentgym.client.policies.sglang import SGLangPolicy

GREEDY = Sampling(temperature=0.0, max_new_tokens=12)
SAMPLED = Sampling(temperature=1.0, top_p=0.9, max_new_tokens=12)


@dataclass
class FakeEpisode:
    """What a policy reads of `envclient.Episode`; a fresh random episode id each time, as servers do."""

    env: str
    task_id: int
    seed: int
    episode_id: str = field(default_factory=lambda: uuid.uuid4().hex)


@pytest.fixture
async def hf(tiny_model: str) -> AsyncIterator[HFPolicy]:
    policy = HFPolicy(tiny_model, SAMPLED, max_batch=8)
    await policy.start()
    yield policy
    await policy.close()


@pytest.fixture
async def policy_server(hf: HFPolicy) -> AsyncIterator[PolicyServer]:
    server = PolicyServer(hf, strict=True)  # refuses fields SGLang does not define
    await server.start()
    yield server
    await server.stop()


def random_prompts(hf: HFPolicy, n: int = 30, seed: int = 0) -> list[list[int]]:
    rng = random.Random(seed)
    vocab = len(hf.tokenizer)
    return [[rng.randrange(3, vocab) for _ in range(rng.randrange(3, 120))] for _ in range(n)]


def conversation(policy: HFPolicy | SGLangPolicy, task_id: int) -> Conversation:
    return Conversation.start("Solve the maze.", f"You are at ({task_id}, 1).", policy.chat)


@pytest.mark.parametrize("sampling", [GREEDY, SAMPLED], ids=["greedy", "sampled"])
async def test_batch_composition_does_not_change_tokens(hf: HFPolicy, sampling: Sampling) -> None:
    prompts = random_prompts(hf)
    seeds = [derive_seed("test", i) for i in range(len(prompts))]
    alone = [hf._generate([p], sampling, [s])[0].token_ids for p, s in zip(prompts, seeds, strict=True)]
    rng = random.Random(1)
    for size in (8, 5):  # two different partitions into mixed, left-padded batches
        order = list(range(len(prompts)))
        rng.shuffle(order)
        differ = []
        for start in range(0, len(order), size):
            idx = order[start : start + size]
            out = hf._generate([prompts[i] for i in idx], sampling, [seeds[i] for i in idx])
            differ += [i for i, g in zip(idx, out, strict=True) if g.token_ids != alone[i]]
        assert not differ, f"{len(differ)} of {len(prompts)} prompts changed in batches of {size}: {differ}"


async def test_a_long_prompt_does_not_shorten_its_batch_mates(hf: HFPolicy) -> None:
    """Each row's token budget is its own room in the context, not the longest row's."""
    config = hf.model.config
    saved = config.max_position_embeddings
    config.max_position_embeddings = 48  # a small context (Llama's rotary embeddings do not mind)
    try:
        short, long = random_prompts(hf, 40, seed=3)[:2]
        short, long = short[:5], (long * 10)[:40]
        alone = [hf._generate([p], GREEDY, [0])[0] for p in (short, long)]
        assert len(alone[1].token_ids) <= 8
        together = hf._generate([short, long], GREEDY, [0, 0])
        assert [g.token_ids for g in together] == [g.token_ids for g in alone]
        assert [g.finish_reason for g in together] == [g.finish_reason for g in alone]
        with pytest.raises(PolicyError, match="does not fit"):  # refused alone, before batching
            await hf.generate(long * 2)
    finally:
        config.max_position_embeddings = saved


async def test_concurrent_turns_do_not_depend_on_arrival_order(hf: HFPolicy) -> None:
    """`act` through the batcher: the same episodes, in opposite orders and other batch sizes, and
    one at a time, get the same turns."""
    assert hf.chat is not None

    async def play(order: list[int], max_batch: int, concurrent: bool) -> dict[int, list[int]]:
        hf.max_batch = max_batch
        hf.turn_seeds = TurnSeeds(hf.seed)  # a rerun: a fresh process numbers episodes afresh
        episodes = {i: FakeEpisode("maze", i, i) for i in order}
        convs = {i: conversation(hf, i) for i in order}
        if concurrent:
            turns = await asyncio.gather(*(hf.act(convs[i], episodes[i]) for i in order))
        else:
            turns = [await hf.act(convs[i], episodes[i]) for i in order]
        for ep in episodes.values():
            hf.finish(ep)
        return {i: t.token_ids or [] for i, t in zip(order, turns, strict=True)}

    tasks = list(range(12))
    first = await play(tasks, 8, True)
    assert await play(tasks[::-1], 3, True) == first
    assert await play(tasks, 1, False) == first
    assert len({tuple(t) for t in first.values()}) > 1  # the episodes' seeds differ


async def test_seeds_select_the_samples(hf: HFPolicy) -> None:
    prompt = random_prompts(hf, 1)[0]
    by_seed = [(await hf.generate(prompt, SAMPLED, seed)).token_ids for seed in range(8)]
    assert len({tuple(t) for t in by_seed}) >= 4  # different seeds: (typically) different samples
    again = await asyncio.gather(*(hf.generate(prompt, SAMPLED, seed) for seed in range(8)))
    assert [g.token_ids for g in again] == by_seed  # the same seeds, now in one batch: the same samples


def test_turn_seeds_are_stable_and_distinct() -> None:
    assert derive_seed(0, "maze", 3, 3, 0, 1) == 932606977  # no salted hash(): the same in every process
    seeds = TurnSeeds(0)
    a, b = FakeEpisode("maze", 3, 3), FakeEpisode("maze", 3, 3)  # two samples of one task
    conv = Conversation.start("instruction", "observation", None)
    first = seeds(conv, a)
    assert first == derive_seed(0, "maze", 3, 3, 0, agent_turns(conv)) and 0 <= first < 2**31
    assert seeds(conv, a) == first  # the same turn asks again: the same seed
    assert seeds(conv, b) != first  # the second episode of the same task is numbered 1
    assert TurnSeeds(1)(conv, FakeEpisode("maze", 3, 3)) != first  # the policy's seed counts
    other = FakeEpisode("maze", 4, 4)
    assert seeds(conv, other) != first  # so does the task
    conv.messages.append({"from": "gpt", "loss": True, "value": "Action: move up"})
    assert seeds(conv, a) != first  # and the turn
    # An episode that says which sample it is needs no numbering (and none is kept).
    sampled = FakeEpisode("maze", 3, 3)
    sampled.sample = 0  # type: ignore[attr-defined]
    assert TurnSeeds(0)(conv, sampled) == seeds(conv, a)
    for ep in (a, b, other):
        seeds.finish(ep)
    assert not seeds._numbered  # nothing kept past the episodes


async def test_hf_server_honours_sampling_seed(hf: HFPolicy, policy_server: PolicyServer) -> None:
    url = f"http://127.0.0.1:{policy_server.port}/generate"
    prompts = random_prompts(hf, 3, seed=2)

    def params(seed: int) -> dict[str, object]:
        return {"temperature": 1.0, "top_p": 0.9, "max_new_tokens": 12, "sampling_seed": seed}

    async with aiohttp.ClientSession() as http:

        async def post(body: dict[str, object]) -> tuple[int, object]:
            async with http.post(url, json=body) as resp:
                return resp.status, await resp.json()

        status, one = await post({"input_ids": prompts[1], "sampling_params": params(7)})
        assert status == 200
        _, again = await post({"input_ids": prompts[1], "sampling_params": params(7)})
        assert again["output_ids"] == one["output_ids"]  # type: ignore[index]
        # In a batch with other prompts and seeds (one sampling_params per prompt): the same tokens.
        status, batch = await post(
            {
                "input_ids": prompts,
                "sampling_params": [params(3), params(7), params(9)],
                "rid": ["a", "b", "c"],
            }
        )
        assert status == 200
        assert batch[1]["output_ids"] == one["output_ids"]  # type: ignore[index]
        direct = await hf.generate(prompts[0], SAMPLED, 3)
        assert batch[0]["output_ids"] == direct.token_ids  # type: ignore[index]
        # Other seeds give other samples (8 seeds: at least two distinct outputs).
        outs = [await post({"input_ids": prompts[1], "sampling_params": params(s)}) for s in range(8)]
        assert len({tuple(o["output_ids"]) for _, o in outs}) >= 2  # type: ignore[index]
        # Malformed: a seed that is not an integer; a list of sampling_params for one prompt.
        status, _ = await post({"input_ids": prompts[0], "sampling_params": params("x")})  # type: ignore[arg-type]
        assert status == 400
        status, _ = await post({"input_ids": prompts[0], "sampling_params": [params(1)]})
        assert status == 400


async def test_sglang_policy_sends_sampling_seed(hf: HFPolicy, policy_server: PolicyServer) -> None:
    url = f"http://127.0.0.1:{policy_server.port}"

    async def play(order: list[int], max_batch: int, sampling: Sampling = SAMPLED) -> dict[int, list[int]]:
        policy = SGLangPolicy(url, sampling=sampling, seed=5, max_batch=max_batch, batch_wait_ms=20)
        await policy.start()
        try:
            episodes = {i: FakeEpisode("maze", i, i) for i in order}
            turns = await asyncio.gather(*(policy.act(conversation(policy, i), episodes[i]) for i in order))
            for ep in episodes.values():
                policy.finish(ep)
        finally:
            await policy.close()
        return {i: t.token_ids or [] for i, t in zip(order, turns, strict=True)}

    tasks = list(range(6))
    first = await play(tasks, 64)
    bodies = [b for b in policy_server.requests if "input_ids" in b]
    assert any(isinstance(b["sampling_params"], list) for b in bodies)  # one batch, a seed per prompt
    sent = [p for b in bodies for p in (b["sampling_params"] if isinstance(b["sampling_params"], list) else [b["sampling_params"]])]  # fmt: skip
    conv = conversation(hf, 0)
    expected = {TurnSeeds(5)(conv, FakeEpisode("maze", i, i)) for i in tasks}
    assert {p["sampling_seed"] for p in sent} == expected
    # Other episode ids, the opposite order, one request per turn: the same turns.
    assert await play(tasks[::-1], 1) == first
    # What the server generated is what the hf policy gives that prompt and seed directly.
    seed = TurnSeeds(5)(conv, FakeEpisode("maze", 0, 0))
    assert (await hf.generate(conv.input_ids, SAMPLED, seed)).token_ids == first[0]
    # Greedy turns carry no seed.
    policy_server.requests.clear()
    await play(tasks[:2], 64, GREEDY)
    assert all(
        "sampling_seed" not in b["sampling_params"] for b in policy_server.requests if "input_ids" in b
    )
