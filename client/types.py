"""Plain Python views of the contract's messages, for code that uses the SDK."""

from __future__ import annotations

from dataclasses import dataclass, field

from agentgym.core.envinfo import EnvInfo
from agentgym.v1 import env_pb2 as pb

__all__ = ["EnvInfo", "ServerStatus", "StepResult"]


@dataclass(frozen=True, slots=True)
class StepResult:
    observation: str
    reward: float = 0.0
    score: float = 0.0
    done: bool = False
    truncated: bool = False
    success: bool = False
    step_index: int = 0
    available_actions: tuple[str, ...] = ()
    info: dict[str, str] = field(default_factory=dict)

    @property
    def over(self) -> bool:
        """No more steps: the episode is done or was truncated."""
        return self.done or self.truncated

    @classmethod
    def from_pb(cls, m: pb.StepResult) -> StepResult:
        return cls(
            m.observation,
            m.reward,
            m.score,
            m.done,
            m.truncated,
            m.success,
            m.step_index,
            tuple(m.available_actions),
            dict(m.info),
        )


@dataclass(frozen=True, slots=True)
class ServerStatus:
    address: str
    implementation: str
    max_episodes: int
    live_episodes: int
    max_action_bytes: int
    step_timeout_s: float
    idle_timeout_s: float
    draining: bool
    envs: dict[str, EnvInfo]

    @classmethod
    def from_pb(cls, address: str, m: pb.ListEnvsResponse) -> ServerStatus:
        s = m.server
        return cls(
            address,
            s.implementation,
            s.max_episodes,
            s.live_episodes,
            s.max_action_bytes,
            s.step_timeout_s,
            s.idle_timeout_s,
            s.draining,
            {e.name: EnvInfo.from_pb(e) for e in m.envs},
        )
