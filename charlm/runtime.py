"""The inference runtime: a Keras char-model run in numpy, one step per character, state carried.

Supported layers (a linear stack): InputLayer, Embedding (first), LSTM, GRU (reset_after either way),
Dense, Dropout (inert at inference), Activation, TimeDistributed(Dense). A final softmax is dropped so
that `step` returns logits. Anything else is refused by name at load time.

Batch invariance by exact arithmetic: a proverb is the same whether it was generated alone or in a batch
of 64, on one BLAS thread or sixteen, with whatever kernel BLAS picks for the shape. Every matrix product
is computed on integers (`Exact`, `product`): each weight column is stored as whole numbers times a
power-of-two step, each input row is rounded to whole numbers of a power-of-two quantum of its own
magnitude, and the bounds make every partial sum a whole number below 2**24, which float32 holds exactly.
An exact sum is the same in any order, so the plain `(B, d) @ (d, n)` BLAS call (gemm for a batch, gemv
for a row) gives a row the same bits beside any batch-mates; the steps and quanta are powers of two, so
scaling back is exact too. Only the rounding of the weights and inputs changes the model, and it is
deterministic and elementwise.

What the rounding costs, measured on the shipped 2 x 384 bundles (held-out bits/char, same texts):
armenian 2.1383 -> 2.1383, sufi 1.9287 -> 1.9288, aphorism 1.807 -> 1.807 (float32 per-row products ->
exact products). What it buys: the products of a batch are one gemm instead of one gemv per row (the
round-1 way to invariance, which read the whole weight matrix once per row; bench/generate.py measures
both).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from .errors import BundleError

SUPPORTED = ("InputLayer", "Embedding", "LSTM", "GRU", "Dense", "Dropout", "Activation", "TimeDistributed")

EXACT = 2**24  # float32 holds every whole number up to this exactly
_TOPS = {b: np.float32(2**b) for b in range(25)}  # made once: a numpy scalar costs ~1 us to make
# From this many rows, one gemm for the batch; below, one gemv per row. Free to choose because the result is
# the same bits either way (exact sums). Why 8: runtime.step of a 2 x 256 / 2 x 384 model (joint products,
# one BLAS thread) took 239 / 433 us at 4 rows one gemv each against 265 / 520 as one gemm, 436 / 818 against
# 354 / 709 at 8 rows (timeit on the development machine, OpenBLAS 0.3.31, SkylakeX kernels, AMD EPYC).
GEMM_ROWS = 8
# OpenBLAS' sgemm works on the batch in blocks of 8 columns, and a last block of 5-7 costs more than a whole
# one: (2048, 256) @ (256, B) took 294 / 342 us at B = 13 / 15 and 213 at 16. Padding such a batch with zero
# rows to the next multiple of 8 (their products are zeros, and no row's sums change) takes the fast path.
PAD_FROM = 5


def _sigmoid(x):
    e = np.negative(x)  # 1 / (1 + exp(-x)), in place: the same float32 operations, one array
    np.exp(e, out=e)
    e += 1.0
    return np.divide(1.0, e, out=e)


def _hard_sigmoid(x):  # Keras 3: relu6(x + 3) / 6
    return np.clip(x / 6.0 + 0.5, 0.0, 1.0)


ACTIVATIONS = {
    "tanh": np.tanh,
    "sigmoid": _sigmoid,
    "hard_sigmoid": _hard_sigmoid,
    "relu": lambda x: np.maximum(x, 0.0),
    "linear": lambda x: x,
    None: lambda x: x,
}


def _activation(path, name, layer):
    if isinstance(name, dict):  # serialized activation object
        name = name.get("config", {}).get("name") or name.get("class_name")
    if name not in ACTIVATIONS:
        raise BundleError(path, f"layer {layer!r}: unsupported activation {name!r}")
    return ACTIVATIONS[name]


@dataclass(frozen=True)
class Exact:
    """A weight matrix w (d, n) prepared for exact products: w ≈ q * step, column by column.

    Inputs are rounded to `bits` bits of their row's power-of-two bound (|a| <= 2**bits), and each column's
    step is the smallest power of two with sum(|q[:, j]|) <= 2**24 / 2**bits, so |sum_i a_i q_ij| <= 2**24
    in every partial sum, whatever the order. `bits` splits the 24 bits between inputs and weights: about
    half each, after the ~log2(d / 4) a column's sum spends (a Gaussian column's L1 norm is ~0.2 d times
    its largest entry): 8 bits at d = 384 (inputs to 1/256 of their row's bound, the largest weights to
    ~1/800), 11 at d = 12.
    """

    qt: np.ndarray  # (n, d) float32, whole numbers: the matrix transposed, C-contiguous (see _whole)
    step: np.ndarray  # (n,) float32, powers of two
    bits: int
    unit: bool  # inputs lie in [-1, 1] (tanh/sigmoid outputs): one fixed quantum 2**-bits, no per-row bound
    unit_step: np.ndarray  # (n,) step * 2**-bits, the scale back on the unit path

    @property
    def top(self) -> np.float32:  # 2**bits, the largest whole number an input becomes
        return _TOPS[self.bits]

    @classmethod
    def of(cls, w: np.ndarray, unit: bool = False) -> "Exact":
        d = w.shape[0]
        bits = int(np.clip((26 - int(np.ceil(np.log2(max(d, 2))))) // 2, 4, 12))
        budget = EXACT >> bits
        w = np.asarray(w, np.float32)
        l1 = np.abs(w).astype(np.float64).sum(axis=0)  # (n,)
        # a first guess two steps below the answer, then up until the exact sum fits: w / 2**e and rint are
        # exact, and so is the float64 sum of the whole numbers, so the choice is the same on any machine
        e = np.floor(np.log2(np.maximum(l1, 1e-30) / budget)).astype(np.int32) - 2
        todo = np.ones(w.shape[1], bool)
        while todo.any():
            cols = np.flatnonzero(todo)
            q = np.rint(np.ldexp(w[:, cols], -e[cols]))
            fits = np.abs(q).astype(np.float64).sum(axis=0) <= budget
            todo[cols[fits]] = False
            e[cols[~fits]] += 1
        q = np.rint(np.ldexp(w, -e)).astype(np.float32)
        return cls(np.ascontiguousarray(q.T), np.ldexp(np.float32(1), e).astype(np.float32), bits, unit,
                   np.ldexp(np.float32(1), e - bits).astype(np.float32))

    @property
    def q(self) -> np.ndarray:  # (d, n) whole numbers, a view
        return self.qt.T

    @property
    def shape(self) -> tuple[int, int]:
        return self.q.shape

    def columns(self, cols: slice) -> "Exact":
        """The product with w[:, cols] (the columns keep their own steps); views, no copy."""
        return Exact(self.qt[cols], self.step[cols], self.bits, self.unit, self.unit_step[cols])

    @classmethod
    def side_by_side(cls, *parts: "Exact") -> "Exact":
        """The product with [w1 | w2 | ...]: one matrix for inputs rounded alike (same bits and path). Each
        column keeps its step and its bound, so every column of the result has the bits it had alone."""
        if len({(p.bits, p.unit, p.shape[0]) for p in parts}) != 1:
            raise ValueError("side_by_side: the parts must take the same inputs (rows, bits, unit)")
        return cls(np.concatenate([p.qt for p in parts]), np.concatenate([p.step for p in parts]), parts[0].bits,
                   parts[0].unit, np.concatenate([p.unit_step for p in parts]))


def _whole(a: np.ndarray, qt: np.ndarray) -> np.ndarray:
    """a (B, d) @ qt.T (d, n), both whole numbers, every partial sum of magnitude <= 2**24: exact, in any order."""
    B = len(a)
    if B < GEMM_ROWS:
        return np.matmul(qt, a[:, :, None])[:, :, 0]  # (B, n), one gemv per row
    if B % 8 < PAD_FROM:
        return (qt @ np.ascontiguousarray(a.T)).T  # (B, n), one gemm
    at = np.zeros((a.shape[1], B + 8 - B % 8), np.float32)  # (d, B rounded up to 8)
    at[:, :B] = a.T
    return (qt @ at)[:, :B].T  # (B, n)


def product(x: np.ndarray, w: Exact) -> np.ndarray:
    """(B, d) @ w (d, n) -> (B, n) float32, computed exactly on whole numbers: a row's result depends on
    the row alone (not on the batch, its position, BLAS' kernel or thread count)."""
    if w.unit:  # |x| <= 1: a = round(x * 2**bits), |a| <= 2**bits
        # No clip: tanh, sigmoid and hard_sigmoid (UNIT) give |x| <= 1 and the layers' unit outputs combine
        # them by products and convex sums, so |x| <= 1 + a few ulps, which rounds to 2**bits at most (an
        # excess would have to reach 2**-(bits+1)). tests/charlm/test_batch_invariance.py checks the
        # activations' bounds on this numpy. The clip's two ufuncs cost 6 us a character at batch 1 (2 x 256,
        # 119 vs 113 us).
        a = x * w.top
        np.rint(a, out=a)
        out = _whole(a, w.qt)
        out *= w.unit_step  # exact: powers of two
        return out
    _, e = np.frexp(np.abs(x).max(axis=1))  # (B,): each row's bound, |x| <= 2**e (e = 0 for a zero row)
    np.maximum(e, w.bits - 127, out=e)  # a row below 2**-119 rounds to zeros rather than overflow the scale
    a = x * np.ldexp(np.float32(1), w.bits - e)[:, None].astype(np.float32)  # |a| <= 2**bits, exact scaling
    np.rint(a, out=a)
    out = _whole(a, w.qt)
    out *= w.step
    out *= np.ldexp(np.float32(1), e - w.bits)[:, None].astype(np.float32)
    return out


def to_snake_case(name: str) -> str:
    """Keras' own rule for naming a layer's group in a .weights.h5 file."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


@dataclass
class _Embedding:
    table: np.ndarray  # (vocab, dim)


UNIT = (np.tanh, _sigmoid, _hard_sigmoid)  # activations whose outputs lie in [-1, 1]
GATES = (_sigmoid, _hard_sigmoid)  # gate activations in [0, 1]


def _exact(w, unit: bool):
    return w if w is None or isinstance(w, Exact) else Exact.of(w, unit)


@dataclass
class _LSTM:
    kernel: np.ndarray | Exact | None  # (in, 4u), gates i, f, c, o; None once folded into the runtime's table
    recurrent: np.ndarray | Exact  # (u, 4u)
    bias: np.ndarray  # (4u,)
    act: object
    rec_act: object

    def prepare(self, first: bool, unit_in: bool) -> None:
        """Weights -> `Exact` matrices for stepping (the first layer's kernel is folded into the table).
        unit_in: the layer's inputs lie in [-1, 1]."""
        self.kernel = None if first else _exact(self.kernel, unit_in)
        self.recurrent = _exact(self.recurrent, self.unit_out)
        self.units = self.recurrent.shape[0]  # a plain attribute: read twice a step

    @property
    def unit_out(self) -> bool:  # h = o * act(c), o a gate in [0, 1]
        return self.act in UNIT and self.rec_act in GATES

    def state(self, batch):
        """(c, r): the cell, and the recurrent product of the last output (zero for h = 0, as product gives)."""
        return (np.zeros((batch, self.units), np.float32), np.zeros((batch, 4 * self.units), np.float32))

    def step(self, xw, state):
        """xw: (B, 4u) input projection incl. bias; state (c, r) -> (h, c). The runtime makes the next r."""
        c, r = state
        z = r + xw  # (B, 4u), a new array: product(h, recurrent) + xw, as one layer alone computes it
        u = self.units
        gates = self.rec_act(z)  # (B, 4u): one call for i, f and o (the g slot is computed and unused)
        i, f, o = gates[:, :u], gates[:, u : 2 * u], gates[:, 3 * u :]
        g = self.act(z[:, 2 * u : 3 * u])
        c = f * c
        c += i * g
        h = o * self.act(c)  # not in place: a linear activation would return c itself
        return h, c


@dataclass
class _GRU:
    kernel: np.ndarray | Exact | None  # (in, 3u), gates z, r, h; None once folded into the runtime's table
    recurrent: np.ndarray | Exact  # (u, 3u)
    bias: np.ndarray  # input bias (3u,)
    rec_bias: np.ndarray  # recurrent bias (3u,), zeros when reset_after is False
    reset_after: bool
    act: object
    rec_act: object

    def prepare(self, first: bool, unit_in: bool) -> None:
        self.kernel = None if first else _exact(self.kernel, unit_in)
        self.recurrent = _exact(self.recurrent, self.unit_out)
        u = self.units
        # reset_after=False multiplies the z and r columns by h but the h columns by r * h: two products
        self._zr, self._h = self.recurrent.columns(slice(0, 2 * u)), self.recurrent.columns(slice(2 * u, None))

    @property
    def unit_out(self) -> bool:  # h = z * h + (1 - z) * act(...) from h = 0, z a gate in [0, 1]
        return self.act in UNIT and self.rec_act in GATES

    @property
    def units(self) -> int:
        return self.recurrent.shape[0]

    def state(self, batch):
        return (np.zeros((batch, self.units), np.float32),)

    def step(self, xw, state):
        (h,) = state
        u = self.units
        if self.reset_after:
            hu = product(h, self.recurrent) + self.rec_bias
            z = self.rec_act(xw[:, :u] + hu[:, :u])
            r = self.rec_act(xw[:, u : 2 * u] + hu[:, u : 2 * u])
            hh = self.act(xw[:, 2 * u :] + r * hu[:, 2 * u :])
        else:
            hu = product(h, self._zr)
            z = self.rec_act(xw[:, :u] + hu[:, :u])
            r = self.rec_act(xw[:, u : 2 * u] + hu[:, u:])
            hh = self.act(xw[:, 2 * u :] + product(r * h, self._h))
        h = z * h + (1.0 - z) * hh
        return h, (h,)


@dataclass
class _Dense:
    kernel: np.ndarray | Exact | None  # (in, out); None for a bare Activation
    bias: np.ndarray  # (out,)
    act: object

    def prepare(self, first: bool, unit_in: bool) -> None:
        self.kernel = _exact(self.kernel, unit_in)

    @property
    def unit_out(self) -> bool:
        return self.act in UNIT


class Runtime:
    """A loaded char model: `step(ids, state) -> (logits, state)` for a batch of sequences."""

    def __init__(self, table: np.ndarray, layers: list, vocab_size: int):
        # table: (vocab, first projection) — the embedding, already multiplied through the first
        # recurrent layer's kernel and bias when there is one (one lookup instead of a matmul per step).
        # The layers' weights become `Exact` matrices here (~3 ms per 384 x 1536 matrix).
        self.table = table
        self.layers = layers
        self.vocab_size = vocab_size
        unit = False  # the table's rows (embeddings) are not bounded
        for i, layer in enumerate(layers):
            layer.prepare(first=i == 0 and isinstance(layer, (_LSTM, _GRU)), unit_in=unit)
            unit = layer.unit_out
        # An LSTM's output h is read twice: by the next layer's kernel now and by its own recurrent matrix at
        # the next step. Both products take h rounded alike (same rows, bits, path), so one product with the
        # two side by side gives each column its bits: one rounding of h and one BLAS call instead of two
        # (2 x 256, batch 1: runtime.step 91 -> ~80 us; bench/generate.py measures it). The layers keep views.
        # Per layer: (the joint matrix, how many of its columns are the next layer's), or None.
        self._joint: list[tuple[Exact, int] | None] = [None] * len(layers)
        for i, (layer, after) in enumerate(zip(layers, layers[1:])):
            if isinstance(layer, _LSTM) and isinstance(after.kernel, Exact):  # unit and bits agree: both read h
                joint = Exact.side_by_side(after.kernel, layer.recurrent)
                n = after.kernel.shape[1]
                after.kernel, layer.recurrent = joint.columns(slice(0, n)), joint.columns(slice(n, None))
                self._joint[i] = (joint, n)

    # --- loading -------------------------------------------------------------------------------
    @classmethod
    def load(cls, model_json: str | Path, weights: str | Path) -> "Runtime":
        """Read model.json + model.weights.h5; refuse anything unsupported, naming it."""
        model_json, weights = Path(model_json), Path(weights)
        try:
            spec = json.loads(model_json.read_text(encoding="utf-8"))
            layer_specs = spec["config"]["layers"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise BundleError(model_json, f"not a Keras model JSON ({e.__class__.__name__}: {e})") from None
        _check_linear(model_json, spec, layer_specs)
        try:
            h5 = h5py.File(weights, "r")
        except OSError as e:
            raise BundleError(weights, f"not an HDF5 weights file ({e})") from None
        with h5:
            return cls._build(model_json, weights, layer_specs, h5)

    @classmethod
    def _build(cls, model_json, weights, layer_specs, h5) -> "Runtime":
        used: dict[str, int] = {}
        built: list[tuple[object, bool]] = []  # (the layer, or None for a bare softmax; whether a softmax ends it)
        for ls in layer_specs:
            kind = ls.get("class_name")
            cfg = ls.get("config", {})
            name = cfg.get("name", kind)
            group = to_snake_case(kind)
            if group in used:
                used[group] += 1
                group = f"{group}_{used[group]}"
            else:
                used[group] = 0
            if kind not in SUPPORTED:
                raise BundleError(model_json, f"unsupported layer {kind} ({name!r}); supported: {', '.join(SUPPORTED)}")
            if kind == "TimeDistributed":
                inner = cfg.get("layer", {})
                if inner.get("class_name") != "Dense":
                    raise BundleError(model_json, f"unsupported layer TimeDistributed({inner.get('class_name')}) ({name!r})")
                kind, cfg = "Dense", {**inner.get("config", {}), "name": name}
            if kind in ("InputLayer", "Dropout"):
                continue
            if kind in ("LSTM", "GRU") and cfg.get("go_backwards"):
                raise BundleError(model_json, f"layer {name!r}: go_backwards is not supported")
            v = [] if kind == "Activation" else _vars(weights, h5, group, name)
            try:
                if kind == "Embedding":
                    built.append((_Embedding(v[0]), False))
                elif kind == "LSTM":
                    act = _activation(model_json, cfg.get("activation", "tanh"), name)
                    rec = _activation(model_json, cfg.get("recurrent_activation", "sigmoid"), name)
                    bias = v[2] if len(v) > 2 else np.zeros(v[0].shape[1], np.float32)
                    built.append((_LSTM(v[0], v[1], bias, act, rec), False))
                elif kind == "GRU":
                    act = _activation(model_json, cfg.get("activation", "tanh"), name)
                    rec = _activation(model_json, cfg.get("recurrent_activation", "sigmoid"), name)
                    reset_after = bool(cfg.get("reset_after", True))
                    n = v[0].shape[1]
                    if len(v) > 2:
                        b = v[2]
                        bias, rbias = (b[0], b[1]) if b.ndim == 2 else (b, np.zeros(n, np.float32))
                    else:
                        bias, rbias = np.zeros(n, np.float32), np.zeros(n, np.float32)
                    built.append((_GRU(v[0], v[1], bias, rbias, reset_after, act, rec), False))
                elif kind == "Dense":
                    act_name = cfg.get("activation", "linear")
                    bias = v[1] if len(v) > 1 else np.zeros(v[0].shape[1], np.float32)
                    softmax = act_name == "softmax"
                    act = ACTIVATIONS["linear"] if softmax else _activation(model_json, act_name, name)
                    built.append((_Dense(v[0], bias, act), softmax))
                elif kind == "Activation":
                    act_name = cfg.get("activation")
                    if act_name == "softmax":
                        built.append((None, True))
                    else:
                        built.append((_Dense(None, None, _activation(model_json, act_name, name)), False))
            except IndexError:
                raise BundleError(weights, f"layer {name!r}: too few weight arrays ({len(v)})") from None
        return cls._assemble(model_json, weights, built)

    @classmethod
    def _assemble(cls, model_json, weights, built) -> "Runtime":
        if not built or not isinstance(built[0][0], _Embedding):
            raise BundleError(model_json, "the first layer must be an Embedding (integer character ids in)")
        # A softmax may only close the model; it is dropped (a Dense keeps its linear part) so the runtime
        # returns logits.
        if any(softmax for _, softmax in built[:-1]):
            raise BundleError(model_json, "softmax is only supported as the model's last activation")
        layers = [layer for layer, _ in built if layer is not None]
        emb = layers[0].table
        vocab, width = emb.shape
        rest = layers[1:]
        for layer in rest:  # shapes chain
            if isinstance(layer, (_LSTM, _GRU, _Dense)) and layer.kernel is not None:
                if layer.kernel.shape[0] != width:
                    raise BundleError(weights, f"layer input size {layer.kernel.shape[0]} does not match the previous output size {width}")
                width = layer.kernel.shape[1] // (4 if isinstance(layer, _LSTM) else 3 if isinstance(layer, _GRU) else 1)
        if width != vocab:
            raise BundleError(weights, f"output units ({width}) differ from the embedding's rows ({vocab})")
        table = emb.astype(np.float32)
        if rest and isinstance(rest[0], (_LSTM, _GRU)):
            first = rest[0]
            table = (table.astype(np.float64) @ first.kernel + first.bias).astype(np.float32)
        return cls(table, rest, vocab)

    # --- running ---------------------------------------------------------------------------------
    def initial_state(self, batch: int) -> list:
        """Zero state for `batch` sequences: one tuple per recurrent layer."""
        return [l.state(batch) if isinstance(l, (_LSTM, _GRU)) else () for l in self.layers]

    def step(self, ids: np.ndarray, state: list) -> tuple[np.ndarray, list]:
        """ids: (B,) int -> logits (B, vocab) float32 in row-major order, and the new state.

        Row-major because a gemm's product comes back column-major (`_whole`), and numpy sums a row of a
        column-major array one element at a time instead of pairwise: the same logits would give a row other
        float64 probabilities (and sometimes another draw) in a batch of 8 or more than alone."""
        x = self.table.take(ids, axis=0)  # (B, first projection); ~3x cheaper than table[ids] at a few rows
        ahead = None  # this layer's input product, when the layer before made it beside its own recurrent one
        new_state = []
        for i, layer in enumerate(self.layers):
            if layer.kernel is not None:
                xw = ahead if ahead is not None else product(x, layer.kernel)  # (B, n), ours to change
                xw += layer.bias
            else:
                xw = x  # the first recurrent layer: the table holds its input projection, bias included
            ahead = None
            if isinstance(layer, _LSTM):
                x, c = layer.step(xw, state[i])
                if self._joint[i] is not None:  # one product of h with [next kernel | own recurrent]
                    joint, n = self._joint[i]
                    p = product(x, joint)
                    ahead, r = p[:, :n], p[:, n:]
                else:
                    r = product(x, layer.recurrent)
                new_state.append((c, r))
            elif isinstance(layer, _GRU):
                x, s = layer.step(xw, state[i])
                new_state.append(s)
            else:
                x = layer.act(xw)
                new_state.append(())
        return np.ascontiguousarray(x), new_state

    @staticmethod
    def select(state: list, rows) -> list:
        """The state of a subset of rows (to drop finished sequences from a batch)."""
        return [tuple(a[rows] for a in s) for s in state]

    def forward(self, ids: np.ndarray) -> np.ndarray:
        """ids: (B, T) -> logits (B, T, vocab), stepping through time; for tests and evaluation."""
        ids = np.asarray(ids)
        state = self.initial_state(ids.shape[0])
        out = np.empty((ids.shape[0], ids.shape[1], self.vocab_size), np.float32)
        for t in range(ids.shape[1]):
            out[:, t], state = self.step(ids[:, t], state)
        return out


def _vars(weights, h5, group: str, name: str) -> list[np.ndarray]:
    """The arrays of one layer, in Keras' order, from `layers/<group>/.../vars/<i>`."""
    root = h5.get(f"layers/{group}")
    if root is None:
        raise BundleError(weights, f"no weights for layer {name!r} (expected group layers/{group})")
    found = []
    root.visititems(lambda p, o: found.append(o) if isinstance(o, h5py.Group) and p.split("/")[-1] == "vars" else None)
    groups = [g for g in found if len(g)]
    if len(groups) != 1:
        raise BundleError(weights, f"layer {name!r}: expected one set of weights under layers/{group}, found {len(groups)}")
    g = groups[0]
    return [np.asarray(g[str(i)], dtype=np.float32) for i in range(len(g))]


def _check_linear(path, spec, layer_specs) -> None:
    if spec.get("class_name") not in ("Sequential", "Functional", "Model"):
        raise BundleError(path, f"unsupported model class {spec.get('class_name')!r}")
    if spec.get("class_name") == "Sequential":
        return
    prev = None
    for ls in layer_specs:
        nodes = ls.get("inbound_nodes") or []
        if len(nodes) > 1:
            raise BundleError(path, f"layer {ls.get('name')!r} is shared; only a linear stack is supported")
        if nodes:
            args = nodes[0].get("args", [])
            srcs = [a.get("config", {}).get("keras_history", [None])[0] for a in args if isinstance(a, dict)]
            if srcs != [prev]:
                raise BundleError(path, f"layer {ls.get('name')!r} does not follow {prev!r}; only a linear stack is supported")
        prev = ls.get("name")
