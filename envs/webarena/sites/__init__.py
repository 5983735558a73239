"""WebArena's built-in sites: a shop, its admin and a forum, so the env runs with no WebArena hosting.

    from agentgym.envs.webarena.sites import start_sites

    with start_sites() as sites:          # a child process; returns once every site answers HTTP
        sites.urls["shopping"]            # "http://127.0.0.1:41234"
        sites.urls["shopping_admin"]      # "http://127.0.0.1:41235/admin" (WebArena's form)
        sites.urls["reddit"]
        sites.accounts["shopping"]        # ("emma.lopez@gmail.com", "Password.123")

The sites play WebArena's roles: "shopping" (One Stop Market), "shopping_admin" (its admin) and
"reddit" (Postmill), with the same sign-in pages and field names, over data generated from a seed
(sites/data.py) into a temporary SQLite file. The child process exits when its parent does (its
stdin closes, or its parent process id changes), so no site outlives the server that started it.

Episodes are kept apart by the cookie SANDBOX_COOKIE: a browser context that carries
`agentgym_sandbox=<id>` sees the base data plus only its own writes (cart, orders, admin edits,
posts, comments, votes); without the cookie it shares the sandbox "default".
"""

from __future__ import annotations

import argparse
import json
import os
import select
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from types import TracebackType

# The cookie that names an episode's sandbox; the env sets a fresh value per browser context.
SANDBOX_COOKIE = "agentgym_sandbox"
# The sandbox of a browser without the cookie.
DEFAULT_SANDBOX = "default"
START_TIMEOUT_S = 60.0
SITES = ("shopping", "shopping_admin", "reddit")


class SitesError(RuntimeError):
    """The built-in sites could not be started."""


class Sites:
    """The running built-in sites (a child process). Stop with `stop()` or use as a context manager."""

    def __init__(
        self, process: subprocess.Popen[bytes], urls: dict[str, str], accounts: dict[str, tuple[str, str]]
    ) -> None:
        self.process = process
        self.urls = urls
        self.accounts = accounts

    def stop(self, timeout: float = 5.0) -> None:
        """End the child: closing its stdin asks it to exit; a child that does not is killed."""
        proc = self.process
        if proc.poll() is not None:
            return
        if proc.stdin is not None:
            try:
                proc.stdin.close()
            except OSError:
                pass
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()

    def __enter__(self) -> Sites:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"Sites(pid={self.process.pid}, urls={self.urls})"


def _read_line(proc: subprocess.Popen[bytes], deadline: float) -> bytes:
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    data = b""
    while b"\n" not in data:
        left = deadline - time.monotonic()
        if left <= 0:
            raise SitesError(f"the built-in sites did not start within {START_TIMEOUT_S:.0f} s")
        ready, _, _ = select.select([fd], [], [], min(left, 0.5))
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                code = proc.wait()
                raise SitesError(
                    f"the built-in sites' process exited with code {code} before starting (its stderr says why)"
                )
            data += chunk
    return data.split(b"\n", 1)[0]


def _answers(url: str, deadline: float) -> None:
    """Wait until `url` answers HTTP at all (any status: the admin answers its sign-in form)."""
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except urllib.error.HTTPError:
            return
        except OSError as exc:
            if time.monotonic() > deadline:
                raise SitesError(f"the built-in site at {url} does not answer: {exc}") from exc
            time.sleep(0.1)


def start_sites(
    host: str = "127.0.0.1", ports: Mapping[str, int] | None = None, seed: int | None = None
) -> Sites:
    """Start the built-in sites in a child process and return once each answers HTTP.

    `ports`: {"shopping": P, "shopping_admin": P, "reddit": P}, any left out (or 0) on a free port.
    """
    unknown = set(ports or {}) - set(SITES)
    if unknown:
        raise ValueError(f"unknown site(s) {sorted(unknown)}: the built-in sites are {', '.join(SITES)}")
    cmd = [sys.executable, "-m", "agentgym.envs.webarena.sites", "--host", host, "--child"]
    for name, port in (ports or {}).items():
        cmd += [f"--{name.replace('_', '-')}-port", str(int(port))]
    if seed is not None:
        cmd += ["--seed", str(int(seed))]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    deadline = time.monotonic() + START_TIMEOUT_S
    try:
        info = json.loads(_read_line(proc, deadline))
        sites = Sites(proc, dict(info["urls"]), {k: (v[0], v[1]) for k, v in info["accounts"].items()})
        for url in sites.urls.values():
            _answers(url, deadline)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    return sites


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The sites' command-line options (python -m agentgym.envs.webarena.sites, agentgym webarena sites)."""
    from agentgym.envs.webarena.sites.data import DEFAULT_SEED

    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    for name in SITES:
        flag = name.replace("_", "-")
        parser.add_argument(
            f"--{flag}-port", type=int, default=0, help=f"port of the {name} site (default: a free one)"
        )
    parser.add_argument(
        "--seed",
        type=int,
        default=DEFAULT_SEED,
        help=f"data seed (default {DEFAULT_SEED}; the built-in tasks assume it)",
    )


def ports_of(args: argparse.Namespace) -> dict[str, int]:
    return {name: getattr(args, f"{name}_port") for name in SITES}


__all__ = ["DEFAULT_SANDBOX", "SANDBOX_COOKIE", "SITES", "Sites", "SitesError", "start_sites"]
