"""`agentgym view`: a read-only web app over runs, episodes and training curves.

    state = ViewerState(["runs/", "grpc://trainer:50060"], tokenizer=None)
    app = make_app(state)           # aiohttp; GET only; the page is static/index.html
    web.run_app(app, host="127.0.0.1", port=8900)

The API the page uses is described in docs/viewer.md. Everything that touches the index or the
disk runs on one thread (`ViewerState.call`), never on the event loop; a watcher task polls every
source each `poll_s` and bumps `version`, which `/api/events` pushes to open pages.

Safety: the app only answers GET (and HEAD); it never writes what it reads; every response
carries a Content-Security-Policy that allows only the app's own script and no inline code, and
the page inserts trajectory text as text, never as HTML.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import orjson
from aiohttp import web

from agentgym.client.view.episode import Decode, steps_of
from agentgym.client.view.index import EpisodeIndex, Filters, episode_json
from agentgym.client.view.sources import Discovery, Run, Runs

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
STATIC_FILES = {"index.html": "text/html", "app.js": "text/javascript", "app.css": "text/css"}
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
LIVE_S = 30.0  # a run that gained episodes this recently is shown as live
T = TypeVar("T")


class ViewerState:
    """The runs, the index, and the thread that owns both."""

    def __init__(self, paths: list[str], *, tokenizer: str | None = None, poll_s: float = 1.0) -> None:
        self.paths = paths
        self.poll_s = poll_s
        self.runs = Runs()
        self.discovery = Discovery(paths, self.runs)
        self._tmp = tempfile.TemporaryDirectory(prefix="agentgym-view-")
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="view-index")
        self.index = EpisodeIndex(Path(self._tmp.name) / "index.sqlite")
        self.version = 0
        self.indexing = True
        self.changed = asyncio.Event()
        self.closing = asyncio.Event()
        self._stats: tuple[int, dict[str, Any]] = (-1, {})
        self._facets: tuple[Any, dict[str, Any]] = (None, {})
        self._decode = _load_decoder(tokenizer) if tokenizer else None
        self._watcher: asyncio.Task[None] | None = None
        self._last_scan = 0.0

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    # --- following the sources ---------------------------------------------------------------------
    async def start(self) -> None:
        """Index everything in the background (the page is served meanwhile, `indexing` true),
        then follow the sources."""
        self._watcher = asyncio.create_task(self._watch())

    async def _watch(self) -> None:
        try:
            await self.refresh(scan=True, progress=True)
        except Exception:
            log.exception("indexing the viewer's sources failed")
        for run in self.runs.by_id.values():  # what was there at start is not "live"
            run.grew_at = 0.0
        self.indexing = False
        self._bump()
        while True:
            await asyncio.sleep(self.poll_s)
            try:
                scan = time.monotonic() - self._last_scan > 5 * self.poll_s
                if await self.refresh(scan=scan):
                    self._bump()
            except Exception:  # a source that fails to read must not stop the others being followed
                log.exception("polling the viewer's sources failed")

    async def refresh(self, *, scan: bool, progress: bool = False) -> bool:
        """Find new sources (when `scan`) and index what every source gained; True if anything did.
        With `progress`, open pages are told after each part (the first indexing)."""
        changed = False
        if scan:
            self._last_scan = time.monotonic()
            changed = bool(await self.call(self.discovery.scan))
        for source in list(self.discovery.sources.values()):
            # One call per part, so that page requests interleave with a long first indexing.
            while True:
                if await self.call(source.poll, self.index):
                    changed = True
                    if progress:
                        self._bump()
                if not source.more:
                    break
        return changed

    def _bump(self) -> None:
        self.version += 1
        self.changed.set()
        self.changed = asyncio.Event()

    async def close(self) -> None:
        if self._watcher:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        await self.call(self.index.close)
        self._pool.shutdown()
        self._tmp.cleanup()

    # --- what the API answers (run on the index thread) --------------------------------------------
    def env_stats(self) -> dict[str, Any]:
        if self._stats[0] != self.version:
            self._stats = (self.version, self.index.env_stats())
        return self._stats[1]

    def run_json(self, run: Run) -> dict[str, Any]:
        envs = self.env_stats().get(run.id, {})
        out = run.describe()
        total = sum(m["episodes"] for m in envs.values())
        starts = [m["t"] for m in envs.values() if m["t"] is not None]
        out["time"] = run.time if run.time is not None else (min(starts) if starts else None)
        out["episodes"] = total
        out["envs"] = {
            env: {k: m[k] for k in ("episodes", "success", "reward", "rounds")} for env, m in envs.items()
        }
        out["average"] = _average(list(out["envs"].values())) if envs else None
        state = (run.training or {}).get("state")
        out["live"] = state == "RUNNING" or (
            run.grew_at > 0 and time.monotonic() - run.grew_at < LIVE_S and not self.indexing
        )
        return out

    def run_detail(self, run: Run) -> dict[str, Any]:
        out = self.run_json(run)
        per_env = (run.results or {}).get("per_env") or {}
        table = []
        for env, m in sorted(out["envs"].items()):
            row = {"env": env, "planned": per_env.get(env, {}).get("planned"), **m}
            failed = per_env.get(env, {}).get("failed")
            if type(failed) is int and failed > 0:
                # As `agentgym eval` counts them: an episode that failed (an infrastructure error)
                # is not a success and scores 0. The finished-only rate is kept beside it.
                n = m["episodes"]
                row.update(failed=failed, success_finished=m["success"], reward_finished=m["reward"])
                for k in ("success", "reward"):
                    row[k] = None if m[k] is None else m[k] * n / (n + failed)
            table.append(row)
        for env, m in sorted(per_env.items()):  # planned but nothing played yet
            if env not in out["envs"]:
                table.append({"env": env, "planned": m.get("planned"), "episodes": 0, "success": None,
                              "reward": None, "rounds": None})  # fmt: skip
        failed = (run.results or {}).get("failed")
        if any(r.get("failed") for r in table):
            out["average"] = _average([r for r in table if r["episodes"]])
        out.update(table=table, failed=failed, results=run.results, curves=run.curves, evals=run.evals)
        return out

    def episodes(self, f: Filters) -> dict[str, Any]:
        out = self.index.page(f)
        key = (self.version, tuple(sorted(f.runs)))
        if self._facets[0] != key:
            self._facets = (key, self.index.facets(f.runs))
        out["facets"] = self._facets[1]
        return out

    def episode(self, uid: int) -> dict[str, Any] | None:
        row = self.index.get(uid)
        if row is None:
            return None
        out: dict[str, Any] = {"episode": episode_json(row), "trajectory": None, "opening": [], "steps": [],
                               "tokens": None}  # fmt: skip
        if row["src"] is None:
            out["error"] = "this run recorded results only, not the conversation"
            return out
        try:
            data = self.index.blob(uid) if row["src"] == "blob" else _read_record(row)
            record = orjson.loads(data or b"null")
        except (OSError, ValueError) as exc:
            out["error"] = f"the record could not be read: {exc}"
            return out
        if not isinstance(record, dict):
            out["error"] = "the record is not a JSON object"
            return out
        out["trajectory"] = record
        out.update(steps_of(record, self._decode))
        return out

    def compare(self, a: Run, b: Run, flip: str | None, env: str | None) -> dict[str, Any]:
        ra, rb = self.run_json(a), self.run_json(b)
        per_env = []
        for e in sorted(set(ra["envs"]) | set(rb["envs"])):
            ma, mb = ra["envs"].get(e), rb["envs"].get(e)
            per_env.append({
                "env": e, "a": ma, "b": mb,
                "delta_success": _delta(ma, mb, "success"), "delta_reward": _delta(ma, mb, "reward"),
            })  # fmt: skip
        ta, tb = self.index.tasks(a.id), self.index.tasks(b.id)
        counts = dict.fromkeys(("gained", "lost", "both", "neither", "only_a", "only_b"), 0)
        tasks = []
        for item in sorted(set(ta) | set(tb), key=_task_order):
            x, y = ta.get(item), tb.get(item)
            kind = _flip(x, y)
            counts[kind] += 1
            if env and (x or y or {}).get("env") != env:
                continue
            if flip == "changed" and kind not in ("gained", "lost"):
                continue
            if flip and flip != "changed" and kind != flip:
                continue
            first = x or y or {}
            tasks.append({
                "item_id": item, "env": first.get("env"), "task_id": first.get("task_id"),
                "a": _side(x), "b": _side(y), "flip": kind,
            })  # fmt: skip
        return {"a": ra, "b": rb, "per_env": per_env, "counts": counts, "tasks": tasks}


def _average(envs: list[dict[str, Any]]) -> dict[str, Any]:
    """The unweighted mean over envs, as AgentEval's average row."""
    out = {}
    for k in ("success", "reward", "rounds"):
        values = [m[k] for m in envs if m[k] is not None]
        out[k] = sum(values) / len(values) if values else None
    return out


def _delta(a: dict[str, Any] | None, b: dict[str, Any] | None, k: str) -> float | None:
    if not a or not b or a.get(k) is None or b.get(k) is None:
        return None
    return b[k] - a[k]


def _solved(t: dict[str, Any]) -> bool:
    return t["success"] is not None and t["success"] >= 0.5


def _flip(a: dict[str, Any] | None, b: dict[str, Any] | None) -> str:
    if a is None:
        return "only_b"
    if b is None:
        return "only_a"
    sa, sb = _solved(a), _solved(b)
    return "both" if sa and sb else "gained" if sb else "lost" if sa else "neither"


def _side(t: dict[str, Any] | None) -> dict[str, Any] | None:
    if t is None:
        return None
    return {k: t[k] for k in ("success", "reward", "rounds", "uid", "episodes")}


def _task_order(item_id: str) -> tuple[str, int, str]:
    env, _, n = item_id.rpartition("_")
    return (env, int(n), "") if n.isdigit() else (item_id, 0, item_id)


def _read_record(row: Any) -> bytes:
    """The record JSON at a row's place on disk: a line of a JSON Lines file, or a store line."""
    if row["seg"] is not None:
        from agentgym.trainer.store import read_line

        return read_line(Path(row["src"]).parent, row["seg"], row["off"], row["len"])
    with open(row["src"], "rb") as f:
        f.seek(row["off"])
        return f.read(row["len"])


def _load_decoder(path: str) -> Decode:
    """Token texts from a Hugging Face tokenizer (needs the train extra); a clear error if not."""
    try:
        from transformers import AutoTokenizer
    except ImportError as exc:
        raise SystemExit(
            "--tokenizer needs transformers (pip install 'agentgym[train]'); without it tokens show as ids"
        ) from exc
    try:
        tok = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as exc:
        raise SystemExit(f"--tokenizer {path}: not a tokenizer folder ({exc})") from None

    def decode(ids: list[int]) -> list[str]:
        return [tok.decode([i]) for i in ids]

    return decode


# --- the web app -------------------------------------------------------------------------------------
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        resp = await handler(request)
    except web.HTTPException as exc:
        resp = exc
    resp.headers["Content-Security-Policy"] = CSP
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Referrer-Policy"] = "no-referrer"
    resp.headers.setdefault("Cache-Control", "no-store")
    if isinstance(resp, web.HTTPException):
        raise resp
    return resp


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY),
        status=status,
        content_type="application/json",
    )


def _error(status: int, message: str) -> web.Response:
    return _json({"error": message}, status)


def make_app(state: ViewerState) -> web.Application:
    app = web.Application(middlewares=[_headers])

    async def index(_: web.Request) -> web.Response:
        return web.Response(body=(STATIC / "index.html").read_bytes(), content_type="text/html")

    async def static(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in STATIC_FILES:
            return _error(404, f"no static file {name!r}")
        return web.Response(body=(STATIC / name).read_bytes(), content_type=STATIC_FILES[name])

    def run_or_error(run_id: str) -> Run | web.Response:
        run = state.runs.by_id.get(run_id)
        return run if run else _error(404, f"unknown run {run_id!r}; GET /api/runs lists the runs")

    async def runs(_: web.Request) -> web.Response:
        listed = await state.call(lambda: [state.run_json(r) for r in state.runs.by_id.values()])
        return _json({"runs": listed, "indexing": state.indexing, "version": state.version})

    async def run(request: web.Request) -> web.Response:
        found = run_or_error(request.match_info["id"])
        if isinstance(found, web.Response):
            return found
        return _json(await state.call(state.run_detail, found))

    async def episodes(request: web.Request) -> web.Response:
        try:
            f = Filters.parse(request.query, set(state.runs.by_id))
        except ValueError as exc:
            return _error(400, str(exc))
        return _json(await state.call(state.episodes, f))

    async def episode(request: web.Request) -> web.Response:
        raw = request.match_info["uid"]
        if not raw.isdigit():
            return _error(400, f"an episode id is a number, got {raw!r}")
        found = await state.call(state.episode, int(raw))
        if found is None:
            return _error(404, f"no episode {raw}")
        return _json(found)

    async def compare(request: web.Request) -> web.Response:
        q = request.query
        if "a" not in q or "b" not in q:
            return _error(400, "compare needs two runs: a=RUN&b=RUN")
        a, b = run_or_error(q["a"]), run_or_error(q["b"])
        for r in (a, b):
            if isinstance(r, web.Response):
                return r
        flip = q.get("flip") or None
        if flip not in (None, "gained", "lost", "changed", "both", "neither", "only_a", "only_b"):
            return _error(400, f"flip must be gained, lost or changed, got {flip!r}")
        return _json(await state.call(state.compare, a, b, flip, q.get("env") or None))

    async def status(_: web.Request) -> web.Response:
        episodes = await state.call(state.index.count)
        return _json({"version": state.version, "indexing": state.indexing, "runs": len(state.runs.by_id),
                      "episodes": episodes, "sources": state.paths})  # fmt: skip

    async def events(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"})
        await resp.prepare(request)
        sent = -1
        try:
            while True:
                if state.version != sent:
                    sent = state.version
                    data = orjson.dumps({"version": sent, "indexing": state.indexing})
                    await resp.write(b"data: " + data + b"\n\n")
                if state.closing.is_set():
                    return resp
                changed, closing = asyncio.ensure_future(state.changed.wait()), state.closing.wait()
                done, pending = await asyncio.wait(
                    [changed, asyncio.ensure_future(closing)], timeout=15, return_when=asyncio.FIRST_COMPLETED
                )
                for task in pending:
                    task.cancel()
                if not done:
                    await resp.write(b": keep-alive\n\n")  # also finds a closed page
        except ConnectionResetError:  # the page went away
            return resp

    async def not_allowed(request: web.Request) -> web.Response:
        if request.method in ("GET", "HEAD"):
            return _error(404, f"no page {request.path!r}")
        return _error(405, "the viewer is read-only: only GET is answered")

    app.router.add_get("/", index)
    app.router.add_get("/static/{name}", static)
    app.router.add_get("/api/runs", runs)
    app.router.add_get("/api/runs/{id}", run)
    app.router.add_get("/api/episodes", episodes)
    app.router.add_get("/api/episodes/{uid}", episode)
    app.router.add_get("/api/compare", compare)
    app.router.add_get("/api/status", status)
    app.router.add_get("/api/events", events)
    app.router.add_route("*", "/{tail:.*}", not_allowed)

    async def on_startup(_: web.Application) -> None:
        await state.start()

    async def on_shutdown(_: web.Application) -> None:
        state.closing.set()  # ends the event streams, which would otherwise hold the shutdown

    async def on_cleanup(_: web.Application) -> None:
        await state.close()

    app.on_startup.append(on_startup)
    app.on_shutdown.append(on_shutdown)
    app.on_cleanup.append(on_cleanup)
    return app


def is_loopback(host: str) -> bool:
    return host in ("127.0.0.1", "::1", "localhost") or host.startswith("127.")


def serve(paths: list[str], *, host: str, port: int, tokenizer: str | None, poll_s: float) -> None:
    """Run the viewer until interrupted (the `agentgym view` command)."""
    state = ViewerState(paths, tokenizer=tokenizer, poll_s=poll_s)
    app = make_app(state)
    url = f"http://{host}:{port}/"
    print(f"agentgym view: indexing {', '.join(paths)}; then serving {url} (Ctrl-C stops)", flush=True)
    # Open event streams never end by themselves: give them 2 s, not aiohttp's 60, at Ctrl-C.
    web.run_app(app, host=host, port=port, print=None, access_log=None, shutdown_timeout=2)
