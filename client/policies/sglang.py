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
dozens of turns, and the client's cost per turn drops accordingly. A batch the server refuses as a
whole (HTTP 4xx but 429, e.g. one prompt too long) is re-sent prompt by prompt, so that only the bad
prompt's turn fails.

Server health: a server that fails (no connection after the retries, HTTP 5xx) is marked down. It
takes no new episodes, and the turns that were bound for it go to a server that is up (their
episodes stay there; the prefix cache is rebuilt). It is probed (`GET /health`) after `probe_s`,
then at doubling intervals up to `max_probe_s`, and takes episodes again once it answers. With
every server down, a turn fails at once with a PolicyError that says so.

When sampling (temperature > 0), each turn sends `sampling_params.sampling_seed`, derived from the
policy's seed, the episode's env, task id, env seed and sample, and the turn index (`seeding.py`),
so a turn's random draws do not depend on which requests the server batched it with. A batch of
seeded turns sends one sampling_params object per prompt (GenerateReqInput's list form). SGLang
honours the seed only when launched with `--enable-deterministic-inference`; otherwise it samples
from its own stream and ignores the field.

`security` (core/security.py; default: $AGENTGYM_TLS_CA, $AGENTGYM_TOKEN_FILE) gives the bearer
token every request carries (`Authorization: Bearer <token>`, as SGLang's `--api-key` and
`agentgym policy serve --auth-token-file` expect) and the CA https:// servers are checked against.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import aiohttp
import orjson

from agentgym.client.policies.base import Policy, PolicyError, Sampling, Turn
from agentgym.client.policies.chat import Conversation
from agentgym.client.policies.seeding import TurnSeeds
from agentgym.core.chat import ChatTokens
from agentgym.core.security import ClientSecurity, default_client
from agentgym.core.weights import WeightsError, load_weights

if TYPE_CHECKING:
    from agentgym.client.envclient import Episode

log = logging.getLogger(__name__)

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


class ServerDown(PolicyError):
    """A policy server failed (no connection, HTTP 5xx): it is marked down until it answers again."""


class _Refused(PolicyError):
    """A policy server refused a request (HTTP 4xx): the request's fault, not the server's."""


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
        security: ClientSecurity | None = None,
        probe_s: float = 1.0,
        max_probe_s: float = 30.0,
    ) -> None:
        if isinstance(urls, str):
            urls = [u.strip() for u in urls.split(",") if u.strip()]
        if not urls:
            raise PolicyError("the sglang policy needs at least one server URL (http://host:port)")
        self.urls = [u.rstrip("/") for u in urls]
        self.tokenizer_path = tokenizer
        self.security = security or default_client()
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
        self.probe_s = probe_s
        self.max_probe_s = max(probe_s, max_probe_s)
        self._down: dict[str, asyncio.Task[None]] = {}  # servers marked down -> the task probing them
        self.failures: Counter[str] = Counter()  # per server: calls that failed for the server's sake

    # --- lifecycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.timeout_s),
            connector=aiohttp.TCPConnector(
                limit=0, keepalive_timeout=60, ssl=self.security.ssl_context() or True
            ),
        )
        # A server that does not answer now is marked down (and probed): the run starts on the others.
        errors: list[PolicyError] = []
        for url in self.urls:
            try:
                await self._get(url, "/health")
            except ServerDown as exc:
                errors.append(exc)
        up = [u for u in self.urls if self.healthy(u)]
        if not up:
            await self.close()
            raise errors[0]
        self.model_info = await self._get(up[0], "/model_info")
        path = (
            self.tokenizer_path or self.model_info.get("tokenizer_path") or self.model_info.get("model_path")
        )
        if not path:
            raise PolicyError(f"{up[0]}/model_info names no tokenizer; pass the model path (--model)")
        from transformers import AutoTokenizer

        tokenizer = await asyncio.to_thread(AutoTokenizer.from_pretrained, path)
        self.chat = ChatTokens(tokenizer, _eos_ids(path, tokenizer))

    async def close(self) -> None:
        for probe in self._down.values():
            probe.cancel()
        self._down.clear()
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

    # --- server health ---------------------------------------------------------------------------
    def healthy(self, url: str) -> bool:
        """Whether `url` takes episodes (it is not marked down)."""
        return url not in self._down

    def _mark_down(self, url: str, why: str) -> None:
        self.failures[url] += 1
        if url in self._down or self._session is None:
            return
        log.warning("policy server down: its episodes go to the others until it answers again",
                    extra={"url": url, "error": why, "up": [u for u in self.urls if self.healthy(u) and u != url]})  # fmt: skip
        self._down[url] = asyncio.ensure_future(self._probe(url))

    async def _probe(self, url: str) -> None:
        """GET /health after a back-off that doubles while it fails; back in service once it answers."""
        delay = self.probe_s
        timeout = aiohttp.ClientTimeout(total=min(10.0, self.timeout_s))
        while self._session is not None:
            await asyncio.sleep(delay)
            try:
                headers = self.security.headers()
                async with self._session.get(url + "/health", headers=headers, timeout=timeout) as resp:
                    if resp.status == 200:
                        self._down.pop(url, None)
                        log.info("policy server answers again: back in service", extra={"url": url})
                        return
            except (aiohttp.ClientError, TimeoutError):
                pass
            delay = min(self.max_probe_s, delay * 2)

    # --- generation --------------------------------------------------------------------------------
    def _route(self, episode_id: str) -> str:
        """The episode's server: the one it used before while that one is up, else the server with
        the fewest requests in flight from this client among those up."""
        url = self.sticky.get(episode_id)
        if url is None or not self.healthy(url):
            up = [u for u in self.urls if self.healthy(u)]
            if not up:
                raise PolicyError(
                    f"no policy server is answering ({', '.join(self.urls)}); each is probed again "
                    f"within {self.max_probe_s:g}s"
                )
            url = min(up, key=lambda u: self.in_flight[u])
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
        rid = f"{episode.episode_id}-{next(self._rids)}"
        seed = self.turn_seeds(conversation, episode) if self.sampling.temperature > 0 else None
        while True:
            url = self._route(episode.episode_id)
            self.in_flight[url] += 1
            try:
                future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
                self._enqueue(url, (rid, conversation.input_ids, seed, future))  # max_batch=1: sent at once
                reply = await future
                break
            except ServerDown:
                # `url` is marked down now: the turn (same seed) goes to a server that is up, if any.
                if not any(self.healthy(u) for u in self.urls):
                    raise
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
            if isinstance(exc, _Refused) and len(batch) > 1:
                # Refused for one prompt's sake, maybe: each is sent alone, and only a bad one fails.
                await asyncio.gather(*(self._send(url, [item]) for item in batch))
                return
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
                               previous=previous if all(previous) else None, security=self.security)  # fmt: skip
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
                # The token is read per request: a rotated token file is picked up without a restart.
                headers = {**_JSON, **self.security.headers()}
                async with self._session.request(method, url + path, data=data, headers=headers) as resp:
                    raw = await resp.read()
                    if resp.status != 200:
                        message = f"{method} {url}{path} answered HTTP {resp.status}: {raw[:500].decode(errors='replace')}"
                        if resp.status >= 500:  # the server's fault: it takes no episodes until it answers
                            self._mark_down(url, message)
                            raise ServerDown(message)
                        raise _Refused(message) if resp.status != 429 else PolicyError(message)
                    if not json_reply or not raw.strip():
                        return raw.decode(errors="replace") if not json_reply else {}
                    try:
                        return orjson.loads(raw)
                    except ValueError as exc:
                        raise PolicyError(f"{method} {url}{path} answered non-JSON: {raw[:200]!r}") from exc
            except (aiohttp.ClientConnectionError, TimeoutError) as exc:
                if attempt == self.retries:
                    message = (
                        f"{method} {url}{path} failed after {attempt + 1} tries: {type(exc).__name__}: {exc}"
                    )
                    self._mark_down(url, message)
                    raise ServerDown(message) from exc
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
