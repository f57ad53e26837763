"""The inference runtime: a Keras char-model run in numpy, one step per character, state carried.

Supported layers (a linear stack): InputLayer, Embedding (first), LSTM, GRU (reset_after either way),
Dense, Dropout (inert at inference), Activation, TimeDistributed(Dense). A final softmax is dropped so
that `step` returns logits. Anything else is refused by name at load time.

Batch invariance: a proverb is the same whether it was generated alone or in a batch of 64. Every
matrix product goes through `_blocked`, which makes each row's product the same BLAS call whatever the
batch, so the kernel (and with it the summation order) never changes with the batch size. Two ways:

- block 1 (the default): one (1, d) @ (d, n) product per row (a gemv per row and matrix).
- fixed-shape blocks (`Runtime.set_block(runtime.probe_block())`): the rows padded to a multiple of a
  block and one (block, d) @ (d, n) gemm per block. A fixed shape is not enough on its own: OpenBLAS'
  sgemm on this project's AMD EPYC (Haswell kernels) sums the rows of a 16-row block in two different
  ways (12 rows in its main tile, 4 in an edge kernel), while every row of an 8-row block is summed
  alike. So `probe_block` picks, per machine and matrix shape, the first of BLOCKS whose every row
  position gives bit-identical results.

Why per-row is the default: each gemm call packs the whole weight matrix (~60-100 us for the 1 MB
recurrent matrix of a 256-unit LSTM, measured here, whatever the rows), so an 8-row block costs ~5x a
lone row's gemv. Blocks win only from ~10 rows of one bundle per step (8-row blocks: 0.7x the per-row
time at 32 rows, 384 units), and the bot's batches, split per culture, are mostly smaller; a proverb
asked alone would be ~4x slower. (bench/generate.py measures both.)

A second reason, measured on the shipped 2 x 384 shape: a block's bits depend on BLAS' thread count
(OpenBLAS splits a gemm between its threads differently: an 8-row block on one thread differs in low
bits from the same block on two), while a row's gemv is the same bits at any thread count. The bot's
workers run BLAS on one thread and training/`check` on one per core, so only per-row products let the
golden samples written at export reproduce in the bot (tests/charlm/test_batch_invariance.py).
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


# Candidate blocks for `probe_block`, preferred first: 8 is position-free here and pads least among
# those; 12 is OpenBLAS' main tile here; 16 is not position-free here (see the module docstring).
BLOCKS = (8, 12, 4, 16, 2)
_BLOCK_CACHE: dict[tuple[int, int], int] = {}


def _blocked(x: np.ndarray, w: np.ndarray, block: int) -> np.ndarray:
    """(B, d) @ (d, n) -> (B, n) as zero-padded (block, d) @ (d, n) BLAS calls, one per block of rows.

    A row's result depends only on the row (given `block_size`'s probe): neither on the batch size, nor on
    its neighbours, nor on its position. block 1: one (1, d) @ (d, n) product per row.
    """
    if block == 1:
        return np.matmul(x[:, None, :], w)[:, 0, :]
    B, d = x.shape
    P = -(-B // block) * block
    if P != B:
        xp = np.zeros((P, d), np.float32)
        xp[:B] = x
    else:
        xp = np.ascontiguousarray(x, np.float32)
    return np.matmul(xp.reshape(P // block, block, d), w).reshape(P, w.shape[1])[:B]  # (B, n), contiguous


def _position_free(w: np.ndarray, block: int) -> bool:
    """True if every row of a `block`-row product comes out bit-identical at every position in the block,
    beside any neighbours (zeros, or other rows), and alone in a zero-padded block."""
    x = np.random.default_rng(block).standard_normal((block, w.shape[0])).astype(np.float32)  # (block, d)
    ref = _blocked(x, w, block)
    for shift in range(1, block):  # every row through every position, the others as its neighbours
        if not np.array_equal(_blocked(np.roll(x, shift, axis=0), w, block), np.roll(ref, shift, axis=0)):
            return False
    return all(np.array_equal(_blocked(x[i : i + 1], w, block)[0], ref[i]) for i in range(block))


def block_size(weights: list[np.ndarray]) -> int:
    """The block `_blocked` uses for products with each of `weights` (d, n) on this machine: the first of
    BLOCKS that is position-free for all of them, else 1. Probed once per shape (~1 ms per matrix)."""
    for b in BLOCKS:
        ok = True
        for w in weights:
            key = (w.shape, w.strides, b)
            if key not in _BLOCK_CACHE:
                _BLOCK_CACHE[key] = _position_free(w, b)
            ok = ok and _BLOCK_CACHE[key]
        if ok:
            return b
    return 1


def to_snake_case(name: str) -> str:
    """Keras' own rule for naming a layer's group in a .weights.h5 file."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


@dataclass
class _Embedding:
    table: np.ndarray  # (vocab, dim)


@dataclass
class _LSTM:
    kernel: np.ndarray  # (in, 4u), gates i, f, c, o
    recurrent: np.ndarray  # (u, 4u)
    bias: np.ndarray  # (4u,)
    act: object
    rec_act: object
    block: int = 1  # rows per BLAS call (Runtime sets it)

    def products(self) -> list:
        return [self.recurrent]

    @property
    def units(self) -> int:
        return self.recurrent.shape[0]

    def state(self, batch):
        z = np.zeros((batch, self.units), np.float32)
        return (z, z.copy())

    def step(self, xw, state):
        """xw: (B, 4u) input projection incl. bias; state (h, c) -> (h, (h, c))."""
        h, c = state
        z = _blocked(h, self.recurrent, self.block)  # (B, 4u), a new array
        z += xw
        u = self.units
        gates = self.rec_act(z)  # (B, 4u): one call for i, f and o (the g slot is computed and unused)
        i, f, o = gates[:, :u], gates[:, u : 2 * u], gates[:, 3 * u :]
        g = self.act(z[:, 2 * u : 3 * u])
        c = f * c
        c += i * g
        h = o * self.act(c)  # not in place: a linear activation would return c itself
        return h, (h, c)


@dataclass
class _GRU:
    kernel: np.ndarray  # (in, 3u), gates z, r, h
    recurrent: np.ndarray  # (u, 3u)
    bias: np.ndarray  # input bias (3u,)
    rec_bias: np.ndarray  # recurrent bias (3u,), zeros when reset_after is False
    reset_after: bool
    act: object
    rec_act: object
    block: int = 1  # rows per BLAS call (Runtime sets it)

    def products(self) -> list:
        u = self.units
        return [self.recurrent] if self.reset_after else [self.recurrent[:, : 2 * u], self.recurrent[:, 2 * u :]]

    @property
    def units(self) -> int:
        return self.recurrent.shape[0]

    def state(self, batch):
        return (np.zeros((batch, self.units), np.float32),)

    def step(self, xw, state):
        (h,) = state
        u = self.units
        if self.reset_after:
            hu = _blocked(h, self.recurrent, self.block) + self.rec_bias
            z = self.rec_act(xw[:, :u] + hu[:, :u])
            r = self.rec_act(xw[:, u : 2 * u] + hu[:, u : 2 * u])
            hh = self.act(xw[:, 2 * u :] + r * hu[:, 2 * u :])
        else:
            hu = _blocked(h, self.recurrent[:, : 2 * u], self.block)
            z = self.rec_act(xw[:, :u] + hu[:, :u])
            r = self.rec_act(xw[:, u : 2 * u] + hu[:, u:])
            hh = self.act(xw[:, 2 * u :] + _blocked(r * h, self.recurrent[:, 2 * u :], self.block))
        h = z * h + (1.0 - z) * hh
        return h, (h,)


@dataclass
class _Dense:
    kernel: np.ndarray  # (in, out)
    bias: np.ndarray  # (out,)
    act: object


class Runtime:
    """A loaded char model: `step(ids, state) -> (logits, state)` for a batch of sequences."""

    def __init__(self, table: np.ndarray, layers: list, vocab_size: int, block: int = 1):
        # table: (vocab, first projection) — the embedding, already multiplied through the first
        # recurrent layer's kernel and bias when there is one (one lookup instead of a matmul per step).
        self.table = table
        self.layers = layers
        self.vocab_size = vocab_size
        self.set_block(block)

    def weights(self) -> list[np.ndarray]:
        """Every matrix a step multiplies by (the first recurrent layer's kernel is folded into `table`)."""
        layers = self.layers
        out = [l.kernel for i, l in enumerate(layers) if i and l.kernel is not None]
        if layers and isinstance(layers[0], _Dense) and layers[0].kernel is not None:
            out.append(layers[0].kernel)
        return out + [w for l in layers if isinstance(l, (_LSTM, _GRU)) for w in l.products()]

    def probe_block(self) -> int:
        """The fixed-shape block that is position-free for every matrix of this model here (1 if none)."""
        return block_size(self.weights())

    def set_block(self, block: int) -> None:
        """Rows per BLAS call from now on: 1 (one product per row) or a block from `probe_block`."""
        self.block = block
        for l in self.layers:
            if isinstance(l, (_LSTM, _GRU)):
                l.block = block

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
        """ids: (B,) int -> logits (B, vocab) float32, and the new state."""
        x = self.table[ids]  # (B, first projection)
        new_state = []
        for i, layer in enumerate(self.layers):
            if isinstance(layer, (_LSTM, _GRU)):
                if i == 0:
                    xw = x
                else:
                    xw = _blocked(x, layer.kernel, self.block)  # (B, gates·units), a new array
                    xw += layer.bias
                x, s = layer.step(xw, state[i])
                new_state.append(s)
            else:
                if layer.kernel is not None:
                    x = _blocked(x, layer.kernel, self.block)  # (B, out), a new array
                    x += layer.bias
                x = layer.act(x)
                new_state.append(())
        return x, new_state

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
