"""The trajectory record: one typed `Trajectory` for every part of the fabric, and its two codecs.

A trajectory is one episode: AgentTraj's fields (`item_id`, `conversations`, `reward`, `success`)
plus what the fabric adds (env, task, sample, AgentEvol iteration, token ids, loss mask,
log-probabilities, the weight versions that produced the agent turns, the step limit and each
step's reward, timing). Rollouts make it, the gRPC sink and the trainer's service carry it
(`agentgym.v1.Trajectory`), the store keeps it, training reads it. Everything about it is written
here once:

- ids: `split_item_id` (AgentTraj's "<env>_<task index>", with the original's env aliases, so
  "lmrlgym_maze_3" is Maze task 3), `original_item_id` (the other way, from the same table,
  ORIGINAL_PREFIXES), `Trajectory.record_id` ("maze_3", "maze_3#2" for sample 2),
  `Trajectory.key` (the store key: the record id plus "@<iteration>" when it has one);
- one validation, `Trajectory.validate`, with one set of messages (TrajectoryError);
- the JSON codec (`from_json` / `to_json`: AgentTraj-compatible objects, JSON Lines on disk) and the
  protobuf codec (`from_proto` / `to_proto`); both round-trip exactly;
- reading AgentTraj / AgentEval / JSONL files (`read_trajectories`): a bad record is counted,
  reported by item id and skipped, or refused with `strict=True`.

On disk (JSON), one object per episode::

    {"item_id": "maze_3", "conversations": [{"from": "human", "loss": null, "value": "..."}, ...],
     "reward": 1.0, "success": 1, "env": "maze", "task_id": 3, "sample": 0, "iteration": 2,
     "seed": 3, "rounds": 11, "finish": "done", "policy": "sglang", "tokenizer": "9f0c...",
     "max_steps": 15, "step_rewards": [0.0, ..., 1.0],
     "input_ids": [...], "loss_mask": [...], "logprobs": [null, ..., -0.12],
     "weight_version": "iter-2", "timing": {"start": 1.7e9, "duration_s": 3.2}}

Fields this module does not know are kept in `Trajectory.extra` and written back verbatim.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from agentgym.v1 import trajectory_pb2 as tpb

log = logging.getLogger(__name__)

# The original AgentGym's item-id prefix of each env, by our env name: the one table both directions
# derive from. Its evaluator names a record "<task name>_<index>" with the task names of
# agentenv/utils/distributed_eval_task.py (the list its AgentEvol scripts loop over, and the prefixes
# of AgentTraj/AgentEval); agentenv/utils/agentevol_filter.py reads the category back by prefix.
ORIGINAL_PREFIXES: dict[str, str] = {
    "webshop": "webshop",
    "alfworld": "alfworld",
    "babyai": "babyai",
    "sciworld": "sciworld",
    "textcraft": "textcraft",
    "webarena": "webarena",
    "bird": "sqlgym",
    "maze": "lmrlgym_maze",
    "wordle": "lmrlgym_wordle",
    "weather": "weather",
    "movie": "movie",
    "academia": "academia",
    "sheet": "sheet",
    "todo": "todo",
}
# Reading: the original's prefixes that differ from our env names.
ENV_ALIASES = {prefix: env for env, prefix in ORIGINAL_PREFIXES.items() if prefix != env}
ROLES = ("human", "gpt", "system")
MAX_KEY_BYTES = 1024
_U32 = 1 << 32


def turn_spans(mask: Sequence[int]) -> list[tuple[int, int]]:
    """The agent turns of a token record: (start, end) of each run of 1s in its loss mask, in order
    (the generated turns; the acknowledgement and the env's turns are 0s)."""
    spans: list[tuple[int, int]] = []
    start = None
    for i, m in enumerate(mask):
        if m and start is None:
            start = i
        elif not m and start is not None:
            spans.append((start, i))
            start = None
    if start is not None:
        spans.append((start, len(mask)))
    return spans


class TrajectoryError(ValueError):
    """A record is not a valid trajectory; the message names the record and the field."""


# --- ids --------------------------------------------------------------------------------------------
def split_item_id(item_id: str) -> tuple[str, int]:
    """("maze", 3) from "maze_3" or AgentGym's "lmrlgym_maze_3": the task index follows the last
    underscore, and the original's env prefixes map to our env names."""
    prefix, sep, index = str(item_id).rpartition("_")
    if not sep or not index.isdigit():
        raise TrajectoryError(f"item_id {item_id!r} is not <env>_<task index> (e.g. maze_3)")
    return ENV_ALIASES.get(prefix, prefix), int(index)


def env_of(item_id: str) -> str:
    """The env an item id names (aliases applied), or "" when it does not follow the convention."""
    try:
        return split_item_id(item_id)[0]
    except TrajectoryError:
        return ""


def make_item_id(env: str, task_id: int) -> str:
    """AgentTraj's item id of a task: "<env>_<task index>" (the inverse of split_item_id)."""
    return f"{env}_{task_id}"


def original_item_id(env: str, task_id: int) -> str:
    """The original AgentGym's item id of our env's task ("lmrlgym_maze_3" for maze task 3); an env
    the original does not have keeps its own name. split_item_id reads it back to (env, task_id)."""
    return f"{ORIGINAL_PREFIXES.get(env, env)}_{task_id}"


def make_record_id(item_id: str, sample: int = 0) -> str:
    """An episode's identity for resuming and de-duplication: item_id, plus "#<sample>" when > 0."""
    return item_id if sample == 0 else f"{item_id}#{sample}"


def make_key(record_id: str, iteration: int | None) -> str:
    """A trajectory's key in the trainer's store: its record id, plus "@<iteration>" when it carries
    an AgentEvol iteration (each iteration explores the same tasks again, and every pass is kept)."""
    return record_id if iteration is None else f"{record_id}@{iteration}"


# --- the record ----------------------------------------------------------------------------------------
@dataclass(slots=True)
class Turn:
    """One conversation turn, as AgentTraj writes it ({"from", "loss", "value"})."""

    role: str  # "human" (instruction, env), "gpt" (agent) or "system"
    value: str
    loss: bool | None = None  # trained on (True), not (False), or the trainer's default (None)

    def to_json(self) -> dict[str, Any]:
        return {"from": self.role, "loss": self.loss, "value": self.value}


@dataclass(slots=True, kw_only=True)
class Trajectory:
    item_id: str  # AgentTraj's "<env>_<task index>"
    conversations: list[Turn]
    reward: float | None = None  # the benchmark's final score (0/1 for most envs, 0-100 for some)
    success: bool | None = None
    env: str = ""  # "" : derived from item_id
    task_id: int | None = None
    sample: int = 0  # which sample of the task (several per task when exploring)
    iteration: int | None = None  # the AgentEvol / RL iteration whose exploration produced it
    seed: int | None = None
    rounds: int | None = None  # env steps taken
    finish: str | None = None  # "done" | "truncated" | "context"
    policy: str | None = None  # the policy backend's name
    tokenizer: str | None = None  # fingerprint of the tokenizer and template of the token fields
    input_ids: list[int] | None = None  # the whole conversation as the policy's token ids
    loss_mask: list[int] | None = None  # 1 for generated tokens (trained on), 0 for the rest
    # Per token: its log-probability under the distribution it was sampled from (after
    # temperature, before top-p); None for tokens not generated.
    logprobs: list[float | None] | None = None
    # The step limit the episode was played under (the env server's CreateResponse.max_steps).
    max_steps: int | None = None
    # Each env step's own reward (StepResult.reward), in order, one per round. An empty list is
    # None (not recorded), as on the wire.
    step_rewards: list[float] | None = None
    # The policy weights that produced the agent turns, in order of first use (several when the
    # episode spanned a weight update). Empty: unknown.
    weight_versions: list[str] = field(default_factory=list)
    timing: dict[str, Any] | None = None  # start, duration_s, policy_s, env_s
    extra: dict[str, Any] = field(default_factory=dict)  # fields this module does not know

    def __post_init__(self) -> None:
        if not self.env and isinstance(self.item_id, str):
            self.env = env_of(self.item_id)
        if self.step_rewards == []:
            self.step_rewards = None

    # --- identity ---------------------------------------------------------------------------------
    @property
    def record_id(self) -> str:
        return make_record_id(self.item_id, self.sample)

    @property
    def key(self) -> str:
        return make_key(self.record_id, self.iteration)

    @property
    def weight_version(self) -> str | None:
        """The one version that produced every agent turn; None when unknown or several."""
        return self.weight_versions[0] if len(self.weight_versions) == 1 else None

    # --- validation -------------------------------------------------------------------------------
    def validate(self) -> Trajectory:
        """Raise TrajectoryError unless this is a storable, trainable trajectory; returns self."""
        where = f"trajectory {self.item_id!r}" if isinstance(self.item_id, str) else "trajectory"
        if type(self.item_id) is not str or not self.item_id:
            raise TrajectoryError(
                f"{where}: item_id must be a non-empty string (AgentTraj's <env>_<task index>, e.g. maze_3)"
            )
        if len(self.key.encode()) > MAX_KEY_BYTES:
            raise TrajectoryError(f"{where}: its key is longer than {MAX_KEY_BYTES} bytes")
        if not self.env:
            raise TrajectoryError(
                f"{where}: no env (set env, or use an item_id of the form <env>_<task index>)"
            )
        _check_turns(self.conversations, where)
        if self.reward is not None and (type(self.reward) is not float or not math.isfinite(self.reward)):
            raise TrajectoryError(f"{where}: reward must be a finite number, got {self.reward!r}")
        for name in ("task_id", "sample", "iteration", "rounds", "max_steps"):
            value = getattr(self, name)
            if value is not None and (type(value) is not int or value < 0):
                raise TrajectoryError(f"{where}: {name} must be a non-negative integer, got {value!r}")
        for name in ("iteration", "rounds", "max_steps"):  # uint32 in the message
            value = getattr(self, name)
            if value is not None and value >= _U32:
                raise TrajectoryError(f"{where}: {name} {value} is too large")
        rounds, max_steps = self.rounds, self.max_steps
        if rounds is not None and max_steps and rounds > max_steps:
            raise TrajectoryError(
                f"{where}: rounds is {rounds} but max_steps is {max_steps}; an episode takes at most "
                "max_steps steps"
            )
        step_rewards = self.step_rewards
        if step_rewards is not None:
            if type(step_rewards) is not list:
                raise TrajectoryError(f"{where}: step_rewards must be a list of numbers")
            if not set(map(type, step_rewards)) <= {float} or not all(map(math.isfinite, step_rewards)):
                i, v = next(
                    (i, v) for i, v in enumerate(step_rewards) if type(v) is not float or not math.isfinite(v)
                )
                raise TrajectoryError(
                    f"{where}: step_rewards[{i}] is {v!r}; step rewards must be finite numbers"
                )
            if rounds is not None and len(step_rewards) != rounds:
                raise TrajectoryError(
                    f"{where}: step_rewards must have one entry per round "
                    f"({rounds} rounds, {len(step_rewards)} step rewards)"
                )
        ids, mask, logprobs = self.input_ids, self.loss_mask, self.logprobs
        if ids is None and (mask is not None or logprobs is not None):
            raise TrajectoryError(f"{where}: loss_mask or logprobs without input_ids")
        if ids is not None:
            if type(ids) is not list or not ids:
                raise TrajectoryError(f"{where}: input_ids is empty; leave it unset when there are no tokens")
            # Over every token: C loops (map, set, min, max), not a Python expression per element.
            if set(map(type, ids)) != {int} or min(ids) < 0 or max(ids) >= _U32:
                raise TrajectoryError(f"{where}: input_ids must be integers in [0, 2^32)")
            if type(mask) is not list or len(mask) != len(ids):
                raise TrajectoryError(
                    f"{where}: input_ids has {len(ids)} tokens but loss_mask has "
                    f"{'none' if mask is None else len(mask)}; they must match"
                )
            if set(map(type, mask)) != {int} or not set(mask) <= {0, 1}:
                raise TrajectoryError(f"{where}: loss_mask values must be 0 or 1")
            if logprobs is not None:
                if type(logprobs) is not list or len(logprobs) != len(ids):
                    raise TrajectoryError(
                        f"{where}: logprobs must have one entry per input id "
                        f"({len(ids)} input ids, {len(logprobs)} logprobs)"
                    )
                numbers = [v for v in logprobs if v is not None]
                if not set(map(type, numbers)) <= {float} or not all(map(math.isfinite, numbers)):
                    i, v = next(
                        (i, v)
                        for i, v in enumerate(logprobs)
                        if v is not None and (type(v) is not float or not math.isfinite(v))
                    )
                    raise TrajectoryError(
                        f"{where}: logprobs[{i}] is {v!r}; use null for tokens not generated and "
                        "finite numbers otherwise (JSON cannot hold infinities)"
                    )
        if any(type(v) is not str or not v for v in self.weight_versions):
            raise TrajectoryError(f"{where}: weight versions must be non-empty strings")
        return self

    # --- JSON (AgentTraj) ---------------------------------------------------------------------------
    @classmethod
    def from_json(cls, obj: Any, where: str = "", *, validate: bool = True) -> Trajectory:
        """The trajectory a JSON object holds. Raises TrajectoryError naming `where` and the field."""
        if type(obj) is not dict:
            raise TrajectoryError(f"{where or 'record'}: expected an object, got {type(obj).__name__}")
        item_id = obj.get("item_id")
        where = where or f"trajectory {item_id!r}"
        if type(item_id) is not str:
            raise TrajectoryError(f"{where}: no item_id (AgentTraj's <env>_<task index>, e.g. maze_3)")
        conv = obj.get("conversations")
        if type(conv) is not list or not conv:
            raise TrajectoryError(
                f"{where}: no conversation (a trajectory needs a non-empty conversations list)"
            )
        turns = []
        for i, m in enumerate(conv):
            if (
                type(m) is not dict
                or type(m.get("value")) is not str
                or m.get("loss") not in (None, True, False)
            ):
                raise TrajectoryError(
                    f"{where}: conversations[{i}] needs from (human|gpt|system), a string value and "
                    "loss true, false or null"
                )
            turns.append(Turn(m.get("from"), m["value"], m.get("loss")))  # type: ignore[arg-type]
        kw: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for k, v in obj.items():
            if k in ("item_id", "conversations"):
                continue
            parse = _JSON_FIELDS.get(k)
            if parse is None:
                extra[k] = v
                continue
            try:
                parse(kw, v)
            except (TypeError, ValueError):
                raise TrajectoryError(f"{where}: field {k!r} has the wrong type: {str(v)[:80]}") from None
        traj = cls(item_id=item_id, conversations=turns, extra=extra, **kw)
        return traj.validate() if validate else traj

    def to_json(self) -> dict[str, Any]:
        """The JSON object (AgentTraj's fields first); `from_json` gives back an equal Trajectory."""
        out: dict[str, Any] = {
            "item_id": self.item_id,
            "conversations": [t.to_json() for t in self.conversations],
        }
        if self.reward is not None:
            out["reward"] = self.reward
        if self.success is not None:
            out["success"] = int(self.success)
        out["env"] = self.env
        for name in _PLAIN_FIELDS:
            value = getattr(self, name)
            if value is not None and not (name == "sample" and value == 0):
                out[name] = value
        if self.weight_versions:
            out["weight_version"] = (
                self.weight_versions[0] if len(self.weight_versions) == 1 else list(self.weight_versions)
            )
        if self.timing is not None:
            out["timing"] = self.timing
        out.update(self.extra)
        return out

    def dumps(self) -> bytes:
        """One JSON line's bytes (no newline)."""
        try:
            return orjson.dumps(self.to_json())
        except TypeError as exc:
            raise TrajectoryError(f"trajectory {self.item_id!r} is not JSON-serializable: {exc}") from None

    # --- protobuf (agentgym.v1.Trajectory) ----------------------------------------------------------
    def to_proto(self) -> tpb.Trajectory:
        """The message carrying this trajectory (its `id` is the store key)."""
        msg = tpb.Trajectory(id=self.key, item_id=self.item_id, env=self.env, sample=self.sample)
        msg.conversations.extend(
            tpb.Turn(role=t.role, value=t.value)
            if t.loss is None
            else tpb.Turn(role=t.role, value=t.value, loss=t.loss)
            for t in self.conversations
        )
        for name in _OPTIONAL_PROTO_FIELDS:
            value = getattr(self, name)
            if value is not None:
                setattr(msg, name, value)
        if self.input_ids is not None:
            msg.input_ids.extend(self.input_ids)
            msg.loss_mask.extend(self.loss_mask or ())
        if self.logprobs is not None:
            msg.logprobs.extend([math.nan if v is None else v for v in self.logprobs])
        if self.step_rewards is not None:
            msg.step_rewards.extend(self.step_rewards)
        msg.weight_versions.extend(self.weight_versions)
        rest = dict(self.extra)
        if self.timing is not None:
            rest["timing"] = self.timing
        if rest:
            try:
                msg.extra_json = orjson.dumps(rest).decode()
            except TypeError as exc:
                raise TrajectoryError(
                    f"trajectory {self.item_id!r} is not JSON-serializable: {exc}"
                ) from None
        return msg

    @classmethod
    def from_proto(cls, msg: tpb.Trajectory, *, validate: bool = True) -> Trajectory:
        """The trajectory a message carries. Raises TrajectoryError (an invalid message: see
        trajectory.proto) when it does not decode to a valid trajectory or its id is not its key."""
        where = f"trajectory {msg.id!r}"
        kw: dict[str, Any] = {}
        for name in _OPTIONAL_PROTO_FIELDS:
            if msg.HasField(name):
                kw[name] = getattr(msg, name)
        if msg.input_ids:
            kw["input_ids"] = list(msg.input_ids)
            kw["loss_mask"] = list(msg.loss_mask)
        elif msg.loss_mask:
            raise TrajectoryError(f"{where}: loss_mask without input_ids")
        if msg.logprobs:
            kw["logprobs"] = [None if v != v else v for v in msg.logprobs]  # NaN != NaN
        if msg.step_rewards:
            kw["step_rewards"] = list(msg.step_rewards)
        extra: dict[str, Any] = {}
        if msg.extra_json:
            try:
                extra = orjson.loads(msg.extra_json)
            except orjson.JSONDecodeError as exc:
                raise TrajectoryError(f"{where}: extra_json is not valid JSON: {exc}") from None
            if type(extra) is not dict:
                raise TrajectoryError(
                    f"{where}: extra_json must be a JSON object, got {type(extra).__name__}"
                )
            # timing has no typed field: it travels in extra_json (to_proto puts it there)
            twice = sorted(set(extra) & (_TYPED_KEYS - {"timing"}))
            if twice:
                raise TrajectoryError(
                    f"{where}: extra_json repeats typed field(s) {twice}; set each field once"
                )
            timing = extra.pop("timing", None)
            if timing is not None:
                if type(timing) is not dict:
                    raise TrajectoryError(
                        f"{where}: timing must be a JSON object, got {type(timing).__name__}"
                    )
                kw["timing"] = timing
        traj = cls(
            item_id=msg.item_id,
            conversations=[
                Turn(t.role, t.value, t.loss if t.HasField("loss") else None) for t in msg.conversations
            ],
            env=msg.env,
            sample=msg.sample,
            weight_versions=list(msg.weight_versions),
            extra=extra,
            **kw,
        )
        if validate:
            traj.validate()
            if msg.id != traj.key:
                raise TrajectoryError(
                    f"{where}: id must be the trajectory's key {traj.key!r} (record id, then @iteration)"
                )
        return traj


def _check_turns(turns: list[Turn], where: str) -> None:
    """A conversation: an optional system turn, then human first, then gpt and human alternating."""
    if type(turns) is not list or not turns:
        raise TrajectoryError(f"{where}: no conversation (a trajectory needs a non-empty conversations list)")
    expect = "human"
    for i, t in enumerate(turns):
        if t.role not in ROLES or type(t.value) is not str or t.loss not in (None, True, False):
            raise TrajectoryError(
                f"{where}: conversations[{i}] needs from (human|gpt|system), a string value and loss "
                f"true, false or null; got from={t.role!r}"
            )
        if t.role == "system" and i == 0:
            continue
        if t.role != expect:
            raise TrajectoryError(
                f"{where}: conversations[{i}] is a {t.role} turn where a {expect} turn belongs "
                "(conversations start with the human instruction, then alternate gpt and human)"
            )
        expect = "gpt" if expect == "human" else "human"


def _set(name: str, kind: type, cast: Any = None) -> Any:
    def parse(kw: dict[str, Any], v: Any) -> None:
        if v is None:
            return
        if kind is int and (type(v) is not int):
            raise TypeError(name)
        if kind is str and type(v) is not str:
            raise TypeError(name)
        kw[name] = cast(v) if cast else v

    return parse


def _number(kw: dict[str, Any], v: Any) -> None:
    if v is not None:
        if type(v) not in (int, float):
            raise TypeError("reward")
        kw["reward"] = float(v)


def _success(kw: dict[str, Any], v: Any) -> None:
    if v is not None:
        if v not in (0, 1) or type(v) not in (int, bool):
            raise TypeError("success")
        kw["success"] = bool(v)


def _int_list(name: str) -> Any:
    def parse(kw: dict[str, Any], v: Any) -> None:
        if v is not None:
            if type(v) is not list:
                raise TypeError(name)
            kw[name] = v

    return parse


def _logprob_list(kw: dict[str, Any], v: Any) -> None:
    if v is not None:
        if type(v) is not list:
            raise TypeError("logprobs")
        # JSON numbers: integers (a logprob of 0) become floats
        kw["logprobs"] = [float(x) if type(x) is int else x for x in v] if int in set(map(type, v)) else v


def _float_list(name: str) -> Any:
    def parse(kw: dict[str, Any], v: Any) -> None:
        if v is not None:
            if type(v) is not list:
                raise TypeError(name)
            # JSON numbers: integers (a step reward of 0) become floats
            kw[name] = [float(x) if type(x) is int else x for x in v]

    return parse


def _versions(kw: dict[str, Any], v: Any) -> None:
    if v is None:
        return
    if type(v) is str:
        kw["weight_versions"] = [v] if v else []
    elif type(v) is list and all(type(x) is str for x in v):
        kw["weight_versions"] = list(v)
    else:
        raise TypeError("weight_version")


def _timing(kw: dict[str, Any], v: Any) -> None:
    if v is not None:
        if type(v) is not dict:
            raise TypeError("timing")
        kw["timing"] = v


# Scalar fields that are `optional` in the message: unset there is None here.
_OPTIONAL_PROTO_FIELDS = (
    "reward",
    "success",
    "task_id",
    "iteration",
    "seed",
    "rounds",
    "finish",
    "policy",
    "tokenizer",
    "max_steps",
)
_PLAIN_FIELDS = ("task_id", "sample", "iteration", "seed", "rounds", "finish", "policy", "tokenizer",
                 "max_steps", "step_rewards", "input_ids", "loss_mask", "logprobs")  # fmt: skip
_JSON_FIELDS: dict[str, Any] = {
    "reward": _number,
    "success": _success,
    "env": _set("env", str),
    "task_id": _set("task_id", int),
    "sample": _set("sample", int),
    "iteration": _set("iteration", int),
    "seed": _set("seed", int),
    "rounds": _set("rounds", int),
    "finish": _set("finish", str),
    "policy": _set("policy", str),
    "tokenizer": _set("tokenizer", str),
    "max_steps": _set("max_steps", int),
    "step_rewards": _float_list("step_rewards"),
    "input_ids": _int_list("input_ids"),
    "loss_mask": _int_list("loss_mask"),
    "logprobs": _logprob_list,
    "weight_version": _versions,
    "timing": _timing,
}
# Fields with their own place in the message (timing travels in extra_json).
_TYPED_KEYS = (frozenset(_JSON_FIELDS) - {"timing"}) | {"item_id", "conversations"}


# --- files -----------------------------------------------------------------------------------------------
@dataclass
class ReadReport:
    """What reading trajectory files skipped: (where, item id, why) per bad record."""

    read: int = 0
    skipped: list[tuple[str, str, str]] = field(default_factory=list)
    no_conversation: int = 0  # AgentEval items (tasks, not trajectories)

    def summary(self) -> str:
        if not self.skipped:
            return f"{self.read} trajectories read, none skipped"
        shown = "; ".join(f"{item or where}: {why}" for where, item, why in self.skipped[:5])
        more = f" (and {len(self.skipped) - 5} more)" if len(self.skipped) > 5 else ""
        return f"{self.read} trajectories read, {len(self.skipped)} bad record(s) skipped: {shown}{more}"


def read_items(path: str | Path) -> Iterator[tuple[str, Any]]:
    """(where, JSON value) for each item of an AgentTraj/AgentEval file: a JSON list, or JSON Lines.
    A torn last line (a writer killed mid-line) is skipped; a file that is not JSON at all, or a
    malformed line elsewhere, yields a TrajectoryError in place of the value."""
    path = Path(path)
    with path.open("rb") as f:
        head = f.read(1 << 16).lstrip()
    if head.startswith(b"["):
        try:
            items = json.loads(path.read_text())
        except ValueError as exc:
            raise TrajectoryError(f"{path}: not valid JSON: {exc}") from None
        for i, item in enumerate(items):
            yield f"{path}[{i}]", item
        return
    with path.open("rb") as f:
        lines = f.read().split(b"\n")
    last = len(lines) - (1 if lines and not lines[-1] else 0)
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            yield f"{path}:{n}", orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            if n >= last:
                continue  # torn tail: the write was cut off
            yield f"{path}:{n}", TrajectoryError(f"not valid JSON: {exc}")


def read_trajectories(
    path: str | Path, *, strict: bool = False, report: ReadReport | None = None
) -> Iterator[Trajectory]:
    """The trajectories of an AgentTraj / JSONL file. A bad record is logged with its item id,
    counted in `report` and skipped; with `strict=True` it raises TrajectoryError instead. Items
    without a conversation (AgentEval's task lists) are counted as such and skipped."""
    report = report if report is not None else ReadReport()
    for where, item in read_items(path):
        item_id = item.get("item_id", "") if type(item) is dict else ""
        if type(item) is dict and item.get("conversations") is None and "conversations" in item:
            report.no_conversation += 1
            continue
        try:
            if isinstance(item, TrajectoryError):
                raise item
            traj = Trajectory.from_json(item, where)
        except TrajectoryError as exc:
            if strict:
                raise TrajectoryError(
                    f"{where}: {exc}" if not str(exc).startswith(where) else str(exc)
                ) from None
            report.skipped.append((where, str(item_id), str(exc)))
            log.warning(
                "bad trajectory skipped", extra={"where": where, "item_id": item_id, "error": str(exc)}
            )
            continue
        report.read += 1
        yield traj


class JsonlWriter:
    """Appends JSON objects, one line each, flushed per record (fsync'd every `fsync_every`)."""

    def __init__(self, path: str | Path, fsync_every: int = 1) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._repair_tail()
        self._f = self.path.open("ab")
        self.fsync_every = fsync_every
        self._since_sync = 0

    def _repair_tail(self) -> None:
        """Cut a torn last line left by a killed writer, so appends start on a fresh line."""
        if not self.path.exists() or self.path.stat().st_size == 0:
            return
        with self.path.open("rb+") as f:
            data = f.read()
            if data.endswith(b"\n"):
                return
            f.truncate(data.rfind(b"\n") + 1)

    def write(self, record: Trajectory | dict[str, Any]) -> None:
        line = record.dumps() if isinstance(record, Trajectory) else orjson.dumps(record)
        self._f.write(line + b"\n")
        self._f.flush()
        self._since_sync += 1
        if self.fsync_every and self._since_sync >= self.fsync_every:
            os.fsync(self._f.fileno())
            self._since_sync = 0

    def close(self) -> None:
        if not self._f.closed:
            self._f.flush()
            os.fsync(self._f.fileno())
            self._f.close()
