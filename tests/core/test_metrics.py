"""core/metrics.py: the exposition server over real HTTP, gauges read at scrape time, queue waits.

`scrape` and `Scrape` are shared by the metrics tests of the servers and the rollout client.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from agentgym.core import metrics


class Scrape:
    """One scrape of /metrics: `s(name, **labels)` is a sample's value (0 when absent)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.values: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                self.values[(sample.name, frozenset(sample.labels.items()))] = sample.value

    def __call__(self, name: str, **labels: str) -> float:
        return self.values.get((name, frozenset(labels.items())), 0.0)

    def has(self, name: str, **labels: str) -> bool:
        return (name, frozenset(labels.items())) in self.values

    def minus(self, before: Scrape, name: str, **labels: str) -> float:
        """How much a sample moved since `before`."""
        return self(name, **labels) - before(name, **labels)


def scrape(port: int, host: str = "127.0.0.1") -> Scrape:
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=10) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain")
        return Scrape(r.read().decode())


async def ascrape(port: int, host: str = "127.0.0.1") -> Scrape:
    """`scrape` off the event loop (the exposition thread answers either way; the loop stays free)."""
    return await asyncio.to_thread(scrape, port, host)


def test_the_exposition_serves_every_metric_and_frees_its_port() -> None:
    server = metrics.start_metrics_server(0, "127.0.0.1")
    try:
        assert server.url == f"http://127.0.0.1:{server.port}/metrics"
        s = scrape(server.port)
        # Every family is declared (HELP and TYPE) even before it has a sample.
        for name in ("agentgym_live_episodes", "agentgym_creates_total", "agentgym_step_seconds",
                     "agentgym_ingest_trajectories_total", "agentgym_policy_requests_total", "agentgym_rollout_episodes_total"):  # fmt: skip
            assert f"# HELP {name} " in s.text and f"# TYPE {name} " in s.text, name
        assert s.has("process_cpu_seconds_total")  # the process collector of the default registry
        before = s("agentgym_rollout_retries_total", env="metrics-test")
        metrics.ROLLOUT_RETRIES.labels("metrics-test").inc(3)
        assert scrape(server.port)("agentgym_rollout_retries_total", env="metrics-test") == before + 3
    finally:
        server.close()
    server.close()  # twice is harmless
    with pytest.raises(urllib.error.URLError):
        scrape(server.port)
    # The port is free again: another server can take it.
    metrics.start_metrics_server(server.port, "127.0.0.1").close()


def test_a_port_in_use_is_refused_with_what_to_do() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(
            OSError, match=rf"could not serve metrics on 127\.0\.0\.1:{port}: .*--metrics-port"
        ):
            metrics.start_metrics_server(port, "127.0.0.1")


def test_check_port() -> None:
    for ok in (None, 0, 9100, 65535):
        metrics.check_port(ok)
    for bad in (-1, 65536):
        with pytest.raises(ValueError, match=r"--metrics-port must be 0-65535 \(0 picks a free port\)"):
            metrics.check_port(bad)


def test_scraped_gauges_follow_their_source_and_a_failing_source_is_skipped() -> None:
    state = {"n": 1.0}

    def source() -> list[metrics.Sample]:
        return [
            metrics.Sample("agentgym_test_things", "Test gauge.", state["n"], (("kind", "a"),)),
            metrics.Sample("agentgym_test_things", "Test gauge.", 7, (("kind", "b"),)),
        ]

    def broken() -> list[metrics.Sample]:
        raise RuntimeError("this source is broken")

    with metrics.start_metrics_server(0) as server:
        stop, stop_broken = metrics.add_scraped(source), metrics.add_scraped(broken)
        try:
            s = scrape(server.port)
            assert (s("agentgym_test_things", kind="a"), s("agentgym_test_things", kind="b")) == (1.0, 7.0)
            state["n"] = 5
            assert scrape(server.port)("agentgym_test_things", kind="a") == 5
            assert scrape(server.port).has("process_cpu_seconds_total")  # the rest is still served
        finally:
            stop()
            stop_broken()
        assert not scrape(server.port).has("agentgym_test_things", kind="a")


def test_queued_measures_the_wait_for_a_thread() -> None:
    def sample(suffix: str, **labels: str) -> float:
        name = f"agentgym_thread_queue_seconds_{suffix}"
        return REGISTRY.get_sample_value(name, {"env": "queue-test", **labels}) or 0.0

    release = threading.Event()
    with ThreadPoolExecutor(1) as pool:
        pool.submit(release.wait)  # the only thread is busy...
        waited = pool.submit(metrics.queued(lambda x: x * 2, "queue-test"), 21)
        time.sleep(0.3)
        release.set()  # ...until now
        assert waited.result(5) == 42
        pool.submit(metrics.queued(lambda: None, "queue-test")).result(5)
    assert sample("count") == 2
    assert sample("sum") >= 0.3
    assert sample("bucket", le="0.25") == 1  # the second call found the thread free
