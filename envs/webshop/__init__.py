"""WebShop: a text web shop with BM25 search and the original's purchase reward (see env.py)."""

from agentgym.envs.webshop.env import WebShop

__all__ = ["WebShop"]
