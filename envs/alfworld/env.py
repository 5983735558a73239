"""ALFWorld: household tasks in TextWorld's PDDL engine, as `alfworld` plays them.

Semantics follow AgentGym's `agentenv-alfworld`:
- task ids 0-2419 are train and 2420-2619 test, as in AgentGym (see games.py): by default this
  project's own list of ALFRED tasks with AgentGym's split sizes and task-type mix (tasks.py), or
  AgentGym's exact numbering read from its mapping files (`mapping_dir`);
- a game is loaded into TextWorld's `PddlEnv` with ALFWorld's `AlfredDemangler` (object names like
  "mug 1"); the first observation drops TextWorld's banner and ends with the admissible commands
  ("AVAILABLE ACTIONS: a,b,c", as AgentGym's client shows them on the first turn);
- an action is matched exactly against the admissible commands; anything else leaves the world as
  it is and gets the engine's "Nothing happens.";
- "You arrive at loc N. " is stripped from observations, as AgentGym does;
- reward 1 and the end of the episode when the goal holds.
`Outcome.available_actions` are the admissible commands after each step.

Games: real ALFWorld game files when configured with `data_dir` (or `$ALFWORLD_DATA`), laid out as
ALFWorld ships them; otherwise games generated per task id (generate.py).

Expert: hand-coded from the engine's state (expert.py): each task type's recipe (fetch, clean /
heat / cool, put; or fetch and switch on the lamp), reading where things are from the engine's
facts, from any state, in the engine's own admissible commands.

Execution: one worker process per episode, chosen by measurement: a step costs 30-300 ms of pure
Python in TextWorld's grammar engine (it re-derives the text of every admissible command) and
starting a game 0.3-5 s of PDDL translation, so threads would put every episode of a server on one
core; the engine keeps state at module level (grammar parser, translator options, even sys.argv);
and each engine instance loads a private 33 MB copy of Fast Downward's library that cannot be
unloaded. A worker process per episode runs episodes on all cores and gives their memory back when
they end. (Under a `thread` override engine calls take turns and engines are reused.) A worker
holds 73 MB after its imports and 78-94 MB during an episode (measured), so the server derives the
env's capacity from the memory available (`episode_memory_mb`).
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from agentgym.envs.alfworld.games import (
    AGENTGYM_TEST,
    AGENTGYM_TRAIN,
    EVAL_SPLITS,
    GameRef,
    Numbering,
    dataset_root,
    default_numbering,
    eval_games,
    load_mappings,
    locate,
)
from agentgym.envs.base import Env, EnvError, Outcome
from agentgym.envs.registry import register

INSTRUCTION = """\
You are in a house and have a household task to do, such as putting something somewhere, \
cleaning, heating or cooling it first, or looking at something under a lamp. The first message \
describes the room and gives your task. Each round you reply with one action, then see what \
happened.

Actions look like these (use the exact names you are shown, with their numbers):
- go to countertop 1
- open fridge 1 / close fridge 1
- take apple 1 from countertop 1
- put apple 1 in/on diningtable 1
- clean apple 1 with sinkbasin 1 / heat apple 1 with microwave 1 / cool apple 1 with fridge 1
- use desklamp 1
- examine apple 1, inventory, look
Only actions from the list of available actions do anything; any other action gets \
"Nothing happens."

Reply in exactly this format:
Thought:
your reasoning

Action:
your next action"""

_SETTINGS = {
    "data_dir": "ALFWorld data folder holding json_2.1.1/ (default: $ALFWORLD_DATA if it holds one; else generated games)",
    "mapping_dir": "folder with AgentGym's mappings_train.json and mappings_test.json, for its exact task ids "
    "(default: $ALFWORLD_MAPPING_DIR; else this project's own task list)",
}
MAPPING_DIR_VARIABLE = "ALFWORLD_MAPPING_DIR"
_NOTHING = "Nothing happens."


def _strip_arrival(text: str) -> str:
    if text.startswith("You arrive at loc "):
        return text[text.find(". ") + 2 :]
    return text


@register
class ALFWorld(Env):
    name = "alfworld"
    description = "Household tasks (ALFWorld) in TextWorld's PDDL engine; real game files or generated games."
    instruction = INSTRUCTION
    action_format = (
        "one of the available actions, e.g. 'go to countertop 1', 'put apple 1 in/on diningtable 1'"
    )
    max_rounds = 30
    task_count = len(AGENTGYM_TRAIN) + len(AGENTGYM_TEST)
    splits = {"train": [AGENTGYM_TRAIN], "test": [AGENTGYM_TEST]}
    execution = "process"
    episode_memory_mb = 100  # a worker process: 94 MB resident at most, measured
    data_root: Path | None = None
    numbering: Numbering | None = None  # set by configure
    mapping_dir: str | None = None
    extra_games: list[GameRef] = []

    @classmethod
    def configure(cls, settings: Mapping[str, str]) -> None:
        unknown = sorted(set(settings) - set(_SETTINGS))
        if unknown:
            raise ValueError(f"unknown alfworld settings {unknown}; known: {sorted(_SETTINGS)}")
        # The engine's imports (1-2 s), here so that a prewarmed worker has them done.
        import textworld.envs.pddl  # noqa: F401
        from alfworld.agents.environment import alfred_tw_env  # noqa: F401

        data_dir = settings.get("data_dir")
        env_dir = os.environ.get("ALFWORLD_DATA")
        # `import alfworld` sets $ALFWORLD_DATA to an empty cache folder when it is unset, so the
        # variable counts only where it holds a dataset; an explicit data_dir must hold one.
        if not data_dir and env_dir and (Path(env_dir).expanduser() / "json_2.1.1").is_dir():
            data_dir = env_dir
        data_root = dataset_root(data_dir) if data_dir else None
        mapping_dir = settings.get("mapping_dir") or os.environ.get(MAPPING_DIR_VARIABLE)
        numbering = load_mappings(mapping_dir) if mapping_dir else default_numbering()
        # Everything is checked before anything changes: a bad setting leaves the old configuration.
        cls.data_root, cls.numbering, cls.mapping_dir = data_root, numbering, mapping_dir
        cls.task_set = (
            "original"
            if mapping_dir
            else "this project's own task list drawn from the alfworld package; not the original's"
        )
        cls.extra_games = eval_games(data_root) if data_root else []
        base = len(numbering.games)
        cls.task_count = base + len(cls.extra_games)
        cls.splits = numbering.splits
        for split in EVAL_SPLITS:
            ids = [base + i for i, ref in enumerate(cls.extra_games) if ref.split == split]
            if ids:
                cls.splits[split] = [range(ids[0], ids[-1] + 1)]

    def __init__(self) -> None:
        super().__init__()
        self.tw: Any = None
        self.state: Any = None

    # --- the episode -----------------------------------------------------------------------------
    def reset(self, task_id: int, seed: int, options: Mapping[str, str]) -> Outcome:
        with _engine_calls:
            return self._reset(task_id)

    def step(self, action: str) -> Outcome:
        with _engine_calls:
            return self._step(action)

    def expert_action(self) -> str:
        with _engine_calls:
            return self._expert_action()

    def _reset(self, task_id: int) -> Outcome:
        game, ref = self._game(task_id)
        if self.tw is None:
            self.tw = _take_engine()
        self.tw.load(game)
        state = self.tw.reset()
        self.state = state
        self.ref = ref
        intro = "\n".join(state.feedback.split("\n\n")[1:])
        actions = list(state["admissible_commands"])
        return Outcome(
            f"{intro}\nAVAILABLE ACTIONS: {','.join(actions)}",
            available_actions=actions,
            info={"task_type": ref.task_type, "game": ref.path},
        )

    def _step(self, action: str) -> Outcome:
        state, _, _ = self.tw.step(action)
        self.state = state
        won = bool(state["won"])
        text = _strip_arrival(state.feedback)
        info = {"invalid": "true"} if text == _NOTHING else {}
        return Outcome(
            text,
            reward=1.0 if won else 0.0,
            done=won,
            success=won,
            available_actions=list(state["admissible_commands"]),
            info=info,
        )

    def _expert_action(self) -> str:
        from agentgym.envs.alfworld.expert import World, next_action

        pddl = self.tw.unwrapped
        names = {key: info.name for key, info in pddl._entity_infos.items()}
        world = World(pddl._pddl_state.facts, self.state, names)
        ref = self.ref
        action = next_action(world, ref.task_type, ref.object_type.lower(), ref.target_type.lower())
        return action or "look"

    def close(self) -> None:
        if self.tw is not None:
            with _engines_lock:
                _idle_engines.append(self.tw)
            self.tw = None

    # --- helpers -----------------------------------------------------------------------------------
    def _game(self, task_id: int) -> tuple[Any, GameRef]:
        numbering = self.numbering or default_numbering()
        refs = numbering.games
        ref = refs[task_id] if task_id < len(refs) else self.extra_games[task_id - len(refs)]
        if self.data_root is None:
            from agentgym.envs.alfworld.generate import generate

            return generate(ref).game_data(), ref
        path = locate(self.data_root, ref)
        if path is None:
            hint = (
                ""
                if self.mapping_dir
                else f" (ids without {MAPPING_DIR_VARIABLE} or alfworld.mapping_dir are this project's own "
                "task list; AgentGym's numbering of ALFWorld's games needs its mapping files)"
            )
            raise EnvError(
                f"task {task_id} is the game json_2.1.1/{ref.path}, which is not in {self.data_root}{hint}"
            )
        return str(path), ref


# The engine keeps state at module level (TextWorld's grammar parser, Fast Downward's translation
# options, even sys.argv), so engine calls in one process take turns: only the `thread` execution
# override ever contends for this.
_engine_calls = threading.Lock()
# Engines (a PddlEnv with its own copy of Fast Downward's library, which cannot be unloaded safely:
# dlclose leaves exit handlers pointing into it) are kept for the next episode in this process.
_idle_engines: list[Any] = []
_engines_lock = threading.Lock()


def _take_engine() -> Any:
    with _engines_lock:
        if _idle_engines:
            return _idle_engines.pop()
    import textworld
    from alfworld.agents.environment.alfred_tw_env import AlfredDemangler
    from textworld.envs.pddl import PddlEnv

    _reuse_translations()
    return AlfredDemangler(PddlEnv(textworld.EnvInfos(won=True, admissible_commands=True)))


def _reuse_translations() -> None:
    """Starting a game translates its PDDL to Fast Downward's SAS form four times: `PddlEnv.load`
    and `PddlEnv.reset` each build the initial state, with a plain and an optimized translation.
    The translation is a pure function of the texts and dominates the start (seconds for a
    kitchen), so the second pair reuses the first pair's results."""
    import fast_downward

    translate = fast_downward.pddl2sas
    if getattr(translate, "reused", False):
        return

    @functools.lru_cache(maxsize=2)
    def reusing(domain: str, problem: str, verbose: bool = False, optimize: bool = False) -> Any:
        return translate(domain, problem, verbose=verbose, optimize=optimize)

    reusing.reused = True  # type: ignore[attr-defined]
    fast_downward.pddl2sas = reusing
