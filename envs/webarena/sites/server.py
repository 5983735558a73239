"""Run the three built-in sites in this process (the child process start_sites launches, or the CLI)."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from aiohttp import web

from agentgym.envs.webarena.sites import SITES
from agentgym.envs.webarena.sites.data import (
    ADMIN_PASSWORD,
    ADMIN_USERNAME,
    DEFAULT_SEED,
    FORUM_PASSWORD,
    FORUM_USERNAME,
    SHOP_EMAIL,
    SHOP_PASSWORD,
    generate,
)
from agentgym.envs.webarena.sites.db import Database, load
from agentgym.envs.webarena.sites.forum import forum_app
from agentgym.envs.webarena.sites.html import Signer
from agentgym.envs.webarena.sites.shop import admin_app, shop_app

log = logging.getLogger(__name__)

ACCOUNTS: dict[str, tuple[str, str]] = {
    "shopping": (SHOP_EMAIL, SHOP_PASSWORD),
    "shopping_admin": (ADMIN_USERNAME, ADMIN_PASSWORD),
    "reddit": (FORUM_USERNAME, FORUM_PASSWORD),
}
# The part of a site's URL after host:port, as WebArena's site URLs have it (__SHOPPING_ADMIN__ ends
# in /admin).
URL_PATHS = {"shopping": "", "shopping_admin": "/admin", "reddit": ""}


@dataclass
class Running:
    urls: dict[str, str]
    runners: list[web.AppRunner] = field(default_factory=list)
    db: Database | None = None
    folder: str = ""

    async def close(self) -> None:
        for runner in self.runners:
            await runner.cleanup()
        if self.db is not None:
            await asyncio.to_thread(self.db.close)
        if self.folder:
            await asyncio.to_thread(shutil.rmtree, self.folder, True)


async def run_sites(
    host: str = "127.0.0.1", ports: Mapping[str, int] | None = None, seed: int = DEFAULT_SEED
) -> Running:
    """Generate the data into a fresh SQLite file and start the three sites; ports 0/absent: free ports."""
    ports = dict(ports or {})
    unknown = set(ports) - set(SITES)
    if unknown:
        raise ValueError(f"unknown site(s) {sorted(unknown)}: the built-in sites are {', '.join(SITES)}")
    folder = tempfile.mkdtemp(prefix="agentgym-webarena-sites-")
    running = Running(urls={}, folder=folder)
    try:
        running.db = Database(os.path.join(folder, "sites.sqlite3"))
        await running.db.run(load, generate(seed))
        signer = Signer(secrets.token_bytes(32))
        apps = {
            "shopping": shop_app(running.db, signer),
            "shopping_admin": admin_app(running.db, signer),
            "reddit": forum_app(running.db, signer),
        }
        for name in SITES:
            runner = web.AppRunner(apps[name], access_log=None)
            await runner.setup()
            running.runners.append(runner)
            site = web.TCPSite(runner, host, int(ports.get(name, 0)))
            await site.start()
            port = runner.addresses[0][1]
            shown_host = f"[{host}]" if ":" in host else host
            running.urls[name] = f"http://{shown_host}:{port}{URL_PATHS[name]}"
    except BaseException:
        await running.close()
        raise
    log.info("webarena built-in sites up", extra={"urls": running.urls})
    return running


async def _parent_gone(parent: int) -> None:
    """Return when the parent process is gone: stdin (a pipe from it) closes, or we are re-parented.

    Both, because a pipe's write end can linger in the parent's forked children, and a re-parent is
    only seen by polling."""
    loop = asyncio.get_running_loop()
    closed = asyncio.Event()

    class _Watch(asyncio.Protocol):
        def connection_lost(self, exc: Exception | None) -> None:
            closed.set()

    try:
        await loop.connect_read_pipe(_Watch, sys.stdin)
    except (OSError, ValueError):  # stdin is not a pipe: rely on the parent id alone
        pass
    while not closed.is_set() and os.getppid() == parent:
        try:
            await asyncio.wait_for(closed.wait(), 1.0)
        except TimeoutError:
            pass


async def serve(
    host: str,
    ports: Mapping[str, int],
    seed: int,
    on_ready: Callable[[Running], None],
    watch_parent: bool,
) -> None:
    """Run the sites until SIGINT/SIGTERM, or (watch_parent) until the parent process is gone."""
    parent = os.getppid()
    running = await run_sites(host, ports, seed)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    waiters = [asyncio.ensure_future(stop.wait())]
    if watch_parent:
        waiters.append(asyncio.ensure_future(_parent_gone(parent)))
    try:
        on_ready(running)
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()
        await running.close()
