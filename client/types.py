"""Plain Python views of the contract's messages, for code that uses the SDK."""

from __future__ import annotations

from dataclasses import dataclass, field

from agentgym.v1 import env_pb2 as pb


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
class EnvInfo:
    """What a server says about one env it hosts (EnvSpec)."""

    name: str
    description: str
    task_count: int
    splits: dict[str, list[range]]
    instruction: str
    action_format: str
    max_rounds: int
    has_expert: bool
    max_episodes: int
    live_episodes: int
    success_threshold: float

    def tasks(self, split: str | None = None) -> list[int]:
        """Task ids of a split (all ids when split is None)."""
        if split is None:
            return list(range(self.task_count))
        if split not in self.splits:
            raise KeyError(
                f"env {self.name!r} has no split {split!r}; it has: {', '.join(self.splits) or 'none'}"
            )
        return sorted({i for r in self.splits[split] for i in r})

    @classmethod
    def from_pb(cls, m: pb.EnvSpec) -> EnvInfo:
        return cls(
            name=m.name,
            description=m.description,
            task_count=m.task_count,
            splits={s.name: [range(r.start, r.end) for r in s.ranges] for s in m.splits},
            instruction=m.instruction,
            action_format=m.action_format,
            max_rounds=m.max_rounds,
            has_expert=m.has_expert,
            max_episodes=m.max_episodes,
            live_episodes=m.live_episodes,
            success_threshold=m.success_threshold,
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
