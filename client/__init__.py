"""Client SDK: async `EnvClient`, blocking `SyncEnvClient`, typed errors."""

from agentgym.client.envclient import EnvClient, Episode
from agentgym.client.errors import AgentGymError
from agentgym.client.sync import SyncEnvClient, SyncEpisode
from agentgym.client.types import EnvInfo, ServerStatus, StepResult

__all__ = [
    "AgentGymError",
    "EnvClient",
    "EnvInfo",
    "Episode",
    "ServerStatus",
    "StepResult",
    "SyncEnvClient",
    "SyncEpisode",
]
