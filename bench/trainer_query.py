"""Benchmark: the trainer's trajectory store at scale: building, opening and querying a store of
1,000,000 trajectories, and streaming records out of it, measured side by side in one run.

    python bench/trainer_query.py                  # 1,000,000 trajectories (1.6 GiB on disk, 5-7 minutes)
    python bench/trainer_query.py --quick          # 100,000
    python bench/trainer_query.py --n 300000 --dir /data/bench --keep --json out.json
    python bench/trainer_query.py --dir /data/bench --reuse   # query a kept store again, no build

Phases:
- build: N synthetic trajectories (5 envs; one block without an iteration, as BC data, then
  AgentEvol iterations 0-4 exploring the same tasks; 0/1 rewards, 5% unrewarded; weight versions;
  4-6 turns of 300-1,000 characters; a quarter with ~200 token ids and a loss mask), generated
  deterministically from --seed batch by batch and written with `store.add(batch)` (one write and
  one fdatasync per batch);
- open: `TrajectoryStore.open(path, readonly=True)` in a fresh process (it scans every line's
  header to build the in-memory index); the index's memory is the process's RSS growth around the
  open. Opened a second time in another fresh process with the garbage collector off, to show what
  the collector costs;
- queries: `store.count(Query.of(...))` for typical filters, the median of --repeat runs; a point
  lookup of 1,000 keys with `store.entry` as the baseline of the `ids` query;
- streaming: `store.records(query)` over ~10% of the store and over all of it, against the same
  entries' lines read raw (`os.pread` at each index entry's offset, no decoding: the baseline) and
  read, checksummed and parsed into dicts (everything but building the Trajectory). RSS is sampled
  every 10,000 records: the stream runs in constant memory beyond the index.

The store's files are in the page cache when they are read (they were just written) unless --cold
(posix_fadvise(DONTNEED) on the segments before the open and before each stream: reads then come
from the disk). The machine is shared: read the ratios measured in the same run first.

Columns: "rate /s" is trajectories per second (build, streams) or index entries examined per second
(open, count: a query with a limit stops at its limit-th match); "vs baseline" is the row's time
against its section's first row (counts: against counting everything).
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson
import psutil
from rich.console import Console
from rich.table import Table

from agentgym.core.trajectory import Trajectory, Turn
from agentgym.trainer.store import Query, TrajectoryStore, segment_name

ENVS = ("maze", "wordle", "webshop", "alfworld", "sciworld")
SUCCESS_RATE = {"maze": 0.35, "wordle": 0.2, "webshop": 0.6, "alfworld": 0.5, "sciworld": 0.25}
BLOCKS = 6  # block 0: no iteration (BC data); block b: AgentEvol iteration b - 1
SAMPLES = 4  # samples per task and iteration
UNREWARDED = 0.05
SPANNING = 0.1  # episodes that spanned a weight update (two versions)
WORDS = ("the", "agent", "moves", "north", "south", "east", "west", "look", "take", "key", "door",
         "open", "you", "see", "a", "room", "with", "table", "and", "lamp", "Thought:", "Action:",
         "click[Buy Now]", "search[red shoes]", "go", "to", "cabinet", "1", "2", "3", "wall", "is",
         "here", "goal", "\n", "Observation:", "guess", "crane", "heat", "water", "inventory")  # fmt: skip
STREAM_SAMPLE = 10_000  # records between RSS samples
MB = 1 << 20


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# --- the data ---------------------------------------------------------------------------------------------
class Generator:
    """Trajectory i of n, the same for a given seed whatever the batching."""

    def __init__(self, n: int, seed: int, token_fraction: float, tokens: int) -> None:
        self.n, self.seed, self.token_fraction, self.tokens = n, seed, token_fraction, tokens
        rng = random.Random(seed)
        self.text = " ".join(rng.choices(WORDS, k=1 << 18))
        self.ints = [rng.randrange(32_000) for _ in range(1 << 16)]
        self.versions = {None: ("sft", "")} | {k: (f"iter-{k}", f"iter-{k + 1}") for k in range(BLOCKS)}

    def batch(self, start: int, stop: int) -> list[Trajectory]:
        rng = random.Random((self.seed << 32) + start)
        return [self.one(i, rng) for i in range(start, stop)]

    def one(self, i: int, rng: random.Random) -> Trajectory:
        block = i * BLOCKS // self.n
        j = i - (block * self.n + BLOCKS - 1) // BLOCKS  # index within the block
        env = ENVS[j % len(ENVS)]
        task, sample = divmod(j // len(ENVS), SAMPLES)
        iteration = None if block == 0 else block - 1
        if rng.random() < UNREWARDED:
            reward, success = None, None
        else:
            success = rng.random() < SUCCESS_RATE[env]
            reward = float(success)
        here, later = self.versions[iteration]
        if iteration is None:
            versions = [here] if rng.random() < 0.5 else []
        else:
            versions = [here, later] if rng.random() < SPANNING else [here]
        uniform = rng.random  # int(uniform() * k) rather than randrange(k): a third of the time
        turns = 4 + int(uniform() * 3)
        chars = 300 + int(uniform() * 701)
        first = chars * 2 // 5
        rest = (chars - first) // (turns - 1)
        text, top = self.text, len(self.text) - 1000
        conversation = []
        for t in range(turns):
            size = first if t == 0 else rest
            o = int(uniform() * top)
            human = t % 2 == 0
            conversation.append(
                Turn("human" if human else "gpt", text[o : o + size], None if human else True)
            )
        input_ids = loss_mask = None
        if rng.random() < self.token_fraction:
            size = self.tokens * 3 // 4 + int(uniform() * (self.tokens // 2 + 1))
            o = int(uniform() * (len(self.ints) - size))
            input_ids = self.ints[o : o + size]
            generated = size // 4
            loss_mask = [0] * (size - generated) + [1] * generated
        return Trajectory(
            item_id=f"{env}_{task}",
            conversations=conversation,
            reward=reward,
            success=success,
            env=env,
            task_id=task,
            sample=sample,
            iteration=iteration,
            seed=task,
            rounds=turns // 2,
            finish="done",
            policy="sglang",
            tokenizer="bench" if input_ids else None,
            input_ids=input_ids,
            loss_mask=loss_mask,
            weight_versions=versions,
            timing={"start": 1.7e9 + i, "duration_s": round(1 + 29 * uniform(), 3)},
        )


# --- helpers ----------------------------------------------------------------------------------------------
def rss() -> int:
    return int(psutil.Process().memory_info().rss)


def peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def segments(path: Path) -> list[Path]:
    return sorted(path.glob("segment-*.log"))


def disk_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in segments(path))


def drop_cache(path: Path) -> None:
    """Evict the store's (clean, fsync'd) pages from the page cache: only these files, no root needed."""
    for p in segments(path):
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fdatasync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


# --- build (this process) ---------------------------------------------------------------------------------
def build(path: Path, args: argparse.Namespace) -> dict[str, Any]:
    gen = Generator(args.n, args.seed, args.token_fraction, args.tokens)
    store = TrajectoryStore.open(path, fsync=not args.no_fsync)
    rss0 = rss()
    gen_s = add_s = 0.0
    shown = time.perf_counter()
    for start in range(0, args.n, args.batch):
        t0 = time.perf_counter()
        batch = gen.batch(start, min(start + args.batch, args.n))
        t1 = time.perf_counter()
        duplicates = store.add(batch)
        t2 = time.perf_counter()
        assert not any(duplicates), "the generator made a duplicate key"
        gen_s += t1 - t0
        add_s += t2 - t1
        if t2 - shown > 15:
            say(f"  build: {start + len(batch):,} of {args.n:,} stored")
            shown = t2
    del batch
    writer_index = rss() - rss0
    store.close()
    size = disk_bytes(path)
    return {
        "trajectories": args.n,
        "batch": args.batch,
        "fsync": not args.no_fsync,
        "generate_s": gen_s,
        "add_s": add_s,
        "rate": args.n / (gen_s + add_s),
        "add_rate": args.n / add_s,
        "add_mb_s": size / add_s / MB,
        "bytes": size,
        "bytes_per_trajectory": size / args.n,
        "segments": len(segments(path)),
        "writer_rss_growth": writer_index,
    }


# --- open, query, stream (a fresh process each) -----------------------------------------------------------
def measure_open(path: Path, cold: bool, collector: bool) -> tuple[TrajectoryStore, dict[str, Any]]:
    if cold:
        drop_cache(path)
    gc.collect()
    before, peak_before = rss(), peak_rss()
    if not collector:
        gc.disable()
    t0 = time.perf_counter()
    store = TrajectoryStore.open(path, readonly=True)
    seconds = time.perf_counter() - t0
    gc.enable()
    after = rss()
    n = len(store)
    size = disk_bytes(path)
    return store, {
        "trajectories": n,
        "gc": collector,
        "seconds": seconds,
        "rate": n / seconds,
        "mb_s": size / seconds / MB,
        "rss_before": before,
        "rss_after": after,
        "index_bytes": after - before,
        "index_bytes_per_trajectory": (after - before) / n,
        "peak_rss": max(peak_rss(), peak_before),  # the scan maps each segment: its pages count
    }


def time_query(store: TrajectoryStore, query: Query, repeat: int) -> tuple[int, list[float]]:
    times, matched = [], 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        matched = store.count(query)
        times.append(time.perf_counter() - t0)
    return matched, times


def queries(store: TrajectoryStore, seed: int, repeat: int) -> list[dict[str, Any]]:
    n = len(store)
    # An untimed pass for the filters' arguments: item ids, keys, a window of ~10% of storing times.
    item_ids: set[str] = set()
    keys: list[str] = []
    since = until = 0.0
    step = max(1, n // 1000)
    for i, e in enumerate(store.select()):
        item_ids.add(e.item_id)
        if i % step == 0 and len(keys) < 1000:
            keys.append(e.id)
        if i == n * 45 // 100:
            since = e.stored_at
        if i == n * 55 // 100:
            until = e.stored_at
    rng = random.Random(seed)
    chosen = rng.sample(sorted(item_ids), min(1000, len(item_ids)))
    rng.shuffle(keys)
    cases = [
        ("everything", Query.of()),
        ("one env", Query.of(env="maze")),
        ("AgentEvol: env, iteration, weight version, min_reward",
         Query.of(env="maze", iteration=2, weight_version="iter-2", min_reward=1.0)),
        ("AgentEvol, every env: iteration, weight version, min_reward",
         Query.of(iteration=2, weight_version="iter-2", min_reward=1.0)),
        (f"item_ids ({len(chosen):,})", Query.of(item_ids=chosen)),
        (f"ids ({len(keys):,} store keys)", Query.of(ids=keys)),
        ("since/until (~10% of storing times)", Query.of(since=since, until=until)),
        ("limit=1000", Query.of(limit=1000)),
        ("one env, limit=1000", Query.of(env="sciworld", limit=1000)),
    ]  # fmt: skip
    rows = []
    for name, query in cases:
        matched, times = time_query(store, query, repeat)
        scanned = n
        if query.limit:  # matching stops at the limit-th match
            scanned = _examined(store, query)
        median = statistics.median(times)
        rows.append({"query": name, "matched": matched, "scanned": scanned, "ms": median * 1e3,
                     "ms_min": min(times) * 1e3, "entries_s": scanned / median})  # fmt: skip
    # Point lookups of the same keys: what the ids query could cost.
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        found = sum(1 for k in keys if store.entry(k) is not None)
        times.append(time.perf_counter() - t0)
    median = statistics.median(times)
    rows.append({"query": f"store.entry(key) x {len(keys):,} (dict lookups)", "matched": found,
                 "scanned": len(keys), "ms": median * 1e3, "ms_min": min(times) * 1e3,
                 "entries_s": len(keys) / median})  # fmt: skip
    return rows


def _examined(store: TrajectoryStore, query: Query) -> int:
    """How many index entries `select(query)` examines before it stops at the query's limit."""
    found = 0
    for i, e in enumerate(store.select()):
        if query.matches(e):
            found += 1
            if found == query.limit:
                return i + 1
    return len(store)


def stream(
    name: str, items: Iterable[Any], count: int, nbytes: int, cold: Callable[[], None] | None
) -> dict[str, Any]:
    if cold:
        cold()
    gc.collect()
    before = peak = rss()
    n, _item = 0, None
    t0 = time.perf_counter()
    for _item in items:
        n += 1
        if n % STREAM_SAMPLE == 0:
            peak = max(peak, rss())
    seconds = time.perf_counter() - t0
    _item = None  # the last record is not held while measuring
    after = rss()
    peak = max(peak, after)
    assert n == count, (name, n, count)
    return {"stream": name, "trajectories": n, "bytes": nbytes, "seconds": seconds, "rate": n / seconds,
            "mb_s": nbytes / seconds / MB, "rss_before": before, "rss_peak": peak, "rss_after": after}  # fmt: skip


def streams(store: TrajectoryStore, path: Path, cold: bool) -> list[dict[str, Any]]:
    fds = {int(p.name[8:16]): os.open(p, os.O_RDONLY) for p in segments(path)}
    assert all(p.name == segment_name(k) for k, p in zip(fds, segments(path), strict=True))
    pread = os.pread

    def raw(q: Query) -> Iterator[bytes]:
        for e in store.select(q):
            yield pread(fds[e.segment], e.length, e.offset)

    def parsed(q: Query) -> Iterator[dict[str, Any]]:
        for e in store.select(q):
            line = pread(fds[e.segment], e.length, e.offset)
            if zlib.crc32(line[9:-1]) != int(line[:8], 16):
                raise ValueError(f"checksum mismatch at {e.offset}")
            yield orjson.loads(line[line.index(b"\t", 9) + 1 : -1])

    selective = Query.of(env=("maze", "wordle"), min_reward=1.0)
    drop = (lambda: drop_cache(path)) if cold else None
    rows = []
    try:
        for label, q in (
            ("~10%: env in (maze, wordle), min_reward=1", selective),
            ("the whole store", Query()),
        ):
            count, nbytes = 0, 0
            for e in store.select(q):
                count += 1
                nbytes += e.length
            for how, items in (
                ("raw lines (os.pread, no decoding)", raw),
                ("pread + CRC-32 + record JSON -> dict", parsed),
                ("store.records() -> Trajectory", store.records),
            ):
                say(f"  stream {label}: {how}")
                row = stream(how, items(q), count, nbytes, drop)
                row["query"] = label
                row["fraction"] = count / len(store)
                rows.append(row)
    finally:
        for fd in fds.values():
            os.close(fd)
    return rows


def child(args: argparse.Namespace) -> None:
    path = Path(args.store)
    if args._child == "open-nogc":
        store, opened = measure_open(path, args.cold, collector=False)
        store.close()
        result: dict[str, Any] = {"open": opened}
    else:
        store, opened = measure_open(path, args.cold, collector=True)
        say(f"  opened: {opened['trajectories']:,} in {opened['seconds']:.1f} s")
        result = {"open": opened, "queries": queries(store, args.seed, args.repeat)}
        result["streams"] = streams(store, path, args.cold)
        store.close()
    Path(args.out).write_bytes(orjson.dumps(result))


def run_child(mode: str, path: Path, args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        cmd = [sys.executable, __file__, "--_child", mode, "--store", str(path), "--out", out.name,
               "--seed", str(args.seed), "--repeat", str(args.repeat)] + (["--cold"] if args.cold else [])  # fmt: skip
        subprocess.run(cmd, check=True)
        return dict(orjson.loads(Path(out.name).read_bytes()))


# --- the report -------------------------------------------------------------------------------------------
def report(figures: dict[str, Any], path: Path) -> Table:
    b, o, o2 = figures.get("build"), figures["open"], figures["open_nogc"]
    n = o["trajectories"]
    per = figures["bytes"] / n
    table = Table(title=f"Trajectory store at scale: {n:,} trajectories, {figures['bytes'] / MB:,.0f} MiB in "
                  f"{figures['segments']} segments (~{per:,.0f} B each), {'cold' if figures['cold'] else 'warm'} "
                  f"page cache, {path}")  # fmt: skip
    for col in ("phase", "what", "items", "time", "rate /s", "MiB/s", "memory", "vs baseline"):
        table.add_column(col, justify="left" if col in ("phase", "what", "memory") else "right")

    def mb(x: float) -> str:
        return f"{x / MB:,.0f} MiB"

    def times(ratio: float) -> str:
        return f"{ratio:.{2 if ratio >= 0.1 else 4}f}x the time"

    if b:
        sync = "fdatasync" if b["fsync"] else "no fsync"
        table.add_row(
            "build",
            f"generate + store.add, {b['batch']:,} per batch, {sync}",
            f"{n:,}",
            f"{b['generate_s'] + b['add_s']:.1f} s",
            f"{b['rate']:,.0f}",
            "",
            f"disk {mb(b['bytes'])}",
            "",
        )
        table.add_row("", "  store.add alone (validate, encode, write)", "", f"{b['add_s']:.1f} s",
                      f"{b['add_rate']:,.0f}", f"{b['add_mb_s']:,.1f}", f"writer RSS +{mb(b['writer_rss_growth'])}", "")  # fmt: skip
    for label, x in (
        ("TrajectoryStore.open(readonly=True)", o),
        ("  the same, gc disabled during the open", o2),
    ):
        table.add_row("open" if x is o else "", label, f"{x['trajectories']:,}", f"{x['seconds']:.2f} s",
                      f"{x['rate']:,.0f}", f"{x['mb_s']:,.0f}",
                      f"index +{mb(x['index_bytes'])} ({x['index_bytes_per_trajectory']:,.0f} B/traj), "
                      f"peak RSS {mb(x['peak_rss'])}",
                      "baseline" if x is o else times(x["seconds"] / o["seconds"]))  # fmt: skip
    table.add_section()
    everything = figures["queries"][0]["ms"]
    for i, q in enumerate(figures["queries"]):
        table.add_row("count" if i == 0 else "", q["query"], f"{q['matched']:,} of {q['scanned']:,}",
                      f"{q['ms']:,.1f} ms", f"{q['entries_s']:,.0f}", "", "",
                      "baseline" if i == 0 else times(q["ms"] / everything))  # fmt: skip
    table.add_section()
    base = None
    for s in figures["streams"]:
        if s["stream"].startswith("raw"):
            base = s
            table.add_row("stream", f"{s['query']} ({s['fraction']:.1%})", "", "", "", "", "", "")
        rss_text = (f"RSS {s['rss_before'] / MB:,.0f} -> peak {s['rss_peak'] / MB:,.0f} -> "
                    f"{s['rss_after'] / MB:,.0f} MiB")  # fmt: skip
        assert base is not None
        table.add_row("", f"  {s['stream']}", f"{s['trajectories']:,}", f"{s['seconds']:.2f} s",
                      f"{s['rate']:,.0f}", f"{s['mb_s']:,.0f}", rss_text,
                      "baseline" if s is base else f"{s['seconds'] / base['seconds']:.1f}x the time")  # fmt: skip
    return table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000, help="trajectories in the store")
    ap.add_argument("--quick", action="store_true", help="100,000 trajectories")
    ap.add_argument("--batch", type=int, default=10_000, help="trajectories per store.add (one fsync each)")
    ap.add_argument("--token-fraction", type=float, default=0.25, help="trajectories with token ids")
    ap.add_argument("--tokens", type=int, default=200, help="token ids of those, on average")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=3, help="runs of each count query (the median is shown)")
    ap.add_argument("--no-fsync", action="store_true", help="build without fdatasync (not durable)")
    ap.add_argument(
        "--cold", action="store_true", help="evict the store's pages before the open and each stream"
    )
    ap.add_argument("--dir", default=None, help="where the store is made (default: a temporary directory)")
    ap.add_argument("--keep", action="store_true", help="keep the store (with --dir)")
    ap.add_argument("--reuse", action="store_true", help="query the store already in --dir; no build")
    ap.add_argument("--json", default=None, metavar="PATH", help="write the figures to this JSON file")
    ap.add_argument("--_child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--store", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--out", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._child:
        child(args)
        return
    if args.quick:
        args.n = 100_000
    if args.n < BLOCKS * len(ENVS) * SAMPLES:
        ap.error(f"--n must be at least {BLOCKS * len(ENVS) * SAMPLES}")
    if args.reuse and not args.dir:
        ap.error("--reuse needs --dir")
    root = Path(args.dir or tempfile.mkdtemp(prefix="store-query-bench-"))
    path = root / "trajectory-store"
    figures: dict[str, Any] = {"cold": args.cold, "loadavg_start": os.getloadavg()}
    started = time.perf_counter()
    try:
        if not args.reuse:
            shutil.rmtree(path, ignore_errors=True)
            root.mkdir(parents=True, exist_ok=True)
            free = shutil.disk_usage(root).free
            need = args.n * (900 + args.token_fraction * args.tokens * 8)
            if free < 2 * need:
                sys.exit(f"{root}: {free / 2**30:.1f} GiB free, the store needs about {need / 2**30:.1f} GiB")
            say(f"build: {args.n:,} trajectories into {path}")
            figures["build"] = build(path, args)
        figures["bytes"], figures["segments"] = disk_bytes(path), len(segments(path))
        say("open (gc disabled), in a fresh process")
        figures["open_nogc"] = run_child("open-nogc", path, args)["open"]
        say("open, queries and streams, in a fresh process")
        figures.update(run_child("read", path, args))
    finally:
        if not (args.dir and (args.keep or args.reuse)):
            shutil.rmtree(path if args.dir else root, ignore_errors=True)
    figures["wall_s"] = time.perf_counter() - started
    figures["loadavg_end"] = os.getloadavg()
    Console(width=200).print(report(figures, path))
    start, end = figures["loadavg_start"][0], figures["loadavg_end"][0]
    print(
        f"wall time {figures['wall_s']:.0f} s; load average {start:.1f} at the start, {end:.1f} at the end "
        f"({os.cpu_count()} CPUs)"
    )
    if args.json:
        Path(args.json).write_bytes(orjson.dumps(figures, option=orjson.OPT_INDENT_2))


if __name__ == "__main__":
    main()
