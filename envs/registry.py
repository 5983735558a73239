"""Registry of environment classes, filled by `@register` as env modules are imported.

`discover()` imports every module and package in this folder, so adding an env is adding a file.
An env whose import fails (a missing optional engine) is recorded with the reason instead of
breaking the others; `agentgym envs --local` shows it.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
from collections.abc import Mapping
from typing import TypeVar

from agentgym.envs.base import Env

log = logging.getLogger(__name__)

_envs: dict[str, type[Env]] = {}
_unavailable: dict[str, str] = {}
_configured: dict[str, dict[str, str]] = {}  # env -> the settings it was configured with
_own_opening: dict[str, tuple[str, str]] = {}  # env -> its own (instruction, acknowledgement)
_discovered = False

# Modules of this package that are not environments.
_NOT_ENVS = {"base", "registry", "data", "node", "compat"}

# Settings every env takes, handled here rather than by each env's `configure` (which gets the rest):
# the compatibility profile, and where its texts come from (envs/compat.py).
PROFILES = ("", "agentgym")
PROFILE_SETTINGS = {
    "profile": "compatibility profile: agentgym (the original's texts and rules) or empty (ours)",
    "agentgym_source": "an original AgentGym source checkout, for the profile's opening turns",
    "agenttraj": "an AgentTraj file (JSON or JSON Lines), for the profile's opening turns",
}

E = TypeVar("E", bound=type[Env])


def register(cls: E) -> E:
    """Class decorator: make an Env subclass available by its `name`."""
    for attr in ("name", "instruction", "action_format", "max_rounds", "task_count"):
        if not hasattr(cls, attr):
            raise TypeError(f"env class {cls.__qualname__} must define `{attr}`")
    name = cls.name
    if not name or name != name.lower() or not name.replace("_", "").replace("-", "").isalnum():
        raise TypeError(f"env name {name!r} must be lower-case letters, digits, '-' or '_'")
    if name in _envs and _envs[name] is not cls:
        raise TypeError(f"two env classes are named {name!r}: {_envs[name].__qualname__}, {cls.__qualname__}")
    if cls.execution not in ("inline", "thread", "process"):
        raise TypeError(f"env {name!r}: execution must be inline, thread or process")
    _envs[name] = cls
    return cls


def discover() -> None:
    """Import every env module in agentgym.envs once."""
    global _discovered
    if _discovered:
        return
    import agentgym.envs as pkg

    for mod in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        if mod.name.startswith("_") or mod.name in _NOT_ENVS:
            continue
        try:
            importlib.import_module(f"agentgym.envs.{mod.name}")
        except Exception as exc:  # an optional engine missing must not hide the other envs
            _unavailable[mod.name] = f"{type(exc).__name__}: {exc}"
            log.warning("env module not loaded", extra={"env_module": mod.name, "error": str(exc)})
    _discovered = True


def get(name: str) -> type[Env]:
    discover()
    try:
        return _envs[name]
    except KeyError:
        hint = f" (its module failed to load: {_unavailable[name]})" if name in _unavailable else ""
        raise KeyError(
            f"no env named {name!r}{hint}; known: {', '.join(names(include_hidden=True))}"
        ) from None


def names(include_hidden: bool = False) -> list[str]:
    discover()
    return sorted(n for n, c in _envs.items() if include_hidden or not c.hidden)


def unavailable() -> dict[str, str]:
    """Env modules that failed to import, with the reason."""
    discover()
    return dict(_unavailable)


def configure(name: str, settings: Mapping[str, str] | None = None) -> type[Env]:
    """Return env class `name`, calling its `configure` hook the first time (per process), and again
    when given settings that differ from the last ones (an env class holds one configuration at a
    time). Without settings, an env already configured keeps its configuration."""
    cls = get(name)
    if settings is None and name in _configured:
        return cls
    wanted = dict(settings or {})
    if _configured.get(name) != wanted:
        if name in _configured:
            log.info("env reconfigured", extra={"env": name, "settings": wanted})
        profile = wanted.get("profile", "")
        if profile not in PROFILES:
            raise ValueError(f"{name}: unknown profile {profile!r}; known: agentgym (or empty for ours)")
        if not profile and (extra := sorted(set(wanted) & (set(PROFILE_SETTINGS) - {"profile"}))):
            raise ValueError(f"{name}: {', '.join(extra)} only apply with profile=agentgym")
        # A profile replaces the opening; configuring again starts from the env's own texts.
        own = _own_opening.setdefault(name, (cls.instruction, cls.acknowledgement))
        cls.instruction, cls.acknowledgement = own
        cls.profile = profile
        cls.configure({k: v for k, v in wanted.items() if k not in PROFILE_SETTINGS})
        if profile:
            from agentgym.envs import compat  # the profile's loaders, only when asked for

            compat.apply_opening(cls, wanted)
        _configured[name] = wanted
    return cls


def make(name: str, settings: Mapping[str, str] | None = None) -> Env:
    """A fresh, configured instance of env `name`, for in-process use (tests, experts, benchmarks)."""
    return configure(name, settings)()
