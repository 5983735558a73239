"""What the viewer reads, and how it follows each source as it grows.

`discover(paths)` turns the paths on the command line into sources; directories are walked
(a few levels deep) and each folder is recognised by what it holds:

    STORE marker              a trainer's trajectory store        -> one run, kind "store"
    job.json                  a trainer job (bc, evol, rl)        -> a training run, kind "job",
                              its eval/<name>-<k>.jsonl rows      -> one results-only run each
    trajectories.jsonl        an `agentgym eval` (results.json)   -> kind "eval"
                              or `agentgym rollout` output        -> kind "rollout"
    metrics.jsonl             a `agentgym train bc` run folder    -> kind "bc"
    *.json / *.jsonl          AgentTraj files (JSON list or JSONL) -> kind "file"
    grpc://HOST:PORT          a running trainer's store, through its Query RPC -> kind "store"

Every source is polled: JSON Lines files and store segments are read from where the last poll
stopped (so a run in progress appears as it grows), other files are re-read when they change.
Polls run on the viewer's one database thread; nothing here touches the event loop.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from agentgym.client.view.episode import _opening_length
from agentgym.client.view.index import EpisodeIndex, Row
from agentgym.core.trajectory import env_of, make_item_id, make_key, make_record_id, split_item_id

log = logging.getLogger(__name__)

MAX_DEPTH = 6
SKIP_DIRS = {".git", "node_modules", "__pycache__", "checkpoints", "final", "tensorboard", "learner", ".venv"}
NOT_TRAJECTORIES = {"results.json", "metrics.jsonl", "events.jsonl", "report.json", "job.json",
                    "state.json", "STORE", "result.json", "package.json", "package-lock.json"}  # fmt: skip
_ADDRESS = re.compile(r"^(grpcs?://)?[\w.-]+:\d+$")
_EVAL_ROWS = re.compile(r"^(.+)-(\d+)\.jsonl$")
CHUNK = 8 << 20  # bytes of a JSON Lines file indexed per call, so page requests interleave


@dataclass
class Run:
    """One run the viewer lists: what GET /api/runs says about it (see API.md)."""

    id: str
    kind: str  # eval | rollout | file | store | job | bc
    title: str
    path: str
    policy: str | None = None
    time: float | None = None
    has_trajectories: bool = True
    training: dict[str, Any] | None = None
    results: dict[str, Any] | None = None
    curves: dict[str, Any] | None = None
    evals: list[dict[str, Any]] | None = None
    skipped: int = 0  # records that could not be read
    grew_at: float = 0.0  # when it last gained episodes (monotonic)

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "title": self.title,
            "path": self.path,
            "policy": self.policy,
            "time": self.time,
            "has_trajectories": self.has_trajectories,
            "training": self.training,
            "skipped": self.skipped,
        }


class Runs:
    """The runs, keyed by id; ids are handed out in discovery order ("r1", "r2", ...)."""

    def __init__(self) -> None:
        self.by_id: dict[str, Run] = {}

    def new(self, kind: str, title: str, path: str, **kw: Any) -> Run:
        run = Run(id=f"r{len(self.by_id) + 1}", kind=kind, title=title, path=path, **kw)
        self.by_id[run.id] = run
        return run


# --- records to rows ----------------------------------------------------------------------------------
def row_of(record: dict[str, Any], run: Run) -> Row:
    """The index row of one trajectory's JSON (AgentTraj fields plus the fabric's)."""
    item_id = record.get("item_id")
    if type(item_id) is not str or not item_id:
        raise ValueError("no item_id")
    env = record.get("env") or env_of(item_id)
    task_id = record.get("task_id")
    if type(task_id) is not int:
        try:
            task_id = split_item_id(item_id)[1]
        except ValueError:
            task_id = None
    conv = record.get("conversations")
    conv = conv if type(conv) is list else []
    turns = [{"role": c.get("from", ""), "text": c.get("value", "")} for c in conv if type(c) is dict]
    text = "\n".join(str(t["text"]) for t in turns[_opening_length(turns) :])
    wv = record.get("weight_version", record.get("weight_versions"))
    versions = (wv,) if type(wv) is str else tuple(v for v in wv or () if type(v) is str)
    sample = record.get("sample") if type(record.get("sample")) is int else 0
    iteration = record.get("iteration") if type(record.get("iteration")) is int else None
    success = record.get("success")
    reward = record.get("reward")
    timing = record.get("timing") if type(record.get("timing")) is dict else {}
    start = timing.get("start")
    return Row(
        run=run.id,
        key=make_key(make_record_id(item_id, sample), iteration),
        item_id=item_id,
        env=str(env),
        task_id=task_id,
        sample=sample,
        success=None if success is None else bool(success),
        reward=float(reward) if type(reward) in (int, float) else None,
        rounds=record.get("rounds") if type(record.get("rounds")) is int else None,
        iteration=iteration,
        versions=versions,
        finish=record.get("finish") if type(record.get("finish")) is str else None,
        turns=len(turns),
        policy=record.get("policy") if type(record.get("policy")) is str else None,
        t=float(start) if type(start) in (int, float) else None,
        text=text,
    )


def _policy_of(results: dict[str, Any] | None) -> str | None:
    p = (results or {}).get("policy")
    if isinstance(p, dict):
        return " ".join(str(v) for k, v in p.items() if k in ("policy", "model") and v) or None
    return str(p) if p else None


# --- sources ------------------------------------------------------------------------------------------
class Source:
    """Something on disk (or a trainer) that holds runs; `poll` indexes what is new (a part of
    it when there is much: then `more` is true and the caller polls again)."""

    key: str

    @property
    def more(self) -> bool:
        tail = getattr(self, "tail", None)
        return bool(tail and tail.more)

    def poll(self, index: EpisodeIndex) -> bool:  # True when something changed
        raise NotImplementedError


class JsonlTail:
    """Follows one JSON Lines file of trajectories: each poll indexes the complete lines added
    since the last (a torn last line waits for its writer)."""

    def __init__(self, path: Path, run: Run) -> None:
        self.path, self.run, self.pos = path, run, 0
        self.more = False  # the last poll stopped at CHUNK bytes: poll again

    def poll(self, index: EpisodeIndex) -> bool:
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return False
        if size < self.pos:  # rewritten from the start
            index.drop_run(self.run.id)
            self.pos = 0
        if size == self.pos:
            return False
        with self.path.open("rb") as f:
            f.seek(self.pos)
            data = f.read(min(size - self.pos, CHUNK))
        end = data.rfind(b"\n") + 1
        if end == 0 and len(data) == CHUNK:  # one record longer than a chunk
            with self.path.open("rb") as f:
                f.seek(self.pos)
                data = f.readline()
            end = len(data) if data.endswith(b"\n") else 0
        self.more = self.pos + len(data) < size
        rows, pos, src = [], 0, str(self.path)
        while pos < end:
            nl = data.index(b"\n", pos)
            line = data[pos:nl]
            if line.strip():
                try:
                    record = orjson.loads(line)
                    if type(record) is not dict:
                        raise ValueError("not an object")
                    row = row_of(record, self.run)
                except ValueError:
                    self.run.skipped += 1
                else:
                    row.src, row.off, row.len = src, self.pos + pos, nl - pos
                    rows.append(row)
            pos = nl + 1
        self.pos += end
        index.add(rows)
        if rows:
            self.run.grew_at = time.monotonic()
        return bool(rows)


class FileSource(Source):
    """One AgentTraj file: JSON Lines (followed as it grows) or a JSON list (re-read on change;
    its records are kept in the index, having no line offsets)."""

    def __init__(self, path: Path, runs: Runs, title: str) -> None:
        self.key = f"file:{path}"
        self.path = path
        self.run = runs.new("file", title, str(path))
        self.tail = JsonlTail(path, self.run)
        self.stamp: tuple[float, int] | None = None
        self.is_list: bool | None = None

    def poll(self, index: EpisodeIndex) -> bool:
        if self.is_list is None:
            self.is_list = _is_json_list(self.path)
        if not self.is_list:
            return self.tail.poll(index)
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return False
        if self.stamp == (st.st_mtime, st.st_size):
            return False
        self.stamp = (st.st_mtime, st.st_size)
        index.drop_run(self.run.id)
        try:
            items = orjson.loads(self.path.read_bytes())
        except orjson.JSONDecodeError:
            self.run.skipped += 1
            return False
        rows = []
        for item in items if type(items) is list else []:
            if type(item) is not dict or not item.get("conversations"):
                self.run.skipped += 1
                continue
            try:
                row = row_of(item, self.run)
            except ValueError:
                self.run.skipped += 1
                continue
            row.src, row.data = "blob", orjson.dumps(item)
            rows.append(row)
        index.add(rows)
        self.run.grew_at = time.monotonic()
        return True


class OutputDirSource(Source):
    """An `agentgym eval` or `agentgym rollout` output folder."""

    def __init__(self, path: Path, runs: Runs, title: str) -> None:
        self.key = f"out:{path}"
        self.path = path
        kind = "eval" if (path / "results.json").exists() else "rollout"
        self.run = runs.new(kind, title, str(path))
        self.tail = JsonlTail(path / "trajectories.jsonl", self.run)
        self.results_stamp: float | None = None

    def poll(self, index: EpisodeIndex) -> bool:
        changed = self.tail.poll(index)
        results = self.path / "results.json"
        try:
            mtime = results.stat().st_mtime
        except FileNotFoundError:
            return changed
        if mtime != self.results_stamp:
            self.results_stamp = mtime
            data = _read_json(results)
            if isinstance(data, dict):
                self.run.kind = "eval"
                self.run.results = data
                self.run.policy = _policy_of(data)
                self.run.time = self.run.time or mtime - float(data.get("seconds") or 0)
                changed = True
        return changed


class StoreSource(Source):
    """A trainer's store directory, read without its lock while the trainer appends to it."""

    def __init__(self, path: Path, runs: Runs, title: str) -> None:
        self.key = f"store:{path}"
        self.path = path
        self.run = runs.new("store", title, str(path))
        self.positions: dict[int, int] = {}
        self.keys: set[str] = set()

    def poll(self, index: EpisodeIndex) -> bool:
        from agentgym.trainer.store import follow, segment_name

        rows = []
        for line in follow(self.path, self.positions):
            e = line.entry
            if e.id in self.keys:  # a second copy on disk: the store keeps the first
                continue
            self.keys.add(e.id)
            try:
                row = row_of(orjson.loads(line.record), self.run)
            except ValueError:
                self.run.skipped += 1
                continue
            row.key = e.id
            row.t = row.t or e.stored_at
            row.src, row.seg, row.off, row.len = (
                str(self.path / segment_name(e.segment)),
                e.segment,
                e.offset,
                e.length,
            )
            rows.append(row)
        index.add(rows)
        if rows:
            self.run.grew_at = time.monotonic()
        return bool(rows)


class RemoteStoreSource(Source):
    """A running trainer's store, through its TrajectoryService (Stats, then Query for what is new).
    New records are asked for by the trainer's storage time, a minute back to cover clock steps,
    and de-duplicated by key. grpcs:// is TLS; the CA and the bearer token come from
    $AGENTGYM_TLS_CA and $AGENTGYM_TOKEN_FILE (docs/security.md)."""

    def __init__(self, address: str, runs: Runs) -> None:
        self.key = f"grpc:{address}"
        self.address = address.removeprefix("grpc://")
        url = self.address if "://" in self.address else f"grpc://{self.address}"
        self.run = runs.new("store", f"store at {self.address}", url)
        self.seen: set[str] = set()
        self.count = -1
        self.since: float | None = None
        self.channel: Any = None

    def poll(self, index: EpisodeIndex) -> bool:
        import grpc

        from agentgym.core.security import default_client, parse_address
        from agentgym.core.trajectory import Trajectory
        from agentgym.v1 import trajectory_pb2 as tpb
        from agentgym.v1 import trajectory_pb2_grpc as tpb_grpc

        security = default_client()
        if self.channel is None:
            target, tls = parse_address(self.address)
            self.channel = (
                grpc.secure_channel(target, security.credentials()) if tls else grpc.insecure_channel(target)
            )
        stub = tpb_grpc.TrajectoryServiceStub(self.channel)
        metadata = security.metadata()
        try:
            total = stub.Stats(tpb.StatsRequest(), timeout=5, metadata=metadata).trajectories
            if total == self.count:
                return False
            started = time.time()
            flt = tpb.TrajectoryFilter()
            if self.since is not None:
                flt.since = self.since - 60
            rows = []
            for msg in stub.Query(tpb.QueryRequest(filter=flt), timeout=300, metadata=metadata):
                t = Trajectory.from_proto(msg, validate=False)
                if t.key in self.seen:
                    continue
                self.seen.add(t.key)
                record = t.to_json()
                row = row_of(record, self.run)
                row.src, row.data = "blob", orjson.dumps(record)
                rows.append(row)
        except grpc.RpcError as exc:
            log.warning("trainer store not readable", extra={"address": self.address, "error": str(exc)})
            return False
        self.count, self.since = total, started
        index.add(rows)
        if rows:
            self.run.grew_at = time.monotonic()
        return bool(rows)


class EvalRowsSource(Source):
    """A job's held-out evaluation, eval/<name>-<k>.jsonl: one result row per task, no
    conversation. Listed as a results-only run, so that two evaluations can be compared."""

    def __init__(self, path: Path, runs: Runs, title: str, version: str | None) -> None:
        self.key = f"evalrows:{path}"
        self.path = path
        self.run = runs.new("eval", title, str(path), has_trajectories=False, policy=version)
        self.pos = 0

    def poll(self, index: EpisodeIndex) -> bool:
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return False
        if size == self.pos:
            return False
        with self.path.open("rb") as f:
            f.seek(self.pos)
            data = f.read(size - self.pos)
        end = data.rfind(b"\n") + 1
        rows = []
        for line in data[:end].splitlines():
            try:
                r = orjson.loads(line)
                item_id = make_item_id(r["env"], int(r["task_id"]))
            except (ValueError, KeyError, TypeError):
                self.run.skipped += 1
                continue
            wv = r.get("weight_versions") or ()
            rows.append(
                Row(
                    run=self.run.id,
                    key=item_id,
                    item_id=item_id,
                    env=r["env"],
                    task_id=int(r["task_id"]),
                    success=None if r.get("success") is None else bool(r["success"]),
                    reward=r.get("reward") if type(r.get("reward")) in (int, float) else None,
                    versions=tuple(v for v in wv if type(v) is str),
                )
            )
        self.pos += end
        index.add(rows)
        if rows:
            self.run.grew_at = time.monotonic()
        self.run.time = self.run.time or self.path.stat().st_mtime
        return bool(rows)


class JobSource(Source):
    """A trainer job's folder: its state and curves (re-read when they change) and its
    evaluations (each a run of its own)."""

    def __init__(self, path: Path, runs: Runs, title: str) -> None:
        self.key = f"job:{path}"
        self.path, self.runs, self.title = path, runs, title
        self.run = runs.new("job", title, str(path), has_trajectories=False)
        self.evals: dict[Path, EvalRowsSource] = {}
        self.stamps: dict[Path, float] = {}

    def _changed(self, path: Path) -> bool:
        try:
            mtime = path.stat().st_mtime
        except FileNotFoundError:
            return False
        if self.stamps.get(path) == mtime:
            return False
        self.stamps[path] = mtime
        return True

    def poll(self, index: EpisodeIndex) -> bool:
        changed = False
        job_file = self.path / "job.json"
        if self._changed(job_file):
            job = _read_json(job_file)
            if isinstance(job, dict):
                changed = True
                spec = _loads(job.get("spec_json")) or {}
                self.run.training = {
                    "kind": job.get("kind"),
                    "state": job.get("state"),
                    "step": job.get("step") or None,
                    "progress": job.get("progress"),
                    "error": job.get("error") or None,
                    "envs": spec.get("envs"),
                    "model": spec.get("model"),
                    "weight_version": job.get("weight_version") or None,
                }
                self.run.policy = spec.get("model")
                self.run.time = job.get("started") or job.get("created")
                self.run.title = f"{self.title} ({job.get('kind')})"
        metrics = self._metrics_file()
        report = self.path / "report.json"
        # Both checked every time (each records its file's stamp).
        metrics_changed = metrics is not None and self._changed(metrics)
        if self._changed(report) or metrics_changed or changed:
            kind = (self.run.training or {}).get("kind")
            self.run.curves = curves_of(kind, _read_jsonl(metrics) if metrics else [], _read_json(report))
            changed = True
        evals_dir = self.path / "eval"
        if evals_dir.is_dir():
            for p in sorted(evals_dir.glob("*.jsonl"), key=_eval_order):
                if p not in self.evals:
                    summary = _read_json(p.with_suffix(".json")) or {}
                    version = summary.get("weight_version") if isinstance(summary, dict) else None
                    self.evals[p] = EvalRowsSource(p, self.runs, f"{self.title} eval {p.stem}", version)
                    changed = True
                changed |= self.evals[p].poll(index)
            self.run.evals = [
                {"name": p.stem, "weight_version": s.run.policy, "run": s.run.id,
                 "success": (_read_json(p.with_suffix(".json")) or {}).get("success")}
                for p, s in self.evals.items()
            ]  # fmt: skip
        return changed

    def _metrics_file(self) -> Path | None:
        direct = self.path / "metrics.jsonl"
        if direct.exists():
            return direct
        found = sorted(self.path.glob("*/metrics.jsonl")) + sorted(self.path.glob("*/*/metrics.jsonl"))
        return found[-1] if found else None


class BCDirSource(Source):
    """A `agentgym train bc` run folder (metrics.jsonl, result.json): its loss curves."""

    def __init__(self, path: Path, runs: Runs, title: str) -> None:
        self.key = f"bc:{path}"
        self.path = path
        self.run = runs.new("bc", title, str(path), has_trajectories=False, training={"kind": "bc"})
        self.stamp: float | None = None

    def poll(self, index: EpisodeIndex) -> bool:
        metrics = self.path / "metrics.jsonl"
        try:
            mtime = metrics.stat().st_mtime
        except FileNotFoundError:
            return False
        if mtime == self.stamp:
            return False
        self.stamp = mtime
        rows = _read_jsonl(metrics)
        self.run.curves = curves_of("bc", rows, None)
        self.run.time = rows[0].get("time") if rows else mtime
        result = _read_json(self.path / "result.json")
        self.run.training = {"kind": "bc", "state": "SUCCEEDED" if result else None, "result": result}
        return True


# --- training curves ---------------------------------------------------------------------------------
# (chart title, [(series name, key)]) per job kind; series whose key no row has are left out.
CHARTS: dict[str, list[tuple[str, list[tuple[str, str]]]]] = {
    "bc": [
        ("loss", [("loss", "loss")]),
        ("learning rate", [("lr", "lr")]),
        ("grad norm", [("grad norm", "grad_norm")]),
        ("tokens/s", [("tokens/s", "tokens_per_s")]),
    ],
    "rl": [
        ("reward and success (training rollouts)", [("reward", "reward_mean"), ("success", "success")]),
        ("loss", [("loss", "loss"), ("pg loss", "pg_loss")]),
        ("KL", [("to reference", "kl_ref"), ("to rollout", "kl_rollout")]),
        ("entropy", [("entropy", "entropy")]),
        ("clip fraction", [("clip fraction", "clip_frac")]),
        (
            "seconds per step",
            [("rollout", "rollout_s"), ("learning", "learn_s"), ("sync", "sync_s"), ("eval", "eval_s")],
        ),
    ],
    "evol": [
        ("kept trajectories", [("kept", "kept_total")]),
        ("loss", [("first", "loss_first"), ("last", "loss_last")]),
    ],
}


def curves_of(kind: str | None, metrics: list[dict[str, Any]], report: Any) -> dict[str, Any] | None:
    """Charts and a table for a training run: BC from metrics.jsonl; RL from its metrics rows (or
    report.json's steps); AgentEvol from report.json's iterations, with held-out success per env."""
    report = report if isinstance(report, dict) else {}
    if kind == "evol":
        rows, x = report.get("iterations") or [], "iteration"
    elif kind == "rl":
        rows, x = metrics or report.get("steps") or [], "step"
    else:
        kind, rows, x = "bc", metrics, "step"
    if not rows:
        return None
    charts = []
    for title, series in CHARTS[kind]:
        lines = [
            {"name": name, "points": [[r.get(x), r[key]] for r in rows if _num(r.get(key))]}
            for name, key in series
        ]
        lines = [s for s in lines if s["points"]]
        if lines:
            charts.append({"title": title, "series": lines})
    held_out = _held_out(kind, rows, x)
    if held_out:
        charts.insert(0, {"title": "held-out success", "series": held_out})
    columns = [c for c in rows[0] if all(_scalar(r.get(c)) for r in rows)]
    for r in rows[1:]:
        columns += [c for c in r if c not in columns and _scalar(r.get(c))]
    table = {"columns": columns, "rows": [[r.get(c) for c in columns] for r in rows]}
    return {"x": x, "charts": charts, "table": table}


def _held_out(kind: str, rows: list[dict[str, Any]], x: str) -> list[dict[str, Any]]:
    series: dict[str, list[list[Any]]] = {}
    for r in rows:
        if kind == "evol":
            before, after = r.get("success_before") or {}, r.get("success_after") or {}
            for env, v in before.items():
                if _num(v) and r is rows[0]:
                    series.setdefault(env, []).append([r[x] - 1, v])
            for env, v in after.items():
                if _num(v):
                    series.setdefault(env, []).append([r[x], v])
        elif kind == "rl":
            for env, v in (r.get("eval_before") or {}).items():
                if _num(v):
                    series.setdefault(env, []).append([r[x] - 1, v])
            for env, v in (r.get("eval_success") or {}).items():
                if _num(v):
                    series.setdefault(env, []).append([r[x], v])
    return [{"name": f"eval {env}", "points": pts} for env, pts in series.items()]


def _num(v: Any) -> bool:
    return type(v) in (int, float) and v == v and abs(v) != float("inf")


def _scalar(v: Any) -> bool:
    return v is None or type(v) in (int, float, str, bool)


# --- discovery ---------------------------------------------------------------------------------------
def is_address(arg: str) -> bool:
    return arg.startswith(("grpc://", "grpcs://")) or (not os.path.exists(arg) and bool(_ADDRESS.match(arg)))


class Discovery:
    """The sources under the given paths; `scan` finds new ones (call it again to pick up runs
    that appear later)."""

    def __init__(self, paths: list[str], runs: Runs) -> None:
        self.paths, self.runs = paths, runs
        self.sources: dict[str, Source] = {}
        self.labels = root_labels([Path(p).resolve() for p in paths if not is_address(p)])

    def scan(self) -> list[Source]:
        new: list[Source] = []
        for arg in self.paths:
            if is_address(arg):
                self._add(
                    new, f"grpc:{arg.removeprefix('grpc://')}", lambda a=arg: RemoteStoreSource(a, self.runs)
                )
                continue
            root = Path(arg).resolve()
            if root.is_file():
                label = self.labels.get(root, root.name)
                self._add(new, f"file:{root}", lambda r=root, t=label: FileSource(r, self.runs, t))
            elif root.is_dir():
                self._walk(root, root, 0, new)
        return new

    def _add(self, new: list[Source], key: str, make: Any) -> None:
        if key not in self.sources:
            source = make()
            self.sources[key] = source
            new.append(source)

    def _walk(self, root: Path, d: Path, depth: int, new: list[Source]) -> None:
        label = self.labels.get(root, root.name)
        title = str(Path(label) / d.relative_to(root)) if d != root else label
        try:
            names = set(os.listdir(d))
        except OSError:
            return
        if "STORE" in names:
            self._add(new, f"store:{d}", lambda: StoreSource(d, self.runs, title))
            return
        if "job.json" in names:
            self._add(new, f"job:{d}", lambda: JobSource(d, self.runs, title))
            return
        if "trajectories.jsonl" in names:
            self._add(new, f"out:{d}", lambda: OutputDirSource(d, self.runs, title))
        elif "metrics.jsonl" in names and not (names & {"requests", "results"}):
            self._add(new, f"bc:{d}", lambda: BCDirSource(d, self.runs, title))
        for name in sorted(names):
            p = d / name
            if name.endswith((".json", ".jsonl")) and name not in NOT_TRAJECTORIES:
                if name == "trajectories.jsonl" or name.endswith(".errors.jsonl"):
                    continue
                key = f"file:{p}"
                if key not in self.sources and p.is_file() and _looks_like_trajectories(p):
                    self._add(new, key, lambda p=p: FileSource(p, self.runs, f"{title}/{p.name}"))
            elif depth < MAX_DEPTH and name not in SKIP_DIRS and not name.startswith(".") and p.is_dir():
                self._walk(root, p, depth + 1, new)


def root_labels(roots: list[Path]) -> dict[Path, str]:
    """Each root's name in run titles: its last path part, or as many last parts as it takes to
    tell it from the other roots (two trainers' folders both called "trainer")."""
    labels = {}
    for root in roots:
        parts = root.parts
        for n in range(1, len(parts) + 1):
            label = "/".join(parts[-n:])
            if not any(o != root and "/".join(o.parts[-n:]) == label for o in roots):
                break
        labels[root] = label.lstrip("/") or "/"
    return labels


# --- small readers -----------------------------------------------------------------------------------
def _looks_like_trajectories(path: Path) -> bool:
    """Whether a .json/.jsonl file holds AgentTraj records (checked on its first 64 KiB)."""
    try:
        with path.open("rb") as f:
            head = f.read(1 << 16)
    except OSError:
        return False
    return b'"item_id"' in head and b'"conversations"' in head


def _is_json_list(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            return f.read(1 << 12).lstrip().startswith(b"[")
    except OSError:
        return False


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    out = []
    try:
        lines = path.read_bytes().splitlines()
    except OSError:
        return out
    for line in lines:
        try:
            row = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue  # a torn last line
        if isinstance(row, dict):
            out.append(row)
    return out


def _loads(text: Any) -> Any:
    try:
        return json.loads(text) if isinstance(text, str) and text else None
    except ValueError:
        return None


def _eval_order(p: Path) -> tuple[str, int]:
    m = _EVAL_ROWS.match(p.name)
    return (m[1], int(m[2])) if m else (p.stem, 0)
