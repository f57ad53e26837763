"""The checks a corpus written for the project must pass (issue 23), per file: `python -m training.corpora written`.

A written corpus is one text per line: parables of 150-450 characters, or sayings of 20-160 (a file whose
name starts with "aphorism"). Each file must be varied (no three-word opening in more than 5 % of its
texts, no near-duplicates), original (at most 1 % of its 40-character windows found in another corpus or
another written file), clean (agreement errors at most 3 % of checked pairs, known words at least 0.99,
only the base's characters, none of charlm.wordfilter's words).
"""

from __future__ import annotations

import re
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from charlm.agreement import AgreementChecker
from charlm.novelty import found_in, window_hashes
from charlm.text import END
from charlm.wordfilter import filtered_words
from charlm.words import WORD_RE, Vocabulary

from .corpus import read_corpus
from .evaluate import COPY_WINDOW, WordChecker

PARABLE_LENGTH = (150, 450)
SAYING_LENGTH = (20, 160)
LIMITS = {"opening": 0.05, "copied": 0.01, "agreement": 0.03, "known": 0.99}
NEAR = 0.5  # a text sharing this share of its word 5-grams with one other text is a near-duplicate
_WORD = re.compile(r"\w+")


def length_range(path: Path) -> tuple[int, int]:
    return SAYING_LENGTH if path.name.startswith("aphorism") else PARABLE_LENGTH


def opening(text: str) -> str:
    return " ".join(_WORD.findall(text.lower())[:3])


def shingles(text: str, n: int = 5) -> set[tuple[str, ...]]:
    words = _WORD.findall(text.lower())
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def near_duplicates(texts: list[tuple[str, int]]) -> set[tuple[str, int]]:
    """(file, line) of every text that shares >= NEAR of its word 5-grams with one other text (either of a pair)."""
    owners: dict[tuple, list[int]] = defaultdict(list)
    sets = [shingles(t) for _, _, t in texts]
    for i, s in enumerate(sets):
        for g in s:
            owners[g].append(i)
    flagged = set()
    for i, s in enumerate(sets):
        if not s:
            continue
        shared = Counter(j for g in s for j in owners[g] if j != i)
        if shared and shared.most_common(1)[0][1] >= NEAR * len(s):
            flagged.add(texts[i][:2])
    return flagged


# A capitalised word after a lower-case letter, a comma, a colon or a dash: a name (Насреддин, Пулу-Пуги),
# which pymorphy3's dictionary mostly lacks; the figures come from the real collections.
_NAME = re.compile(r"(?<=[а-яё,;:—\-] )[А-ЯЁ][а-яё]+(?:-[А-ЯЁа-яё][а-яё]+)*")


def names_apart(text: str) -> str:
    """`text` without the names inside sentences: what known words are counted over."""
    return _NAME.sub(" ", text)


@dataclass
class FileReport:
    path: Path
    texts: list[str]
    outside: int = 0
    bad_chars: str = ""
    top_opening: tuple[str, float] = ("", 0.0)
    near: int = 0
    copied: float = 0.0
    agreement: float | None = None
    known: float | None = None
    words: list[str] = field(default_factory=list)
    examples: list[str] = field(default_factory=list)

    def failures(self) -> list[str]:
        lo, hi = length_range(self.path)
        out = []
        if self.outside:
            out.append(f"{self.outside} texts outside {lo}-{hi} characters")
        if self.bad_chars:
            out.append(f"characters the base cannot write: {self.bad_chars!r}")
        if self.top_opening[1] > LIMITS["opening"] and self.top_opening[1] * len(self.texts) > 1:  # one text is no repeat
            out.append(f"opening «{self.top_opening[0]}» in {self.top_opening[1]:.1%} of texts (max {LIMITS['opening']:.0%})")
        if self.near:
            out.append(f"{self.near} near-duplicates")
        if self.copied > LIMITS["copied"]:
            out.append(f"{self.copied:.2%} of 40-character windows copied (max {LIMITS['copied']:.0%})")
        if self.agreement is not None and self.agreement > LIMITS["agreement"]:
            out.append(f"agreement errors {self.agreement:.1%} (max {LIMITS['agreement']:.0%}): {', '.join(self.examples[:5])}")
        if self.known is not None and self.known < LIMITS["known"]:
            out.append(f"known words {self.known:.3f} (min {LIMITS['known']})")
        if self.words:
            out.append(f"listed words: {', '.join(self.words[:8])}")
        return out


def check_files(files: list[Path], against: list[Path], alphabet: set[str] | None, out=sys.stdout) -> bool:
    """Print each file's figures and failures (characters outside `alphabet` fail); True when every file passes."""
    corpora = {p: read_corpus(p, min_chars=1).texts for p in [*against, *files]}
    # sorted unique window hashes of every corpus a written file may not copy from (itself excluded below)
    hashes = {p: np.unique(window_hashes("".join(t + END for t in texts), COPY_WINDOW)) for p, texts in corpora.items()}
    # the words of the corpora the written ones learn from (figures, customs: «Бешт», «ребе», «цдака»)
    vocabulary = Vocabulary(m.group() for p in against for t in corpora[p] for m in WORD_RE.finditer(t))
    all_texts = [(p.name, i + 1, t) for p in files for i, t in enumerate(corpora[p])]
    near = near_duplicates(all_texts)
    checker, words = AgreementChecker(), WordChecker(vocabulary)
    ok = True
    for p in files:
        texts = corpora[p]
        r = FileReport(p, texts)
        lo, hi = length_range(p)
        r.outside = sum(not lo <= len(t) <= hi for t in texts)
        if alphabet is not None:
            r.bad_chars = "".join(sorted(set("".join(texts)) - alphabet))
        o = Counter(opening(t) for t in texts).most_common(1)
        r.top_opening = (o[0][0], o[0][1] / len(texts)) if o else ("", 0.0)
        r.near = sum((p.name, i + 1) in near for i in range(len(texts)))
        mine = np.concatenate([window_hashes(t + END, COPY_WINDOW) for t in texts]) if texts else np.zeros(0, np.uint32)
        hit = np.zeros(len(mine), bool)
        for q, h in hashes.items():
            if q != p:
                hit |= found_in(h, mine)
        r.copied = float(hit.mean()) if len(mine) else 0.0
        a = checker.check(texts)
        r.agreement, r.examples = a.rate, a.examples
        k, n, _ = words.count(names_apart(t) for t in texts)  # a word of the real collections is known too
        r.known = k / n if n else None
        r.words = [w for t in texts for w in filtered_words(t)]
        lengths = sorted(len(t) for t in texts)
        print(f"{p}: {len(texts)} texts, {sum(len(t) + 1 for t in texts):,} characters, length "
              f"{lengths[0]}/{lengths[len(lengths) // 2]}/{lengths[-1]} (min/median/max); top opening "
              f"«{r.top_opening[0]}» {r.top_opening[1]:.1%}; near-duplicates {r.near}; copied windows {r.copied:.2%}; "
              f"agreement errors {_pct(r.agreement)}; known words {_f(r.known)} (pymorphy3's and the --against corpora's; names inside "
              f"sentences apart); "
              f"listed words {len(r.words)}", file=out)
        for f in r.failures():
            ok = False
            print(f"  FAIL {p}: {f}", file=out)
    print("all checks passed" if ok else "some checks failed", file=out)
    return ok


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.1%}"


def _f(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"
