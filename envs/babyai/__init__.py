"""BabyAI: minigrid's BabyAI levels through high-level text actions (see env.py)."""

from agentgym.envs.babyai.env import BabyAI

__all__ = ["BabyAI"]
