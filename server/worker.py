"""A worker process hosting one episode of one env: `python -m agentgym.server.worker ENV [MODULE]`.

Speaks length-prefixed pickles with its parent (`ProcessRunner`) over the stdin/stdout pipes it
was started with. Anything the env prints goes to stderr, never into the protocol. The process
exits, closing its env, when its stdin closes: the episode is over. MODULE, the module that
registered the env class, is imported first: envs registered outside agentgym.envs (a plugin, a
test fixture) run in worker processes too.
"""

from __future__ import annotations

import importlib
import os
import pickle
import struct
import sys
import traceback
from typing import Any, BinaryIO

from agentgym.envs import registry
from agentgym.envs.base import Env, EnvError

_LEN = struct.Struct("!I")


def _read(stream: BinaryIO) -> Any:
    head = stream.read(_LEN.size)
    if len(head) < _LEN.size:
        return None
    (n,) = _LEN.unpack(head)
    return pickle.loads(stream.read(n))


def _write(stream: BinaryIO, msg: Any) -> None:
    data = pickle.dumps(msg, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_LEN.pack(len(data)) + data)
    stream.flush()


def main(env_name: str, module: str | None = None) -> None:
    # Keep the protocol pipe private: fd 1 becomes stderr, so stray prints cannot corrupt it.
    proto_out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    if module:
        importlib.import_module(module)
    proto_in = sys.stdin.buffer
    env: Env | None = None
    while (msg := _read(proto_in)) is not None:
        op, *args = msg
        try:
            if op == "configure":
                cls = registry.configure(env_name, args[0])
                env = cls()
                result: Any = None
            elif env is None:
                raise RuntimeError("worker used before configure")
            elif op == "reset":
                task_id, seed, options = args
                env.rng.seed(seed)
                result = (env.reset(task_id, seed, options), env.episode_instruction())
            elif op == "step":
                result = env.step(args[0])
            elif op == "expert":
                action = env.expert_action()
                result = (action, env.expert_thought(action) or "")
            else:
                raise RuntimeError(f"unknown worker op {op!r}")
            _write(proto_out, ("ok", result))
        except EnvError as exc:
            _write(proto_out, ("env_error", str(exc)))
        except Exception as exc:
            traceback.print_exc(file=sys.stderr)
            _write(proto_out, ("error", f"{type(exc).__name__}: {exc}"))
    if env is not None:
        env.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None)
