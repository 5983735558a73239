"""The report of an RL job: report.json, report.md and report.png in the job's folder.

    write_rl_report(job_dir, rows, envs=["maze", "wordle"])

Each row is one RL step, as the job records it (any key may be missing or None):
    step, horizon (0: the env's default), weight_version (the version the step produced),
    episodes, trained_episodes, dropped_stale, reward_mean, success (training rollouts, 0..1),
    rounds_mean, loss, pg_loss, kl_ref (None without a reference model), kl_rollout, entropy,
    clip_frac, ratio_mean, grad_norm, train_tokens_per_s, rollout_tokens_per_s,
    rollout_s, learn_s, sync_s, eval_s, wall_s,
    eval_success ({env: success 0..1 on held-out tasks after this step}, or None),
    eval_before ({env: success} before any training; the first row only).

report.md: one table line per step, then a summary (held-out success before and after, where the
wall time went). report.png, 2x2: rewards and success (held-out as markers, horizon stages as
dotted lines); KL and clip fraction; entropy; seconds per step in rollout, learning and sync.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

PHASES = (("rollout_s", "rollout"), ("learn_s", "learning"), ("sync_s", "weight sync"), ("eval_s", "eval"))


def write_rl_report(out: Path, rows: list[dict[str, Any]], envs: list[str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps({"steps": rows}, indent=2, default=str))
    (out / "report.md").write_text(report_markdown(rows, envs))
    if rows:
        plot(rows, _envs(rows, envs), out / "report.png")


def _envs(rows: list[dict[str, Any]], envs: list[str]) -> list[str]:
    """The envs given, or (none given) every env a held-out evaluation names."""
    if envs:
        return list(envs)
    found: set[str] = set()
    for r in rows:
        found.update(r.get("eval_success") or {})
        found.update(r.get("eval_before") or {})
    return sorted(found)


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _fmt(value: Any, spec: str, empty: str = "-") -> str:
    v = _num(value)
    return empty if v is None or math.isnan(v) else format(v, spec)


def _pct(value: Any, empty: str = "-") -> str:
    v = _num(value)
    return empty if v is None or math.isnan(v) else f"{v * 100:.1f}%"


def _eval_before(rows: list[dict[str, Any]]) -> dict[str, float]:
    return next((r["eval_before"] for r in rows if r.get("eval_before")), {})


def _last_eval(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    return next((r for r in reversed(rows) if r.get("eval_success")), None)


def _successes(evals: dict[str, Any], envs: list[str]) -> str:
    return ", ".join(f"{e} {_pct(evals.get(e))}" for e in envs if e in evals) or "-"


def report_markdown(rows: list[dict[str, Any]], envs: list[str]) -> str:
    envs = _envs(rows, envs)
    head = (
        "| step | horizon | episodes (trained/total) | reward | success | rounds | clip frac | KL ref "
        "| entropy | rollout / learn / sync s | " + "".join(f"{e} held-out | " for e in envs)
    ).rstrip()
    sep = "|---" * (10 + len(envs)) + "|"
    lines = [head, sep]
    for r in rows:
        horizon = r.get("horizon")
        evals = r.get("eval_success") or {}
        times = " / ".join(_fmt(r.get(k), ".1f") for k in ("rollout_s", "learn_s", "sync_s"))
        cells = [
            str(r.get("step", "-")),
            "-" if horizon is None else "default" if horizon == 0 else str(horizon),
            f"{_fmt(r.get('trained_episodes'), '.0f')}/{_fmt(r.get('episodes'), '.0f')}",
            _fmt(r.get("reward_mean"), ".3f"),
            _pct(r.get("success")),
            _fmt(r.get("rounds_mean"), ".1f"),
            _fmt(r.get("clip_frac"), ".3f"),
            _fmt(r.get("kl_ref"), ".4f"),
            _fmt(r.get("entropy"), ".3f"),
            times,
            *(_pct(evals.get(e), empty="") for e in envs),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n\n" + summary(rows, envs) + "\n"


def summary(rows: list[dict[str, Any]], envs: list[str]) -> str:
    """Held-out success before and after, and where the wall time went."""
    if not rows:
        return "No steps yet."
    parts = []
    before, last = _eval_before(rows), _last_eval(rows)
    if before or last is not None:
        after = (
            f"after step {last.get('step', '?')}: {_successes(last['eval_success'], envs)}"
            if last is not None
            else "after: -"
        )
        parts.append(f"Held-out success before: {_successes(before, envs)}; {after}.")
    spent = {k: sum(_num(r.get(k)) or 0.0 for r in rows) for k, _ in PHASES}
    wall = sum(_num(r.get("wall_s")) or 0.0 for r in rows) or sum(spent.values())
    if wall > 0:
        shares = ", ".join(
            f"{name} {spent[k] / wall * 100:.0f}%" for k, name in PHASES if k != "eval_s" or spent[k] > 0
        )
        parts.append(f"Wall time {wall:.1f} s over {len(rows)} steps: {shares}.")
    return " ".join(parts) or f"{len(rows)} steps."


def _series(rows: list[dict[str, Any]], key: str) -> list[float] | None:
    """Per-step values (NaN where missing, so lines break there); None when none is present."""
    values = [_num(r.get(key)) for r in rows]
    if all(v is None for v in values):
        return None
    return [math.nan if v is None else v for v in values]


def plot(rows: list[dict[str, Any]], envs: list[str], path: Path) -> None:
    """Four panels: reward and success, KL and clipping, entropy, time per step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = [int(r.get("step", i)) for i, r in enumerate(rows)]
    fig, axes = plt.subplots(2, 2, figsize=(12, 8), dpi=100)
    (ax_r, ax_kl), (ax_ent, ax_t) = axes

    # (1) training reward (left axis) and success: training, held-out per env (right axis, %)
    handles = []
    reward = _series(rows, "reward_mean")
    if reward is not None:
        handles += ax_r.plot(xs, reward, color="tab:blue", label="training reward")
    ax_r.set_ylabel("mean reward")
    ax_s = ax_r.twinx()
    success = _series(rows, "success")
    if success is not None:
        handles += ax_s.plot(xs, [v * 100 for v in success], color="tab:orange", linestyle="--",
                             label="training success")  # fmt: skip
    before = _eval_before(rows)
    for i, env in enumerate(envs):
        ex = [-1] if env in before else []
        ey = [before[env] * 100] if env in before else []
        for x, r in zip(xs, rows, strict=True):
            value = _num((r.get("eval_success") or {}).get(env))
            if value is not None:
                ex.append(x)
                ey.append(value * 100)
        if ex:
            handles += ax_s.plot(ex, ey, marker="o", linestyle=":", color=f"C{(i + 2) % 10}",
                                 label=f"{env} held-out")  # fmt: skip
    ax_s.set_ylabel("success (%)")
    ax_s.set_ylim(0, 100)
    previous = None
    for x, r in zip(xs, rows, strict=True):
        horizon = r.get("horizon")
        if horizon is None or horizon == previous:
            continue
        if previous is not None:
            ax_r.axvline(x - 0.5, color="gray", linestyle=":", linewidth=1)
        ax_r.text(x - 0.45 if previous is not None else x, 0.98, f"horizon {horizon or 'default'}", transform=ax_r.get_xaxis_transform(),
                  fontsize=7, va="top", color="gray")  # fmt: skip
        previous = horizon
    ax_r.set_title("reward and success")
    if handles:
        ax_r.legend(handles=handles, fontsize=7, loc="lower right")

    # (2) KL to the reference and to the rollout policy; clip fraction (right axis)
    handles = []
    for key, label in (("kl_ref", "KL to reference"), ("kl_rollout", "KL to rollout policy")):
        values = _series(rows, key)
        if values is not None:
            handles += ax_kl.plot(xs, values, marker=".", label=label)
    ax_kl.set_ylabel("KL (k3)")
    clip = _series(rows, "clip_frac")
    if clip is not None:
        ax_c = ax_kl.twinx()
        handles += ax_c.plot(xs, clip, color="tab:red", linestyle="--", label="clip fraction")
        ax_c.set_ylabel("clip fraction")
    ax_kl.set_title("KL and clipping")
    if handles:
        ax_kl.legend(handles=handles, fontsize=7)

    # (3) entropy of the policy on its own tokens
    entropy = _series(rows, "entropy")
    if entropy is not None:
        ax_ent.plot(xs, entropy, marker=".", color="tab:green")
    ax_ent.set_ylabel("entropy (nats / token)")
    ax_ent.set_title("entropy")

    # (4) where each step's time went
    bottom = [0.0] * len(rows)
    for key, label in PHASES[:3]:
        values = [_num(r.get(key)) or 0.0 for r in rows]
        ax_t.bar(xs, values, bottom=bottom, label=label)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    ax_t.set_ylabel("seconds")
    ax_t.set_ylim(0, max(max(bottom) * 1.25, 1.0))  # room for the legend above the bars
    ax_t.set_title("time per step")
    ax_t.legend(fontsize=7, loc="upper right", ncol=3)

    from matplotlib.ticker import MaxNLocator

    for ax in (ax_r, ax_kl, ax_ent, ax_t):
        ax.set_xlabel("RL step")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
