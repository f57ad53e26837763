"""Grammatical agreement of adjacent word pairs, checked with pymorphy3: what a Russian reader trips over.

Two kinds of pairs, each only where pymorphy3 is sure of both words' part of speech (every parse agrees),
and only when nothing but spaces stands between them:
  - adjective + noun (`ADJF`, possessives such as «свою» included): they must share case
    and number, and gender in the singular («свою кошелек» cannot agree under any parse);
  - nominative personal pronoun + indicative verb: person and number in the present/future, number and gender
    in the past («вы стал», «Мы испытываю»).
A pair is an error when no combination of the two words' parses agrees. On the five reference corpora
this flags ~4 % of pairs (adjective pairs that belong to different phrases); the round-1 models, ~51 %.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# Two Cyrillic words with only spaces between them; the lookahead lets pairs overlap (w1 w2, w2 w3).
_PAIR = re.compile(r"(?=(?<![а-яёА-ЯЁ-])([а-яёА-ЯЁ]+) +([а-яёА-ЯЁ]+)(?![а-яёА-ЯЁ-]))")
_CASES = {"gen1": "gent", "gen2": "gent", "acc2": "accs", "loc1": "loct", "loc2": "loct", "voct": "nomn"}
_PRONOUNS = {  # nominative personal pronoun -> (person, number, past-tense genders it takes)
    "я": ("1per", "sing", {"masc", "femn"}), "ты": ("2per", "sing", {"masc", "femn"}),
    "он": ("3per", "sing", {"masc"}), "она": ("3per", "sing", {"femn"}), "оно": ("3per", "sing", {"neut"}),
    "мы": ("1per", "plur", None), "вы": ("2per", "plur", None), "они": ("3per", "plur", None),
}
# Adjectives only: a participle next to a noun in another case usually governs it («расстроенный ссорой»).
_ADJ = {"ADJF"}


_MORPH = None


def analyzer():
    """pymorphy3's Russian analyzer, loaded once per process on first use (~0.13 s, ~25 MB)."""
    global _MORPH
    if _MORPH is None:
        import pymorphy3  # imported here: only bundles that choose among candidates need it

        _MORPH = pymorphy3.MorphAnalyzer(lang="ru")
    return _MORPH


def _case(tag) -> str | None:
    c = tag.case
    return _CASES.get(c, c)


def _adj_noun_agree(a, n) -> bool:
    if _case(a) != _case(n) or a.number != n.number:
        return False
    if a.number == "sing":
        # common-gender nouns («сирота»: ms-f) and those without a gender take either form
        return n.gender is None or a.gender == n.gender or bool({"ms-f", "GNdr"} & n.grammemes)
    return True


def _pron_verb_agree(pron: str, v) -> bool:
    person, number, genders = _PRONOUNS[pron]
    if v.tense == "past":
        if number == "plur":
            return v.number == "plur"
        return v.number == "sing" and v.gender in genders
    return v.person == person and v.number == number


@dataclass
class Agreement:
    """Counts of checked pairs and errors, with a few examples of each kind of error."""

    pairs: int = 0
    errors: int = 0
    examples: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float | None:
        return None if self.pairs == 0 else self.errors / self.pairs


class AgreementChecker:
    """Adjacent adjective–noun and pronoun–verb pairs that pymorphy3 can check, and those that cannot agree."""

    CACHE_WORDS = 20_000  # parses kept (~1 KB each); a proverb has ~30 words, most of them common

    def __init__(self, morph=None, examples: int = 10):
        if morph is None:
            morph = analyzer()
        self.morph, self.max_examples = morph, examples
        self._tags: dict[str, list] = {}

    def tags(self, word: str) -> list:
        w = word.lower()
        t = self._tags.get(w)
        if t is None:
            if len(self._tags) >= self.CACHE_WORDS:  # a worker runs for weeks and the model invents words
                self._tags.clear()
            t = self._tags[w] = [p.tag for p in self.morph.parse(w)]
        return t

    def pair(self, w1: str, w2: str) -> bool | None:
        """True if the pair agrees, False if it cannot, None if it is not a pair this check reads."""
        t1, t2 = self.tags(w1), self.tags(w2)
        if not t1 or not t2:
            return None
        p1 = w1.lower()
        if p1 in _PRONOUNS:
            if not all(t.POS == "VERB" and t.mood == "indc" for t in t2):  # «ты скажи» is an imperative
                return None
            return any(_pron_verb_agree(p1, v) for v in t2)
        if p1.startswith("котор"):  # «которого дервиши»: a relative pronoun agrees with a noun elsewhere
            return None
        if all(t.POS in _ADJ for t in t1) and all(t.POS == "NOUN" for t in t2):
            return any(_adj_noun_agree(a, n) for a in t1 for n in t2)
        return None

    def check(self, texts) -> Agreement:
        out = Agreement()
        for text in texts:
            for m in _PAIR.finditer(text):
                ok = self.pair(m.group(1), m.group(2))
                if ok is None:
                    continue
                out.pairs += 1
                if not ok:
                    out.errors += 1
                    if len(out.examples) < self.max_examples:
                        out.examples.append(f"{m.group(1)} {m.group(2)}")
        return out
