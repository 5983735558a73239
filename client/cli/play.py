"""`agentgym play ENV --task N`: play an episode yourself in the terminal.

Type an action and press Enter. Commands: `:expert` shows the expert's move, `:observe` repeats
the last observation, `:reset N` starts task N, `:quit` ends. Without --server, play uses a
server at 127.0.0.1:50051 if one hosts the env, else starts one inside this process.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from rich.console import Console
from rich.markup import escape

from agentgym.client.cli.common import DEFAULT_SERVER, add_client_security_args, client_security, connect
from agentgym.client.envclient import Episode
from agentgym.client.errors import AgentGymError
from agentgym.client.types import StepResult


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "play",
        help="play an episode in the terminal",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("env", help="env name, e.g. maze")
    p.add_argument("--task", type=int, default=0, help="task id (default 0)")
    p.add_argument("--seed", type=int, default=None, help="seed (default: the env's default for the task)")
    p.add_argument(
        "--server",
        default=None,
        help=f"HOST:PORT or a fleet ray://HOST:PORT/FLEET (default {DEFAULT_SERVER}, else an embedded server)",
    )
    p.add_argument("--max-steps", type=int, default=0, help="step limit (default: the env's max rounds)")
    add_client_security_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    return asyncio.run(_play(args))


def _show(console: Console, result: StepResult) -> None:
    console.print(result.observation, markup=False, highlight=False)
    status = f"step {result.step_index}  reward {result.reward:g}  score {result.score:g}"
    if result.available_actions:
        status += "  actions: " + ", ".join(result.available_actions[:12])
    console.print(f"[dim]{status}[/dim]")


async def _play(args: argparse.Namespace) -> int:
    console = Console()
    try:
        async with connect(args.server, [args.env], console, client_security(args)) as client:
            async with client.episode(args.env, args.task, seed=args.seed, max_steps=args.max_steps) as ep:
                console.rule(f"{args.env} task {ep.task_id} (episode {ep.episode_id})")
                console.print(ep.instruction, markup=False, highlight=False)
                console.rule()
                _show(console, ep.initial)
                return await _loop(console, ep)
    except AgentGymError as exc:
        console.print(f"[red]{escape(str(exc))}[/red]")
        return 1


async def _loop(console: Console, ep: Episode) -> int:
    while True:
        try:
            line = (await asyncio.to_thread(input, "> ")).strip()
        except EOFError:
            return 0
        if not line:
            continue
        try:
            if line in (":quit", ":q"):
                return 0
            if line == ":help":
                console.print(__doc__)
            elif line == ":expert":
                console.print(f"expert: {await ep.expert()}")
            elif line == ":observe":
                _show(console, await ep.observe())
            elif line.startswith(":reset"):
                parts = line.split()
                task = int(parts[1]) if len(parts) > 1 else ep.task_id
                _show(console, await ep.reset(task))
            else:
                result = await ep.step(line)
                _show(console, result)
                if result.over:
                    verdict = "[green]solved[/green]" if result.success else "[red]not solved[/red]"
                    how = "done" if result.done else "out of steps"
                    console.print(
                        f"Episode over ({how}): {verdict}, score {result.score:g}. :reset N for another task, :quit to leave."
                    )
        except AgentGymError as exc:
            console.print(f"[yellow]{exc.message}[/yellow]")
            if exc.ends_episode:
                return 1
        except ValueError:
            console.print("[yellow]usage: :reset TASK_ID[/yellow]")


if __name__ == "__main__":
    sys.exit(run(argparse.Namespace()))
