"""The shared Ray cluster of the fleet tests: a head and one more node, each a real raylet, every
process on 127.0.0.1, with a Ray client server on the head so that `ray://127.0.0.1:PORT` works.

    def test_x(ray_cluster: LocalCluster) -> None:      # the driver (this process) is connected
        ray_cluster.client_address                        # "ray://127.0.0.1:PORT" (Ray client)
        ray_cluster.fleet_address("f1")                   # "ray://127.0.0.1:PORT/f1" (EnvClient, --server)
        ray_cluster.gcs_address                           # "127.0.0.1:PORT" (--address, ray.init)
        ray_cluster.head_node_id, ray_cluster.worker_node_id
        ray_cluster.kill_worker()                         # the second node dies abruptly (raylet, its workers)
        ray_cluster.add_worker()                          # a fresh second node

One cluster for the whole session (it takes ~8 s to start here): `ray_cluster` makes sure it has its
two nodes again before each test module that asks for it, so a module that killed the worker node
leaves a whole cluster to the next. Tests must remove what they start (`fleet down`): the fixture
does not reset actors.

Why ray.cluster_utils.Cluster rather than `ray start`: with RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 it
keeps both nodes on 127.0.0.1 (measured with Ray 2.60: `ray start --node-ip-address 127.0.0.1`
still resolves the machine's own address) and it can kill a node abruptly.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

# Read by Ray when it is imported (ray._private.utils): keep every node of the test cluster on 127.0.0.1.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
ray = pytest.importorskip("ray", reason="the fleet tests need Ray: pip install 'agentgym[ray]'")

LOOPBACK = "127.0.0.1"
NODE_CPUS = 2  # logical CPUs per node: room for a few 0.5-CPU replicas each (tests set cpus per replica)

# A node that dies is declared dead by the GCS after failure_threshold missed checks: ~2 s here
# instead of Ray's default ~15 s, so that the replica restarts elsewhere within a test's budget.
SYSTEM_CONFIG: dict[str, Any] = {
    "health_check_initial_delay_ms": 1000,
    "health_check_period_ms": 500,
    "health_check_timeout_ms": 500,
    "health_check_failure_threshold": 4,
    # Each worker process costs ~1 s of a core to start: none before an actor asks for one.
    "prestart_worker_first_driver": False,
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


@dataclass
class LocalCluster:
    cluster: Any  # ray.cluster_utils.Cluster
    client_port: int
    worker: Any  # ray._private.node.Node of the second node, or None once killed

    @property
    def gcs_address(self) -> str:
        return str(self.cluster.address)

    @property
    def client_address(self) -> str:
        return f"ray://{LOOPBACK}:{self.client_port}"

    def fleet_address(self, fleet: str) -> str:
        return f"{self.client_address}/{fleet}"

    @property
    def head_node_id(self) -> str:
        return str(self.cluster.head_node.node_id)

    @property
    def worker_node_id(self) -> str:
        assert self.worker is not None, "the worker node was killed: call add_worker()"
        return str(self.worker.node_id)

    def alive_node_ids(self) -> set[str]:
        return {n["NodeID"] for n in ray.nodes() if n["Alive"]}

    def kill_worker(self) -> str:
        """Kill the second node abruptly (its raylet and every worker process on it); its id."""
        node, self.worker = self.worker, None
        assert node is not None
        node_id = str(node.node_id)
        self.cluster.remove_node(node, allow_graceful=False)
        return node_id

    def add_worker(self) -> str:
        self.worker = self.cluster.add_node(num_cpus=NODE_CPUS, node_ip_address=LOOPBACK)
        self.cluster.wait_for_nodes()
        return self.worker_node_id

    def ensure_two_nodes(self) -> None:
        if self.worker is None:
            self.add_worker()
        # The GCS may still count a killed node as alive for a moment: wait until it agrees.
        deadline = time.monotonic() + 30
        while len(self.alive_node_ids()) != 2 and time.monotonic() < deadline:
            time.sleep(0.2)


def _start_cluster() -> LocalCluster:
    from ray.cluster_utils import Cluster

    port = free_port()
    cluster = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": NODE_CPUS,
            "node_ip_address": LOOPBACK,
            "include_dashboard": False,
            "ray_client_server_port": port,
            "_system_config": SYSTEM_CONFIG,
        },
    )
    local = LocalCluster(cluster, port, None)
    try:
        local.add_worker()
    except BaseException:
        cluster.shutdown()
        raise
    return local


@pytest.fixture(scope="session")
def _session_cluster() -> Iterator[LocalCluster]:
    # A raylet must register within Ray's fixed 30 s: on a machine busy with other work one start in
    # a few misses it, and a second try is cheaper than a failed session.
    for attempt in range(3):
        try:
            local = _start_cluster()
            break
        except Exception:
            if attempt == 2:
                raise
    try:
        ray.init(address=local.cluster.address, namespace="agentgym", log_to_driver=False)
        yield local
    finally:
        ray.shutdown()
        local.cluster.shutdown()


@pytest.fixture(scope="module")
def ray_cluster(_session_cluster: LocalCluster) -> LocalCluster:
    """The session's two-node 127.0.0.1 cluster, whole again (both nodes alive) for this module."""
    _session_cluster.ensure_two_nodes()
    return _session_cluster
