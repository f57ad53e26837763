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
        if not (1 <= self.min_length <= self.max_length):
            raise ValueError(f"need 1 <= min_length <= max_length, got {self.min_length}, {self.max_length}")

    def with_(self, **changes) -> "Settings":
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    @classmethod
    def from_dict(cls, data: dict | None) -> "Settings":
        fields = cls.__dataclass_fields__
        return cls(**{k: v for k, v in (data or {}).items() if k in fields})


_EPS = float(np.finfo(np.float64).eps)


def probabilities(logits: np.ndarray, temperature: np.ndarray, top_k: np.ndarray, top_p: np.ndarray) -> np.ndarray:
    """logits (B, V), per-row settings (B,) -> float64 probabilities (B, V) after temperature and cuts.

    Rows with temperature 0 get all mass on their argmax. Every operation is row by row, so a row's
    result does not depend on the other rows in the batch.
    """
    z = logits.astype(np.float64)  # (B, V)
    B, V = z.shape
    greedy = temperature <= 0  # (B,)
    any_greedy = bool(greedy.any())
    z /= (np.where(greedy, 1.0, temperature) if any_greedy else temperature)[:, None]
    z -= z.max(axis=1, keepdims=True)
    p = np.exp(z, out=z)
    p /= p.sum(axis=1, keepdims=True)
    # Whether a row may ask for a cut (conservative: a mix of "no top-k" and "top-k >= V" counts as one).
    cuts = any_greedy or top_p.min() < 1.0 or (top_k.max() > 0 and top_k.min() < V)
    # Fast path, same numbers: with no cut asked for, the sorted pass below only drops a token whose
    # mass lies in the rounding error of the cumulative sum, which needs p < ~2·V·eps; above 4·V·eps
    # nothing can be dropped, so the result is exactly the final renormalisation.
    if not cuts and p.min() > 4 * V * _EPS:
        p /= p.sum(axis=1, keepdims=True)
        return p
    order = np.argsort(-p, axis=1, kind="stable")  # (B, V) most likely first, ties by index
    rows = np.arange(B)[:, None]
    sorted_p = p[rows, order]
    # keep the smallest head whose mass reaches top_p, and at most top_k; the first token always stays
    before = np.cumsum(sorted_p, axis=1)
    before -= sorted_p
    if cuts or before.max() >= top_p.min():  # else nothing is dropped (before[:, 0] is 0)
        keep = before < top_p[:, None]  # (B, V) in sorted order
        keep[:, 0] = True
        if cuts:
            if top_k.max() > 0:
                keep &= np.arange(V)[None, :] < np.where(top_k > 0, top_k, V)[:, None]
            if any_greedy:
                keep[greedy, 1:] = False
        if not keep.all():
            p[rows, order] = sorted_p * keep  # dropped tokens to 0, the others unchanged
    p /= p.sum(axis=1, keepdims=True)
    return p


def choose(p: np.ndarray, u: np.ndarray) -> np.ndarray:
    """p (B, V) probabilities, u (B,) uniform draws in [0, 1) -> chosen ids (B,)."""
    cum = np.cumsum(p, axis=1)
    ids = (cum <= u[:, None] * cum[:, -1:]).sum(axis=1)
    # never pick a zero-probability tail through rounding
    if p.all():  # no zeros: the last id is the tail (the common case, one call instead of four)
        return np.minimum(ids, p.shape[1] - 1)
    last = p.shape[1] - 1 - np.argmax(p[:, ::-1] > 0, axis=1)
    return np.minimum(ids, last)
