"""Held-out bits per character with full context, through charlm: how training.train decides whether a new
bundle replaces the installed one, and how training.evaluate reports a bundle (the same number both ways)."""

from __future__ import annotations

import math

from charlm import Charset, Runtime
from charlm.score import text_nats

LN2 = math.log(2)


def heldout_bpc(runtime: Runtime, charset: Charset, texts: list[str]) -> tuple[float | None, int]:
    """Full-context bits/char of `texts` under `runtime`: -> (bpc, characters scored).

    Each text is one row, primed with the start-of-text context and scored on every character and the END
    that closes it. Rows are sorted longest first, so the rows still running are always a prefix of the batch
    and a finished row simply drops off (no padding is computed).
    """
    if not texts:
        return None, 0
    scores = text_nats(runtime, charset, texts, closed=True)
    scored = sum(n for _, n in scores)
    return sum(x for x, _ in scores) / scored / LN2, scored
