"""Demonstration on CPU: behaviour cloning from scratch on Maze, then AgentEvol, through the fabric.

    python examples/maze_bc_evol.py                 # about 50 minutes on 2 cores
    python examples/maze_bc_evol.py --out runs/demo --seed 1

Every part runs as its own process, as on a cluster: an env server (`agentgym serve`), the trainer
(`agentgym trainer serve`: the trajectory store and the job runner), a policy server speaking
SGLang's API (`agentgym policy serve --backend hf`, a from-scratch 1M-parameter Llama), and a
rollout worker (`agentgym trainer worker`). This script only drives them:

1. The expert plays half of Maze's 425 train tasks (all on LMRL-Gym's double-T maze) and streams its
   trajectories to the trainer (`agentgym rollout --sink grpc://...`): the behaviour-cloning data,
   like AgentTraj covering part of the instructions.
2. `random` and the expert play the 131 test tasks: the original benchmark's 25 and 106 start/goal
   pairs no training episode used.
3. One AgentEvol job (`agentgym trainer submit evol`): behaviour cloning from the base model on the
   expert's trajectories (a store query), published to the policy server and evaluated on the test
   tasks (the BC row); then one iteration: the worker explores the whole train split with sampling
   against the policy server, the trainer keeps the successes (a store query on iteration, weight
   version and reward), trains the base model again on the expert data plus the kept
   trajectories, publishes the new weights, and the test tasks are played again.
The table at the end compares them. The same command and seed give the same table (see README
for the spread over seeds).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from rich.console import Console
from rich.table import Table

from agentgym.client import EnvClient
from agentgym.core.trajectory import read_trajectories

AGENTGYM = str(Path(sys.executable).with_name("agentgym"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(*cmd: str) -> str:
    out = subprocess.run([AGENTGYM, "--log-level", "warning", *cmd], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"agentgym {' '.join(cmd)} failed:\n{out.stderr[-3000:]}")
    return out.stdout


def success(rows: list[tuple[int, bool]], tasks: set[int]) -> float:
    picked = [ok for task, ok in rows if task in tasks]
    return sum(picked) / max(1, len(picked))


class Fabric:
    """The loop's processes, each its own process as on a cluster: an env server hosting maze, the
    trainer (`--out`/trainer), an hf policy server (SGLang's API) serving `model`, and a rollout
    worker; stopped when the block ends, on an error, Ctrl-C or SIGTERM. Their logs are in `out`."""

    def __init__(self, out: Path, model: str) -> None:
        self.out, self.model = out, model
        env_port, policy_port, trainer_port = free_port(), free_port(), free_port()
        self.ports = (env_port, policy_port, trainer_port)
        self.env, self.trainer = f"127.0.0.1:{env_port}", f"127.0.0.1:{trainer_port}"
        self.policy_url = f"http://127.0.0.1:{policy_port}"
        self.procs: list[subprocess.Popen[bytes]] = []

    def spawn(self, name: str, *cmd: str) -> None:
        log = (self.out / f"{name}.log").open("ab")
        self.procs.append(
            subprocess.Popen([AGENTGYM, "--log-level", "warning", *cmd], stdout=log, stderr=log)
        )

    def __enter__(self) -> Fabric:
        # `kill` (SIGTERM) ends the run like Ctrl-C: the processes it started are stopped too.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        env_port, policy_port, trainer_port = self.ports
        try:
            self.spawn("env", "serve", "--port", str(env_port), "--envs", "maze", "--idle-timeout", "0")
            self.spawn(
                "trainer", "trainer", "serve", "--dir", str(self.out / "trainer"), "--port", str(trainer_port)
            )
            self.spawn(
                "policy",
                "policy",
                "serve",
                "--backend",
                "hf",
                "--model",
                self.model,
                "--port",
                str(policy_port),
            )
            deadline = time.time() + 180
            while True:
                try:
                    urllib.request.urlopen(self.policy_url + "/health", timeout=2)
                    break
                except OSError:
                    if time.time() > deadline:
                        raise SystemExit(
                            f"the policy server did not start: see {self.out / 'policy.log'}"
                        ) from None
                    time.sleep(0.5)
            self.spawn("worker", "trainer", "worker", "--trainer", self.trainer)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        for proc in self.procs:
            proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()

    def job(self, kind: str, *args: str) -> Path:
        """Submit a job (`agentgym trainer submit KIND ARGS`), follow it to its end, return its folder."""
        job_id = run("trainer", "submit", kind, "--trainer", self.trainer, *args).split()[0]
        print(
            f"{job_id} submitted (follow: agentgym trainer logs {job_id} --trainer {self.trainer})",
            flush=True,
        )
        logs = subprocess.run([AGENTGYM, "trainer", "logs", job_id, "--trainer", self.trainer],
                              capture_output=True, text=True)  # fmt: skip
        if logs.returncode != 0:
            raise SystemExit(f"{job_id} did not succeed:\n{logs.stdout[-3000:]}")
        return self.out / "trainer" / "jobs" / job_id

    def splits(self) -> dict[str, list[int]]:
        """Maze's task splits, as its env server reports them."""

        async def ask() -> dict[str, list[int]]:
            async with EnvClient(self.env, connect_timeout_s=60) as client:
                info = await client.env_info("maze")
                return {s: info.tasks(s) for s in ("train", "test", "original", "held_out")}

        return asyncio.run(ask())


def main(args: argparse.Namespace) -> None:
    console = Console(width=120)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()

    def stamp(text: str) -> None:
        console.print(f"[{time.time() - t0:5.0f}s] {text}")

    with Fabric(out, f"init:{args.size}") as fabric:
        env, trainer, policy_url = fabric.env, fabric.trainer, fabric.policy_url
        tasks = fabric.splits()
        test, original, held_out = set(tasks["test"]), set(tasks["original"]), set(tasks["held_out"])
        console.print(f"maze: {len(tasks['train'])} train tasks, {len(test)} test tasks "
                      f"({len(original)} original, {len(held_out)} held out)")  # fmt: skip
        results: dict[str, list[tuple[int, bool]]] = {}

        # 1. The expert's trajectories, streamed into the trainer's store.
        bc_tasks = sorted(
            random.Random(args.seed).sample(tasks["train"], min(args.bc_tasks, len(tasks["train"])))
        )
        run("rollout", "--policy", "expert", "--envs", "maze", "--tasks", ",".join(map(str, bc_tasks)),
            "--server", env, "--out", str(out / "expert_train.jsonl"), "--sink", f"grpc://{trainer}", "--no-progress")  # fmt: skip
        stamp(f"expert data: {len(bc_tasks)} trajectories in the trainer's store")

        # 2. Reference policies on the test tasks.
        for name in ("random", "expert"):
            path = out / f"test_{name}.jsonl"
            run("rollout", "--policy", name, "--envs", "maze", "--split", "test", "--server", env, "--out", str(path),
                "--seed", "1", "--no-progress")  # fmt: skip
            results[name] = [(t.task_id or 0, bool(t.success)) for t in read_trajectories(path)]
            stamp(f"{name}: {success(results[name], test):.1%} on the test tasks")

        # 3. The AgentEvol job: BC from the base model, then one iteration.
        job = fabric.job(
            "evol", "--envs", "maze", "--base", f"init:{args.size}", "--bc-query", "iteration=-1",
            "--policy-url", policy_url, "--env-server", env, "--iterations", "1",
            "--explore-episodes", str(args.explore), "--eval-tasks", str(len(test)), "--max-new-tokens", "64",
            "--explore-temperature", "0.7", "--seed", str(args.seed), "--set", f"epochs={args.epochs}",
            "--set", f"lr={args.lr}", "--set", f"max_tokens={args.max_tokens}", "--set", f"seed={args.seed}",
        )  # fmt: skip
        report = json.loads((job / "report.json").read_text())["iterations"][0]
        for name, k in (("BC (from scratch)", 0), ("BC + 1 AgentEvol iteration", 1)):
            rows = [
                json.loads(line)
                for line in (job / "eval" / f"iter-{k}.jsonl").read_text().splitlines()
                if line
            ]
            results[name] = [(r["task_id"], bool(r["success"])) for r in rows]
        new = len(set(tasks["train"]) - set(bc_tasks))
        stamp(f"AgentEvol: kept {report['kept_total']} of {sum(report['explored'].values())} explored ({new} train tasks "
              f"had no expert data); BC {report['success_before']['maze']:.1%}, after {report['success_after']['maze']:.1%}")  # fmt: skip

    table = Table(title=f"Maze, held-out evaluation ({time.time() - t0:.0f} s on CPU, seed {args.seed})")
    for col in ("policy", "original 25", "held-out 106", "all test 131"):
        table.add_column(col, justify="left" if col == "policy" else "right")
    summary = {}
    for name, rows in results.items():
        row = (success(rows, original), success(rows, held_out), success(rows, test))
        summary[name] = row
        table.add_row(name, *(f"{x:.1%}" for x in row))
    console.print(table)
    (out / "results.json").write_text(
        json.dumps({"seed": args.seed, "seconds": round(time.time() - t0), **summary}, indent=2)
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default="runs/demo-maze")
    parser.add_argument(
        "--bc-tasks",
        type=int,
        default=212,
        help="train tasks with expert data (of 425); AgentEvol explores all",
    )
    parser.add_argument("--size", choices=["tiny", "mini", "small"], default="mini")
    parser.add_argument("--epochs", type=float, default=16)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument(
        "--max-tokens", type=int, default=2048, help="padded tokens per batch: small batches, many updates"
    )
    parser.add_argument(
        "--explore", type=int, default=300, help="exploration episodes in the AgentEvol iteration"
    )
    parser.add_argument("--seed", type=int, default=0)
    main(parser.parse_args())
