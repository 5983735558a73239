"""`python -m agentgym.envs.webarena.sites`: run the built-in sites (start_sites runs this as its child).

With --child, the first line on stdout is JSON ({"urls": ..., "accounts": ...}) and the process exits
when its parent does. Without it, the URLs are printed for a person (`agentgym webarena sites` is the
friendlier front end).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys

from agentgym.envs.webarena.sites import add_arguments, ports_of
from agentgym.envs.webarena.sites.server import ACCOUNTS, Running, serve


def _announce_child(running: Running) -> None:
    sys.stdout.write(json.dumps({"urls": running.urls, "accounts": ACCOUNTS}) + "\n")
    sys.stdout.flush()
    # Nothing else goes to stdout: the parent stops reading it, and a full pipe would block us.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agentgym.envs.webarena.sites", description=__doc__)
    add_arguments(parser)
    parser.add_argument(
        "--child", action="store_true", help="report on stdout as JSON and exit with the parent"
    )
    args = parser.parse_args(argv)

    def announce(running: Running) -> None:
        for name, url in running.urls.items():
            print(f"{name}: {url}", flush=True)

    asyncio.run(
        serve(args.host, ports_of(args), args.seed, _announce_child if args.child else announce, args.child)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
