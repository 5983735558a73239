"""Environments and the env SDK. See `agentgym.envs.base` for how to write one."""

from agentgym.envs.base import Env, EnvError, Outcome
from agentgym.envs.registry import register

__all__ = ["Env", "EnvError", "Outcome", "register"]
