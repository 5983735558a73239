"""Real data for the `agentgym view` browser tests and the screenshot script.

`build(root)` makes, under `root`:

- `eval-expert/` and `eval-random/`: eval runs (results.json + trajectories.jsonl) played by the real
  `agentgym eval` command against a real env server (maze and wordle, 8 tasks each);
- `live-expert/`: a copy of the expert run, for a test to append trajectories to while the page
  is open (`append_trajectories`);
- `hostile.jsonl`: AgentTraj records whose text is HTML and script (`<script>`, `onerror`,
  `<svg onload>`, a WebShop-like page) — the page must show it as text;
- `tokens.jsonl`: one trajectory with input_ids, loss_mask and logprobs (one generated span per
  agent turn), so the replay shades per-token log-probabilities;
- `job-000001/`: a trainer job folder as `agentgym trainer` writes it for an RL job (job.json,
  metrics.jsonl, eval/step-<k>.json[l]), with made-up numbers: its curves and held-out evals.

Every record is built with `agentgym.core.trajectory.Trajectory` and validated.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from agentgym.core.chat import ACK
from agentgym.core.trajectory import JsonlWriter, Trajectory, Turn, read_trajectories

CLI = [sys.executable, "-m", "agentgym.client.cli"]
ENVS = "maze,wordle"
MAX_TASKS = 8

SCRIPT = "<script>window.__pwned=1</script>"
IMG = '<img src=x onerror="window.__pwned=1">'
SVG = '"><svg onload=window.__pwned=1>'
SEARCH_WORD = "zanzibar"  # appears in exactly one observation of hostile.jsonl
WEBSHOP_PAGE = """<html><head><title>WebShop</title></head><body>
<div id="search">[Search] <input type="text" name="q" value="red shoes"></div>
<form action="/buy"><button onclick="window.__pwned=1">Buy Now</button></form>
<ul>
  <li><a href="javascript:window.__pwned=1">[B07XYZ] Red running shoes, size 9</a> $42.00</li>
  <li><a href="/item/B08ABC">[B08ABC] Crimson sneakers</a> $39.50</li>
</ul>
<style>body { display: none }</style>
</body></html>"""


@dataclass
class ViewerData:
    root: Path
    expert: Path  # eval dir
    random: Path  # eval dir
    live: Path  # eval dir a test appends to
    hostile: Path  # AgentTraj JSONL file
    tokens: Path  # AgentTraj JSONL file with token fields
    job: Path  # a trainer job folder (RL curves and two held-out evaluations)

    @property
    def paths(self) -> list[Path]:
        return [self.expert, self.random, self.live, self.hostile, self.tokens, self.job]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout_s: float = 60.0) -> None:
    """Wait until something accepts TCP connections on 127.0.0.1:port (or the process dies)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise RuntimeError(f"process exited early ({proc.returncode}): {err[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout_s:.0f} s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_evals(
    root: Path, policies: tuple[str, ...] = ("expert", "random"), max_tasks: int = MAX_TASKS
) -> dict[str, Path]:
    """Play `policies` on maze and wordle with the real CLI, against an env server of our own on a
    free port (so a stray server on the default port cannot change the data). eval-<policy>/ each."""
    port = free_port()
    server = subprocess.Popen(
        [*CLI, "--log-level", "warning", "serve", "--envs", ENVS, "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    out: dict[str, Path] = {}
    try:
        wait_port(port, server)
        for policy in policies:
            d = root / f"eval-{policy}"
            done = subprocess.run(
                [*CLI, "--log-level", "warning", "eval", "--envs", ENVS, "--max-tasks", str(max_tasks),
                 "--policy", policy, "--seed", "0", "--out", str(d), "--no-progress",
                 "--server", f"127.0.0.1:{port}"],
                capture_output=True, text=True, timeout=300,
            )  # fmt: skip
            if done.returncode != 0 or not (d / "results.json").exists():
                raise RuntimeError(f"agentgym eval --policy {policy} failed: {done.stderr[-3000:]}")
            out[policy] = d
    finally:
        stop(server)
    return out


def hostile_trajectories() -> list[Trajectory]:
    """Records whose every text field a careless page would execute."""
    instruction = f"Instruction {SCRIPT} with {IMG} and {SVG} inside.\nSecond line &amp; <b>bold</b>"
    ack = ACK
    t1 = Trajectory(
        item_id="maze_901",
        conversations=[
            Turn("human", instruction),
            Turn("gpt", ack, False),
            Turn("human", f"You see {SCRIPT} on the wall."),
            Turn("gpt", f"Thought:\nLet me try {IMG}\n\nAction:\n{SCRIPT}", True),
            Turn("human", f"Observation {SVG} and\nmore {IMG} text"),
            Turn("gpt", f"Thought:\n{SVG}\n\nAction:\nmove <left>", True),
            Turn("human", "Success"),
        ],
        reward=1.0, success=True, rounds=2, finish="done", policy=SCRIPT, max_steps=15, seed=901,
        step_rewards=[0.0, 1.0], weight_versions=[f"v-{IMG}"],
        timing={"start": 1795990000.0, "duration_s": 1.5, "note": SCRIPT},
        extra={"comment": SVG, SCRIPT: IMG},
    )  # fmt: skip
    t2 = Trajectory(
        item_id="webshop_902",
        conversations=[
            Turn("human", "WebShop: find red shoes under $50. <i>Use search[...] and click[...]</i>"),
            Turn("gpt", ack, False),
            Turn("human", WEBSHOP_PAGE),
            Turn("gpt", "Thought:\nThe first item fits.\n\nAction:\nclick[B07XYZ]", True),
            Turn("human", WEBSHOP_PAGE.replace("red shoes", "<script>window.__pwned=1</script>")),
        ],
        reward=0.0, success=False, rounds=1, finish="truncated", policy="openai", max_steps=1,
        step_rewards=[0.0],
    )  # fmt: skip
    t3 = Trajectory(
        item_id="wordle_903",
        conversations=[
            Turn("human", "Let's play Wordle."),
            Turn("gpt", ack, False),
            Turn("human", "Let's start Wordle!"),
            Turn("gpt", "Thought:\nTry a word.\n\nAction:\nc r a n e", True),
            Turn("human", f"b b y b b — the hint mentions {SEARCH_WORD} harbour"),
            Turn("gpt", "Thought:\nAgain.\n\nAction:\ns l o t h", True),
            Turn("human", "b g b b b"),
        ],
        reward=0.0, success=False, rounds=2, finish="truncated", policy="random", max_steps=2, seed=903,
        step_rewards=[0.0, 0.0],
    )  # fmt: skip
    # An env name that is itself markup (valid: item_id "<env>_<task>").
    t4 = Trajectory(
        item_id="<b>evil</b>_904",
        conversations=[
            Turn("human", "Plain instruction."),
            Turn("gpt", ack, False),
            Turn("human", "Start."),
            Turn("gpt", f"Action:\n{SCRIPT}", True),
            Turn("human", "Done."),
        ],
        reward=1.0, success=True, rounds=1, finish="done", step_rewards=[1.0],
    )  # fmt: skip
    return [t.validate() for t in (t1, t2, t3, t4)]


def token_trajectory(seed: int = 0) -> Trajectory:
    """A maze episode with token fields: prompt tokens (mask 0, logprob null), then one generated
    span (mask 1, a logprob each) per agent turn, as the RL trainer stores them."""
    rng = random.Random(seed)
    ack = ACK
    actions = ["move left", "move down", "move down"]
    observations = [
        "The goal is at position 3, 8. Your current position is at position 1, 9.",
        "Your current position is at position 1, 8. There is a wall to your left.",
        "Your current position is at position 2, 8.",
        "Success",
    ]
    conv = [Turn("human", "You are solving a maze. Reach the goal in as few moves as possible."),
            Turn("gpt", ack, False), Turn("human", observations[0])]  # fmt: skip
    ids: list[int] = []
    mask: list[int] = []
    lps: list[float | None] = []

    def prompt(n: int) -> None:
        for _ in range(n):
            ids.append(rng.randrange(100, 30000))
            mask.append(0)
            lps.append(None)

    prompt(40)  # instruction, acknowledgement, first observation
    for i, action in enumerate(actions):
        text = f"Thought:\nI go {action.split()[1]}.\n\nAction:\n{action}"
        conv.append(Turn("gpt", text, True))
        conv.append(Turn("human", observations[i + 1]))
        for k in range(12):
            ids.append(rng.randrange(100, 30000))
            mask.append(1)
            # mostly confident, a few unlikely tokens so the shading varies
            lps.append(round(math.log(rng.choice([0.99, 0.95, 0.8, 0.5, 0.2, 0.05])), 4) if k else -3.5)
        prompt(15)  # the observation and the chat template's markers
    return Trajectory(
        item_id="maze_905", conversations=conv, reward=1.0, success=True, rounds=3, finish="done",
        policy="sglang", tokenizer="0123456789abcdef", max_steps=15, seed=905, step_rewards=[0.0, 0.0, 1.0],
        input_ids=ids, loss_mask=mask, logprobs=lps, weight_versions=["job-000001.step-3"], iteration=1,
        timing={"start": 1795990100.0, "duration_s": 2.25, "policy_s": 2.0, "env_s": 0.25},
    ).validate()  # fmt: skip


def write_rl_job(path: Path, steps: int = 12, tasks: int = 20, seed: int = 0) -> Path:
    """A finished RL job's folder in the trainer's layout, with invented but plausible numbers."""
    rng = random.Random(seed)
    envs = ["maze", "wordle"]
    path.mkdir(parents=True, exist_ok=True)
    t0 = 1795980000.0
    spec = {"algorithm": "grpo", "envs": envs, "model": "runs/bc/final", "steps": steps, "group_size": 8,
            "tasks_per_step": 12, "seed": seed}  # fmt: skip
    job = {"id": path.name, "kind": "rl", "state": "SUCCEEDED", "spec_json": json.dumps(spec), "created": t0,
           "started": t0 + 2, "progress": 1.0, "weight_version": f"{path.name}.step-{steps}"}  # fmt: skip
    (path / "job.json").write_text(json.dumps(job, indent=1))
    start = {"maze": 0.45, "wordle": 0.25}
    end = {"maze": 0.8, "wordle": 0.55}
    rows = []
    for step in range(steps):
        f = step / max(1, steps - 1)
        success = min(1.0, 0.35 + 0.4 * f + rng.uniform(-0.05, 0.05))
        row = {
            "step": step, "weight_version": f"{path.name}.step-{step + 1}", "episodes": 96,
            "reward_mean": round(success, 4), "success": round(success, 4),
            "rounds_mean": round(12 - 4 * f + rng.uniform(-0.5, 0.5), 3),
            "loss": round(0.3 * (1 - 0.6 * f) + rng.uniform(-0.03, 0.03), 4),
            "pg_loss": round(0.28 * (1 - 0.6 * f) + rng.uniform(-0.03, 0.03), 4),
            "entropy": round(0.6 - 0.3 * f + rng.uniform(-0.02, 0.02), 4),
            "kl_rollout": round(rng.uniform(1e-5, 8e-5), 7), "clip_frac": round(rng.uniform(0, 0.004), 5),
            "rollout_s": round(rng.uniform(90, 150), 1), "learn_s": round(rng.uniform(12, 20), 1),
            "sync_s": round(rng.uniform(0.05, 0.1), 3), "eval_s": 0.0, "eval_success": None,
        }  # fmt: skip
        if step == 0:
            row["eval_before"] = start
        if step == steps - 1:
            row["eval_success"] = end
        rows.append(row)
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    evals = path / "eval"
    evals.mkdir(exist_ok=True)
    for k, rates in ((0, start), (steps, end)):
        version = f"{path.name}.step-{k}"
        lines = []
        for env in envs:
            for task in range(tasks):
                ok = task < round(rates[env] * tasks)
                lines.append({"env": env, "task_id": task, "success": ok, "reward": float(ok),
                              "weight_versions": [version]})  # fmt: skip
        (evals / f"step-{k}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
        (evals / f"step-{k}.json").write_text(json.dumps({"weight_version": version, "success": rates}))
    return path


def write_jsonl(path: Path, trajectories: list[Trajectory]) -> Path:
    w = JsonlWriter(path, fsync_every=0)
    try:
        for t in trajectories:
            w.write(t)
    finally:
        w.close()
    return path


def append_trajectories(eval_dir: Path, n: int, sample: int = 7, env: str | None = None) -> list[Trajectory]:
    """Append `n` new episodes (copies of the run's first records, of `env` if given, under a new
    sample number, so they are new record ids) to eval_dir/trajectories.jsonl, as a run still
    playing would."""
    path = eval_dir / "trajectories.jsonl"
    base = [t for t in read_trajectories(path) if env is None or t.env == env][:n]
    new = []
    for t in base:
        t.sample = sample
        new.append(t.validate())
    write_jsonl(path, new)
    return new


def build(root: Path) -> ViewerData:
    root.mkdir(parents=True, exist_ok=True)
    runs = run_evals(root)
    live = root / "live-expert"
    shutil.copytree(runs["expert"], live)
    return ViewerData(
        root=root, expert=runs["expert"], random=runs["random"], live=live,
        hostile=write_jsonl(root / "hostile.jsonl", hostile_trajectories()),
        tokens=write_jsonl(root / "tokens.jsonl", [token_trajectory()]),
        job=write_rl_job(root / "job-000001"),
    )  # fmt: skip


if __name__ == "__main__":  # python tests/client/viewer_data.py DIR
    data = build(Path(sys.argv[1] if len(sys.argv) > 1 else "viewer-data"))
    print("\n".join(map(str, data.paths)))
