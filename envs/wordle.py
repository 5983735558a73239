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

The original's word list (setting `vocab=PATH`, LMRL-Gym's `llm_rl_scripts/wordle/vocab/
tweet_words.txt`, which AgentGym's `agentenv-lmrlgym` loads) replaces the built-in one: task id N
is then the original's task N, whose hidden word is drawn by `random.Random(N)` from the list.
The `agentgym` profile plays the original's rules (docs/envs/wordle.md):

- the first observation is the original's text with the whole word list in it;
- the list is both the accepted guesses and the hidden words;
- the hidden word is not fixed: at every valid guess the game draws one (`Random(N).choice`) from
  the words still consistent with the feedback so far, and scores the guess against it;
- feedback "y" marks every letter that is in the word elsewhere (no rule for repeated letters),
  and the reply ends with a newline;
- an invalid word (not five letters a-z, or not in the list) uses up a try;
- the episode is won (reward 1) when a single word is consistent with the feedback and it has been
  guessed; it ends then or after the sixth action.
"""

from __future__ import annotations

import random
import string
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from functools import cache, lru_cache
from importlib import metadata
from pathlib import Path
from typing import ClassVar

from agentgym.envs._data import cached_json
from agentgym.envs.base import Env, Outcome
from agentgym.envs.registry import register

SECRETS = 2000
MAX_GUESSES = 6
# Task ids served with the original's list: its task N is `Random(N)`, so any number is a task;
# AgentGym's Wordle has 955 training and 25 test items. The `tasks` setting changes it.
ORIGINAL_TASKS = 1000
# Lists up to this size play on the event loop: a step or an expert move is then sub-millisecond.
_INLINE_WORDS = 500

SETTINGS = {
    "vocab": "the original's word list (LMRL-Gym llm_rl_scripts/wordle/vocab/tweet_words.txt): task N is "
    "then the original's task N",
    "tasks": f"how many task ids to serve with `vocab` (default {ORIGINAL_TASKS}; the original's are seeds)",
}

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

# The profile's first observation when the operator's files give no text for it (the original's
# is prose in its client, not shipped here): our own rules of the original's game, then the list.
PROFILE_FALLBACK = """\
Let's play Wordle. Find a hidden five-letter word in at most 6 tries. Write each guess as five \
letters separated by spaces, for example "s h i r e". After each guess you get five letters back, \
one per position: "g" if the letter is in the word in this position, "y" if it is in the word in \
another position, "b" if it is not in the word. A guess that is not a five-letter word from the \
list below gets "invalid word" and uses up a try.

The words the game accepts:
```
{{vocab}}
```"""
VOCAB_PLACEHOLDER = "{{vocab}}"


class VocabError(ValueError):
    """The word list file is missing or malformed (the message names the file and the line)."""


def load_vocab(path: str | Path) -> tuple[str, ...]:
    """LMRL-Gym's `Vocabulary.from_file`: every line stripped, the five-character ones kept in file
    order, the others (blank lines, longer words) skipped. The order matters: the original draws
    hidden words by position in this list.

    Refused, with the line: a five-character entry that is not five letters a-z (the original
    would list it, and hide it, but never accept it as a guess) and a repeated word (the game could
    never end on it: it needs a single consistent word)."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise VocabError(f"wordle vocab {p}: cannot be read: {exc.strerror or exc}") from None
    words: list[str] = []
    first_line: dict[str, int] = {}
    for number, line in enumerate(raw.split(b"\n"), start=1):
        try:
            item = line.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise VocabError(f"wordle vocab {p}, line {number}: not UTF-8 text") from None
        if len(item) != 5:
            continue
        if not all(c in string.ascii_lowercase for c in item):
            raise VocabError(
                f"wordle vocab {p}, line {number}: {item!r} is not five lower-case letters a-z "
                "(the original could hide it but never accept it as a guess)"
            )
        if item in first_line:
            raise VocabError(
                f"wordle vocab {p}, line {number}: {item!r} repeats line {first_line[item]} "
                "(the original could never end a game on a repeated word)"
            )
        first_line[item] = number
        words.append(item)
    if not words:
        raise VocabError(f"wordle vocab {p}: no five-letter word in it (one word a line, as tweet_words.txt)")
    return tuple(words)


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


def original_feedback(guess: str, word: str) -> str:
    """LMRL-Gym's colouring: "y" for every letter of the word out of place, however many times the
    guess repeats it. (The original derives it from its per-letter knowledge state; for a word
    consistent with that state this is the same, and so is "consistent with the state" and "gives
    the same colouring as the drawn word", which is how the candidates are filtered here.)"""
    return "".join("g" if g == w else "y" if g in word else "b" for g, w in zip(guess, word, strict=True))


RULES: dict[str, Callable[[str, str], str]] = {"ours": feedback, "agentgym": original_feedback}


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
    task_set = "built-in word list; not the original's"
    # The original's word list when the `vocab` setting names it; None: the built-in lists.
    vocab: ClassVar[tuple[str, ...] | None] = None
    # The profile's first observation, set by the profile's loader (envs/compat.py) from the
    # operator's files: the original's text with "{{vocab}}" where the list goes, or (from an
    # AgentTraj record) with the list already in it. None: PROFILE_FALLBACK.
    original_task_text: ClassVar[str | None] = None

    @classmethod
    def configure(cls, settings: Mapping[str, str]) -> None:
        if unknown := sorted(set(settings) - set(SETTINGS)):
            raise ValueError(f"wordle: unknown settings {', '.join(unknown)}; known: {', '.join(SETTINGS)}")
        cls.original_task_text = None  # the profile's loader sets it again after this
        path = settings.get("vocab", "")
        cls.vocab = load_vocab(path) if path else None
        tasks = _positive_int(settings.get("tasks", ""), "tasks")
        if cls.vocab is None:
            if tasks:
                raise ValueError("wordle: tasks only applies with vocab (the built-in list has 2,000 tasks)")
            cls.task_count = SECRETS
            cls.task_set = "built-in word list; not the original's"
        else:
            cls.task_count = tasks or ORIGINAL_TASKS
            cls.task_set = "original"
        n = cls.task_count
        # The last tenth is held out (1,800/200 for the built-in list). The original publishes its
        # split as item lists (AgentTraj, AgentEval), not as id ranges.
        cls.splits = {"train": [range(0, n - n // 10)], "test": [range(n - n // 10, n)]}
        listed = cls.word_list()
        builtin_ours = cls.vocab is None and cls.profile != "agentgym"
        cls.execution = "inline" if builtin_ours or len(listed) <= _INLINE_WORDS else "thread"
        words()
        if builtin_ours:
            _tree()
        else:
            _solver_guess(listed, (), cls.rule())  # the opening, computed once per list

    @classmethod
    def rule(cls) -> str:
        return "agentgym" if cls.profile == "agentgym" else "ours"

    @classmethod
    def word_list(cls) -> tuple[str, ...]:
        """The words hidden words are drawn from: the original's list, or the built-in hidden words
        (the profile then also takes them as its only list: accepted, shown and drawn from)."""
        return cls.vocab if cls.vocab is not None else words()[0]

    def reset(self, task_id: int, seed: int, options: Mapping[str, str]) -> Outcome:
        self.history: list[tuple[str, str]] = []
        listed = self.word_list()
        if self.rule() == "agentgym":
            # The original reseeds its word generator with the item id on every reset.
            self.draw = random.Random(task_id)
            self.accepted = frozenset(listed)
            self.candidates: list[str] = list(listed)
            self.tries = 0
            return Outcome(self._first_observation(listed))
        if self.vocab is None:
            self.secret = listed[task_id]
            self.accepted = words()[1]
        else:
            # Our rules hide one fixed word: the one the original draws first for this task.
            self.secret = random.Random(task_id).choice(listed)
            self.accepted = frozenset(listed)
        return Outcome("Let's start Wordle!")

    def _first_observation(self, listed: Sequence[str]) -> str:
        text = self.original_task_text if self.original_task_text is not None else PROFILE_FALLBACK
        if VOCAB_PLACEHOLDER not in text:
            return text  # an AgentTraj turn: the original's list is already in it
        return text.replace(VOCAB_PLACEHOLDER, "\n".join(listed))

    def step(self, action: str) -> Outcome:
        if self.rule() == "agentgym":
            return self._original_step(action)
        guess = "".join(action.lower().split())
        if len(guess) != 5 or guess not in self.accepted:
            return Outcome("invalid word", info={"invalid": "true"})
        marks = feedback(guess, self.secret)
        self.history.append((guess, marks))
        text = " ".join(marks)
        if guess == self.secret:
            return Outcome(text, reward=1.0, done=True, success=True)
        if len(self.history) >= MAX_GUESSES:
            return Outcome(text, done=True, info={"answer": self.secret})
        return Outcome(text)

    def _original_step(self, action: str) -> Outcome:
        # The original's server removes spaces only: case and other characters are kept (and fail).
        guess = action.replace(" ", "")
        self.tries += 1
        out_of_tries = self.tries >= MAX_GUESSES
        if len(guess) != 5 or not set(guess) <= set(string.ascii_lowercase) or guess not in self.accepted:
            return Outcome("invalid word", done=out_of_tries, info={"invalid": "true"})
        word = self.draw.choice(self.candidates)
        marks = original_feedback(guess, word)
        self.candidates = [w for w in self.candidates if original_feedback(guess, w) == marks]
        self.history.append((guess, marks))
        guessed = {g for g, _ in self.history}
        won = len(self.candidates) == 1 and self.candidates[0] in guessed
        return Outcome(" ".join(marks) + "\n", reward=float(won), done=won or out_of_tries, success=won)

    def expert_action(self) -> str:
        if self.rule() == "ours" and self.vocab is None:
            return " ".join(expert_guess(tuple(self.history)))
        return " ".join(_solver_guess(self.word_list(), tuple(self.history), self.rule()))


def _positive_int(text: str, what: str) -> int:
    if not text:
        return 0
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n <= 0:
        raise ValueError(f"wordle: {what} must be a positive whole number, got {text!r}")
    return n


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


@lru_cache(maxsize=8192)
def _solver_guess(listed: tuple[str, ...], history: tuple[tuple[str, str], ...], rule: str) -> str:
    """The same minimax solver for any list and either rule (the built-in list under our rules
    has its precomputed tree instead). Every word of the list is a possible hidden word and an
    accepted guess; the candidates are those consistent with every (guess, feedback) so far.

    Under the original's rule a game is won once a single candidate is left and it was guessed,
    so a last candidate is always guessed; a guess from the candidates can also win at once."""
    score = RULES[rule]
    candidates = [w for w in listed if all(score(g, w) == m for g, m in history)]
    if not candidates:
        raise RuntimeError("no word of the list matches the feedback so far")
    if len(candidates) <= 2:
        return candidates[0]
    if not history and len(listed) > 300:
        # A fixed opening from a sample keeps the first move cheap on long lists.
        sample = listed[:: max(1, len(listed) // 400)]
        return min(listed[:300], key=lambda g: (max(Counter(score(g, w) for w in sample).values()), g))
    pool: Sequence[str] = (
        candidates if len(candidates) > 60 else list(dict.fromkeys([*candidates, *listed[:400]]))
    )
    in_candidates = set(candidates)

    def cost(g: str) -> tuple[int, float, bool, str]:
        sizes = Counter(score(g, w) for w in candidates)
        return (
            max(sizes.values()),
            sum(n * n for n in sizes.values()) / len(candidates),
            g not in in_candidates,
            g,
        )

    return min(pool, key=cost)
