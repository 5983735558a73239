"""ALFWorld on TextWorld's PDDL engine (see env.py). Needs the `alfworld` package (which pulls
`textworld[pddl]`, with Fast Downward)."""

import importlib.util

for _module in ("alfworld", "textworld", "fast_downward"):
    if importlib.util.find_spec(_module) is None:
        raise ImportError(f"the `{_module}` module is not installed (pip install alfworld)")

from agentgym.envs.alfworld.env import ALFWorld  # noqa: E402

__all__ = ["ALFWorld"]
