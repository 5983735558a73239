"""Job specs: what `agentgym trainer submit bc|evol|rl` asks for, checked before a job is queued.

`BCSpec`, `EvolSpec` and `RLSpec` mirror trainer.proto's BCJob, EvolJob and RLJob field by field;
`from_proto` fills in defaults and raises SpecError (answered INVALID_ARGUMENT) with a message
naming the field. Settings arrive as text by name (`lr=1e-5`) and are parsed against the fields of
BCConfig (bc, evol) or RLConfig (rl) here, once.
"""

from __future__ import annotations

import json
import types
import typing
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from google.protobuf import json_format

from agentgym.trainer.bc import BCConfig
from agentgym.trainer.pg import ALGORITHMS
from agentgym.trainer.rl_learn import AGGREGATES, REWARDS, RLConfig
from agentgym.trainer.store import Query
from agentgym.v1 import trainer_pb2 as rpb
from agentgym.v1 import trajectory_pb2 as tpb

# Config fields a job sets itself (from the spec), not through settings.
_OWN = frozenset({"data", "out", "model", "init", "query", "strict", "progress", "resume", "device", "extra",
                  "temperature", "poll_s"})  # fmt: skip


class SpecError(ValueError):
    """A job spec that cannot run as given; the message names the field."""


def bc_settings(items: dict[str, str]) -> dict[str, Any]:
    """BCConfig fields from text values by name ("lr": "1e-5" -> 1e-5); SpecError for unknown names
    or values that do not parse."""
    return parse_settings(items, BCConfig, "BC")


def rl_settings(items: dict[str, str]) -> dict[str, Any]:
    """RLConfig fields from text values by name, like bc_settings."""
    out = parse_settings(items, RLConfig, "RL")
    if out.get("aggregate", "token-mean") not in AGGREGATES:
        raise SpecError(f"RL setting aggregate={out['aggregate']!r}: expected one of {', '.join(AGGREGATES)}")
    if out.get("reward", "score") not in REWARDS:
        raise SpecError(f"RL setting reward={out['reward']!r}: expected one of {', '.join(REWARDS)}")
    for name in ("mini_batches", "ppo_epochs", "max_tokens", "max_length", "keep_checkpoints"):
        if name in out and out[name] < 1:
            raise SpecError(f"RL setting {name}={out[name]}: must be at least 1")
    if "lr" in out and not out["lr"] > 0:
        raise SpecError(f"RL setting lr={out['lr']}: must be positive")
    return out


def parse_settings(items: dict[str, str], config: type, what: str) -> dict[str, Any]:
    hints = typing.get_type_hints(config)
    allowed = sorted(f.name for f in fields(config) if f.name not in _OWN)
    out: dict[str, Any] = {}
    for key, text in items.items():
        if key not in allowed:
            raise SpecError(f"unknown {what} setting {key!r}; the settings are: {', '.join(allowed)}")
        kinds = [k for k in typing.get_args(hints[key]) if k is not type(None)] or [hints[key]]
        if isinstance(hints[key], types.UnionType) and text.lower() in ("none", "null", ""):
            out[key] = None
            continue
        kind = kinds[0]
        try:
            if kind is bool:
                if text.lower() not in ("1", "0", "true", "false", "yes", "no"):
                    raise ValueError(text)
                out[key] = text.lower() in ("1", "true", "yes")
            elif kind in (int, float, str):
                out[key] = kind(text)
            else:
                raise SpecError(f"{what} setting {key!r} cannot be set by name")
        except ValueError:
            raise SpecError(f"{what} setting {key}={text!r}: expected {kind.__name__}") from None
    return out


def _filter_dict(f: tpb.TrajectoryFilter) -> dict[str, Any]:
    """Query.of keyword arguments of a TrajectoryFilter (checked)."""
    from agentgym.trainer.service import query_from_proto

    try:
        q = query_from_proto(f)
    except ValueError as exc:
        raise SpecError(f"bad store filter: {exc}") from None
    return query_kwargs(q)


def query_kwargs(q: Query) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, key in (("envs", "env"), ("weight_versions", "weight_version"), ("item_ids", "item_ids")):
        if getattr(q, name):
            out[key] = sorted(getattr(q, name))
    for name in ("min_reward", "max_reward", "success", "iteration", "since", "until"):
        if getattr(q, name) is not None:
            out[name] = getattr(q, name)
    if q.keep_unrewarded:
        out["keep_unrewarded"] = True
    if q.limit:
        out["limit"] = q.limit
    return out


@dataclass
class DataSpec:
    files: list[str] = field(default_factory=list)
    store: dict[str, Any] | None = None  # Query.of kwargs on the trainer's store; None: not used
    strict: bool = False

    @classmethod
    def from_proto(cls, m: rpb.DataSpec, what: str) -> DataSpec:
        spec = cls(list(m.files), _filter_dict(m.store) if m.HasField("store") else None, m.strict)
        if not spec.files and spec.store is None:
            raise SpecError(f"{what}: no data (give files, a store filter, or both)")
        return spec

    def sources(self, store_path: str) -> list[dict[str, Any]]:
        """trainer.data.Source dicts: the files, then the store query."""
        out: list[dict[str, Any]] = [{"path": f, "query": {}} for f in self.files]
        if self.store is not None:
            out.append({"path": store_path, "query": self.store})
        return out


def _base(value: str, what: str) -> str:
    if not value:
        raise SpecError(f"{what}: no base model (a model directory, a hub id, or init:tiny|mini|small)")
    if value.startswith("init:") and value[5:] not in ("tiny", "mini", "small"):
        raise SpecError(f"{what}: {value!r}: the built-in sizes are init:tiny, init:mini and init:small")
    return value


@dataclass
class BCSpec:
    base: str
    data: DataSpec
    settings: dict[str, Any] = field(default_factory=dict)  # parsed BCConfig fields
    policy_urls: list[str] = field(default_factory=list)
    weight_version: str = ""
    nproc: int = 1

    kind = "bc"

    @classmethod
    def from_proto(cls, m: rpb.BCJob) -> BCSpec:
        if not m.HasField("data"):
            raise SpecError("bc: no data (give files, a store filter, or both)")
        return cls(
            base=_base(m.base, "bc"),
            data=DataSpec.from_proto(m.data, "bc"),
            settings=bc_settings(dict(m.settings)),
            policy_urls=_urls(m.policy_urls),
            weight_version=m.weight_version,
            nproc=max(1, m.nproc),
        )


@dataclass
class EvolSpec:
    envs: list[str]
    base: str
    bc_data: DataSpec
    policy_urls: list[str]
    env_servers: list[str]
    agent: str = ""
    iterations: int = 1
    explore_episodes: int = 400
    samples_per_task: int = 1
    explore_temperature: float = 0.7
    eval_tasks: int = 50
    uniform: bool = False
    max_new_tokens: int = 128
    concurrency: int = 64
    seed: int = 0
    settings: dict[str, Any] = field(default_factory=dict)
    work_chunk: int = 256
    explore_split: str = "train"
    eval_split: str = "test"
    nproc: int = 1
    share_floor: float = 0.1

    kind = "evol"

    @classmethod
    def from_proto(cls, m: rpb.EvolJob) -> EvolSpec:
        d = cls(envs=[], base="", bc_data=DataSpec(), policy_urls=[], env_servers=[])
        _check_fleet(m, "evol")
        if not m.HasField("bc_data") and not m.agent:
            raise SpecError("evol: no bc_data and no agent: iteration 0 needs data to train the agent from")
        return cls(
            envs=list(dict.fromkeys(m.envs)),
            base=_base(m.base, "evol"),
            bc_data=DataSpec.from_proto(m.bc_data, "evol bc_data") if m.HasField("bc_data") else DataSpec(),
            policy_urls=_urls(m.policy_urls),
            env_servers=list(m.env_servers),
            agent=m.agent,
            iterations=_positive(m.iterations or d.iterations, "iterations"),
            explore_episodes=_positive(m.explore_episodes or d.explore_episodes, "explore_episodes"),
            samples_per_task=m.samples_per_task or d.samples_per_task,
            explore_temperature=m.explore_temperature or d.explore_temperature,
            eval_tasks=m.eval_tasks or d.eval_tasks,
            uniform=m.uniform,
            max_new_tokens=m.max_new_tokens or d.max_new_tokens,
            concurrency=m.concurrency or d.concurrency,
            seed=m.seed,
            settings=bc_settings(dict(m.settings)),
            work_chunk=m.work_chunk or d.work_chunk,
            explore_split=m.explore_split or d.explore_split,
            eval_split=m.eval_split or d.eval_split,
            nproc=max(1, m.nproc),
        )


@dataclass
class RLSpec:
    envs: list[str]
    model: str
    policy_urls: list[str]
    env_servers: list[str]
    algorithm: str = "grpo"
    steps: int = 10
    tasks_per_step: int = 16
    group_size: int = 8
    rounds: list[int] = field(default_factory=list)  # horizon per stage; [] : the env's own
    stage_steps: int = 0
    overlap: bool = False
    stale: str = "correct"
    inflight: str = "finish"
    temperature: float = 1.0
    max_new_tokens: int = 128
    eval_tasks: int = 50
    eval_every: int = 0
    concurrency: int = 64
    seed: int = 0
    settings: dict[str, Any] = field(default_factory=dict)  # parsed RLConfig fields
    work_chunk: int = 64
    train_split: str = "train"
    eval_split: str = "test"
    nproc: int = 1
    skip_start_eval: bool = False

    kind = "rl"

    def horizon(self, step: int) -> int:
        """Env steps allowed per episode at RL step `step` (0: the env's own max_rounds)."""
        if not self.rounds:
            return 0
        stage = step // self.stage_steps if self.stage_steps else 0
        return self.rounds[min(stage, len(self.rounds) - 1)]

    @classmethod
    def from_proto(cls, m: rpb.RLJob) -> RLSpec:
        d = cls(envs=[], model="", policy_urls=[], env_servers=[])
        _check_fleet(m, "rl")
        algorithm = m.algorithm or d.algorithm
        if algorithm not in ALGORITHMS:
            raise SpecError(f"rl: unknown algorithm {algorithm!r}; choose one of {', '.join(ALGORITHMS)}")
        group = m.group_size or d.group_size
        if group < 2 and algorithm in ("grpo", "rloo"):
            raise SpecError(
                f"rl: group_size {group}: {algorithm} compares episodes of a task, give at least 2"
            )
        if any(r < 1 for r in m.rounds):
            raise SpecError(f"rl: rounds {list(m.rounds)}: every stage's horizon must be at least 1")
        if len(m.rounds) > 1 and m.stage_steps < 1:
            raise SpecError("rl: several rounds (a horizon schedule) need stage_steps: RL steps per stage")
        for name, value, allowed in (
            ("stale", m.stale, ("correct", "drop")),
            ("inflight", m.inflight, ("finish", "abort")),
        ):
            if value and value not in allowed:
                raise SpecError(f"rl: {name} {value!r}: expected one of {', '.join(allowed)}")
        if m.temperature < 0:
            raise SpecError(f"rl: temperature {m.temperature} is negative")
        return cls(
            envs=list(dict.fromkeys(m.envs)),
            model=_base(m.model, "rl"),
            policy_urls=_urls(m.policy_urls),
            env_servers=list(m.env_servers),
            algorithm=algorithm,
            steps=_positive(m.steps or d.steps, "steps", "rl"),
            tasks_per_step=m.tasks_per_step or d.tasks_per_step,
            group_size=group,
            rounds=list(m.rounds),
            stage_steps=m.stage_steps,
            overlap=m.overlap,
            stale=m.stale or d.stale,
            inflight=m.inflight or d.inflight,
            temperature=m.temperature or d.temperature,
            max_new_tokens=m.max_new_tokens or d.max_new_tokens,
            eval_tasks=m.eval_tasks,
            eval_every=m.eval_every,
            concurrency=m.concurrency or d.concurrency,
            seed=m.seed,
            settings=rl_settings(dict(m.settings)),
            work_chunk=m.work_chunk or d.work_chunk,
            train_split=m.train_split or d.train_split,
            eval_split=m.eval_split or d.eval_split,
            nproc=max(1, m.nproc),
            skip_start_eval=m.skip_start_eval,
        )  # fmt: skip


def _check_fleet(m: rpb.EvolJob | rpb.RLJob, what: str) -> None:
    """What every job that rolls out needs: envs by name, policy servers, env servers."""
    if not m.envs:
        raise SpecError(f"{what}: no envs")
    bad = [e for e in m.envs if not e or "," in e or " " in e]
    if bad:
        raise SpecError(f"{what}: bad env name(s) {bad}: give one name per entry")
    if not m.policy_urls:
        raise SpecError(f"{what}: no policy_urls: the policy servers to roll out against and publish to")
    if not m.env_servers:
        raise SpecError(f"{what}: no env_servers (HOST:PORT of the env servers the workers play on)")


def _positive(value: int, name: str, what: str = "evol") -> int:
    if value < 1:
        raise SpecError(f"{what}: {name} must be at least 1")
    return value


def _urls(urls: Any) -> list[str]:
    out = [u.rstrip("/") for u in urls]
    bad = [u for u in out if not u.startswith(("http://", "https://"))]
    if bad:
        raise SpecError(f"policy url(s) {bad}: give http://HOST:PORT")
    return out


Spec = BCSpec | EvolSpec | RLSpec


def spec_from_request(req: rpb.SubmitRequest) -> Spec:
    kind = req.WhichOneof("job")
    if kind == "bc":
        return BCSpec.from_proto(req.bc)
    if kind == "evol":
        return EvolSpec.from_proto(req.evol)
    if kind == "rl":
        return RLSpec.from_proto(req.rl)
    raise SpecError("no job in the request: set bc, evol or rl")


def spec_to_json(spec: Spec) -> str:
    return json.dumps(asdict(spec), sort_keys=True)


def spec_from_json(kind: str, text: str) -> Spec:
    d = json.loads(text)
    if kind == "bc":
        d["data"] = DataSpec(**d["data"])
        return BCSpec(**d)
    if kind == "rl":
        return RLSpec(**d)
    d["bc_data"] = DataSpec(**d["bc_data"])
    return EvolSpec(**d)


def request_to_json(req: rpb.SubmitRequest) -> str:
    """For logs and `agentgym trainer submit --dry-run`."""
    return json_format.MessageToJson(req, preserving_proto_field_name=True)
