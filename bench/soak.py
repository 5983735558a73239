"""Soak test: churning episodes for an hour against one env server, with clients and workers killed.

    python bench/soak.py                                    # 1 hour, 4,096 concurrent episodes
    python bench/soak.py --duration 600 --concurrency 512   # shorter, smaller
    python bench/soak.py --duration 60 --json soak.json     # the figures as JSON too
    python bench/soak.py --duration 60 --check              # exit 1 when a target is missed

`agentgym serve` hosts maze, wordle and textcraft, textcraft forced into worker processes
(`--execution textcraft=process`) so that worker processes exist to be killed. Client *processes*
(`--clients`, each an EnvClient over one connection) keep `--concurrency` episodes live between
them: create, a few steps (random available actions, or the env's expert) a jittered `--think`
apart, then an end: mostly a close, sometimes a dropped stream (the client cancels it), rarely an
episode left idle until the server's idle timeout frees it. `--process-episodes` of the live
episodes are textcraft (a worker process each, ~0.35 s of CPU to start one); the rest maze and wordle.
Every `--client-kill-every` seconds (jittered) one client process is SIGKILLed mid-episode and a
fresh one started: its episodes must be freed by the server. Every `--worker-kill-every` seconds
one of the server's worker processes is SIGKILLed: that episode ends (INTERNAL), no other.

Phases: warm-up (the same load and kills, so that pools, arenas and caches reach their size); stop
the load and let the server drain: the idle baseline (threads, fds, child processes); the soak
itself, sampled every `--sample-every` seconds (server RSS, its workers' RSS, threads, fds, child
processes, live episodes, steps/s); stop the load and drain again: the idle end. Both idle samples
are taken the same way: once no episode is live, a probe refills the pools that grow or shrink with
use (one textcraft episode: the prewarmed worker; concurrent slow expert calls: the env thread
pool), then `--settle` quiet seconds (gRPC core's own thread pool lets a thread go after 20 s idle).
Reported: leaked episodes and streams (live episodes, and streams the server still holds, once every
client is gone: `agentgym_open_streams`), threads/fds/child processes at the idle end against the
idle baseline, and RSS drift under load (the median of the last quarter of the samples against that
of the first quarter once the load is up; RSS follows the live episodes, which swing with the churn),
with RSS fitted against episodes churned. Targets: no leak of any kind (gRPC core's own EventEngine
thread pool is elastic: its growth is shown, and judged a leak only beyond two threads); RSS flat
within 10%.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from rich.table import Table

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from fabric import AGENTGYM, free_port, wait_ready  # noqa: E402

LIGHT_ENVS = ("maze", "wordle")
PROCESS_ENV = "textcraft"  # light, and forced into worker processes here so that they can be killed
WORKER_MODULE = "agentgym.server.worker"
WORDS = ("c r a n e", "s l a t e", "a l e r t", "t r a c e", "s t o n e")
RSS_TARGET_PCT = 10.0
# gRPC core's EventEngine thread pool is elastic: gRPC starts a thread whenever all of its threads
# are busy (at most one a second) and lets one go only after 20 s without any work, which an idle
# server need not give it. Its growth is reported, and judged a leak only beyond this many threads.
GRPC_POOL, GRPC_POOL_SLACK = "event_engine", 2


# --- client process ---------------------------------------------------------------------------------
class _Drop(Exception):
    """Raised inside an episode block to drop the stream without a close (the client cancels it)."""


@dataclass
class ClientCounts:
    episodes: int = 0  # created
    steps: int = 0
    closed: int = 0
    dropped: int = 0
    idled: int = 0  # left idle; the server freed it (DEADLINE_EXCEEDED at the next step)
    # Round trips as this client saw them (summed: the parent reports means), and the worst.
    create_s: float = 0.0
    step_s: float = 0.0
    close_s: float = 0.0
    max_create_s: float = 0.0
    max_step_s: float = 0.0


async def client_main(args: argparse.Namespace) -> None:
    """One load process: `args.concurrency` episode loops until SIGTERM, counts on stdout each second."""
    from agentgym.client import EnvClient
    from agentgym.client.errors import AgentGymError

    counts = ClientCounts()
    errors: Counter[str] = Counter()
    rng = random.Random(args.seed)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)

    def pick_action(env: str, last: Any) -> str:
        if last.available_actions:
            return rng.choice(last.available_actions)
        return rng.choice(WORDS) if env == "wordle" else rng.choice(("inventory", "get 1 oak log"))

    async def one_episode(client: EnvClient, env: str) -> None:
        end = rng.random()
        mode = (
            "idle"
            if end < args.idle_share
            else "drop"
            if end < args.idle_share + args.drop_share
            else "close"
        )
        task = rng.randrange(500)
        started = time.perf_counter()
        try:
            async with client.episode(env, task) as ep:
                took = time.perf_counter() - started
                counts.create_s += took
                counts.max_create_s = max(counts.max_create_s, took)
                counts.episodes += 1
                if mode == "idle":
                    # Outlive the server's idle timeout: the next step must say the env was freed.
                    await asyncio.sleep(args.idle_timeout + 3)
                for _ in range(rng.randint(1, 6)):
                    if ep.over:
                        break
                    await asyncio.sleep(args.think * rng.uniform(0.5, 1.5))
                    # Wordle's expert searches its word list (~0.1 s of server CPU after a guess): a
                    # soak of the fabric, not of one env's solver, leaves it out.
                    expert = env != "wordle" and rng.random() < 0.25
                    action = await ep.expert() if expert else pick_action(env, ep.last)
                    started = time.perf_counter()
                    await ep.step(action)
                    took = time.perf_counter() - started
                    counts.step_s += took
                    counts.max_step_s = max(counts.max_step_s, took)
                    counts.steps += 1
                if mode == "drop":
                    raise _Drop
                started = time.perf_counter()
            counts.close_s += time.perf_counter() - started
            counts.closed += 1
        except _Drop:
            counts.dropped += 1
        except AgentGymError as exc:
            if mode == "idle" and exc.code.name == "DEADLINE_EXCEEDED":
                counts.idled += 1
            else:
                errors[f"{env} {exc.code.name}"] += 1
                if exc.code.name == "RESOURCE_EXHAUSTED":
                    await asyncio.sleep(1)  # not expected (limits are generous): do not spin
        except Exception as exc:  # a client-side failure: counted and reported, the loop goes on
            errors[f"{env} client {type(exc).__name__}"] += 1
            if sum(v for k, v in errors.items() if " client " in k) <= 3:
                print(f"client exception: {exc!r}", file=sys.stderr)

    async def loop_forever(client: EnvClient, env: str | None) -> None:
        await asyncio.sleep(rng.uniform(0, 2 * args.think))  # spread the first creates
        while not stop.is_set():
            await one_episode(client, env or rng.choice(LIGHT_ENVS))

    def report() -> None:
        print(
            json.dumps({**asdict(counts), "cpu_s": time.process_time(), "errors": dict(errors)}), flush=True
        )

    async with EnvClient(args.address) as client:
        envs = [PROCESS_ENV] * args.process_slots + [None] * (args.concurrency - args.process_slots)
        tasks = [asyncio.create_task(loop_forever(client, env)) for env in envs]
        while not stop.is_set():
            report()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)  # each open episode's stream is cancelled
        report()


# --- watching the server --------------------------------------------------------------------------
@dataclass
class Sample:
    t: float  # seconds since the phase began
    phase: str
    rss_mb: float  # the server process
    workers_rss_mb: float  # its worker processes together
    threads: int
    fds: int
    children: int  # live child processes (worker processes)
    zombies: int  # exited children nobody reaped
    # Threads by name: gRPC core names its own (event_engine, grpc_global_tim, lifeguard); Python's
    # (the event loop, the env thread pool, asyncio's child watchers, metrics) carry the process's.
    thread_kinds: dict[str, int]
    live: int  # live episodes (agentgym_live_episodes)
    streams: int  # Session streams the server holds (agentgym_open_streams), with an episode or not
    steps: float  # agentgym_steps, all codes (cumulative)
    creates: float  # agentgym_creates, all codes (cumulative): episodes churned
    steps_per_s: float = 0.0


def scrape(url: str) -> dict[str, float]:
    """The server's metrics, samples summed over their labels: {name: value}; errors as
    {"errors CODE": value}."""
    with urllib.request.urlopen(url, timeout=10) as r:
        text = r.read().decode()
    out: Counter[str] = Counter()
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[s.name] += s.value
            if s.name == "agentgym_errors_total":
                out[f"errors {s.labels['env']} {s.labels['code']}"] += s.value
    return dict(out)


def observe(server: psutil.Process, metrics_url: str, phase: str, t: float) -> Sample:
    # Process figures first: the scrape itself runs on a thread of the server.
    rss = server.memory_info().rss / 2**20
    threads, fds = server.num_threads(), server.num_fds()
    kinds = thread_kinds(server)
    workers_rss = 0.0
    children = zombies = 0
    for child in server.children(recursive=True):
        try:
            if child.status() == psutil.STATUS_ZOMBIE:
                zombies += 1
                continue
            workers_rss += child.memory_info().rss / 2**20
            children += 1
        except psutil.NoSuchProcess:
            pass
    m = scrape(metrics_url)
    return Sample(
        t, phase, rss, workers_rss, threads, fds, children, zombies, kinds,
        int(m.get("agentgym_live_episodes", 0)), int(m.get("agentgym_open_streams", 0)),
        m.get("agentgym_steps_total", 0.0), m.get("agentgym_creates_total", 0.0),
    )  # fmt: skip


def thread_kinds(server: psutil.Process) -> dict[str, int]:
    """{thread name: count} from /proc (Linux); {} elsewhere."""
    kinds: Counter[str] = Counter()
    for t in server.threads():
        with contextlib.suppress(OSError):
            kinds[Path(f"/proc/{server.pid}/task/{t.id}/comm").read_text().strip()] += 1
    return dict(kinds)


def worker_pids(server: psutil.Process) -> list[int]:
    pids = []
    for child in server.children(recursive=True):
        try:
            if child.status() != psutil.STATUS_ZOMBIE and WORKER_MODULE in " ".join(child.cmdline()):
                pids.append(child.pid)
        except psutil.NoSuchProcess:
            pass
    return pids


def running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


# --- the load -------------------------------------------------------------------------------------
class Load:
    """The client processes: started, killed and replaced; their latest counts kept (a killed
    client's counts stand as of its last report, at most a second old)."""

    def __init__(self, args: argparse.Namespace, address: str) -> None:
        self.args = args
        self.address = address
        self.procs: dict[int, asyncio.subprocess.Process] = {}
        self.readers: dict[int, asyncio.Task[None]] = {}
        self.latest: dict[int, dict[str, Any]] = {}
        self.next_id = 0
        n = args.clients
        self.shares = [
            (args.concurrency // n + (i < args.concurrency % n), args.process_episodes // n + (i < args.process_episodes % n))
            for i in range(n)
        ]  # fmt: skip

    async def start_client(self, slot: int) -> None:
        cid, self.next_id = self.next_id, self.next_id + 1
        concurrency, process_slots = self.shares[slot]
        a = self.args
        proc = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "_client", "--address", self.address,
            "--concurrency", str(concurrency), "--process-slots", str(process_slots),
            "--think", str(a.think), "--idle-timeout", str(a.idle_timeout),
            "--idle-share", str(a.idle_share), "--drop-share", str(a.drop_share), "--seed", str(a.seed * 1000 + cid),
            stdout=asyncio.subprocess.PIPE,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )  # fmt: skip
        self.procs[slot] = proc
        self.readers[cid] = asyncio.create_task(self._read(cid, proc))

    async def _read(self, cid: int, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        async for line in proc.stdout:
            with contextlib.suppress(ValueError):
                self.latest[cid] = json.loads(line)

    async def start(self) -> None:
        for slot in range(self.args.clients):
            await self.start_client(slot)

    async def kill_one(self, rng: random.Random) -> None:
        slot = rng.randrange(self.args.clients)
        proc = self.procs[slot]
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        await self.start_client(slot)

    async def stop(self) -> None:
        """SIGTERM: each client drops its open episodes and exits; SIGKILL after 30 s."""
        for proc in self.procs.values():
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
        for proc in self.procs.values():
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        await asyncio.gather(*self.readers.values(), return_exceptions=True)
        self.procs.clear()

    def totals(self) -> tuple[Counter[str], Counter[str]]:
        counts: Counter[str] = Counter()
        errors: Counter[str] = Counter()
        for r in self.latest.values():
            errors.update(r.get("errors", {}))
            for k, v in r.items():
                if k.startswith("max_"):
                    counts[k] = max(counts[k], v)
                elif k != "errors":
                    counts[k] += v
        return counts, errors


# --- the run --------------------------------------------------------------------------------------
async def phase(
    args: argparse.Namespace,
    name: str,
    seconds: float,
    load: Load,
    server: psutil.Process,
    metrics_url: str,
    samples: list[Sample],
    kills: Counter[str],
    rng: random.Random,
) -> None:
    """Run the load for `seconds`, killing clients and workers on schedule and sampling the server."""
    await load.start()
    t0 = time.monotonic()

    def jitter(every: float) -> float:
        return every * rng.uniform(0.5, 1.5)

    next_sample = t0 + args.sample_every
    next_client_kill = t0 + jitter(args.client_kill_every) if args.client_kill_every > 0 else float("inf")
    next_worker_kill = t0 + jitter(args.worker_kill_every) if args.worker_kill_every > 0 else float("inf")
    end = t0 + seconds
    prev: Sample | None = None
    while (now := time.monotonic()) < end:
        if now >= next_client_kill:
            await load.kill_one(rng)
            kills["client"] += 1
            next_client_kill = now + jitter(args.client_kill_every)
        if now >= next_worker_kill:
            pids = worker_pids(server)
            if pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(rng.choice(pids), signal.SIGKILL)
                    kills["worker"] += 1
            next_worker_kill = now + jitter(args.worker_kill_every)
        if now >= next_sample:
            s = await asyncio.to_thread(observe, server, metrics_url, name, now - t0)
            if prev is not None:
                s.steps_per_s = (s.steps - prev.steps) / max(1e-9, s.t - prev.t)
            prev = s
            samples.append(s)
            counts, errors = load.totals()
            print(
                f"[{name} {s.t:6.0f}s] live {s.live:5d}  streams {s.streams:5d}  steps/s {s.steps_per_s:7.0f}  rss {s.rss_mb:6.1f} MB  "
                f"workers {s.children} ({s.workers_rss_mb:.0f} MB)  threads {s.threads}  fds {s.fds}  "
                f"episodes {counts['episodes']:,}  errors {sum(errors.values())}  kills {dict(kills)}",
                flush=True,
            )
            next_sample = now + args.sample_every
        await asyncio.sleep(
            max(0.05, min(next_sample, next_client_kill, next_worker_kill, end) - time.monotonic())
        )
    await load.stop()


async def settle(
    server: psutil.Process, metrics_url: str, quiet_s: float, limit_s: float, name: str
) -> Sample:
    """The first sample with no live episode after `quiet_s` seconds of equal ones (live episodes,
    workers, threads, fds), or the last one at `limit_s`."""
    t0 = time.monotonic()
    since = t0
    last: Sample | None = None
    while True:
        await asyncio.sleep(1)
        s = await asyncio.to_thread(observe, server, metrics_url, name, time.monotonic() - t0)
        key = (s.live, s.streams, s.children, s.threads, s.fds)
        if s.live or last is None or key != (last.live, last.streams, last.children, last.threads, last.fds):
            since = time.monotonic()
            print(
                f"[{name} drain {s.t:4.0f}s] live {s.live}  streams {s.streams}  workers {s.children}  "
                f"threads {s.threads} {s.thread_kinds}  fds {s.fds}",
                flush=True,
            )
        last = s
        if time.monotonic() - since >= quiet_s or time.monotonic() - t0 > limit_s:
            return s


async def drain(
    args: argparse.Namespace, server: psutil.Process, address: str, metrics_url: str, name: str
) -> tuple[Sample, int, float]:
    """Wait for the server to free every episode; then play one episode of the process env, so that
    its pool of prewarmed workers is whole again (a prewarmed worker killed while idle is replaced
    only at the next create); then wait for `--settle` quiet seconds: gRPC core's thread pool lets a
    thread it added under load go after 20 s idle. (The idle sample, workers alive before that
    episode, seconds it all took.)"""
    from agentgym.client import EnvClient

    async def expert_after_guess(client: EnvClient, task: int) -> None:
        async with client.episode("wordle", task) as ep:
            await ep.step(WORDS[0])
            await ep.expert()

    t0 = time.monotonic()
    limit = args.idle_timeout + args.settle + 60
    quiet = await settle(server, metrics_url, 3, limit, name)
    async with EnvClient(address) as client:
        async with client.episode(PROCESS_ENV, 0) as ep:
            await ep.step("inventory")
        # The env thread pool (experts) starts threads as calls find none free, up to its size: calls
        # that each hold a thread ~0.1 s, twice as many as it has, fill it, so that both idle samples
        # see it whole and a thread count that grew between them is a leak, not the pool growing.
        await asyncio.gather(*(expert_after_guess(client, i) for i in range(2 * args.server_threads)))
    s = await settle(server, metrics_url, args.settle, limit, name)
    return s, quiet.children, time.monotonic() - t0


def start_server(args: argparse.Namespace, log_path: Path) -> tuple[subprocess.Popen[bytes], str, str]:
    """`agentgym serve` in a process of its own: (process, gRPC address, metrics URL)."""
    port, metrics_port = free_port(), free_port()
    # Room for a killed client's episodes (freed when the server sees its connection go) beside its
    # replacement's, so that no create is refused.
    max_episodes = 2 * args.concurrency + 1024
    cmd = [
        AGENTGYM, "--log-level", "warning", "serve", "--port", str(port), "--metrics-port", str(metrics_port),
        "--envs", ",".join((*LIGHT_ENVS, PROCESS_ENV)), "--execution", f"{PROCESS_ENV}=process",
        "--max-episodes", str(max_episodes), "--idle-timeout", str(args.idle_timeout), "--grace", "2",
        "--threads", str(args.server_threads),
    ]  # fmt: skip
    with open(log_path, "w") as log:
        popen = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": "1"}
        )
    return popen, f"127.0.0.1:{port}", f"http://127.0.0.1:{metrics_port}/metrics"


async def run(
    args: argparse.Namespace, popen: subprocess.Popen[bytes], address: str, metrics_url: str
) -> dict[str, Any]:
    rng = random.Random(args.seed)
    loads: list[Load] = []
    try:
        await wait_ready(address)
        server = psutil.Process(popen.pid)
        for _ in range(50):  # the metrics port opens just after the gRPC one
            try:
                await asyncio.to_thread(scrape, metrics_url)
                break
            except OSError:
                await asyncio.sleep(0.2)
        samples: list[Sample] = []
        kills: Counter[str] = Counter()
        fresh = await asyncio.to_thread(observe, server, metrics_url, "fresh", 0.0)
        print(f"server pid {popen.pid} on {address}; warm-up {args.warmup:g}s", flush=True)

        warm = Load(args, address)
        loads.append(warm)
        await phase(args, "warm-up", args.warmup, warm, server, metrics_url, samples, kills, rng)
        baseline, _, baseline_drain_s = await drain(args, server, address, metrics_url, "baseline")
        print(f"idle baseline after {baseline_drain_s:.0f}s: {baseline}", flush=True)

        soak = Load(args, address)
        loads.append(soak)
        before = await asyncio.to_thread(scrape, metrics_url)
        cpu0 = server.cpu_times()
        soak_kills: Counter[str] = Counter()
        t0 = time.monotonic()
        await phase(args, "soak", args.duration, soak, server, metrics_url, samples, soak_kills, rng)
        soak_s = time.monotonic() - t0
        cpu1 = server.cpu_times()
        end, pool_before_probe, end_drain_s = await drain(args, server, address, metrics_url, "end")
        after = await asyncio.to_thread(scrape, metrics_url)
        print(f"idle end after {end_drain_s:.0f}s: {end}", flush=True)
    finally:
        for load in loads:  # clients still running after a failure
            for proc in load.procs.values():
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()

    loaded = [s for s in samples if s.phase == "soak"]
    # RSS follows the live episodes, which swing with the churn: compare the median of the first
    # quarter of the samples taken once the load is up (the clients restart after the baseline)
    # with the median of the last quarter, and fit RSS against episodes churned.
    steady = [s for s in loaded if s.t >= max(20.0, 6 * args.think)] or loaded
    quarter = max(1, len(steady) // 4)
    rss_first = statistics.median(s.rss_mb for s in steady[:quarter])
    rss_last = statistics.median(s.rss_mb for s in steady[-quarter:])
    slope = (
        statistics.linear_regression([s.creates for s in steady], [s.rss_mb for s in steady]).slope
        if len(steady) > 2 and steady[-1].creates > steady[0].creates
        else 0.0
    )
    counts, errors = soak.totals()
    delta = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after}
    return {
        "command": " ".join(sys.argv),
        "config": {k: v for k, v in vars(args).items() if k not in ("json", "check")},
        "soak_seconds": round(soak_s, 1),
        "fresh": asdict(fresh),
        "baseline_idle": asdict(baseline),
        "end_idle": asdict(end),
        # Prewarmed workers alive once the load was gone, before the probe episode (expected: 1).
        "idle_pool_before_probe": pool_before_probe,
        "drain_seconds": {"baseline": round(baseline_drain_s, 1), "end": round(end_drain_s, 1)},
        "rss_first_quarter_mb": rss_first,
        "rss_last_quarter_mb": rss_last,
        "rss_max_mb": max(s.rss_mb for s in loaded),
        # Least squares over the steady samples: server RSS per 1,000 episodes churned, in KiB.
        "rss_kib_per_1000_episodes": slope * 1024 * 1000,
        # What the machine sustained: live episodes over the soak's samples (mean, min, max).
        "live_under_load": [
            sum(s.live for s in loaded) / len(loaded),
            min(s.live for s in loaded),
            max(s.live for s in loaded),
        ],
        "rss_drift_pct": (rss_last - rss_first) / rss_first * 100,
        "leaks": {
            "episodes": end.live,
            "streams": end.streams,
            # Every thread but gRPC core's elastic pool, then that pool's own growth.
            "threads": (end.threads - end.thread_kinds.get(GRPC_POOL, 0))
            - (baseline.threads - baseline.thread_kinds.get(GRPC_POOL, 0)),
            "grpc_pool_threads": end.thread_kinds.get(GRPC_POOL, 0) - baseline.thread_kinds.get(GRPC_POOL, 0),
            "fds": end.fds - baseline.fds,
            "child_processes": end.children - baseline.children,
            "zombies": end.zombies,
            "orphaned_workers": 0,  # set by main once the server has stopped
        },
        "totals": {
            # Client round trips, means in ms, and the worst (create includes the env's reset).
            "create_ms": counts["create_s"] / max(1, counts["episodes"]) * 1e3,
            "step_ms": counts["step_s"] / max(1, counts["steps"]) * 1e3,
            "close_ms": counts["close_s"] / max(1, counts["closed"]) * 1e3,
            "max_create_ms": counts["max_create_s"] * 1e3,
            "max_step_ms": counts["max_step_s"] * 1e3,
            "episodes": counts["episodes"],
            "steps": counts["steps"],
            "closed": counts["closed"],
            "dropped": counts["dropped"],
            "idle_freed": counts["idled"],
            "client_errors": dict(errors),
            "server_errors": {
                k.removeprefix("errors "): v for k, v in delta.items() if k.startswith("errors ") and v
            },
            "server_steps": delta.get("agentgym_steps_total", 0.0),
            "server_creates": delta.get("agentgym_creates_total", 0.0),
            "worker_restarts": delta.get("agentgym_worker_restarts_total", 0.0),
            "client_kills": soak_kills["client"],
            "worker_kills": soak_kills["worker"],
            "steps_per_s": delta.get("agentgym_steps_total", 0.0) / soak_s,
            "server_cpu_s": (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system),
            "client_cpu_s": counts["cpu_s"],
        },
        "workers_at_end": worker_pids(server),  # checked once the server has stopped (orphans)
        "samples": [asdict(s) for s in samples],
        "per_client": soak.latest,  # each soak client's last report, in start order
    }


# --- the report -----------------------------------------------------------------------------------
def verdict(f: dict[str, Any]) -> list[tuple[str, bool]]:
    leaks = f["leaks"]
    return [
        ("no leaked episodes or streams", leaks["episodes"] == 0 and leaks["streams"] == 0),
        (
            f"no leaked threads (gRPC core's {GRPC_POOL} pool: at most +{GRPC_POOL_SLACK})",
            leaks["threads"] <= 0 and leaks["grpc_pool_threads"] <= GRPC_POOL_SLACK,
        ),
        ("no leaked file descriptors", leaks["fds"] <= 0),
        ("no leaked processes", leaks["child_processes"] <= 0 and leaks["zombies"] == 0 and leaks["orphaned_workers"] == 0),
        (f"RSS flat within {RSS_TARGET_PCT:g}%", abs(f["rss_drift_pct"]) <= RSS_TARGET_PCT),
    ]  # fmt: skip


def print_report(f: dict[str, Any], console: Console) -> bool:
    c, t, b, e = f["config"], f["totals"], f["baseline_idle"], f["end_idle"]
    loaded = [s for s in f["samples"] if s["phase"] == "soak"]
    step = max(1, len(loaded) // 16)
    series = Table(title=f"Soak samples (every {step * c['sample_every']:g}s shown)")
    for col in (
        "t s",
        "live",
        "streams",
        "steps/s",
        "server RSS MB",
        "workers",
        "workers RSS MB",
        "threads",
        "fds",
    ):
        series.add_column(col, justify="right")
    for s in loaded[::step] + ([loaded[-1]] if (len(loaded) - 1) % step else []):
        series.add_row(
            f"{s['t']:.0f}", f"{s['live']:,}", f"{s['streams']:,}", f"{s['steps_per_s']:,.0f}", f"{s['rss_mb']:.1f}",
            str(s["children"]), f"{s['workers_rss_mb']:.0f}", str(s["threads"]), str(s["fds"]),
        )  # fmt: skip
    console.print(series)

    table = Table(
        title=f"Soak: {f['soak_seconds']:.0f}s at {c['concurrency']:,} concurrent episodes "
        f"({c['clients']} client processes), maze+wordle inline, textcraft in worker processes"
    )
    for col in ("figure", "baseline", "end", "change", "target"):
        table.add_column(col, justify="right")
    table.add_row("live episodes (idle)", str(b["live"]), str(e["live"]), f"{e['live'] - b['live']:+d}", "0")
    table.add_row(
        "open streams (idle)", str(b["streams"]), str(e["streams"]), f"{e['streams'] - b['streams']:+d}", "0"
    )
    table.add_row(
        "threads (idle)", str(b["threads"]), str(e["threads"]), f"{e['threads'] - b['threads']:+d}", ""
    )
    for kind in sorted(set(b["thread_kinds"]) | set(e["thread_kinds"])):
        nb, ne = b["thread_kinds"].get(kind, 0), e["thread_kinds"].get(kind, 0)
        target = f"<= +{GRPC_POOL_SLACK} (elastic)" if kind == GRPC_POOL else "<= +0"
        table.add_row(f"  named {kind}", str(nb), str(ne), f"{ne - nb:+d}", target)
    table.add_row(
        "file descriptors (idle)", str(b["fds"]), str(e["fds"]), f"{e['fds'] - b['fds']:+d}", "<= +0"
    )
    table.add_row(
        "child processes (idle)",
        str(b["children"]),
        str(e["children"]),
        f"{e['children'] - b['children']:+d}",
        "<= +0",
    )
    table.add_row(
        "zombies / orphaned workers", "", f"{e['zombies']} / {f['leaks']['orphaned_workers']}", "", "0 / 0"
    )
    table.add_row(
        "server RSS MB under load (median, first / last quarter)", f"{f['rss_first_quarter_mb']:.1f}",
        f"{f['rss_last_quarter_mb']:.1f}", f"{f['rss_drift_pct']:+.1f}%", f"within {RSS_TARGET_PCT:g}%",
    )  # fmt: skip
    table.add_row(
        "server RSS per 1,000 episodes churned (fit)",
        "",
        f"{f['rss_kib_per_1000_episodes']:+.1f} KiB",
        "",
        "",
    )
    table.add_row(
        "server RSS MB idle",
        f"{b['rss_mb']:.1f}",
        f"{e['rss_mb']:.1f}",
        f"{(e['rss_mb'] / b['rss_mb'] - 1) * 100:+.1f}%",
        "",
    )
    table.add_row("max server RSS MB under load", "", f"{f['rss_max_mb']:.1f}", "", "")
    console.print(table)

    totals = Table(title="Soak totals")
    totals.add_column("figure")
    totals.add_column("value", justify="right")
    for label, value in (
        ("live episodes under load: mean (min-max)", "{:,.0f} ({:,}-{:,})".format(*f["live_under_load"])),
        ("episodes created (client)", f"{t['episodes']:,}"),
        ("  closed / dropped / left idle", f"{t['closed']:,} / {t['dropped']:,} / {t['idle_freed']:,}"),
        ("steps (server)", f"{t['server_steps']:,.0f} ({t['steps_per_s']:,.0f}/s)"),
        (
            "round trips, mean ms: create / step / close (max create / step)",
            f"{t['create_ms']:.0f} / {t['step_ms']:.0f} / {t['close_ms']:.0f} "
            f"({t['max_create_ms']:,.0f} / {t['max_step_ms']:,.0f})",
        ),
        (
            "server CPU",
            f"{t['server_cpu_s']:.0f}s ({t['server_cpu_s'] / f['soak_seconds'] * 100:.0f}% of a core)",
        ),
        (
            f"client CPU ({c['clients']} processes at a time)",
            f"{t['client_cpu_s']:.0f}s ({t['client_cpu_s'] / f['soak_seconds'] * 100:.0f}% of a core)",
        ),
        ("client kills / worker kills", f"{t['client_kills']} / {t['worker_kills']}"),
        ("worker restarts (server metric)", f"{t['worker_restarts']:.0f}"),
        ("prewarmed workers alive at the end, before the probe", str(f["idle_pool_before_probe"])),
        ("client errors", ", ".join(f"{k} {v:,}" for k, v in sorted(t["client_errors"].items())) or "none"),
        (
            "server errors",
            ", ".join(f"{k} {v:,.0f}" for k, v in sorted(t["server_errors"].items())) or "none",
        ),
    ):
        totals.add_row(label, value)
    console.print(totals)
    ok = True
    for what, passed in verdict(f):
        ok &= passed
        console.print(f"  {'[green]PASS' if passed else '[red]FAIL'}[/] {what}")
    console.print(f"[bold]{'PASS' if ok else 'FAIL'}[/]: {f['soak_seconds']:.0f}s soak against the targets")
    return ok


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_client":
        p = argparse.ArgumentParser(prog="soak.py _client")
        p.add_argument("--address", required=True)
        p.add_argument("--concurrency", type=int, required=True)
        p.add_argument("--process-slots", type=int, default=0)
        p.add_argument("--think", type=float, default=1.0)
        p.add_argument("--idle-timeout", type=float, default=20.0)
        p.add_argument("--idle-share", type=float, default=0.005)
        p.add_argument("--drop-share", type=float, default=0.05)
        p.add_argument("--seed", type=int, default=0)
        asyncio.run(client_main(p.parse_args(sys.argv[2:])))
        return
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--duration", type=float, default=3600.0, help="seconds of soak after the warm-up (default 3600)"
    )
    p.add_argument("--warmup", type=float, default=120.0, help="seconds of the same load before the baseline")
    p.add_argument("--concurrency", type=int, default=4096, help="live episodes across all clients")
    p.add_argument("--clients", type=int, default=4, help="client processes sharing the load")
    p.add_argument(
        "--process-episodes", type=int, default=4, help="of the live episodes, textcraft in workers"
    )
    p.add_argument(
        "--think",
        type=float,
        default=4.0,
        help="mean seconds between an episode's steps, +-50%% (a policy's reply)",
    )
    p.add_argument(
        "--client-kill-every", type=float, default=60.0, help="mean seconds between client kills (0: none)"
    )
    p.add_argument(
        "--worker-kill-every", type=float, default=10.0, help="mean seconds between worker kills (0: none)"
    )
    p.add_argument("--idle-timeout", type=float, default=20.0, help="the server's idle timeout, seconds")
    p.add_argument("--idle-share", type=float, default=0.005, help="share of episodes left idle until freed")
    p.add_argument("--drop-share", type=float, default=0.05, help="share of episodes dropped without a close")
    p.add_argument(
        "--settle",
        type=float,
        default=30.0,
        help="quiet seconds before each idle sample (gRPC threads go after 20)",
    )
    p.add_argument(
        "--server-threads", type=int, default=min(32, (os.cpu_count() or 1) + 4),
        help="the server's thread pool for blocking env calls and experts (its default)",
    )  # fmt: skip
    p.add_argument("--sample-every", type=float, default=10.0, help="seconds between samples of the server")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, help="write every figure and sample here")
    p.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = p.parse_args()
    if args.clients < 1 or args.concurrency < args.clients or args.process_episodes > args.concurrency:
        p.error("need 1 <= --clients <= --concurrency and --process-episodes <= --concurrency")
    log_path = Path(tempfile.gettempdir()) / f"agentgym-soak-{os.getpid()}.log"
    popen, address, metrics_url = start_server(args, log_path)
    print(f"server log: {log_path}", flush=True)
    try:
        figures = asyncio.run(run(args, popen, address, metrics_url))
    finally:
        popen.terminate()
        try:
            exit_code = popen.wait(30)
        except subprocess.TimeoutExpired:
            popen.kill()
            exit_code = popen.wait()
    # A worker process that outlived its server is a leak too: reported, and not left behind.
    orphans = [pid for pid in figures.pop("workers_at_end") if running(pid)]
    for pid in orphans:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    figures["leaks"]["orphaned_workers"] = len(orphans)
    figures["server_exit_code"] = exit_code
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))
    ok = print_report(figures, Console(width=160))
    if ok:
        log_path.unlink(missing_ok=True)
    else:  # the server's warnings (every failed episode, with its traceback) say what went on
        print(f"server log kept: {log_path}")
    sys.exit(1 if args.check and not ok else 0)


if __name__ == "__main__":
    main()
