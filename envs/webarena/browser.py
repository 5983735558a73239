"""One headless Chromium per server process, one isolated browser context per episode.

The env SDK calls `reset`/`step` from a thread pool, and Playwright's sync API is bound to the
thread that started it, so the browser lives on a thread of its own running an asyncio loop with
Playwright's async API. Env code hands coroutines to that loop (`BrowserService.call`) and blocks on
the result with a timeout. Each episode gets its own BrowserContext: cookies, storage and
pages are its own, and closing the context frees them.

Safety, per context: every request is routed, and one to an origin that is not one of the
configured sites is aborted (a blocked top-level navigation leaves the page where it was, and the
next observation says so); downloads are refused; windows the page opens by itself are closed;
dialogs are dismissed.

No Chromium outlives the server: the browser is closed at interpreter exit; when the server dies
without closing it (SIGKILL), Playwright's driver sees its stdin close and ends the browser, and
Chromium, driven over a pipe, exits when the driver's end closes (both checked by hand with each
process SIGKILLed). Chromium is also started through `setpriv --pdeathsig KILL` where available:
the kernel then kills it when its parent, the driver, dies, whatever Chromium is doing.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import os
import shutil
import stat
import tempfile
import threading
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

from playwright.async_api import (
    Browser,
    BrowserContext,
    CDPSession,
    Page,
    Playwright,
    Request,
    Route,
    async_playwright,
)
from playwright.async_api import (
    Error as PlaywrightError,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

# Schemes a page may always use: they reach no server.
_LOCAL_SCHEMES = ("data", "about", "blob", "javascript")


class BrowserCrashed(Exception):
    """The browser (or this episode's context) went away under a running episode."""


def origin_of(url: str) -> str:
    """scheme://host[:port] of a URL, lower-cased, default ports dropped ("" when not http(s))."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return ""
    port = parts.port
    default = {"http": 80, "https": 443}[parts.scheme]
    host = parts.hostname
    if ":" in host:  # an IPv6 literal keeps its brackets in an origin
        host = f"[{host}]"
    return f"{parts.scheme}://{host}" + (f":{port}" if port and port != default else "")


def resolve_chromium(setting: str | None) -> str:
    """The Chromium executable: the setting, else Debian's `chromium` on PATH. Never downloads one."""
    path = setting or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path or not os.access(path, os.X_OK):
        raise FileNotFoundError(
            "no Chromium found: install Debian's `chromium` package (apt-get install chromium) or set "
            "--env-setting webarena.chromium=/path/to/chromium"
        )
    return path


def _death_linked(executable: str, folder: str) -> str:
    """A launcher that starts `executable` with SIGKILL as its parent-death signal, so Chromium
    dies with Playwright's driver even when nobody gets to close it (the server was SIGKILLed)."""
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return executable
    launcher = os.path.join(folder, "chromium-pdeathsig")
    with open(launcher, "w") as f:
        f.write(f'#!/bin/sh\nexec {setpriv} --pdeathsig KILL -- {executable} "$@"\n')
    os.chmod(launcher, stat.S_IRWXU)
    return launcher


class BrowserService:
    """The process's browser: a thread with an event loop, Playwright and one Chromium."""

    def __init__(self, executable: str) -> None:
        self.executable = executable
        self._tmp = tempfile.mkdtemp(prefix="agentgym-webarena-")
        self._launcher = _death_linked(executable, self._tmp)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="webarena-browser", daemon=True)
        self._thread.start()
        self._pw: Playwright | None = None
        self._browser: Browser | None = None
        self._launching: asyncio.Lock | None = None
        self.launches = 0
        self.closed = False

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def call(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        """Run `coro` on the browser's loop and wait for its result (from any other thread)."""
        if self.closed:
            coro.close()
            raise BrowserCrashed("the browser service is shut down (the server is stopping)")
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise

    async def browser(self) -> Browser:
        """The running browser, launched on first use and again when it has crashed."""
        if self._launching is None:
            self._launching = asyncio.Lock()
        async with self._launching:
            if self._browser is not None and self._browser.is_connected():
                return self._browser
            if self._browser is not None:
                log.warning("browser crashed; launching a new one", extra={"launches": self.launches})
            if self._pw is None:
                self._pw = await async_playwright().start()
            self._browser = await self._pw.chromium.launch(
                executable_path=self._launcher,
                headless=True,
                # /dev/shm is small in containers; Chromium falls back to /tmp with this. Scrolls
                # by key (End, PageDown) are instant, so the next observation sees where they end.
                args=[
                    "--disable-dev-shm-usage",
                    "--disable-gpu",
                    "--no-first-run",
                    "--disable-smooth-scrolling",
                ],
            )
            self.launches += 1
            return self._browser

    async def _close(self) -> None:
        with contextlib.suppress(Exception):
            if self._browser is not None:
                await self._browser.close()
        with contextlib.suppress(Exception):
            if self._pw is not None:
                await self._pw.stop()
        self._browser = None
        self._pw = None

    def shutdown(self, timeout: float = 10.0) -> None:
        """Close the browser and stop the loop (at interpreter exit, or by tests)."""
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._close(), self.loop).result(timeout)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout)
        shutil.rmtree(self._tmp, ignore_errors=True)


_service: BrowserService | None = None
_service_lock = threading.Lock()


def service(executable: str) -> BrowserService:
    """The process's browser service (started on first use; the browser itself on first episode)."""
    global _service
    with _service_lock:
        if _service is None or _service.closed or _service.executable != executable:
            if _service is not None:
                _service.shutdown()
            _service = BrowserService(executable)
            atexit.register(_service.shutdown)
        return _service


def shutdown() -> None:
    """Close the process's browser now (tests; atexit does it otherwise)."""
    global _service
    with _service_lock:
        if _service is not None:
            _service.shutdown()
            _service = None


@dataclass
class SessionOptions:
    allowed_origins: tuple[str, ...]
    viewport: tuple[int, int] = (1280, 720)
    load_timeout_s: float = 10.0
    action_timeout_s: float = 5.0
    storage_state: dict[str, Any] | None = None
    cookies: list[dict[str, Any]] = field(default_factory=list)


class BrowserSession:
    """One episode's browser context and its tabs. Every method runs on the service's loop."""

    def __init__(self, service: BrowserService, options: SessionOptions) -> None:
        self.service = service
        self.options = options
        self.allowed = set(options.allowed_origins)
        self.context: BrowserContext | None = None
        self.pages: list[Page] = []
        self.current = 0
        self._cdp: dict[int, CDPSession] = {}
        # What happened since the last observation, for the agent to read (blocked navigations,
        # closed pop-ups).
        self.notices: list[str] = []
        self._opening_tab = False
        self.crashed = False
        self.closed = False
        # The ids the agent sees (observation.py): backend DOM node id <-> episode id.
        self._label: dict[int, int] = {}
        self._backend: dict[int, int] = {}
        self._background: set[asyncio.Task[None]] = set()  # held until done (the loop keeps weak refs)

    def label(self, backend_id: int) -> int:
        """The id shown for a backend DOM node: numbered in order of first appearance."""
        shown = self._label.get(backend_id)
        if shown is None:
            shown = self._label[backend_id] = len(self._label) + 1
            self._backend[shown] = backend_id
        return shown

    def backend_id(self, shown: int) -> int:
        return self._backend[shown]

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # --- life --------------------------------------------------------------------------------
    async def open(self) -> None:
        browser = await self.service.browser()
        width, height = self.options.viewport
        self.context = await browser.new_context(
            viewport={"width": width, "height": height},
            accept_downloads=False,
            storage_state=self.options.storage_state,  # type: ignore[arg-type]
            service_workers="block",
        )
        self.context.set_default_timeout(self.options.action_timeout_s * 1000)
        self.context.set_default_navigation_timeout(self.options.load_timeout_s * 1000)
        if self.options.cookies:
            await self.context.add_cookies(self.options.cookies)  # type: ignore[arg-type]
        await self.context.route("**/*", self._route)
        self.context.on("page", self._on_page)
        self.context.on("close", self._on_context_close)
        await self.new_tab()

    def _on_context_close(self, _: BrowserContext) -> None:
        if not self.closed:
            self.crashed = True

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.context is not None:
            with contextlib.suppress(Exception):
                await self.context.close()
        self.pages.clear()
        self._cdp.clear()

    def check_alive(self) -> None:
        browser = self.service._browser
        if self.crashed or browser is None or not browser.is_connected():
            self.crashed = True
            raise BrowserCrashed(
                "the browser of this episode crashed or was closed; this episode is over "
                "(other episodes get a new browser)"
            )

    # --- tabs --------------------------------------------------------------------------------
    @property
    def page(self) -> Page:
        return self.pages[self.current]

    async def new_tab(self) -> Page:
        page = await self._open_page()
        self._watch(page)
        self.pages.append(page)
        self.current = len(self.pages) - 1
        return page

    async def scratch_page(self) -> Page:
        """A page outside the agent's tabs, in this context (the evaluators read pages with it)."""
        page = await self._open_page()
        page.on("dialog", lambda d: self._spawn(_dismiss(d)))
        return page

    async def _open_page(self) -> Page:
        """A page this session opens itself (not a pop-up of the site's, which is closed)."""
        assert self.context is not None
        self._opening_tab = True
        try:
            return await self.context.new_page()
        finally:
            self._opening_tab = False

    def _watch(self, page: Page) -> None:
        page.on("dialog", lambda d: self._spawn(_dismiss(d)))
        page.on("close", lambda _: self._forget(page))

    def _on_page(self, page: Page) -> None:
        # A page the agent did not open (window.open, target=_blank): close it, say so.
        if self._opening_tab:
            return
        self.notices.append(f"a new window the page opened ({page.url or 'about:blank'}) was closed")
        self._spawn(_close_quietly(page))

    def _forget(self, page: Page) -> None:
        self._cdp.pop(id(page), None)

    async def close_tab(self) -> None:
        page = self.pages.pop(self.current)
        await page.close()
        if not self.pages:
            await self.new_tab()
        self.current = len(self.pages) - 1

    async def cdp(self, page: Page | None = None) -> CDPSession:
        page = page or self.page
        session = self._cdp.get(id(page))
        if session is None:
            assert self.context is not None
            session = await self.context.new_cdp_session(page)
            self._cdp[id(page)] = session
        return session

    # --- safety ------------------------------------------------------------------------------
    def allows(self, url: str) -> bool:
        scheme = urlsplit(url).scheme
        return scheme in _LOCAL_SCHEMES or origin_of(url) in self.allowed

    def blocked_message(self, url: str) -> str:
        return f"navigation to {url} blocked: only {', '.join(sorted(self.allowed))} are allowed"

    async def _route(self, route: Route, request: Request) -> None:
        url = request.url
        frame = None
        if request.is_navigation_request():
            # A new window's first request comes before its frame exists (the window is closed).
            with contextlib.suppress(PlaywrightError):
                frame = request.frame
        top_level = frame is not None and frame.parent_frame is None
        if self.allows(url):
            with contextlib.suppress(Exception):
                await route.continue_()
            return
        if top_level:
            self.notices.append(self.blocked_message(url))
        # "aborted" (ERR_ABORTED) leaves a top-level page where it was instead of committing an
        # error page.
        with contextlib.suppress(Exception):
            await route.abort("aborted" if top_level else "blockedbyclient")

    async def settle(self, page: Page | None = None) -> None:
        """Wait, up to the load timeout, for the page to load after an action. Playwright's
        element actions have already waited for a navigation they started to commit."""
        page = page or self.page
        with contextlib.suppress(PlaywrightError):
            await page.wait_for_load_state("load", timeout=self.options.load_timeout_s * 1000)


async def _dismiss(dialog: Any) -> None:
    with contextlib.suppress(Exception):
        await dialog.dismiss()


async def _close_quietly(page: Page) -> None:
    with contextlib.suppress(Exception):
        await page.close()
