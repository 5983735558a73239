"""Wordle on the original's word list (LMRL-Gym's vocab file) and under the agentgym profile.

The data are made up, in the original's layout (one word a line). The expected games come from a
re-statement of LMRL-Gym's rules written here: per-letter knowledge of the five positions, a word
drawn with `random.Random(item id)` from the words still consistent at every valid guess, the
reply derived from the knowledge, reward when a single consistent word is left and was guessed.
"""

from __future__ import annotations

import random
import string
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentgym.client.envclient import EnvClient
from agentgym.envs import registry
from agentgym.envs.wordle import MAX_GUESSES, ORIGINAL_TASKS, VocabError, Wordle, load_vocab
from tests.conftest import StartServer

WORDS = ["crane", "cabin", "civic", "level", "lever", "never", "radar", "salad", "sissy", "tepee"]
WORDS += ["vivid", "water", "eerie", "geese", "those", "hoped"]
# Blank lines and entries of other lengths are skipped, lines are stripped; no final newline.
VOCAB_TEXT = "\n".join([*WORDS[:3], "", "toolong", *WORDS[3:15], f"  {WORDS[15]}  "])
TEMPLATE = "Guess the word. Accepted words:\n```\n{{vocab}}\n```\nGood luck."


@pytest.fixture(autouse=True)
def _restore_default() -> Iterator[None]:
    # Env classes hold one configuration per process: give the other tests the default back.
    yield
    registry.configure("wordle", {})


@pytest.fixture
def vocab(tmp_path: Path) -> str:
    path = tmp_path / "tweet_words.txt"
    path.write_text(VOCAB_TEXT)
    return str(path)


@pytest.fixture
def source(tmp_path: Path) -> str:
    """A made-up AgentGym checkout holding the wordle client's opening and first observation."""
    envs = tmp_path / "AgentGym" / "agentenv" / "agentenv" / "envs"
    envs.mkdir(parents=True)
    (envs / "__init__.py").write_text("")
    (envs / "lmrlgym.py").write_text(
        "class WordleEnvClient(BaseEnvClient):\n"
        "    conversation_start = (\n"
        '        ConversationMessage({"from": "human", "loss": None, "value": "Play the word game."}),\n'
        '        ConversationMessage({"from": "gpt", "loss": False, "value": "Understood."}),\n'
        "    )\n"
        f"    first_observation = {TEMPLATE!r}.strip()\n"
    )
    return str(tmp_path / "AgentGym")


def profiled(vocab: str | None, source: str, **extra: str) -> type[Wordle]:
    settings = {"profile": "agentgym", "agentgym_source": source, **extra}
    if vocab:
        settings["vocab"] = vocab
    cls = registry.configure("wordle", settings)
    assert issubclass(cls, Wordle)
    return cls


class Reference:
    """LMRL-Gym's game as AgentGym serves it, re-stated from its rules (module docstring)."""

    def __init__(self, words: list[str], item_id: int) -> None:
        self.words = words
        self.rng = random.Random(item_id)
        self.knowledge = {c: "?????" for c in string.ascii_lowercase}  # ? possible, x not here, o here
        self.actions: list[str] = []

    def consistent(self, word: str) -> bool:
        for c, k in self.knowledge.items():
            if k == "?????":
                continue
            if k == "xxxxx":
                if c in word:
                    return False
                continue
            if c not in word or any((s == "o") != (word[i] == c) for i, s in enumerate(k) if s != "?"):
                return False
        return True

    def step(self, action: str) -> tuple[str, float, bool]:
        guess = action.replace(" ", "")
        self.actions.append(guess)
        if len(guess) != 5 or not set(guess) <= set(string.ascii_lowercase) or guess not in self.words:
            return "invalid word", 0.0, len(self.actions) == MAX_GUESSES
        hidden = self.rng.choice([w for w in self.words if self.consistent(w)])
        for i, c in enumerate(guess):
            k = list(self.knowledge[c])
            if hidden[i] == c:
                k[i] = "o"
            elif c in hidden:
                k[i] = "x"
            else:
                k = list("xxxxx")
            self.knowledge[c] = "".join(k)
        marks = []
        for i, c in enumerate(guess):
            k = self.knowledge[c]
            marks.append("g" if k[i] == "o" else "b" if k == "xxxxx" else "y")
        left = [w for w in self.words if self.consistent(w)]
        won = len(left) == 1 and left[0] in self.actions
        return " ".join(marks) + "\n", float(won), won or len(self.actions) == MAX_GUESSES


# --- the loader ------------------------------------------------------------------------------------
def test_vocab_file_is_read_as_the_original_reads_it(vocab: str) -> None:
    assert load_vocab(vocab) == tuple(WORDS)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("crane\nCabin\n", "line 2: 'Cabin' is not five lower-case letters"),
        ("crane\nca-in\n", "line 2: 'ca-in' is not five"),
        ("crane\ncabin\n\ncrane\n", "line 4: 'crane' repeats line 1"),
        ("a\nlonger\n\n", "no five-letter word"),
    ],
)
def test_malformed_vocab_files_are_refused_with_the_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "words.txt"
    path.write_text(text)
    with pytest.raises(VocabError, match=message) as err:
        load_vocab(path)
    assert str(path) in str(err.value)


def test_unreadable_or_missing_vocab_is_refused(tmp_path: Path) -> None:
    (tmp_path / "bad.txt").write_bytes(b"crane\n\xff\xfeabc\n")
    with pytest.raises(VocabError, match=r"bad\.txt, line 2: not UTF-8"):
        load_vocab(tmp_path / "bad.txt")
    with pytest.raises(VocabError, match=r"missing\.txt: cannot be read"):
        registry.configure("wordle", {"vocab": str(tmp_path / "missing.txt")})
    with pytest.raises(ValueError, match="unknown settings vocabulary"):
        registry.configure("wordle", {"vocabulary": str(tmp_path / "bad.txt")})
    with pytest.raises(ValueError, match="tasks only applies with vocab"):
        registry.configure("wordle", {"tasks": "10"})


# --- our rules on the original's list -------------------------------------------------------------
def test_task_set_is_original_only_with_the_vocab(vocab: str) -> None:
    assert registry.configure("wordle", {}).task_set != "original"
    cls = registry.configure("wordle", {"vocab": vocab})
    assert cls.task_set == "original" and cls.task_count == ORIGINAL_TASKS
    assert registry.configure("wordle", {"vocab": vocab, "tasks": "40"}).task_count == 40


def test_our_rules_hide_the_word_the_original_draws_first(vocab: str) -> None:
    env = registry.make("wordle", {"vocab": vocab})
    for task in range(20):
        first = env.reset(task, 99, {})
        assert first.observation == "Let's start Wordle!"  # no list without the profile
        secret = random.Random(task).choice(WORDS)
        assert env.secret == secret
        other = next(w for w in WORDS if w != secret)
        assert env.step(" ".join(other)).observation.count("g") < 5
        assert env.step("q q q q q").observation == "invalid word"  # not in the list
        won = env.step(" ".join(secret))
        assert won.observation == "g g g g g" and won.success and won.reward == 1.0


def test_our_expert_solves_every_task_on_the_list(vocab: str) -> None:
    env = registry.make("wordle", {"vocab": vocab, "tasks": "200"})
    for task in range(env.task_count):
        env.reset(task, task, {})
        for _ in range(MAX_GUESSES):
            out = env.step(env.expert_action())
            if out.done:
                break
        assert out.success, task


# --- the profile: the original's rules and texts -------------------------------------------------
def test_profile_first_observation_lists_the_vocabulary(vocab: str, source: str) -> None:
    cls = profiled(vocab, source)
    assert cls.instruction == "Play the word game." and cls.acknowledgement == "Understood."
    first = cls().reset(3, 3, {}).observation
    assert "\n".join(WORDS) in first and "Let's start Wordle!" not in first
    if cls.original_task_text is not None:  # the profile's loader gave the original's text
        assert first == TEMPLATE.replace("{{vocab}}", "\n".join(WORDS))


def test_profile_text_from_the_operators_files(
    vocab: str, source: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    cls = profiled(vocab, source)
    monkeypatch.setattr(cls, "original_task_text", TEMPLATE)
    assert cls().reset(0, 0, {}).observation == TEMPLATE.replace("{{vocab}}", "\n".join(WORDS))
    # An AgentTraj third turn has the list in it already: it is the first observation as it is.
    monkeypatch.setattr(cls, "original_task_text", "Words:\ncrane\ncabin")
    assert cls().reset(0, 0, {}).observation == "Words:\ncrane\ncabin"


def test_profile_plays_the_original_task_n(vocab: str, source: str) -> None:
    cls = profiled(vocab, source)
    assert cls.task_set == "original"
    pick = random.Random(7)
    for task in range(40):
        env, ref = cls(), Reference(WORDS, task)
        env.reset(task, 1000 + task, {})  # the seed does not matter: the item id is the original's
        for _ in range(MAX_GUESSES + 2):
            word = pick.choice(WORDS)
            action = pick.choice(
                [" ".join(word), word, word.upper(), "zzzzz", "ab", " ".join(env.expert_action().split())]
            )
            out = env.step(action)
            assert (out.observation, out.reward, out.done) == ref.step(action), (task, action)
            assert out.success == (out.reward == 1.0)
            if out.done:
                break
        assert out.done


def test_profile_feedback_format_and_invalid_words_use_a_try(vocab: str, source: str) -> None:
    cls = profiled(vocab, source)
    env = cls()
    env.reset(0, 0, {})
    # Every letter of the word out of place is "y", however often the guess repeats it.
    hidden = random.Random(0).choice(WORDS)
    guess = next(w for w in WORDS if w != hidden and len(set(w)) < 5 and set(w) & set(hidden))
    out = env.step(" ".join(guess))
    expected = ["g" if g == h else "y" if g in hidden else "b" for g, h in zip(guess, hidden, strict=True)]
    assert out.observation == " ".join(expected) + "\n"
    env.reset(1, 1, {})
    for i in range(MAX_GUESSES):
        out = env.step("x y z z y")
        assert (out.observation, out.reward, out.done) == ("invalid word", 0.0, i == MAX_GUESSES - 1)
        assert out.info == {"invalid": "true"}


def test_profile_is_deterministic_per_task(vocab: str, source: str) -> None:
    cls = profiled(vocab, source)
    a, b = cls(), cls()
    for task in (0, 5, 11):
        a.reset(task, 1, {})
        b.reset(task, 2, {})
        for word in WORDS[:6]:
            assert a.step(word) == b.step(word)


@pytest.mark.parametrize("with_vocab", [True, False])
def test_profile_expert_solves_every_task(vocab: str, source: str, with_vocab: bool) -> None:
    cls = profiled(vocab if with_vocab else None, source, **({"tasks": "300"} if with_vocab else {}))
    assert (cls.task_set == "original") == with_vocab
    tasks = range(cls.task_count) if with_vocab else range(0, cls.task_count, 250)  # built-in: a sample
    for task in tasks:
        env = cls()
        env.reset(task, task, {})
        for _ in range(MAX_GUESSES):
            out = env.step(env.expert_action())
            if out.done:
                break
        assert out.success, task


async def test_profile_over_a_real_server(vocab: str, source: str, start_server: StartServer) -> None:
    settings = {"profile": "agentgym", "agentgym_source": source, "vocab": vocab, "tasks": "30"}
    srv = await start_server(envs=["wordle"], env_settings={"wordle": settings})
    async with EnvClient(f"127.0.0.1:{srv.port}") as client:
        info = await client.env_info("wordle")
        assert (info.task_set, info.profile, info.task_count) == ("original", "agentgym", 30)
        assert info.original_tasks and info.instruction == "Play the word game."
        for task in (0, 17, 29):
            async with client.episode("wordle", task) as ep:
                assert "\n".join(WORDS) in ep.initial.observation
                ref = Reference(WORDS, task)
                while not ep.over:
                    action = await ep.expert()
                    result = await ep.step(action)
                    assert (result.observation, result.reward, result.done) == ref.step(action)
                assert result.success
