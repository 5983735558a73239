"""SciWorld on the ScienceWorld simulator (see env.py). Needs the `scienceworld` package and Java."""

import importlib.util

from agentgym.envs.sciworld.engine import java_missing_reason

if importlib.util.find_spec("scienceworld") is None:
    raise ImportError("the `scienceworld` package is not installed (pip install scienceworld)")
if (_reason := java_missing_reason()) is not None:
    raise ImportError(_reason)

from agentgym.envs.sciworld.env import SciWorld

__all__ = ["SciWorld"]
