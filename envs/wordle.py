"""Wordle (LMRL-Gym style): guess a hidden five-letter word in six tries.

A guess is five space-separated letters ("s h i r e"; "shire" is accepted too). The reply is
one letter per position, space separated: "g" right letter in the right place, "y" in the word
but elsewhere, "b" not in the word (with Wordle's rule for repeated letters). A word outside the
vocabulary gets "invalid word" and does not use up a try. Reward 1 when the word is found; the
episode ends then or after the sixth wrong guess.

Vocabulary, built at install time from installed packages (no download): five-letter words that
Webster's 2nd (via `english-words`) lists in lower case and GCIDE confirms (no names or
abbreviations). The hidden words are the 2,000 most frequent of them in `wordfreq` (whose sources
include Twitter, like LMRL-Gym's tweet vocabulary), shuffled once with a fixed seed so that task
ids are not ordered by difficulty. Task id i hides word i; the seed is unused.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping, Sequence
from functools import cache, lru_cache
from importlib import metadata

from agentgym.envs._data import cached_json
from agentgym.envs.base import Env, Outcome
from agentgym.envs.registry import register

SECRETS = 2000
MAX_GUESSES = 6

INSTRUCTION = """\
Let's play Wordle. Find a hidden five-letter English word in at most 6 guesses.

Write each guess as five letters separated by spaces, for example "s h i r e". After each guess \
you get five letters back, one per position:
- "g": this letter is in the word, in this position;
- "y": this letter is in the word, but in another position;
- "b": this letter is not in the word (or not as many times as you used it).
A guess that is not a common English word gets "invalid word" and does not count as a try.

Example: after
guess 1: p a n i c  ->  b b y b b
guess 2: f e l o n  ->  g b b y g
you know the word starts with "f", ends with "n", has an "o" that is not fourth, and has none of \
p, a, i, c, e, l. A good next guess is "f r o w n".

Reply in exactly this format:
Thought:
your reasoning

Action:
your guess"""


def _build_words() -> dict[str, list[str]]:
    import wordfreq
    from english_words import get_english_words_set

    web2 = get_english_words_set(["web2"], lower=False, alpha=True)
    gcide = get_english_words_set(["gcide"], lower=True, alpha=True)
    vocab = sorted(w for w in web2 if len(w) == 5 and w.isascii() and w.islower() and w in gcide)
    in_vocab = set(vocab)
    ranked = [w for w in wordfreq.top_n_list("en", 300_000) if w in in_vocab]
    secrets = ranked[:SECRETS]
    random.Random(20240612).shuffle(secrets)
    return {"vocab": vocab, "secrets": secrets}


def _source() -> str:
    return f"english-words=={metadata.version('english-words')};wordfreq=={metadata.version('wordfreq')};v=1"


@cache
def words() -> tuple[tuple[str, ...], frozenset[str]]:
    """(secret words in task order, accepted guesses)."""
    data = cached_json("wordle_words.json", _source(), _build_words)
    secrets = tuple(data["secrets"])
    return secrets, frozenset(data["vocab"]) | frozenset(secrets)


def feedback(guess: str, secret: str) -> str:
    """Wordle colouring: greens first, then yellows while unmatched copies of a letter remain."""
    marks = ["b"] * 5
    left: Counter[str] = Counter()
    for i, (g, s) in enumerate(zip(guess, secret, strict=True)):
        if g == s:
            marks[i] = "g"
        else:
            left[s] += 1
    for i, g in enumerate(guess):
        if marks[i] == "b" and left[g] > 0:
            marks[i] = "y"
            left[g] -= 1
    return "".join(marks)


@register
class Wordle(Env):
    name = "wordle"
    description = "Guess a five-letter word in six tries (LMRL-Gym Wordle)."
    instruction = INSTRUCTION
    action_format = "five space-separated letters, e.g. 's h i r e'"
    max_rounds = 8
    task_count = SECRETS
    splits = {"train": [range(0, 1800)], "test": [range(1800, SECRETS)]}
    execution = "inline"

    @classmethod
    def configure(cls, settings: Mapping[str, str]) -> None:
        words()
        _tree()

    def reset(self, task_id: int, seed: int, options: Mapping[str, str]) -> Outcome:
        self.secret = words()[0][task_id]
        self.history: list[tuple[str, str]] = []
        return Outcome("Let's start Wordle!")

    def step(self, action: str) -> Outcome:
        guess = "".join(action.lower().split())
        _, accepted = words()
        if len(guess) != 5 or guess not in accepted:
            return Outcome("invalid word", info={"invalid": "true"})
        marks = feedback(guess, self.secret)
        self.history.append((guess, marks))
        text = " ".join(marks)
        if guess == self.secret:
            return Outcome(text, reward=1.0, done=True, success=True)
        if len(self.history) >= MAX_GUESSES:
            return Outcome(text, done=True, info={"answer": self.secret})
        return Outcome(text)

    def expert_action(self) -> str:
        return " ".join(expert_guess(tuple(self.history)))


def expert_guess(history: tuple[tuple[str, str], ...]) -> str:
    """The expert's next guess: looked up in the decision tree built once per vocabulary (at
    install time, with the word lists), or computed for histories the tree does not cover (earlier
    guesses that were not the expert's)."""
    key = "|".join(f"{g}:{m}" for g, m in history)
    return _tree().get(key) or _best_guess(history)


@cache
def _tree() -> dict[str, str]:
    return cached_json("wordle_expert.json", _source() + ";expert=1", _build_tree)


def _build_tree() -> dict[str, str]:
    """Play the solver against every hidden word and record each decision."""
    tree: dict[str, str] = {}
    for secret in words()[0]:
        history: tuple[tuple[str, str], ...] = ()
        while True:
            key = "|".join(f"{g}:{m}" for g, m in history)
            guess = tree.get(key) or _best_guess(history)
            tree[key] = guess
            if guess == secret or len(history) >= MAX_GUESSES:
                break
            history = (*history, (guess, feedback(guess, secret)))
    return tree


@lru_cache(maxsize=4096)
def _best_guess(history: tuple[tuple[str, str], ...]) -> str:
    """Pick the guess that leaves the fewest candidates in the worst case (then on average).

    Candidates are the hidden-word list filtered by the feedback so far. Guesses come from the
    candidates, plus, while few remain, from the 400 most frequent hidden words, which can split
    them better.
    """
    secrets, _ = words()
    candidates = [w for w in secrets if all(feedback(g, w) == m for g, m in history)]
    if not candidates:
        raise RuntimeError("no hidden word matches the feedback so far")
    if not history:
        return _opening()
    if len(candidates) <= 2:
        return candidates[0]
    pool: Sequence[str] = (
        candidates if len(candidates) > 60 else list(dict.fromkeys([*candidates, *secrets[:400]]))
    )
    in_candidates = set(candidates)

    def cost(g: str) -> tuple[int, float, bool, str]:
        sizes = Counter(feedback(g, w) for w in candidates)
        return (
            max(sizes.values()),
            sum(n * n for n in sizes.values()) / len(candidates),
            g not in in_candidates,
            g,
        )

    return min(pool, key=cost)


@cache
def _opening() -> str:
    """The first guess: the hidden word that best splits a sample of the list (fixed per vocabulary)."""
    secrets, _ = words()
    sample = secrets[::5]
    return min(secrets[:300], key=lambda g: (max(Counter(feedback(g, w) for w in sample).values()), g))
