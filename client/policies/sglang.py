"""The `sglang` policy: SGLang's native HTTP API, token ids in, token ids out.

Requests and replies use the fields SGLang 0.5.x defines in `sglang/srt/managers/io_struct.py`
(`GenerateReqInput`, `UpdateWeightFromDiskReqInput`) and returns from its tokenizer manager:

    POST /generate  {"rid", "input_ids", "sampling_params", "return_logprob", "logprob_start_len"}
      -> {"text", "output_ids", "meta_info": {"id", "finish_reason", "prompt_tokens",
          "completion_tokens", "weight_version", "output_token_logprobs": [[logprob, id, text], ...]}}
    GET  /health, GET /model_info, POST /flush_cache
    POST /update_weights_from_disk {"model_path", "weight_version"} -> {"success", "message"}

With several servers, an episode's first turn goes to the server with the fewest requests in
flight from this client, and its later turns to the same server, whose prefix cache holds the
conversation so far. Turns bound for one server within `batch_wait_ms` travel as one batched
/generate (GenerateReqInput's list form): with thousands of episodes, one HTTP round trip carries
dozens of turns, and the client's cost per turn drops accordingly.

When sampling (temperature > 0), each turn sends `sampling_params.sampling_seed`, derived from the
policy's seed, the episode's env, task id, env seed and sample, and the turn index (`seeding.py`),
so a turn's random draws do not depend on which requests the server batched it with. A batch of
seeded turns sends one sampling_params object per prompt (GenerateReqInput's list form). SGLang
honours the seed only when launched with `--enable-deterministic-inference`; otherwise it samples
from its own stream and ignores the field.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import aiohttp
import orjson

from agentgym.client.policies.base import Policy, PolicyError, Sampling, Turn
from agentgym.client.policies.chat import Conversation
from agentgym.client.policies.seeding import TurnSeeds
from agentgym.core.chat import ChatTokens
from agentgym.core.weights import WeightsError, load_weights

if TYPE_CHECKING:
    from agentgym.client.envclient import Episode

_JSON = {"Content-Type": "application/json"}
# A turn waiting to be sent: (rid, input_ids, sampling seed or None, the future its reply completes).
_Pending = tuple[str, list[int], int | None, asyncio.Future[Any]]

# The GenerateReqInput fields this client sends; a test server checks them against SGLang's.
GENERATE_FIELDS = ("rid", "input_ids", "sampling_params", "return_logprob", "logprob_start_len")
SAMPLING_FIELDS = (
    "temperature",
    "top_p",
    "max_new_tokens",
    "stop_token_ids",
    "skip_special_tokens",
    "no_stop_trim",
    "sampling_seed",
)


class SGLangPolicy(Policy):
    name = "sglang"

    def __init__(
        self,
        urls: str | Sequence[str],
        tokenizer: str | None = None,
        sampling: Sampling | None = None,
        *,
        timeout_s: float = 600.0,
        retries: int = 2,
        max_batch: int = 64,
        batch_wait_ms: float = 2.0,
        seed: int = 0,
    ) -> None:
        if isinstance(urls, str):
            urls = [u.strip() for u in urls.split(",") if u.strip()]
        if not urls:
            raise PolicyError("the sglang policy needs at least one server URL (http://host:port)")
        self.urls = [u.rstrip("/") for u in urls]
        self.tokenizer_path = tokenizer
        self.sampling = sampling or Sampling()
        self.seed = seed
        self.turn_seeds = TurnSeeds(seed)
        self.timeout_s = timeout_s
        self.retries = retries
        self.in_flight = dict.fromkeys(self.urls, 0)
        self.sticky: dict[str, str] = {}  # episode id -> server url
        self.model_info: dict[str, Any] = {}
        self.max_batch = max(1, max_batch)
        self.batch_wait_s = batch_wait_ms / 1000
        self._pending: dict[str, list[_Pending]] = {u: [] for u in self.urls}
        self._flush_at: dict[str, asyncio.TimerHandle | None] = dict.fromkeys(self.urls)
        self._session: aiohttp.ClientSession | None = None
        self._rids = itertools.count()
        self.http_requests = 0

    # --- lifecycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.timeout_s),
            connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=60),
        )
        for url in self.urls:
            await self._get(url, "/health")
        self.model_info = await self._get(self.urls[0], "/model_info")
        path = (
            self.tokenizer_path or self.model_info.get("tokenizer_path") or self.model_info.get("model_path")
        )
        if not path:
            raise PolicyError(f"{self.urls[0]}/model_info names no tokenizer; pass the model path (--model)")
        from transformers import AutoTokenizer

        tokenizer = await asyncio.to_thread(AutoTokenizer.from_pretrained, path)
        self.chat = ChatTokens(tokenizer, _eos_ids(path, tokenizer))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def describe(self) -> dict[str, str]:
        return {
            "policy": self.name,
            "servers": ",".join(self.urls),
            "model": str(self.model_info.get("model_path", "")),
            "weight_version": str(self.model_info.get("weight_version", "")),
        }

    # --- generation --------------------------------------------------------------------------------
    def _route(self, episode_id: str) -> str:
        url = self.sticky.get(episode_id)
        if url is None:
            url = min(self.urls, key=lambda u: self.in_flight[u])
            self.sticky[episode_id] = url
        return url

    def _sampling_params(self, seed: int | None = None) -> dict[str, Any]:
        assert self.chat is not None, "start() was not called"
        s = self.sampling
        params: dict[str, Any] = {
            "temperature": s.temperature,
            "top_p": s.top_p,
            "max_new_tokens": s.max_new_tokens,
            "stop_token_ids": self.chat.eos_ids,
            "skip_special_tokens": False,
            "no_stop_trim": True,
        }
        if seed is not None and s.temperature > 0:
            params["sampling_seed"] = seed
        return params

    async def act(self, conversation: Conversation, episode: Episode) -> Turn:
        url = self._route(episode.episode_id)
        rid = f"{episode.episode_id}-{next(self._rids)}"
        seed = self.turn_seeds(conversation, episode) if self.sampling.temperature > 0 else None
        self.in_flight[url] += 1
        try:
            future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            self._enqueue(url, (rid, conversation.input_ids, seed, future))  # max_batch=1: sent at once
            reply = await future
        finally:
            self.in_flight[url] -= 1
        turn = parse_generate_reply(reply, url)
        if turn.finish_reason == "abort":
            raise PolicyError(f"{url} aborted the request: {reply['meta_info']['finish_reason']}")
        return turn

    def finish(self, episode: Episode) -> None:
        self.sticky.pop(episode.episode_id, None)
        self.turn_seeds.finish(episode)

    # --- batching ------------------------------------------------------------------------------------
    def _enqueue(self, url: str, item: _Pending) -> None:
        pending = self._pending[url]
        pending.append(item)
        if len(pending) >= self.max_batch:
            self._flush(url)
        elif self._flush_at[url] is None:
            self._flush_at[url] = asyncio.get_running_loop().call_later(self.batch_wait_s, self._flush, url)

    def _flush(self, url: str) -> None:
        timer = self._flush_at[url]
        if timer is not None:
            timer.cancel()
            self._flush_at[url] = None
        batch, self._pending[url] = self._pending[url][: self.max_batch], self._pending[url][self.max_batch :]
        if self._pending[url]:
            self._flush_at[url] = asyncio.get_running_loop().call_later(self.batch_wait_s, self._flush, url)
        if batch:
            task = asyncio.ensure_future(self._send(url, batch))
            task.add_done_callback(lambda t: t.cancelled() or t.exception())

    async def _send(self, url: str, batch: list[_Pending]) -> None:
        try:
            replies = await self._generate(url, [(rid, ids, seed) for rid, ids, seed, _ in batch])
        except BaseException as exc:
            for *_, fut in batch:
                if not fut.done():
                    fut.set_exception(exc if isinstance(exc, PolicyError) else PolicyError(f"{url}: {exc!r}"))
            return
        for (*_, fut), reply in zip(batch, replies, strict=True):
            if not fut.done():
                fut.set_result(reply)

    async def _generate(self, url: str, items: list[tuple[str, list[int], int | None]]) -> list[Any]:
        """One /generate call for one or several prompts; replies in order. Seeded prompts of a
        batch each get their own sampling_params (the list form); otherwise one object serves all."""
        params = [self._sampling_params(seed) for _, _, seed in items]
        body: dict[str, Any] = {
            "sampling_params": params[0] if all(p == params[0] for p in params) else params,
            "return_logprob": True,
            "logprob_start_len": -1,
        }
        if len(items) == 1:
            body.update(rid=items[0][0], input_ids=items[0][1])
        else:
            body.update(rid=[rid for rid, _, _ in items], input_ids=[ids for _, ids, _ in items])
        self.http_requests += 1
        reply = await self._post(url, "/generate", body)
        replies = [reply] if len(items) == 1 else reply
        if not isinstance(replies, list) or len(replies) != len(items):
            raise PolicyError(f"SGLang at {url} answered a batch of {len(items)} with {str(reply)[:200]}")
        return replies

    # --- weights -------------------------------------------------------------------------------------
    async def load_weights(self, model_path: str, weight_version: str) -> None:
        """Load new weights on every server, all or none (agentgym.core.weights: a server that
        refuses is retried, then the others are rolled back to what they served before)."""
        previous = self.model_info.get("model_path"), self.model_info.get("weight_version")
        try:
            await load_weights(self.urls, model_path, weight_version, retries=self.retries,
                               previous=previous if all(previous) else None)  # fmt: skip
        except WeightsError as exc:
            raise PolicyError(str(exc)) from None
        self.model_info = await self._get(self.urls[0], "/model_info")

    async def flush_cache(self) -> None:
        """Drop the servers' prefix caches (SGLang answers in plain text)."""
        for url in self.urls:
            await self._call("POST", url, "/flush_cache", None, json_reply=False)

    # --- HTTP ------------------------------------------------------------------------------------------
    async def _get(self, url: str, path: str) -> Any:
        return await self._call("GET", url, path, None)

    async def _post(self, url: str, path: str, body: Any) -> Any:
        return await self._call("POST", url, path, body)

    async def _call(self, method: str, url: str, path: str, body: Any, json_reply: bool = True) -> Any:
        if self._session is None:
            raise PolicyError("the sglang policy is not started")
        for attempt in range(self.retries + 1):
            try:
                data = None if body is None else orjson.dumps(body)
                async with self._session.request(method, url + path, data=data, headers=_JSON) as resp:
                    raw = await resp.read()
                    if resp.status != 200:
                        raise PolicyError(
                            f"{method} {url}{path} answered HTTP {resp.status}: {raw[:500].decode(errors='replace')}"
                        )
                    if not json_reply or not raw.strip():
                        return raw.decode(errors="replace") if not json_reply else {}
                    try:
                        return orjson.loads(raw)
                    except ValueError as exc:
                        raise PolicyError(f"{method} {url}{path} answered non-JSON: {raw[:200]!r}") from exc
            except (aiohttp.ClientConnectionError, TimeoutError) as exc:
                if attempt == self.retries:
                    raise PolicyError(
                        f"{method} {url}{path} failed after {attempt + 1} tries: {type(exc).__name__}: {exc}"
                    ) from exc
                await asyncio.sleep(0.5 * 2**attempt)
        raise AssertionError("unreachable")


def parse_generate_reply(reply: Any, url: str = "") -> Turn:
    """Check a /generate reply against SGLang's shape and turn it into a Turn."""
    where = f"SGLang at {url}" if url else "SGLang"
    if not isinstance(reply, dict) or "meta_info" not in reply:
        raise PolicyError(f"{where} returned no meta_info: {str(reply)[:200]}")
    ids = reply.get("output_ids")
    if not isinstance(ids, list) or not all(isinstance(i, int) for i in ids):
        raise PolicyError(
            f"{where} returned no output_ids list (is skip_tokenizer_init on, or an old SGLang?)"
        )
    meta = reply["meta_info"]
    raw = meta.get("output_token_logprobs")
    if raw is None:
        raise PolicyError(f"{where} returned no output_token_logprobs although return_logprob was set")
    if len(raw) != len(ids) or any(int(entry[1]) != tok for entry, tok in zip(raw, ids, strict=False)):
        raise PolicyError(
            f"{where}: output_token_logprobs ({len(raw)}) do not line up with output_ids ({len(ids)})"
        )
    finish = meta.get("finish_reason") or {}
    kind = finish.get("type", "stop") if isinstance(finish, dict) else str(finish)
    return Turn(
        text=str(reply.get("text", "")),
        token_ids=ids,
        logprobs=[float(entry[0]) for entry in raw],
        finish_reason={"stop": "stop", "length": "length"}.get(kind, kind),
        weight_version=str(meta.get("weight_version") or ""),
        prompt_tokens=int(meta.get("prompt_tokens", 0)),
        completion_tokens=int(meta.get("completion_tokens", len(ids))),
    )


def _eos_ids(path: str, tokenizer: Any) -> list[int]:
    """End-of-turn ids: the generation config's (which may list several), else the tokenizer's."""
    try:
        from transformers import GenerationConfig

        eos = GenerationConfig.from_pretrained(path).eos_token_id
    except (OSError, ValueError):
        eos = None
    ids = [int(i) for i in (eos if isinstance(eos, list) else [eos] if eos is not None else [])]
    if tokenizer.eos_token_id is not None:  # the tokenizer's EOS closes turns in the template: first
        ids = [int(tokenizer.eos_token_id)] + [i for i in ids if i != tokenizer.eos_token_id]
    return ids
