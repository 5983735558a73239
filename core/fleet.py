"""What a fleet's server side (server/fleet/) and its clients (client/discovery.py) agree on, with no
Ray import: the actor namespace, the default fleet name, the shape of the routing table the controller
serves, and the parse of a fleet address.

    host, port, fleet = parse_fleet_address("ray://127.0.0.1:10001/agentgym")
    controller = ray.get_actor(fleet, namespace=NAMESPACE)
    table: RoutingTable = await controller.routing.remote()
    usable = [s for s in table["servers"] if accepts_new_episodes(s, "maze")]
"""

from __future__ import annotations

import re
from typing import NamedTuple, TypedDict

# Every fleet's actors (its controller and its env servers) live in this Ray namespace, so a client that
# connects with it finds them by name.
NAMESPACE = "agentgym"
DEFAULT_FLEET = "agentgym"
SCHEME = "ray://"
# Ray's client server default port (`ray start --head --ray-client-server-port`).
DEFAULT_CLIENT_PORT = 10001

RAY_MISSING = "Ray fleets need Ray: pip install 'agentgym[ray]'"


class EnvLoad(TypedDict):
    live: int  # episodes open on this server for this env
    capacity: int  # the most it takes for this env (its per-env limit, else the server's global one)


class ServerEntry(TypedDict):
    address: str  # "HOST:PORT" of the env server's gRPC port, on its node's address
    node_id: str  # Ray node id (hex) the server runs on
    envs: dict[str, EnvLoad]
    healthy: bool  # answered its last health check
    draining: bool  # being removed: its live episodes finish, it takes no new ones


class RoutingTable(TypedDict):
    fleet: str
    version: int  # bumps on every change of membership, health or draining (not on load alone)
    servers: list[ServerEntry]


class FleetAddress(NamedTuple):
    host: str
    port: int
    fleet: str

    @property
    def ray_address(self) -> str:
        """What `ray.init(address=...)` takes to reach this fleet's cluster through Ray client."""
        return f"{SCHEME}{self.host}:{self.port}"

    def __str__(self) -> str:
        return f"{SCHEME}{self.host}:{self.port}/{self.fleet}"


_ADDRESS = re.compile(r"^ray://(?P<host>\[[^\]]+\]|[^:/\[\]]+)(?::(?P<port>\d+))?(?:/(?P<fleet>[^/]*))?/?$")
_FLEET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def is_fleet_address(address: str) -> bool:
    return address.startswith(SCHEME)


def parse_fleet_address(address: str) -> FleetAddress:
    """`ray://HOST[:PORT][/FLEET]` -> (host, port, fleet); the port defaults to Ray client's 10001 and the
    fleet to DEFAULT_FLEET. ValueError with the expected form on anything else."""
    m = _ADDRESS.match(address.strip())
    if m is None:
        raise ValueError(
            f"bad fleet address {address!r}: expected ray://HOST:PORT/FLEET (e.g. ray://127.0.0.1:10001/agentgym)"
        )
    port = int(m["port"]) if m["port"] else DEFAULT_CLIENT_PORT
    if not 0 < port < 65536:
        raise ValueError(f"bad fleet address {address!r}: port {port} is out of range")
    fleet = m["fleet"] or DEFAULT_FLEET
    check_fleet_name(fleet)
    return FleetAddress(m["host"], port, fleet)


def check_fleet_name(name: str) -> str:
    if not _FLEET_NAME.match(name):
        raise ValueError(
            f"bad fleet name {name!r}: use letters, digits, '.', '_' or '-' (at most 64, starting with a letter or digit)"
        )
    return name


def accepts_new_episodes(server: ServerEntry, env: str) -> bool:
    """The one rule for where a new episode may go: a healthy server that is not draining and hosts the env.
    (Live streams stay where they are whatever this says.)"""
    return server["healthy"] and not server["draining"] and env in server["envs"]
