"""The `agentgym` command: one entry point, one module per subcommand.

Each subcommand module defines `register(subparsers)`, which adds its parser and sets
`func(args) -> int` as the handler.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from agentgym.core.logs import configure_logging

SUBCOMMANDS = [
    "serve",
    "envs",
    "play",
    "conformance",
    "eval",
    "rollout",
    "policy",
    "trainer",
    "train",
    "view",
    "export",
    "fleet",
    "webarena",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="agentgym", description="The environment fabric for training LLM agents."
    )
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    parser.add_argument(
        "--log-format", default=None, choices=["json", "text"], help="default: json (env AGENTGYM_LOG_FORMAT)"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(f"agentgym.client.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.log_level, args.log_format)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
