"""`agentgym serve`: host envs over gRPC (all built-in envs on 127.0.0.1:50051 by default)."""

from __future__ import annotations

import argparse
from dataclasses import fields

from agentgym.client.cli.common import add_server_security_args
from agentgym.server.config import ServerConfig


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run an env server", description=__doc__)
    d = ServerConfig()
    p.add_argument("--config", help="TOML or YAML file of server settings (flags override it)")
    p.add_argument("--host", help=f"address to bind (default {d.host})")
    p.add_argument("--port", type=int, help=f"port (default {d.port}; 0 picks a free one)")
    p.add_argument("--envs", help="comma-separated env names to host (default: every built-in env)")
    p.add_argument(
        "--max-episodes", type=int, help=f"live episodes across all envs (default {d.max_episodes})"
    )
    p.add_argument(
        "--max-episodes-per-env", type=int, help="live episodes per env (default: the global limit)"
    )
    p.add_argument(
        "--step-timeout",
        dest="step_timeout_s",
        type=float,
        help=f"seconds per step (default {d.step_timeout_s:g})",
    )
    p.add_argument(
        "--expert-timeout",
        dest="expert_timeout_s",
        type=float,
        help=f"seconds per expert call (default {d.expert_timeout_s:g})",
    )
    p.add_argument(
        "--reset-timeout",
        dest="reset_timeout_s",
        type=float,
        help=f"seconds per reset, the start of a task (default {d.reset_timeout_s:g})",
    )
    p.add_argument(
        "--idle-timeout",
        dest="idle_timeout_s",
        type=float,
        help=f"free episodes idle this long, 0 = never (default {d.idle_timeout_s:g})",
    )
    p.add_argument(
        "--max-message-bytes", type=int, help=f"largest gRPC message (default {d.max_message_bytes})"
    )
    p.add_argument("--max-action-bytes", type=int, help=f"largest action (default {d.max_action_bytes})")
    p.add_argument("--threads", type=int, help="threads for blocking envs and experts")
    p.add_argument("--workers", type=int, help="server processes sharing the port (default 1)")
    p.add_argument(
        "--grace",
        dest="grace_s",
        type=float,
        help=f"seconds live episodes get on shutdown (default {d.grace_s:g})",
    )
    p.add_argument(
        "--prewarm", type=int, help=f"worker processes started ahead for process envs (default {d.prewarm})"
    )
    p.add_argument(
        "--metrics-port",
        type=int,
        help="serve Prometheus metrics at http://HOST:N/metrics (0: a free port, logged); with --workers K, "
        "worker i serves its own on N+i (scrape them all; docs/metrics.md)",
    )
    p.add_argument(
        "--execution",
        action="append",
        default=[],
        metavar="ENV=MODE",
        help="run ENV inline, in a thread or in a worker process, overriding its default (repeatable)",
    )
    p.add_argument(
        "--env-setting",
        action="append",
        default=[],
        metavar="ENV.KEY=VALUE",
        help="setting passed to an env's configure(), e.g. alfworld.data_dir=/data/alfworld (repeatable)",
    )
    g = p.add_argument_group("compatibility profile (docs/compat.md)")
    g.add_argument(
        "--profile",
        choices=["agentgym"],
        help="serve every env with the original AgentGym's conversation openings, read from the files "
        "below (--env-setting ENV.profile= turns one env back to ours)",
    )
    g.add_argument(
        "--agentgym-source",
        metavar="DIR",
        help="your checkout of the original (github.com/WooooDyy/AgentGym), read without running it; "
        "it wins over --agenttraj where both have an env",
    )
    g.add_argument(
        "--agenttraj", metavar="FILE", help="your AgentTraj file (JSON or JSON Lines) or a folder of them"
    )
    add_server_security_args(p)
    p.set_defaults(func=run)


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    config = ServerConfig.from_file(args.config) if args.config else ServerConfig()
    for f in fields(ServerConfig):
        value = getattr(args, f.name, None)
        if value is None or f.name in ("envs", "env_settings", "execution"):
            continue
        setattr(config, f.name, value)
    if args.envs:
        config.envs = [e.strip() for e in args.envs.split(",") if e.strip()]
    for item in args.execution:
        env, sep, mode = item.partition("=")
        if not (sep and env and mode):
            raise SystemExit(f"--execution {item!r}: expected ENV=MODE")
        config.execution[env] = mode
    for env, settings in parse_env_settings(args.env_setting).items():
        config.env_settings.setdefault(env, {}).update(settings)
    config.validate()
    return config


def parse_env_settings(items: list[str]) -> dict[str, dict[str, str]]:
    """`--env-setting ENV.KEY=VALUE` flags (serve, fleet up) -> {env: {key: value}}."""
    out: dict[str, dict[str, str]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        env, dot, name = key.partition(".")
        if not (sep and dot and env and name):
            raise SystemExit(f"--env-setting {item!r}: expected ENV.KEY=VALUE")
        out.setdefault(env, {})[name] = value
    return out


def check_openings(config: ServerConfig) -> None:
    """Read every profiled env's opening now, so that a missing or unreadable one stops the start
    with a clear message rather than in a server (or worker) process. Cheap: parsed files are cached
    for the server's own configure in this process."""
    from agentgym.envs import compat, registry

    for name in config.envs if config.envs is not None else registry.names():
        settings = config.env_settings.get(name, {})
        if settings.get("profile") == compat.PROFILE:
            compat.opening(name, settings)


def run(args: argparse.Namespace) -> int:
    from agentgym.envs import registry
    from agentgym.server.app import serve

    try:
        config = config_from_args(args)
        for name in config.envs or []:
            registry.get(name)
        check_openings(config)
    except KeyError as exc:
        raise SystemExit(f"agentgym serve: {exc.args[0]}") from None
    except (ValueError, OSError) as exc:
        raise SystemExit(f"agentgym serve: {exc}") from None
    serve(config, log_config={"level": args.log_level, "fmt": args.log_format})
    return 0
