"""The engine against the built-in sites (started by the env): logins on every site, a sandbox
cookie per episode, and the env's metadata for the built-in task set."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from agentgym.envs import registry
from agentgym.envs.webarena import WebArena, browser
from agentgym.envs.webarena.builtin_tasks import builtin_tasks
from agentgym.envs.webarena.sites import SANDBOX_COOKIE

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def env_cls() -> Iterator[type[WebArena]]:
    cls = registry.configure("webarena", {})
    yield cls  # type: ignore[misc]
    browser.shutdown()


def first_task(**match: Any) -> dict[str, Any]:
    for t in builtin_tasks():
        if all(t[k] == v for k, v in match.items()):
            return t
    raise AssertionError(f"no built-in task with {match}")


def cookies_of(env: WebArena) -> dict[str, str]:
    assert env.session is not None and env._service is not None
    session = env.session

    async def read() -> dict[str, str]:
        assert session.context is not None
        return {f"{c['domain']}:{c['name']}": c["value"] for c in await session.context.cookies()}

    return env._service.call(read(), 10)


def test_builtin_metadata(env_cls: type[WebArena]) -> None:
    assert env_cls.task_set == "built-in sites"
    assert env_cls.task_count == len(builtin_tasks()) >= 200
    assert env_cls.splits == {"test": [range(0, env_cls.task_count)]}
    assert env_cls.max_rounds == 25
    assert env_cls.has_expert()


def test_each_episode_has_its_own_sandbox(env_cls: type[WebArena]) -> None:
    task = first_task(sites=["shopping"], require_login=False)
    a, b = env_cls(), env_cls()
    try:
        a.reset(task["task_id"], 0, {})  # the first episode starts the sites
        assert {"shopping", "shopping_admin", "reddit"} <= set(env_cls.urls) and env_cls.sites is not None
        b.reset(task["task_id"], 0, {})
        ca, cb = cookies_of(a), cookies_of(b)
        sa = {v for k, v in ca.items() if k.endswith(f":{SANDBOX_COOKIE}")}
        sb = {v for k, v in cb.items() if k.endswith(f":{SANDBOX_COOKIE}")}
        assert len(sa) == len(sb) == 1 and sa != sb
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize(
    ("site", "shows"),
    [("shopping", "Sign Out"), ("shopping_admin", "Sign Out"), ("reddit", "Log out")],
)
def test_require_login_tasks_start_signed_in(env_cls: type[WebArena], site: str, shows: str) -> None:
    task = first_task(sites=[site], require_login=True)
    env = env_cls()
    try:
        o = env.reset(task["task_id"], 0, {})
        if shows not in o.observation:  # the link may sit below the fold on a long page
            o = env.step("press [Home]")
        assert shows in o.observation, o.observation[:1500]
        user = env_cls.accounts[site][0]
        cookies = cookies_of(env)
        assert any(k.endswith(f":{SANDBOX_COOKIE}") for k in cookies), cookies
        assert user
    finally:
        env.close()
