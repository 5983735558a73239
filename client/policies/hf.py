"""The `hf` policy: a transformers model in this process, with dynamic batching.

Concurrent `act` calls queue up; a batcher takes whatever arrived within `batch_wait_ms` (up to
`max_batch`), left-pads it, runs one `generate` in a worker thread (torch releases the GIL) and
hands each episode its tokens and log-probabilities. The CPU default and the test backend; on a GPU
it runs bf16. Token in, token out, like the sglang policy. A request that cannot be generated fails
alone: prompts too long for the context or holding unknown token ids are refused before batching,
and a batch that fails anyway is re-run request by request.

Reproducibility: every request carries a seed (`act` derives it from the policy's seed, the
episode's env, task id, env seed and sample, and the turn index: see `seeding.py`) and is sampled
from its own `torch.Generator`, so its tokens depend on (prompt, seed, weights) only, never on which
requests shared its batch or in what order they arrived. Greedy decoding needs no seed.

What batching still changes: a prompt's logits in a left-padded batch are not bit-identical to its
logits alone, because CPU matmul kernels pick their blocking, and with it the order of float
additions, by the matrix shapes (batch size, padded length): on the tiny test model the logits differ
by up to ~1e-6 (float32). A token changes only when that moves an argmax over a near-tie (greedy) or
a sampled uniform across a cumulative-probability boundary (sampling). Measured: no turn changed, of
192 greedy and 185 T=0.7 maze turns (about 6,500 tokens each) of a BC-trained mini model, each
generated alone and in a shuffled batch of 8, nor of 3 x 300 random prompts on the tiny model;
tests/client/test_determinism.py checks 30 prompts. On a GPU in bf16 the differences are far larger.
The thread count does not change results (1 vs 2 threads: bit-identical).

Log-probabilities: each generated token's is its log-probability under the distribution it was
sampled from, after temperature and before top-p: log_softmax(logits / T) at temperature T > 0, and
log_softmax(logits) when decoding greedily (T == 0). Top-p only decides which tokens may be drawn;
it does not change the recorded value (as SGLang's `output_token_logprobs` by default, i.e.
without SGLANG_RETURN_ORIGINAL_LOGPROB).
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agentgym.client.policies.base import Policy, PolicyError, Sampling, Turn
from agentgym.client.policies.chat import Conversation
from agentgym.client.policies.seeding import SEED_BITS, TurnSeeds
from agentgym.core import metrics
from agentgym.core.chat import ChatTokens, eos_token_ids

if TYPE_CHECKING:
    from agentgym.client.envclient import Episode

log = logging.getLogger(__name__)


@dataclass
class Generation:
    token_ids: list[int]
    logprobs: list[float]
    finish_reason: str  # stop | length
    prompt_tokens: int


@dataclass
class _Request:
    ids: list[int]
    sampling: Sampling
    seed: int
    future: asyncio.Future[Generation]


class HFPolicy(Policy):
    name = "hf"

    def __init__(
        self,
        model_path: str,
        sampling: Sampling | None = None,
        *,
        device: str | None = None,
        max_batch: int = 32,
        batch_wait_ms: float = 5.0,
        seed: int = 0,
    ) -> None:
        self.model_path = model_path
        self.sampling = sampling or Sampling()
        self.device = device
        self.max_batch = max_batch
        self.batch_wait_s = batch_wait_ms / 1000
        self.seed = seed
        self.turn_seeds = TurnSeeds(seed)
        self._unseeded = random.Random(seed)  # seeds for requests that bring none, in arrival order
        self.weight_version = ""
        self.model: Any = None
        self.tokenizer: Any = None
        self._queue: asyncio.Queue[_Request] | None = None
        self._task: asyncio.Task[None] | None = None
        self._swap = asyncio.Lock()
        self.stats = {"batches": 0, "sequences": 0, "generated_tokens": 0, "generate_s": 0.0}

    # --- lifecycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        self.model, self.tokenizer = await asyncio.to_thread(self._load, self.model_path)
        self.chat = ChatTokens(self.tokenizer, eos_token_ids(self.model, self.tokenizer))
        self.weight_version = _version(self.model_path)
        self._queue = asyncio.Queue()
        self._task = asyncio.ensure_future(self._batcher())

    def _load(self, path: str) -> tuple[Any, Any]:
        if not os.path.isdir(path):
            raise PolicyError(
                f"hf policy: {path!r} is not a model directory (config.json, weights, tokenizer)"
            )
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.device = device
        dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
        tokenizer = AutoTokenizer.from_pretrained(path)
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(device).eval()
        return model, tokenizer

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def load_weights(self, model_path: str, weight_version: str = "") -> None:
        """Load new weights; requests wait while the model is swapped. Empty `weight_version`:
        the directory's name and the time its weights were written."""
        path = model_path
        async with self._swap:
            model, tokenizer = await asyncio.to_thread(self._load, path)
            self.model, self.tokenizer, self.model_path = model, tokenizer, path
            self.chat = ChatTokens(tokenizer, eos_token_ids(model, tokenizer))
            self.weight_version = weight_version or _version(path)
        log.info("policy weights reloaded", extra={"model": path, "weight_version": self.weight_version})

    def describe(self) -> dict[str, str]:
        return {
            "policy": self.name,
            "model": self.model_path,
            "device": str(self.device),
            "weight_version": self.weight_version,
        }

    # --- acting ----------------------------------------------------------------------------------------
    async def act(self, conversation: Conversation, episode: Episode) -> Turn:
        gen = await self.generate(conversation.input_ids, seed=self.turn_seeds(conversation, episode))
        assert self.chat is not None
        return Turn(
            text=self.chat.decode(gen.token_ids),
            token_ids=gen.token_ids,
            logprobs=gen.logprobs,
            finish_reason=gen.finish_reason,
            weight_version=self.weight_version,
            prompt_tokens=gen.prompt_tokens,
            completion_tokens=len(gen.token_ids),
        )

    def finish(self, episode: Episode) -> None:
        self.turn_seeds.finish(episode)

    async def generate(
        self, ids: list[int], sampling: Sampling | None = None, seed: int | None = None
    ) -> Generation:
        """Tokens for one prompt. With a seed, a sampled reply depends only on (ids, sampling, seed,
        weights); without one, the request takes the next seed of the policy's own stream."""
        if self._queue is None:
            raise PolicyError("the hf policy is not started")
        limit = getattr(self.model.config, "max_position_embeddings", 1 << 30)
        if len(ids) >= limit:  # refused here, alone: in a batch it would fail its batch mates too
            raise PolicyError(f"prompt of {len(ids)} tokens does not fit the model's {limit}-token context")
        if not ids:
            raise PolicyError("empty prompt: give at least one token id")
        vocab = self.model.get_input_embeddings().num_embeddings
        lo, hi = min(ids), max(ids)
        if lo < 0 or hi >= vocab:  # likewise: the embedding lookup would fail the whole batch
            raise PolicyError(
                f"token id {lo if lo < 0 else hi} is not in the model's vocabulary of {vocab} ids (0..{vocab - 1})"
            )
        if seed is None:
            seed = self._unseeded.getrandbits(SEED_BITS)
        future: asyncio.Future[Generation] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Request(list(ids), sampling or self.sampling, int(seed), future))
        return await future

    async def _batcher(self) -> None:
        assert self._queue is not None
        queue = self._queue
        loop = asyncio.get_running_loop()
        while True:
            batch = [await queue.get()]
            deadline = loop.time() + self.batch_wait_s
            while len(batch) < self.max_batch:
                try:
                    batch.append(queue.get_nowait())
                    continue
                except asyncio.QueueEmpty:
                    pass
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(queue.get(), remaining))
                except TimeoutError:
                    break
            batch = [r for r in batch if not r.future.cancelled()]
            groups: dict[Sampling, list[_Request]] = {}
            for r in batch:
                groups.setdefault(r.sampling, []).append(r)
            async with self._swap:
                for sampling, reqs in groups.items():
                    await self._run(reqs, sampling)

    async def _run(self, reqs: list[_Request], sampling: Sampling) -> None:
        """Generate one batch and answer its requests. If the batch fails, each request is run
        alone, so that a request that cannot be generated fails itself only, not its batch mates."""
        try:
            results = await asyncio.to_thread(
                self._generate, [r.ids for r in reqs], sampling, [r.seed for r in reqs]
            )
        except Exception as exc:
            if len(reqs) > 1:
                log.warning("hf batch failed: running its requests one by one",
                            extra={"requests": len(reqs), "error": f"{type(exc).__name__}: {exc}"})  # fmt: skip
                for r in reqs:
                    await self._run([r], sampling)
                return
            if not reqs[0].future.done():
                reqs[0].future.set_exception(
                    PolicyError(f"hf generation failed: {type(exc).__name__}: {exc}")
                )
            return
        for r, res in zip(reqs, results, strict=True):
            if not r.future.done():
                r.future.set_result(res)

    def _generate(
        self, prompts: list[list[int]], s: Sampling, seeds: list[int] | None = None
    ) -> list[Generation]:
        """Left-padded batched sampling with a KV cache; row i samples from a generator seeded
        with seeds[i] (0 when not given).

        A plain decode loop: transformers' `generate` spends tens of milliseconds per step on
        bookkeeping that a tiny CPU model does not need, while one forward pass takes about one.
        Pad positions are masked out of attention and position ids count real tokens only, so a
        row sees exactly its own prompt (up to float rounding: see the module's docstring).
        """
        import torch

        t0 = time.perf_counter()
        model = self.model
        assert self.chat is not None
        eos = torch.tensor(self.chat.eos_ids)
        limit = getattr(model.config, "max_position_embeddings", 1 << 30)
        longest = max(len(p) for p in prompts)
        if longest >= limit:
            raise PolicyError(f"prompt of {longest} tokens does not fit the model's {limit}-token context")
        # Each row's own budget (its prompt's room in the context), not the longest row's: a reply
        # must not be cut short because a long prompt shared its batch.
        caps = torch.tensor([max(1, min(s.max_new_tokens, limit - len(p))) for p in prompts])
        max_new = int(caps.max())
        device = model.device
        batch = len(prompts)
        generators = []
        if s.temperature > 0:
            for seed in seeds if seeds is not None else [0] * batch:
                generators.append(torch.Generator(device=device).manual_seed(int(seed)))
        input_ids = torch.full((batch, longest), self.tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((batch, longest), dtype=torch.long)
        for i, p in enumerate(prompts):
            input_ids[i, longest - len(p) :] = torch.tensor(p)
            mask[i, longest - len(p) :] = 1
        input_ids, mask = input_ids.to(device), mask.to(device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        out_ids = torch.zeros((batch, max_new), dtype=torch.long)
        out_lp = torch.zeros((batch, max_new))
        done = torch.zeros(batch, dtype=torch.bool)  # stopped by an end-of-turn token
        lengths = caps.clone()
        past = None
        step_ids, step_pos = input_ids, positions
        with torch.inference_mode():
            for t in range(max_new):
                out = model(
                    input_ids=step_ids,
                    attention_mask=mask,
                    position_ids=step_pos,
                    past_key_values=past,
                    use_cache=True,
                )
                past = out.past_key_values
                logits = out.logits[:, -1].float()
                # The sampling distribution's log-probabilities (after temperature, before top-p).
                logp = torch.log_softmax(logits / s.temperature if s.temperature > 0 else logits, dim=-1)
                next_ids = _sample(logits, s, generators) if s.temperature > 0 else logits.argmax(-1)
                out_ids[:, t] = next_ids.cpu()
                out_lp[:, t] = logp.gather(-1, next_ids[:, None])[:, 0].cpu()
                finished_now = torch.isin(next_ids.cpu(), eos) & ~done & (t < caps)
                lengths[finished_now] = t + 1
                done |= finished_now
                if bool((done | (caps <= t + 1)).all()):
                    break
                step_ids = next_ids[:, None]
                # Rows past their budget keep stepping (their tokens are dropped); keep their
                # positions inside the model's range.
                step_pos = (step_pos[:, -1:] + 1).clamp(max=limit - 1)
                mask = torch.cat([mask, torch.ones((batch, 1), dtype=mask.dtype, device=device)], dim=1)
        results = []
        for i in range(batch):
            n = int(lengths[i])
            ids = out_ids[i, :n].tolist()
            results.append(
                Generation(
                    ids, out_lp[i, :n].tolist(), "stop" if bool(done[i]) else "length", len(prompts[i])
                )
            )
        self.stats["batches"] += 1
        metrics.POLICY_BATCH_SIZE.observe(batch)
        self.stats["sequences"] += batch
        self.stats["generated_tokens"] += sum(len(r.token_ids) for r in results)
        self.stats["generate_s"] += time.perf_counter() - t0
        return results


def _sample(logits: Any, s: Sampling, generators: list[Any]) -> Any:
    """Temperature and nucleus (top-p) sampling from a [batch, vocab] logits tensor, row i drawing
    from generators[i] only (never the global RNG, whose state other rows would share)."""
    import torch

    probs = torch.softmax(logits / s.temperature, dim=-1)
    if s.top_p < 1.0:
        sorted_probs, order = probs.sort(dim=-1, descending=True, stable=True)
        keep = sorted_probs.cumsum(-1) - sorted_probs < s.top_p
        sorted_probs = sorted_probs * keep
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
    return torch.cat([torch.multinomial(probs[i], 1, generator=g) for i, g in enumerate(generators)])


def _version(path: str) -> str:
    """A weight version for records: the directory and when its weights were written."""
    try:
        mtime = max(
            os.path.getmtime(os.path.join(path, f))
            for f in os.listdir(path)
            if f.endswith((".safetensors", ".bin"))
        )
    except ValueError:
        mtime = 0.0
    return f"{os.path.basename(os.path.normpath(path))}@{int(mtime)}"
