"""Screenshots of `agentgym view` for the docs: docs/img/viewer-{runs,run,episodes,replay,compare,training}.png.

    python docs/viewer_screenshots.py                                # small demo data of its own
    python docs/viewer_screenshots.py --data runs/eval-a --data runs/eval-b --data runs/trainer \
        --tokenizer runs/bc/final

Without --data it builds demo data in a temporary folder (tests/client/viewer_data.py: two eval
runs played by `agentgym eval` with the expert and random policies on maze and wordle, a
trajectory with token logprobs, and an RL job folder with made-up curves). It then starts
`agentgym view` on a free port, drives Chromium (/usr/bin/chromium, headless) at 1280x800 and
writes one PNG per view. Needs the `playwright` Python package (not its bundled browsers).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.client import viewer_data  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]  # fmt: skip
VIEWPORT = {"width": 1280, "height": 800}


class Api:
    def __init__(self, base: str) -> None:
        self.base = base

    def get(self, path: str, **params: Any) -> Any:
        qs = urllib.parse.urlencode(params, doseq=True)
        with urllib.request.urlopen(f"{self.base}{path}{'?' + qs if qs else ''}", timeout=30) as r:
            return json.loads(r.read())


def wait_ready(api: Api, proc: subprocess.Popen[bytes], timeout_s: float = 300.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise SystemExit(f"agentgym view exited ({proc.returncode}): {err[-3000:]}")
        try:
            if not api.get("/api/status").get("indexing"):
                return
        except OSError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"agentgym view still indexing after {timeout_s:.0f} s")


def pick(api: Api) -> dict[str, str]:
    """The hash of each screenshot's view, chosen from what the viewer holds."""
    runs = api.get("/api/runs")["runs"]
    with_eps = [r for r in runs if r["episodes"] > 0 and r["has_trajectories"]]
    evals = [r for r in runs if r["kind"] in ("eval", "rollout") and r.get("envs")]
    shots: dict[str, str] = {"runs": "/runs"}
    if not runs:
        return shots
    # a run with an AgentEval table: the most envs, then the most episodes
    tabled = sorted(
        evals or runs, key=lambda r: (not r["has_trajectories"], -len(r.get("envs") or {}), -r["episodes"])
    )
    shots["run"] = f"/run/{tabled[0]['id']}"
    if with_eps:
        # episodes: the eval with trajectories and the most mixed outcomes, else the biggest run
        def mixed(r: dict[str, Any]) -> float:
            s = (r.get("average") or {}).get("success")
            return -abs(0.5 - s) if s is not None else -1.0

        ep_run = max(with_eps, key=lambda r: (mixed(r), r["episodes"]))
        shots["episodes"] = f"/episodes?run={ep_run['id']}"
        shots["replay"] = pick_replay(api, with_eps)
    # compare: the two comparable runs whose average success differs most (A the lower)
    pairs = [
        (abs(a["average"]["success"] - b["average"]["success"]), a, b)
        for i, a in enumerate(evals) for b in evals[i + 1:]
        if a.get("average") and b.get("average") and set(a["envs"]) & set(b["envs"])
    ]  # fmt: skip
    if pairs:
        _, a, b = max(pairs, key=lambda p: (p[0], p[1]["has_trajectories"] and p[2]["has_trajectories"]))
        if a["average"]["success"] > b["average"]["success"]:
            a, b = b, a
        cmp = api.get("/api/compare", a=a["id"], b=b["id"], flip="changed")
        task = next((t for t in cmp["tasks"] if t.get("a") and t.get("b") and t["a"].get("uid") is not None
                     and t["b"].get("uid") is not None), None)  # fmt: skip
        shots["compare"] = f"/compare?a={a['id']}&b={b['id']}" + (
            f"&task={urllib.parse.quote(task['item_id'])}" if task else ""
        )
    trained = [r for r in runs if r.get("training")]
    for r in trained:
        if api.get(f"/api/runs/{r['id']}").get("curves"):
            shots["training"] = f"/run/{r['id']}"
            break
    return shots


def pick_replay(api: Api, runs: list[dict[str, Any]]) -> str:
    """An episode to replay: one with per-token logprobs and a few steps if any, else the first
    episode with a few steps."""
    fallback = None
    for run in sorted(runs, key=lambda r: r["kind"] not in ("file", "store"))[:8]:
        for ep in api.get("/api/episodes", run=run["id"], per_page=5, sort="-reward")["episodes"]:
            if not ep["has_trajectory"]:
                continue
            detail = api.get(f"/api/episodes/{ep['uid']}")
            n = len(detail["steps"])
            if n < 3:
                continue
            step = min(2, n - 1)
            if any(s.get("token_logprobs") for s in detail["steps"]):
                return f"/episode/{ep['uid']}?step={step}"
            fallback = fallback or f"/episode/{ep['uid']}?step={step}"
    return fallback or "/episodes"


def shoot(base: str, shots: dict[str, str], out: Path) -> list[Path]:
    from playwright.sync_api import sync_playwright

    written = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport=VIEWPORT, device_scale_factor=1, color_scheme="light")
            for name, hash_ in shots.items():
                page.goto(f"{base}/#{hash_}")
                page.wait_for_load_state("networkidle")
                page.locator(".view").first.wait_for()
                if name == "replay":  # opened at step 2, scrolled to it
                    page.locator('[data-testid="step"][data-current="true"]').wait_for()
                elif name == "compare" and "task=" in hash_:
                    page.get_by_test_id("replay-b").wait_for()
                page.wait_for_timeout(400)
                path = out / f"viewer-{name}.png"
                page.screenshot(path=str(path))
                written.append(path)
                print(f"{path}  <- #{hash_}")
        finally:
            browser.close()
    return written


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", action="append", default=[], help="a path for `agentgym view` (repeatable)")
    ap.add_argument(
        "--out", default=str(ROOT / "docs" / "img"), help="folder for the PNGs (default docs/img)"
    )
    ap.add_argument("--tokenizer", help="a tokenizer folder, passed to `agentgym view` (token texts)")
    args = ap.parse_args()
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"no Chromium at {CHROMIUM}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="viewer-demo-") as tmp:
        if args.data:
            paths = [str(Path(d).resolve()) for d in args.data]
        else:
            print("building demo data (agentgym eval: expert and random on maze and wordle)...")
            demo = viewer_data.build(Path(tmp))
            paths = [str(p) for p in (demo.expert, demo.random, demo.tokens, demo.job)]
        port = viewer_data.free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "agentgym.client.cli", "--log-level", "warning", "view", *paths,
             "--port", str(port), "--no-browser", *(["--tokenizer", args.tokenizer] if args.tokenizer else [])],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        try:
            api = Api(base)
            wait_ready(api, proc)
            shots = pick(api)
            missing = {"runs", "run", "episodes", "replay", "compare", "training"} - set(shots)
            if missing:
                print(
                    f"note: nothing to show for {sorted(missing)} in these paths; those PNGs are not written"
                )
            shoot(base, shots, out)
        finally:
            viewer_data.stop(proc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
