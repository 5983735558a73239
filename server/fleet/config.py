"""A fleet's configuration: which envs, how many replicas of each, how full a replica may get before
another is added, and what every replica's server runs with. From flags or a TOML/YAML file
(docs/fleet.md):

    [fleet]
    name = "agentgym"
    target_utilisation = 0.8        # add a replica when live episodes pass 80% of the env's capacity
    cooldown_s = 60                 # remove one only after live episodes stayed low this long
    min_replicas = 1                # defaults for every env below
    max_replicas = 4

    [fleet.envs.maze]               # or `envs = ["maze", "wordle"]` for the defaults
    min_replicas = 2
    episodes_per_replica = 2000

    [fleet.envs.sciworld]
    episodes_per_replica = 8
    cpus = 2                        # Ray resources of one replica (derived from the env when left out)
    memory_mb = 2560

    [server]                        # ServerConfig settings of every replica (server/config.py)
    step_timeout_s = 30
    env_settings = { alfworld = { data_dir = "/data/alfworld" } }

Each replica is one env server (one process, one env) placed by Ray on a node with the replica's
resources free: `cpus` (default 1: a grpc.aio server keeps at most one core busy) and `memory_mb`
(default: `episodes_per_replica` x the env's `episode_memory_mb`, or a worker process's worth per
episode for a `process` env; none for an env that declares no memory per episode).
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from agentgym.core.fleet import DEFAULT_FLEET, check_fleet_name
from agentgym.server.config import ServerConfig

# Episodes one replica takes when the config names no figure: thousands of open episodes cost a
# grpc.aio server little (10,000 TextCraft episodes in 326 MB, docs/design.md), while each episode of a
# `process` env or one that declares memory per episode is a worker process or a big engine.
DEFAULT_EPISODES_PER_REPLICA = 1000
DEFAULT_HEAVY_EPISODES_PER_REPLICA = 16

# What the fleet sets in every replica's ServerConfig itself; a [server] table may not.
FLEET_OWNED = ("host", "port", "envs", "workers", "max_episodes", "max_episodes_per_env")


@dataclass
class EnvFleet:
    """One env's replicas. None: the fleet's default (replica counts, episodes) or derived from the env
    class (episodes, resources)."""

    min_replicas: int | None = None
    max_replicas: int | None = None
    episodes_per_replica: int | None = None
    cpus: float | None = None
    memory_mb: int | None = None


@dataclass(frozen=True)
class EnvPlan:
    """An env's replicas with every figure settled: what the controller works from."""

    env: str
    min_replicas: int
    max_replicas: int
    episodes_per_replica: int
    cpus: float
    memory_mb: int  # 0: no memory resource asked of Ray

    def desired(self, live: int, target_utilisation: float) -> int:
        """Replicas that keep `live` episodes at or under the target share of their capacity."""
        need = math.ceil(live / (self.episodes_per_replica * target_utilisation)) if live > 0 else 0
        return max(self.min_replicas, min(self.max_replicas, need))

    def ray_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"num_cpus": self.cpus}
        if self.memory_mb:
            options["memory"] = self.memory_mb * 1024 * 1024
        return options


@dataclass
class FleetConfig:
    name: str = DEFAULT_FLEET
    envs: dict[str, EnvFleet] = field(default_factory=dict)
    # Defaults for every env that does not set its own.
    min_replicas: int = 1
    max_replicas: int = 4
    episodes_per_replica: int | None = None
    # Autoscaling: desired replicas = ceil(live / (episodes_per_replica * target_utilisation)),
    # within [min, max]; more at once, fewer only after live episodes stayed low for cooldown_s.
    target_utilisation: float = 0.8
    cooldown_s: float = 60.0
    # A replica being removed (scale-down, `fleet down`) gets this long for its live episodes to end.
    drain_timeout_s: float = 600.0
    # The controller checks every replica this often; one that does not answer within the timeout
    # (or whose actor dies) leaves routing at once.
    health_interval_s: float = 1.0
    health_timeout_s: float = 2.0
    # ServerConfig settings for every replica (timeouts, env_settings, execution, security, ...).
    server: dict[str, Any] = field(default_factory=dict)

    # --- reading --------------------------------------------------------------------------------
    @classmethod
    def from_file(cls, path: str | Path) -> FleetConfig:
        """A TOML (or, with PyYAML installed, YAML) file with a [fleet] table (this class's fields)
        and an optional [server] table (ServerConfig's)."""
        path = Path(path)
        try:
            text = path.read_text()
        except OSError as exc:
            raise ValueError(f"cannot read fleet config {path}: {exc.strerror}") from None
        try:
            if path.suffix in (".yaml", ".yml"):
                import yaml

                doc: dict[str, Any] = yaml.safe_load(text) or {}
            else:
                doc = tomllib.loads(text)
        except Exception as exc:  # a parse error of either format: say which file
            raise ValueError(
                f"{path}: not valid {'YAML' if path.suffix in ('.yaml', '.yml') else 'TOML'}: {exc}"
            ) from None
        if not isinstance(doc, dict):
            raise ValueError(f"{path}: expected a [fleet] table")
        unknown_top = sorted(set(doc) - {"fleet", "server"})
        if unknown_top:
            raise ValueError(f"{path}: unknown tables {unknown_top}; expected [fleet] and [server]")
        try:
            return cls.from_dict(doc.get("fleet", {}), doc.get("server", {}))
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None

    @classmethod
    def from_dict(cls, fleet: dict[str, Any], server: dict[str, Any] | None = None) -> FleetConfig:
        known = {f.name for f in fields(cls)} - {"server"}
        unknown = sorted(set(fleet) - known)
        if unknown:
            raise ValueError(f"unknown fleet settings {unknown}; known: {sorted(known)}")
        values = dict(fleet)
        envs = values.pop("envs", {})
        config = cls(**values, server=dict(server or {}))
        config.envs = parse_envs(envs)
        return config

    def set_envs(self, names: list[str]) -> None:
        """Host exactly these envs (from --envs), keeping the settings the file gave any of them."""
        self.envs = {name: self.envs.get(name, EnvFleet()) for name in names}

    # --- what the controller works from ---------------------------------------------------------
    def server_config(self, env: str, host: str = "127.0.0.1") -> ServerConfig:
        """The ServerConfig of one replica of `env` on a node whose address is `host`."""
        plan = self.plan(env)
        base = ServerConfig(**self.server)
        return replace(
            base,
            host=host,
            port=0,
            envs=[env],
            workers=1,
            max_episodes=plan.episodes_per_replica,
            max_episodes_per_env=None,
            execution=dict(base.execution),
            env_settings={k: dict(v) for k, v in base.env_settings.items()},
        )

    def plan(self, env: str) -> EnvPlan:
        from agentgym.envs import registry
        from agentgym.server.service import DEFAULT_PROCESS_EPISODE_MB

        own = self.envs[env]
        cls = registry.get(env)
        execution = self.server.get("execution", {}).get(env, cls.execution)
        per_episode_mb = cls.episode_memory_mb or (
            DEFAULT_PROCESS_EPISODE_MB if execution == "process" else None
        )
        default_episodes = (
            DEFAULT_HEAVY_EPISODES_PER_REPLICA if per_episode_mb else DEFAULT_EPISODES_PER_REPLICA
        )
        episodes = own.episodes_per_replica or self.episodes_per_replica or default_episodes
        if own.memory_mb is not None:
            memory = own.memory_mb
        else:
            memory = episodes * per_episode_mb if per_episode_mb else 0
        return EnvPlan(
            env=env,
            min_replicas=self.min_replicas if own.min_replicas is None else own.min_replicas,
            max_replicas=self.max_replicas if own.max_replicas is None else own.max_replicas,
            episodes_per_replica=episodes,
            cpus=1.0 if own.cpus is None else own.cpus,
            memory_mb=memory,
        )

    def plans(self) -> dict[str, EnvPlan]:
        return {env: self.plan(env) for env in self.envs}

    # --- checking -------------------------------------------------------------------------------
    def validate(self) -> None:
        """Raise ValueError saying what to change; check everything a replica would trip on later."""
        from agentgym.envs import registry

        check_fleet_name(self.name)
        if not self.envs:
            raise ValueError("a fleet needs at least one env: --envs maze,wordle or [fleet.envs.NAME] tables")
        checks = [
            (
                0 < self.target_utilisation <= 1,
                f"target_utilisation must be in (0, 1], got {self.target_utilisation}",
            ),
            (self.cooldown_s >= 0, f"cooldown_s must be >= 0, got {self.cooldown_s}"),
            (self.drain_timeout_s >= 0, f"drain_timeout_s must be >= 0, got {self.drain_timeout_s}"),
            (self.health_interval_s > 0, f"health_interval_s must be positive, got {self.health_interval_s}"),
            (self.health_timeout_s > 0, f"health_timeout_s must be positive, got {self.health_timeout_s}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        for env in self.envs:
            try:
                registry.get(env)
            except KeyError as exc:
                raise ValueError(str(exc.args[0])) from None
        for env in self.envs:
            self._check_plan(self.plan(env))
        owned = sorted(set(self.server) & set(FLEET_OWNED))
        if owned:
            raise ValueError(
                f"[server] sets {owned}, which the fleet sets for each replica (its node's address, a free "
                "port, one env, episodes_per_replica); remove them"
            )
        known = {f.name for f in fields(ServerConfig)}
        unknown = sorted(set(self.server) - known)
        if unknown:
            raise ValueError(f"unknown server settings {unknown}; known: {sorted(known - set(FLEET_OWNED))}")
        for env in self.envs:
            # Loopback here: the node's own address is known only on the node, where a non-loopback
            # one without TLS or a token is refused the same way (`insecure = true` to allow it).
            self.server_config(env).validate()

    @staticmethod
    def _check_plan(p: EnvPlan) -> None:
        checks = [
            (p.min_replicas >= 1, f"{p.env}: min_replicas must be at least 1, got {p.min_replicas}"),
            (
                p.max_replicas >= p.min_replicas,
                f"{p.env}: min_replicas ({p.min_replicas}) is more than max_replicas ({p.max_replicas})",
            ),
            (p.episodes_per_replica >= 1, f"{p.env}: episodes_per_replica must be at least 1"),
            (p.cpus >= 0, f"{p.env}: cpus must be >= 0, got {p.cpus}"),
            (p.memory_mb >= 0, f"{p.env}: memory_mb must be >= 0, got {p.memory_mb}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_envs(envs: Any) -> dict[str, EnvFleet]:
    """`envs` of a file: a list of names, or a table of name -> EnvFleet settings."""
    if isinstance(envs, str):
        envs = [e.strip() for e in envs.split(",") if e.strip()]
    if isinstance(envs, list):
        return {str(name): EnvFleet() for name in envs}
    if not isinstance(envs, dict):
        raise ValueError(f"envs must be a list of env names or a table per env, got {envs!r}")
    known = {f.name for f in fields(EnvFleet)}
    out: dict[str, EnvFleet] = {}
    for name, settings in envs.items():
        settings = settings or {}
        if not isinstance(settings, dict):
            raise ValueError(f"envs.{name} must be a table of {sorted(known)}")
        unknown = sorted(set(settings) - known)
        if unknown:
            raise ValueError(f"unknown settings for env {name}: {unknown}; known: {sorted(known)}")
        out[str(name)] = EnvFleet(**settings)
    return out
