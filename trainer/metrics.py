"""Training metrics: one JSON line per logged step (always), TensorBoard and W&B when installed
and asked for."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any


class Metrics:
    def __init__(
        self,
        out: Path,
        *,
        enabled: bool = True,
        tensorboard: bool = False,
        wandb_project: str | None = None,
        run_name: str = "",
        config: dict[str, Any] | None = None,
    ) -> None:
        self.enabled = enabled
        self.path = out / "metrics.jsonl"
        self._tb = None
        self._wandb = None
        if not enabled:
            return
        out.mkdir(parents=True, exist_ok=True)
        self._f = self.path.open("a")
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(out / "tensorboard"))
            except ImportError as exc:
                raise RuntimeError(
                    "TensorBoard logging asked for, but tensorboard is not installed (pip install tensorboard)"
                ) from exc
        if wandb_project:
            try:
                import wandb
            except ImportError as exc:
                raise RuntimeError(
                    "W&B logging asked for, but wandb is not installed (pip install wandb)"
                ) from exc
            self._wandb = wandb.init(project=wandb_project, name=run_name or None, config=config or {})

    def log(self, step: int, values: dict[str, float | int | str]) -> None:
        if not self.enabled:
            return
        self._f.write(json.dumps({"step": step, "time": round(time.time(), 3), **values}) + "\n")
        self._f.flush()
        numeric = {k: v for k, v in values.items() if isinstance(v, int | float)}
        if self._tb is not None:
            for k, v in numeric.items():
                self._tb.add_scalar(k, v, step)
        if self._wandb is not None:
            self._wandb.log(numeric, step=step)

    def close(self) -> None:
        if not self.enabled:
            return
        self._f.close()
        if self._tb is not None:
            self._tb.close()
        if self._wandb is not None:
            self._wandb.finish()
