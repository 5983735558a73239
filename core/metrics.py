"""Prometheus metrics of the fabric: every metric is defined once, here, in the process-wide registry.

    server = start_metrics_server(9100, "127.0.0.1")   # http://127.0.0.1:9100/metrics
    STEPS.labels("maze", "OK").inc()
    server.close()

Each server process (`agentgym serve`, `agentgym trainer serve`, `agentgym policy serve --backend hf`)
and the rollout client (`agentgym eval|rollout`) serves them with `--metrics-port N`: the text
exposition of prometheus_client on a port of its own, bound to the service's host, answered by a
thread of its own (a scrape is answered even while the event loop is busy). Metrics are recorded
whether or not a port is open: an update costs a microsecond or two.

Names carry the `agentgym_` prefix; the env server's are the Node server's (envs/node) where the
meaning is the same. docs/metrics.md lists every metric with its labels and meaning.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import start_http_server
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

T = TypeVar("T")

# The env server's histograms use the Node server's buckets (envs/node/src/metrics.js), so the
# two servers' histograms can be summed by bucket.
ENV_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# Other latencies: a thread pool's queue or an fsync can take tens of microseconds.
LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                   1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)  # fmt: skip
# A model's reply: milliseconds (a tiny CPU model) to minutes (long generations behind a queue).
GENERATE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)

# `env` label values that are not an env (the Node server's): a create naming an env this server
# does not host (a client's typo must not mint a time series), and a request on a stream with no
# episode yet.
NOT_HOSTED = "(not hosted)"
NO_EPISODE = "(none)"

# --- env server (server/) -------------------------------------------------------------------------
LIVE_EPISODES = Gauge("agentgym_live_episodes", "Episodes live (created, not yet ended).", ["env"])
OPEN_STREAMS = Gauge(
    "agentgym_open_streams",
    "Session streams the server holds (an episode's, or one with none yet); 0 once every client is gone.",
)
CAPACITY = Gauge(
    "agentgym_capacity", "Live episodes the server admits for this env (min of its limits).", ["env"]
)
CREATES = Counter(
    "agentgym_creates", "Create requests answered, by gRPC status code (OK: the episode started).",
    ["env", "code"],
)  # fmt: skip
STEPS = Counter("agentgym_steps", "Step requests answered, by gRPC status code.", ["env", "code"])
ERRORS = Counter(
    "agentgym_errors", "Requests of any kind answered with an error (in band or ending the stream).",
    ["env", "code"],
)  # fmt: skip
STEP_SECONDS = Histogram(
    "agentgym_step_seconds", "Time of the env's step call (success or failure).", ["env"],
    buckets=ENV_BUCKETS,
)  # fmt: skip
RESET_SECONDS = Histogram(
    "agentgym_reset_seconds", "Time of the env's reset call (create and reset requests).", ["env"],
    buckets=ENV_BUCKETS,
)  # fmt: skip
REFUSALS = Counter(
    "agentgym_refusals",
    "Requests refused by a limit; reason: max_episodes, max_episodes_per_env, max_action_bytes, draining.",
    ["env", "reason"],
)
WORKER_RESTARTS = Counter(
    "agentgym_worker_restarts",
    "Worker processes (process envs) that died or were killed mid-episode (crash, step timeout); "
    "later episodes get fresh ones.",
    ["env"],
)
THREAD_QUEUE_SECONDS = Histogram(
    "agentgym_thread_queue_seconds",
    "Time a blocking env call (thread envs, experts) waited for a free thread before it ran.",
    ["env"],
    buckets=LATENCY_BUCKETS,
)

# --- trainer (trainer/) ---------------------------------------------------------------------------
INGEST_TRAJECTORIES = Counter(
    "agentgym_ingest_trajectories", "Trajectories pushed to the trainer: stored, duplicate or rejected.",
    ["result"],
)  # fmt: skip
INGEST_BYTES = Counter("agentgym_ingest_bytes", "Bytes of push requests received (refused ones too).")
STORE_FSYNC_SECONDS = Histogram(
    "agentgym_store_fsync_seconds", "Time of one fdatasync of the store's group commit.",
    buckets=LATENCY_BUCKETS,
)  # fmt: skip
STORE_COMMIT_TRAJECTORIES = Histogram(
    "agentgym_store_commit_trajectories", "Trajectories written by one group commit (one write, one fsync).",
    buckets=SIZE_BUCKETS,
)  # fmt: skip

# --- policy server (client/policies/hf_server.py, hf.py) ------------------------------------------
POLICY_REQUESTS = Counter(
    "agentgym_policy_requests", "HTTP requests answered by the policy server, by route and status.",
    ["route", "status"],
)  # fmt: skip
POLICY_PROMPT_TOKENS = Counter("agentgym_policy_prompt_tokens", "Prompt tokens of generation requests.")
POLICY_GENERATED_TOKENS = Counter("agentgym_policy_generated_tokens", "Tokens generated.")
POLICY_GENERATE_SECONDS = Histogram(
    "agentgym_policy_generate_seconds", "Time to answer one prompt (waiting for its batch included).",
    buckets=GENERATE_BUCKETS,
)  # fmt: skip
POLICY_BATCH_SIZE = Histogram(
    "agentgym_policy_batch_size", "Prompts per batched generate of the hf policy.", buckets=SIZE_BUCKETS
)

# --- rollout client (client/rollout.py, react.py) -------------------------------------------------
ROLLOUT_EPISODES = Counter(
    "agentgym_rollout_episodes", "Episodes the rollout client ended: finished (written) or failed.",
    ["env", "outcome"],
)  # fmt: skip
ROLLOUT_SUCCESSES = Counter("agentgym_rollout_successes", "Finished episodes that succeeded.", ["env"])
ROLLOUT_RETRIES = Counter(
    "agentgym_rollout_retries", "Episodes replayed from the start after a transient server error.", ["env"]
)
ROLLOUT_LIVE = Gauge("agentgym_rollout_live_episodes", "Episodes the rollout client is playing now.")
ROLLOUT_POLICY_SECONDS = Histogram(
    "agentgym_rollout_policy_seconds", "Time of the policy's reply, per agent turn.", ["env"],
    buckets=GENERATE_BUCKETS,
)  # fmt: skip
ROLLOUT_STEP_SECONDS = Histogram(
    "agentgym_rollout_step_seconds", "Round trip of one step to the env server, per agent turn.", ["env"],
    buckets=LATENCY_BUCKETS,
)  # fmt: skip
ROLLOUT_COMPLETION_TOKENS = Counter(
    "agentgym_rollout_completion_tokens", "Policy tokens of finished episodes (token-level policies).",
    ["env"],
)  # fmt: skip


# --- hot-path helpers -------------------------------------------------------------------------------
# `metric.labels(...)` validates and locks on every call (about 2 µs); a server step records a few
# metrics, so the labelled children are kept here (a dict lookup). Label values are bounded: env
# names, status codes, routes.
_children: dict[tuple[Any, tuple[str, ...]], Any] = {}


def child(metric: Any, *labels: str) -> Any:
    """`metric.labels(*labels)`, cached."""
    key = (metric, labels)
    found = _children.get(key)
    if found is None:
        found = _children[key] = metric.labels(*labels)
    return found


class _Timed:
    __slots__ = ("child", "start")

    def __init__(self, child: Any) -> None:
        self.child = child
        self.start = 0.0

    def __enter__(self) -> None:
        self.start = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.child.observe(time.perf_counter() - self.start)


def timed(histogram: Histogram, *labels: str) -> _Timed:
    """`with timed(STEP_SECONDS, env):` observes the block's duration, exceptions included (a
    cheaper `histogram.labels(...).time()`)."""
    return _Timed(child(histogram, *labels))


def queued(fn: Callable[..., T], env: str) -> Callable[..., T]:
    """`fn`, recording in THREAD_QUEUE_SECONDS how long it waited between this call and its start:
    wrap a call just before handing it to a thread pool."""
    submitted = time.perf_counter()
    wait = child(THREAD_QUEUE_SECONDS, env)

    def run(*args: Any) -> T:
        wait.observe(time.perf_counter() - submitted)
        return fn(*args)

    return run


# --- gauges read at scrape time -------------------------------------------------------------------
@dataclass(frozen=True)
class Sample:
    """One value of a gauge computed at scrape time."""

    name: str
    help: str
    value: float
    labels: tuple[tuple[str, str], ...] = ()


class _Scraped(Collector):
    """Gauges computed when scraped from live objects (a store's size, the jobs' states), so nothing
    has to keep them up to date. Sources are added and removed as their objects come and go."""

    def __init__(self) -> None:
        self._sources: dict[int, Callable[[], Iterable[Sample]]] = {}
        self._next = 0
        self._lock = threading.Lock()

    def add(self, source: Callable[[], Iterable[Sample]]) -> Callable[[], None]:
        with self._lock:
            key, self._next = self._next, self._next + 1
            self._sources[key] = source

        def remove() -> None:
            with self._lock:
                self._sources.pop(key, None)

        return remove

    def describe(self) -> list[Metric]:
        return []  # names vary with the sources; the registry need not check them

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            sources = list(self._sources.values())
        families: dict[str, GaugeMetricFamily] = {}
        for source in sources:
            try:
                samples = list(source())
            except Exception:  # a failing source must not take the other metrics down with it
                log.warning("metrics source failed", exc_info=True)
                continue
            for s in samples:
                family = families.get(s.name)
                if family is None:
                    family = families[s.name] = GaugeMetricFamily(
                        s.name, s.help, labels=[k for k, _ in s.labels]
                    )
                family.add_metric([v for _, v in s.labels], s.value)
        yield from families.values()


_SCRAPED = _Scraped()
REGISTRY.register(_SCRAPED)


def add_scraped(source: Callable[[], Iterable[Sample]]) -> Callable[[], None]:
    """Report `source()`'s samples on every scrape; returns the function that stops it."""
    return _SCRAPED.add(source)


# --- exposition -----------------------------------------------------------------------------------
class MetricsServer:
    """The exposition HTTP server: GET /metrics on its own port, served by a daemon thread."""

    def __init__(self, port: int, host: str) -> None:
        try:
            self._httpd, self._thread = start_http_server(port, addr=host, registry=REGISTRY)
        except OSError as exc:
            raise OSError(
                f"could not serve metrics on {_address(host, port)}: {exc.strerror or exc}; "
                "choose another metrics port (--metrics-port), or 0 for a free one"
            ) from exc
        self.host = host
        self.port: int = self._httpd.server_port

    @property
    def url(self) -> str:
        return f"http://{_address(self.host, self.port)}/metrics"

    def close(self) -> None:
        """Stop answering and free the port. Safe to call more than once."""
        if self._thread.is_alive():
            self._httpd.shutdown()
            self._thread.join()
        self._httpd.server_close()

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def start_metrics_server(port: int, host: str = "127.0.0.1") -> MetricsServer:
    """Serve the registry at http://HOST:PORT/metrics (port 0 picks a free one: see `.port`).
    Raises OSError, saying what to do, when the port cannot be bound."""
    server = MetricsServer(port, host)
    log.info("metrics serving", extra={"url": server.url})
    return server


def check_port(port: int | None, flag: str = "--metrics-port") -> None:
    """ValueError for a metrics port outside 0-65535 (None: no metrics port)."""
    if port is not None and not 0 <= port <= 65535:
        raise ValueError(f"{flag} must be 0-65535 (0 picks a free port), got {port}")
