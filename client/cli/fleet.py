"""`agentgym fleet up|status|down`: env servers as Ray actors on a Ray cluster, found by clients through
the fleet's controller (`--server ray://HOST:PORT/FLEET`; docs/fleet.md).

    agentgym fleet up --envs maze,wordle --min-replicas 2          # a local Ray head, started here
    agentgym fleet up --address ray://head:10001 --config fleet.toml
    agentgym fleet status
    agentgym fleet down
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from agentgym.client.cli.serve import parse_env_settings
from agentgym.core.fleet import DEFAULT_CLIENT_PORT, DEFAULT_FLEET, NAMESPACE, RAY_MISSING, check_fleet_name

_GCS_ADDRESS = re.compile(r"^(\[[^\]]+\]|[^:/\s]+):(\d{1,5})$")
LOCAL_HOST = "127.0.0.1"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("fleet", help="env servers as Ray actors on a Ray cluster", description=__doc__)
    verbs = p.add_subparsers(dest="verb", required=True, metavar="VERB")

    up = verbs.add_parser("up", help="start a fleet; returns once its minimum replicas serve")
    _common(up)
    up.add_argument(
        "--config", help="TOML or YAML file: a [fleet] table and a [server] table (flags override it)"
    )
    up.add_argument("--envs", help="comma-separated envs to host, one replica set each")
    up.add_argument("--min-replicas", type=int, help="replicas per env at the least (default 1)")
    up.add_argument("--max-replicas", type=int, help="replicas per env at the most (default 4)")
    up.add_argument(
        "--episodes-per-replica",
        type=int,
        help="live episodes one replica takes (default 1000; 16 for envs that declare memory per episode)",
    )
    up.add_argument("--replica-cpus", type=float, help="Ray CPUs asked per replica (default 1)")
    up.add_argument(
        "--target-utilisation",
        type=float,
        help="add a replica when live episodes pass this share of capacity (default 0.8)",
    )
    up.add_argument(
        "--cooldown-s", type=float, help="remove a replica only after load stayed low this long (default 60)"
    )
    up.add_argument(
        "--env-setting",
        action="append",
        default=[],
        metavar="ENV.KEY=VALUE",
        help="setting passed to an env's configure() in every replica (repeatable)",
    )
    up.add_argument(
        "--timeout", type=float, default=300.0, help="seconds to wait for the minimum replicas (default 300)"
    )
    up.add_argument(
        "--client-port",
        type=int,
        default=DEFAULT_CLIENT_PORT,
        help=f"the Ray client server port to print in the fleet's address (default {DEFAULT_CLIENT_PORT}; "
        "the local head started here listens on it)",
    )
    up.set_defaults(func=run_up)

    st = verbs.add_parser("status", help="replicas, their nodes, load and health; desired/actual per env")
    _common(st)
    st.add_argument("--json", action="store_true", help="print the controller's status as JSON")
    st.set_defaults(func=run_status)

    down = verbs.add_parser("down", help="drain and remove every replica, then the controller")
    _common(down)
    down.add_argument(
        "--grace", type=float, default=30.0, help="seconds live episodes get to finish (default 30)"
    )
    down.set_defaults(func=run_down)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--address",
        help="the Ray cluster: auto, ray://HOST:PORT (Ray client) or HOST:PORT (its GCS). Default: "
        "$RAY_ADDRESS, else the local head `fleet up` started, else (up) a new local head on 127.0.0.1",
    )
    p.add_argument("--name", default=DEFAULT_FLEET, help=f"the fleet's name (default {DEFAULT_FLEET})")


# --- configuration -------------------------------------------------------------------------------
def fleet_config(args: argparse.Namespace) -> Any:
    """The FleetConfig from --config and the flags (a flag applies to every env, over the file)."""
    from agentgym.server.fleet.config import FleetConfig

    config = FleetConfig.from_file(args.config) if args.config else FleetConfig()
    config.name = args.name if args.name != DEFAULT_FLEET or not args.config else config.name
    if args.envs:
        config.set_envs([e.strip() for e in args.envs.split(",") if e.strip()])
    for flag, attr in (
        ("min_replicas", "min_replicas"),
        ("max_replicas", "max_replicas"),
        ("episodes_per_replica", "episodes_per_replica"),
        ("replica_cpus", "cpus"),
    ):
        value = getattr(args, flag)
        if value is None:
            continue
        if hasattr(config, attr):
            setattr(config, attr, value)
        for env in config.envs.values():
            setattr(env, attr, value if attr == "cpus" else None)
    for flag in ("target_utilisation", "cooldown_s"):
        if (value := getattr(args, flag)) is not None:
            setattr(config, flag, value)
    server = config.server
    for env, settings in parse_env_settings(args.env_setting).items():
        server.setdefault("env_settings", {}).setdefault(env, {}).update(settings)
    config.validate()
    return config


def check_address(address: str) -> str:
    """auto, ray://HOST:PORT or HOST:PORT; ValueError otherwise."""
    if address == "auto" or _GCS_ADDRESS.match(address):
        return address
    if address.startswith("ray://") and _GCS_ADDRESS.match(address.removeprefix("ray://").rstrip("/")):
        return address.rstrip("/")
    raise ValueError(
        f"bad --address {address!r}: expected auto, ray://HOST:PORT (Ray client) or HOST:PORT (the cluster's GCS)"
    )


# --- the local head `fleet up` starts when given no cluster ------------------------------------------
def _state_file(name: str) -> Path:
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return Path(tempfile.gettempdir()) / f"agentgym-fleet-{uid}" / f"{name}.json"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((LOCAL_HOST, 0))
        return int(s.getsockname()[1])


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((LOCAL_HOST, port)) == 0


def start_local_head(name: str, client_port: int, timeout_s: float = 120.0) -> dict[str, Any]:
    """`ray start --head --block` in the background, every process on 127.0.0.1, with a Ray client
    server; recorded so that `fleet down` stops it. Its address: ray://127.0.0.1:client_port."""
    if _port_open(client_port):
        raise SystemExit(
            f"agentgym fleet up: port {client_port} on {LOCAL_HOST} is taken (another Ray head?): pass "
            f"--address ray://{LOCAL_HOST}:{client_port} to use it, or --client-port N for a new head"
        )
    gcs_port = _free_port()
    ray_bin = Path(sys.executable).with_name("ray")
    cmd = [
        str(ray_bin) if ray_bin.exists() else "ray",
        "start",
        "--head",
        "--block",
        "--node-ip-address",
        LOCAL_HOST,
        "--port",
        str(gcs_port),
        "--ray-client-server-port",
        str(client_port),
        "--include-dashboard",
        "false",
        "--disable-usage-stats",
    ]
    state = _state_file(name)
    state.parent.mkdir(parents=True, exist_ok=True)
    log_path = state.with_suffix(".log")
    # A single-machine head: Ray's local mode keeps every address on 127.0.0.1 with this.
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    deadline = time.monotonic() + timeout_s
    while not _port_open(client_port):
        if proc.poll() is not None or time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            raise SystemExit(f"agentgym fleet up: the local Ray head did not start; see {log_path}")
        time.sleep(0.2)
    info = {"pid": proc.pid, "gcs_address": f"{LOCAL_HOST}:{gcs_port}", "client_port": client_port}
    state.write_text(json.dumps(info))
    return info


def stop_local_head(name: str) -> bool:
    """Stop the head `fleet up --name NAME` started, if any (SIGTERM: `ray start --block` then stops
    every process of its node)."""
    state = _state_file(name)
    try:
        info = json.loads(state.read_text())
    except (OSError, ValueError):
        return False
    pgid = int(info["pid"])
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGTERM)
        # Ray's SIGTERM handler drains the node for up to 30 s before stopping its processes.
        deadline = time.monotonic() + 45
        while time.monotonic() < deadline:
            os.killpg(pgid, 0)
            time.sleep(0.2)
        os.killpg(pgid, signal.SIGKILL)
    state.unlink(missing_ok=True)
    return True


def _local_head(name: str) -> dict[str, Any] | None:
    try:
        info: dict[str, Any] = json.loads(_state_file(name).read_text())
    except (OSError, ValueError):
        return None
    return info if _port_open(int(info["client_port"])) else None


def _resolve_address(args: argparse.Namespace) -> str | None:
    """The cluster to connect to; None: none given (up starts a local head)."""
    if args.address:
        return check_address(args.address)
    if os.environ.get("RAY_ADDRESS"):
        return check_address(os.environ["RAY_ADDRESS"])
    head = _local_head(args.name)
    return f"ray://{LOCAL_HOST}:{head['client_port']}" if head else None


_CONNECTED_HERE = False  # whether this process's Ray connection was made by this command


def _connect(address: str) -> Any:
    """Ray, connected to the cluster at `address`; a connection the process already has (a test, a
    notebook, a Ray task) is used as it is."""
    global _CONNECTED_HERE
    try:
        import ray
    except ImportError:
        raise SystemExit(f"agentgym fleet: {RAY_MISSING}") from None
    if address != "auto":
        # ray.init retries an unreachable GCS for minutes: say so at once instead.
        host, _, port = address.removeprefix("ray://").rpartition(":")
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
        except OSError as exc:
            raise SystemExit(f"agentgym fleet: cannot reach the Ray cluster at {address}: {exc}") from None
    if ray.is_initialized():
        current = ray.get_runtime_context().gcs_address
        if address not in ("auto", current) and not address.startswith("ray://"):
            raise SystemExit(
                f"agentgym fleet: this process is already connected to the Ray cluster at {current}"
            )
        return ray
    try:
        ray.init(address=address, namespace=NAMESPACE, log_to_driver=False, logging_level="warning")
    except (ConnectionError, TimeoutError, RuntimeError, ValueError) as exc:
        raise SystemExit(f"agentgym fleet: cannot reach the Ray cluster at {address}: {exc}") from None
    _CONNECTED_HERE = True
    return ray


def _already_connected() -> bool:
    import ray

    return bool(ray.is_initialized())


def _disconnect(ray: Any) -> None:
    global _CONNECTED_HERE
    if _CONNECTED_HERE:
        ray.shutdown()
        _CONNECTED_HERE = False


def _client_address(address: str, name: str, client_port: int) -> str:
    """The `ray://HOST:PORT/FLEET` address clients use."""
    if address.startswith("ray://"):
        return f"{address}/{name}"
    import ray

    gcs = ray.get_runtime_context().gcs_address
    host = gcs.rsplit(":", 1)[0]
    return f"ray://{host}:{client_port}/{name}"


def _require_ray() -> None:
    try:
        import ray  # noqa: F401
    except ImportError:
        raise SystemExit(f"agentgym fleet: {RAY_MISSING}") from None


# --- the verbs -----------------------------------------------------------------------------------
def run_up(args: argparse.Namespace) -> int:
    _require_ray()
    try:
        check_fleet_name(args.name)
        config = fleet_config(args)
        address = _resolve_address(args)
    except ValueError as exc:
        raise SystemExit(f"agentgym fleet up: {exc}") from None
    console = Console()
    started_head = False
    if address is None and not _already_connected():
        console.print(f"starting a local Ray head on {LOCAL_HOST} (client port {args.client_port})")
        start_local_head(config.name, args.client_port)
        address, started_head = f"ray://{LOCAL_HOST}:{args.client_port}", True
    ray = _connect(address or "auto")
    from agentgym.server.fleet.controller import ControllerActor, controller_options

    try:
        with contextlib.suppress(ValueError):
            ray.get_actor(config.name, namespace=NAMESPACE)
            raise SystemExit(
                f"agentgym fleet up: fleet {config.name!r} is already up on this cluster "
                f"(agentgym fleet status --name {config.name}; agentgym fleet down --name {config.name})"
            )
        controller = ControllerActor.options(**controller_options(config.name)).remote(config)
        ready = ray.get(controller.wait_ready.remote(args.timeout))
        if not ready["ready"]:
            with contextlib.suppress(Exception):
                ray.get(controller.shutdown.remote(0.0), timeout=60)
            ray.kill(controller)
            raise SystemExit(f"agentgym fleet up: {ready['error']}")
        status = ray.get(controller.status.remote())
        fleet_address = _client_address(address, config.name, args.client_port)
    except SystemExit:
        _disconnect(ray)
        if started_head:
            stop_local_head(config.name)
        raise
    _disconnect(ray)
    print_status(console, status)
    console.print(f"fleet {config.name} is up; clients: --server {fleet_address}")
    print(fleet_address, flush=True)  # the last line: what scripts read
    return 0


def _controller(args: argparse.Namespace, verb: str) -> tuple[Any, Any]:
    _require_ray()
    try:
        check_fleet_name(args.name)
        address = _resolve_address(args) or "auto"
    except ValueError as exc:
        raise SystemExit(f"agentgym fleet {verb}: {exc}") from None
    ray = _connect(address)
    from agentgym.server.fleet.controller import connected_controller

    try:
        return ray, connected_controller(args.name)
    except ValueError as exc:
        _disconnect(ray)
        raise SystemExit(f"agentgym fleet {verb}: {exc}") from None


def run_status(args: argparse.Namespace) -> int:
    ray, controller = _controller(args, "status")
    try:
        status = ray.get(controller.status.remote(), timeout=30)
    finally:
        _disconnect(ray)
    if args.json:
        print(json.dumps(status, indent=2))
    else:
        print_status(Console(), status)
    return 0


def run_down(args: argparse.Namespace) -> int:
    ray, controller = _controller(args, "down")
    try:
        result = ray.get(controller.shutdown.remote(args.grace), timeout=args.grace + 120)
        ray.kill(controller)
    finally:
        _disconnect(ray)
    cut = f", {result['episodes_cut']} live episodes cut short" if result["episodes_cut"] else ""
    Console().print(f"fleet {args.name} is down: {result['replicas']} replicas removed{cut}")
    if stop_local_head(args.name):
        Console().print("stopped the local Ray head it ran on")
    return 0


def print_status(console: Console, status: dict[str, Any]) -> None:
    table = Table(title=f"fleet {status['fleet']} (routing version {status['version']})")
    for col in ("replica", "node", "address", "envs", "live/capacity", "health", "restarts"):
        table.add_column(col, no_wrap=col != "health", overflow="fold" if col == "health" else "ellipsis")
    for r in status["replicas"]:
        health = "draining" if r["draining"] else ("healthy" if r["healthy"] else f"down: {r['note']}")
        table.add_row(
            r["id"],
            r["node_id"][:8] or "-",
            r["address"] or "-",
            r["env"],
            f"{r['live']}/{r['capacity']}",
            health,
            str(r["restarts"]),
        )
    console.print(table)
    envs = Table(title="per env")
    for col in ("env", "desired", "actual", "healthy", "live/capacity", "min-max", "per replica", "error"):
        envs.add_column(col, overflow="fold")
    for env, e in status["envs"].items():
        mem = f", {e['memory_mb']} MB" if e["memory_mb"] else ""
        envs.add_row(
            env,
            str(e["desired"]),
            str(e["actual"]),
            str(e["healthy"]),
            f"{e['live']}/{e['capacity']}",
            f"{e['min']}-{e['max']}",
            f"{e['episodes_per_replica']} episodes, {e['cpus']:g} cpu{mem}",
            e["error"] or "",
        )
    console.print(envs)
