"""The "agentgym" compatibility profile (envs/compat.py): conversation openings read at run time from
the user's own copies of the original's files reach every episode byte for byte.

The files here are made up, in the original's layout: AgentTraj records with the original's item-id
prefixes, and a source checkout with the original's module paths and class attributes. None of the
original's texts is in this repository.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentgym.client.envclient import EnvClient
from agentgym.client.policies.simple import ExpertPolicy
from agentgym.client.react import EpisodeSpec, run_episode
from agentgym.core.envinfo import EnvInfo, list_envs
from agentgym.envs import compat, maze, registry, wordle
from agentgym.server.config import ServerConfig
from tests.conftest import StartServer
from tests.test_cli import AGENTGYM, free_port, wait_listening

# Made-up openings (instruction, acknowledgement) and the maze's made-up task text.
OPENINGS = {
    "maze": ("You walk mazes here (made-up).", "Understood: maze."),
    "wordle": ("Made-up wordle opening.\nGuess five letters.", "Fine, wordle."),
    "webshop": ("Made-up shop opening.\nSearch, then click.\n\nThought:\n...\n\nAction:\n...", "Ok, shop."),
    "bird": ("Made-up SQL opening.\n\nAnswer with ```sql\n...\n```.", "Ok, SQL."),
}
MAZE_TASK_TEXT = "Made-up maze rules.\nReach the goal.\n\nReply with Thought: then Action:."
# Wordle's made-up task text: in a source checkout with the original's placeholder for the word
# list; in AgentTraj records (the same third turn for every task), with a list already in it.
WORDLE_TASK_TEMPLATE = "Made-up wordle rules. The words:\n{{vocab}}\nGuess one."
WORDLE_TASK_TEXT = "Made-up wordle rules. The words:\nmadey\nupped\nGuess one."
# The original's item ids: its prefixes, and task indices (maze and wordle: two records each).
ITEMS = {
    "maze": ["lmrlgym_maze_0", "lmrlgym_maze_3"],
    "wordle": ["lmrlgym_wordle_0", "lmrlgym_wordle_5"],
    "webshop": ["webshop_6", "webshop_12"],
    "bird": ["sqlgym_1", "sqlgym_2"],
}
ENVS = sorted(OPENINGS)


def record(item_id: str, opening: tuple[str, str], first: str) -> dict[str, object]:
    return {
        "item_id": item_id,
        "conversations": [
            {"from": "human", "loss": None, "value": opening[0]},
            {"from": "gpt", "loss": False, "value": opening[1]},
            {"from": "human", "loss": None, "value": first},
            {"from": "gpt", "loss": True, "value": "Thought:\nmade up\n\nAction:\nmove down"},
        ],
    }


def first_observation(item_id: str) -> str:
    env, task_id = item_id.rsplit("_", 1)
    if env == "lmrlgym_maze":
        return f"{MAZE_TASK_TEXT}\n{maze.observation(int(task_id))}"
    if env == "lmrlgym_wordle":
        return WORDLE_TASK_TEXT
    return f"made-up first observation of {item_id}"


def write_agenttraj(path: Path, openings: dict[str, tuple[str, str]] = OPENINGS, lines: bool = False) -> Path:
    records = [record(i, openings[env], first_observation(i)) for env in openings for i in ITEMS[env]]
    if lines:
        path.write_text("".join(json.dumps(r) + "\n" for r in records))
    else:
        path.write_text(json.dumps(records, indent=2))
    return path


def message(role: str, value: str, loss: str) -> str:
    return f'        ConversationMessage(\n            {{"from": "{role}", "loss": {loss}, "value": {value}}}\n        ),\n'


def write_checkout(root: Path, webshop_fstring: bool = False) -> Path:
    """A made-up checkout in the original's layout: the client modules under agentenv/agentenv/envs/,
    `conversation_start` tuples of ConversationMessage, an adapter's `conversation_start_dict`
    keyed by ActionFormat, a triple-quoted task text with .strip(), concatenated literals and constants."""
    d = root / "agentenv" / "agentenv" / "envs"
    d.mkdir(parents=True)
    (d / "__init__.py").write_text("from .lmrlgym import MazeEnvClient, WordleEnvClient\n")
    m, w = OPENINGS["maze"], OPENINGS["wordle"]
    (d / "lmrlgym.py").write_text(
        "from agentenv.controller import BaseEnvClient\n"
        "from agentenv.controller.types import ConversationMessage\n\n\n"
        "class MazeEnvClient(BaseEnvClient):\n"
        "    conversation_start = (\n"
        + message("human", json.dumps(m[0]), "None")
        + message("gpt", json.dumps(m[1]), "False")
        + "    )\n"
        + '    _fully_first_observation = """\\\n'
        + MAZE_TASK_TEXT
        + '\n""".strip()\n'
        + '    _partially_first_observation = """\\\nnot this one\n""".strip()\n\n'
        "    def reset(self, idx):\n        self.first_observation = self._fully_first_observation\n\n\n"
        "class WordleEnvClient(BaseEnvClient):\n"
        "    conversation_start = (\n"
        + message("human", json.dumps(w[0]), "None")
        + message("gpt", json.dumps(w[1]), "False")
        + "    )\n"
        + f"    first_observation = {json.dumps(WORDLE_TASK_TEMPLATE)}\n"
    )
    s = OPENINGS["webshop"]
    fc = 'f"{PROMPT} with functions {len(FUNCTIONS)}"' if webshop_fstring else json.dumps(s[0])
    (d / "webshop.py").write_text(
        "from agentenv.controller import BaseAdapter, BaseEnvClient\n"
        "from agentenv.controller.types import ActionFormat, ConversationMessage\n\n"
        f"PROMPT = {json.dumps(s[0])}\nFUNCTIONS = []\n\n\n"
        "class WebshopAdapter(BaseAdapter):\n"
        "    conversation_start_dict = {\n"
        "        ActionFormat.FUNCTION_CALLING: (\n"
        + message("human", 'f"{PROMPT} with functions {len(FUNCTIONS)}"', "None")
        + message("gpt", json.dumps(s[1]), "False")
        + "        ),\n"
        "        ActionFormat.REACT: (\n"
        + message("human", fc if webshop_fstring else "PROMPT", "None")
        + message("gpt", json.dumps(s[1]), "False")
        + "        ),\n"
        "    }\n\n\n"
        "class WebshopEnvClient(BaseEnvClient):\n"
        "    adapter_cls = WebshopAdapter\n\n"
        "    def __init__(self, action_format):\n"
        "        self.conversation_start = self.adapter_cls.conversation_start_dict[action_format]\n"
    )
    b = OPENINGS["bird"]
    head, tail = b[0][:10], b[0][10:]
    (d / "sqlgym.py").write_text(
        "from agentenv.controller import BaseEnvClient\n"
        "from agentenv.controller.types import ConversationMessage\n\n\n"
        "class SqlGymEnvClient(BaseEnvClient):\n"
        "    conversation_start = (\n"
        "        ConversationMessage(\n"
        "            {\n"
        # Implicit concatenation and "+", with the keys in another order, as the original's
        # modules write some of theirs.
        f'                "from": "human",\n                "value": {json.dumps(head[:4])} {json.dumps(head[4:])}\n'
        f"                + {json.dumps(tail)},\n"
        '                "loss": None,\n'
        "            }\n"
        "        ),\n"
        f'        ConversationMessage({{"from": "gpt", "value": {json.dumps(b[1])}, "loss": False}}),\n'
        "    )\n"
    )
    return root


@pytest.fixture(autouse=True)
def own_texts_after() -> Iterator[None]:
    """Env classes hold one configuration per process: give the envs their own texts back."""
    yield
    for env in ENVS:
        registry.configure(env, {})


def turns(traj: object) -> list[tuple[str, str, bool | None]]:
    return [(t.role, t.value, t.loss) for t in traj.conversations]  # type: ignore[attr-defined]


async def play_each(port: int) -> dict[str, list[tuple[str, str, bool | None]]]:
    """One expert episode of each env's first item (its task id), over the server's stream."""
    out = {}
    async with EnvClient(f"127.0.0.1:{port}") as client:
        for env in ENVS:
            task_id = int(ITEMS[env][0].rsplit("_", 1)[1])
            traj = await run_episode(client, ExpertPolicy(), EpisodeSpec(env, task_id), max_rounds=2)
            out[env] = turns(traj)
    return out


def check_openings(played: dict[str, list[tuple[str, str, bool | None]]], wordle_first: str) -> None:
    for env, conv in played.items():
        instruction, ack = OPENINGS[env]
        assert conv[:2] == [("human", instruction, None), ("gpt", ack, False)], env
    # Maze: the short line, the acknowledgement, then the task text and the observation.
    assert played["maze"][2] == ("human", f"{MAZE_TASK_TEXT}\n{maze.observation(0)}", None)
    # Wordle: the task text with the word list as its third turn.
    assert played["wordle"][2] == ("human", wordle_first, None)


# --- over a real server ---------------------------------------------------------------------------
@pytest.mark.parametrize("lines", [False, True], ids=["json", "jsonl"])
async def test_agenttraj_openings_reach_episodes_byte_for_byte(
    start_server: StartServer, tmp_path: Path, lines: bool
) -> None:
    path = write_agenttraj(tmp_path / "agenttraj.json", lines=lines)
    srv = await start_server(envs=ENVS, profile="agentgym", agenttraj=str(path))
    infos = await list_envs([f"127.0.0.1:{srv.port}"])
    for env in ENVS:
        assert infos[env].profile == "agentgym"
        assert (infos[env].instruction, infos[env].acknowledgement) == OPENINGS[env]
    check_openings(await play_each(srv.port), WORDLE_TASK_TEXT)


async def test_source_checkout_openings_reach_episodes_byte_for_byte(
    start_server: StartServer, tmp_path: Path
) -> None:
    root = write_checkout(tmp_path / "AgentGym")
    srv = await start_server(envs=ENVS, profile="agentgym", agentgym_source=str(root))
    # From source, the placeholder is filled with the vocabulary the server plays (built-in here).
    words = "\n".join(wordle.Wordle.word_list())
    check_openings(await play_each(srv.port), WORDLE_TASK_TEMPLATE.replace("{{vocab}}", words))


async def test_an_env_turned_back_to_ours_keeps_its_own_opening(
    start_server: StartServer, tmp_path: Path
) -> None:
    path = write_agenttraj(tmp_path / "agenttraj.json", {"maze": OPENINGS["maze"]})
    own = registry.get("wordle").instruction
    srv = await start_server(envs=["maze", "wordle"], profile="agentgym", agenttraj=str(path),
                             env_settings={"wordle": {"profile": ""}})  # fmt: skip
    infos = await list_envs([f"127.0.0.1:{srv.port}"])
    assert (infos["maze"].profile, infos["wordle"].profile) == ("agentgym", "")
    assert infos["wordle"].instruction == own


# --- maze's structure ---------------------------------------------------------------------------
def test_maze_under_the_profile_opens_and_ends_as_the_original(tmp_path: Path) -> None:
    path = write_agenttraj(tmp_path / "agenttraj.json")
    env = registry.make("maze", {"profile": "agentgym", "agenttraj": str(path)})
    assert (env.instruction, env.acknowledgement) == OPENINGS["maze"]
    first = env.reset(3, 3, {}).observation
    text, observation = first.rsplit("\n", 1)
    assert text == MAZE_TASK_TEXT and observation == maze.observation(3)
    # The original's server matches moves exactly and ends with LMRL-Gym's "Success\n".
    assert env.step(env.expert_action().title()).info == {"invalid": "true"}
    while not (out := env.step(env.expert_action())).done:
        pass
    assert out.observation == "Success\n" and out.success
    # Configured again without the profile: our own texts and rules.
    env = registry.make("maze", {})
    assert env.instruction == maze.INSTRUCTION and env.reset(3, 3, {}).observation == maze.observation(3)
    assert env.step(env.expert_action().title()).info == {}


def test_maze_task_text_from_agenttraj_must_agree(tmp_path: Path) -> None:
    path = write_agenttraj(tmp_path / "agenttraj.json", {"maze": OPENINGS["maze"]})
    records = json.loads(path.read_text())
    records[1]["conversations"][2]["value"] = f"Other rules.\n{maze.observation(3)}"
    path.write_text(json.dumps(records))
    with pytest.raises(compat.CompatError, match=r"task text.*lmrlgym_maze_0.*lmrlgym_maze_3"):
        compat.opening("maze", {"agenttraj": str(path)})


# --- errors a person can act on ------------------------------------------------------------------
def test_an_env_missing_from_the_file_is_named(tmp_path: Path) -> None:
    path = write_agenttraj(tmp_path / "agenttraj.json", {"maze": OPENINGS["maze"]})
    with pytest.raises(compat.CompatError) as err:
        compat.opening("bird", {"agenttraj": str(path)})
    message = str(err.value)
    assert "bird" in message and "sqlgym_N" in message and "envs it has: maze" in message
    assert "--env-setting bird.profile=" in message


def test_records_that_disagree_are_named(tmp_path: Path) -> None:
    path = write_agenttraj(tmp_path / "agenttraj.jsonl", lines=True)
    with path.open("a") as f:
        f.write(json.dumps(record("webshop_99", (OPENINGS["webshop"][0], "Sure."), "x")) + "\n")
    with pytest.raises(compat.CompatError) as err:
        compat.opening("webshop", {"agenttraj": str(path)})
    message = str(err.value)
    assert "webshop records do not agree" in message
    assert "webshop_6, webshop_12" in message and "webshop_99" in message and "acknowledgement" in message
    # Wordle's third turn is one task text for every task: records must agree on it too.
    with path.open("a") as f:
        f.write(json.dumps(record("lmrlgym_wordle_9", OPENINGS["wordle"], "other rules")) + "\n")
    with pytest.raises(
        compat.CompatError, match=r"wordle records do not agree on the task text of their third turn"
    ):
        compat.opening("wordle", {"agenttraj": str(path)})


def test_missing_paths_and_unreadable_source_are_clear(tmp_path: Path) -> None:
    with pytest.raises(compat.CompatError, match=r"agenttraj .*nope\.json: no such file"):
        compat.opening("maze", {"agenttraj": str(tmp_path / "nope.json")})
    with pytest.raises(compat.CompatError, match="no such directory"):
        compat.opening("maze", {"agentgym_source": str(tmp_path / "nope")})
    with pytest.raises(compat.CompatError, match="not an AgentGym source checkout"):
        compat.opening("maze", {"agentgym_source": str(tmp_path)})
    with pytest.raises(compat.CompatError, match="needs the original's texts"):
        compat.opening("maze", {})
    root = write_checkout(tmp_path / "AgentGym", webshop_fstring=True)
    with pytest.raises(compat.CompatError) as err:
        compat.opening("webshop", {"agentgym_source": str(root)})
    assert (
        "webshop.py:" in str(err.value) and "f-string" in str(err.value) and "--agenttraj" in str(err.value)
    )
    with pytest.raises(
        compat.CompatError, match=r"sheet.py not found \(the original defines sheet's opening there\)"
    ):
        compat.opening("sheet", {"agentgym_source": str(root)})


def test_both_given_the_source_checkout_wins(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = write_checkout(tmp_path / "AgentGym")
    other = {env: (f"{i} from the file", a) for env, (i, a) in OPENINGS.items() if env != "webshop"}
    path = write_agenttraj(tmp_path / "agenttraj.json", other | {"webshop": OPENINGS["webshop"]})
    both = {"agentgym_source": str(root), "agenttraj": str(path)}
    with caplog.at_level(logging.WARNING, logger="agentgym.envs.compat"):
        assert compat.opening("maze", both).instruction == OPENINGS["maze"][0]
    assert "the source checkout wins" in caplog.text
    # An env the checkout cannot give (an f-string here) comes from the file, and the log says so.
    fstring = write_checkout(tmp_path / "AgentGym2", webshop_fstring=True)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="agentgym.envs.compat"):
        got = compat.opening("webshop", {"agentgym_source": str(fstring), "agenttraj": str(path)})
    assert (got.instruction, got.acknowledgement) == OPENINGS["webshop"] and str(path) in got.origin
    assert "taken from the AgentTraj file" in caplog.text


def test_server_config_checks_and_folds_the_profile(tmp_path: Path) -> None:
    path = write_agenttraj(tmp_path / "agenttraj.json")
    with pytest.raises(ValueError, match="agenttraj applies only with profile = agentgym"):
        ServerConfig(envs=["maze"], agenttraj=str(path)).validate()
    with pytest.raises(ValueError, match="needs the original's texts"):
        ServerConfig(envs=["maze"], profile="agentgym").validate()
    with pytest.raises(ValueError, match="no such file"):
        ServerConfig(envs=["maze"], profile="agentgym", agenttraj=str(tmp_path / "nope.json")).validate()
    config = ServerConfig(
        envs=["maze", "bird", "wordle"],
        profile="agentgym",
        agenttraj=str(path),
        env_settings={"wordle": {"profile": ""}, "bird": {"agenttraj": "own.json"}},
    )
    config.validate()
    config.validate()  # idempotent
    assert config.env_settings == {
        "maze": {"profile": "agentgym", "agenttraj": str(path)},
        "bird": {"profile": "agentgym", "agenttraj": "own.json"},
        "wordle": {"profile": ""},
    }


def test_serve_refuses_to_start_without_an_opening(tmp_path: Path) -> None:
    path = write_agenttraj(tmp_path / "agenttraj.json", {"maze": OPENINGS["maze"]})
    base = [AGENTGYM, "--log-level", "warning", "serve", "--port", str(free_port()), "--profile", "agentgym"]
    out = subprocess.run([*base, "--envs", "maze,textcraft", "--agenttraj", str(path)],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode != 0
    assert "agentgym serve: textcraft: no opening found" in out.stderr and "textcraft_N" in out.stderr
    out = subprocess.run([*base, "--envs", "maze", "--agenttraj", str(tmp_path / "nope.json")],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode != 0 and "nope.json: no such file" in out.stderr


def test_require_profile_names_the_envs_that_are_not_served_under_it() -> None:
    def info(name: str, profile: str) -> EnvInfo:
        return EnvInfo(name, "", 1, {}, "", "", 1, True, 1, 0, 1.0, profile=profile)

    from agentgym.client.cli.common import require_profile

    hosted = {"maze": info("maze", "agentgym"), "wordle": info("wordle", "")}
    require_profile(hosted, ["maze"], "agentgym")
    require_profile(hosted, ["wordle"], None)
    with pytest.raises(ValueError, match=r"not served under the agentgym profile: wordle \(no profile\)"):
        require_profile(hosted, ["maze", "wordle"], "agentgym")


# --- the CLI end to end ------------------------------------------------------------------------------
CLI_ENV = {**os.environ, "COLUMNS": "200"}


def cli(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([AGENTGYM, "--log-level", "warning", *args], capture_output=True, text=True,
                          timeout=timeout, env=CLI_ENV)  # fmt: skip


@pytest.fixture(scope="module")
def profiled_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """`agentgym serve --profile agentgym --agenttraj FILE`, with conformance turned back to ours
    (one server for the module's CLI tests: each start costs seconds)."""
    path = write_agenttraj(tmp_path_factory.mktemp("served") / "agenttraj.json")
    port = free_port()
    proc = subprocess.Popen(
        [AGENTGYM, "--log-level", "warning", "serve", "--port", str(port), "--envs", "maze,bird,conformance",
         "--profile", "agentgym", "--agenttraj", str(path), "--env-setting", "conformance.profile=", "--grace", "0"],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_listening(port, proc)
        yield port
    finally:
        proc.kill()
        proc.wait()


def test_eval_under_the_profile_and_task_set_notes(profiled_server: int, tmp_path: Path) -> None:
    server = f"127.0.0.1:{profiled_server}"
    out = tmp_path / "eval"
    run = cli("eval", "--profile", "agentgym", "--policy", "expert", "--envs", "maze,bird", "--tasks", "0",
              "--server", server, "--out", str(out), "--no-progress")  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    for line in (out / "trajectories.jsonl").read_text().splitlines():
        rec = json.loads(line)
        env = rec["env"]
        assert rec["conversations"][:2] == [
            {"from": "human", "loss": None, "value": OPENINGS[env][0]},
            {"from": "gpt", "loss": False, "value": OPENINGS[env][1]},
        ]
        if env == "maze":
            assert rec["conversations"][2]["value"] == f"{MAZE_TASK_TEXT}\n{maze.observation(0)}"
    infos = asyncio.run(list_envs([server]))
    results = json.loads((out / "results.json").read_text())
    for env in ("maze", "bird"):
        m = results["per_env"][env]
        assert (m["task_set"], m["original_tasks"], m["profile"]) == (
            infos[env].task_set,
            infos[env].original_tasks,
            "agentgym",
        )
        assert (m.get("note") == "not the original's task set") == (not infos[env].original_tasks)
        assert run.stdout.count(f"{env}: not the original's task set") == (
            0 if infos[env].original_tasks else 1
        )

    # An env whose tasks are not the original's is marked, with or without the profile, once.
    out = tmp_path / "eval-conformance"
    run = cli("eval", "--policy", "expert", "--envs", "conformance", "--max-tasks", "1", "--server", server,
              "--out", str(out), "--no-progress")  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    m = json.loads((out / "results.json").read_text())["per_env"]["conformance"]
    assert (m["task_set"], m["original_tasks"], m["note"], m["profile"]) == (
        "",
        False,
        "not the original's task set",
        "",
    )
    assert run.stdout.count("conformance: not the original's task set") == 1
    assert (out / "results.md").read_text().count("conformance: not the original's task set") == 1


def test_profile_on_eval_and_rollout_refuses_envs_served_without_it(
    profiled_server: int, tmp_path: Path
) -> None:
    server = f"127.0.0.1:{profiled_server}"
    run = cli("eval", "--profile", "agentgym", "--policy", "expert", "--envs", "maze,conformance",
              "--server", server, "--out", str(tmp_path / "eval"), "--no-progress")  # fmt: skip
    assert run.returncode == 2
    assert "not served under the agentgym profile: conformance (no profile)" in run.stdout.replace("\n", " ")
    assert not (tmp_path / "eval" / "trajectories.jsonl").exists()
    run = cli("rollout", "--profile", "agentgym", "--policy", "expert", "--envs", "conformance",
              "--server", server, "--out", str(tmp_path / "r.jsonl"), "--no-progress")  # fmt: skip
    assert run.returncode == 2 and "conformance (no profile)" in run.stdout.replace("\n", " ")
