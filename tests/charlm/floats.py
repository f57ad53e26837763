"""The runtime with plain float32 products: for checking its layer wiring against Keras to float precision,
apart from the rounding that exact products add (tests/charlm/test_runtime.py), and as the round-1 baseline
in bench/generate.py."""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import pytest

from charlm import runtime as rt


def _float(cls, w, unit: bool = False) -> rt.Exact:
    ones = np.ones(w.shape[1], np.float32)
    return cls(np.ascontiguousarray(np.asarray(w, np.float32).T), ones, 0, unit, ones)


def _per_row(x: np.ndarray, w: rt.Exact) -> np.ndarray:
    return np.matmul(w.qt, x[:, :, None])[:, :, 0]  # one gemv per row: round 1's batch invariance


@contextmanager
def float_products():
    """Inside: runtimes loaded keep the weights as stored, and products are float32, one gemv per row.
    Load and step inside the same block."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(rt.Exact, "of", classmethod(_float))
        mp.setattr(rt, "product", _per_row)
        yield
