"""`agentgym envs`: what env servers host (or, with --local, what this installation provides)."""

from __future__ import annotations

import argparse
import asyncio

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from agentgym.client.cli.common import add_client_security_args, client_security
from agentgym.client.envclient import EnvClient
from agentgym.client.errors import AgentGymError
from agentgym.client.types import ServerStatus
from agentgym.core.security import ClientSecurity

DEFAULT_SERVER = "127.0.0.1:50051"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("envs", help="list the envs servers host", description=__doc__)
    p.add_argument(
        "--server",
        default=DEFAULT_SERVER,
        help=f"comma-separated HOST:PORT list, or a fleet ray://HOST:PORT/FLEET (default {DEFAULT_SERVER})",
    )
    p.add_argument("--local", action="store_true", help="list envs registered in this installation instead")
    add_client_security_args(p)
    p.set_defaults(func=run)


def _print_table(console: Console, title: str, columns: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    """Short columns on one line, splits wrapped; the description (last) only where the terminal is wide."""
    if console.width < 120:
        columns, rows = columns[:-1], [r[:-1] for r in rows]
    table = Table(title=title)
    for col in columns:
        wraps = col in ("splits", "description")
        table.add_column(col, no_wrap=not wraps, overflow="fold" if wraps else "ellipsis")
    for row in rows:
        table.add_row(*row)
    console.print(table)


def _splits(splits: dict[str, list[range]]) -> str:
    return ", ".join(f"{name} {sum(len(r) for r in rs)}" for name, rs in splits.items())


def run(args: argparse.Namespace) -> int:
    console = Console()
    if args.local:
        return _local(console)
    try:
        statuses = asyncio.run(_statuses(args.server, client_security(args)))
    except (AgentGymError, ValueError) as exc:
        console.print(f"[red]{escape(str(exc))}[/red]")
        return 1
    rows: list[tuple[str, ...]] = []
    failed = 0
    for status in statuses:
        if isinstance(status, AgentGymError):
            console.print(f"[red]{escape(str(status))}[/red]")
            failed += 1
            continue
        for info in status.envs.values():
            rows.append(
                (
                    info.name,
                    status.address,
                    str(info.task_count),
                    _splits(info.splits),
                    str(info.max_rounds),
                    "yes" if info.has_expert else "no",
                    f"{info.live_episodes} / {info.max_episodes}",
                    info.description,
                )
            )
    columns = ("env", "server", "tasks", "splits", "rounds", "expert", "live / max", "description")
    _print_table(console, "Hosted environments", columns, rows)
    for status in statuses:
        if isinstance(status, ServerStatus):
            console.print(
                f"{status.address}: {status.implementation}, {status.live_episodes}/{status.max_episodes} episodes live, "
                f"step timeout {status.step_timeout_s:g}s, idle timeout {status.idle_timeout_s:g}s"
                + (" [yellow](draining)[/yellow]" if status.draining else "")
            )
    return 1 if failed == len(statuses) else 0


async def _statuses(servers: str, security: ClientSecurity) -> list[ServerStatus | AgentGymError]:
    async with EnvClient(servers, connect_timeout_s=3.0, security=security) as client:
        return await client.refresh()


def _local(console: Console) -> int:
    from agentgym.envs import registry

    rows: list[tuple[str, ...]] = []
    for name in registry.names(include_hidden=True):
        cls = registry.configure(name)
        splits = {k: list(v) for k, v in cls.splits.items()}
        rows.append(
            (
                name + (" (hidden)" if cls.hidden else ""),
                str(cls.task_count),
                _splits(splits),
                str(cls.max_rounds),
                "yes" if cls.has_expert() else "no",
                cls.execution,
                cls.description,
            )
        )
    columns = ("env", "tasks", "splits", "rounds", "expert", "runs", "description")
    _print_table(console, "Registered environments (this installation)", columns, rows)
    for module, reason in registry.unavailable().items():
        console.print(f"[yellow]{module}: not available ({reason})[/yellow]")
    return 0
