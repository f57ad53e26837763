"""Windows cut on the fly from integer ids: a fresh random offset and order each epoch, O(corpus) memory."""

from __future__ import annotations

import numpy as np


def split_texts(texts: list[str], val_share: float, seed: int) -> tuple[list[str], list[str]]:
    """Hold out whole texts (about `val_share` of the characters) for validation, chosen by `seed`.

    The choice depends only on the texts and the seed, so a corpus is split the same way whether it is
    trained alone or pooled with others for pretraining (no validation text leaks into pretraining).
    """
    if val_share <= 0 or len(texts) < 2:
        return list(texts), []
    order = np.random.default_rng(seed).permutation(len(texts))
    target = val_share * sum(len(t) + 1 for t in texts)
    val, size = set(), 0
    for i in order:
        if size >= target or len(val) >= len(texts) - 1:
            break
        val.add(int(i))
        size += len(texts[i]) + 1
    return [t for i, t in enumerate(texts) if i not in val], [t for i, t in enumerate(texts) if i in val]


class Windows:
    """Training batches of (inputs, targets), each (batch, window) int32, cut from `ids` per epoch.

    Epoch e uses offset and order drawn from (seed, e) alone, so any batch of any epoch can be
    recreated after a restart: the data position is just (epoch, step).
    """

    def __init__(self, ids: np.ndarray, window: int, stride: int, batch: int, seed: int):
        if len(ids) < window + 2:
            raise ValueError(f"{len(ids)} characters are too few for windows of {window}")
        self.ids = np.ascontiguousarray(ids, dtype=np.int32)
        self.window, self.stride, self.batch, self.seed = window, stride, batch, seed

    def starts(self, epoch: int) -> np.ndarray:
        """Window starts of `epoch`, shuffled: a random offset within one stride, then every stride."""
        rng = np.random.default_rng([self.seed, epoch])
        offset = int(rng.integers(0, self.stride)) if self.stride > 1 else 0
        starts = np.arange(offset, len(self.ids) - self.window - 1, self.stride, dtype=np.int64)
        return starts[rng.permutation(len(starts))]

    def steps(self, epoch: int = 0) -> int:
        return max(1, len(self.starts(epoch)) // self.batch)

    def batches(self, epoch: int, first_step: int = 0):
        """Yield (x, y) batches of `epoch`, starting at `first_step` (to resume mid-epoch)."""
        starts = self.starts(epoch)
        cols = np.arange(self.window + 1)
        for step in range(first_step, self.steps(epoch)):
            s = starts[step * self.batch : (step + 1) * self.batch]
            if len(s) == 0:
                break
            w = self.ids[s[:, None] + cols]  # (batch, window + 1), cut now, dropped after the step
            yield w[:, :-1], w[:, 1:]


def eval_windows(ids: np.ndarray, window: int, batch: int):
    """Non-overlapping (x, y) batches covering `ids` once, for validation."""
    n = (len(ids) - 1) // window
    if n == 0:
        return
    x = ids[: n * window].reshape(n, window)
    y = ids[1 : n * window + 1].reshape(n, window)
    for i in range(0, n, batch):
        yield x[i : i + batch], y[i : i + batch]
