"""A policy server on CPU (or one GPU) that speaks SGLang's HTTP API, backed by the `hf` policy.

`agentgym policy serve --backend hf --model DIR` runs it. It answers SGLang's native endpoints
with the request and reply fields SGLang 0.5.x defines (`GenerateReqInput` in
`sglang/srt/managers/io_struct.py`, `SamplingParams` in `sglang/srt/sampling/sampling_params.py`)
and an OpenAI-compatible `/v1/chat/completions`, so the `sglang` and `openai` policies, and
AgentEvol's weight reloads, work against a small model on a machine without SGLang. With
`strict=True` it refuses fields SGLang does not define (the tests use this to check the client).

`sampling_params.sampling_seed` is honoured per request (as SGLang does with
`--enable-deterministic-inference`): a seeded request's tokens depend on its prompt, sampling
parameters, seed and the weights, not on what else the batcher put beside it. A batch may send one
sampling_params object for all prompts or a list with one per prompt, as GenerateReqInput allows.
A prompt of a batch that cannot be generated (longer than the model's context, token ids outside
its vocabulary) gets SGLang's abort reply in its place (`finish_reason` {"type": "abort", "message",
"status_code"}); the other prompts are answered as usual. A single prompt gets an HTTP 400.

`meta_info.output_token_logprobs` carries the hf policy's log-probabilities as they are: each
token's under the distribution it was sampled from (after temperature, before top-p), which is what
SGLang returns by default (without SGLANG_RETURN_ORIGINAL_LOGPROB).

`security` (core/security.py) adds TLS (https://, mutual TLS with a client CA) and bearer tokens:
every route but `/health` then needs `Authorization: Bearer <token>` (401 otherwise, as SGLang
answers with `--api-key`), checked before the request body is read.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from agentgym.client.policies.base import PolicyError, Sampling
from agentgym.client.policies.hf import HFPolicy
from agentgym.core import metrics
from agentgym.core.security import OPEN_PATHS, ServerSecurity, TokenFile, check_bearer

log = logging.getLogger(__name__)

# GenerateReqInput's fields in SGLang 0.5.x (including BaseReq's rid and http_worker_ipc).
GENERATE_REQ_FIELDS = frozenset(
    """
rid http_worker_ipc text input_ids input_embeds image_data video_data audio_data sampling_params
return_logprob logprob_start_len top_logprobs_num token_ids_logprob return_text_in_logprobs stream
log_metrics return_hidden_states modalities session_params lora_path lora_id custom_logit_processor
bootstrap_host bootstrap_port bootstrap_room bootstrap_pair_key validation_time data_parallel_rank
background conversation_id priority extra_key no_logs custom_labels return_bytes return_entropy
""".split()
)
# SamplingParams' constructor arguments in SGLang 0.5.x.
SAMPLING_PARAMS_FIELDS = frozenset(
    """
max_new_tokens stop stop_token_ids stop_regex temperature top_p top_k min_p frequency_penalty
presence_penalty repetition_penalty min_new_tokens n json_schema regex ebnf structural_tag
ignore_eos skip_special_tokens spaces_between_special_tokens no_stop_trim custom_params
stream_interval logit_bias sampling_seed
""".split()
)
# UpdateWeightFromDiskReqInput's fields in SGLang 0.5.x.
UPDATE_WEIGHTS_FIELDS = frozenset(
    """
rid http_worker_ipc model_path load_format abort_all_requests weight_version is_async
torch_empty_cache keep_pause recapture_cuda_graph token_step
""".split()
)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": {"message": message, "code": status}}, status=status)


@dataclass(frozen=True)
class _Refused:
    """One prompt refused: an HTTP error for a single request, an abort reply within a batch."""

    status: int
    message: str


@web.middleware
async def _count_requests(request: web.Request, handler: Any) -> web.StreamResponse:
    """POLICY_REQUESTS by route (its path pattern: unknown paths mint no series) and HTTP status."""
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else "(unmatched)"
    status = 500
    try:
        response: web.StreamResponse = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        metrics.POLICY_REQUESTS.labels(route, str(status)).inc()


class PolicyServer:
    def __init__(
        self,
        policy: HFPolicy,
        *,
        strict: bool = False,
        served_model_name: str | None = None,
        security: ServerSecurity | None = None,
    ) -> None:
        self.policy = policy
        self.strict = strict
        self.model_name = served_model_name or policy.model_path
        self.security = security or ServerSecurity()
        self.tokens: TokenFile | None = self.security.tokens()
        self.requests: list[dict[str, Any]] = []  # bodies seen, for tests
        self._ids = itertools.count()
        self.app = web.Application(
            client_max_size=64 * 1024 * 1024, middlewares=[_count_requests, self._authorize]
        )
        self.app.add_routes(
            [
                web.get("/health", self.health),
                web.get("/health_generate", self.health),
                web.get("/model_info", self.model_info),
                web.get("/get_model_info", self.model_info),
                web.post("/generate", self.generate),
                web.route("*", "/flush_cache", self.flush_cache),
                web.post("/update_weights_from_disk", self.update_weights),
                web.get("/v1/models", self.models),
                web.post("/v1/chat/completions", self.chat_completions),
            ]
        )
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.metrics: metrics.MetricsServer | None = None

    async def start(self, host: str = "127.0.0.1", port: int = 0, *, metrics_port: int | None = None) -> int:
        """Serve on host:port (0: a free one), returned; with `metrics_port`, Prometheus metrics on a
        port of their own (core/metrics.py), as the env server and the trainer do. SecurityError (a
        ValueError) for an unsafe bind or an unreadable certificate or token file."""
        self.security.check(host)
        tls = self.security.tls
        ssl_context = tls.ssl_context() if tls is not None else None
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, ssl_context=ssl_context)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        if metrics_port is not None:
            try:
                self.metrics = metrics.start_metrics_server(metrics_port, host)
            except OSError:
                await self.stop()
                raise
        log.info("policy server started", extra={"address": f"{host}:{self.port}", "model": self.model_name,
                                                 "security": self.security.describe()})  # fmt: skip
        return self.port

    @web.middleware
    async def _authorize(self, request: web.Request, handler: Any) -> web.StreamResponse:
        """The bearer token, on every route but /health, before the body is read."""
        if self.tokens is None or request.path in OPEN_PATHS:
            return await handler(request)  # type: ignore[no-any-return]
        why = check_bearer(request.headers.get("Authorization"), self.tokens)
        if why is not None:
            response = _error(401, why)
            response.headers["WWW-Authenticate"] = 'Bearer realm="agentgym"'
            return response
        return await handler(request)  # type: ignore[no-any-return]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.metrics is not None:
            self.metrics.close()
            self.metrics = None

    # --- SGLang native ---------------------------------------------------------------------------------
    async def health(self, request: web.Request) -> web.Response:
        return web.Response(text="")

    async def model_info(self, request: web.Request) -> web.Response:
        p = self.policy
        return web.json_response(
            {
                "model_path": p.model_path,
                "tokenizer_path": p.model_path,
                "is_generation": True,
                "weight_version": p.weight_version,
            }
        )

    async def _body(self, request: web.Request) -> dict[str, Any] | web.Response:
        try:
            body = await request.json()
        except (ValueError, json.JSONDecodeError):
            return _error(400, "request body is not JSON")
        if not isinstance(body, dict):
            return _error(400, "request body must be a JSON object")
        self.requests.append(body)
        return body

    async def generate(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        if isinstance(body, web.Response):
            return body
        unknown = sorted(set(body) - GENERATE_REQ_FIELDS)
        ids = body.get("input_ids")
        batched = isinstance(ids, list) and bool(ids) and isinstance(ids[0], list)
        params = body.get("sampling_params") or {}
        if isinstance(params, list):  # one object per prompt of a batch
            if not batched or len(params) != len(ids) or not all(isinstance(p, dict) for p in params):
                return _error(
                    400, "a list of sampling_params needs input_ids as a batch, one object per prompt"
                )
            per_prompt: list[dict[str, Any]] = params
        elif isinstance(params, dict):
            per_prompt = [params] * (len(ids) if batched else 1)
        else:
            return _error(400, "sampling_params must be an object or a list of objects")
        unknown_params = sorted(set().union(*per_prompt) - SAMPLING_PARAMS_FIELDS)
        if self.strict and (unknown or unknown_params):
            return _error(
                400, f"fields SGLang does not define: request {unknown}, sampling_params {unknown_params}"
            )
        if batched:  # the batch form: replies in order
            rids = body.get("rid")
            rids = rids if isinstance(rids, list) and len(rids) == len(ids) else [None] * len(ids)
            # Each prompt stands alone: one that fails (too long, unknown token ids) is answered with
            # SGLang's abort reply in its place, and the rest of the batch is generated.
            replies = await asyncio.gather(
                *(
                    self._generate_one(dict(body, input_ids=one, rid=rid), p)
                    for one, rid, p in zip(ids, rids, per_prompt, strict=True)
                )
            )
            return web.json_response(
                [self._abort(dict(body, input_ids=one, rid=rid), r) if isinstance(r, _Refused) else r
                 for one, rid, r in zip(ids, rids, replies, strict=True)]
            )  # fmt: skip
        one = await self._generate_one(body, per_prompt[0])
        return _error(one.status, one.message) if isinstance(one, _Refused) else web.json_response(one)

    def _abort(self, body: dict[str, Any], refused: _Refused) -> dict[str, Any]:
        """A refused prompt of a batch, as SGLang answers an aborted request (FINISH_ABORT)."""
        ids = body.get("input_ids")
        meta: dict[str, Any] = {
            "id": body.get("rid") or f"agentgym-{next(self._ids)}",
            "finish_reason": {"type": "abort", "message": refused.message, "status_code": refused.status},
            "prompt_tokens": len(ids) if isinstance(ids, list) else 0,
            "completion_tokens": 0,
            "cached_tokens": 0,
            "weight_version": self.policy.weight_version,
        }
        if body.get("return_logprob"):
            meta["output_token_logprobs"] = []
        return {"text": "", "output_ids": [], "meta_info": meta}

    async def _generate_one(self, body: dict[str, Any], params: dict[str, Any]) -> dict[str, Any] | _Refused:
        ids = body.get("input_ids")
        if ids is None and isinstance(body.get("text"), str):
            assert self.policy.chat is not None
            ids = self.policy.chat.encode(body["text"])
        if not isinstance(ids, list) or not ids or not all(isinstance(i, int) for i in ids):
            return _Refused(400, "input_ids must be a non-empty list of token ids (or give text)")
        sampling = Sampling(
            float(params.get("temperature", 1.0)),
            float(params.get("top_p", 1.0)),
            int(params.get("max_new_tokens", 128)),
        )
        seed = params.get("sampling_seed")
        if seed is not None and (
            isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**64
        ):
            return _Refused(400, "sampling_seed must be an integer in [0, 2**64)")
        try:
            with metrics.POLICY_GENERATE_SECONDS.time():
                gen = await self.policy.generate(ids, sampling, seed)
        except PolicyError as exc:
            return _Refused(400, str(exc))
        metrics.POLICY_PROMPT_TOKENS.inc(len(ids))
        metrics.POLICY_GENERATED_TOKENS.inc(len(gen.token_ids))
        assert self.policy.chat is not None
        eos = self.policy.chat.eos_ids
        stopped = gen.finish_reason == "stop" and gen.token_ids and gen.token_ids[-1] in eos
        finish = (
            {"type": "stop", "matched": gen.token_ids[-1]}
            if stopped
            else {"type": "length", "length": len(gen.token_ids)}
        )
        meta: dict[str, Any] = {
            "id": body.get("rid") or f"agentgym-{next(self._ids)}",
            "finish_reason": finish,
            "prompt_tokens": len(ids),
            "completion_tokens": len(gen.token_ids),
            "cached_tokens": 0,
            "weight_version": self.policy.weight_version,
        }
        if body.get("return_logprob"):
            meta["output_token_logprobs"] = [
                [lp, tid, None] for lp, tid in zip(gen.logprobs, gen.token_ids, strict=True)
            ]
        skip = params.get("skip_special_tokens", True)
        text = self.policy.tokenizer.decode(gen.token_ids, skip_special_tokens=bool(skip))
        return {"text": text, "output_ids": gen.token_ids, "meta_info": meta}

    async def flush_cache(self, request: web.Request) -> web.Response:
        return web.Response(text="Cache flushed.\n")

    async def update_weights(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        if isinstance(body, web.Response):
            return body
        unknown = sorted(set(body) - UPDATE_WEIGHTS_FIELDS)
        if self.strict and unknown:
            return _error(400, f"fields SGLang does not define: {unknown}")
        path = body.get("model_path")
        if not isinstance(path, str) or not path:
            return web.json_response(
                {"success": False, "message": "model_path is required", "num_paused_requests": 0}
            )
        try:
            await self.policy.load_weights(path, str(body.get("weight_version") or ""))
        except (OSError, PolicyError, ValueError) as exc:
            return web.json_response(
                {"success": False, "message": f"failed to load {path}: {exc}", "num_paused_requests": 0}
            )
        return web.json_response(
            {"success": True, "message": "Succeeded to update model weights.", "num_paused_requests": 0}
        )

    # --- OpenAI-compatible ---------------------------------------------------------------------------------
    async def models(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"object": "list", "data": [{"id": self.model_name, "object": "model", "owned_by": "agentgym"}]}
        )

    async def chat_completions(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        if isinstance(body, web.Response):
            return body
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return _error(400, "messages must be a non-empty list")
        chat = self.policy.chat
        assert chat is not None
        try:
            ids = chat.initial([{"role": m["role"], "content": m["content"]} for m in messages])
        except (KeyError, TypeError):
            return _error(400, "each message needs role and content")
        max_tokens = int(body.get("max_tokens") or body.get("max_completion_tokens") or 128)
        sampling = Sampling(float(body.get("temperature", 1.0)), float(body.get("top_p", 1.0)), max_tokens)
        with metrics.POLICY_GENERATE_SECONDS.time():
            gen = await self.policy.generate(ids, sampling)
        metrics.POLICY_PROMPT_TOKENS.inc(len(ids))
        metrics.POLICY_GENERATED_TOKENS.inc(len(gen.token_ids))
        return web.json_response(
            {
                "id": f"chatcmpl-{next(self._ids)}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": self.model_name,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": chat.decode(gen.token_ids)},
                        "finish_reason": gen.finish_reason,
                    }
                ],
                "usage": {
                    "prompt_tokens": len(ids),
                    "completion_tokens": len(gen.token_ids),
                    "total_tokens": len(ids) + len(gen.token_ids),
                },
            }
        )


async def serve_hf(
    model: str,
    host: str,
    port: int,
    sampling: Sampling | None = None,
    strict: bool = False,
    metrics_port: int | None = None,
    security: ServerSecurity | None = None,
) -> None:
    """Run until cancelled (Ctrl-C)."""
    security = security or ServerSecurity()
    security.check(host)  # before the model loads: a refused bind fails at once
    policy = HFPolicy(model, sampling)
    await policy.start()
    server = PolicyServer(policy, strict=strict, security=security)
    try:
        await server.start(host, port, metrics_port=metrics_port)
    except OSError:
        await policy.close()
        raise
    scheme = "https" if security.tls else "http"
    print(
        f"policy server (hf backend, SGLang API) on {scheme}://{host}:{server.port} serving {model}",
        flush=True,
    )
    try:
        await asyncio.Event().wait()
    finally:
        await server.stop()
        await policy.close()


__all__ = ["GENERATE_REQ_FIELDS", "SAMPLING_PARAMS_FIELDS", "PolicyServer", "serve_hf"]
