"""The tool-use envs of AgentBoard as AgentGym serves them: Weather, Movie, Academia, Sheet and
TODOList, each on an offline, deterministic backend. Shared parts: action.py (the action syntax),
toolkit.py (tool declarations and argument checking), progress.py (the progress-rate reward),
planner.py (tasks built by solving them), base.py (the episode loop), original.py (the original's
task files and, under the agentgym profile, its rules)."""

from agentgym.envs.tools.academia import Academia
from agentgym.envs.tools.movie import Movie
from agentgym.envs.tools.sheet import SheetEnv
from agentgym.envs.tools.todo import TodoList
from agentgym.envs.tools.weather import Weather

__all__ = ["Academia", "Movie", "SheetEnv", "TodoList", "Weather"]
