"""`agentgym conformance HOST:PORT`: run the protocol checks against any EnvService server."""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.table import Table

from agentgym.client.cli.common import add_client_security_args, client_security
from agentgym.client.conformance import run_suite


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("conformance", help="check a server against the contract", description=__doc__)
    p.add_argument("address", help="HOST:PORT (grpcs://HOST:PORT: TLS) of the server under test")
    p.add_argument("--only", action="append", help="run only checks whose name contains this (repeatable)")
    add_client_security_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    results = run_suite(args.address, set(args.only) if args.only else None, client_security(args))
    table = Table(title=f"Conformance of {args.address}")
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
