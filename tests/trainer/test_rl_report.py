"""The RL job's report (trainer/rl_report.py): report.json, report.md and report.png from step rows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from agentgym.trainer.rl_report import write_rl_report

ENVS = ["maze", "wordle"]


def fake_rows() -> list[dict[str, Any]]:
    """Six steps: horizon 5 for steps 0-2 and 10 after (two ScalingInter stages), held-out evaluation
    after steps 2 and 5, no reference model (kl_ref None) on steps 0 and 1."""
    rows = []
    for k in range(6):
        rows.append({
            "step": k, "horizon": 5 if k < 3 else 10, "weight_version": f"job.step-{k + 1}",
            "episodes": 32, "trained_episodes": 24 - k, "dropped_stale": k % 2,
            "reward_mean": 0.25 + 0.1 * k, "success": 0.2 + 0.1 * k, "rounds_mean": 4.5 + k,
            "loss": -0.01 * k, "pg_loss": -0.01 * k, "kl_ref": None if k < 2 else 0.001 * k,
            "kl_rollout": 0.0005 * k, "entropy": 1.5 - 0.1 * k, "clip_frac": 0.01 * k, "ratio_mean": 1.0,
            "grad_norm": 0.5, "train_tokens_per_s": 1000.0, "rollout_tokens_per_s": 5000.0,
            "rollout_s": 30.0, "learn_s": 10.0, "sync_s": 2.0, "eval_s": 8.0 if k in (2, 5) else 0.0,
            "wall_s": 50.0 if k in (2, 5) else 42.0,
            "eval_success": {"maze": 0.4 + 0.1 * k, "wordle": 0.1 * k} if k in (2, 5) else None,
        })  # fmt: skip
    rows[0]["eval_before"] = {"maze": 0.3, "wordle": 0.05}
    return rows


def table_lines(md: str) -> list[str]:
    return [line for line in md.splitlines() if line.startswith("| ") and not line.startswith("| step ")]


def test_report_files(tmp_path: Path) -> None:
    rows = fake_rows()
    write_rl_report(tmp_path, rows, ENVS)

    assert json.loads((tmp_path / "report.json").read_text()) == {"steps": rows}

    md = (tmp_path / "report.md").read_text()
    head = md.splitlines()[0]
    assert head.startswith("| step | horizon |") and "maze held-out" in head and "wordle held-out" in head
    assert md.splitlines()[1].count("|---") == len(head.split("|")) - 2  # one separator per column
    lines = table_lines(md)
    assert len(lines) == 6
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    assert all(len(c) == len(cells[0]) == len(head.split("|")) - 2 for c in cells)
    # step 0: | 0 | 5 | 24/32 | 0.250 | 20.0% | 4.5 | 0.000 | - | 1.500 | 30.0 / 10.0 / 2.0 | | |
    assert cells[0] == ["0", "5", "24/32", "0.250", "20.0%", "4.5", "0.000", "-", "1.500",
                        "30.0 / 10.0 / 2.0", "", ""]  # fmt: skip
    # step 2: held-out 0.4 + 0.2 = 60%, 0.2 = 20%; KL ref 0.002
    assert cells[2][:3] == ["2", "5", "22/32"]
    assert cells[2][7] == "0.0020" and cells[2][-2:] == ["60.0%", "20.0%"]
    # step 3: the next horizon stage, no evaluation
    assert cells[3][1] == "10" and cells[3][-2:] == ["", ""]
    assert cells[5][-2:] == ["90.0%", "50.0%"] and cells[5][3] == "0.750" and cells[5][4] == "70.0%"

    summary = md.strip().splitlines()[-1]
    assert "before: maze 30.0%, wordle 5.0%" in summary
    assert "after step 5: maze 90.0%, wordle 50.0%" in summary
    # wall 4 * 42 + 2 * 50 = 268 s; rollout 6 * 30 = 180 (67%), learning 60 (22%), sync 12 (4%)
    assert "268.0 s" in summary
    assert "rollout 67%" in summary and "learning 22%" in summary and "weight sync 4%" in summary

    png = (tmp_path / "report.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(png) > 10_000


def test_missing_values(tmp_path: Path) -> None:
    """Rows with most keys missing or None still make all three files."""
    rows: list[dict[str, Any]] = [
        {"step": 0, "horizon": 0, "reward_mean": None, "success": 0.5},
        {"step": 1, "horizon": 0, "episodes": 8, "eval_success": {"maze": 1.0}},
    ]
    write_rl_report(tmp_path, rows, [])  # no envs given: the ones evaluated
    md = (tmp_path / "report.md").read_text()
    lines = table_lines(md)
    assert len(lines) == 2
    assert lines[0].startswith("| 0 | default | -/- | - | 50.0% |")
    assert lines[1].startswith("| 1 | default | -/8 |") and lines[1].endswith("| 100.0% |")
    assert "maze held-out" in md.splitlines()[0]
    assert (tmp_path / "report.png").read_bytes()[:4] == b"\x89PNG"


def test_empty(tmp_path: Path) -> None:
    write_rl_report(tmp_path, [], ENVS)
    assert json.loads((tmp_path / "report.json").read_text()) == {"steps": []}
    md = (tmp_path / "report.md").read_text()
    assert md.startswith("| step |") and table_lines(md) == []
    assert not (tmp_path / "report.png").exists()
