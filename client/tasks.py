"""Which episodes a run plays: task ids per env, from ranges, splits or AgentEval item files.

select_tasks(info, "0-99,150")        # ids and ranges (inclusive)
select_tasks(info, "split:test")      # a named split
select_tasks(info, "all")
tasks_from_item_file("webshop_test.json")   # AgentEval format: [{"item_id": "webshop_6", ...}]
"""

from __future__ import annotations

from pathlib import Path

from agentgym.client.react import EpisodeSpec
from agentgym.client.types import EnvInfo
from agentgym.core.trajectory import TrajectoryError, read_items, split_item_id


class TaskSpecError(ValueError):
    pass


def select_tasks(info: EnvInfo, spec: str | None = None, default_split: str | None = None) -> list[int]:
    """Task ids of `info` named by `spec`; without a spec, `default_split` if the env has it, else all."""
    if spec is None or spec == "":
        spec = f"split:{default_split}" if default_split and default_split in info.splits else "all"
    if spec == "all":
        return list(range(info.task_count))
    if spec.startswith("split:"):
        name = spec[len("split:") :]
        if name not in info.splits:
            raise TaskSpecError(
                f"env {info.name!r} has no split {name!r}; it has: {', '.join(info.splits) or 'none'}"
            )
        return info.tasks(name)
    ids: list[int] = []
    for part in spec.split(","):
        part = part.strip()
        try:
            if "-" in part:
                lo, hi = (int(x) for x in part.split("-", 1))
                ids.extend(range(lo, hi + 1))
            elif part:
                ids.append(int(part))
        except ValueError:
            raise TaskSpecError(
                f"bad task selection {part!r}: use ids and ranges like 0-99,150, 'split:NAME' or 'all'"
            ) from None
    bad = [i for i in ids if not 0 <= i < info.task_count]
    if bad:
        raise TaskSpecError(f"env {info.name!r} has tasks 0..{info.task_count - 1}; out of range: {bad[:5]}")
    return list(dict.fromkeys(ids))


def tasks_from_item_file(path: str | Path) -> list[EpisodeSpec]:
    """Episodes named by an AgentEval/AgentTraj file's item_ids (in file order, duplicates dropped)."""
    specs: dict[str, EpisodeSpec] = {}
    for where, item in read_items(path):
        if (
            isinstance(item, TrajectoryError)
            or type(item) is not dict
            or type(item.get("item_id")) is not str
        ):
            raise TaskSpecError(f"{where}: not an item with an item_id ({item})")
        try:
            env, task_id = split_item_id(item["item_id"])
        except TrajectoryError as exc:
            raise TaskSpecError(f"{where}: {exc}") from None
        spec = EpisodeSpec(env, task_id)
        specs.setdefault(spec.record_id, spec)
    return list(specs.values())


def expand(env_tasks: dict[str, list[int]], samples: int = 1, seed: int | None = None) -> list[EpisodeSpec]:
    """Episode specs, `samples` per task (distinct record ids), interleaving envs so a run that is cut
    short has played some of each."""
    per_env = [
        [EpisodeSpec(env, t, seed, s) for t in ids for s in range(samples)] for env, ids in env_tasks.items()
    ]
    out: list[EpisodeSpec] = []
    for i in range(max((len(x) for x in per_env), default=0)):
        out.extend(x[i] for x in per_env if i < len(x))
    return out
