"""torch.distributed for the trainer: one process per GPU under torchrun (or accelerate launch),
a single process otherwise. The same code runs on CPU (gloo) for tests."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: str = "cpu"

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def setup(device: str | None = None) -> Dist:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1); pick this rank's device."""
    import torch
    import torch.distributed as td

    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device is None:
        device = f"cuda:{local}" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        torch.cuda.set_device(torch.device(device))
    if world > 1 and not td.is_initialized():
        td.init_process_group(backend="nccl" if device.startswith("cuda") else "gloo")
    return Dist(rank, world, local, device)


def teardown(dist: Dist) -> None:
    import torch.distributed as td

    if dist.enabled and td.is_initialized():
        td.destroy_process_group()


def all_reduce_sum(dist: Dist, value: float, device: str) -> float:
    if not dist.enabled:
        return value
    import torch
    import torch.distributed as td

    t = torch.tensor([value], dtype=torch.float64, device=device)
    td.all_reduce(t)
    return float(t.item())


def all_reduce_max(dist: Dist, value: float, device: str) -> float:
    if not dist.enabled:
        return value
    import torch
    import torch.distributed as td

    t = torch.tensor([value], dtype=torch.float64, device=device)
    td.all_reduce(t, op=td.ReduceOp.MAX)
    return float(t.item())


def barrier(dist: Dist) -> None:
    if dist.enabled:
        import torch.distributed as td

        td.barrier()


def broadcast_object(dist: Dist, obj: Any) -> Any:
    if not dist.enabled:
        return obj
    import torch.distributed as td

    box = [obj]
    td.broadcast_object_list(box, src=0)
    return box[0]
