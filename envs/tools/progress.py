"""Progress rate: the share of a task's subgoals the agent has met, AgentBoard's metric.

In the original, every successful tool call leaves a "subgoal" (its result, cleaned of volatile
fields), and a task's progress is the share of its gold subgoals found among them, each used
once; the episode keeps the best progress it ever reached. We keep that mechanism and make it
stricter in two ways: a gold subgoal names the tool that must produce it (so a weather lookup that
happens to return "good" does not count as the final answer "good"), and state subgoals check the
backend itself (a to-do item really deleted) instead of trusting a "done" answer.

Kinds of subgoal:
- call:   a successful call of `tool` whose cleaned result matches `expected`;
- answer: the `finish` answer matches `expected` (numbers to `decimals` places when given). When
          `decisive` is set, a correct answer means the task is solved: progress becomes 1 even if
          the agent found the information by another route than the reference calls;
- state:  the env's backend is in the state `expected` describes (the env evaluates it after
          every step).

Matching follows the original: lists compare as sorted multisets (finish sorted list answers),
dicts key by key, and two dicts carrying latitude/longitude match when the points are within
50 km and the rest is equal. We are lenient on form only: strings compare case- and
space-insensitively, and a number written as a string equals the number.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

SAME_PLACE_KM = 50.0
_NUMERIC = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")


@dataclass
class Subgoal:
    kind: Literal["call", "answer", "state"]
    expected: Any = None
    tool: str = ""
    decimals: int | None = None
    decisive: bool = True
    # state subgoals: a line for people
    label: str = ""

    def describe(self) -> str:
        if self.kind == "answer":
            return f"answer {self.expected!r}"
        if self.kind == "call":
            return f"{self.tool} -> {self.expected!r}"
        return self.label or "state"


@dataclass
class Record:
    tool: str
    result: Any


class ProgressTracker:
    """Gold subgoals of one episode, and the calls that may meet them."""

    def __init__(self, subgoals: list[Subgoal], state_check: Callable[[Subgoal], bool] | None = None) -> None:
        if not subgoals:
            raise ValueError("a task needs at least one subgoal")
        self.subgoals = subgoals
        self.state_check = state_check
        self.records: list[Record] = []
        self.best = 0.0

    def record(self, tool: str, cleaned_result: Any) -> None:
        self.records.append(Record(tool, cleaned_result))

    def met(self) -> list[bool]:
        """Which subgoals are met now (each call record used at most once)."""
        used = [False] * len(self.records)
        out: list[bool] = []
        for g in self.subgoals:
            if g.kind == "state":
                out.append(bool(self.state_check and self.state_check(g)))
                continue
            tool = "finish" if g.kind == "answer" else g.tool
            hit = False
            for i, r in enumerate(self.records):
                if not used[i] and r.tool == tool and values_match(g.expected, r.result, g.decimals):
                    used[i] = hit = True
                    break
            out.append(hit)
        return out

    def rate(self) -> float:
        met = self.met()
        if any(m and g.kind == "answer" and g.decisive for g, m in zip(self.subgoals, met, strict=True)):
            return 1.0
        return sum(met) / len(met)

    def update(self) -> tuple[float, float]:
        """Re-evaluate after a step: (reward, best progress so far). Rewards are the increments of
        the best progress, so an episode's rewards sum to its final progress rate."""
        now = self.rate()
        gain = max(0.0, now - self.best)
        self.best = max(self.best, now)
        return gain, self.best

    def unmet(self) -> list[Subgoal]:
        return [g for g, m in zip(self.subgoals, self.met(), strict=True) if not m]


# --- value matching -----------------------------------------------------------------------------
def values_match(expected: Any, got: Any, decimals: int | None = None) -> bool:
    if isinstance(expected, dict) and isinstance(got, dict):
        if _has_place(expected) and _has_place(got):
            if not same_place(expected, got):
                return False
            rest = {k: v for k, v in expected.items() if k not in ("latitude", "longitude")}
            got_rest = {k: v for k, v in got.items() if k not in ("latitude", "longitude")}
            return values_match(rest, got_rest, decimals)
        return expected.keys() == got.keys() and all(
            values_match(expected[k], got[k], decimals) for k in expected
        )
    if isinstance(expected, list | tuple) and isinstance(got, list | tuple):
        if len(expected) != len(got):
            return False
        remaining = list(got)
        for e in sorted(expected, key=_sort_key):
            for i, g in enumerate(remaining):
                if values_match(e, g, decimals):
                    del remaining[i]
                    break
            else:
                return False
        return True
    e_num, g_num = _number(expected), _number(got)
    if e_num is not None and g_num is not None:
        if decimals is None:
            return math.isclose(e_num, g_num, rel_tol=1e-9, abs_tol=1e-9)
        return abs(e_num - g_num) <= 0.5 * 10.0**-decimals + 1e-9
    if isinstance(expected, str) and isinstance(got, str):
        return _text(expected) == _text(got)
    if expected is None or got is None:
        return expected is None and got is None
    return bool(expected == got)


def _number(v: Any) -> float | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int | float):
        return float(v)
    if isinstance(v, str):
        s = v.strip().replace(",", "")
        if _NUMERIC.fullmatch(s):
            return float(s)
    return None


def _text(s: str) -> str:
    return " ".join(s.split()).casefold().rstrip(".")


def _sort_key(v: Any) -> tuple[int, str]:
    n = _number(v)
    return (0, f"{n:030.9f}") if n is not None else (1, repr(v))


def _has_place(d: dict[str, Any]) -> bool:
    return _number(d.get("latitude")) is not None and _number(d.get("longitude")) is not None


def same_place(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return (
        haversine_km(float(a["latitude"]), float(a["longitude"]), float(b["latitude"]), float(b["longitude"]))
        < SAME_PLACE_KM
    )


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 6371.0 * 2 * math.atan2(math.sqrt(h), math.sqrt(1 - h))
