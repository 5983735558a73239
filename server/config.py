"""Server configuration: every limit has a default, and flags or a TOML/YAML file override it."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from agentgym.core.security import ServerSecurity, require_safe_bind


@dataclass
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 50051
    # Env names to host; None hosts every registered env that is not hidden.
    envs: list[str] | None = None
    # Live episodes across all envs; create beyond it answers RESOURCE_EXHAUSTED.
    max_episodes: int = 20_000
    # Live episodes per env (an env may declare a lower limit of its own).
    max_episodes_per_env: int | None = None
    # A step call longer than this ends its episode with DEADLINE_EXCEEDED (thread and process envs;
    # inline envs are bounded by construction). Only the env's own time counts, not time spent
    # waiting for a free thread.
    step_timeout_s: float = 30.0
    # An expert call (a planner, a solver) may take longer than a step: its own limit.
    expert_timeout_s: float = 120.0
    # A reset (loading a game, translating it, starting an engine) may take much longer than a
    # step, the more so on a loaded host: its own limit.
    reset_timeout_s: float = 120.0
    # An episode with no request for this long is freed (DEADLINE_EXCEEDED). 0 disables.
    idle_timeout_s: float = 600.0
    # Largest gRPC message either way.
    max_message_bytes: int = 4 * 1024 * 1024
    # Largest action, in UTF-8 bytes.
    max_action_bytes: int = 64 * 1024
    # Threads for `thread` envs and for experts.
    threads: int = field(default_factory=lambda: min(32, (os.cpu_count() or 1) + 4))
    # Server processes sharing the port (SO_REUSEPORT); limits are split evenly between them.
    workers: int = 1
    # Server processes sharing this host's memory: limits derived from memory (process envs: free
    # memory / the env's memory per episode) are divided by it. `serve` multiplies it by `workers`
    # in each of its processes; set it when running several servers side by side on one host.
    processes_per_host: int = 1
    # On shutdown, live episodes get this long to finish before their streams are ended.
    grace_s: float = 10.0
    # Worker processes kept started ahead of demand, per `process` env.
    prewarm: int = 1
    # A worker process must start and configure its env within this time.
    worker_start_timeout_s: float = 120.0
    # Run an env differently from what its class declares: {"textcraft": "process"}.
    execution: dict[str, str] = field(default_factory=dict)
    # Per-env settings passed to Env.configure: {"alfworld": {"data_dir": "..."}}.
    env_settings: dict[str, dict[str, str]] = field(default_factory=dict)
    # The compatibility profile of every hosted env (docs/compat.md): "" (this project's texts) or
    # "agentgym" (the original's conversation openings, read from the operator's files below: a
    # source checkout of the original and/or an AgentTraj file). `validate` folds them into each
    # env's settings ("profile", "agentgym_source", "agenttraj"), where an env's own ones win.
    profile: str = ""
    agentgym_source: str | None = None
    agenttraj: str | None = None
    # Prometheus metrics at http://HOST:PORT/metrics (docs/metrics.md); None: none, 0: a free port.
    # With `workers` > 1, worker i serves them on metrics_port + i.
    metrics_port: int | None = None
    # TLS (PEM files; docs/security.md): certificate and key, and the CA client certificates must be
    # signed by (mutual TLS). None: plaintext.
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_client_ca: str | None = None
    # Bearer tokens callers must present, one a line (re-read when the file changes). None: no token.
    auth_token_file: str | None = None
    # Serve a non-loopback host with neither TLS nor a token (refused otherwise).
    insecure: bool = False

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def security(self) -> ServerSecurity:
        """What callers must present (SecurityError, a ValueError, for flags that do not go together)."""
        return ServerSecurity.from_flags(
            self.tls_cert, self.tls_key, self.tls_client_ca, self.auth_token_file, self.insecure
        )

    def validate(self) -> None:
        checks = [
            (1 <= self.port <= 65535 or self.port == 0, f"port must be 0-65535, got {self.port}"),
            (self.max_episodes >= 1, "max_episodes must be at least 1"),
            (
                self.max_episodes_per_env is None or self.max_episodes_per_env >= 1,
                "max_episodes_per_env must be at least 1",
            ),
            (self.step_timeout_s > 0, "step_timeout_s must be positive"),
            (self.expert_timeout_s > 0, "expert_timeout_s must be positive"),
            (self.reset_timeout_s > 0, "reset_timeout_s must be positive"),
            (self.idle_timeout_s >= 0, "idle_timeout_s must be >= 0 (0 disables it)"),
            (self.max_action_bytes >= 1, "max_action_bytes must be at least 1"),
            (self.max_message_bytes >= 1024, "max_message_bytes must be at least 1024"),
            (self.threads >= 1, "threads must be at least 1"),
            (self.workers >= 1, "workers must be at least 1"),
            (self.processes_per_host >= 1, "processes_per_host must be at least 1"),
            (self.grace_s >= 0, "grace_s must be >= 0"),
            (
                self.metrics_port is None
                or self.metrics_port == 0
                or 1 <= self.metrics_port <= 65536 - self.workers,
                f"metrics_port must be 0-{65536 - self.workers} (worker i uses metrics_port + i), "
                f"got {self.metrics_port}",
            ),
            (
                all(v in ("inline", "thread", "process") for v in self.execution.values()),
                f"execution overrides must be inline, thread or process: {self.execution}",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        self._fold_profile()
        security = self.security
        require_safe_bind(self.host, security.tls, security.token_file, security.insecure)

    def _fold_profile(self) -> None:
        """Check the profile settings and copy them into every hosted env's settings (the server
        configures each env from its own). Idempotent: an env's own settings are never replaced."""
        if self.profile not in ("", "agentgym"):
            raise ValueError(
                f"profile must be agentgym or empty (this project's texts), got {self.profile!r}"
            )
        paths = {"agentgym_source": self.agentgym_source, "agenttraj": self.agenttraj}
        given = {k: v for k, v in paths.items() if v}
        if not self.profile:
            if given:
                verb = "apply" if len(given) > 1 else "applies"
                raise ValueError(
                    f"{' and '.join(given)} {verb} only with profile = agentgym (--profile agentgym)"
                )
            return
        if not given:
            raise ValueError(
                "profile agentgym needs the original's texts, which are not shipped here: give an AgentTraj "
                "file (--agenttraj FILE) or an original AgentGym source checkout (--agentgym-source DIR)"
            )
        from agentgym.envs import compat, registry

        compat.check_paths(self.agentgym_source, self.agenttraj)  # CompatError is a ValueError
        for env in self.envs if self.envs is not None else registry.names():
            own = self.env_settings.setdefault(env, {})
            own.setdefault("profile", self.profile)
            if own["profile"] == "agentgym":  # an env turned back to ours (profile "") takes no paths
                for key, value in given.items():
                    own.setdefault(key, value)

    @classmethod
    def from_file(cls, path: str | Path) -> ServerConfig:
        """Read a TOML (or, with PyYAML installed, YAML) file whose keys are this class's fields,
        at the top level or under a [server] table."""
        path = Path(path)
        text = path.read_text()
        if path.suffix in (".yaml", ".yml"):
            import yaml

            doc: dict[str, Any] = yaml.safe_load(text) or {}
        else:
            doc = tomllib.loads(text)
        doc = doc.get("server", doc)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(doc) - known)
        if unknown:
            raise ValueError(f"{path}: unknown server settings {unknown}; known: {sorted(known)}")
        return cls(**doc)
