"""The `openai` policy: any OpenAI-compatible chat-completions server (SGLang's /v1, vLLM, hosted
APIs). Text in, text out: for evaluating API models, not for token-exact training data.

    POST {base_url}/chat/completions {"model", "messages", "temperature", "top_p", "max_tokens"}
      -> {"choices": [{"message": {"content"}, "finish_reason"}], "usage": {...}}
"""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING, Any

import aiohttp

from agentgym.client.policies.base import Policy, PolicyError, Sampling, Turn
from agentgym.client.policies.chat import Conversation
from agentgym.core.security import ClientSecurity, default_client

if TYPE_CHECKING:
    from agentgym.client.envclient import Episode

# Status codes worth retrying: rate limits and transient server trouble.
_RETRY = {408, 409, 429, 500, 502, 503, 504}


class OpenAIPolicy(Policy):
    name = "openai"

    def __init__(
        self,
        base_url: str,
        model: str,
        sampling: Sampling | None = None,
        *,
        api_key: str | None = None,
        timeout_s: float = 600.0,
        retries: int = 4,
        security: ClientSecurity | None = None,
    ) -> None:
        if not base_url:
            raise PolicyError("the openai policy needs a base URL, e.g. http://127.0.0.1:30000/v1")
        if not model:
            raise PolicyError("the openai policy needs a model name (--model)")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.sampling = sampling or Sampling()
        # The key: `api_key`, else the token of `security` (an SGLang server started with
        # --api-key, an hf policy server with --auth-token-file), else $OPENAI_API_KEY.
        self.security = security or default_client()
        if api_key is None:
            api_key = self.security.bearer() if security is not None else None
        self.api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY", "")
        self.timeout_s = timeout_s
        self.retries = retries
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        self._session = aiohttp.ClientSession(
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=self.timeout_s),
            connector=aiohttp.TCPConnector(limit=0, ssl=self.security.ssl_context() or True),
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def describe(self) -> dict[str, str]:
        return {"policy": self.name, "base_url": self.base_url, "model": self.model}

    async def act(self, conversation: Conversation, episode: Episode) -> Turn:
        body = {
            "model": self.model,
            "messages": conversation.chat_messages(),
            "temperature": self.sampling.temperature,
            "top_p": self.sampling.top_p,
            "max_tokens": self.sampling.max_new_tokens,
        }
        reply = await self._post("/chat/completions", body)
        return parse_chat_reply(reply, self.base_url)

    async def _post(self, path: str, body: dict[str, Any]) -> Any:
        if self._session is None:
            raise PolicyError("the openai policy is not started")
        url = self.base_url + path
        for attempt in range(self.retries + 1):
            try:
                async with self._session.post(url, json=body) as resp:
                    text = await resp.text()
                    if resp.status == 200:
                        try:
                            return await resp.json(content_type=None)
                        except ValueError as exc:
                            raise PolicyError(f"POST {url} answered non-JSON: {text[:200]!r}") from exc
                    if resp.status not in _RETRY or attempt == self.retries:
                        raise PolicyError(f"POST {url} answered HTTP {resp.status}: {text[:500]}")
            except (aiohttp.ClientConnectionError, TimeoutError) as exc:
                if attempt == self.retries:
                    raise PolicyError(
                        f"POST {url} failed after {attempt + 1} tries: {type(exc).__name__}: {exc}"
                    ) from exc
            await asyncio.sleep(min(30.0, 0.5 * 2**attempt))
        raise AssertionError("unreachable")


def parse_chat_reply(reply: Any, where: str = "") -> Turn:
    try:
        choice = reply["choices"][0]
        content = choice["message"]["content"]
    except (KeyError, IndexError, TypeError) as exc:
        raise PolicyError(
            f"chat completion from {where} has no choices[0].message.content: {str(reply)[:300]}"
        ) from exc
    usage = reply.get("usage") or {}
    return Turn(
        text=content or "",
        finish_reason=str(choice.get("finish_reason") or "stop"),
        prompt_tokens=int(usage.get("prompt_tokens", 0)),
        completion_tokens=int(usage.get("completion_tokens", 0)),
    )
