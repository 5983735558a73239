"""docs/expert_coverage.py: the expert over a real server and the eval path, and its table."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

from agentgym.core.trajectory import JsonlWriter, Trajectory, Turn

ROOT = Path(__file__).resolve().parents[1]


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("expert_coverage", ROOT / "docs" / "expert_coverage.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


coverage = _script()


def test_maze_and_wordle_through_a_real_server(tmp_path: Path) -> None:
    out, runs = tmp_path / "coverage.md", tmp_path / "runs"
    out.write_text(
        f"# Coverage\n\nHand-written notes stay.\n\n{coverage.BEGIN}\nold\n{coverage.END}\n\nAfter.\n"
    )
    argv = ["--envs", "maze,wordle", "--per-class", "2", "--runs", str(runs), "--out", str(out)]
    assert coverage.main(argv) == 0
    text = out.read_text()
    assert text.startswith("# Coverage\n\nHand-written notes stay.") and text.endswith("\nAfter.\n")
    assert "\nold\n" not in text
    # maze: 2 of each sub-split (original, held_out); wordle has no classes: 2 tasks.
    assert "| maze | 15 | 131 | 4 | 4 | 4 | 100.0% |" in text
    assert "| wordle | 8 | 200 | 2 | 2 | 2 | 100.0% |" in text
    assert "| original | 2 | 2 | 2 | 100.0% |" in text and "| held_out | 2 | 2 | 2 | 100.0% |" in text
    assert "agentgym eval --policy expert --split test --envs maze --server 127.0.0.1:" in text
    meta = json.loads((runs / "maze" / "coverage.json").read_text())
    assert meta["max_rounds"] == 15 and meta["split_size"] == 131 and len(meta["planned"]) == 4

    # Again: eval resumes from its folder, so nothing is played twice.
    assert coverage.main(argv) == 0
    lines = (runs / "maze" / "trajectories.jsonl").read_text().splitlines()
    assert len(lines) == 4
    assert len(json.loads((runs / "maze" / "coverage.json").read_text())["invocations"]) == 2


def _trajectory(task_id: int, success: bool, finish: str, rounds: int) -> Trajectory:
    turns = [Turn("human", "instruction"), Turn("gpt", "ok", False), Turn("human", "start")]
    return Trajectory(item_id=f"maze_{task_id}", conversations=turns, reward=float(success), success=success,
                      task_id=task_id, rounds=rounds, finish=finish, timing={"duration_s": 0.5})  # fmt: skip


def test_failures_are_sorted_by_reason(tmp_path: Path) -> None:
    runs, out = tmp_path / "runs", tmp_path / "coverage.md"
    folder = runs / "maze"
    folder.mkdir(parents=True)
    planned = [0, 1, 2, 3, 4, 450]
    meta = {"planned": planned, "max_rounds": 15, "split_size": 131,
            "invocations": [{"script": "s", "command": "c", "date": "d", "seconds": 3.0, "cut_by_budget": True}]}  # fmt: skip
    (folder / "coverage.json").write_text(json.dumps(meta))
    writer = JsonlWriter(folder / "trajectories.jsonl")
    writer.write(_trajectory(0, True, "done", 4))
    writer.write(_trajectory(1, False, "truncated", 15))
    writer.write(_trajectory(2, False, "done", 3))
    writer.close()
    errors = [
        {"task_id": 3, "error": "FailedPrecondition: env 'maze' expert cannot act in this state: x"},
        {"task_id": 4, "error": "Internal: env 'maze' raised: boom; the episode is over"},
    ]
    (folder / "trajectories.errors.jsonl").write_text("".join(json.dumps(e) + "\n" for e in errors))
    result = coverage.read_results("maze", runs)
    t = result.total
    assert (t.tasks, t.played, t.solved) == (6, 5, 1)
    assert dict(t.reasons) == {
        "round limit": 1,
        "ended unsolved": 1,
        "expert stuck": 1,
        "env error": 1,
        "not run": 1,
    }
    assert (
        set(result.classes) == {"original", "held_out"} and result.classes["held_out"].reasons["not run"] == 1
    )
    coverage.write_doc(out, coverage.render([result]))
    text = out.read_text()
    assert "| maze | 15 | 131 | 6 | 5 | 1 | 20.0% | 1 | 1 | 1 | 1 | 1 |" in text
    assert "- task 3: expert stuck: FailedPrecondition" in text and "- task 4: env error: Internal" in text
    assert "cut by the budget" in text


def test_spaced_samples_spread_over_the_ids() -> None:
    assert coverage.spaced(list(range(10)), 3) == [0, 4, 9]  # round(4.5) is 4
    assert coverage.spaced([5, 6], 4) == [5, 6]
    assert coverage.spaced([5, 6, 7], 1) == [5]
