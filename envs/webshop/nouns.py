"""The nouns of a product name, for the reward's product-type score.

The original tags names with spaCy's `en_core_web_lg` and keeps NOUN and PROPN tokens. That model
is a separate download, so this module approximates the tagger with a part-of-speech lexicon:
lemminflect's English dictionary (a PyPI package; its word classes are extracted once into the env
data cache, so the numpy-backed package is never imported at run time) plus two context rules:

- a word the lexicon knows only as a verb, adjective or adverb is not a noun ("looking", "slim");
- a word that can be an adjective *and* a noun counts as an adjective when another noun-like word
  follows it ("white shirt", "natural hair"), and as a noun otherwise ("... off white");
- a word the lexicon does not know (brands, model names, "soundbar") counts as a proper noun, as
  a statistical tagger usually labels it; numbers and function words never count.

Tagging is deterministic and cached per name. Scores differ from spaCy's on some names; see
docs/envs/webshop.md.
"""

from __future__ import annotations

import re
from functools import cache, lru_cache
from importlib import metadata

from agentgym.envs._data import cached_json

# Tokens as a tagger sees them: runs of letters/digits, with inner apostrophes or dots kept
# ("men's", "d.o.n").
_TOKEN = re.compile(r"[^\W_]+(?:['’.][^\W_]+)*")

# Closed-class words (determiners, pronouns, prepositions, conjunctions, auxiliaries, number
# words): never nouns. The lexicon covers open classes only.
FUNCTION_WORDS = frozenset(
    """
    a an the this that these those each every either neither any all both some no none
    i me my mine we us our ours you your yours he him his she her hers it its they them their theirs
    who whom whose which what whatever whichever
    and or nor but so yet if than then because while whereas although though unless until
    of in on at to by for from with without within into onto upon over under above below
    about across after against along amid among around as before behind beneath beside besides
    between beyond despite down during except inside like near off out outside past per plus
    since through throughout toward towards underneath unlike up versus via vs
    is are was were be been being am do does did done have has had having can could may might
    must shall should will would not n't 's 're 've 'll 'd
    very too also just only even more most less least much many few several such own same other
    another there here where when why how
    one two three four five six seven eight nine ten eleven twelve twenty thirty forty fifty
    hundred thousand first second third
    """.split()
)

_SOURCE_VERSION = "1"


def _build_lexicon() -> dict[str, str]:
    """Word -> its possible classes as letters: N noun, P proper noun, A adjective, V verb, R adverb."""
    import lemminflect

    letters = {"NOUN": "N", "PROPN": "P", "ADJ": "A", "VERB": "V", "AUX": "V", "ADV": "R"}
    lemmas = lemminflect.Lemmatizer()._getLemmaDict()
    vocabulary: set[str] = set()
    for form, by_class in lemmas.items():
        vocabulary.add(form)
        for words in by_class.values():
            vocabulary.update(words)
    lexicon: dict[str, str] = {}
    for word in sorted(vocabulary):
        if not _TOKEN.fullmatch(word):
            continue
        classes = lemminflect.getAllLemmas(word)
        flags = "".join(sorted({letters[c] for c in classes if c in letters}))
        if flags:
            lexicon[word.lower()] = "".join(sorted(set(lexicon.get(word.lower(), "")) | set(flags)))
    return lexicon


@cache
def lexicon() -> dict[str, str]:
    source = f"lemminflect=={metadata.version('lemminflect')};v={_SOURCE_VERSION}"
    data: dict[str, str] = cached_json("webshop_pos_lexicon.json", source, _build_lexicon)
    return data


def _kind(token: str) -> str:
    """'noun', 'dual' (adjective or noun), 'other' (never a noun here) for one lower-case token."""
    if token in FUNCTION_WORDS or not any(ch.isalpha() for ch in token):
        return "other"
    flags = lexicon().get(token)
    if flags is None:
        # Unknown to the dictionary: a brand, a model name or a compound such as "soundbar".
        # Possessives ("men's") and dotted abbreviations fall here too unless their base is known.
        base = token.removesuffix("'s").removesuffix("’s")
        if base != token and base in lexicon():
            flags = lexicon()[base]
        else:
            return "noun"
    if "N" not in flags and "P" not in flags:
        return "other"
    return "dual" if "A" in flags else "noun"


@lru_cache(maxsize=65536)
def nouns(text: str) -> frozenset[str]:
    """The lower-cased noun and proper-noun tokens of `text`."""
    tokens = [t.lower() for t in _TOKEN.findall(text)]
    kinds = [_kind(t) for t in tokens]
    found: set[str] = set()
    for i, (token, kind) in enumerate(zip(tokens, kinds, strict=True)):
        if kind == "noun":
            found.add(token)
        elif kind == "dual":
            following = kinds[i + 1] if i + 1 < len(kinds) else "other"
            if following == "other":
                found.add(token)
    return frozenset(found)
