"""The WebArena env's browser engine with real headless Chromium: observation, every action kind,
every evaluator kind, login, safety, a site that is down, contexts closed, the server path."""

from __future__ import annotations

import ast
import asyncio
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agentgym.envs import registry
from agentgym.envs.base import EnvError
from agentgym.envs.webarena import WebArena, actions, browser, evaluators, observation, tasks

from .conftest import (
    T_DOWN,
    T_EXACT,
    T_FUZZY,
    T_HTML,
    T_HTML_URL,
    T_LOGIN,
    T_MULTI,
    T_MUST,
    T_NA,
    T_URL,
    TinySites,
    tiny_tasks,
    write_task_dir,
)

pytestmark = pytest.mark.timeout(120)

LINE = re.compile(r"^\t*\[(\d+)\] (\S+) (.*)$")


def ids_of(observation: str) -> dict[tuple[str, str], int]:
    """(role, name) -> id of the observation's lines, parsed as W2's expert parses them."""
    found: dict[tuple[str, str], int] = {}
    for line in observation.splitlines():
        m = LINE.match(line)
        if m:
            rest = m.group(3)
            end = _repr_end(rest)
            found.setdefault((m.group(2), ast.literal_eval(rest[:end])), int(m.group(1)))
    return found


def _repr_end(rest: str) -> int:
    """Where the repr'd name at the start of `rest` ends."""
    for end in range(len(rest), 0, -1):
        try:
            ast.literal_eval(rest[:end])
            return end
        except (ValueError, SyntaxError):
            continue
    raise AssertionError(f"no name in {rest!r}")


@pytest.fixture(scope="module")
def env_cls(tiny_settings: dict[str, str]) -> Iterator[type[WebArena]]:
    cls = registry.configure("webarena", tiny_settings)
    yield cls  # type: ignore[misc]
    browser.shutdown()


@pytest.fixture
def env(env_cls: type[WebArena]) -> Iterator[WebArena]:
    e = env_cls()
    yield e
    e.close()


def live_contexts() -> int:
    svc = browser._service
    if svc is None or svc._browser is None:
        return 0

    async def count() -> int:
        assert svc._browser is not None
        return len(svc._browser.contexts)

    return svc.call(count(), 10)


# --- parsing (no browser) ------------------------------------------------------------------------
def test_parse_accepts_webarena_forms() -> None:
    p = actions.parse
    assert p("click [12]") == actions.Action("click", element=12)
    assert p("In summary, the next action I will perform is ```click [1234]```") == actions.Action(
        "click", element=1234
    )
    assert p("Thought: x\nAction: hover [3]") == actions.Action("hover", element=3)
    assert p("type [5] [red shoes]") == actions.Action("type", element=5, text="red shoes", enter=True)
    assert p("type [5] [red shoes] [0]") == actions.Action("type", element=5, text="red shoes", enter=False)
    assert p("press [Control+a]") == actions.Action("press", text="Control+a")
    assert p("scroll [direction=down]") == actions.Action("scroll", text="down")
    assert p("scroll [up]") == actions.Action("scroll", text="up")
    assert p("tab_focus [1]") == actions.Action("tab_focus", index=1)
    assert p("goto [http://x/y]") == actions.Action("goto", text="http://x/y")
    assert p("stop [$12.50]") == actions.Action("stop", text="$12.50")
    assert p("stop") == actions.Action("stop")
    for bare in ("new_tab", "close_tab", "go_back", "go_forward"):
        assert p(bare) == actions.Action(bare)
    for bad in ("click 12", "clack [1]", "type [x] [y]", "scroll [left]", "go_back [1]", ""):
        with pytest.raises(actions.InvalidAction):
            p(bad)


def test_string_and_url_rules() -> None:
    assert evaluators.exact_match("'Welcome'", " welcome ") == 1.0
    assert evaluators.must_include("0", "10 items", tokenize=True) == 0.0
    assert evaluators.must_include("0", "0 items", tokenize=True) == 1.0
    assert evaluators.must_include("0", "10 items", tokenize=False) == 1.0
    cfg = {"eval": {"reference_url": "http://h/search?q=a |OR| http://h/search?q=b"}}
    assert evaluators.url_match(cfg, "http://h/search/?q=b&page=2") == 1.0
    assert evaluators.url_match(cfg, "http://h/search?q=c") == 0.0
    assert evaluators.reddit_get_post_url("http://h/f/books/12/some-title/34") == "http://h/f/books/12/"
    assert (
        tasks.expand_text(
            "__SHOPPING_ADMIN__/x __SHOPPING__/y", {"shopping": "http://s", "shopping_admin": "http://a/"}
        )
        == "http://a/x http://s/y"
    )
    assert "Magento" in (
        evaluators.unsupported(
            {"eval": {"program_html": [{"url": "func:shopping_get_latest_order_url()", "locator": ""}]}}, None
        )
        or ""
    )


def test_task_files_directory_and_validation(tmp_path: Path) -> None:
    configs = tiny_tasks("__WIKIPEDIA__")[:3]
    loaded = tasks.load(write_task_dir(tmp_path / "config_files", configs))
    assert sorted(loaded) == [0, 1, 2] and loaded[1]["eval"]["reference_answers"] == {
        "must_include": ["7.99"]
    }
    assert tasks.sites_used(configs[0]) == {"shopping"}
    assert tasks.missing_sites(configs[0], {"reddit": "http://r"}) == ["shopping"]
    bad = dict(configs[0], eval={"eval_types": ["pixel_match"]})
    with pytest.raises(tasks.TaskError, match="unknown eval type 'pixel_match'"):
        tasks.load(write_task_dir(tmp_path / "bad", [bad]))
    with pytest.raises(tasks.TaskError, match="appears twice"):
        (tmp_path / "twice.json").write_text(json.dumps([configs[0], configs[0]]))
        tasks.load(tmp_path / "twice.json")
    with pytest.raises(tasks.TaskError, match="no such file"):
        tasks.load(tmp_path / "missing")


def test_long_trees_are_cut_at_a_line_with_a_marker() -> None:
    lines = [f"\t[{i}] link 'Product {i}'" for i in range(100)]
    text, cut = observation.limit(lines, 300)
    assert cut and len(text) < 400
    kept = text.splitlines()
    assert kept[:-1] == lines[: len(kept) - 1]
    assert kept[-1].startswith("[... ") and "more lines cut at 300 characters" in kept[-1]
    assert observation.limit(lines[:3], 300) == ("\n".join(lines[:3]), False)


# --- episodes in-process -------------------------------------------------------------------------
def test_observation_layout_and_every_action(env: WebArena, tiny_sites: TinySites) -> None:
    o = env.reset(T_EXACT, 0, {})
    lines = o.observation.splitlines()
    assert lines[0] == "Tab 0 (current): Tiny Home" and lines[1] == ""
    assert lines[-1] == f"URL: {tiny_sites.site}/" and o.info["url"] == f"{tiny_sites.site}/"
    assert all(LINE.match(x) for x in lines[2:-1]), o.observation
    ids = ids_of(o.observation)
    assert ("heading", "Welcome") in ids and ("textbox", "Search") in ids

    # type (clears the old text first), then type + Enter submits the search form
    o = env.step(f"type [{ids['textbox', 'Note']}] [new note] [0]")
    assert "'new note'" in o.observation and "old text" not in o.observation
    o = env.step(f"type [{ids['textbox', 'Search']}] [socks]")
    assert o.info["url"] == f"{tiny_sites.site}/search?q=socks" and "Results for socks" in o.observation
    o = env.step("go_back")
    assert o.info["url"] == f"{tiny_sites.site}/"
    o = env.step("go_forward")
    assert "Results for socks" in o.observation
    o = env.step(f"goto [{tiny_sites.site}/]")
    # click a link; hover; scroll down and up (viewport-only tree changes)
    o = env.step(f"click [{ids_of(o.observation)['link', 'Products']}]")
    assert o.info["url"] == f"{tiny_sites.site}/products"
    assert "Product 0" in o.observation and "Bottom of the list" not in o.observation
    o = env.step(
        f"hover [{ids_of(o.observation)['generic', 'Hover me'] if ('generic', 'Hover me') in ids_of(o.observation) else ids_of(o.observation)['StaticText', 'Hover me']}]"
    )
    assert "hovered!" in o.observation
    for _ in range(3):
        o = env.step("scroll [down]")
    assert "Bottom of the list" in o.observation and "'Product 0'" not in o.observation
    o = env.step("scroll [up]")
    assert "Bottom of the list" not in o.observation
    # press a key: Control+End goes to the bottom of the page
    o = env.step("press [Control+End]")
    assert "Bottom of the list" in o.observation
    # tabs
    o = env.step("new_tab")
    assert o.info["tabs"] == "2" and o.observation.startswith("Tab 0: Products | Tab 1 (current): ")
    o = env.step("tab_focus [0]")
    assert o.observation.startswith("Tab 0 (current): Products | Tab 1: ")
    o = env.step("tab_focus [1]")
    o = env.step("close_tab")
    assert o.info["tabs"] == "1" and o.info["url"] == f"{tiny_sites.site}/products"
    # stop scores the answer (exact_match "Welcome")
    o = env.step("stop ['welcome']")
    assert o.done and o.reward == 1.0 and o.success and o.info["eval_string_match"] == "1"


def test_invalid_actions_are_observations(env: WebArena) -> None:
    env.reset(T_EXACT, 0, {})
    for bad, says in (
        ("click 12", "cannot parse"),
        ("dance [3]", "unknown action"),
        ("click [999999]", "no element [999999]"),
        ("tab_focus [7]", "no tab 7"),
        ("press [NoSuchKey]", "cannot press"),
    ):
        o = env.step(bad)
        assert o.info.get("invalid") == "true", bad
        assert says in o.observation, (bad, o.observation[:300])
        assert "Tab 0 (current): Tiny Home" in o.observation and not o.done
    # the 25th round ends the episode and scores the final state with an empty answer
    for _ in range(env.max_rounds - 6):
        o = env.step("dance")
        assert not o.done
    o = env.step("dance")
    assert o.done and o.reward == 0.0 and "25-round limit" in o.observation
    assert o.info["eval_string_match"] == "0" and o.info["answer"] == ""
    # user task files have no expert
    assert not type(env).has_expert()
    with pytest.raises(EnvError, match="built-in tasks"):
        env.expert_action()


def test_blocked_origins_popups_and_dialogs(env: WebArena, tiny_sites: TinySites) -> None:
    o = env.reset(T_EXACT, 0, {})
    ids = ids_of(o.observation)
    allowed = sorted({tiny_sites.site, *[v for k, v in env.urls.items() if k != "shopping"]})
    o = env.step(f"goto [{tiny_sites.other}/x]")
    assert f"navigation to {tiny_sites.other}/x blocked: only " in o.observation
    assert o.info["url"] == f"{tiny_sites.site}/" and all(a in o.observation for a in allowed)
    o = env.step(f"click [{ids['link', 'Elsewhere']}]")
    assert f"navigation to {tiny_sites.other}/elsewhere blocked" in o.observation
    assert o.info["url"] == f"{tiny_sites.site}/"
    # the page's own request to another origin (an <img>) never reached it either
    assert tiny_sites.other_hits == []
    # windows the page opens are closed; dialogs dismissed
    o = env.step(f"click [{ids['button', 'Open popup']}]")
    # the window's event may come after this observation: then a later one says it
    seen = o.observation
    for _ in range(20):
        if "a new window the page opened" in seen:
            break
        o = env.step("scroll [up]")
        seen += o.observation
    assert "a new window the page opened" in seen and o.info["tabs"] == "1"
    o = env.step(f"click [{ids['link', 'New window']}]")
    assert o.info["tabs"] == "1"
    o = env.step(f"click [{ids['button', 'Alert']}]")
    assert "alert done" in o.observation
    assert tiny_sites.other_hits == []


@pytest.mark.parametrize(
    ("task_id", "steps", "reward"),
    [
        (T_EXACT, ["stop [Welcome!]"], 0.0),
        (T_MUST, ["stop [It costs $7.99]"], 1.0),
        (T_MUST, ["stop [7.98]"], 0.0),
        (T_URL, ["type [{Search}] [hats]", "stop []"], 1.0),
        (T_URL, ["type [{Search}] [shoes]", "stop []"], 0.0),
        (T_HTML, ["type [{Note}] [New Note] [0]", "stop []"], 1.0),
        (T_HTML, ["stop []"], 0.0),
        (T_HTML_URL, ["goto [{site}/products/5]", "stop [Product 5 costs 5.99]"], 1.0),
        (T_HTML_URL, ["stop [Product 5 costs 5.99]"], 0.0),
        (T_MULTI, ["stop [10 items]"], 0.0),
        (T_MULTI, ["stop [0 items]"], 1.0),
        (T_FUZZY, ["stop [Paris]"], 1.0),
        (T_FUZZY, ["stop [London]"], 0.0),
        (T_NA, ["stop [N/A]"], 1.0),
        (T_NA, ["stop [cannot: it is out of stock]"], 1.0),
        (T_NA, ["stop [done]"], 0.0),
        (T_LOGIN, ["stop []"], 1.0),
    ],
)
def test_evaluators(
    env: WebArena, tiny_sites: TinySites, task_id: int, steps: list[str], reward: float
) -> None:
    o = env.reset(task_id, 0, {})
    for step in steps:
        names = {name: i for (_, name), i in ids_of(o.observation).items()}
        o = env.step(step.format(site=tiny_sites.site, **names))
    assert o.done and o.reward == reward, o.observation
    assert o.success == (reward == 1.0)
    assert "eval_error" not in o.info


def test_fuzzy_match_is_judged_by_the_configured_server(env: WebArena, tiny_sites: TinySites) -> None:
    before = len(tiny_sites.judge_requests)
    env.reset(T_FUZZY, 0, {})
    env.step("stop [paris]")
    request: dict[str, Any] = tiny_sites.judge_requests[before]
    assert request["model"] == "fake-judge" and "Paris, France" in request["messages"][-1]["content"]


def test_login_state_is_cached_and_contexts_are_isolated(env_cls: type[WebArena]) -> None:
    a, b = env_cls(), env_cls()
    try:
        oa = a.reset(T_LOGIN, 0, {})
        assert "Signed in as alice" in oa.observation
        ob = b.reset(T_EXACT, 0, {})  # no login: its context has no session cookie
        ob = b.step(f"goto [{env_cls.urls['reddit']}/account]")
        assert ob.info["url"].endswith("/login")
        assert len(env_cls.logins._states) == 1
        # a stale login (the site forgot the session): the start page shows the login form, the
        # env logs in again
        (key,) = env_cls.logins._states
        env_cls.logins._states[key] = {"cookies": [], "origins": []}
        oa = a.reset(T_LOGIN, 0, {})
        assert "Signed in as alice" in oa.observation
        assert env_cls.logins._states[key]["cookies"]
    finally:
        a.close()
        b.close()


def test_site_down_and_missing_site(
    env: WebArena, env_cls: type[WebArena], tiny_settings: dict[str, str]
) -> None:
    o = env.reset(T_DOWN, 0, {})
    assert "is unreachable" in o.observation and not o.done
    o = env.step("stop []")
    assert o.done  # scored, not crashed
    # a task whose site has no URL is refused at create, naming the setting
    cls = registry.configure("webarena", {k: v for k, v in tiny_settings.items() if k != "wikipedia"})
    try:
        with pytest.raises(EnvError, match=r"webarena\.wikipedia=http://HOST:PORT"):
            cls().reset(T_DOWN, 0, {})
        # no judge configured: fuzzy_match tasks are refused with what to set
        cls = registry.configure(
            "webarena", {k: v for k, v in tiny_settings.items() if not k.startswith("judge")}
        )
        with pytest.raises(EnvError, match=r"fuzzy_match.*webarena\.judge_url"):
            cls().reset(T_FUZZY, 0, {})
        other = cls()
        try:
            assert other.reset(T_EXACT, 0, {}).observation  # others still run
        finally:
            other.close()
    finally:
        registry.configure("webarena", tiny_settings)


def test_every_context_is_closed(env_cls: type[WebArena]) -> None:
    assert live_contexts() == 0
    envs = [env_cls() for _ in range(3)]
    first = [e.reset(T_EXACT, 0, {}).observation for e in envs]
    assert live_contexts() == 3
    assert first[0] == first[1] == first[2]  # the same task, the same observation (ids included)
    envs[0].reset(T_MUST, 0, {})  # a reset replaces the episode's context
    assert live_contexts() == 3
    for e in envs:
        e.close()
    assert live_contexts() == 0


def test_browser_crash_ends_only_its_episodes(env_cls: type[WebArena]) -> None:
    a = env_cls()
    a.reset(T_EXACT, 0, {})
    svc = browser._service
    assert svc is not None and svc._browser is not None

    async def crash() -> None:
        assert svc._browser is not None
        await svc._browser.close()

    svc.call(crash(), 10)
    with pytest.raises(EnvError, match="browser"):
        a.step("scroll [down]")
    a.close()
    b = env_cls()  # a new episode gets a new browser
    try:
        assert "Tiny Home" in b.reset(T_EXACT, 0, {}).observation
    finally:
        b.close()


# --- through a real server -------------------------------------------------------------------------
async def test_twenty_concurrent_episodes_over_the_server(
    start_server: Any, tiny_settings: dict[str, str], env_cls: type[WebArena]
) -> None:
    from agentgym.client import EnvClient

    srv = await start_server(envs=["webarena"], env_settings={"webarena": tiny_settings}, step_timeout_s=30.0)
    async with EnvClient(f"127.0.0.1:{srv.port}") as client:

        async def one(i: int) -> tuple[float, dict[str, str]]:
            async with client.episode("webarena", T_MUST if i % 2 else T_EXACT) as ep:
                assert "URL: " in ep.last.observation
                await ep.step("scroll [down]")
                result = await ep.step("stop [7.99]" if i % 2 else "stop [Welcome]")
                return result.reward, dict(result.info)

        results = await asyncio.gather(*(one(i) for i in range(20)))
    assert [r for r, _ in results] == [1.0] * 20
    assert all("eval_string_match" in info for _, info in results)
    # the server closes each episode's env as its stream ends, just after the client's close returns
    for _ in range(100):
        if await asyncio.to_thread(live_contexts) == 0:
            break
        await asyncio.sleep(0.05)
    assert await asyncio.to_thread(live_contexts) == 0
