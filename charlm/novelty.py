"""The novelty guard: hashes of a corpus' n-grams, so a bundle can tell recitation without the corpus."""

from __future__ import annotations

from pathlib import Path

import numpy as np

WINDOW = 40  # characters; a generated window of this length found verbatim in the corpus counts as copied
_PRIME = np.uint64(1099511628211)  # FNV-64 prime: a polynomial hash over code points, wrapping mod 2**64


def window_hashes(text: str, n: int = WINDOW) -> np.ndarray:
    """uint32 hashes of every n-character window of `text` (empty when shorter than n)."""
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    count = len(codes) - n + 1
    if count <= 0:
        return np.zeros(0, np.uint32)
    h = np.zeros(count, np.uint64)
    with np.errstate(over="ignore"):
        for j in range(n):
            h = h * _PRIME + codes[j : j + count]
    # the high half mixes every character; 32 bits keep a 460 K-character corpus at ~1.8 MB
    return (h >> np.uint64(32)).astype(np.uint32)


# A corpus larger than this many characters (TinyStories-ru: 11 M) adds only the windows whose hash is a
# multiple of SAMPLE_EVERY: 2.8 MB instead of 44 MB in every bundle built on it. Any window a proverb
# copies from it is still a real copy when found; a copied span of 40 + m characters is caught with
# probability 1 - (15/16)^(m+1): 74 % at 60 characters, 92 % at 80. Held-out figures (training.evaluate)
# count copies against every training text in full.
SAMPLE_ABOVE = 2_000_000
SAMPLE_EVERY = 16


def sampled(hashes: np.ndarray, every: int = SAMPLE_EVERY) -> np.ndarray:
    """The hashes that are multiples of `every`: a fixed subset, the same in every bundle."""
    return hashes[hashes % np.uint32(every) == 0]


def found_in(index: np.ndarray, hashes: np.ndarray) -> np.ndarray:
    """(len(hashes),) bool: which of `hashes` the sorted array `index` holds (a lookup, not np.isin's sort)."""
    if not len(hashes) or not len(index):
        return np.zeros(len(hashes), bool)
    pos = np.searchsorted(index, hashes)
    pos[pos == len(index)] = 0
    return index[pos] == hashes


class NoveltyIndex:
    """Sorted unique window hashes of a corpus; `copied(text)` counts windows of text found there."""

    def __init__(self, hashes: np.ndarray, n: int = WINDOW):
        h = np.asarray(hashes, dtype=np.uint32)
        # A bundle's novelty.npy is saved sorted and unique: checking that is ~1 ms, where np.unique took
        # ~0.27 s per bundle (numpy 2.4 hashes before it sorts), 1.6 s of the bot's 2.1 s loading 6 bundles.
        self.hashes = h if bool(np.all(h[1:] > h[:-1])) else np.unique(h)
        self.n = n

    @classmethod
    def from_text(cls, text: str, n: int = WINDOW) -> "NoveltyIndex":
        return cls(window_hashes(text, n), n)

    @classmethod
    def of_corpora(cls, texts: list[str], also: "NoveltyIndex | None" = None, n: int = WINDOW) -> "NoveltyIndex":
        """Every training text's windows: each corpus in `texts` in full (sampled above SAMPLE_ABOVE characters),
        and the sampled part of the windows `also` holds (the base a model was fine-tuned from learned them).

        Why the base's are sampled: a fine-tuned model copies what it saw last and most often, its own corpus;
        the base's texts (round 3: TinyStories-ru, every written corpus, the real ones and fortunes-ru, 6.3 M
        windows) in full made each bundle's novelty.npy 23 MB and each generation worker 137 MB larger."""
        parts = [window_hashes(t, n) if len(t) <= SAMPLE_ABOVE else sampled(window_hashes(t, n)) for t in texts]
        if also is not None:
            parts.append(sampled(also.hashes))
        return cls(np.unique(np.concatenate(parts)) if parts else np.zeros(0, np.uint32), n)

    def copied(self, text: str) -> tuple[int, int]:
        """(copied windows, all windows) of `text`."""
        h = window_hashes(text, self.n)
        return int(found_in(self.hashes, h).sum()), len(h)

    def save(self, path: str | Path) -> None:
        np.save(path, self.hashes, allow_pickle=False)

    @classmethod
    def load(cls, path: str | Path, n: int = WINDOW) -> "NoveltyIndex":
        return cls(np.load(path, allow_pickle=False), n)
