"""`python -m agentgym.envs prepare`: build every env's derived data now (install time)."""

from __future__ import annotations

import sys
import time

from agentgym.envs import registry


def main(argv: list[str]) -> int:
    if argv[:1] != ["prepare"]:
        print("usage: python -m agentgym.envs prepare", file=sys.stderr)
        return 2
    for name in registry.names(include_hidden=True):
        t = time.perf_counter()
        cls = registry.configure(name)
        print(f"{name:<14} {cls.task_count:>7} tasks  ready in {time.perf_counter() - t:.2f}s")
    for module, reason in registry.unavailable().items():
        print(f"{module:<14} unavailable: {reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
