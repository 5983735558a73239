"""Loading weights into policy servers: one operation, all or nothing across servers.

Every policy server of the fabric speaks SGLang's native HTTP API: SGLang itself, and
`agentgym policy serve --backend hf` on CPU. Both load a checkpoint from disk with
`POST /update_weights_from_disk {"model_path", "weight_version"}`, after which every reply's
`meta_info.weight_version` names the new version, so every trajectory says which weights made it.

    await load_weights(["http://h1:30000", "http://h2:30000"], "runs/evol/iter-2/model/final", "iter-2",
                       previous=("runs/evol/iter-1/model/final", "iter-1"))

A server that refuses or cannot be reached is retried; if it still fails, the servers that already
loaded the new version are rolled back to `previous`, and WeightsError says which server failed and
what every server serves now. Rollouts never run on a silent mix of versions.

Each request carries the bearer token of `security` (core/security.py; default: $AGENTGYM_TOKEN_FILE)
and checks https:// servers against its CA, so servers started with a token (SGLang's --api-key,
`agentgym policy serve --auth-token-file`) load weights too.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import aiohttp
import orjson

from agentgym.core.security import ClientSecurity, default_client

log = logging.getLogger(__name__)


class WeightsError(Exception):
    """Weights could not be loaded on every server; `serving` maps each server to what it serves
    now (a version, or "unknown" when it could not be told)."""

    def __init__(self, message: str, serving: dict[str, str]) -> None:
        super().__init__(message)
        self.serving = serving


@dataclass
class Checkpoint:
    path: str
    version: str


async def _load_one(
    session: aiohttp.ClientSession,
    url: str,
    ckpt: Checkpoint,
    retries: int,
    backoff_s: float,
    security: ClientSecurity,
) -> str:
    """ "" when `url` loaded `ckpt`, else why not (after `retries` more tries)."""
    body = orjson.dumps({"model_path": ckpt.path, "weight_version": ckpt.version})
    why = ""
    for attempt in range(retries + 1):
        try:
            async with session.post(
                url.rstrip("/") + "/update_weights_from_disk",
                data=body,
                headers={"Content-Type": "application/json", **security.headers()},
            ) as resp:
                raw = await resp.read()
                if resp.status != 200:
                    why = f"HTTP {resp.status}: {raw[:300].decode(errors='replace')}"
                else:
                    reply = orjson.loads(raw) if raw.strip() else {}
                    if isinstance(reply, dict) and reply.get("success", False):
                        return ""
                    why = str(reply.get("message", reply) if isinstance(reply, dict) else reply)[:300]
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            why = f"{type(exc).__name__}: {exc}"
        if attempt < retries:
            log.warning(
                "weight load failed; retrying",
                extra={"url": url, "model_path": ckpt.path, "error": why, "attempt": attempt + 1},
            )
            await asyncio.sleep(backoff_s * 2**attempt)
    return why


async def load_weights(
    urls: list[str],
    path: str,
    version: str,
    *,
    previous: tuple[str, str] | None = None,
    retries: int = 2,
    backoff_s: float = 0.5,
    timeout_s: float = 600.0,
    security: ClientSecurity | None = None,
) -> None:
    """Make every server in `urls` serve the checkpoint at `path` as `version`, or none of them:
    see the module docstring. `previous` is (path, version) of what they served before."""
    if not urls:
        return
    new = Checkpoint(path, version)
    security = security or default_client()
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    connector = aiohttp.TCPConnector(ssl=security.ssl_context() or True)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        errors = await asyncio.gather(
            *(_load_one(session, u, new, retries, backoff_s, security) for u in urls)
        )
        failed = {u: e for u, e in zip(urls, errors, strict=True) if e}
        if not failed:
            log.info(
                "weights loaded", extra={"servers": len(urls), "model_path": path, "weight_version": version}
            )
            return
        loaded = [u for u in urls if u not in failed]
        serving = {u: version for u in loaded} | dict.fromkeys(failed, "unknown")
        rolled = ""
        if loaded and previous is not None:
            back = Checkpoint(*previous)
            undo = await asyncio.gather(
                *(_load_one(session, u, back, retries, backoff_s, security) for u in loaded)
            )
            for u, e in zip(loaded, undo, strict=True):
                serving[u] = "unknown" if e else back.version
            stuck = [u for u, e in zip(loaded, undo, strict=True) if e]
            rolled = f"; rolled back {len(loaded) - len(stuck)} server(s) to {back.version}" + (
                f", but {', '.join(stuck)} could not be rolled back" if stuck else ""
            )
        elif loaded:
            rolled = f"; {', '.join(loaded)} now serve {version} (no previous version to roll back to)"
        first = next(iter(failed.items()))
        raise WeightsError(
            f"{len(failed)} of {len(urls)} policy server(s) could not load {path} as {version} "
            f"({first[0]}: {first[1]}){rolled}",
            serving,
        )
