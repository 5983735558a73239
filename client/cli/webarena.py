"""`agentgym webarena`: WebArena's built-in sites and tasks (envs/webarena; docs/envs/webarena.md).

agentgym webarena sites                                  # the shop, its admin and the forum, on free ports
agentgym webarena sites --shopping-port 7770 --shopping-admin-port 7780 --reddit-port 9999
agentgym webarena tasks --out runs/webarena-tasks        # the built-in tasks as WebArena config files
agentgym webarena solve --concurrency 4                  # the expert over every built-in task, in-process

`sites` runs in the foreground until Ctrl-C and prints the `--env-setting` flags that point an env
server at it, so several servers can share one set of sites. The sites have well-known accounts
and no other protection: a non-loopback --host needs --insecure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "webarena",
        help="run WebArena's built-in sites, or write its built-in tasks",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    verbs = p.add_subparsers(dest="verb", required=True, metavar="VERB")
    s = verbs.add_parser("sites", help="run the built-in shop, shop admin and forum in the foreground")
    from agentgym.envs.webarena.sites import add_arguments

    add_arguments(s)
    s.add_argument(
        "--insecure", action="store_true", help="allow a non-loopback --host (the accounts are public)"
    )
    s.set_defaults(func=sites)
    t = verbs.add_parser("tasks", help="write the built-in tasks as WebArena config files (<task_id>.json)")
    t.add_argument("--out", required=True, help="folder to write (created if missing)")
    t.set_defaults(func=tasks)
    v = verbs.add_parser(
        "solve", help="run the expert over built-in tasks in-process and report its solve rate"
    )
    v.add_argument("--tasks", default="", help="task ids, e.g. 0-19,40 (default: all)")
    v.add_argument("--concurrency", type=int, default=4, help="episodes at once (default 4)")
    v.set_defaults(func=solve)


def sites(args: argparse.Namespace) -> int:
    from agentgym.core.security import is_loopback
    from agentgym.envs.webarena.sites import ports_of
    from agentgym.envs.webarena.sites.server import Running, serve

    if not is_loopback(args.host) and not args.insecure:
        print(
            f"--host {args.host} is not a loopback address: the sites' accounts are public, so anyone who "
            "reaches them could use them. Add --insecure to do it anyway.",
            file=sys.stderr,
        )
        return 2

    def announce(running: Running) -> None:
        for name, url in running.urls.items():
            print(f"{name:15} {url}")
        flags = " ".join(f"--env-setting webarena.{name}={url}" for name, url in running.urls.items())
        print(
            f"\nServe the built-in tasks against these sites with:\n  agentgym serve --envs webarena {flags}"
        )
        print("\nCtrl-C stops the sites.", flush=True)

    try:
        asyncio.run(serve(args.host, ports_of(args), args.seed, announce, watch_parent=False))
    except OSError as exc:
        print(f"cannot start the sites: {exc}", file=sys.stderr)
        return 1
    return 0


def tasks(args: argparse.Namespace) -> int:
    from agentgym.envs.webarena.builtin_tasks import builtin_tasks

    os.makedirs(args.out, exist_ok=True)
    configs = builtin_tasks()
    for config in configs:
        with open(os.path.join(args.out, f"{config['task_id']}.json"), "w", encoding="utf-8") as f:
            json.dump(config, f, indent=2)
            f.write("\n")
    print(f"wrote {len(configs)} task configs to {args.out}")
    return 0


def _task_ids(spec: str, count: int) -> list[int]:
    if not spec:
        return list(range(count))
    ids: list[int] = []
    for part in spec.split(","):
        low, _, high = part.strip().partition("-")
        ids.extend(range(int(low), int(high or low) + 1))
    bad = [i for i in ids if not 0 <= i < count]
    if bad:
        raise SystemExit(f"--tasks: no built-in task {bad[0]} (there are {count}: 0-{count - 1})")
    return ids


def solve(args: argparse.Namespace) -> int:
    """The expert over built-in tasks through the real env (Chromium, evaluators), as a check that
    every task is solvable and a measure of the env's speed."""
    import time
    from concurrent.futures import ThreadPoolExecutor

    from agentgym.envs import registry
    from agentgym.envs.webarena.builtin_tasks import builtin_tasks
    from agentgym.envs.webarena.sites import start_sites

    if args.concurrency < 1:
        print("--concurrency must be at least 1", file=sys.stderr)
        return 2
    ids = _task_ids(args.tasks, len(builtin_tasks()))
    with start_sites() as running:
        settings = dict(running.urls)

        def run(task_id: int) -> tuple[int, float, int, str]:
            env = registry.make("webarena", settings)
            try:
                out = env.reset(task_id, 0, {})
                for rounds in range(1, env.max_rounds + 1):
                    out = env.step(env.expert_action())
                    if out.done:
                        return task_id, out.reward, rounds, ""
                return task_id, out.reward, env.max_rounds, "ran out of rounds"
            except Exception as exc:  # one task's failure is reported, not fatal to the run
                return task_id, 0.0, 0, f"{type(exc).__name__}: {exc}"
            finally:
                env.close()

        start = time.monotonic()
        with ThreadPoolExecutor(args.concurrency) as pool:
            results = list(pool.map(run, ids))
        elapsed = time.monotonic() - start
    failed = [r for r in results if r[1] != 1.0]
    for task_id, _, rounds, error in failed:
        print(f"task {task_id}: not solved after {rounds} rounds {error}".rstrip())
    steps = sum(r[2] for r in results)
    print(
        f"solved {len(results) - len(failed)}/{len(results)} built-in tasks; {steps} steps in {elapsed:.0f} s "
        f"({steps / elapsed:.1f} steps/s, concurrency {args.concurrency}); most rounds {max(r[2] for r in results)}"
    )
    return 0 if not failed else 1
