"""`agentgym conformance HOST:PORT`: run the protocol checks against any EnvService server.

Given a fleet, `ray://HOST:PORT/FLEET`, it checks every server the fleet lists, one after another."""

from __future__ import annotations

import argparse
import asyncio

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from agentgym.client.cli.common import add_client_security_args, client_security
from agentgym.client.conformance import CheckResult, run_suite
from agentgym.client.discovery import Discovery
from agentgym.client.errors import AgentGymError
from agentgym.core.fleet import is_fleet_address


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("conformance", help="check a server against the contract", description=__doc__)
    p.add_argument(
        "address",
        help="HOST:PORT (grpcs://HOST:PORT: TLS) of the server under test, or ray://HOST:PORT/FLEET: each of its servers",
    )
    p.add_argument("--only", action="append", help="run only checks whose name contains this (repeatable)")
    add_client_security_args(p)
    p.set_defaults(func=run)


async def _fleet_servers(address: str) -> list[str]:
    discovery = Discovery(address)
    table = await discovery.refresh()
    return [s["address"] for s in table["servers"]]


def run(args: argparse.Namespace) -> int:
    only = set(args.only) if args.only else None
    if not is_fleet_address(args.address):
        return _report(args.address, run_suite(args.address, only, client_security(args)))
    try:
        servers = asyncio.run(_fleet_servers(args.address))
    except (AgentGymError, ValueError) as exc:
        Console().print(f"[red]agentgym conformance: {escape(str(exc))}[/red]")
        return 2
    if not servers:
        Console().print(f"[red]agentgym conformance: fleet {args.address} lists no server[/red]")
        return 2
    return max(
        _report(f"{a} (fleet {args.address})", run_suite(a, only, client_security(args))) for a in servers
    )


def _report(address: str, results: list[CheckResult]) -> int:
    table = Table(title=f"Conformance of {address}")
    for col in ("check", "result", "seconds", "detail"):
        table.add_column(col, overflow="fold")
    style = {"PASS": "green", "FAIL": "red", "SKIP": "yellow"}
    for r in results:
        table.add_row(r.name, f"[{style[r.status]}]{r.status}[/]", f"{r.seconds:.2f}", r.detail)
    console = Console()
    console.print(table)
    counts = {s: sum(r.status == s for r in results) for s in ("PASS", "FAIL", "SKIP")}
    console.print(f"{counts['PASS']} passed, {counts['FAIL']} failed, {counts['SKIP']} skipped")
    return 1 if counts["FAIL"] else 0
