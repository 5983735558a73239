"""BIRD: text-to-SQL on SQLite databases, one query per episode (see env.py)."""

from agentgym.envs.bird.env import Bird

__all__ = ["Bird"]
