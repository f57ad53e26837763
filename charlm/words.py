"""Known words: pymorphy3's Russian dictionary plus a bundle's own words (names and customs: «ребе», «Насреддин»).

Why: one served round-3 proverb in nine held an invented word («соседам», «придуть», «поставьть»; 40 requests
each of sufi and hasidic, runs of the shipped bundles), and readers named invented words first. Among the 3
candidates of a request, the one with the fewest unknown words had one in 0-3 % (`Settings.real_words`,
charlm/candidates.py). pymorphy3 alone does not know «ребе» or «цадик», which a hasidic parable needs: a bundle
carries the words of its own corpus that the dictionary lacks (`words.txt`, written at export).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from .agreement import analyzer

WORD_RE = re.compile(r"[а-яёА-ЯЁ]+(?:-[а-яёА-ЯЁ]+)*")  # Cyrillic words; Latin, digits and punctuation do not count


class Vocabulary:
    """Which Cyrillic words are known: `own` (lower case) or pymorphy3's dictionary; cached per word."""

    def __init__(self, own: Iterable[str] = ()):
        self.own = frozenset(w.lower() for w in own)
        self._cache: dict[str, bool] = {}

    def known(self, word: str) -> bool:
        w = word.lower()
        hit = self._cache.get(w)
        if hit is None:
            hit = self._cache[w] = w in self.own or bool(analyzer().word_is_known(w))
        return hit

    def unknown(self, text: str) -> list[str]:
        """The words of `text` this vocabulary does not know, in order (as written)."""
        return [m.group() for m in WORD_RE.finditer(text) if not self.known(m.group())]

    @classmethod
    def of_texts(cls, texts: Iterable[str]) -> "Vocabulary":
        """The vocabulary of a corpus: its words that pymorphy3 does not know become this vocabulary's own."""
        seen = {m.group().lower() for t in texts for m in WORD_RE.finditer(t)}
        return cls(w for w in seen if not analyzer().word_is_known(w))

    def to_text(self) -> str:
        """One word a line, sorted: the bundle's words.txt."""
        return "".join(w + "\n" for w in sorted(self.own))

    @classmethod
    def from_text(cls, text: str) -> "Vocabulary":
        return cls(w.strip() for w in text.splitlines() if w.strip())
