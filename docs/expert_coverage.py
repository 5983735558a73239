"""Expert coverage: every env's expert over its test split, through a real server, as a table.

    .venv/bin/python docs/expert_coverage.py                        # every env installed, whole test splits
    .venv/bin/python docs/expert_coverage.py --envs maze,wordle --out /tmp/coverage.md
    .venv/bin/python docs/expert_coverage.py --envs sciworld --per-class sciworld=5 --budget sciworld=1800
    .venv/bin/python docs/expert_coverage.py --report-only          # rewrite the tables from --runs

It starts `agentgym serve` on a free port hosting the envs asked for, then, one env at a time, runs
`agentgym eval --policy expert --split test --server ...`: the real client, rollout engine and
ReAct loop, at each env's own `max_rounds` (the original's round limits). Each eval is stopped at
the env's time budget; eval resumes from its output folder (`--runs/<env>`), so running the script
again carries on where a budget cut it. The tables come from what the evals wrote: trajectories
(solved, or why not: round limit, or the env ended the episode unsolved) and the errors file (the
expert had no action: FAILED_PRECONDITION, "expert stuck"; any other status: "env error").

The tables go between the coverage markers of --out (the text around them, hand-written, is kept;
a missing file or missing markers get a bare page).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
AGENTGYM = [sys.executable, "-m", "agentgym.client.cli"]
BEGIN, END = "<!-- coverage:begin -->", "<!-- coverage:end -->"
# Failure reasons, in table order.
REASONS = ("round limit", "ended unsolved", "expert stuck", "env error", "not run")
SPLIT = "test"


# --- options ---------------------------------------------------------------------------------------
def per_env(values: list[str], default: float, what: str) -> Callable[[str], float]:
    """`N` (every env) or `ENV=N` (one env), repeatable: the value for an env."""
    table: dict[str, float] = {}
    base = default
    for value in values:
        env, sep, number = value.rpartition("=")
        try:
            parsed = float(number)
        except ValueError:
            raise SystemExit(f"{what}: expected N or ENV=N, got {value!r}") from None
        if sep:
            table[env] = parsed
        else:
            base = parsed
    return lambda env: table.get(env, base)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--envs", help="comma-separated envs (default: every env this installation provides)")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "expert-coverage.md", help="the doc to write")
    p.add_argument("--runs", type=Path, default=ROOT / "runs" / "expert-coverage",
                   help="eval output folders, one per env (resumed when they exist)")  # fmt: skip
    p.add_argument("--concurrency", action="append", default=[], metavar="[ENV=]N",
                   help="episodes at once (default 4; repeatable, ENV=N for one env)")  # fmt: skip
    p.add_argument("--budget", action="append", default=[], metavar="[ENV=]SECONDS",
                   help="wall time per env for this invocation (default 900; repeatable, ENV=S for one env)")  # fmt: skip
    p.add_argument("--per-class", action="append", default=[], metavar="ENV=N",
                   help="play only N tasks of each task class of ENV (evenly spaced over its test ids)")  # fmt: skip
    p.add_argument("--fresh", action="store_true", help="delete the envs' earlier results (and plans) first")
    p.add_argument("--report-only", action="store_true", help="play nothing: rewrite the tables from --runs")
    p.add_argument("--serve-arg", action="append", default=[], help="extra argument for `agentgym serve`")
    return p.parse_args(argv)


def installed_envs() -> list[str]:
    from agentgym.envs import registry

    registry.discover()
    missing = registry.unavailable()
    return [name for name in registry.names() if name not in missing]


# --- task classes ------------------------------------------------------------------------------------
def task_classes(env: str, ids: list[int]) -> dict[int, str]:
    """Each task's class, where the env has classes worth a row; "" otherwise. Names sort in the
    env's own order (level and task numbers lead)."""
    from agentgym.envs import registry

    cls: Any = registry.configure(env)
    if env == "babyai":
        from agentgym.envs.babyai.levels import LEVELS, level_of

        return {i: f"{level_of(i):02d} {LEVELS[level_of(i) - 1].removeprefix('BabyAI-')}" for i in ids}
    if env == "sciworld":
        table = cls.table
        return {i: f"{table.numbers[table.entries[i][0]]} {table.entries[i][0]}" for i in ids}
    if env == "alfworld":
        from agentgym.envs.alfworld.games import default_numbering

        refs = (cls.numbering or default_numbering()).games
        extra = cls.extra_games
        return {i: (refs[i] if i < len(refs) else extra[i - len(refs)]).task_type for i in ids}
    if env == "bird":
        return {i: cls.questions[i].difficulty or cls.questions[i].db_id for i in ids}
    # Named sub-splits of the test split (maze: the original 25 and the held-out ones).
    subs = {name: ranges for name, ranges in cls.splits.items() if name not in ("train", "dev", SPLIT)}
    return {i: next((n for n, rs in subs.items() if any(i in r for r in rs)), "") for i in ids}


def spaced(ids: list[int], n: int) -> list[int]:
    """n ids spread evenly over `ids`, first and last included."""
    if n >= len(ids):
        return list(ids)
    if n <= 1:
        return ids[:1]
    return [ids[round(k * (len(ids) - 1) / (n - 1))] for k in range(n)]


# --- the server --------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _hosted(address: str) -> dict[str, Any]:
    from agentgym.client import EnvClient

    async with EnvClient(address) as client:
        return await client.envs()


def start_server(
    envs: list[str], log: Path, extra: list[str]
) -> tuple[subprocess.Popen[bytes], str, dict[str, Any]]:
    port = free_port()
    address = f"127.0.0.1:{port}"
    cmd = [*AGENTGYM, "serve", "--port", str(port), "--envs", ",".join(envs), *extra]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log.open("ab"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"agentgym serve exited ({proc.returncode}); see {log}")
        try:
            infos = asyncio.run(_hosted(address))
            if set(envs) <= set(infos):
                return proc, address, infos
        except Exception:
            pass
        time.sleep(1.0)
    proc.terminate()
    raise SystemExit(f"agentgym serve did not answer within 300 s; see {log}")


def stop(proc: subprocess.Popen[bytes], grace_s: float = 20.0) -> None:
    """SIGINT first (eval keeps what it wrote; the server drains), then kill."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --- playing ---------------------------------------------------------------------------------------
def play(env: str, address: str, info: Any, planned: list[int], concurrency: int, budget_s: float, runs: Path,
         script: str) -> None:  # fmt: skip
    """One `agentgym eval` of env's expert, stopped at budget_s. coverage.json beside its output keeps
    what the report needs: the plan, the env's round limit and split size, every invocation."""
    out = runs / env
    out.mkdir(parents=True, exist_ok=True)
    tasks = None if planned == info.tasks(SPLIT) else planned
    cmd = [*AGENTGYM, "eval", "--policy", "expert", "--split", SPLIT, "--envs", env, "--server", address,
           "--out", str(out), "--concurrency", str(concurrency), "--no-progress"]  # fmt: skip
    if tasks is not None:
        cmd += ["--tasks", f"{env}={','.join(map(str, tasks))}"]
    started = time.time()
    with (out / "eval.log").open("ab") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        try:
            proc.wait(budget_s)
            cut = False
        except subprocess.TimeoutExpired:
            cut = True
            stop(proc)
    seconds = time.time() - started
    meta = load_meta(out)
    # What the report covers: every task any invocation planned (a larger sample adds to a smaller).
    planned = sorted(set(meta.get("planned", [])) | set(planned))
    meta.update(planned=planned, max_rounds=info.max_rounds, split_size=len(info.tasks(SPLIT)))
    meta["invocations"].append({
        "script": script, "command": shlex.join(["agentgym", *cmd[len(AGENTGYM):]]),
        "date": time.strftime("%Y-%m-%d %H:%M", time.localtime(started)),
        "seconds": round(seconds, 1), "cut_by_budget": cut, "exit": proc.returncode,
    })  # fmt: skip
    (out / "coverage.json").write_text(json.dumps(meta, indent=1))
    print(f"{env}: {'cut at the budget after' if cut else 'done in'} {seconds:.0f} s", flush=True)


def load_meta(out: Path) -> dict[str, Any]:
    path = out / "coverage.json"
    meta: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    meta.setdefault("invocations", [])
    return meta


# --- reading the results -------------------------------------------------------------------------------
@dataclass
class Tally:
    tasks: int = 0
    solved: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    solved_rounds: int = 0
    episode_s: float = 0.0

    @property
    def played(self) -> int:
        return self.tasks - self.reasons["not run"]

    def add(self, outcome: str, rounds: int = 0, seconds: float = 0.0) -> None:
        self.tasks += 1
        self.episode_s += seconds
        if outcome == "solved":
            self.solved += 1
            self.solved_rounds += rounds
        else:
            self.reasons[outcome] += 1


@dataclass
class EnvResult:
    env: str
    max_rounds: int
    split_size: int
    total: Tally
    classes: dict[str, Tally]
    notes: dict[str, list[int]]  # failures with a message: why -> task ids
    invocations: list[dict[str, Any]]


def classify_error(message: str) -> str:
    # The server answers FAILED_PRECONDITION when the expert has no action from a state.
    if message.startswith("FailedPrecondition") and "expert" in message:
        return "expert stuck"
    return "env error"


def read_results(env: str, runs: Path) -> EnvResult:
    from agentgym.core.trajectory import read_trajectories

    out = runs / env
    meta = load_meta(out)
    planned: list[int] = meta["planned"]
    records = {}
    path = out / "trajectories.jsonl"
    if path.exists():
        records = {t.task_id: t for t in read_trajectories(path) if t.sample == 0}
    errors: dict[int, str] = {}
    errors_path = out / "trajectories.errors.jsonl"
    if errors_path.exists():
        for line in errors_path.read_text(errors="replace").splitlines():
            try:
                report = json.loads(line)
                errors[int(report["task_id"])] = str(report["error"])
            except (ValueError, KeyError, TypeError):
                continue  # a line cut by a kill
    classes = task_classes(env, planned)
    total, per_class, notes = Tally(), {}, {}
    for task_id in planned:
        t = records.get(task_id)
        if t is not None:
            if t.success:
                outcome = "solved"
            elif t.finish == "truncated":
                outcome = "round limit"
            else:
                outcome = "ended unsolved"
            rounds, seconds = t.rounds or 0, float((t.timing or {}).get("duration_s", 0.0))
        elif task_id in errors:
            outcome, rounds, seconds = classify_error(errors[task_id]), 0, 0.0
            # The same failure on many tasks makes one line: the server's "[address id]" tail goes.
            message = re.sub(r" \[[^\]]*\]$", "", errors[task_id]).replace("\n", " ").replace("|", "/")
            notes.setdefault(f"{outcome}: {message[:300]}", []).append(task_id)
        else:
            outcome, rounds, seconds = "not run", 0, 0.0
        total.add(outcome, rounds, seconds)
        if classes[task_id]:
            per_class.setdefault(classes[task_id], Tally()).add(outcome, rounds, seconds)
    return EnvResult(env, meta["max_rounds"], meta["split_size"], total, dict(sorted(per_class.items())),
                     notes, meta["invocations"])  # fmt: skip


# --- the doc -----------------------------------------------------------------------------------------
def pct(n: int, d: int) -> str:
    return f"{100 * n / d:.1f}%" if d else "-"


def reasons_cell(t: Tally) -> list[str]:
    return [str(t.reasons[r]) if t.reasons[r] else "" for r in REASONS]


def wall_s(r: EnvResult) -> float:
    return float(sum(i["seconds"] for i in r.invocations))


def duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def render(results: list[EnvResult]) -> str:
    date = time.strftime("%Y-%m-%d")
    head = (
        "| env | rounds | test tasks | planned | played | solved | rate | "
        + " | ".join(REASONS)
        + " | wall time | s/episode |"
    )
    lines = [
        f"Tables written {date} by `docs/expert_coverage.py` from its runs; each env's section lists the "
        "commands that played it, with their dates.",
        "",
        "Rate = solved / played, within the env's round limit. Reasons: *round limit* (the episode "
        "reached `max_rounds` unsolved), *ended unsolved* (the env ended it unsolved: a failure or its own "
        "limit), *expert stuck* (the expert answered FAILED_PRECONDITION: no action from that state), "
        "*env error* (any other error status, e.g. INTERNAL), *not run* (cut by the time budget or a "
        "`--per-class` sample). Wall time: the evals' own, all invocations; s/episode: mean episode "
        "duration as the client saw it (concurrent episodes overlap).",
        "",
        head,
        "|---" * (head.count("|") - 1) + "|",
    ]
    for r in results:
        t = r.total
        mean_s = t.episode_s / t.played if t.played else 0.0
        cells = [r.env, str(r.max_rounds), str(r.split_size), str(t.tasks), str(t.played), str(t.solved), pct(t.solved, t.played),
                 *reasons_cell(t), duration(wall_s(r)), f"{mean_s:.2f}"]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    for r in results:
        lines += ["", f"### {r.env}", ""]
        cut = [i for i in r.invocations if i.get("cut_by_budget")]
        sampled = r.total.tasks < r.split_size
        lines.append(
            f"{r.total.played} of the {r.split_size} test tasks played"
            + (f" ({r.total.tasks} planned: a sample)" if sampled else "")
            + (f"; {len(cut)} invocation(s) cut by the time budget" if cut else "")
            + "."
        )
        if r.classes:
            chead = (
                "| class | tasks | played | solved | rate | mean rounds (solved) | "
                + " | ".join(REASONS)
                + " |"
            )
            lines += ["", chead, "|---" * (chead.count("|") - 1) + "|"]
            for name, c in r.classes.items():
                mean_rounds = f"{c.solved_rounds / c.solved:.1f}" if c.solved else "-"
                cells = [name, str(c.tasks), str(c.played), str(c.solved), pct(c.solved, c.played), mean_rounds,
                         *reasons_cell(c)]  # fmt: skip
                lines.append("| " + " | ".join(cells) + " |")
        if r.notes:
            lines += ["", "Failures with a message:", ""]
            for why, ids in r.notes.items():
                shown = ", ".join(map(str, ids[:12])) + (
                    f" and {len(ids) - 12} more" if len(ids) > 12 else ""
                )
                lines.append(f"- task{'s' if len(ids) > 1 else ''} {shown}: {why}")
        if r.invocations:
            lines += ["", "Commands (each resumes the one before):", ""]
            for i in r.invocations:
                note = ", cut by the budget" if i.get("cut_by_budget") else ""
                command = i["command"].replace(f"{ROOT}/", "")
                lines.append(
                    f"- {i['date']}, {duration(i['seconds'])}{note}: `{i['script']}`, which ran `{command}`"
                )
    return "\n".join(lines) + "\n"


def write_doc(path: Path, body: str) -> None:
    block = f"{BEGIN}\n{body}{END}"
    if path.exists():
        text = path.read_text()
        if BEGIN in text and END in text:
            start, stop_ = text.index(BEGIN), text.index(END) + len(END)
            path.write_text(text[:start] + block + text[stop_:])
            return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"# Expert coverage\n\n{block}\n")


# --- main --------------------------------------------------------------------------------------------
def plan(env: str, ids: list[int], n_per_class: int) -> list[int]:
    if not n_per_class:
        return ids
    classes = task_classes(env, ids)
    groups: dict[str, list[int]] = {}
    for i in ids:
        groups.setdefault(classes[i], []).append(i)
    return sorted(i for group in groups.values() for i in spaced(group, n_per_class))


def reported_envs(runs: Path) -> list[str]:
    """Every env with results under runs, in the registry's order."""
    have = {p.parent.name for p in runs.glob("*/coverage.json")}
    try:
        order = installed_envs()
    except Exception:
        order = []
    return [e for e in order if e in have] + sorted(have - set(order))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    script = shlex.join(["python", "docs/expert_coverage.py", *(argv if argv is not None else sys.argv[1:])])
    envs = args.envs.split(",") if args.envs else installed_envs()
    concurrency = per_env(args.concurrency, 4, "--concurrency")
    budget = per_env(args.budget, 900, "--budget")
    per_class = per_env(args.per_class, 0, "--per-class")
    args.runs.mkdir(parents=True, exist_ok=True)
    if not args.report_only:
        if args.fresh:
            for env in envs:
                for name in ("trajectories.jsonl", "trajectories.errors.jsonl", "coverage.json", "eval.log"):
                    (args.runs / env / name).unlink(missing_ok=True)
        server, address, infos = start_server(envs, args.runs / "serve.log", args.serve_arg)
        try:
            for env in envs:
                planned = plan(env, infos[env].tasks(SPLIT), int(per_class(env)))
                play(env, address, infos[env], planned, int(concurrency(env)), budget(env), args.runs, script)
        finally:
            stop(server)
    # The doc covers every env with results under --runs, played now or before.
    results = [read_results(env, args.runs) for env in reported_envs(args.runs)]
    write_doc(args.out, render(results))
    for r in results:
        t = r.total
        print(f"{r.env}: solved {t.solved} of {t.played} played ({pct(t.solved, t.played)}); "
              + ", ".join(f"{k} {v}" for k, v in t.reasons.items()))  # fmt: skip
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())
