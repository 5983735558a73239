"""Shared fixtures for the WebArena env's tests: tiny sites served by aiohttp on loopback ports,
task files in WebArena's format against them, and a fake LLM judge."""

from __future__ import annotations

import asyncio
import html
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

PAGE = """<!doctype html><html><head><title>{title}</title></head><body>{body}</body></html>"""


def _page(title: str, body: str) -> web.Response:
    return web.Response(text=PAGE.format(title=title, body=body), content_type="text/html")


@dataclass
class TinySites:
    """Two origins: `site` (configured as the task's site) and `other` (never configured)."""

    site: str = ""
    other: str = ""
    other_hits: list[str] = field(default_factory=list)
    judge: str = ""
    judge_requests: list[dict[str, Any]] = field(default_factory=list)


def _site_app(sites: TinySites) -> web.Application:
    async def home(_: web.Request) -> web.Response:
        return _page(
            "Tiny Home",
            f"""<h1>Welcome</h1>
            <nav><a href="/products">Products</a> <a href="{sites.other}/elsewhere">Elsewhere</a>
            <a href="/products" target="_blank">New window</a></nav>
            <form action="/search" method="get"><label for="q">Search</label>
              <input id="q" name="q" type="text"><button type="submit">Go</button></form>
            <button onclick="window.open('/products')">Open popup</button>
            <button onclick="alert('hi'); document.getElementById('after').textContent='alert done'">Alert</button>
            <p id="after">no alert yet</p>
            <img src="{sites.other}/pixel.png" alt="remote pixel" width="10" height="10">
            <label for="note">Note</label><input id="note" name="note" type="text" value="old text">""",
        )

    async def products(_: web.Request) -> web.Response:
        items = "".join(f"<li><a href='/products/{i}'>Product {i}</a></li>" for i in range(60))
        return _page(
            "Products",
            f"""<h1>Products</h1><div id="hov" onmouseover="this.textContent='hovered!'">Hover me</div>
            <ul>{items}</ul><p>Bottom of the list</p>""",
        )

    async def product(req: web.Request) -> web.Response:
        i = req.match_info["i"]
        return _page(f"Product {i}", f"<h1>Product {i}</h1><p class='price'>Price: ${i}.99</p>")

    async def search(req: web.Request) -> web.Response:
        q = req.query.get("q", "")
        return _page("Search results", f"<h1>Results for {html.escape(q)}</h1>")

    async def login_page(req: web.Request) -> web.Response:
        if req.method == "POST":
            form = await req.post()
            if form.get("_username") == "alice" and form.get("_password") == "pw":
                resp = web.HTTPFound("/account")
                resp.set_cookie("tiny_session", "alice")
                raise resp
        return _page(
            "Log in",
            """<form method="post" action="/login"><label for="u">Username</label>
            <input id="u" name="_username"><label for="p">Password</label>
            <input id="p" name="_password" type="password"><button type="submit">Log in</button></form>""",
        )

    async def account(req: web.Request) -> web.Response:
        if req.cookies.get("tiny_session") != "alice":
            raise web.HTTPFound("/login")
        return _page("My account", "<h1>Hello alice</h1><p id='who'>Signed in as alice</p>")

    app = web.Application()
    app.router.add_get("/", home)
    app.router.add_get("/products", products)
    app.router.add_get("/products/{i}", product)
    app.router.add_get("/search", search)
    app.router.add_route("*", "/login", login_page)
    app.router.add_get("/account", account)
    return app


def _other_app(sites: TinySites) -> web.Application:
    async def anything(req: web.Request) -> web.Response:
        sites.other_hits.append(req.path)
        return _page("Elsewhere", "<h1>Another origin</h1>")

    app = web.Application()
    app.router.add_get("/{tail:.*}", anything)
    return app


def _judge_app(sites: TinySites) -> web.Application:
    async def chat(req: web.Request) -> web.Response:
        body = await req.json()
        sites.judge_requests.append(body)
        prompt = body["messages"][-1]["content"].lower()
        # Fake judge: "correct" when the graded answer contains the word "paris".
        answer = prompt.rsplit("answer to grade:", 1)[-1] if "answer to grade:" in prompt else prompt
        verdict = "correct" if "paris" in answer else "incorrect"
        if "known reason:" in prompt:
            report = prompt.rsplit("report:", 1)[-1]
            verdict = "same" if "out of stock" in report else "different"
        return web.json_response({"choices": [{"message": {"role": "assistant", "content": verdict}}]})

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    return app


@pytest.fixture(scope="module")
def tiny_sites() -> Iterator[TinySites]:
    """The tiny sites on free loopback ports, served from a thread for the whole module."""
    sites = TinySites()
    loop = asyncio.new_event_loop()
    runners: list[web.AppRunner] = []
    started = threading.Event()

    async def start() -> None:
        for attr, make in (("site", _site_app), ("other", _other_app), ("judge", _judge_app)):
            runner = web.AppRunner(make(sites))
            await runner.setup()
            tcp = web.TCPSite(runner, "127.0.0.1", 0)
            await tcp.start()
            port = runner.addresses[0][1]
            setattr(sites, attr, f"http://127.0.0.1:{port}")
            runners.append(runner)

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert started.wait(10)
    # `other` is referenced by `site`'s pages, which are built per request: both ports are known now.
    yield sites

    async def stop() -> None:
        for runner in runners:
            await runner.cleanup()

    asyncio.run_coroutine_threadsafe(stop(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


def task(task_id: int, start: str, eval_: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A task config in WebArena's format on the `shopping` site (the tiny site)."""
    config = {
        "sites": ["shopping"],
        "task_id": task_id,
        "require_login": False,
        "storage_state": None,
        "start_url": start,
        "geolocation": None,
        "intent_template": "test {{n}}",
        "instantiation_dict": {"n": task_id},
        "intent": f"tiny task {task_id}",
        "require_reset": False,
        "eval": {
            "eval_types": [],
            "reference_answers": None,
            "reference_url": "",
            "program_html": [],
            "string_note": "",
            "reference_answer_raw_annotation": "",
            **eval_,
        },
        "intent_template_id": 0,
    }
    config.update(extra)
    return config


# Task ids of TINY_TASKS, by what they check.
T_EXACT, T_MUST, T_URL, T_HTML, T_FUZZY, T_NA, T_LOGIN, T_DOWN, T_HTML_URL, T_MULTI = range(10)


def tiny_tasks(down_url: str) -> list[dict[str, Any]]:
    s = "__SHOPPING__"
    return [
        task(
            T_EXACT,
            f"{s}/",
            {"eval_types": ["string_match"], "reference_answers": {"exact_match": "Welcome"}},
        ),
        task(
            T_MUST,
            f"{s}/products/7",
            {"eval_types": ["string_match"], "reference_answers": {"must_include": ["7.99"]}},
        ),
        task(
            T_URL,
            f"{s}/",
            {"eval_types": ["url_match"], "reference_url": f"{s}/search?q=socks |OR| {s}/search?q=hats"},
        ),
        task(
            T_HTML,
            f"{s}/",
            {
                "eval_types": ["program_html"],
                "program_html": [
                    {
                        "url": "last",
                        "locator": "document.querySelector('#note').value",
                        "required_contents": {"exact_match": "new note"},
                    },
                    {
                        "url": f"{s}/products/3",
                        "locator": "",
                        "required_contents": {"must_include": ["Price: $3.99 |OR| nothing"]},
                    },
                ],
            },
        ),
        task(
            T_FUZZY,
            f"{s}/",
            {"eval_types": ["string_match"], "reference_answers": {"fuzzy_match": ["Paris, France"]}},
        ),
        task(
            T_NA,
            f"{s}/",
            {
                "eval_types": ["string_match"],
                "reference_answers": {"fuzzy_match": "N/A"},
                "string_note": "the item is out of stock",
            },
        ),
        task(
            T_LOGIN,
            "__REDDIT__/account",
            {
                "eval_types": ["program_html"],
                "program_html": [
                    {
                        "url": "last",
                        "locator": "document.querySelector('#who').outerText",
                        "required_contents": {"must_include": ["alice"]},
                    }
                ],
            },
            sites=["reddit"],
            require_login=True,
        ),
        task(
            T_DOWN,
            f"{down_url}/",
            {"eval_types": ["url_match"], "reference_url": f"{down_url}/"},
            sites=["wikipedia"],
        ),
        task(
            T_HTML_URL,
            f"{s}/",
            {
                "eval_types": ["url_match", "string_match"],
                "reference_url": f"{s}/products/5",
                "reference_answers": {"must_include": ["5.99", "Product 5"]},
            },
        ),
        task(
            T_MULTI,
            f"{s}/ |AND| {s}/products",
            {"eval_types": ["string_match"], "reference_answers": {"must_include": ["0"]}},
        ),
    ]


@pytest.fixture(scope="module")
def tiny_settings(tiny_sites: TinySites, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """webarena settings for the tiny tasks: a JSON list file, the tiny site as shopping and reddit,
    a closed port as wikipedia, the fake judge."""
    import socket

    with socket.socket() as s:  # a port nobody listens on: the "site that is down"
        s.bind(("127.0.0.1", 0))
        down = f"http://127.0.0.1:{s.getsockname()[1]}"
    folder = tmp_path_factory.mktemp("webarena-tasks")
    path = folder / "test.raw.json"
    path.write_text(json.dumps(tiny_tasks("__WIKIPEDIA__")))
    return {
        "tasks": str(path),
        "shopping": tiny_sites.site,
        "reddit": tiny_sites.site,
        "wikipedia": down,
        "reddit_username": "alice",
        "reddit_password": "pw",
        "judge_url": tiny_sites.judge + "/v1",
        "judge_model": "fake-judge",
        "load_timeout_s": "5",
    }


def write_task_dir(folder: Path, configs: list[dict[str, Any]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for c in configs:
        (folder / f"{c['task_id']}.json").write_text(json.dumps(c))
    return folder


# --- W2: the built-in sites (envs/webarena/sites), started once per test session -----------------
@pytest.fixture(scope="session")
def builtin_sites() -> Iterator[Any]:
    from agentgym.envs.webarena.sites import start_sites

    with start_sites() as sites:
        yield sites
