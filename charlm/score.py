"""How likely a model finds whole texts: each text primed like a new proverb and scored on every character.

The best-of-N choice (charlm.candidates) prefers, among candidates equal on the checks that come first, the one
the model itself finds most likely per character; training's held-out bits/char is the same sum over held-out
texts. Every text is its own row and the runtime's products are exact, so a text's score does not depend on
what else is scored with it.
"""

from __future__ import annotations

import numpy as np

from .charset import Charset
from .generate import start_context
from .runtime import Runtime
from .text import END


def text_nats(runtime: Runtime, charset: Charset, texts: list[str], closed: bool = False) -> list[tuple[float, int]]:
    """-> (negative log-likelihood in nats, characters scored) per text, in order; `closed` scores the END that
    closes each text too. Rows run longest first, so the running rows are a prefix and a finished one drops off."""
    if not texts:
        return []
    prime = start_context(charset)
    skip = len(prime) - 1  # predictions made while still feeding the prime are not scored
    tail = END if closed and END in charset else ""
    seqs = [charset.encode(prime + t + tail) for t in texts]
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]), reverse=True)
    steps = np.array([len(seqs[i]) - 1 for i in order])  # (rows,) predictions per row, descending
    ids = np.zeros((len(seqs), int(steps[0]) + 1), np.int64)  # (rows, longest + 1), zero padded
    for r, i in enumerate(order):
        ids[r, : len(seqs[i])] = seqs[i]
    nats = np.zeros(len(seqs), np.float64)  # (rows,) in `order`
    state = runtime.initial_state(len(seqs))
    rows = len(seqs)
    for t in range(int(steps[0])):
        live = int(np.searchsorted(-steps, -t, side="left"))  # rows with steps > t
        if live < rows:
            state = Runtime.select(state, slice(0, live))
            rows = live
        logits, state = runtime.step(ids[:rows, t], state)  # (rows, vocab), row-major
        if t < skip:  # still inside the priming context: the text's own characters start after it
            continue
        z = logits.astype(np.float64)
        z -= z.max(axis=1, keepdims=True)
        nats[:rows] += np.log(np.exp(z).sum(axis=1)) - z[np.arange(rows), ids[:rows, t + 1]]
    out: list[tuple[float, int]] = [(0.0, 0)] * len(seqs)
    for r, i in enumerate(order):
        out[i] = (float(nats[r]), int(steps[r]) - skip)
    return out
