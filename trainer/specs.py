"""Job specs: what `agentgym trainer submit bc|evol` asks for, checked before a job is queued.

`BCSpec` and `EvolSpec` mirror trainer.proto's BCJob and EvolJob field by field; `from_proto`
fills in defaults and raises SpecError (answered INVALID_ARGUMENT) with a message naming the field.
BC settings arrive as text by name (`lr=1e-5`) and are parsed against BCConfig's fields here, once.
"""

from __future__ import annotations

import json
import types
import typing
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from google.protobuf import json_format

from agentgym.trainer.bc import BCConfig
from agentgym.trainer.store import Query
from agentgym.v1 import trainer_pb2 as rpb
from agentgym.v1 import trajectory_pb2 as tpb

# BCConfig fields a job sets itself (from the spec), not through settings.
_OWN = frozenset({"data", "out", "model", "init", "query", "strict", "progress", "resume", "device", "extra"})


class SpecError(ValueError):
    """A job spec that cannot run as given; the message names the field."""


def bc_settings(items: dict[str, str]) -> dict[str, Any]:
    """BCConfig fields from text values by name ("lr": "1e-5" -> 1e-5); SpecError for unknown names
    or values that do not parse."""
    hints = typing.get_type_hints(BCConfig)
    allowed = sorted(f.name for f in fields(BCConfig) if f.name not in _OWN)
    out: dict[str, Any] = {}
    for key, text in items.items():
        if key not in allowed:
            raise SpecError(f"unknown BC setting {key!r}; the settings are: {', '.join(allowed)}")
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
                raise SpecError(f"BC setting {key!r} cannot be set by name")
        except ValueError:
            raise SpecError(f"BC setting {key}={text!r}: expected {kind.__name__}") from None
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
        if not m.envs:
            raise SpecError("evol: no envs")
        bad = [e for e in m.envs if not e or "," in e or " " in e]
        if bad:
            raise SpecError(f"evol: bad env name(s) {bad}: give one name per entry")
        if not m.policy_urls:
            raise SpecError("evol: no policy_urls: the policy servers to roll out against and publish to")
        if not m.env_servers:
            raise SpecError("evol: no env_servers (HOST:PORT of the env servers the workers play on)")
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


def _positive(value: int, name: str) -> int:
    if value < 1:
        raise SpecError(f"evol: {name} must be at least 1")
    return value


def _urls(urls: Any) -> list[str]:
    out = [u.rstrip("/") for u in urls]
    bad = [u for u in out if not u.startswith(("http://", "https://"))]
    if bad:
        raise SpecError(f"policy url(s) {bad}: give http://HOST:PORT")
    return out


Spec = BCSpec | EvolSpec


def spec_from_request(req: rpb.SubmitRequest) -> Spec:
    kind = req.WhichOneof("job")
    if kind == "bc":
        return BCSpec.from_proto(req.bc)
    if kind == "evol":
        return EvolSpec.from_proto(req.evol)
    raise SpecError("no job in the request: set bc or evol")


def spec_to_json(spec: Spec) -> str:
    return json.dumps(asdict(spec), sort_keys=True)


def spec_from_json(kind: str, text: str) -> Spec:
    d = json.loads(text)
    if kind == "bc":
        d["data"] = DataSpec(**d["data"])
        return BCSpec(**d)
    d["bc_data"] = DataSpec(**d["bc_data"])
    return EvolSpec(**d)


def request_to_json(req: rpb.SubmitRequest) -> str:
    """For logs and `agentgym trainer submit --dry-run`."""
    return json_format.MessageToJson(req, preserving_proto_field_name=True)
