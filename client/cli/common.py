"""Options shared by the CLI's verbs: policy, tasks, servers, run limits (`agentgym rollout` and
`agentgym eval`, with --ray for Ray rollout workers), and the security flags of every server and
every client (docs/security.md).

Every verb's --server also takes a fleet, `ray://HOST:PORT/FLEET` (docs/fleet.md): EnvClient
resolves it to the fleet's servers (client/discovery.py); nothing here treats it specially."""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping

from rich.console import Console

from agentgym.client.envclient import EnvClient
from agentgym.client.errors import AgentGymError
from agentgym.client.policies import BACKENDS, Policy, Sampling, make_policy
from agentgym.client.react import EpisodeSpec
from agentgym.client.rollout import Rollout, RolloutConfig, RolloutSummary
from agentgym.client.tasks import expand, select_tasks, tasks_from_item_file
from agentgym.core.envinfo import EnvInfo
from agentgym.core.fleet import is_fleet_address, parse_fleet_address
from agentgym.core.metrics import check_port, start_metrics_server
from agentgym.core.security import (
    ENV_TLS_CA,
    ENV_TOKEN_FILE,
    ClientSecurity,
    SecurityError,
    ServerSecurity,
)

DEFAULT_SERVER = "127.0.0.1:50051"


def add_policy_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("policy")
    g.add_argument("--policy", choices=BACKENDS, default="expert", help="who acts (default expert)")
    g.add_argument(
        "--model",
        help="hf: model directory; sglang: tokenizer path (default: the server's); openai: model name",
    )
    g.add_argument(
        "--policy-url",
        help="sglang: http://HOST:PORT (comma-separated for several); openai: base URL ending in /v1",
    )
    g.add_argument(
        "--temperature", type=float, default=0.0, help="sampling temperature (0 = greedy, default)"
    )
    g.add_argument("--top-p", type=float, default=1.0)
    g.add_argument("--max-new-tokens", type=int, default=512, help="tokens per agent turn (default 512)")
    g.add_argument(
        "--max-context-tokens", type=int, default=None, help="end an episode whose prompt reaches this"
    )
    g.add_argument(
        "--api-key-env",
        default=None,
        help="environment variable holding the policy server's API key (openai: default OPENAI_API_KEY; "
        "sglang: default none, the token of --token-file)",
    )
    g.add_argument("--max-batch", type=int, default=32, help="hf: largest generation batch")
    g.add_argument("--seed", type=int, default=0, help="random policy and sampling seed")


def add_task_args(p: argparse.ArgumentParser, default_split: str) -> None:
    g = p.add_argument_group("tasks")
    g.add_argument("--envs", help="comma-separated envs (default: every env the servers host)")
    g.add_argument(
        "--tasks",
        action="append",
        default=[],
        metavar="[ENV=]SPEC",
        help="ids/ranges (0-99,150), split:NAME or all; ENV= limits it to one env (repeatable)",
    )
    g.add_argument(
        "--split",
        default=default_split,
        help=f"split used where --tasks says nothing (default {default_split})",
    )
    g.add_argument(
        "--max-tasks", type=int, default=None, help="at most this many tasks per env (the first ones)"
    )
    g.add_argument("--item-ids", help="play the item_ids of an AgentEval/AgentTraj file instead")
    g.add_argument(
        "--samples", type=int, default=1, help="episodes per task (distinct record ids), for exploration"
    )


def add_run_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("run")
    g.add_argument(
        "--server",
        default=None,
        help=f"env server(s) HOST:PORT,..., or a fleet ray://HOST:PORT/FLEET (default {DEFAULT_SERVER} if it "
        "answers, else an embedded one)",
    )
    g.add_argument("--concurrency", type=int, default=256, help="episodes at once (default 256)")
    g.add_argument("--episode-timeout", type=float, default=1800.0, help="seconds per episode (default 1800)")
    g.add_argument(
        "--retries", type=int, default=3, help="replays of an episode after transient transport errors"
    )
    g.add_argument(
        "--max-failures", type=int, default=None, help="stop the run after this many failed episodes"
    )
    g.add_argument(
        "--max-rounds", action="append", default=[], metavar="ENV=N", help="override an env's round limit"
    )
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    g.add_argument("--profile", choices=["agentgym"], default=None,
                   help="require every env played to be served under this compatibility profile, so that its "
                   "conversations open as the original's (docs/compat.md); refused otherwise")  # fmt: skip
    g.add_argument("--metrics-port", type=int, default=None,
                   help="serve the run's Prometheus metrics at http://HOST:N/metrics while it lasts (0: a free "
                   "port; docs/metrics.md)")  # fmt: skip
    g.add_argument("--metrics-host", default="127.0.0.1", help="address of --metrics-port (default 127.0.0.1)")  # fmt: skip
    add_client_security_args(p)


def add_client_security_args(p: argparse.ArgumentParser, *, prefix: str = "") -> None:
    """How a command checks servers and proves itself to them: the same flags on every verb that
    connects (`prefix` "client-" for a server's own outbound connections)."""
    g = p.add_argument_group(f"{'outbound ' if prefix else ''}security (docs/security.md)")
    g.add_argument(f"--{prefix}tls-ca", metavar="PEM", default=os.environ.get(ENV_TLS_CA) or None,
                   help=f"CA that signed the servers' certificates, for grpcs:// and https:// (default ${ENV_TLS_CA}, "
                   "else the system's roots)")  # fmt: skip
    g.add_argument(
        f"--{prefix}tls-cert", metavar="PEM", help="client certificate, for mutual TLS (with --tls-key)"
    )
    g.add_argument(f"--{prefix}tls-key", metavar="PEM", help="the client certificate's private key")
    g.add_argument(f"--{prefix}token-file", metavar="FILE", default=os.environ.get(ENV_TOKEN_FILE) or None,
                   help=f"bearer token to present (its first line; default ${ENV_TOKEN_FILE})")  # fmt: skip


def client_security(
    args: argparse.Namespace, *, prefix: str = "", token: str | None = None
) -> ClientSecurity:
    """The ClientSecurity of add_client_security_args' flags; exits with a clear message when a file
    is missing or flags do not go together."""
    p = prefix.replace("-", "_")
    try:
        return ClientSecurity(ca=getattr(args, f"{p}tls_ca", None), cert=getattr(args, f"{p}tls_cert", None),
                              key=getattr(args, f"{p}tls_key", None),
                              token_file=getattr(args, f"{p}token_file", None), token=token).check()  # fmt: skip
    except SecurityError as exc:
        raise SystemExit(f"agentgym: {exc}") from None


def add_server_security_args(p: argparse.ArgumentParser) -> None:
    """A server's TLS, bearer tokens and --insecure (defaults None, so a config file's values stand)."""
    g = p.add_argument_group("security (docs/security.md)")
    g.add_argument(
        "--tls-cert", metavar="PEM", help="serve TLS with this certificate (chain), with --tls-key"
    )
    g.add_argument("--tls-key", metavar="PEM", help="the certificate's private key")
    g.add_argument("--tls-client-ca", metavar="PEM",
                   help="mutual TLS: require client certificates signed by this CA")  # fmt: skip
    g.add_argument("--auth-token-file", metavar="FILE",
                   help="require a bearer token from this file (one a line, # comments; re-read when it changes)")  # fmt: skip
    g.add_argument("--insecure", action="store_true", default=None,
                   help="allow a non-loopback --host with neither TLS nor a token (refused otherwise)")  # fmt: skip


def server_security(args: argparse.Namespace) -> ServerSecurity:
    try:
        return ServerSecurity.from_flags(args.tls_cert, args.tls_key, args.tls_client_ca, args.auth_token_file,
                                         bool(args.insecure))  # fmt: skip
    except SecurityError as exc:
        raise SystemExit(f"agentgym: {exc}") from None


def add_ray_args(p: argparse.ArgumentParser) -> None:
    """--ray: play the episodes on Ray rollout-worker actors across the cluster (client/ray_rollout.py)."""
    g = p.add_argument_group("Ray rollout workers (docs/fleet.md; needs pip install 'agentgym[ray]')")
    g.add_argument("--ray", action="store_true",
                   help="spread the episodes over rollout-worker actors on the Ray cluster's nodes; results come "
                   "back here (one progress bar, one table, the same output)")  # fmt: skip
    g.add_argument("--ray-address", default=None,
                   help="the cluster: ray://HOST:PORT, a GCS HOST:PORT or auto (default: the fleet's, when "
                   "--server is ray://..., else auto)")  # fmt: skip
    g.add_argument("--ray-workers", type=int, default=None,
                   help="rollout-worker actors, spread over the nodes (default one per alive node); --concurrency "
                   "is per worker")  # fmt: skip
    g.add_argument("--ray-worker-cpus", type=float, default=0.0,
                   help="CPUs each worker reserves (default 0: workers wait on env and policy servers)")  # fmt: skip


def start_ray(args: argparse.Namespace) -> None:
    """With --ray: check the flags and join the cluster (blocking: before the event loop starts).
    AgentGymError (no Ray installed, no cluster there) and ValueError for the CLI to print."""
    if not args.ray:
        return
    if not args.server:
        raise ValueError(
            "--ray needs --server: a fleet (ray://HOST:PORT/FLEET) or env servers every node reaches (HOST:PORT,...)"
        )
    if args.ray_workers is not None and args.ray_workers < 1:
        raise ValueError(f"--ray-workers must be at least 1, got {args.ray_workers}")
    from agentgym.client.discovery import connect_ray

    connect_ray(ray_address(args))


async def play(
    args: argparse.Namespace,
    client: EnvClient,
    policy: Policy,
    specs: list[EpisodeSpec],
    sinks: list,  # type: ignore[type-arg]
) -> RolloutSummary:
    """Play `specs` with `policy` (policy_from_args) into `sinks`: here, or with --ray on Ray rollout
    workers (client/ray_rollout.py), each building its own policy from the same flags."""
    config = config_from_args(args)
    if args.ray:
        from agentgym.client.ray_rollout import RayRollout

        engine = RayRollout(client, policy, policy_spec(args), args.server, config, sinks,
                            workers=args.ray_workers, worker_cpus=args.ray_worker_cpus,
                            security=client_security(args))  # fmt: skip
        return await engine.run(specs)
    await policy.start()
    try:
        return await Rollout(client, policy, config, sinks).run(specs)
    finally:
        await policy.close()


def ray_address(args: argparse.Namespace) -> str:
    """--ray-address, else the fleet's cluster when --server is a fleet, else auto."""
    if args.ray_address:
        return str(args.ray_address)
    if args.server and is_fleet_address(args.server):
        return parse_fleet_address(args.server).ray_address
    return "auto"


def policy_spec(args: argparse.Namespace) -> dict[str, object]:
    """make_policy's arguments for the policy flags: what a Ray rollout worker builds its own
    policy from (resolved here, so an API key read from this host's environment travels with it)."""
    sampling = Sampling(args.temperature, args.top_p, args.max_new_tokens)
    options: dict[str, object] = {"max_batch": args.max_batch} if args.policy == "hf" else {}
    if args.policy in ("sglang", "openai"):
        # The key named by --api-key-env wins; else the first token of --token-file (an SGLang
        # server started with --api-key, or an hf policy server with --auth-token-file).
        var = args.api_key_env or ("OPENAI_API_KEY" if args.policy == "openai" else None)
        key = os.environ.get(var, "") if var else ""
        options["security"] = client_security(args, token=key or None)
    return {"backend": args.policy, "model": args.model, "url": args.policy_url, "sampling": sampling,
            "seed": args.seed, **options}  # fmt: skip


def policy_from_args(args: argparse.Namespace) -> Policy:
    return make_policy(**policy_spec(args))  # type: ignore[arg-type]


def config_from_args(args: argparse.Namespace) -> RolloutConfig:
    rounds = {}
    for item in args.max_rounds:
        env, sep, n = item.partition("=")
        if not sep or not n.isdigit():
            raise SystemExit(f"--max-rounds {item!r}: expected ENV=N")
        rounds[env] = int(n)
    return RolloutConfig(concurrency=args.concurrency, episode_timeout_s=args.episode_timeout, retries=args.retries,
                         max_failures=args.max_failures, max_rounds=rounds, max_context_tokens=args.max_context_tokens,
                         progress=not args.no_progress)  # fmt: skip


@contextlib.asynccontextmanager
async def env_client(args: argparse.Namespace, console: Console) -> AsyncIterator[EnvClient]:
    """A client for --server, else for the default server if it answers, else for an embedded one."""
    wanted = [e for e in (args.envs or "").split(",") if e]
    with serve_metrics(args, console):
        async with connect(args.server, wanted, console, client_security(args)) as client:
            yield client


@contextlib.contextmanager
def serve_metrics(args: argparse.Namespace, console: Console) -> Iterator[None]:
    """--metrics-port: the process's metrics (core/metrics.py) served while the block runs."""
    port = getattr(args, "metrics_port", None)
    if port is None:
        yield
        return
    try:
        check_port(port)
        server = start_metrics_server(port, args.metrics_host)
    except (ValueError, OSError) as exc:
        raise SystemExit(f"agentgym: {exc}") from None
    console.print(f"[dim]metrics: {server.url}[/dim]")
    try:
        yield
    finally:
        server.close()


@contextlib.asynccontextmanager
async def connect(
    server: str | None, wanted: list[str], console: Console, security: ClientSecurity | None = None
) -> AsyncIterator[EnvClient]:
    """A client for `server`, else for the default server if it hosts `wanted`, else for an embedded one."""
    if server:
        async with EnvClient(server, security=security) as client:
            yield client
        return
    async with EnvClient(DEFAULT_SERVER, connect_timeout_s=0.5, security=security) as client:
        try:
            status = await client.server_status()
        except AgentGymError:
            status = None
        # Yield outside the try: an error raised by the caller's block must not be taken for "no server".
        if status is not None and all(e in status.envs for e in wanted):
            yield client
            return
    from agentgym.server.app import Server
    from agentgym.server.config import ServerConfig

    embedded = await Server.start(ServerConfig(port=0, envs=wanted or None, grace_s=0, idle_timeout_s=0))
    console.print(
        f"[dim]No env server at {DEFAULT_SERVER} hosts {','.join(wanted) or 'the envs'}: using an embedded one.[/dim]"
    )
    try:
        async with EnvClient(f"127.0.0.1:{embedded.port}") as client:
            yield client
    finally:
        await embedded.stop(0)


def require_profile(hosted: Mapping[str, EnvInfo], envs: Iterable[str], profile: str | None) -> None:
    """Refuse to play an env whose server does not serve it under `profile` (None: no requirement):
    its conversations would not open as the original's, and the results would not compare. A usage
    error (ValueError), not a server's answer."""
    if not profile:
        return
    off = sorted(e for e in set(envs) if e in hosted and hosted[e].profile != profile)
    if off:
        said = ", ".join(f"{e} ({hosted[e].profile or 'no profile'})" for e in off)
        raise ValueError(
            f"--profile {profile}: not served under the {profile} profile: {said}, so their conversations "
            f"would not open as the original's. Start the server with `agentgym serve --profile {profile} "
            "--agenttraj FILE` (or --agentgym-source DIR) and pass it with --server, or leave --profile out"
        )


async def specs_from_args(client: EnvClient, args: argparse.Namespace) -> list[EpisodeSpec]:
    specs = await _specs(client, args)
    profile = getattr(args, "profile", None)
    if profile:
        require_profile(await client.envs(), {s.env for s in specs}, profile)
    return specs


async def _specs(client: EnvClient, args: argparse.Namespace) -> list[EpisodeSpec]:
    if args.item_ids:
        return tasks_from_item_file(args.item_ids)
    hosted = await client.envs()
    envs = [e for e in (args.envs or "").split(",") if e] or sorted(hosted)
    missing = [e for e in envs if e not in hosted]
    if missing:
        raise AgentGymError(f"no server hosts {missing}; hosted: {', '.join(sorted(hosted))}")
    general = [t for t in args.tasks if "=" not in t]
    per_env = dict(t.split("=", 1) for t in args.tasks if "=" in t)
    chosen: dict[str, list[int]] = {}
    for env in envs:
        spec = per_env.get(env, general[0] if general else None)
        ids = select_tasks(hosted[env], spec, default_split=args.split)
        chosen[env] = ids[: args.max_tasks] if args.max_tasks else ids
    return expand(chosen, samples=args.samples)
