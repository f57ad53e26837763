"""charlm.sampling against its definition: the cuts as a stable argsort of the probabilities, the way the
runtime sampled until the sorted pass learned to work on sorted values alone. Same bits, or a proverb changes."""

from __future__ import annotations

import numpy as np
import pytest

from charlm.sampling import Cuts, choose, probabilities


def definition(logits, temperature, top_k, top_p):
    """The cuts as defined: sort the tokens most likely first (ties by index), keep a token while the mass
    sorted ahead of it (summed in that order) is below top_p and it is among the first top_k."""
    z = logits.astype(np.float64)
    B, V = z.shape
    greedy = temperature <= 0
    z /= np.where(greedy, 1.0, temperature)[:, None]
    z -= z.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    order = np.argsort(-p, axis=1, kind="stable")
    rows = np.arange(B)[:, None]
    sorted_p = p[rows, order]
    before = np.cumsum(sorted_p, axis=1) - sorted_p
    keep = before < top_p[:, None]
    keep[:, 0] = True
    keep &= np.arange(V)[None, :] < np.where(top_k > 0, top_k, V)[:, None]
    keep[greedy, 1:] = False
    p[rows, order] = sorted_p * keep
    return p / p.sum(axis=1, keepdims=True)


def choose_definition(p, u):
    """The first token whose cumulative mass passes u * total, and never one past the last with mass."""
    cum = np.cumsum(p, axis=1)
    ids = (cum <= u[:, None] * cum[:, -1:]).sum(axis=1)
    last = p.shape[1] - 1 - np.argmax(p[:, ::-1] > 0, axis=1)
    return np.minimum(ids, last)


def cases(seed: int, n: int = 300):
    """(logits, temperature, top_k, top_p): sharp and flat rows, near-zero tails, ties at the cut, greedy."""
    rng = np.random.default_rng(seed)
    for _ in range(n):
        B, V = int(rng.integers(1, 9)), int(rng.choice([3, 40, 117]))
        logits = (rng.standard_normal((B, V)) * rng.choice([0.1, 2.0, 8.0, 30.0], (B, 1))).astype(np.float32)
        if rng.random() < 0.5:  # ties: a few values repeated, at any rank
            logits[:, rng.integers(0, V, V // 3)] = logits[:, rng.integers(0, V, V // 3)]
        if rng.random() < 0.3:  # coarse logits: many exact ties
            logits = np.round(logits)
        if rng.random() < 0.3:
            logits[:, rng.integers(0, V)] = -30.0  # a near-zero tail token (like a suppressed END)
        temperature = rng.choice([0.0, 0.3, 0.7, 1.0, 2.5], B)
        top_k = rng.choice([0, 0, 1, 2, 5, V, V + 3], B)
        top_p = rng.choice([1.0, 1.0, 0.99, 0.9, 0.5, 0.05], B)
        yield logits, temperature, top_k, top_p
    no_cut = lambda B: (np.ones(B), np.zeros(B, np.int64), np.ones(B))  # noqa: E731
    for _ in range(n // 3):
        B, V = int(rng.integers(2, 9)), int(rng.choice([40, 117]))
        flat = (rng.standard_normal((B, V)) * 0.1).astype(np.float32)
        yield flat, *no_cut(B)  # no cut asked for and nothing near zero: the unsorted path, rows together
        # one token per row whose share lies within the rounding of the total (p ~ 1e-18 .. 1e-15): the
        # sorted pass drops some of them, and only there does the unsorted path's threshold matter
        flat[:, rng.integers(0, V)] = rng.uniform(-38.0, -30.0, B)
        yield flat, *no_cut(B)


def test_probabilities_are_the_definitions_bits():
    checked = 0
    for logits, t, k, p in cases(0):
        want = definition(logits, t, k, p)
        np.testing.assert_array_equal(probabilities(logits, t, k, p), want)
        cuts = Cuts(t, k, p)  # prepared once, used for several steps
        for _ in range(2):
            np.testing.assert_array_equal(cuts.probabilities(logits), want)
        checked += 1
    assert checked == 500


def test_a_tie_across_the_cut_keeps_the_lower_index():
    # four equal tokens, top-k 2: the first two by index stay, whatever their position
    logits = np.array([[0.0, 1.0, 3.0, 1.0, 1.0, 1.0]], np.float32)
    p = probabilities(logits, np.array([1.0]), np.array([3]), np.array([1.0]))
    assert (p[0] > 0).tolist() == [False, True, True, True, False, False]
    np.testing.assert_array_equal(p, definition(logits, np.array([1.0]), np.array([3]), np.array([1.0])))


def test_choose_is_the_definitions_pick_for_any_draw_up_to_one():
    # nextafter(1, 0) is the largest draw Generator.random() gives; 1.0 itself passes every token, and the
    # pick must still be the last token with mass, not a dropped tail
    rng = np.random.default_rng(1)
    edges = 0
    for logits, t, k, p in cases(2):
        probs = probabilities(logits, t, k, p)
        B = len(t)
        for u in (rng.random(B), np.full(B, np.nextafter(1.0, 0.0)), np.ones(B), np.zeros(B)):
            got = choose(probs, u)
            np.testing.assert_array_equal(got, choose_definition(probs, u))
            assert (probs[np.arange(B), got] > 0).all()
        edges += int((probs[:, -1] == 0).any())
    assert edges > 20  # cases whose last token was cut, where a draw of 1 would land on it


@pytest.mark.parametrize("u", [0.0, 0.3, 0.999999])
def test_choose_never_picks_a_dropped_token(u):
    p = probabilities(np.array([[5.0, 4.0, -30.0, 3.0]], np.float32), np.array([1.0]), np.array([2]), np.array([1.0]))
    assert choose(p, np.array([u]))[0] in (0, 1)


def test_a_nan_row_does_not_change_its_batch_mates():
    # a temperature so small that logits / t overflow (1e-310 passes validation) makes its row NaN; a tied
    # greedy row beside it must keep its own answer
    logits = np.array([[2.0, 1.0, 0.0], [1.0, 3.0, 3.0]], np.float32)
    with np.errstate(all="ignore"):
        both = probabilities(logits, np.array([1e-310, 0.0]), np.array([0, 0]), np.array([1.0, 1.0]))
    alone = probabilities(logits[1:], np.array([0.0]), np.array([0]), np.array([1.0]))
    np.testing.assert_array_equal(both[1], alone[0])
    assert alone[0].tolist() == [0.0, 1.0, 0.0]


def test_prepared_cuts_follow_a_change_of_vocabulary():
    cuts = Cuts(np.array([1.0, 0.8]), np.array([4, 5]), np.array([1.0, 0.95]))
    rng = np.random.default_rng(7)
    for V in (6, 3, 9):
        logits = rng.standard_normal((2, V)).astype(np.float32)
        np.testing.assert_array_equal(cuts.probabilities(logits),
                                      definition(logits, np.array([1.0, 0.8]), np.array([4, 5]), np.array([1.0, 0.95])))

