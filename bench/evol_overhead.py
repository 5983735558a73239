"""What an AgentEvol iteration costs beyond its own rollouts and training.

    python bench/evol_overhead.py                   # Maze, a tiny model, 2 iterations (~5 minutes)
    python bench/evol_overhead.py --explore 200 --epochs 4 --iterations 2

Runs the loop as separate processes (env server, hf policy server, trainer, one rollout worker),
submits an evol job, and reads back how the trainer spent each iteration (state.json's step
timing, the worker's seconds per work item, the learning process's own clock):

    wall       from the start of exploration to the end of evaluation
    rollouts   seconds the worker spent playing exploration and evaluation episodes
    training   seconds inside `trainer.bc.train` (model, data, the loop), in the learning process
    overhead   wall - rollouts - training: queueing work, store queries, writing the report,
               publishing the weights to the policy server, and starting the learning process
               (python, torch and transformers imports), shown separately

The target is an overhead under 5% of the iteration's wall time. With a tiny model on CPU an
iteration lasts a minute or two, so the learning process's start (a few seconds) weighs more than
it would in a real run, where training takes hours; both figures are printed.
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import grpc
from rich.console import Console
from rich.table import Table

from agentgym.core.rpc import stub
from agentgym.v1 import trainer_pb2 as rpb

AGENTGYM = str(Path(sys.executable).with_name("agentgym"))
SERVICE = rpb.DESCRIPTOR.services_by_name["TrainerService"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def wait_job(address: str, job_id: str) -> rpb.Job:
    with grpc.insecure_channel(address) as ch:
        get = stub(ch, SERVICE, "GetJob")
        while True:
            try:
                job = get(rpb.GetJobRequest(id=job_id), timeout=5)
                if job.state not in (rpb.QUEUED, rpb.RUNNING):
                    return job  # type: ignore[no-any-return]
            except grpc.RpcError:
                pass
            time.sleep(0.5)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--iterations", type=int, default=2)
    parser.add_argument("--explore", type=int, default=96, help="exploration episodes per iteration")
    parser.add_argument("--eval-tasks", type=int, default=32)
    parser.add_argument("--bc-tasks", type=int, default=100, help="expert trajectories to start from")
    parser.add_argument("--epochs", type=float, default=3)
    parser.add_argument("--size", default="tiny", choices=["tiny", "mini", "small"])
    parser.add_argument("--dir", help="working folder (default: a temporary one)")
    args = parser.parse_args()
    work = Path(args.dir or tempfile.mkdtemp(prefix="agentgym-evol-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    env_port, policy_port, port = free_port(), free_port(), free_port()
    address, policy_url = f"127.0.0.1:{port}", f"http://127.0.0.1:{policy_port}"
    procs = []

    def spawn(name: str, *cmd: str) -> subprocess.Popen[bytes]:
        log = (work / f"{name}.log").open("ab")
        proc = subprocess.Popen([AGENTGYM, "--log-level", "warning", *cmd], stdout=log, stderr=log)
        procs.append(proc)
        return proc

    console = Console(width=160)
    t0 = time.time()
    try:
        spawn("env", "serve", "--port", str(env_port), "--envs", "maze")
        spawn(
            "policy",
            "policy",
            "serve",
            "--backend",
            "hf",
            "--model",
            f"init:{args.size}",
            "--port",
            str(policy_port),
        )
        spawn("trainer", "trainer", "serve", "--dir", str(work / "trainer"), "--port", str(port))
        wait_http(policy_url + "/health")
        spawn("worker", "trainer", "worker", "--trainer", address)
        subprocess.run(
            [AGENTGYM, "--log-level", "warning", "rollout", "--policy", "expert", "--envs", "maze", "--split", "train",
             "--max-tasks", str(args.bc_tasks), "--server", f"127.0.0.1:{env_port}", "--out", str(work / "expert.jsonl"),
             "--sink", f"grpc://{address}", "--no-progress"], check=True, capture_output=True,
        )  # fmt: skip
        submitted = subprocess.run(
            [AGENTGYM, "--log-level", "warning", "trainer", "submit", "evol", "--trainer", address, "--envs", "maze",
             "--base", f"init:{args.size}", "--bc-query", "iteration=-1", "--policy-url", policy_url,
             "--env-server", f"127.0.0.1:{env_port}", "--iterations", str(args.iterations),
             "--explore-episodes", str(args.explore), "--eval-tasks", str(args.eval_tasks), "--max-new-tokens", "48",
             "--set", f"epochs={args.epochs}", "--set", "lr=1e-3", "--set", "max_tokens=2048"],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        job_id = submitted.stdout.split()[0]
        console.print(f"{job_id} submitted; waiting (logs in {work})")
        job = wait_job(address, job_id)
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(30)
    if job.state != rpb.SUCCEEDED:
        raise SystemExit(f"{job_id} {rpb.JobState.Name(job.state)}: {job.error}")
    folder = Path(job.out)
    state = json.loads((folder / "state.json").read_text())
    timing, steps, rollout_s = state["timing"], state["steps"], state.get("rollout_s", {})
    table = Table(title=f"AgentEvol iteration overhead ({args.size} model, Maze, {args.explore} explored, "
                        f"{args.eval_tasks} evaluated; whole run {time.time() - t0:.0f} s)")  # fmt: skip
    for col in ("iteration", "wall s", "rollouts s", "training s", "learner start s", "publish s", "overhead s",
                "overhead %", "overhead % without learner start"):  # fmt: skip
        table.add_column(col, justify="right")
    rows = []
    for k in range(1, args.iterations + 1):
        wall = timing[f"eval-{k}"][1] - timing[f"explore-{k}"][0]
        rollouts = steps[f"explore-{k}"]["rollout_s"] + rollout_s.get(f"eval-iter-{k}", 0.0)
        learned = steps[f"learn-{k}"]
        training = learned["train_s"]
        # The learn step as the trainer saw it, less the training inside it: starting the process
        # (python, torch, transformers), handing it the spec, collecting the result.
        start = timing[f"learn-{k}"][1] - timing[f"learn-{k}"][0] - training
        publish = timing[f"publish-{k}"][1] - timing[f"publish-{k}"][0]
        overhead = wall - rollouts - training
        rows.append({"iteration": k, "wall_s": wall, "rollouts_s": rollouts, "training_s": training,
                     "learner_start_s": start, "publish_s": publish, "overhead_s": overhead,
                     "overhead_pct": 100 * overhead / wall, "overhead_pct_without_start": 100 * (overhead - start) / wall})  # fmt: skip
        table.add_row(str(k), f"{wall:.1f}", f"{rollouts:.1f}", f"{training:.1f}", f"{start:.1f}", f"{publish:.2f}",
                      f"{overhead:.1f}", f"{100 * overhead / wall:.1f}%", f"{100 * (overhead - start) / wall:.1f}%")  # fmt: skip
    console.print(table)
    (work / "evol_overhead.json").write_text(json.dumps(rows, indent=2))
    console.print(f"figures: {work / 'evol_overhead.json'}")


if __name__ == "__main__":
    main()
