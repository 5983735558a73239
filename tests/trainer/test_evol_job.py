"""The training loop through the fabric, as separate real processes: an env server, a policy server
(hf, SGLang's API), the trainer and a rollout worker. An AgentEvol job goes from submit to published
weights; the trainer is killed with SIGKILL during exploration and during learning and the job
still finishes with every trajectory stored exactly once; a policy server that refuses the new
weights fails the job with the others rolled back."""

from __future__ import annotations

import json
import signal
import subprocess
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import psutil
import pytest

from agentgym.core.rpc import stub
from agentgym.trainer.store import Query, TrajectoryStore, scan_lines
from agentgym.v1 import trainer_pb2 as rpb
from tests.test_cli import AGENTGYM, free_port, wait_listening
from tests.trainer.helpers import wait_serving

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
SERVICE = rpb.DESCRIPTOR.services_by_name["TrainerService"]
EXPLORE = 24


class Loop:
    """The processes of the loop, each restartable."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.dir = tmp / "trainer"
        self.log = tmp / "trainer.log"
        self.env_port, self.policy_port, self.port = free_port(), free_port(), free_port()
        self.procs: dict[str, subprocess.Popen[Any]] = {}

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def policy_url(self) -> str:
        return f"http://127.0.0.1:{self.policy_port}"

    def spawn(self, name: str, *args: str) -> subprocess.Popen[Any]:
        with (self.tmp / f"{name}.log").open("ab") as f:
            proc = subprocess.Popen([AGENTGYM, "--log-level", "info", *args], stdout=f, stderr=f,
                                    stdin=subprocess.DEVNULL)  # fmt: skip
        self.procs[name] = proc
        return proc

    def start_trainer(self) -> None:
        proc = self.spawn(
            "trainer", "trainer", "serve", "--dir", str(self.dir), "--port", str(self.port), "--grace", "1"
        )
        wait_serving(self.port, proc, self.tmp / "trainer.log")

    def kill_trainer(self) -> None:
        self.procs["trainer"].send_signal(signal.SIGKILL)
        self.procs["trainer"].wait()

    def start(self) -> None:
        env = self.spawn("env", "serve", "--port", str(self.env_port), "--envs", "maze")
        self.spawn(
            "policy",
            "policy",
            "serve",
            "--backend",
            "hf",
            "--model",
            "init:tiny",
            "--port",
            str(self.policy_port),
        )
        self.start_trainer()
        wait_listening(self.env_port, env)
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(self.policy_url + "/health", timeout=2)
                break
            except OSError:
                assert time.monotonic() < deadline, (self.tmp / "policy.log").read_text()
                time.sleep(0.3)
        self.spawn("worker", "trainer", "worker", "--trainer", self.address)
        # The original (expert) trajectories reach the store as any rollout's do: over Push.
        out = subprocess.run(
            [AGENTGYM, "--log-level", "warning", "rollout", "--policy", "expert", "--envs", "maze", "--split", "train",
             "--max-tasks", "40", "--server", f"127.0.0.1:{self.env_port}", "--out", str(self.tmp / "expert.jsonl"),
             "--sink", f"grpc://{self.address}", "--no-progress"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr

    def submit(self, *extra: str) -> str:
        out = subprocess.run(
            [AGENTGYM, "--log-level", "warning", "trainer", "submit", "evol", "--trainer", self.address, "--envs", "maze",
             "--base", "init:tiny", "--bc-query", "iteration=-1", "--policy-url", self.policy_url,
             "--env-server", f"127.0.0.1:{self.env_port}", "--iterations", "1", "--explore-episodes", str(EXPLORE),
             "--eval-tasks", "4", "--max-new-tokens", "12", "--concurrency", "4", "--work-chunk", "6",
             "--set", "epochs=1", "--set", "max_tokens=2048", "--set", "lr=1e-3", "--set", "save_every=3", *extra],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        return out.stdout.split()[0]

    def job(self, job_id: str) -> rpb.Job | None:
        try:
            with grpc.insecure_channel(self.address) as ch:
                return stub(ch, SERVICE, "GetJob")(rpb.GetJobRequest(id=job_id), timeout=5)  # type: ignore[no-any-return]
        except grpc.RpcError:
            return None

    def wait_job(self, job_id: str, until: Any, timeout_s: float = 400) -> rpb.Job:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for name in ("env", "policy", "worker", "trainer"):
                assert self.procs[name].poll() is None, (
                    f"{name} exited: {(self.tmp / f'{name}.log').read_text()[-3000:]}"
                )
            job = self.job(job_id)
            if job is not None and until(job):
                return job
            time.sleep(0.2)
        raise TimeoutError(f"{job_id}: {self.job(job_id)}\n{(self.tmp / 'trainer.log').read_text()[-3000:]}")

    def stored(self, **query: Any) -> int:
        with TrajectoryStore.open(self.dir / "store", readonly=True) as store:
            return store.count(Query.of(**query))

    def model_info(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.policy_url + "/model_info", timeout=5) as r:
            return json.loads(r.read())  # type: ignore[no-any-return]

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture
def loop(tmp_path: Path) -> Iterator[Loop]:
    lp = Loop(tmp_path)
    try:
        lp.start()
        yield lp
    finally:
        lp.stop()


def learning_processes(folder: Path) -> list[psutil.Process]:
    """This trainer's learning processes (their command line names the job's folder)."""
    return [p for p in psutil.process_iter(["cmdline"])
            if "agentgym.trainer.learn" in (cmd := " ".join(p.info["cmdline"] or [])) and str(folder) in cmd]  # fmt: skip


def test_evol_job_survives_kill_9_during_exploration_and_learning(loop: Loop) -> None:
    job_id = loop.submit()
    assert job_id == "job-000001"
    folder = loop.dir / "jobs" / job_id

    # 1. Killed while exploring: some of iteration 1's trajectories are stored, not all.
    loop.wait_job(job_id, lambda j: j.step.endswith("explore") and loop.stored(iteration=1) >= 4)
    loop.kill_trainer()
    assert loop.stored(iteration=1) < EXPLORE
    loop.start_trainer()  # the job resumes; the worker reconnects and gets the unfinished work again

    # 2. Killed while learning, after a checkpoint: the learning process dies with the trainer.
    learn_log = folder / "iter-1" / "model" / "learn.log"

    def checkpointed(job: rpb.Job) -> bool:  # a complete checkpoint (a half-written one is not resumed)
        return (
            job.step.startswith("iteration 1/1: learn")
            and learn_log.exists()
            and ('"checkpoint saved"' in learn_log.read_text())
        )

    loop.wait_job(job_id, checkpointed)
    loop.kill_trainer()
    deadline = time.monotonic() + 10
    while learning_processes(folder) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not learning_processes(folder), "learning outlived the trainer"
    loop.start_trainer()

    job = loop.wait_job(job_id, lambda j: j.state not in (rpb.QUEUED, rpb.RUNNING))
    assert job.state == rpb.SUCCEEDED, job.error
    # Every acknowledged trajectory is there once: nothing lost, nothing duplicated on disk.
    keys = Counter(key for key, _ in scan_lines(loop.dir / "store"))
    assert max(keys.values()) == 1
    explored = [rec for key, rec in scan_lines(loop.dir / "store") if rec.get("iteration") == 1]
    assert len(explored) == EXPLORE
    # ...each made by the weights published for iteration 0, and saying so.
    assert {rec["weight_version"] for rec in explored} == {f"{job_id}.iter-0"}
    # Learning resumed from its checkpoint instead of starting over.
    assert '"resumed"' in (folder / "iter-1" / "model" / "learn.log").read_text()
    # The new weights are published, and the job says so.
    assert loop.model_info()["weight_version"] == job.weight_version == f"{job_id}.iter-1"
    report = json.loads((folder / "report.json").read_text())["iterations"]
    assert [r["iteration"] for r in report] == [1] and report[0]["explored"] == {"maze": EXPLORE}
    events = (folder / "events.jsonl").read_text()
    assert events.count("resumed from its last completed step") == 2
    # `agentgym trainer jobs` and `logs` show it.
    out = subprocess.run(
        [AGENTGYM, "trainer", "jobs", "--trainer", loop.address], capture_output=True, text=True
    )
    assert job_id in out.stdout and "SUCCEEDED" in out.stdout
    out = subprocess.run([AGENTGYM, "trainer", "logs", job_id, "--trainer", loop.address], capture_output=True,
                         text=True, timeout=60)  # fmt: skip
    assert out.returncode == 0 and "published job-000001.iter-1" in out.stdout


def _can_unshare() -> bool:
    return subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode == 0


@pytest.mark.skipif(
    not _can_unshare(), reason="needs mount namespaces (unshare -m) to hide a folder from one server"
)
def test_a_policy_server_that_refuses_the_weights_fails_the_job_and_rolls_back(
    loop: Loop, tmp_path: Path
) -> None:
    """Two policy servers; the second cannot see iteration 1's checkpoint (as a machine without the
    shared disk would not), so it really refuses to load it. The first is rolled back to iteration
    0's weights, and the job fails saying which server refused and what each serves now."""
    other = free_port()
    # The second server runs in its own mount namespace, where a folder can be hidden from it alone.
    proc = loop.spawn(
        "policy2", "policy", "serve", "--backend", "hf", "--model", "init:tiny", "--port", str(other)
    )
    proc.kill()
    proc.wait()
    with (tmp_path / "policy2.log").open("ab") as f:
        proc = subprocess.Popen(["unshare", "-m", AGENTGYM, "policy", "serve", "--backend", "hf", "--model", "init:tiny",
                                 "--port", str(other)], stdout=f, stderr=f, stdin=subprocess.DEVNULL)  # fmt: skip
    loop.procs["policy2"] = proc
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{other}/health", timeout=2)
            break
        except OSError:
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "policy2.log").read_text()
            time.sleep(0.3)
    job_id = loop.submit("--policy-url", f"http://127.0.0.1:{other}")
    folder = loop.dir / "jobs" / job_id
    model = folder / "iter-1" / "model"
    loop.wait_job(job_id, lambda j: j.step.startswith("iteration 1/1: learn") and model.is_dir())
    empty = tmp_path / "empty"
    empty.mkdir()
    hide = subprocess.run(["nsenter", "-t", str(proc.pid), "-m", "mount", "--bind", str(empty), str(model)],
                          capture_output=True, text=True)  # fmt: skip
    assert hide.returncode == 0, hide.stderr
    job = loop.wait_job(job_id, lambda j: j.state not in (rpb.QUEUED, rpb.RUNNING))
    assert job.state == rpb.FAILED, job
    assert f"1 of 2 policy server(s) could not load {model}/final as {job_id}.iter-1" in job.error
    assert f"http://127.0.0.1:{other}" in job.error and "not a model directory" in job.error
    assert f"rolled back 1 server(s) to {job_id}.iter-0" in job.error
    # Never a silent mix: the first server serves iteration 0's weights again.
    assert loop.model_info()["weight_version"] == f"{job_id}.iter-0"
    assert "publish-1" not in json.loads((folder / "state.json").read_text())["steps"]


def learner_processes(folder: Path) -> list[psutil.Process]:
    return [p for p in psutil.process_iter(["cmdline"])
            if "agentgym.trainer.rl_learn" in (cmd := " ".join(p.info["cmdline"] or [])) and str(folder) in cmd]  # fmt: skip


def test_rl_job_survives_kill_9_mid_rollout(loop: Loop) -> None:
    """`agentgym trainer submit rl`; the trainer killed while step 2's episodes stream in: its learner
    dies with it, the restarted trainer resumes the job (a new learner from the newest checkpoint),
    and every step's batch is stored exactly once."""
    out = subprocess.run(
        [AGENTGYM, "--log-level", "warning", "trainer", "submit", "rl", "--trainer", loop.address, "--envs", "maze",
         "--model", "init:tiny", "--policy-url", loop.policy_url, "--env-server", f"127.0.0.1:{loop.env_port}",
         "--steps", "3", "--tasks-per-step", "3", "--group-size", "2", "--rounds", "2,4", "--stage-steps", "2",
         "--eval-tasks", "2", "--max-new-tokens", "12", "--work-chunk", "2", "--concurrency", "2",
         "--set", "lr=1e-3", "--set", "skip_zero_advantage=false"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    job_id = out.stdout.split()[0]
    folder = loop.dir / "jobs" / job_id
    loop.wait_job(job_id, lambda j: "step 2/3: roll out" in j.step and loop.stored(iteration=1) >= 1)
    assert learner_processes(folder)
    loop.kill_trainer()
    deadline = time.monotonic() + 10
    while learner_processes(folder) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not learner_processes(folder), "the learner outlived the trainer"
    loop.start_trainer()
    job = loop.wait_job(job_id, lambda j: j.state not in (rpb.QUEUED, rpb.RUNNING))
    assert job.state == rpb.SUCCEEDED, job.error
    keys = Counter(key for key, _ in scan_lines(loop.dir / "store"))
    assert max(keys.values()) == 1
    for k, horizon in ((0, 2), (1, 2), (2, 4)):
        batch = [rec for _, rec in scan_lines(loop.dir / "store") if rec.get("iteration") == k]
        assert len(batch) == 6 and {rec["max_steps"] for rec in batch} == {horizon}
        assert {rec["weight_version"] for rec in batch} == {f"{job_id}.step-{k}"}
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 1, 2]
    assert loop.model_info()["weight_version"] == job.weight_version == f"{job_id}.step-3"
    assert (folder / "events.jsonl").read_text().count("resumed from its last completed step") == 1
    assert not learner_processes(folder)
