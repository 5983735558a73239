"""The learn step of a job: behaviour cloning in a child process of the trainer.

    result = await learn(BCConfig(...), nproc=1, on_progress=lambda step, total, loss: ...)

Why a child process: the trainer keeps serving (acknowledging pushes, answering workers) while a
model trains; several GPUs mean torchrun anyway; and a job that is cancelled kills its learning
outright. The child dies with the trainer (PR_SET_PDEATHSIG), so a trainer killed with kill -9
leaves no orphan training on the GPUs; rerun, the same step resumes from the child's newest
checkpoint (BCConfig.save_every, resume=True).

The child is `python -m agentgym.trainer.learn SPEC.json` (or torchrun ... -m ...): it reads the
BCConfig from the JSON, trains, and writes `result.json` beside it. Progress reaches the parent
through `progress.json` (step, total, loss), rewritten atomically every second.
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import logging
import os
import signal
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


def _die_with_parent() -> None:
    """In the child, before exec: SIGKILL when the parent (the trainer) dies."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


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
    if nproc > 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={nproc}", "-m",
               "agentgym.trainer.learn", str(spec)]  # fmt: skip
    else:
        cmd = [sys.executable, "-m", "agentgym.trainer.learn", str(spec)]
    with (out / LOG).open("ab") as logf:
        proc = await asyncio.create_subprocess_exec(
            *cmd,
            stdout=logf,
            stderr=logf,
            stdin=asyncio.subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
            start_new_session=True,
            env={**os.environ, "AGENTGYM_LOG_FORMAT": "json"},
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


def main(spec_path: str) -> int:
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

    result = train(cfg, on_step=progress)
    if rank0:
        tmp = spec.with_name(RESULT + ".tmp")
        tmp.write_text(json.dumps({
            "final": str(result.final), "steps": result.steps, "first_loss": result.first_loss,
            "last_loss": result.last_loss, "tokens_per_s": result.tokens_per_s, "mfu": result.mfu,
            "data_stats": result.data_stats,
        }))  # fmt: skip
        tmp.replace(spec.with_name(RESULT))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
