"""Wordle semantics: feedback colouring, vocabulary, guesses, end of game."""

from __future__ import annotations

from agentgym.envs import registry
from agentgym.envs.wordle import MAX_GUESSES, feedback, words


def test_feedback_handles_repeated_letters() -> None:
    assert feedback("crane", "crane") == "ggggg"
    assert feedback("panic", "felon") == "bbybb"
    assert feedback("felon", "fjord") == "gbbyb"
    # Two e's guessed, one in the secret (in place): the other is grey.
    assert feedback("geese", "those") == "bbbgg"
    # One l guessed twice, secret has one l elsewhere: only the first is yellow.
    assert feedback("llama", "hello") == "yybbb"


def test_vocabulary_is_real_english_and_deterministic() -> None:
    secrets, accepted = words()
    assert len(secrets) == 2000 and len(set(secrets)) == 2000
    assert all(len(w) == 5 and w.isalpha() and w.islower() for w in accepted)
    assert {"about", "house", "water", "shire", "frown"} <= accepted
    assert "xxxxx" not in accepted and "https" not in accepted
    assert secrets[:3] == words.__wrapped__()[0][:3]


def test_game_flow() -> None:
    env = registry.make("wordle")
    assert env.reset(0, 0, {}).observation == "Let's start Wordle!"
    secret = env.secret
    wrong = next(w for w in sorted(words()[1]) if w != secret and not set(w) & set(secret))
    out = env.step(" ".join(wrong))
    assert out.observation == "b b b b b" and out.reward == 0 and not out.done
    assert env.step("z z z z q").observation == "invalid word"
    assert env.step("toolongword").info == {"invalid": "true"}
    out = env.step(secret)  # unspaced is accepted too
    assert out.observation == "g g g g g" and out.reward == 1.0 and out.done and out.success


def test_six_wrong_guesses_end_the_game_and_invalid_words_do_not_count() -> None:
    env = registry.make("wordle")
    env.reset(5, 5, {})
    wrong = [w for w in sorted(words()[1]) if w != env.secret][:MAX_GUESSES]
    env.step("q q q q q")
    for i, w in enumerate(wrong):
        out = env.step(" ".join(w))
        assert out.done == (i == MAX_GUESSES - 1)
    assert not out.success and out.info["answer"] == env.secret
