"""Choosing the next character from logits: temperature, top-k, top-p, greedy; one row per sequence."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np


@dataclass(frozen=True)
class Settings:
    """Decoding settings of one request; temperature 0 means greedy."""

    temperature: float = 0.7
    top_k: int = 0  # 0: no cut
    top_p: float = 1.0  # 1: no cut
    min_length: int = 60  # a sentence end before this many characters does not stop the proverb
    max_length: int = 300  # hard cap; the text is then cut at the last sentence or word boundary
    end_boost: float = 0.0  # logits added to sentence ends, growing from max_length/2 to max_length
    candidates: int = 1  # proverbs generated per request; the one whose grammar agrees best is kept
    real_words: bool = False  # among candidates, prefer those with fewer words nobody knows (charlm.words)

    def __post_init__(self):
        if not (0.0 <= self.temperature <= 5.0):
            raise ValueError(f"temperature must be between 0 and 5, got {self.temperature}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0, got {self.top_k}")
        if not (0.0 < self.top_p <= 1.0):
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if not (0.0 <= self.end_boost <= 20.0):
            raise ValueError(f"end_boost must be between 0 and 20, got {self.end_boost}")
        if not (1 <= self.candidates <= 16):
            raise ValueError(f"candidates must be between 1 and 16, got {self.candidates}")
        if not isinstance(self.real_words, bool):
            raise ValueError(f"real_words must be true or false, got {self.real_words!r}")
        if not (1 <= self.min_length <= self.max_length):
            raise ValueError(f"need 1 <= min_length <= max_length, got {self.min_length}, {self.max_length}")

    def with_(self, **changes) -> "Settings":
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    @classmethod
    def from_dict(cls, data: dict | None) -> "Settings":
        fields = cls.__dataclass_fields__
        return cls(**{k: v for k, v in (data or {}).items() if k in fields})


_EPS = float(np.finfo(np.float64).eps)


class Cuts:
    """A set of rows' decoding settings (temperature, top-k, top-p; arrays (B,)), prepared once for the many
    steps that use them: what a step needs of them is computed here, not per character (~1 us a numpy call).

    The cuts are defined on the tokens sorted most likely first (ties by index): a token stays if the mass
    sorted ahead of it, summed in that order, is below top_p and it is among the first top_k; the first always
    stays. (tests/charlm/test_sampling.py holds that definition as an argsort, and checks these bits.)
    """

    def __init__(self, temperature: np.ndarray, top_k: np.ndarray, top_p: np.ndarray):
        self.greedy = temperature <= 0  # (B,)
        self.any_greedy = bool(self.greedy.any())
        self.divisor = (np.where(self.greedy, 1.0, temperature) if self.any_greedy else temperature)[:, None]
        self.top_k, self.top_p = top_k, top_p[:, None]  # (B,), (B, 1)
        self.vocab = 0  # the cuts below depend on the vocabulary size: made at the first call
        self.top_p_cuts = self.any_greedy or top_p.min() < 1.0
        self.cuts = self.top_p_cuts  # whether a row may ask for a cut
        self.head = None  # (B, V) bool: the sorted positions within each row's top-k, or None

    def _for(self, V: int) -> None:
        top_k = self.top_k
        self.cuts, self.head = self.top_p_cuts, None
        # a mix of "no top-k" and "top-k >= V" counts as a cut (conservative)
        if top_k.max() > 0 and top_k.min() < V:
            self.cuts = True
            self.head = np.arange(V)[None, :] < np.where(top_k > 0, top_k, V)[:, None]
        self.vocab = V

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        """logits (B, V) -> float64 probabilities (B, V) after temperature and cuts. Rows with temperature 0
        get all mass on their argmax. Every operation is row by row: a row's result does not depend on the
        other rows in the batch."""
        z = logits.astype(np.float64, order="C")  # (B, V) in rows: a row's float64 sums depend on the layout
        V = z.shape[1]
        if V != self.vocab:
            self._for(V)
        z /= self.divisor
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z, out=z)
        p /= p.sum(axis=1, keepdims=True)
        # Fast path, same numbers: with no cut asked for, the sorted pass below only drops a token whose
        # mass lies in the rounding error of the cumulative sum, which needs p < ~2·V·eps; above 4·V·eps
        # nothing can be dropped, so the result is exactly the final renormalisation.
        if not self.cuts and p.min() > 4 * V * _EPS:
            p /= p.sum(axis=1, keepdims=True)
            return p
        # The sorted pass needs the sorted values only, not the order (np.sort is ~4x cheaper than a stable
        # argsort at (32, 117)): tied values are equal, so the cumulative sums are the same bits either way.
        desc = p.copy()
        desc.sort(axis=1)  # (np.sort's Python wrapper costs ~0.4 us)
        desc = desc[:, ::-1]  # (B, V) most likely first
        before = np.add.accumulate(desc, axis=1)  # a new array; the same sums as np.cumsum
        before -= desc  # the mass sorted ahead of each token: never decreases along a row (round to nearest)
        keep = before < self.top_p  # (B, V) in sorted order: a prefix of each row (so is every cut below)
        keep[:, 0] = True
        if self.head is not None:
            keep &= self.head
        if self.any_greedy:
            keep[self.greedy, 1:] = False
        total = np.count_nonzero(keep)  # (count_nonzero without an axis: ~0.3 us; .all() / .sum() ~1 us)
        if total < keep.size:
            # Back from sorted positions to tokens: a row keeps its n most likely, so every token from the
            # n-th value t up, unless t is shared across the cut; then of the tokens equal to t only the
            # lowest-indexed n - (those above t).
            t = np.minimum.reduce(desc, axis=1, where=keep, initial=np.inf, keepdims=True)  # (B, 1) the n-th value
            # (B, V): at least n a row, more only where t is shared; "not below" rather than ">=" so that a NaN
            # row (a temperature so small that z / t overflows) keeps all V and sends the batch to the exact
            # per-row pass below instead of hiding another row's tie from the count
            kept = ~(p < t)
            if np.count_nonzero(kept) != total:
                n = keep.sum(axis=1)  # (B,)
                tied = p == t
                room = n - (p > t).sum(axis=1)  # (B,) >= 1: t itself is kept
                kept &= ~tied | (np.add.accumulate(tied, axis=1, dtype=np.int64) <= room[:, None])
            p *= kept  # dropped tokens to 0, the others unchanged
        p /= p.sum(axis=1, keepdims=True)
        return p


def probabilities(logits: np.ndarray, temperature: np.ndarray, top_k: np.ndarray, top_p: np.ndarray) -> np.ndarray:
    """logits (B, V), per-row settings (B,) -> float64 probabilities (B, V) after temperature and cuts
    (`Cuts.probabilities`; a loop over steps keeps one `Cuts`)."""
    return Cuts(temperature, top_k, top_p).probabilities(logits)


def choose(p: np.ndarray, u: np.ndarray) -> np.ndarray:
    """p (B, V) probabilities, u (B,) uniform draws in [0, 1) -> chosen ids (B,)."""
    cum = np.add.accumulate(p, axis=1)  # np.cumsum's sums, without its Python wrapper (~1 us a call)
    ids = (cum <= u[:, None] * cum[:, -1:]).sum(axis=1)  # the first token whose cumulative mass passes u
    # Never pick a zero-probability tail: only a draw that reaches the total (u = 1; a draw below 1 times the
    # total rounds below it) passes every token, and any other lands on a token with mass.
    V = p.shape[1]
    if np.count_nonzero(ids >= V):
        return np.minimum(ids, V - 1 - np.argmax(p[:, ::-1] > 0, axis=1))  # the last token with mass
    return ids
