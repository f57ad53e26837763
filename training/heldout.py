"""Held-out bits per character with full context, through charlm: how training.train decides whether a new
bundle replaces the installed one, and how training.evaluate reports a bundle (the same number both ways)."""

from __future__ import annotations

import math

import numpy as np

from charlm import Charset, Runtime
from charlm.generate import start_context
from charlm.text import END

LN2 = math.log(2)


def heldout_bpc(runtime: Runtime, charset: Charset, texts: list[str]) -> tuple[float | None, int]:
    """Full-context bits/char of `texts` under `runtime`: -> (bpc, characters scored).

    Each text is one row, primed with the start-of-text context and scored on every character and the END
    that closes it. Rows are sorted longest first, so the rows still running are always a prefix of the batch
    and a finished row simply drops off (no padding is computed).
    """
    if not texts:
        return None, 0
    prime = start_context(charset)
    skip = len(prime) - 1  # predictions made while still feeding the prime are not scored
    tail = END if END in charset else ""
    seqs = sorted((charset.encode(prime + t + tail) for t in texts), key=len, reverse=True)
    steps = np.array([len(s) - 1 for s in seqs])  # (rows,) predictions per row, descending
    ids = np.zeros((len(seqs), steps[0] + 1), np.int64)  # (rows, longest + 1), zero padded
    for r, s in enumerate(seqs):
        ids[r, : len(s)] = s
    state = runtime.initial_state(len(seqs))
    rows = len(seqs)
    total = 0.0
    for t in range(int(steps[0])):
        live = int(np.searchsorted(-steps, -t, side="left"))  # rows with steps > t
        if live < rows:
            state = Runtime.select(state, slice(0, live))
            rows = live
        logits, state = runtime.step(ids[:rows, t], state)  # (rows, vocab)
        if t < skip:  # still inside the priming context: the text's own characters start after it
            continue
        z = logits.astype(np.float64)
        z -= z.max(axis=1, keepdims=True)
        lse = np.log(np.exp(z).sum(axis=1))
        total += float((lse - z[np.arange(rows), ids[:rows, t + 1]]).sum())
    scored = int(steps.sum()) - skip * len(seqs)
    return total / scored / LN2, scored
