"""`agentgym view` in a real browser: the real viewer process over real eval runs, driven by Chromium.

One module-scoped fixture builds the data (two eval runs played by the real CLI, a copy to grow,
a hostile AgentTraj file, a trajectory with token logprobs; see viewer_data.py) and starts the
viewer on a free port. Each test gets a fresh browser page that must not request anything outside
the viewer's origin and must not log a JavaScript error or a CSP violation.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.client import viewer_data

pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
if CHROMIUM is None:
    pytest.skip("no Chromium at /usr/bin/chromium (apt-get install chromium)", allow_module_level=True)

from playwright.sync_api import Browser, Page, expect, sync_playwright  # noqa: E402

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]  # fmt: skip
expect.set_options(timeout=10_000)


@dataclass
class Viewer:
    base: str
    data: viewer_data.ViewerData
    runs: dict[str, str]  # "expert" | "random" | "live" | "hostile" | "tokens" | "job" -> run id
    proc: subprocess.Popen[bytes]

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.base + path, timeout=10) as r:
            return json.loads(r.read())


def _wait_ready(base: str, proc: subprocess.Popen[bytes], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    last = ""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise RuntimeError(f"agentgym view exited ({proc.returncode}): {err[-3000:]}")
        try:
            with urllib.request.urlopen(base + "/api/status", timeout=2) as r:
                status = json.loads(r.read())
            if not status.get("indexing"):
                return
            last = str(status)
        except OSError as exc:
            last = str(exc)
        time.sleep(0.2)
    raise TimeoutError(f"agentgym view not ready after {timeout_s:.0f} s: {last}")


@pytest.fixture(scope="module")
def viewer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Viewer]:
    data = viewer_data.build(tmp_path_factory.mktemp("viewer"))
    port = viewer_data.free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "agentgym.client.cli", "--log-level", "warning", "view",
         *map(str, data.paths), "--port", str(port), "--no-browser"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(base, proc)
        with urllib.request.urlopen(base + "/api/runs", timeout=10) as r:
            runs = json.loads(r.read())["runs"]
        ids: dict[str, str] = {}
        for name in ("expert", "random", "live", "hostile", "tokens", "job"):
            path = getattr(data, name).resolve()
            found = [r["id"] for r in runs if Path(r["path"]).resolve() == path]
            assert found, f"no run for {path} in {[r['path'] for r in runs]}"
            ids[name] = found[0]
        yield Viewer(base=base, data=data, runs=ids, proc=proc)
    finally:
        viewer_data.stop(proc)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Browser, viewer: Viewer) -> Iterator[Page]:
    """A page that may only talk to the viewer, and must log no error (a CSP violation is one)."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    pg = context.new_page()
    requests: list[str] = []
    errors: list[str] = []
    pg.on("request", lambda req: requests.append(req.url))
    pg.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
    pg.on("console", lambda msg: errors.append(f"console: {msg.text}") if msg.type == "error" else None)
    try:
        yield pg
        outside = [u for u in requests if not u.startswith(viewer.base + "/")]
        assert not outside, f"requests left the origin: {outside}"
        assert not errors, errors
    finally:
        context.close()


def open_view(page: Page, viewer: Viewer, hash_: str) -> None:
    page.goto(f"{viewer.base}/#{hash_}")


def total(page: Page) -> Any:
    return page.get_by_test_id("episodes-total")


# --- tests ------------------------------------------------------------------------------------------
def test_runs_list_shows_both_eval_runs_with_success_per_env(page: Page, viewer: Viewer) -> None:
    open_view(page, viewer, "/runs")
    expect(page.get_by_test_id("live-indicator")).to_have_attribute("data-state", "live")
    for name, pct in (("expert", "100%"), ("random", "0%")):
        row = page.locator(f'[data-testid="run-row"][data-run="{viewer.runs[name]}"]')
        expect(row).to_be_visible()
        expect(row).to_contain_text(f"eval-{name}")
        expect(row).to_contain_text(name)  # policy
        for env in ("maze", "wordle"):
            chip = row.locator(f'[data-testid="run-env"][data-env="{env}"]')
            expect(chip).to_contain_text(env)
            expect(chip.locator(".chip-success")).to_have_text(pct)
    # the run page: the AgentEval table, its average row and the success chart
    page.locator(
        f'[data-testid="run-row"][data-run="{viewer.runs["expert"]}"] [data-testid="run-link"]'
    ).click()
    expect(page.get_by_test_id("run-title")).to_have_text("eval-expert")
    rows = page.get_by_test_id("eval-row")
    expect(rows).to_have_count(2)
    expect(rows.filter(has_text="maze")).to_contain_text("8/8")
    expect(page.get_by_test_id("eval-average")).to_contain_text("100%")
    expect(page.locator('[data-testid="success-chart"] rect.bar')).to_have_count(2)


def test_training_run_shows_curves_and_its_evaluations(page: Page, viewer: Viewer) -> None:
    job = viewer.runs["job"]
    curves = viewer.get(f"/api/runs/{job}")["curves"]
    open_view(page, viewer, f"/run/{job}")
    expect(page.get_by_test_id("run-title")).to_contain_text("job-000001")
    charts = page.get_by_test_id("curve-chart")
    expect(charts).to_have_count(len(curves["charts"]))
    held_out = charts.filter(has_text="held-out success")
    expect(held_out.locator("path.series")).to_have_count(2)
    expect(held_out).to_contain_text("eval maze")
    expect(page.locator('[data-testid="curves-table"] tbody tr')).to_have_count(len(curves["table"]["rows"]))
    evals = page.locator('[data-testid="evals-table"] tbody tr')
    expect(evals).to_have_count(2)
    expect(evals.last).to_contain_text("80%")
    evals.last.locator("a").first.click()
    expect(page.get_by_test_id("run-title")).to_contain_text("step-12")
    expect(page.get_by_test_id("eval-average")).to_contain_text("67.5%")  # (80% + 55%) / 2


def test_filters_change_rows_and_total_and_live_in_the_url(page: Page, viewer: Viewer) -> None:
    run = viewer.runs["random"]
    open_view(page, viewer, f"/episodes?run={run}")
    expect(total(page)).to_have_attribute("data-total", "16")
    expect(page.get_by_test_id("episode-row")).to_have_count(16)
    page.get_by_test_id("filter-env").select_option("wordle")
    expect(total(page)).to_have_attribute("data-total", "8")
    page.get_by_test_id("filter-success").select_option("0")
    expect(total(page)).to_have_attribute("data-total", "8")
    rows = page.get_by_test_id("episode-row")
    expect(rows).to_have_count(8)
    assert set(rows.evaluate_all("rs => rs.map(r => r.dataset.env + '/' + r.dataset.success)")) == {
        "wordle/0"
    }
    assert "env=wordle" in page.url and "success=0" in page.url
    page.get_by_test_id("filter-success").select_option("1")  # the random policy never wins
    expect(total(page)).to_have_attribute("data-total", "0")
    expect(page.get_by_test_id("episodes-empty")).to_be_visible()
    page.go_back()  # back to success=0
    expect(total(page)).to_have_attribute("data-total", "8")
    expect(page.get_by_test_id("filter-success")).to_have_value("0")
    page.reload()  # the filters live in the hash
    expect(total(page)).to_have_attribute("data-total", "8")
    expect(page.get_by_test_id("filter-env")).to_have_value("wordle")
    expect(page.get_by_test_id("page-info")).to_have_text("page 1 of 1")
    # paging: 5 rows a page over the 16 episodes, through the per_page parameter
    open_view(page, viewer, f"/episodes?run={run}&per_page=5")
    expect(page.get_by_test_id("page-info")).to_have_text("page 1 of 4")
    page.get_by_test_id("page-next").click()
    expect(page.get_by_test_id("page-info")).to_have_text("page 2 of 4")
    expect(page.get_by_test_id("episode-row")).to_have_count(5)
    assert "page=2" in page.url


def test_full_text_search_finds_an_episode_by_a_word_of_its_observations(page: Page, viewer: Viewer) -> None:
    open_view(page, viewer, f"/episodes?run={viewer.runs['hostile']}")
    expect(total(page)).to_have_attribute("data-total", "4")
    page.get_by_test_id("filter-q").fill(viewer_data.SEARCH_WORD)
    expect(total(page)).to_have_attribute("data-total", "1")
    expect(page.get_by_test_id("episode-row")).to_have_attribute("data-key", "wordle_903")
    assert f"q={viewer_data.SEARCH_WORD}" in page.url
    page.get_by_test_id("filter-q").fill("nosuchwordanywhere")
    expect(total(page)).to_have_attribute("data-total", "0")


def test_replay_steps_through_an_episode_with_the_keyboard(page: Page, viewer: Viewer) -> None:
    open_view(page, viewer, f"/episodes?run={viewer.runs['expert']}&env=maze")
    row = page.get_by_test_id("episode-row").first
    uid = row.get_attribute("data-uid")
    row.locator("td").nth(2).click()  # anywhere on the row opens the replay
    expect(page.get_by_test_id("episode-view")).to_be_visible()
    episode = viewer.get(f"/api/episodes/{uid}")
    steps = episode["steps"]
    assert len(steps) > 3
    indicator = page.get_by_test_id("step-indicator")
    current = page.locator('[data-testid="step"][data-current="true"]')

    def at(k: int) -> None:
        expect(indicator).to_have_attribute("data-step", str(k))
        expect(current).to_have_attribute("data-index", str(k))
        obs = steps[k]["observation"]
        if obs:
            expect(current.get_by_test_id("step-observation")).to_have_text(obs)
        if steps[k]["action"]:
            expect(current.get_by_test_id("step-action")).to_have_text(steps[k]["action"])

    expect(page.get_by_test_id("opening")).to_contain_text(episode["opening"][0]["text"][:40])
    at(0)
    page.keyboard.press("ArrowRight")
    at(1)
    page.keyboard.press("j")
    at(2)
    page.keyboard.press("k")
    at(1)
    page.keyboard.press("End")
    at(len(steps) - 1)
    expect(current).to_contain_text(f"score {steps[-1]['score']:g}")
    page.keyboard.press("ArrowLeft")
    at(len(steps) - 2)
    assert f"step={len(steps) - 2}" in page.url
    page.reload()  # the step lives in the hash
    at(len(steps) - 2)
    page.keyboard.press("Home")
    at(0)
    # unfolding replay: later steps are hidden until "all steps"
    expect(page.get_by_test_id("step").nth(len(steps) - 1)).to_be_hidden()
    page.get_by_test_id("show-all").check()
    expect(page.get_by_test_id("step").nth(len(steps) - 1)).to_be_visible()
    expect(page.get_by_test_id("info-panel")).to_contain_text("max_steps")


def test_per_token_logprobs_are_shaded(page: Page, viewer: Viewer) -> None:
    open_view(page, viewer, f"/episodes?run={viewer.runs['tokens']}")
    page.get_by_test_id("episode-row").first.locator("a").click()
    expect(page.get_by_test_id("show-tokens")).to_be_checked()
    page.keyboard.press("End")
    tokens = page.get_by_test_id("token")
    expect(tokens).to_have_count(36)  # 3 agent turns x 12 generated tokens
    shades = tokens.evaluate_all("ts => ts.map(t => [t.style.backgroundColor, Number(t.dataset.lp)])")
    assert all(bg.startswith("rgba(") for bg, _ in shades), shades[:3]
    # less likely tokens are shaded darker
    alpha = {lp: float(bg.rstrip(")").split(",")[-1]) for bg, lp in shades}
    assert len(set(alpha.values())) > 2
    assert alpha[min(alpha)] > alpha[max(alpha)]
    expect(page.get_by_test_id("token-counts")).to_contain_text("36")
    page.get_by_test_id("show-tokens").uncheck()
    expect(tokens.first).to_be_hidden()


def test_compare_expert_and_random(page: Page, viewer: Viewer) -> None:
    a, b = viewer.runs["random"], viewer.runs["expert"]
    counts = viewer.get(f"/api/compare?a={a}&b={b}")["counts"]
    assert counts["gained"] > 0
    open_view(page, viewer, "/runs")
    page.locator(f'[data-testid="run-select"][data-run="{a}"]').check()
    page.locator(f'[data-testid="run-select"][data-run="{b}"]').check()
    page.get_by_test_id("compare-selected").click()
    expect(page.get_by_test_id("compare-view")).to_be_visible()
    expect(page.get_by_test_id("count-gained")).to_have_attribute("data-count", str(counts["gained"]))
    expect(page.get_by_test_id("count-lost")).to_have_attribute("data-count", str(counts["lost"]))
    expect(page.get_by_test_id("count-gained")).to_contain_text(str(counts["gained"]))
    expect(page.locator('[data-testid="compare-per-env"] tbody tr')).to_have_count(2)
    tasks = page.get_by_test_id("compare-task")
    expect(tasks).to_have_count(counts["gained"] + counts["lost"])  # "changed" by default
    assert set(tasks.evaluate_all("ts => ts.map(t => t.dataset.flip)")) == {"gained"}
    page.get_by_test_id("compare-flip").select_option("lost")
    expect(page.get_by_test_id("compare-task")).to_have_count(counts["lost"])
    page.get_by_test_id("compare-flip").select_option("gained")
    task = page.get_by_test_id("compare-task").first
    item = task.get_attribute("data-item")
    task.click()
    side = page.get_by_test_id("side-by-side")
    expect(side).to_be_visible()
    assert f"task={item}" in page.url
    for which in ("a", "b"):
        expect(side.get_by_test_id(f"replay-{which}").get_by_test_id("step").first).to_be_visible()
    page.keyboard.press("ArrowRight")
    for which in ("a", "b"):
        expect(side.get_by_test_id(f"replay-{which}")).to_have_attribute("data-step", "1")
    # each side is that run's episode of the task: B (the expert) ends with its winning action
    pair = next(
        t for t in viewer.get(f"/api/compare?a={a}&b={b}&flip=gained")["tasks"] if t["item_id"] == item
    )
    last = viewer.get(f"/api/episodes/{pair['b']['uid']}")["steps"][-1]
    expect(side.get_by_test_id("replay-b").get_by_test_id("step").last).to_contain_text(last["action"])


def test_live_update_without_reload(page: Page, viewer: Viewer) -> None:
    run = viewer.runs["live"]
    open_view(page, viewer, f"/episodes?run={run}&env=maze")
    expect(total(page)).to_have_attribute("data-total", "8")
    expect(page.get_by_test_id("live-indicator")).to_have_attribute("data-state", "live")
    page.evaluate("window.__sameDocument = 1")
    before = page.get_by_test_id("live-indicator").get_attribute("data-version")
    new = viewer_data.append_trajectories(viewer.data.live, 2, sample=7, env="maze")
    expect(total(page)).to_have_attribute("data-total", "10", timeout=20_000)
    assert page.evaluate("window.__sameDocument") == 1  # no reload
    expect(page.get_by_test_id("live-indicator")).not_to_have_attribute("data-version", before or "")
    keys = page.get_by_test_id("episode-row").evaluate_all("rs => rs.map(r => r.dataset.key)")
    assert {t.key for t in new} <= set(keys), keys
    # filters kept
    expect(page.get_by_test_id("filter-env")).to_have_value("maze")
    assert "env=maze" in page.url
    # the runs list counts them too
    open_view(page, viewer, "/runs")
    row = page.locator(f'[data-testid="run-row"][data-run="{run}"]')
    expect(row.get_by_test_id("run-episodes")).to_have_text("18")
    expect(row.get_by_test_id("run-live")).to_be_visible()  # it just grew


def test_hostile_text_is_shown_not_run(page: Page, viewer: Viewer) -> None:
    run = viewer.runs["hostile"]
    open_view(page, viewer, f"/episodes?run={run}&sort=arrival")  # the file's order: rows[i] is record i
    expect(total(page)).to_have_attribute("data-total", "4")
    expect(page.get_by_test_id("episodes-table")).to_contain_text(viewer_data.SCRIPT)
    expect(page.get_by_test_id("episodes-table")).to_contain_text("<b>evil</b>")
    expect(page.get_by_test_id("filter-env").locator("option", has_text="<b>evil</b>")).to_have_count(1)
    rows = page.get_by_test_id("episode-row").evaluate_all(
        "rs => rs.map(r => [r.dataset.uid, r.dataset.key])"
    )
    assert len(rows) == 4
    for uid, key in rows:
        open_view(page, viewer, f"/episode/{uid}?all=1")
        expect(page.get_by_test_id("episode-title")).to_have_text(key)
        expect(page.get_by_test_id("step").last).to_be_visible()
        assert page.evaluate("window.__pwned") is None
    uids = [uid for uid, _ in rows]
    open_view(page, viewer, f"/episode/{uids[0]}?all=1")
    expect(page.get_by_test_id("episode-title")).to_have_text(rows[0][1])
    replay = page.get_by_test_id("replay")
    expect(replay).to_contain_text(viewer_data.SCRIPT)
    expect(replay).to_contain_text(viewer_data.IMG)
    expect(replay).to_contain_text(viewer_data.SVG)
    expect(page.get_by_test_id("info-panel")).to_contain_text(viewer_data.SCRIPT)
    expect(page.get_by_text(viewer_data.SCRIPT).first).to_be_visible()
    open_view(page, viewer, f"/episode/{uids[1]}?all=1")
    expect(page.get_by_test_id("episode-title")).to_have_text(rows[1][1])
    expect(page.get_by_test_id("replay")).to_contain_text(
        '<button onclick="window.__pwned=1">Buy Now</button>'
    )
    open_view(page, viewer, "/runs")
    expect(page.locator(f'[data-testid="run-row"][data-run="{run}"]')).to_contain_text("<b>evil</b>")
    # nothing from the data became markup
    assert page.evaluate("window.__pwned") is None
    assert page.evaluate("document.querySelectorAll('script').length") == 1
    assert page.evaluate("document.querySelectorAll('img, iframe, style, object, embed').length") == 0
    assert (
        page.evaluate(
            "[...document.querySelectorAll('*')].filter(e => [...e.attributes].some(a => a.name.startsWith('on'))).length"
        )
        == 0
    )
