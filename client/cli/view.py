"""`agentgym view`: browse runs, episodes and training curves in a local web page.

    agentgym view runs/                       # every eval, rollout, trainer store and job under runs/
    agentgym view runs/eval-a runs/eval-b     # two evaluations, to compare
    agentgym view grpc://127.0.0.1:50060      # a running trainer's store
    agentgym view runs/ --tokenizer runs/bc/final   # show token texts beside their logprobs

Paths may be eval or rollout output folders (results.json, trajectories.jsonl), AgentTraj files
(.json or .jsonl), trainer folders (store/ and jobs/), trainer job folders, or `agentgym train bc`
folders; folders are searched a few levels deep. Runs in progress update in the open page.

The page is read-only and served on 127.0.0.1 by default. It has no authentication: another
address needs --insecure, and then anyone who reaches the port reads every trajectory.
"""

from __future__ import annotations

import argparse
import os
import webbrowser

from rich.console import Console

DEFAULT_PORT = 8900


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "view",
        help="browse runs, episodes and training curves in a web page",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("paths", nargs="*", help="folders, files or grpc://HOST:PORT (default: runs/ or .)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    p.add_argument("--insecure", action="store_true", help="allow a non-loopback --host (no authentication)")
    p.add_argument("--tokenizer", help="a Hugging Face tokenizer folder, to show token texts")
    p.add_argument("--poll", type=float, default=1.0, help="seconds between checks for new data (default 1)")
    p.add_argument("--no-browser", action="store_true", help="do not open a browser")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from agentgym.client.view.server import is_loopback, serve
    from agentgym.client.view.sources import is_address

    console = Console(stderr=True)
    if not is_loopback(args.host) and not args.insecure:
        console.print(
            f"[red]--host {args.host} is not a loopback address: the viewer has no authentication, so "
            "anyone who reaches the port could read every trajectory. Add --insecure to do it anyway, "
            "or keep 127.0.0.1 and forward the port (ssh -L 8900:127.0.0.1:8900 HOST).[/red]"
        )
        return 2
    if args.poll <= 0:
        console.print("[red]--poll must be a positive number of seconds[/red]")
        return 2
    paths = args.paths or (["runs"] if os.path.isdir("runs") else ["."])
    missing = [p for p in paths if not os.path.exists(p) and not is_address(p)]
    if missing:
        console.print(f"[red]no such file or folder: {', '.join(missing)} (nor a grpc://HOST:PORT)[/red]")
        return 2
    if not args.no_browser and (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        webbrowser.open(f"http://{args.host}:{args.port}/", new=2)
    try:
        serve(paths, host=args.host, port=args.port, tokenizer=args.tokenizer, poll_s=args.poll)
    except OSError as exc:
        console.print(f"[red]cannot listen on {args.host}:{args.port}: {exc}[/red]")
        return 1
    return 0
