"""Logged-in browser state for `require_login` tasks, as WebArena's auto_login makes it.

For each site a task needs, log in once with Playwright in a throwaway context (the site's own login
form), keep the context's storage state (cookies, local storage) per server process, and start the
episode's context from it; tasks on several sites get the states merged. A state is made again
when an episode finds itself on a login page (the session expired) or logging in failed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Page

from agentgym.envs.webarena.browser import BrowserService


@dataclass(frozen=True)
class LoginForm:
    path: str  # the login page, under the site's base URL
    user_field: str  # CSS selectors of the inputs
    password_field: str


# The sites' own login pages and input names (Magento, Magento admin, Postmill, GitLab). The
# admin's base URL is its login page already (WebArena's is http://HOST:7780/admin).
FORMS: dict[str, LoginForm] = {
    "shopping": LoginForm("/customer/account/login/", "input[name='email']", "input[name='pass']"),
    "shopping_admin": LoginForm("", "input[name='username']", "input[name='password']"),
    "reddit": LoginForm("/login", "input[name='_username']", "input[name='_password']"),
    "gitlab": LoginForm(
        "/users/sign_in",
        "[data-testid='username-field'], input[name='user[login]']",
        "[data-testid='password-field'], input[name='user[password]']",
    ),
}
# WebArena's documented accounts on its hosted sites (its browser_env/env_config.py).
DEFAULT_ACCOUNTS: dict[str, tuple[str, str]] = {
    "shopping": ("emma.lopez@gmail.com", "Password.123"),
    "shopping_admin": ("admin", "admin1234"),
    "reddit": ("MarvelsGrantMan136", "test1234"),
    "gitlab": ("byteblaze", "hello1234"),
}


class LoginFailed(Exception):
    """Logging in to a site did not work; the message says which site, URL and account."""


async def shows_login(page: Page, site: str, base_url: str) -> bool:
    """Whether `page` is `site`'s login form (its session is gone): a page of that site with the
    site's password field. (Magento's admin shows its form at any admin URL, so not by URL.)"""
    form = FORMS.get(site)
    if form is None or not page.url.startswith(base_url.rstrip("/")):
        return False
    try:
        return await page.locator(form.password_field).count() > 0
    except PlaywrightError:
        return False


class LoginCache:
    """site -> storage state, per server process; logins run on the browser's loop."""

    def __init__(self) -> None:
        self._states: dict[tuple[str, str, str], dict[str, Any]] = {}
        self._locks: dict[tuple[str, str, str], asyncio.Lock] = {}

    def forget(self, site: str) -> None:
        for key in [k for k in self._states if k[0] == site]:
            del self._states[key]

    async def state(
        self,
        service: BrowserService,
        sites: Sequence[str],
        urls: Mapping[str, str],
        accounts: Mapping[str, tuple[str, str]],
        timeout_s: float,
    ) -> dict[str, Any]:
        """The merged storage state for `sites` (those without a login form are skipped)."""
        merged: dict[str, Any] = {"cookies": [], "origins": []}
        for site in sites:
            if site not in FORMS:
                continue
            one = await self._one(service, site, urls[site], accounts[site], timeout_s)
            merged["cookies"].extend(one.get("cookies", []))
            merged["origins"].extend(one.get("origins", []))
        return merged

    async def _one(
        self, service: BrowserService, site: str, base: str, account: tuple[str, str], timeout_s: float
    ) -> dict[str, Any]:
        key = (site, base, account[0])
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:  # concurrent first episodes log in once
            if key not in self._states:
                self._states[key] = await log_in(service, site, base, account, timeout_s)
            return self._states[key]


async def log_in(
    service: BrowserService, site: str, base: str, account: tuple[str, str], timeout_s: float
) -> dict[str, Any]:
    form = FORMS[site]
    username, password = account
    url = base.rstrip("/") + form.path
    browser = await service.browser()
    context = await browser.new_context(accept_downloads=False)
    context.set_default_timeout(timeout_s * 1000)
    try:
        page = await context.new_page()
        try:
            await page.goto(url, wait_until="load")
            await page.locator(form.user_field).first.fill(username)
            await page.locator(form.password_field).first.fill(password)
            async with page.expect_navigation(wait_until="load"):
                await page.locator(form.password_field).first.press("Enter")
        except PlaywrightError as exc:
            raise LoginFailed(
                f"logging in to {site} at {url} as {username!r} failed: {str(exc).splitlines()[0]}"
            ) from None
        if await shows_login(page, site, base):
            raise LoginFailed(
                f"logging in to {site} at {url} as {username!r} failed: the login page came back "
                f"(wrong account? set webarena.{site}_username / webarena.{site}_password)"
            )
        return dict(await context.storage_state())
    finally:
        with contextlib.suppress(PlaywrightError):
            await context.close()
