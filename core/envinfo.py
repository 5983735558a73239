"""What an env server says about the envs it hosts (ListEnvs), as plain Python: shared by the client
SDK and the trainer's jobs (which plan rollouts from task splits and success thresholds)."""

from __future__ import annotations

from dataclasses import dataclass

import grpc

from agentgym.core.rpc import stub
from agentgym.core.security import ClientSecurity, connect
from agentgym.v1 import env_pb2 as pb

SERVICE = pb.DESCRIPTOR.services_by_name["EnvService"]


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
    acknowledgement: str = ""
    task_set: str = ""
    profile: str = ""

    @property
    def original_tasks(self) -> bool:
        """Task id N is the original benchmark's task N (the server loaded the original's data)."""
        return self.task_set == "original"

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
            acknowledgement=m.acknowledgement,
            task_set=m.task_set,
            profile=m.profile,
        )


async def list_envs(
    addresses: list[str], timeout_s: float = 10.0, security: ClientSecurity | None = None
) -> dict[str, EnvInfo]:
    """Every env the servers at `addresses` host (the first server's spec wins on conflicts), over
    TLS for grpcs:// and with the bearer token of `security` (core/security.py). Raises
    ConnectionError naming the servers when none answers."""
    out: dict[str, EnvInfo] = {}
    errors = []
    for address in addresses:
        async with connect(address, security) as channel:
            try:
                reply = await stub(channel, SERVICE, "ListEnvs")(pb.ListEnvsRequest(), timeout=timeout_s)
            except grpc.aio.AioRpcError as exc:
                errors.append(f"{address}: {exc.code().name}: {exc.details()}")
                continue
        for spec in reply.envs:
            out.setdefault(spec.name, EnvInfo.from_pb(spec))
    if not out and errors:
        raise ConnectionError(f"no env server answered ({'; '.join(errors)})")
    return out
