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

    def __post_init__(self):
        if not (0.0 <= self.temperature <= 5.0):
            raise ValueError(f"temperature must be between 0 and 5, got {self.temperature}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0, got {self.top_k}")
        if not (0.0 < self.top_p <= 1.0):
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if not (1 <= self.min_length <= self.max_length):
            raise ValueError(f"need 1 <= min_length <= max_length, got {self.min_length}, {self.max_length}")

    def with_(self, **changes) -> "Settings":
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    @classmethod
    def from_dict(cls, data: dict | None) -> "Settings":
        fields = cls.__dataclass_fields__
        return cls(**{k: v for k, v in (data or {}).items() if k in fields})


def probabilities(logits: np.ndarray, temperature: np.ndarray, top_k: np.ndarray, top_p: np.ndarray) -> np.ndarray:
    """logits (B, V), per-row settings (B,) -> float64 probabilities (B, V) after temperature and cuts.

    Rows with temperature 0 get all mass on their argmax. Every operation is row by row, so a row's
    result does not depend on the other rows in the batch.
    """
    z = logits.astype(np.float64)
    greedy = temperature <= 0
    t = np.where(greedy, 1.0, temperature)[:, None]
    z = z / t
    z -= z.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    B, V = p.shape
    order = np.argsort(-p, axis=1, kind="stable")  # (B, V) most likely first, ties by index
    sorted_p = np.take_along_axis(p, order, axis=1)
    rank = np.arange(V)[None, :]
    keep = np.ones((B, V), bool)
    k = np.where(top_k > 0, top_k, V)[:, None]
    keep &= rank < k
    # keep the smallest head whose mass reaches top_p (the first token always stays)
    before = np.cumsum(sorted_p, axis=1) - sorted_p
    keep &= (before < top_p[:, None]) | (rank == 0)
    keep |= rank == 0
    keep[greedy] = rank[0] == 0
    sorted_p = np.where(keep, sorted_p, 0.0)
    out = np.zeros_like(p)
    np.put_along_axis(out, order, sorted_p, axis=1)
    out /= out.sum(axis=1, keepdims=True)
    return out


def choose(p: np.ndarray, u: np.ndarray) -> np.ndarray:
    """p (B, V) probabilities, u (B,) uniform draws in [0, 1) -> chosen ids (B,)."""
    cum = np.cumsum(p, axis=1)
    ids = (cum <= u[:, None] * cum[:, -1:]).sum(axis=1)
    # never pick a zero-probability tail through rounding
    last = p.shape[1] - 1 - np.argmax(p[:, ::-1] > 0, axis=1)
    return np.minimum(ids, last)
