"""Policies: `expert`, `random`, `hf` (in-process transformers), `sglang` (native API), `openai`."""

from __future__ import annotations

from typing import Any

from agentgym.client.policies.base import Policy, PolicyError, Sampling, Turn

BACKENDS = ("expert", "random", "hf", "sglang", "openai")


def make_policy(backend: str, *, model: str | None = None, url: str | None = None, sampling: Sampling | None = None,
                seed: int = 0, **options: Any) -> Policy:  # fmt: skip
    """Build a policy by backend name, with a clear error for missing settings."""
    if backend == "expert":
        from agentgym.client.policies.simple import ExpertPolicy

        return ExpertPolicy()
    if backend == "random":
        from agentgym.client.policies.simple import RandomPolicy

        return RandomPolicy(seed)
    if backend == "hf":
        if not model:
            raise PolicyError(
                "--policy hf needs --model DIR (a transformers model directory; `agentgym policy init-tiny DIR` makes one)"
            )
        from agentgym.client.policies.hf import HFPolicy

        return HFPolicy(model, sampling, seed=seed, **options)
    if backend == "sglang":
        if not url:
            raise PolicyError(
                "--policy sglang needs --policy-url http://HOST:PORT[,http://HOST2:PORT2] (an SGLang server)"
            )
        from agentgym.client.policies.sglang import SGLangPolicy

        return SGLangPolicy(url, model, sampling, seed=seed, security=options.get("security"))
    if backend == "openai":
        if not url or not model:
            raise PolicyError(
                "--policy openai needs --policy-url (e.g. http://HOST:PORT/v1) and --model NAME"
            )
        from agentgym.client.policies.openai import OpenAIPolicy

        return OpenAIPolicy(
            url, model, sampling, api_key=options.get("api_key"), security=options.get("security")
        )
    raise PolicyError(f"unknown policy {backend!r}; choose one of {', '.join(BACKENDS)}")


__all__ = ["BACKENDS", "Policy", "PolicyError", "Sampling", "Turn", "make_policy"]
