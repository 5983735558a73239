"""The trainer's trajectory store: append-only, checksummed, fsync'd, de-duplicated by key.

    store = TrajectoryStore.open("runs/store")          # creates it, or reopens and checks it
    duplicate = await store.append(trajectory)           # returns once it is on disk
    for trajectory in store.records(Query.of(env="maze", min_reward=1.0, iteration=2)):
        ...                                              # streamed: read one by one
    await store.aclose()

A store is a directory::

    STORE                  marker: {"format": "agentgym-trajectory-store", "version": 1, ...}
    LOCK                   flock'd by the one process that writes the store; holds its pid
    segment-00000001.log   appended lines, oldest first; only the last segment is ever written
    segment-00000002.log

Each line is one trajectory::

    <crc32, 8 hex digits> TAB <header JSON> TAB <record JSON> LF

The checksum (zlib's CRC-32) covers everything between the first TAB and the LF. The header holds
the key and the fields the index needs (env, reward, success, iteration, weight versions, when it
was stored), so that opening a store reads headers, not whole records; the record is the
trajectory's JSON (agentgym.core.trajectory). Queries run over the in-memory index and read the
matching records from disk one at a time. JSON escapes tabs and newlines inside strings, so neither
appears inside the two JSON texts. `cut -f3 segment-*.log | jq` shows the records.

Durability: `append` returns (and the server acknowledges) only after the line was written and
fdatasync'd. Concurrent appends share one write and one fdatasync (group commit), done on a
writer thread, off the event loop. A crash can leave a torn last line (or garbage, or zeros) at
the end of the last segment: it holds nothing acknowledged, and is cut when the store is next
opened for writing. A bad line followed by good ones is corruption, not a torn append: it is
skipped, counted, and logged with its file and offset (`strict=True` refuses to open instead).

A full disk (ENOSPC, EDQUOT) is not damage: the refused write is cut back off the segment, appends
raise StoreFull until `retry_space` finds room, and then the store goes on, no reopen needed. Any
other write or fsync failure stops writes until the store is reopened (StoreFailed). A new store's
directories are fsync'd into their parents, so the store itself survives a crash after creation.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import itertools
import logging
import mmap
import os
import re
import threading
import time
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from agentgym.core import metrics
from agentgym.core.trajectory import Trajectory, TrajectoryError, make_record_id

log = logging.getLogger(__name__)

FORMAT = "agentgym-trajectory-store"
VERSION = 1
MARKER = "STORE"
LOCK = "LOCK"
_SEGMENT = re.compile(r"^segment-(\d{8})\.log$")
# A filter value for `iteration`: the records that carry no iteration.
NO_ITERATION = -1


class StoreError(Exception):
    """The store cannot be opened or used as asked; the message says why and what to do."""


class NotAStore(StoreError):
    pass


class StoreLocked(StoreError):
    pass


class StoreCorrupt(StoreError):
    pass


class StoreFailed(StoreError):
    """A write or fsync failed: the store refuses further writes until it is reopened (reopening
    cuts whatever the failed write left at the tail)."""


class StoreFull(StoreError):
    """The disk is full (ENOSPC, or a quota: EDQUOT): what the refused write left was cut, and
    writes are refused until `retry_space` finds room again; no restart needed."""


_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
# The most a space check writes (a refused batch can be up to max_batch_bytes).
_PROBE_MAX = 4 << 20
PROBE = "SPACE.probe"


def segment_name(number: int) -> str:
    return f"segment-{number:08d}.log"


@dataclass(slots=True)
class Entry:
    """What the in-memory index knows of one stored trajectory."""

    id: str
    item_id: str
    sample: int
    env: str
    reward: float | None
    success: bool | None
    iteration: int | None
    stored_at: float
    versions: tuple[str, ...] = ()  # weight versions that produced it
    segment: int = 0
    offset: int = 0
    length: int = 0  # of the line, newline included

    @property
    def record_id(self) -> str:
        return make_record_id(self.item_id, self.sample)

    def header(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "item_id": self.item_id,
            "sample": self.sample,
            "env": self.env,
            "reward": self.reward,
            "success": self.success,
            "iteration": self.iteration,
            "t": self.stored_at,
            "wv": self.versions,
        }

    @classmethod
    def from_header(cls, h: dict[str, Any], segment: int, offset: int, length: int) -> Entry:
        return cls(h["id"], _shared(h["item_id"]), h["sample"], _shared(h["env"]), _shared(h["reward"]),
                   h["success"], h["iteration"], h["t"], _shared(tuple(h.get("wv", ()))), segment, offset,
                   length)  # fmt: skip


# Values that repeat across millions of index entries (item ids, envs, rewards, version tuples)
# are kept once: this halves the index's memory at a million trajectories.
_SHARED: dict[Any, Any] = {}


def _shared(value: Any) -> Any:
    if len(_SHARED) > 1 << 20:
        _SHARED.clear()
    return _SHARED.setdefault(value, value)


@dataclass(frozen=True)
class Query:
    """Which trajectories to select; every condition that is set must hold, none set selects all.
    The same filter as agentgym.v1.TrajectoryFilter (trajectory.proto)."""

    envs: frozenset[str] = frozenset()
    min_reward: float | None = None  # inclusive; a trajectory without a reward matches no bound...
    max_reward: float | None = None
    keep_unrewarded: bool = False  # ...unless this is set (AgentTraj's published files carry none)
    success: bool | None = None  # a trajectory that does not say matches neither
    iteration: int | None = None  # NO_ITERATION: those that carry none
    weight_versions: frozenset[str] = frozenset()  # produced (wholly or in part) by one of these
    item_ids: frozenset[str] = frozenset()
    since: float | None = None  # stored at or after (seconds since the epoch)
    until: float | None = None  # stored before
    limit: int = 0  # at most this many (0: all)
    ids: frozenset[str] | None = None  # store keys

    @classmethod
    def of(
        cls,
        env: str | Iterable[str] | None = None,
        min_reward: float | None = None,
        max_reward: float | None = None,
        success: bool | None = None,
        iteration: int | None = None,
        keep_unrewarded: bool = False,
        weight_version: str | Iterable[str] | None = None,
        item_ids: Iterable[str] | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 0,
        ids: Iterable[str] | None = None,
    ) -> Query:
        """Raises ValueError for a filter that can select nothing by construction (a likely mistake)."""
        q = cls(_set_of(env), min_reward, max_reward, keep_unrewarded, success, iteration, _set_of(weight_version),
                _set_of(item_ids), since, until, limit, None if ids is None else frozenset(ids))  # fmt: skip
        if q.min_reward is not None and q.max_reward is not None and q.min_reward > q.max_reward:
            raise ValueError(f"min_reward {q.min_reward} is above max_reward {q.max_reward}")
        if q.since is not None and q.until is not None and q.since > q.until:
            raise ValueError(f"since {q.since} is after until {q.until}")
        if q.iteration is not None and q.iteration < NO_ITERATION:
            raise ValueError(f"iteration {q.iteration}: use a number >= 0, or -1 for none")
        if q.limit < 0:
            raise ValueError(f"limit {q.limit} is negative")
        return q

    def matches(self, e: Entry | Trajectory) -> bool:
        """Whether a stored trajectory's index entry, or a trajectory read from a file, is selected.
        A trajectory from a file has no storing time: it matches no `since`/`until` bound."""
        if self.envs and e.env not in self.envs:
            return False
        if e.reward is None:
            if (self.min_reward is not None or self.max_reward is not None) and not self.keep_unrewarded:
                return False
        elif (self.min_reward is not None and e.reward < self.min_reward) or (
            self.max_reward is not None and e.reward > self.max_reward
        ):
            return False
        if self.success is not None and e.success is not self.success:
            return False
        if self.iteration is not None:
            wanted = None if self.iteration == NO_ITERATION else self.iteration
            if e.iteration != wanted:
                return False
        if self.weight_versions and self.weight_versions.isdisjoint(
            e.versions if isinstance(e, Entry) else e.weight_versions
        ):
            return False
        if self.item_ids and e.item_id not in self.item_ids:
            return False
        if self.since is not None or self.until is not None:
            stored_at = e.stored_at if isinstance(e, Entry) else None
            if stored_at is None or (self.since is not None and stored_at < self.since):
                return False
            if self.until is not None and stored_at >= self.until:
                return False
        return self.ids is None or (isinstance(e, Entry) and e.id in self.ids)


def _set_of(value: str | Iterable[str] | None) -> frozenset[str]:
    return frozenset([value] if isinstance(value, str) else value or ())


@dataclass
class Counts:
    trajectories: int = 0
    successes: int = 0
    rewarded: int = 0
    reward_sum: float = 0.0

    def add(self, e: Entry) -> None:
        self.trajectories += 1
        self.successes += bool(e.success)
        if e.reward is not None:
            self.rewarded += 1
            self.reward_sum += e.reward

    @property
    def mean_reward(self) -> float:
        return self.reward_sum / self.rewarded if self.rewarded else 0.0


@dataclass
class SegmentInfo:
    name: str
    bytes: int
    trajectories: int


@dataclass
class StoreStats:
    path: str
    trajectories: int
    successes: int
    per_env: dict[str, Counts]
    per_iteration: dict[int | None, Counts]
    segments: list[SegmentInfo]
    bytes: int
    duplicates: int  # appends answered "already stored" since the store was opened
    corrupt_lines: int  # damaged lines skipped when it was opened
    torn_bytes: int  # bytes of a torn tail cut (or, read-only, ignored) when it was opened


def _entry_for(t: Trajectory) -> Entry:
    return Entry(
        id=t.key,
        item_id=_shared(t.item_id),
        sample=t.sample,
        env=_shared(t.env),
        reward=_shared(t.reward),
        success=t.success,
        iteration=t.iteration,
        stored_at=round(time.time(), 6),
        versions=_shared(tuple(t.weight_versions)),
    )


def _encode(entry: Entry, trajectory: Trajectory) -> bytes:
    body = orjson.dumps(entry.header()) + b"\t" + trajectory.dumps()
    return b"%08x\t%b\n" % (zlib.crc32(body), body)


class _BadLine(Exception):
    pass


def _checked_body(line: bytes | memoryview) -> bytes:
    """The checksummed part of one line (without its newline); raises _BadLine."""
    raw = bytes(line)
    if len(raw) < 10 or raw[8:9] != b"\t":
        raise _BadLine("no checksum")
    try:
        crc = int(raw[:8], 16)
    except ValueError:
        raise _BadLine("no checksum") from None
    body = raw[9:]
    if zlib.crc32(body) != crc:
        raise _BadLine("checksum mismatch")
    return body


def _record_bytes(line: bytes | memoryview) -> bytes:
    """The record JSON of one line whose header the index already holds; raises _BadLine."""
    _, tab, rec = _checked_body(line).partition(b"\t")
    if not tab:
        raise _BadLine("no record")
    return rec


def _decode(line: bytes | memoryview, segment: int = 0, offset: int = 0) -> tuple[Entry, bytes]:
    """(index entry, record JSON bytes) of one line without its newline; raises _BadLine."""
    head, tab, rec = _checked_body(line).partition(b"\t")
    try:
        entry = Entry.from_header(orjson.loads(head), segment, offset, len(line) + 1)
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise _BadLine(f"bad header: {exc}") from None
    if not tab:
        raise _BadLine("no record")
    return entry, rec


@dataclass
class _ScanResult:
    entries: list[Entry] = field(default_factory=list)
    good_end: int = 0  # end of the last good line
    bad: list[tuple[int, str]] = field(default_factory=list)  # (offset, reason), before good_end
    tail_reason: str = ""  # why the bytes after good_end are bad ("" when there are none)


def _scan(path: Path, number: int) -> _ScanResult:
    result = _ScanResult()
    size = path.stat().st_size
    if size == 0:
        return result
    with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        pos = 0
        pending: list[tuple[int, str]] = []  # bad lines not yet known to be followed by a good one
        while pos < size:
            nl = mm.find(b"\n", pos)
            if nl < 0:
                pending.append((pos, "incomplete last line"))
                break
            try:
                entry, _ = _decode(mm[pos:nl], number, pos)
            except _BadLine as exc:
                pending.append((pos, str(exc)))
            else:
                result.bad += pending
                pending = []
                result.entries.append(entry)
                result.good_end = nl + 1
            pos = nl + 1
        if pending:
            result.tail_reason = pending[0][1]
    return result


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _make_dirs(path: Path) -> None:
    """mkdir -p, each new directory fsync'd into its parent: a directory's entry lives in its
    parent, and without this a crash can lose a new store whose own files were all fsync'd."""
    missing = []
    while not path.exists():
        missing.append(path)
        path = path.parent
    for new in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another process made it meanwhile: fine
            new.mkdir()
        _fsync_dir(new.parent)


_sync_data = getattr(os, "fdatasync", os.fsync)


class TrajectoryStore:
    """An open store. Writing needs the store's lock (one writer process); `readonly=True` opens a
    snapshot for reading without it, e.g. while a trainer writes. See the module docstring."""

    def __init__(
        self,
        path: Path,
        readonly: bool,
        segment_bytes: int,
        fsync: bool,
        max_batch: int,
        max_batch_bytes: int,
    ) -> None:
        self.path = path
        self.readonly = readonly
        self.segment_bytes = segment_bytes
        self.fsync = fsync
        self.max_batch = max_batch
        self.max_batch_bytes = max_batch_bytes
        self._index: dict[str, Entry] = {}
        self._order: list[Entry] = []  # the same entries in storage order (the index never deletes)
        self._lock = threading.Lock()  # the index and the read fds, shared with reader threads
        self._wlock = threading.Lock()  # the active segment
        self._lock_fd: int | None = None
        self._read_fds: dict[int, int] = {}
        self._seg_sizes: dict[int, int] = {}
        self._seg_counts: Counter[int] = Counter()
        self._active = 0
        self._active_fd: int | None = None
        self._failed: StoreFailed | None = None
        self._full: StoreFull | None = None
        self._full_bytes = 0  # the size of the write the full disk refused
        self.per_env: dict[str, Counts] = {}
        self.per_iteration: dict[int | None, Counts] = {}
        self.total = Counts()
        self.duplicates = 0
        self.corrupt_lines = 0
        self.torn_bytes = 0
        # Group commit: appends queue here; one task writes them in batches on the writer thread.
        self._queue: list[tuple[Entry, bytes, asyncio.Future[None]]] = []
        self._pending: dict[str, asyncio.Future[None]] = {}
        self._wake: asyncio.Event | None = None
        self._committer: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._closed = False

    # --- opening ----------------------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        readonly: bool = False,
        create: bool = True,
        strict: bool = False,
        segment_bytes: int = 256 << 20,
        fsync: bool = True,
        max_batch: int = 4096,
        max_batch_bytes: int = 64 << 20,
    ) -> TrajectoryStore:
        """Open (or create, unless `create=False` or `readonly`) the store at `path`.

        `segment_bytes`: a segment that reached this size is sealed and a new one started.
        `fsync=False` skips fdatasync (benchmarks only: acknowledged records may then be lost).
        `max_batch`/`max_batch_bytes` bound one group commit; `max_batch=1` gives one write and
        one fdatasync per record. `strict=True` refuses to open a store with corrupt lines."""
        store = cls(Path(path), readonly, segment_bytes, fsync, max_batch, max_batch_bytes)
        try:
            store._open(create and not readonly, strict)
        except BaseException:
            store.close()
            raise
        return store

    def _open(self, create: bool, strict: bool) -> None:
        path = self.path
        if path.exists() and not path.is_dir():
            raise NotAStore(f"{path} is a file, not a trajectory store directory")
        if not path.exists():
            if not create:
                raise NotAStore(f"{path} does not exist" + (" (read-only open)" if self.readonly else ""))
            _make_dirs(path)
        marker = path / MARKER
        if not marker.exists():  # checked before locking: a directory that is not a store is left alone
            others = sorted(p.name for p in path.iterdir() if p.name != LOCK)
            if others:
                raise NotAStore(
                    f"{path} is not a trajectory store (no {MARKER} file) but holds {len(others)} "
                    f"file(s), e.g. {others[:3]}; give an empty or new directory"
                )
        if not self.readonly:
            self._take_lock()
        if not marker.exists():
            if not create:
                raise NotAStore(f"{path} is empty: not a trajectory store yet")
            self._write_marker()
        else:
            try:
                meta = orjson.loads(marker.read_bytes())
            except orjson.JSONDecodeError as exc:
                raise NotAStore(f"{marker} is not a store marker: {exc}") from None
            if not isinstance(meta, dict) or meta.get("format") != FORMAT:
                raise NotAStore(f"{marker} does not name the {FORMAT!r} format: {meta!r}")
            if meta.get("version") != VERSION:
                raise NotAStore(
                    f"{path} is a version {meta.get('version')} store; this code reads version {VERSION}"
                )
        numbers = sorted(int(m[1]) for p in path.iterdir() if (m := _SEGMENT.match(p.name)))
        t0 = time.perf_counter()
        for i, number in enumerate(numbers):
            self._load_segment(number, last=i == len(numbers) - 1, strict=strict)
        if not self.readonly:
            if not numbers:
                self._new_segment(1)
            else:
                self._active = numbers[-1]
                self._active_fd = os.open(path / segment_name(self._active), os.O_WRONLY | os.O_APPEND)
        elif numbers:
            self._active = numbers[-1]
        log.log(
            logging.DEBUG if self.readonly else logging.INFO,
            "trajectory store opened",
            extra={
                "path": str(path),
                "readonly": self.readonly,
                "trajectories": len(self._index),
                "segments": len(numbers) or 1,
                "corrupt_lines": self.corrupt_lines,
                "torn_bytes": self.torn_bytes,
                "seconds": round(time.perf_counter() - t0, 3),
            },
        )

    def _take_lock(self) -> None:
        fd = os.open(self.path / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise StoreLocked(
                    f"{self.path} is locked by another process (pid {holder}): only one trainer may write "
                    "a store; stop it, use another directory, or open this one read-only"
                ) from None
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._lock_fd = fd

    def _write_marker(self) -> None:
        meta = {
            "format": FORMAT,
            "version": VERSION,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        tmp = self.path / f"{MARKER}.tmp"
        with tmp.open("wb") as f:
            f.write(orjson.dumps(meta) + b"\n")
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(self.path / MARKER)
        _fsync_dir(self.path)

    def _load_segment(self, number: int, last: bool, strict: bool) -> None:
        seg = self.path / segment_name(number)
        scan = _scan(seg, number)
        for offset, reason in scan.bad:
            log.error(
                "corrupt line in trajectory store: skipped",
                extra={"segment": str(seg), "offset": offset, "reason": reason},
            )
        self.corrupt_lines += len(scan.bad)
        size = seg.stat().st_size
        if scan.tail_reason:
            if not last:  # only the last segment is appended to: damage elsewhere is corruption
                self.corrupt_lines += 1
                log.error(
                    "corrupt end of a sealed segment: skipped",
                    extra={"segment": str(seg), "offset": scan.good_end, "reason": scan.tail_reason},
                )
            else:
                self.torn_bytes += size - scan.good_end
                if self.readonly:
                    log.info(
                        "incomplete tail ignored (a writer may be appending)",
                        extra={"segment": str(seg), "offset": scan.good_end, "bytes": size - scan.good_end},
                    )
                else:
                    log.warning(
                        "torn tail cut: an append cut short by a crash (never acknowledged)",
                        extra={"segment": str(seg), "offset": scan.good_end,
                               "bytes": size - scan.good_end, "reason": scan.tail_reason},
                    )  # fmt: skip
                    with seg.open("rb+") as f:
                        f.truncate(scan.good_end)
                        os.fsync(f.fileno())
                    size = scan.good_end
        if strict and self.corrupt_lines:
            raise StoreCorrupt(f"{seg}: {self.corrupt_lines} corrupt line(s); see the log for offsets")
        self._seg_sizes[number] = size
        dups = 0
        for e in scan.entries:
            if e.id in self._index:
                dups += 1  # kept: the first copy
                continue
            self._insert(e)
        if dups:
            log.warning(
                "duplicate keys in segment: first copies kept", extra={"segment": str(seg), "lines": dups}
            )

    def _new_segment(self, number: int) -> None:
        seg = self.path / segment_name(number)
        fd = os.open(seg, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            _fsync_dir(self.path)  # the new file's name must survive a crash too
        except OSError:
            # Not made: the next rotation (e.g. once a full disk has room) creates it again.
            os.close(fd)
            with contextlib.suppress(OSError):
                seg.unlink()
            raise
        if self._active_fd is not None:
            os.close(self._active_fd)
        self._active, self._active_fd = number, fd
        self._seg_sizes[number] = 0

    def _insert(self, e: Entry) -> None:
        self._index[e.id] = e
        self._order.append(e)
        self._seg_counts[e.segment] += 1
        self.total.add(e)
        self.per_env.setdefault(e.env, Counts()).add(e)
        self.per_iteration.setdefault(e.iteration, Counts()).add(e)

    # --- reading ------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, key: object) -> bool:
        return key in self._index

    def entry(self, key: str) -> Entry | None:
        return self._index.get(key)

    def get(self, key: str) -> Trajectory | None:
        e = self._index.get(key)
        return None if e is None else self._read(e)

    def select(self, query: Query | None = None, **conditions: Any) -> Iterator[Entry]:
        """Index entries matching `query` (or Query.of(**conditions)), in storage order, lazily.
        Trajectories appended while iterating are not included."""
        q = query or Query.of(**conditions)
        with self._lock:
            end = len(self._order)  # what is stored now; appends go after it
        if q.ids is not None:  # by key: look them up rather than scan
            found = (self._index.get(key) for key in q.ids)
            candidates: Iterable[Entry] = sorted((e for e in found if e is not None),
                                                 key=lambda e: (e.segment, e.offset))  # fmt: skip
        else:
            candidates = itertools.islice(self._order, end)
        n = 0
        for e in candidates:
            if q.matches(e):
                yield e
                n += 1
                if n == q.limit:
                    return

    def count(self, query: Query | None = None, **conditions: Any) -> int:
        return sum(1 for _ in self.select(query, **conditions))

    def records(self, query: Query | None = None, **conditions: Any) -> Iterator[Trajectory]:
        """Trajectories matching the query, in storage order, read from disk one at a time (a store
        of millions streams in constant memory beyond its index). Raises StoreCorrupt if a line
        went bad on disk."""
        for e in self.select(query, **conditions):
            yield self._read(e)

    def get_entry(self, e: Entry) -> Trajectory:
        """The trajectory an index entry (from `select`) points to."""
        return self._read(e)

    def _read(self, e: Entry) -> Trajectory:
        with self._lock:
            fd = self._read_fds.get(e.segment)
            if fd is None:
                fd = self._read_fds[e.segment] = os.open(self.path / segment_name(e.segment), os.O_RDONLY)
        line = os.pread(fd, e.length, e.offset)
        try:
            if not line.endswith(b"\n"):
                raise _BadLine("short read")
            return Trajectory.from_json(orjson.loads(_record_bytes(line[:-1])), e.id, validate=False)
        except (_BadLine, orjson.JSONDecodeError, TrajectoryError) as exc:
            raise StoreCorrupt(
                f"{segment_name(e.segment)} offset {e.offset}: trajectory {e.id!r} is damaged on disk ({exc})"
            ) from None

    def stats(self) -> StoreStats:
        with self._lock:
            segments = [
                SegmentInfo(segment_name(n), size, self._seg_counts[n])
                for n, size in sorted(self._seg_sizes.items())
            ]
            return StoreStats(
                path=str(self.path),
                trajectories=len(self._index),
                successes=self.total.successes,
                per_env={k: Counts(**vars(v)) for k, v in sorted(self.per_env.items())},
                per_iteration={
                    k: Counts(**vars(v))
                    for k, v in sorted(
                        self.per_iteration.items(), key=lambda kv: -1 if kv[0] is None else kv[0]
                    )
                },
                segments=segments,
                bytes=sum(s.bytes for s in segments),
                duplicates=self.duplicates,
                corrupt_lines=self.corrupt_lines,
                torn_bytes=self.torn_bytes,
            )

    # --- writing ------------------------------------------------------------------------------------
    @property
    def writable(self) -> bool:
        """Whether appends are accepted now (False while the disk is full, after a failed fsync)."""
        return not self.readonly and not self._closed and self._failed is None and self._full is None

    @property
    def full(self) -> bool:
        """Writes are refused because the disk is full; `retry_space` ends it once there is room."""
        return self._full is not None and not self._closed

    def _writable(self) -> None:
        if self.readonly:
            raise StoreError(f"{self.path} is open read-only")
        if self._closed:
            raise StoreError(f"{self.path} is closed")
        if self._failed is not None:
            raise self._failed
        if self._full is not None:
            raise self._full

    def retry_space(self) -> bool:
        """While the disk is full: write (and fsync, then delete) a probe file the size of the
        refused write, capped at 4 MiB; when that works, writes are accepted again and True is
        returned. Blocking: run it on a thread. True when the store was not full."""
        with self._wlock:
            if self._full is None or self._closed:
                return self._full is None
            probe = self.path / PROBE
            try:
                fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                try:
                    data = memoryview(bytes(min(max(self._full_bytes, 4096), _PROBE_MAX)))
                    while data:
                        data = data[os.write(fd, data) :]
                    os.fsync(fd)
                finally:
                    os.close(fd)
            except OSError as exc:
                log.debug("still no space for the store", extra={"path": str(self.path), "error": str(exc)})
                return False
            finally:
                with contextlib.suppress(OSError):
                    probe.unlink()
            self._full = None
            log.info("trajectory store has space again: writes accepted", extra={"path": str(self.path)})
            return True

    def _no_space(self, exc: OSError, start: int, size: int) -> StoreFull | None:
        """After a write or fsync failed for lack of space: cut the active segment back to `start`
        (its last acknowledged line) and fsync it; the store is then exactly as before the write, so
        it can go on once there is room. None when the cut itself fails (the store then fails)."""
        assert self._active_fd is not None
        try:
            os.ftruncate(self._active_fd, start)
            os.fsync(self._active_fd)
        except OSError as cut:
            log.error("cutting a refused write failed", extra={"path": str(self.path), "error": str(cut)})
            return None
        self._full_bytes = size
        self._full = StoreFull(
            f"the trainer's disk is full ({exc.strerror or exc}) writing {self.path}: it refuses writes until "
            "space is freed"
        )
        log.error("trajectory store: disk full, writes refused until space returns",
                  extra={"path": str(self.path), "error": str(exc), "bytes": size})  # fmt: skip
        return self._full

    def _write(self, lines: Sequence[bytes]) -> tuple[int, int]:
        """Append `lines` to the active segment with one write and one fdatasync; returns (segment,
        offset of the first line). Runs on the writer thread (or the caller's, for `add`)."""
        with self._wlock:
            if self._failed is not None:
                raise self._failed
            if self._full is not None:
                raise self._full
            data = memoryview(b"".join(lines))
            if self._seg_sizes[self._active] >= self.segment_bytes:
                try:
                    self._rotate()
                except OSError as exc:
                    if exc.errno in _NO_SPACE and (full := self._no_space(exc, self._seg_sizes[self._active],
                                                                          len(data))):  # fmt: skip
                        raise full from exc
                    raise
            assert self._active_fd is not None
            start = self._seg_sizes[self._active]
            try:
                while data:
                    data = data[os.write(self._active_fd, data) :]
                if self.fsync:
                    with metrics.STORE_FSYNC_SECONDS.time():
                        _sync_data(self._active_fd)
            except OSError as exc:
                # A full disk is not damage: cut back what the write left, and refuse writes until
                # there is room (the service turns NOT_SERVING meanwhile).
                if exc.errno in _NO_SPACE and (full := self._no_space(exc, start, sum(map(len, lines)))):
                    raise full from exc
                # After a failed fsync the kernel's view of the file can no longer be trusted:
                # refuse writes until a reopen rescans (and cuts) the tail.
                self._failed = StoreFailed(
                    f"writing {segment_name(self._active)} in {self.path} failed ({exc}); the store refuses "
                    "writes until the trainer is restarted"
                )
                log.error("trajectory store write failed", extra={"path": str(self.path), "error": str(exc)})
                raise self._failed from exc
            self._seg_sizes[self._active] = start + sum(len(line) for line in lines)
            metrics.STORE_COMMIT_TRAJECTORIES.observe(len(lines))
            return self._active, start

    def _rotate(self) -> None:
        assert self._active_fd is not None
        sealed = self._active
        os.fsync(self._active_fd)
        self._new_segment(sealed + 1)
        log.info("segment sealed", extra={"segment": segment_name(sealed), "bytes": self._seg_sizes[sealed]})

    def _commit(self, entries: Sequence[Entry], lines: Sequence[bytes]) -> None:
        number, offset = self._write(lines)
        with self._lock:
            for e, line in zip(entries, lines, strict=True):
                e.segment, e.offset, e.length = number, offset, len(line)
                offset += len(line)
                self._insert(e)

    def add(self, trajectories: Iterable[Trajectory]) -> list[bool]:
        """Store trajectories now (one write and one fdatasync for all); for each, True when it was
        a duplicate. Synchronous: for tools and tests, not alongside `append` from another thread.
        Raises TrajectoryError (nothing written) when one is not valid."""
        self._writable()
        if self._pending:
            raise StoreError("add() while async appends are in flight: use append()")
        entries, lines, dup = [], [], []
        seen: set[str] = set()
        for t in trajectories:
            key = t.validate().key
            if key in self._index or key in seen:
                self.duplicates += 1
                dup.append(True)
                continue
            seen.add(key)
            e = _entry_for(t)
            entries.append(e)
            lines.append(_encode(e, t))
            dup.append(False)
        if lines:
            self._commit(entries, lines)
        return dup

    async def append(self, trajectory: Trajectory, *, validate: bool = True) -> bool:
        """Store `trajectory` under its key; returns once it is on disk: False when written, True
        when the key was already stored (nothing written). Concurrent appends share writes and
        fsyncs. Raises TrajectoryError for an invalid trajectory (unless `validate=False`: the
        caller validated it), StoreFailed after a disk error."""
        self._writable()
        key = trajectory.key
        if key in self._index:
            self.duplicates += 1
            return True
        pending = self._pending.get(key)
        if pending is not None:  # the same key earlier in this batch or the one being written
            await asyncio.shield(pending)
            self.duplicates += 1
            return True
        if validate:
            trajectory.validate()
        e = _entry_for(trajectory)
        line = _encode(e, trajectory)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        self._queue.append((e, line, future))
        self._start_committer().set()
        await asyncio.shield(future)  # a cancelled caller does not cancel the write
        return False

    def _start_committer(self) -> asyncio.Event:
        if self._wake is None:
            self._wake = asyncio.Event()
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="store-writer")
        if self._committer is None or self._committer.done():
            self._committer = asyncio.get_running_loop().create_task(self._commit_loop(), name="store-commit")
        return self._wake

    async def _commit_loop(self) -> None:
        assert self._wake is not None
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                n, size = 0, 0
                while n < min(len(self._queue), self.max_batch) and (n == 0 or size < self.max_batch_bytes):
                    size += len(self._queue[n][1])
                    n += 1
                batch, self._queue = self._queue[:n], self._queue[n:]
                entries = [e for e, _, _ in batch]
                try:
                    await loop.run_in_executor(
                        self._executor, self._commit, entries, [line for _, line, _ in batch]
                    )
                except BaseException as exc:
                    failure = (
                        exc if isinstance(exc, StoreError) else StoreFailed(f"store write failed: {exc!r}")
                    )
                    for e, _, fut in batch:
                        self._pending.pop(e.id, None)
                        if not fut.done():
                            fut.set_exception(failure)
                    if isinstance(exc, asyncio.CancelledError):
                        raise
                    continue
                for e, _, fut in batch:
                    self._pending.pop(e.id, None)
                    if not fut.done():
                        fut.set_result(None)
            if self._closed:
                return

    async def flush(self) -> None:
        """Wait until every append queued so far is on disk (or failed)."""
        waiting = [f for _, _, f in self._queue] + list(self._pending.values())
        if waiting:
            await asyncio.gather(*(asyncio.shield(f) for f in waiting), return_exceptions=True)

    async def aclose(self) -> None:
        """Finish queued appends, then close."""
        await self.flush()
        self._closed = True
        if self._committer is not None and self._wake is not None:
            self._wake.set()
            with contextlib.suppress(asyncio.CancelledError, StoreError):
                await self._committer
        self.close()

    def close(self) -> None:
        """Release files and the lock. Appends still queued fail (use `aclose` to finish them)."""
        self._closed = True
        if self._committer is not None and not self._committer.done():
            self._committer.cancel()
        for _, _, fut in self._queue:
            if not fut.done():
                fut.set_exception(StoreError(f"{self.path} was closed before this append was written"))
        self._queue.clear()
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        with self._lock:
            for fd in self._read_fds.values():
                os.close(fd)
            self._read_fds.clear()
        if self._active_fd is not None:
            if self.fsync and self._failed is None:
                with contextlib.suppress(OSError):
                    os.fsync(self._active_fd)
            os.close(self._active_fd)
            self._active_fd = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor releases the flock
            self._lock_fd = None

    def __enter__(self) -> TrajectoryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> TrajectoryStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


@dataclass(slots=True)
class StoredLine:
    """One good line of a store, as `follow` finds it: where it is, its index entry, its record."""

    entry: Entry
    record: bytes  # the trajectory's JSON


def follow(path: str | Path, positions: dict[int, int]) -> Iterator[StoredLine]:
    """The complete, good lines a store gained after `positions` (segment number -> byte offset
    already read), read without the store's lock, for readers that watch a store another process
    writes (the viewer). `positions` is advanced in place. An incomplete last line is left for the
    next call (its writer may be appending); a bad line followed by good ones is skipped."""
    path = Path(path)
    numbers = sorted(int(m[1]) for p in path.iterdir() if (m := _SEGMENT.match(p.name)))
    for number in numbers:
        start = positions.get(number, 0)
        try:
            with (path / segment_name(number)).open("rb") as f:
                f.seek(start)
                data = f.read()
        except FileNotFoundError:
            continue
        end = data.rfind(b"\n") + 1
        pos = 0
        while pos < end:
            nl = data.index(b"\n", pos)
            try:
                entry, record = _decode(data[pos:nl], number, start + pos)
            except _BadLine:
                pass
            else:
                yield StoredLine(entry, record)
            pos = nl + 1
        positions[number] = start + end


def read_line(path: str | Path, segment: int, offset: int, length: int) -> bytes:
    """The record JSON of the line at (segment, offset, length), checksum checked; StoreCorrupt
    when it does not check out."""
    with (Path(path) / segment_name(segment)).open("rb") as f:
        f.seek(offset)
        line = f.read(length)
    try:
        if not line.endswith(b"\n"):
            raise _BadLine("short read")
        return _record_bytes(line[:-1])
    except _BadLine as exc:
        raise StoreCorrupt(f"{segment_name(segment)} offset {offset}: damaged line ({exc})") from None


def scan_lines(path: str | Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every good line of every segment, duplicates included, as (key, record JSON): for audits
    and tests that check what is physically on disk."""
    path = Path(path)
    numbers = sorted(int(m[1]) for p in path.iterdir() if (m := _SEGMENT.match(p.name)))
    for number in numbers:
        seg = path / segment_name(number)
        data = seg.read_bytes()
        for e in _scan(seg, number).entries:
            _, rec = _decode(data[e.offset : e.offset + e.length - 1])
            yield e.id, orjson.loads(rec)
