"""`agentgym view`'s API over real files, a real store and a real trainer, on a real socket.

Every kind of source is written here in the layout the fabric writes it: an eval folder, a
rollout folder, AgentTraj files (JSON list and JSON Lines), a trainer store (through
TrajectoryStore), a trainer job folder and a BC run folder. The browser tests
(test_viewer_browser.py) drive the page; these check what the page is told.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from agentgym.client.view.server import CSP, ViewerState, make_app
from agentgym.core.trajectory import JsonlWriter, Trajectory
from agentgym.trainer.server import TrainerConfig, TrainerServer
from agentgym.trainer.store import TrajectoryStore
from tests.trainer.helpers import record


def maze(i: int, **fields: Any) -> dict[str, Any]:
    """A maze trajectory with two moves, step rewards, and a word (`needle<i>`) to search for."""
    rec = record(i, **fields)
    rec["conversations"] += [
        {"from": "gpt", "loss": True, "value": "Thought:\nAgain.\n\nAction:\nmove up"},
        {"from": "human", "loss": None, "value": f"You see needle{i} here."},
    ]
    rec["rounds"] = 2
    rec["step_rewards"] = [0.0, rec["reward"]]
    n = len(rec["input_ids"])
    rec["loss_mask"] = [0] * (n - 16) + [1] * 8 + [0] * 4 + [1] * 4
    rec["logprobs"] = [None if m == 0 else -0.25 for m in rec["loss_mask"]]
    rec.update(fields)
    return rec


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    w = JsonlWriter(path)
    for r in records:
        w.write(Trajectory.from_json(r))
    w.close()


@pytest.fixture
def data(tmp_path: Path) -> Path:
    root = tmp_path / "runs"
    # An eval: 6 maze episodes (tasks 0..5: 0 and 3 succeed) and 2 wordle ones.
    ev = root / "eval-a"
    write_jsonl(
        ev / "trajectories.jsonl", [maze(i) for i in range(6)] + [maze(i, env="wordle") for i in (0, 1)]
    )
    (ev / "results.json").write_text(json.dumps({
        "per_env": {"maze": {"planned": 8, "episodes": 6, "failed": 2}, "wordle": {"planned": 2, "episodes": 2}},
        "policy": {"policy": "hf", "model": "runs/bc"}, "failed": 1, "seconds": 3.0,
    }))  # fmt: skip
    # Another eval on the same maze tasks, where task 1 now succeeds and task 3 fails.
    write_jsonl(
        root / "eval-b" / "trajectories.jsonl",
        [maze(i, reward=float(i in (0, 1)), success=int(i in (0, 1))) for i in reversed(range(6))],
    )
    (root / "eval-b" / "results.json").write_text(json.dumps({"per_env": {}, "policy": {"policy": "hf"}}))
    # A rollout folder (no results.json), AgentTraj as a JSON list, and an unrelated JSON file.
    write_jsonl(root / "rollout" / "trajectories.jsonl", [maze(i, iteration=i % 2) for i in range(4)])
    (root / "agenttraj.json").write_text(json.dumps([maze(i) for i in range(3)]))
    (root / "notes.json").write_text(json.dumps({"hello": 1}))
    # A store, with iterations and two weight versions.
    with TrajectoryStore.open(root / "trainer" / "store") as store:
        store.add(
            Trajectory.from_json(maze(i, iteration=i % 3, weight_version=f"job-1.step-{i % 2}"))
            for i in range(9)
        )
    # A job: report rows, metrics and two held-out evaluations.
    job = root / "trainer" / "jobs" / "job-000001"
    (job / "eval").mkdir(parents=True)
    (job / "job.json").write_text(json.dumps({
        "id": "job-000001", "kind": "rl", "state": "SUCCEEDED", "progress": 1.0, "created": 1.8e9,
        "spec_json": json.dumps({"envs": ["maze"], "model": "runs/bc/final"}),
    }))  # fmt: skip
    steps = [{"step": k, "reward_mean": 0.5 + k / 10, "success": 0.5, "loss": 1.0 - k / 10, "kl_rollout": 0.01,
              "eval_success": {"maze": 0.5 + k / 10} if k == 1 else None,
              "eval_before": {"maze": 0.4} if k == 0 else None} for k in range(2)]  # fmt: skip
    (job / "metrics.jsonl").write_text("".join(json.dumps(s) + "\n" for s in steps))
    for k, ok in ((0, {0}), (2, {0, 1})):
        rows = [{"env": "maze", "task_id": t, "success": t in ok, "reward": float(t in ok), "error": "",
                 "weight_versions": [f"job-000001.step-{k}"]} for t in range(3)]  # fmt: skip
        (job / "eval" / f"step-{k}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        (job / "eval" / f"step-{k}.json").write_text(
            json.dumps({"weight_version": f"job-000001.step-{k}", "success": {"maze": len(ok) / 3}})
        )
    evol = root / "trainer" / "jobs" / "job-000002"
    evol.mkdir()
    (evol / "job.json").write_text(json.dumps({"id": "job-000002", "kind": "evol", "state": "RUNNING"}))
    iterations = [{"iteration": k, "success_before": {"maze": 0.5 + k / 10}, "success_after": {"maze": 0.6 + k / 10},
                   "kept_total": 10 + k, "loss_first": 1.0, "loss_last": 0.5} for k in range(2)]  # fmt: skip
    (evol / "report.json").write_text(json.dumps({"iterations": iterations}))
    bc = root / "bc"
    bc.mkdir()
    (bc / "metrics.jsonl").write_text(
        "".join(json.dumps({"step": s, "loss": 2.0 / s, "lr": 1e-4}) + "\n" for s in (10, 20, 30))
    )
    return root


@pytest.fixture
async def viewer(data: Path) -> AsyncIterator[tuple[TestClient, ViewerState]]:
    async with _viewer([str(data)]) as pair:
        yield pair


class _viewer:
    """An app on a real loopback socket, indexed before the test starts."""

    def __init__(self, paths: list[str]) -> None:
        self.state = ViewerState(paths, poll_s=0.05)
        self.client = TestClient(TestServer(make_app(self.state), host="127.0.0.1"))

    async def __aenter__(self) -> tuple[TestClient, ViewerState]:
        await self.client.start_server()
        await until(lambda: not self.state.indexing)
        return self.client, self.state

    async def __aexit__(self, *exc: object) -> None:
        await self.client.close()


async def until(predicate: Any, timeout_s: float = 10.0) -> None:
    for _ in range(int(timeout_s / 0.02)):
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not reached")


async def get(client: TestClient, url: str, status: int = 200) -> Any:
    resp = await client.get(url)
    body = await resp.json()
    assert resp.status == status, body
    return body


async def runs_by_title(client: TestClient) -> dict[str, dict[str, Any]]:
    return {r["title"]: r for r in (await get(client, "/api/runs"))["runs"]}


async def test_every_source_kind_is_found_with_its_per_env_table(viewer: Any) -> None:
    client, _ = viewer
    runs = await runs_by_title(client)
    kinds = {t: r["kind"] for t, r in runs.items()}
    assert kinds == {
        "runs/eval-a": "eval",
        "runs/eval-b": "eval",
        "runs/rollout": "rollout",
        "runs/agenttraj.json": "file",
        "runs/trainer/store": "store",
        "runs/trainer/jobs/job-000001 (rl)": "job",
        "runs/trainer/jobs/job-000001 eval step-0": "eval",
        "runs/trainer/jobs/job-000001 eval step-2": "eval",
        "runs/trainer/jobs/job-000002 (evol)": "job",
        "runs/bc": "bc",
    }  # notes.json holds no trajectories
    a = runs["runs/eval-a"]
    assert a["policy"] == "hf runs/bc" and a["episodes"] == 8
    assert a["envs"]["maze"] == {"episodes": 6, "success": 2 / 6, "reward": 2 / 6, "rounds": 2.0}
    assert a["average"]["success"] == pytest.approx((2 / 6 + 1 / 2) / 2)  # unweighted over envs
    detail = await get(client, f"/api/runs/{a['id']}")
    assert [(r["env"], r["planned"], r["episodes"]) for r in detail["table"]] == [
        ("maze", 8, 6),
        ("wordle", 2, 2),
    ]
    assert detail["failed"] == 1
    # Failed episodes count as failures, as `agentgym eval` counts them; the finished-only rate is kept.
    maze_row = detail["table"][0]
    assert (maze_row["failed"], maze_row["success"], maze_row["success_finished"]) == (2, 2 / 8, 2 / 6)
    assert detail["average"]["success"] == pytest.approx((2 / 8 + 1 / 2) / 2)
    assert runs["runs/agenttraj.json"]["episodes"] == 3
    assert runs["runs/trainer/store"]["episodes"] == 9
    assert not runs["runs/trainer/jobs/job-000001 eval step-0"]["has_trajectories"]


async def test_training_runs_have_curves_tables_and_their_evaluations(viewer: Any) -> None:
    client, _ = viewer
    runs = await runs_by_title(client)
    job = await get(client, f"/api/runs/{runs['runs/trainer/jobs/job-000001 (rl)']['id']}")
    assert job["training"]["kind"] == "rl" and job["training"]["state"] == "SUCCEEDED"
    charts = {c["title"]: c["series"] for c in job["curves"]["charts"]}
    assert charts["held-out success"] == [{"name": "eval maze", "points": [[-1, 0.4], [1, 0.6]]}]
    assert charts["loss"][0]["points"] == [[0, 1.0], [1, 0.9]]
    assert job["curves"]["table"]["columns"][:3] == ["step", "reward_mean", "success"]
    assert [e["name"] for e in job["evals"]] == ["step-0", "step-2"]
    evol = await get(client, f"/api/runs/{runs['runs/trainer/jobs/job-000002 (evol)']['id']}")
    assert evol["live"] and evol["curves"]["x"] == "iteration"
    charts = {c["title"]: c["series"] for c in evol["curves"]["charts"]}
    assert charts["held-out success"][0]["points"] == [[-1, 0.5], [0, 0.6], [1, 0.7]]
    assert charts["kept trajectories"][0]["points"] == [[0, 10], [1, 11]]
    bc = await get(client, f"/api/runs/{runs['runs/bc']['id']}")
    assert bc["curves"]["charts"][0] == {"title": "loss", "series": [
        {"name": "loss", "points": [[10, 0.2], [20, 0.1], [30, 2.0 / 30]]}]}  # fmt: skip


async def test_filters_search_sort_and_paging(viewer: Any) -> None:
    client, _ = viewer
    runs = await runs_by_title(client)
    a, store = runs["runs/eval-a"]["id"], runs["runs/trainer/store"]["id"]

    async def page(query: str) -> dict[str, Any]:
        return await get(client, f"/api/episodes?{query}")

    assert (await page(f"run={a}"))["total"] == 8
    assert [e["task_id"] for e in (await page(f"run={a}&env=maze&success=1"))["episodes"]] == [0, 3]
    assert (await page(f"run={a}&env=maze&success=0"))["total"] == 4
    assert (await page(f"run={a}&min_reward=0.5"))["total"] == 3
    assert (await page(f"run={a}&max_reward=0&env=wordle"))["total"] == 1
    assert (await page(f"run={a}&task=3&env=maze"))["episodes"][0]["item_id"] == "maze_3"
    assert (await page(f"run={a}&item=wordle_1"))["total"] == 1
    assert (await page(f"run={a}&min_rounds=3"))["total"] == 0
    # Full text over actions and observations (not the instruction every episode shares).
    found = await page(f"run={a}&q=needle4")
    assert [e["item_id"] for e in found["episodes"]] == ["maze_4"]
    assert (await page(f"run={a}&q=NEEDLE4%20move"))["total"] == 1  # all words, any case
    assert (await page(f"run={a}&q=maze.%20Task"))["total"] == 0  # the instruction is not indexed
    # FTS syntax in the box is taken as words, never an error: '") OR *' holds the word OR.
    assert (await page(f"run={a}&q=%22%29%20OR%20*"))["total"] == 0
    # Iterations and weight versions (a store).
    s = await page(f"run={store}&iteration=2")
    assert {e["iteration"] for e in s["episodes"]} == {2} and s["total"] == 3
    assert (await page(f"run={store}&version=job-1.step-1"))["total"] == 4
    assert s["facets"]["versions"] == ["job-1.step-0", "job-1.step-1"]
    assert s["facets"]["iterations"] == [0, 1, 2]
    # Sorting and paging. Key order is env, task, sample, iteration; arrival is the file's order.
    b = runs["runs/eval-b"]["id"]
    assert [e["task_id"] for e in (await page(f"run={b}"))["episodes"]] == [0, 1, 2, 3, 4, 5]
    assert [e["task_id"] for e in (await page(f"run={b}&sort=arrival"))["episodes"]] == [5, 4, 3, 2, 1, 0]
    assert [e["env"] for e in (await page(f"run={a}"))["episodes"]] == ["maze"] * 6 + ["wordle"] * 2
    by_reward = await page(f"run={a}&sort=-reward&per_page=3")
    assert [e["reward"] for e in by_reward["episodes"]] == [1.0, 1.0, 1.0]
    p1, p3 = await page(f"run={a}&per_page=3"), await page(f"run={a}&per_page=3&page=3")
    assert p1["total"] == 8 and len(p1["episodes"]) == 3 and len(p3["episodes"]) == 2
    both = await page(f"run={a}&run={store}")
    assert both["total"] == 17


async def test_bad_requests_are_refused_with_a_message(viewer: Any) -> None:
    client, _ = viewer
    a = (await runs_by_title(client))["runs/eval-a"]["id"]
    for query, words in (
        ("", "name at least one run"),
        ("run=r999", "unknown run 'r999'"),
        (f"run={a}&page=x", "page must be an integer"),
        (f"run={a}&page=0", "page starts at 1"),
        (f"run={a}&per_page=100000", "per_page must be between 1 and 500"),
        (f"run={a}&min_reward=nan", "finite number"),
        (f"run={a}&min_reward=2&max_reward=1", "min_reward is above max_reward"),
        (f"run={a}&success=maybe", "success must be 1 or 0"),
        (f"run={a}&sort=drop%20table", "sort must be one of"),
    ):
        body = await get(client, f"/api/episodes?{query}", 400)
        assert words in body["error"], (query, body)
    assert "unknown run" in (await get(client, "/api/runs/r999", 404))["error"]
    assert "no episode" in (await get(client, "/api/episodes/99999", 404))["error"]
    assert "is a number" in (await get(client, "/api/episodes/abc", 400))["error"]
    assert "two runs" in (await get(client, "/api/compare?a=r1", 400))["error"]
    assert "no page" in (await get(client, "/nothing/here", 404))["error"]
    assert "no static file" in (await get(client, "/static/..%2F..%2Fserver.py", 404))["error"]
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        resp = await client.request(method, "/api/runs")
        assert resp.status == 405 and "read-only" in (await resp.json())["error"]


async def test_every_response_carries_the_security_headers(viewer: Any) -> None:
    client, _ = viewer
    for url in ("/", "/static/app.js", "/api/runs", "/api/episodes?run=r999", "/nothing"):
        resp = await client.get(url)
        assert resp.headers["Content-Security-Policy"] == CSP, url
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert "script-src 'self'" in CSP and "unsafe-inline" not in CSP


async def test_an_episode_replays_step_by_step_with_rewards_and_tokens(viewer: Any) -> None:
    client, _ = viewer
    a = (await runs_by_title(client))["runs/eval-a"]["id"]
    uid = (await get(client, f"/api/episodes?run={a}&item=maze_3"))["episodes"][0]["uid"]
    ep = await get(client, f"/api/episodes/{uid}")
    assert [t["role"] for t in ep["opening"]] == ["human", "gpt"]
    assert ep["opening"][0]["text"] == "You are in a maze. Task 3."
    first, s1, s2 = ep["steps"]
    assert first["action"] is None and first["observation"].startswith("You are at 1, 4.")
    assert (s1["thought"], s1["action"], s1["observation"]) == (
        "Go down.",
        "move down",
        "Success! ☺ \t tab and newline\n",
    )
    assert (s2["action"], s2["observation"], s2["done"], s2["score"]) == (
        "move up",
        "You see needle3 here.",
        True,
        1.0,
    )
    assert (s1["reward"], s2["reward"], s2["cumulative"]) == (0.0, 1.0, 1.0)
    # Two generated spans (8 and 4 tokens) for the two agent turns, each with its logprobs.
    assert (s1["n_tokens"], s2["n_tokens"]) == (8, 4)
    assert [t["lp"] for t in s2["token_logprobs"]] == [-0.25] * 4
    assert s1["token_logprobs"][0]["t"].startswith("#")  # no tokenizer given: ids
    assert ep["tokens"] == {"total": 64, "agent": 12, "decoded": False}
    assert ep["trajectory"]["timing"]["duration_s"] == 0.25
    # A results-only run has rows but no conversation.
    runs = await runs_by_title(client)
    ev = runs["runs/trainer/jobs/job-000001 eval step-0"]["id"]
    row = (await get(client, f"/api/episodes?run={ev}"))["episodes"][0]
    assert not row["has_trajectory"]
    assert "results only" in (await get(client, f"/api/episodes/{row['uid']}"))["error"]
    # A JSON-list file's records are served from the index; a store's from its segment.
    for title in ("runs/agenttraj.json", "runs/trainer/store"):
        uid = (await get(client, f"/api/episodes?run={runs[title]['id']}&per_page=1"))["episodes"][0]["uid"]
        assert (await get(client, f"/api/episodes/{uid}"))["steps"][-1]["done"]


async def test_compare_two_runs_on_the_same_tasks(viewer: Any) -> None:
    client, _ = viewer
    runs = await runs_by_title(client)
    a, b = runs["runs/eval-a"]["id"], runs["runs/eval-b"]["id"]
    c = await get(client, f"/api/compare?a={a}&b={b}")
    assert c["counts"] == {"gained": 1, "lost": 1, "both": 1, "neither": 3, "only_a": 2, "only_b": 0}
    maze = next(e for e in c["per_env"] if e["env"] == "maze")
    assert maze["delta_success"] == pytest.approx(0.0) and maze["b"]["episodes"] == 6
    assert next(e for e in c["per_env"] if e["env"] == "wordle")["b"] is None
    changed = await get(client, f"/api/compare?a={a}&b={b}&flip=changed")
    assert {(t["item_id"], t["flip"]) for t in changed["tasks"]} == {("maze_1", "gained"), ("maze_3", "lost")}
    t = next(t for t in changed["tasks"] if t["item_id"] == "maze_1")
    assert t["a"]["success"] == 0.0 and t["b"]["success"] == 1.0 and t["a"]["uid"] != t["b"]["uid"]
    ev0 = runs["runs/trainer/jobs/job-000001 eval step-0"]["id"]
    ev2 = runs["runs/trainer/jobs/job-000001 eval step-2"]["id"]
    evals = await get(client, f"/api/compare?a={ev0}&b={ev2}&flip=gained")
    assert [t["item_id"] for t in evals["tasks"]] == ["maze_1"]
    assert "flip must be" in (await get(client, f"/api/compare?a={a}&b={b}&flip=x", 400))["error"]


async def test_growing_files_and_stores_update_live(data: Path) -> None:
    async with _viewer([str(data)]) as (client, state):
        runs = await runs_by_title(client)
        a = runs["runs/eval-a"]["id"]
        events = await client.get("/api/events")
        first = await events.content.readline()
        assert json.loads(first.removeprefix(b"data: "))["version"] == state.version
        await events.content.readline()
        v0 = state.version
        # An eval still running: a torn line (a writer mid-append) is not read until it is whole.
        line = orjson.dumps(maze(40)) + b"\n"
        with (data / "eval-a" / "trajectories.jsonl").open("ab") as f:
            f.write(line[:50])
            f.flush()
            await asyncio.sleep(0.3)
            assert (await get(client, f"/api/episodes?run={a}"))["total"] == 8
            f.write(line[50:])
        await until(lambda: state.version > v0)
        assert (await get(client, f"/api/episodes?run={a}&q=needle40"))["total"] == 1
        pushed = json.loads((await events.content.readline()).removeprefix(b"data: "))
        assert pushed["version"] > v0
        assert (await runs_by_title(client))["runs/eval-a"]["live"]
        # A store another process holds open for writing.
        store = TrajectoryStore.open(data / "trainer" / "store")
        await store.append(Trajectory.from_json(maze(50, iteration=7)))
        sid = runs["runs/trainer/store"]["id"]
        await until(lambda: state.version > pushed["version"])
        assert (await get(client, f"/api/episodes?run={sid}&iteration=7"))["total"] == 1
        await store.aclose()
        # A new run appears.
        write_jsonl(data / "eval-c" / "trajectories.jsonl", [maze(1)])
        await until(lambda: any(r.title == "runs/eval-c" for r in state.runs.by_id.values()))
        events.close()


async def test_a_running_trainer_is_read_through_its_query_rpc(tmp_path: Path) -> None:
    trainer = await TrainerServer.start(TrainerConfig(dir=tmp_path / "trainer", port=0))
    try:
        store = trainer.store
        for i in range(3):
            await store.append(Trajectory.from_json(maze(i, iteration=1)))
        async with _viewer([f"grpc://{trainer.address}"]) as (client, state):
            runs = (await get(client, "/api/runs"))["runs"]
            assert [(r["kind"], r["episodes"]) for r in runs] == [("store", 3)]
            v = state.version
            await store.append(Trajectory.from_json(maze(3, iteration=2)))
            await until(lambda: state.version > v)
            rid = runs[0]["id"]
            assert (await get(client, f"/api/episodes?run={rid}"))["total"] == 4
            uid = (await get(client, f"/api/episodes?run={rid}&iteration=2"))["episodes"][0]["uid"]
            assert (await get(client, f"/api/episodes/{uid}"))["steps"][-1][
                "observation"
            ] == "You see needle3 here."
    finally:
        await trainer.stop(0)


def test_the_command_refuses_a_public_address_and_missing_paths(tmp_path: Path) -> None:
    def view(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "agentgym.client.cli", "view", *args, "--no-browser"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    public = view(str(tmp_path), "--host", "0.0.0.0")
    assert public.returncode == 2 and "--insecure" in public.stderr and "no authentication" in public.stderr
    missing = view(str(tmp_path / "nope"))
    assert missing.returncode == 2 and "no such file or folder" in missing.stderr


async def test_runs_from_folders_of_the_same_name_keep_apart(tmp_path: Path) -> None:
    for lab in ("lab-a", "lab-b"):
        write_jsonl(tmp_path / lab / "trainer" / "expert.jsonl", [maze(1)])
    async with _viewer([str(tmp_path / "lab-a" / "trainer"), str(tmp_path / "lab-b" / "trainer")]) as (
        client,
        _,
    ):
        assert set(await runs_by_title(client)) == {
            "lab-a/trainer/expert.jsonl",
            "lab-b/trainer/expert.jsonl",
        }
