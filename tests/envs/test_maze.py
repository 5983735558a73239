"""Maze semantics (LMRL-Gym): observations, walls, goal reward, task numbering, generated mazes."""

from __future__ import annotations

from agentgym.envs import registry
from agentgym.envs.maze import ORIGINAL_TASKS, task


def test_original_tasks_are_the_double_t_maze() -> None:
    env = registry.make("maze")
    first = env.reset(0, 0, {})
    assert first.observation == (
        "The goal is at position 8, 6. Your current position is at position 1, 1. There are walls to your left, above you, below you."
    )
    assert list(first.available_actions) == ["move up", "move down", "move left", "move right"]
    # Task 16 starts at (5, 6), right above the corridor to the goal.
    assert "position 5, 6. There is a wall above you." in env.reset(16, 16, {}).observation
    assert ORIGINAL_TASKS == 25


def test_walls_block_and_goal_rewards() -> None:
    env = registry.make("maze")
    env.reset(17, 17, {})  # (6, 6): the corridor
    blocked = env.step("move left")
    assert "position 6, 6" in blocked.observation and blocked.reward == 0 and not blocked.done
    env.step("move down")
    win = env.step("move down")
    assert (win.observation, win.reward, win.done, win.success) == ("Success", 1.0, True, True)


def test_invalid_action_keeps_position_and_is_flagged() -> None:
    env = registry.make("maze")
    before = env.reset(3, 3, {}).observation
    out = env.step("fly north")
    assert out.observation == before and out.info == {"invalid": "true"} and not out.done


def test_other_tasks_are_pairs_on_the_same_maze() -> None:
    from agentgym.envs.maze import MAX_DISTANCE, _distances

    env = registry.make("maze")
    seen = set()
    for tid in range(ORIGINAL_TASKS, env.task_count):
        grid, goal, start = task(tid)
        assert grid == task(0)[0] and goal != start and (start, goal) not in seen
        assert 1 <= _distances(grid, goal)[start] <= MAX_DISTANCE  # solvable within the 15 rounds
        seen.add((start, goal))
    assert len(seen) == env.task_count - ORIGINAL_TASKS == 531
    held = [t for r in type(env).splits["held_out"] for t in r]
    train = [t for r in type(env).splits["train"] for t in r]
    assert (
        len(held) == 106
        and not set(held) & set(train)
        and len(train) + len(held) + ORIGINAL_TASKS == env.task_count
    )


def test_expert_is_optimal_on_original_tasks() -> None:
    env = registry.make("maze")
    env.reset(0, 0, {})  # (1,1): 12 moves to the goal, the longest start
    steps = 0
    while True:
        out = env.step(env.expert_action())
        steps += 1
        if out.done:
            break
    assert steps == 12
