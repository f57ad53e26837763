"""A row's logits and text do not depend on its batch: any size 1-64, any position, rows finishing apart."""

from __future__ import annotations

import numpy as np
import pytest

from charlm import Charset, Request, Settings
from charlm import runtime as rt
from charlm.generate import _Draws, _Job, generate
from charlm.runtime import Runtime, _Dense, _GRU, _LSTM
from charlm.text import END
from tests.conftest import synthetic_text

CHARSET = Charset.from_text(synthetic_text(30, seed=7) + END)


def random_runtime(cell: str = "lstm", units: int = 96, seed: int = 0) -> Runtime:
    """Embedding -> 2 recurrent layers of `units` -> Dense(V), random weights, large enough for BLAS
    to use its blocked kernels (whose edge tiles sum differently) rather than the 16-unit test bundles."""
    rng = np.random.default_rng(seed)
    V, E, g = len(CHARSET), 64, 4 if cell == "lstm" else 3
    w = lambda *shape, s=0.15: (rng.standard_normal(shape) * s).astype(np.float32)  # noqa: E731
    table = (w(V, E, s=1.0) @ w(E, g * units)).astype(np.float32)  # the first kernel folded in, as _assemble does
    if cell == "lstm":
        layers = [_LSTM(w(E, 4 * units), w(units, 4 * units), w(4 * units), np.tanh, rt._sigmoid),
                  _LSTM(w(units, 4 * units), w(units, 4 * units), w(4 * units), np.tanh, rt._sigmoid)]
    else:
        layers = [_GRU(w(E, 3 * units), w(units, 3 * units), w(3 * units), w(3 * units), True, np.tanh, rt._sigmoid),
                  _GRU(w(units, 3 * units), w(units, 3 * units), w(3 * units), np.zeros(3 * units, np.float32), False,
                       np.tanh, rt._sigmoid)]
    return Runtime(table, layers + [_Dense(w(units, V, s=0.5), w(V), rt.ACTIVATIONS["linear"])], V)


STEPS = 6


def solo_logits(runtime: Runtime, ids: np.ndarray) -> np.ndarray:
    """ids (N, STEPS) -> logits (N, STEPS, V), each sequence stepped alone (batch 1)."""
    return np.stack([runtime.forward(ids[i : i + 1])[0] for i in range(len(ids))])


def batch_mismatches(runtime: Runtime, ids: np.ndarray, solo: np.ndarray, sizes) -> list[tuple[int, int, int]]:
    """Step batches of each size (rows drawn from ids, shuffled), dropping each row after its own number of
    steps as generation does; -> (size, step, row) wherever a row's logits differ from its solo run."""
    rng = np.random.default_rng(1)
    bad = []
    for size in sizes:
        rows = rng.choice(len(ids), size, replace=False)  # which sequences, in which order
        ends = rng.integers(2, STEPS + 1, size)  # each row finishes after this many steps
        active = np.arange(size)
        state = runtime.initial_state(size)
        for t in range(STEPS):
            logits, state = runtime.step(ids[rows[active], t], state)
            for k, r in enumerate(active):
                if not np.array_equal(logits[k], solo[rows[r], t]):
                    bad.append((size, t, int(rows[r])))
            keep = ends[active] > t + 1
            if not keep.any():
                break
            active, state = active[keep], Runtime.select(state, keep)
    return bad


@pytest.fixture(scope="module", params=["lstm", "gru"])
def case(request):
    runtime = random_runtime(request.param)
    ids = np.random.default_rng(2).integers(0, runtime.vocab_size, size=(64, STEPS))
    return runtime, ids, solo_logits(runtime, ids)


def test_logits_are_bit_identical_in_batches_of_1_to_64_with_rows_finishing_apart(case):
    runtime, ids, solo = case
    assert batch_mismatches(runtime, ids, solo, range(1, 65)) == []


def test_the_check_catches_a_batch_dependent_product(case, monkeypatch):
    # the same weights in plain float32 products, (B, d) @ (d, n) as BLAS likes: the kernel (and the order of
    # the sums) changes with B, and so do the low bits
    runtime, ids, solo = case
    monkeypatch.setattr(rt, "product", lambda x, w: x @ (w.q * w.step))
    assert batch_mismatches(runtime, ids, solo, [5, 16, 33, 64])


def exact_reference(x: np.ndarray, w: rt.Exact) -> np.ndarray:
    """What `product` must return, computed in float64 from the same whole numbers (exact at these sizes)."""
    if w.unit:
        a = np.clip(np.rint(x.astype(np.float64) * 2**w.bits), -(2**w.bits), 2**w.bits)
        return (a @ w.q.astype(np.float64)) * w.unit_step
    _, e = np.frexp(np.abs(x).max(axis=1))
    a = np.rint(np.ldexp(x.astype(np.float64), (w.bits - e)[:, None]))
    return np.ldexp((a @ w.q.astype(np.float64)) * w.step, (e - w.bits)[:, None])


@pytest.mark.parametrize("unit", [True, False])
@pytest.mark.parametrize("d", [12, 384, 768])
def test_every_product_is_exact_and_close_to_the_float_one(unit, d):
    rng = np.random.default_rng(d)
    w = (rng.standard_normal((d, 300)) * rng.uniform(0.01, 2.0, 300)).astype(np.float32)  # columns of any scale
    w[:, 7] = 0.0  # a dead column
    w[3, 8] = 40.0  # one large weight among small ones
    exact = rt.Exact.of(w, unit)
    assert np.all(np.abs(exact.q).sum(axis=0) <= rt.EXACT >> exact.bits)  # the bound every partial sum rests on
    x = np.tanh(rng.standard_normal((40, d)) * 2).astype(np.float32) if unit else \
        (rng.standard_normal((40, d)) * rng.uniform(1e-3, 1e3, (40, 1))).astype(np.float32)
    x[5] = 0.0  # a zero row (the first state)
    got = rt.product(x, exact)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, exact_reference(x, exact).astype(np.float32))
    for rows in (1, rt.GEMM_ROWS - 1, rt.GEMM_ROWS, 13, 40):  # per-row gemv, one gemm, one padded: the same bits
        np.testing.assert_array_equal(rt.product(x[:rows], exact), got[:rows])
    # what the rounding costs: a small fraction of the products' own size. The inputs' rounding dominates (8
    # bits at d >= 384): rms error / rms product 0.0015-0.0043 for tanh outputs, ~0.006 for Gaussian rows, whose
    # quantum is 1/256 of a bound up to twice their largest entry
    ref = x.astype(np.float64) @ w
    assert np.sqrt(np.mean((got - ref) ** 2) / np.mean(ref**2)) < (6e-3 if unit else 1e-2)


def test_unit_activations_stay_within_the_bound_the_unit_path_rests_on():
    # product's unit path does not clip: it needs |x| < 1 + 2**-(bits+1) from tanh / sigmoid / hard_sigmoid,
    # and from an LSTM's o * act(c) and a GRU's z * h + (1 - z) * hh built of them
    x = np.concatenate([np.linspace(-30, 30, 200001, dtype=np.float32),
                        np.array([np.inf, -np.inf, 3e38, -3e38, 88.7, -88.7, 1e-30, 0.0], np.float32)])
    with np.errstate(over="ignore"):  # exp(-x) overflows to inf for x < -88: sigmoid is then 1 / inf = 0
        for act in rt.UNIT:
            assert np.abs(act(x)).max() <= 1.0, act
        for gate in rt.GATES:
            assert gate(x).min() >= 0.0, gate
        z, h, g = rt._sigmoid(x), np.tanh(x[::-1]), np.tanh(x * 0.5)
    assert np.abs(z * h + (1.0 - z) * g).max() <= 1.0 + 2**-20
    # and the largest input rounds to the bound itself, so every partial sum stays exact
    w = rt.Exact.of(np.ones((384, 4), np.float32), unit=True)
    nearly = np.full((2, 384), np.nextafter(np.float32(1), np.float32(2)), np.float32)
    np.testing.assert_array_equal(rt.product(nearly, w), rt.product(np.ones((2, 384), np.float32), w))


def test_texts_are_the_same_alone_and_in_any_batch():
    runtime = random_runtime(seed=6)
    base = Settings(temperature=0.9, min_length=5, max_length=40)
    # mixed settings: rows finish at different steps (END, sentence ends, lengths 8..40), some greedy/cut
    reqs = [Request(100 + i, ["", "вода", "Мудрец "][i % 3],
                    base.with_(temperature=[0.9, 1.3, 0.0, 0.7][i % 4], top_k=[0, 0, 0, 7][i % 4],
                               top_p=[1.0, 0.8, 1.0, 1.0][i % 4], max_length=8 + (i * 5) % 33,
                               min_length=5))
            for i in range(64)]
    alone = [generate(runtime, CHARSET, [r])[0].text for r in reqs]
    assert len(set(alone)) > 40  # different seeds, different texts (greedy rows share theirs)
    rng = np.random.default_rng(7)
    for size in (2, 7, 8, 9, 17, 32, 64):
        pick = rng.choice(64, size, replace=False)
        got = [r.text for r in generate(runtime, CHARSET, [reqs[i] for i in pick])]
        assert got == [alone[i] for i in pick], f"batch of {size}"


def test_draws_are_the_scalar_sequence_and_the_generator_goes_on_from_there():
    jobs = [_Job(Request(seed, "", Settings()), CHARSET) for seed in (3, 4, 5)]
    settings = [Settings(min_length=20, max_length=50)] * 3
    draws = _Draws(jobs, settings)
    took = {0: [], 1: [], 2: []}
    for step in range(30):  # rows draw unevenly, as rows that still prime or have finished do
        rows = np.array([r for r in range(3) if step % (r + 1) == 0])
        for r, u in zip(rows.tolist(), draws.take(rows).tolist()):
            took[r].append(u)
    draws.rewind()
    for r, seed in enumerate((3, 4, 5)):
        ref = np.random.default_rng(seed)
        assert took[r] == [ref.random() for _ in took[r]]  # bit-identical, scalar by scalar
        assert jobs[r].rng.random() == ref.random()  # the next attempt starts where the scalar loop would


def test_a_rows_logits_do_not_depend_on_the_blas_thread_count():
    # the bot's workers run BLAS on one thread, training and `check` on one per core: the golden samples
    # reproduce in both because exact sums are the same bits however BLAS splits them between threads
    from threadpoolctl import threadpool_limits

    runtime = random_runtime(units=384)  # the shipped width: OpenBLAS splits larger products across threads
    ids = np.random.default_rng(3).integers(0, len(CHARSET), (32, STEPS))  # gemm: OpenBLAS splits it
    with threadpool_limits(1, user_api="blas"):
        one = runtime.forward(ids)
    with threadpool_limits(4, user_api="blas"):
        four = runtime.forward(ids)
    assert np.array_equal(one, four)


def test_joint_products_give_each_layer_the_bits_of_its_own_products():
    # An LSTM's output is multiplied once by [next kernel | own recurrent]; with the joint products switched
    # off (each layer's two products apart, as a stack without fusion runs) every logit must be the same bits
    ids = np.random.default_rng(5).integers(0, len(CHARSET), (40, STEPS))
    for cell in ("lstm", "gru"):
        joint = random_runtime(cell, seed=3)
        apart = random_runtime(cell, seed=3)
        fused = [j is not None for j in joint._joint]
        assert fused == ([True, True, False] if cell == "lstm" else [False, False, False])
        apart._joint = [None] * len(apart.layers)
        for rows in (1, 5, 13, 40):  # per-row gemvs, one gemm, a padded gemm
            np.testing.assert_array_equal(joint.forward(ids[:rows]), apart.forward(ids[:rows]))


def test_a_rows_probabilities_are_the_same_bits_alone_and_in_any_batch():
    # the logits being equal is not enough: the float64 sums of sampling (and of evaluation's bits/char) run
    # along a row and depend on its memory layout, which a gemm's product turns column-major
    from charlm.sampling import probabilities

    runtime = random_runtime(seed=2)
    ids = np.random.default_rng(4).integers(0, len(CHARSET), 40)
    settings = lambda n: (np.full(n, 0.9), np.zeros(n, np.int64), np.ones(n))  # noqa: E731
    solo = [probabilities(runtime.step(ids[i : i + 1], runtime.initial_state(1))[0], *settings(1))[0]
            for i in range(len(ids))]
    for rows in (3, 8, 13, 16, 40):
        logits, _ = runtime.step(ids[:rows], runtime.initial_state(rows))
        batch = probabilities(logits, *settings(rows))
        for i in range(rows):
            np.testing.assert_array_equal(batch[i], solo[i])
        np.testing.assert_array_equal(np.exp(logits.astype(np.float64)).sum(axis=1),
                                      [np.exp(s.astype(np.float64)).sum() for s in
                                       (runtime.step(ids[i : i + 1], runtime.initial_state(1))[0] for i in range(rows))])
