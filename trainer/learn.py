"""The learn step of a job: behaviour cloning in a child process of the trainer.

    result = await learn(BCConfig(...), nproc=1, on_progress=lambda step, total, loss: ...)

Why a child process: the trainer keeps serving (acknowledging pushes, answering workers) while a
model trains; several GPUs mean torchrun anyway; and a job that is cancelled kills its learning
outright. The child dies with the trainer (PR_SET_PDEATHSIG), so a trainer killed with kill -9
leaves no orphan training on the GPUs; rerun, the same step resumes from the child's newest
checkpoint (BCConfig.save_every, resume=True).

The child is `python -m agentgym.trainer.learn SPEC.json`: it asks the kernel to kill it when the
trainer dies (before anything else, while it has one thread), reads the BCConfig from the JSON,
trains (or, for several processes, runs torchrun as its own child, which dies with it), and
writes `result.json` beside it. Progress reaches the parent
through `progress.json` (step, total, loss), rewritten atomically every second.
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from agentgym.trainer.bc import BCConfig

log = logging.getLogger(__name__)

SPEC = "learn.json"
RESULT = "result.json"
PROGRESS = "progress.json"
LOG = "learn.log"


class LearnFailed(Exception):
    """The learning process failed; the message carries the end of its log."""


def die_with_parent(parent: int | None = None) -> None:
    """SIGKILL this process when its parent dies (Linux PR_SET_PDEATHSIG); exit at once if the
    parent `parent` is already gone. Call it while the process has a single thread."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        return
    if parent is not None and os.getppid() != parent:
        os._exit(1)


def read_result(out: Path) -> dict[str, Any] | None:
    """The result of a learn step that finished in `out` (None when it did not)."""
    path = out / RESULT
    if not path.exists() or not (out / "final" / "config.json").exists():
        return None
    result: dict[str, Any] = json.loads(path.read_text())
    return result


async def learn(
    cfg: BCConfig,
    *,
    nproc: int = 1,
    on_progress: Callable[[int, int, float], None] | None = None,
    poll_s: float = 1.0,
) -> dict[str, Any]:
    """Run BC as `cfg` says in a child process and return its result (see `read_result`); a step
    that already finished returns its result at once, one that was cut short resumes."""
    out = Path(cfg.out)
    done = read_result(out)
    if done is not None:
        return done
    spec = _write_spec(cfg)
    cmd = [sys.executable, "-m", "agentgym.trainer.learn", str(spec), "--nproc", str(nproc)]
    with (out / LOG).open("ab") as logf:
        proc = await asyncio.create_subprocess_exec(
            *cmd,
            stdout=logf,
            stderr=logf,
            stdin=asyncio.subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, "AGENTGYM_LOG_FORMAT": "json", "AGENTGYM_PARENT_PID": str(os.getpid())},
        )
    log.info("learning started", extra={"pid": proc.pid, "out": str(out), "nproc": nproc})
    seen = None
    try:
        while True:
            try:
                rc = await asyncio.wait_for(proc.wait(), poll_s)
                break
            except TimeoutError:
                pass
            try:
                p = json.loads((out / PROGRESS).read_text())
            except (OSError, ValueError):
                continue
            if on_progress is not None and p != seen:
                seen = p
                on_progress(p["step"], p["total"], p["loss"])
    except asyncio.CancelledError:
        await _kill(proc)
        raise
    result = read_result(out)
    if rc != 0 or result is None:
        tail = (out / LOG).read_bytes()[-2000:].decode(errors="replace").strip().splitlines()[-8:]
        raise LearnFailed(f"learning in {out} exited with code {rc}: " + " | ".join(tail))
    return result


def _write_spec(cfg: BCConfig) -> Path:
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    spec = out / SPEC
    spec.write_text(json.dumps(asdict(cfg), indent=1))
    return spec


async def _kill(proc: asyncio.subprocess.Process, grace_s: float = 5.0) -> None:
    """The whole process group (torchrun and its ranks): TERM, then KILL after `grace_s`."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            await asyncio.wait_for(proc.wait(), grace_s)
            break
        except TimeoutError:
            continue
    await proc.wait()


def main(spec_path: str, nproc: int = 1) -> int:
    started = time.time()
    parent = os.environ.pop("AGENTGYM_PARENT_PID", None)
    if parent is not None:
        die_with_parent(int(parent))
    if nproc > 1:  # torchrun as this process's child, dying with it; its ranks run main() below
        cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={nproc}", "-m",
               "agentgym.trainer.learn", spec_path]  # fmt: skip
        # preexec_fn is safe here: this process has not started a thread yet.
        return subprocess.run(cmd, preexec_fn=die_with_parent).returncode
    from agentgym.core.logs import configure_logging
    from agentgym.trainer.bc import train

    configure_logging()
    spec = Path(spec_path)
    cfg = BCConfig(**json.loads(spec.read_text()))
    rank0 = os.environ.get("RANK", "0") == "0"
    last = [0.0]

    def progress(step: int, total: int, loss: float) -> None:
        now = time.monotonic()
        if rank0 and (now - last[0] >= 1.0 or step == total):
            last[0] = now
            tmp = spec.with_name(PROGRESS + ".tmp")
            tmp.write_text(json.dumps({"step": step, "total": total, "loss": loss}))
            tmp.replace(spec.with_name(PROGRESS))

    training = time.time()
    result = train(cfg, on_step=progress)
    ended = time.time()
    if rank0:
        tmp = spec.with_name(RESULT + ".tmp")
        tmp.write_text(json.dumps({
            "final": str(result.final), "steps": result.steps, "first_loss": result.first_loss,
            "last_loss": result.last_loss, "tokens_per_s": result.tokens_per_s, "mfu": result.mfu,
            "data_stats": result.data_stats,
            "process_s": round(ended - started, 3), "train_s": round(ended - training, 3),
        }))  # fmt: skip
        tmp.replace(spec.with_name(RESULT))
    return 0


if __name__ == "__main__":
    args = sys.argv[1:]
    sys.exit(main(args[0], int(args[2]) if args[1:2] == ["--nproc"] else 1))
