"""TextCraft: Minecraft crafting from real recipes (see env.py)."""

from agentgym.envs.textcraft.env import TextCraft

__all__ = ["TextCraft"]
