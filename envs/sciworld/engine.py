"""Starting ScienceWorld's simulator (a Scala program in its own JVM, driven over py4j).

Two JVM options matter:
- `-XX:hashCode=2` makes every identity hash code the same constant. The simulator keeps objects
  in hash sets keyed by identity, so with the default (random) hash codes the order in which a
  room lists its contents changes from one load to the next, even for the same task and
  variation. With a constant hash code the same task and variation give the same episode byte for
  byte, in any JVM, however often it is reloaded.
- A heap limit (`-Xmx`, default 512 MB) with the serial collector. Left alone, a JVM sizes its heap
  from the machine's memory, and generating a gold path grows one to 1.5 GB or more; capped, the
  same work fits in 0.2-0.45 GB of resident memory, which is what lets a host run many episodes.

The package starts its JVM itself with no way to pass options, so they go in through
`JAVA_TOOL_OPTIONS` while it starts (under a lock: the environment is process-wide).
"""

from __future__ import annotations

import os
import shutil
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from scienceworld import ScienceWorldEnv

DEFAULT_HEAP_MB = 512
# Memory one live episode may take, for the default capacity: the JVM (heap, metaspace, code
# cache, threads: 0.2-0.6 GB measured) plus the Python worker process hosting it (~0.1 GB).
DEFAULT_EPISODE_MB = 800

_start_lock = threading.Lock()


class EngineDied(RuntimeError):
    """The episode's JVM is gone (killed, crashed, out of memory)."""


def java_missing_reason() -> str | None:
    if shutil.which("java") is None:
        return (
            "ScienceWorld needs a Java runtime (17 or newer) on PATH, e.g. "
            "`apt-get install openjdk-17-jre-headless`"
        )
    return None


def jvm_options(heap_mb: int = DEFAULT_HEAP_MB) -> str:
    return f"-Xmx{heap_mb}m -XX:+UseSerialGC -XX:+UnlockExperimentalVMOptions -XX:hashCode=2"


def start_engine(heap_mb: int = DEFAULT_HEAP_MB) -> ScienceWorldEnv:
    """A ScienceWorld simulator in a fresh JVM (1-2 s)."""
    from scienceworld import ScienceWorldEnv

    with _start_lock:
        before = os.environ.get("JAVA_TOOL_OPTIONS")
        os.environ["JAVA_TOOL_OPTIONS"] = (
            f"{before} {jvm_options(heap_mb)}" if before else jvm_options(heap_mb)
        )
        try:
            return ScienceWorldEnv()
        finally:
            if before is None:
                del os.environ["JAVA_TOOL_OPTIONS"]
            else:
                os.environ["JAVA_TOOL_OPTIONS"] = before


def jvm_pid(engine: ScienceWorldEnv) -> int:
    return int(engine._gateway.java_process.pid)


def jvm_exit_code(engine: ScienceWorldEnv) -> int | None:
    code: int | None = engine._gateway.java_process.poll()
    return code


def stop_engine(engine: ScienceWorldEnv) -> None:
    """Shut the JVM down and reap it; kill it if it does not go within a few seconds."""
    proc = engine._gateway.java_process
    try:
        if proc.poll() is None:
            engine.close()
    except Exception:
        pass  # a dead or wedged JVM: killed below
    try:
        proc.wait(timeout=5)
    except Exception:
        proc.kill()
        proc.wait()
    # The package's __del__ would close the gateway a second time.
    engine.close = lambda: None  # type: ignore[method-assign]
