"""Reading a legacy Keras 2 char model (JSON + HDF5 weights + charset string) and checking it, without Keras.

The family this project's ancestor (and the blog recipe behind it) trained: one-hot input (or an
Embedding), stacked LSTM(return_sequences=True), TimeDistributed(Dense(vocab)) or Dense(vocab), a softmax,
with Dropout layers anywhere. The last LSTM may have return_sequences=False (Keras' own
lstm_text_generation example): stepping with the state carried gives the same prediction at every step.

Everything here is numpy + h5py, so every mistake is found before TensorFlow is imported.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from charlm import Charset
from charlm.errors import PathError

# Layers with no effect at inference: skipped.
INERT = ("Dropout", "SpatialDropout1D", "GaussianDropout", "GaussianNoise")
FAMILY = "one-hot or Embedding input, stacked LSTM, Dense or TimeDistributed(Dense), softmax, Dropout"
# Activations whose Keras 2 and Keras 3 definitions agree.
SAME = ("linear", "tanh", "sigmoid", "relu")
# Keras 2's hard_sigmoid is clip(0.2x + 0.5, 0, 1); Keras 3's is relu6(x + 3) / 6 = clip(x/6 + 0.5, 0, 1).
# So Keras-2 hard_sigmoid(z) == Keras-3 hard_sigmoid(1.2 z): the weights feeding it are scaled by 1.2.
HARD_SIGMOID_SCALE = 1.2


class LegacyImportError(PathError):
    """A legacy model that cannot be imported; names the file and the problem."""


@dataclass
class LegacyLayer:
    """One layer that carries weights: `kind` is "Embedding", "LSTM" or "Dense"."""

    kind: str
    name: str  # the layer's name in the JSON and its group in the HDF5 file
    units: int  # output width (Embedding: output_dim)
    activation: str = "linear"  # LSTM: cell activation; Dense: its activation
    recurrent_activation: str = "sigmoid"  # LSTM gates
    use_bias: bool = True
    weights: dict[str, np.ndarray] = field(default_factory=dict)  # kernel, recurrent_kernel, bias, embeddings

    def describe(self) -> str:
        if self.kind == "LSTM":
            return f"LSTM({self.units}, activation={self.activation}, recurrent_activation={self.recurrent_activation})"
        if self.kind == "Dense":
            return f"Dense({self.units}, activation={self.activation})"
        return f"Embedding({self.units})"


@dataclass
class LegacyModel:
    """A checked legacy model: the layers with weights in order, its input size (vocab) and provenance."""

    layers: list[LegacyLayer]
    input_size: int  # one-hot width, or the Embedding's input_dim
    one_hot: bool  # True when the input is one-hot vectors (no Embedding layer)
    keras_version: str | None = None
    backend: str | None = None

    @property
    def architecture(self) -> list[str]:
        head = [f"one-hot input ({self.input_size})"] if self.one_hot else []
        return head + [l.describe() for l in self.layers]


def require_file(path: Path, what: str) -> None:
    if not path.exists():
        raise LegacyImportError(path, f"no such file (the {what})")
    if not path.is_file():
        raise LegacyImportError(path, f"not a file (the {what})")


# --- the architecture (JSON) ------------------------------------------------------------------------

def _act(value) -> str:
    if isinstance(value, dict):  # a serialized activation object
        value = value.get("config", {}).get("name") or value.get("class_name")
    return "linear" if value in (None, "None") else str(value)


def _layer_list(path: Path, spec) -> list[dict]:
    """The layers of a Sequential (either Keras 2 JSON shape) or of a linear functional model."""
    if not isinstance(spec, dict) or "class_name" not in spec:
        raise LegacyImportError(path, "not a Keras model JSON (no class_name); pass the file written by model.to_json()")
    kind, cfg = spec["class_name"], spec.get("config")
    if kind == "Sequential":
        layers = cfg if isinstance(cfg, list) else (cfg or {}).get("layers")  # Keras <= 2.2.2 wrote a bare list
    elif kind in ("Model", "Functional"):
        layers = (cfg or {}).get("layers")
        prev = None
        for ls in layers or []:
            nodes = ls.get("inbound_nodes") or []
            srcs = [n[0] for node in nodes for n in node if isinstance(n, list) and n]
            if (prev is None and srcs) or (prev is not None and srcs != [prev]) or len(nodes) > 1:
                raise LegacyImportError(path, f"layer {ls.get('name')!r} does not simply follow {prev!r}: only a linear stack of layers can be imported")
            prev = ls.get("name")
    else:
        raise LegacyImportError(path, f"model class {kind!r} is not a Keras Sequential or functional model")
    if not isinstance(layers, list) or not layers:
        raise LegacyImportError(path, "the model JSON lists no layers")
    return layers


def _input_width(cfg: dict) -> int | None:
    shape = cfg.get("batch_input_shape") or cfg.get("batch_shape")
    if not shape and cfg.get("input_shape"):
        shape = [None, *cfg["input_shape"]]
    return int(shape[-1]) if shape and shape[-1] is not None else None


class _Walk:
    """The state of checking the layer list, one layer spec at a time."""

    def __init__(self, path: Path):
        self.path = path
        self.layers: list[LegacyLayer] = []
        self.declared: int | None = None  # the input width the JSON states
        self.embedding = False
        self.softmax = False  # a softmax has been seen: nothing with weights may follow
        self.sequences = True  # the last LSTM returns sequences (False allows only Dense after it)

    def refuse(self, name, kind, why="is not of the family this tool imports"):
        raise LegacyImportError(self.path, f"layer {name!r} ({kind}) {why}; supported: {FAMILY}")

    def take(self, ls: dict) -> None:
        kind = ls.get("class_name")
        cfg = ls.get("config") or {}
        name = cfg.get("name") or ls.get("name") or kind
        layers = self.layers
        if self.declared is None and not layers:
            self.declared = _input_width(cfg)
        if kind == "TimeDistributed":
            inner = cfg.get("layer") or {}
            if inner.get("class_name") in INERT:
                return
            if inner.get("class_name") != "Dense":
                self.refuse(name, f"TimeDistributed({inner.get('class_name')})")
            kind, cfg = "Dense", {**(inner.get("config") or {}), "name": name}  # weights live under the wrapper's name
        if kind in INERT or kind == "InputLayer":
            return
        if self.softmax:
            self.refuse(name, kind, "follows the softmax, which must close the model")
        if kind == "Embedding":
            if layers:
                self.refuse(name, kind, "is not the first layer")
            if cfg.get("mask_zero"):
                self.refuse(name, kind, "has mask_zero=True, which skips id 0 instead of reading it")
            self.embedding = True
            self.declared = int(cfg["input_dim"])  # a preceding InputLayer's last dimension was the window length
            layers.append(LegacyLayer("Embedding", name, int(cfg["output_dim"])))
        elif kind == "LSTM":
            if "units" not in cfg:
                self.refuse(name, kind, "has no 'units' (a Keras 1 model?)")
            if layers and layers[-1].kind == "Dense":
                self.refuse(name, kind, "comes after a Dense layer")
            if not self.sequences:
                self.refuse(name, kind, "follows an LSTM with return_sequences=False")
            if cfg.get("go_backwards"):
                self.refuse(name, kind, "has go_backwards=True")
            # Keras 2.0-2.2 defaulted recurrent_activation to hard_sigmoid, tf.keras to sigmoid; the JSON always says
            act, rec = _act(cfg.get("activation", "tanh")), _act(cfg.get("recurrent_activation", "hard_sigmoid"))
            if act not in SAME:
                # hard_sigmoid here would also apply to the cell state, which no weight scaling can reach
                self.refuse(name, kind, f"has activation {act!r}; an LSTM's cell activation must be one of {', '.join(SAME)}")
            if rec not in SAME + ("hard_sigmoid",):
                self.refuse(name, kind, f"has recurrent_activation {rec!r}")
            self.sequences = bool(cfg.get("return_sequences", False))
            layers.append(LegacyLayer("LSTM", name, int(cfg["units"]), act, rec, bool(cfg.get("use_bias", True))))
        elif kind == "Dense":
            if not any(l.kind == "LSTM" for l in layers):
                self.refuse(name, kind, "comes before any LSTM")
            act = _act(cfg.get("activation"))
            if act not in SAME + ("hard_sigmoid", "softmax"):
                self.refuse(name, kind, f"has activation {act!r}")
            self.softmax = act == "softmax"
            layers.append(LegacyLayer("Dense", name, int(cfg["units"]), act, use_bias=bool(cfg.get("use_bias", True))))
        elif kind == "Activation":
            act = _act(cfg.get("activation"))
            if not layers or layers[-1].kind != "Dense" or layers[-1].activation != "linear" or act not in ("softmax", "linear"):
                self.refuse(name, f"Activation({act})", "is not the closing softmax after the last Dense layer")
            self.softmax = act == "softmax"
            layers[-1].activation = act
        else:
            self.refuse(name, kind)

    def finish(self, spec: dict) -> LegacyModel:
        layers, path = self.layers, self.path
        if not any(l.kind == "LSTM" for l in layers):
            raise LegacyImportError(path, f"the model has no LSTM layer; supported: {FAMILY}")
        if layers[-1].kind != "Dense":
            raise LegacyImportError(path, f"the model does not end with a Dense layer over the characters; supported: {FAMILY}")
        if self.declared is None:
            raise LegacyImportError(path, "the JSON does not state the model's input size (no batch_input_shape on the first layer)")
        if layers[-1].units != self.declared:
            raise LegacyImportError(path, f"the last Dense layer has {layers[-1].units} units but the input size is {self.declared}: not a next-character model")
        return LegacyModel(layers, self.declared, not self.embedding, spec.get("keras_version"), spec.get("backend"))


def parse_architecture(path: Path, spec) -> LegacyModel:
    """Check that `spec` (a parsed to_json()) is of the family; -> its layers, weights not read yet."""
    walk = _Walk(path)
    for ls in _layer_list(path, spec):
        try:
            walk.take(ls)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            name = (ls.get("config") or {}).get("name") if isinstance(ls, dict) else None
            raise LegacyImportError(path, f"layer {name!r}: malformed config ({e.__class__.__name__}: {e}); is this a Keras 2 model?") from None
    return walk.finish(spec)


def read_architecture(path: Path) -> LegacyModel:
    """Parse and check MODEL.json."""
    require_file(path, "model JSON")
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise LegacyImportError(path, f"not a JSON file ({e.__class__.__name__}: {e}); pass the file written by model.to_json()") from None
    return parse_architecture(path, spec)


# --- the weights (HDF5) ------------------------------------------------------------------------------

NEEDED = {"Embedding": ("embeddings",), "LSTM": ("kernel", "recurrent_kernel"), "Dense": ("kernel",)}


def _text(x) -> str:
    return x.decode("utf-8") if isinstance(x, bytes) else str(x)


def read_weights(path: Path, model: LegacyModel) -> None:
    """Fill `model`'s layers from a Keras 2 save_weights()/save() HDF5 file; check every shape against the JSON."""
    require_file(path, "weights file")
    try:
        f = h5py.File(path, "r")
    except OSError:
        raise LegacyImportError(path, "not an HDF5 file; pass the .hdf5/.h5 file written by model.save_weights()") from None
    with f:
        root = f["model_weights"] if isinstance(f.get("model_weights"), h5py.Group) else f  # model.save() nests them
        if "layer_names" not in root.attrs:
            hint = " (it looks like a Keras 3 .weights.h5; this tool imports Keras 2 files)" if "layers" in root else ""
            raise LegacyImportError(path, f"not a Keras 2 weights file: no layer_names attribute{hint}")
        stored = {}
        for lname in (_text(n) for n in root.attrs["layer_names"]):
            group = root.get(lname)
            names = [_text(w) for w in group.attrs.get("weight_names", [])] if isinstance(group, h5py.Group) else []
            if names:
                # "lstm/lstm_cell/kernel:0" (tf.keras) or "lstm_1/kernel:0" (Keras 2.0): the last part names it
                stored[lname] = {w.split("/")[-1].split(":")[0]: np.asarray(group[w], dtype=np.float32) for w in names}
        model.keras_version = model.keras_version or _text(root.attrs.get("keras_version", "")) or None
        model.backend = model.backend or _text(root.attrs.get("backend", "")) or None
    wanted = {l.name for l in model.layers}
    extra = sorted(set(stored) - wanted)
    if extra:
        raise LegacyImportError(path, f"holds weights for layer {extra[0]!r}, which the JSON does not have: the weights do not fit the JSON")
    width = model.input_size
    for layer in model.layers:
        if layer.name not in stored:
            raise LegacyImportError(path, f"has no weights for layer {layer.name!r} ({layer.kind}): the weights do not fit the JSON")
        arrays = stored[layer.name]
        needed = NEEDED[layer.kind] + (("bias",) if layer.use_bias and layer.kind != "Embedding" else ())
        missing = [n for n in needed if n not in arrays]
        if missing:
            raise LegacyImportError(path, f"layer {layer.name!r}: no {missing[0]!r} array (it has {', '.join(sorted(arrays))}): the weights do not fit the JSON")
        gates = 4 if layer.kind == "LSTM" else 1
        if layer.kind == "Embedding":
            expect = {"embeddings": (width, layer.units)}
        else:
            expect = {"kernel": (width, gates * layer.units), "bias": (gates * layer.units,)}
            if layer.kind == "LSTM":
                expect["recurrent_kernel"] = (layer.units, gates * layer.units)
        for key in needed:
            if arrays[key].shape != expect[key]:
                raise LegacyImportError(path, f"layer {layer.name!r}: {key} has shape {arrays[key].shape} but the JSON needs {expect[key]}: the weights do not fit the JSON")
        layer.weights = {k: arrays[k] for k in needed}
        width = layer.units


# --- the charset (text file) -------------------------------------------------------------------------

def read_charset(path: Path, size: int) -> tuple[Charset, str]:
    """The charset file, used in its own order -> (Charset, the rule applied).

    The file is the model's characters in index order, as written by `open(...).write("".join(chars))`:
    read as UTF-8 bytes, nothing stripped, so "\\n", " " and "\\u00a0" count like any character. One rule
    only: if the file is exactly one line break ("\\n" or "\\r\\n") longer than the model's input size and
    ends with it, that trailing line break was added by an editor or `print`/`echo` and is dropped.
    """
    require_file(path, "charset file")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise LegacyImportError(path, f"not UTF-8 text (byte {e.start}); the charset must be the model's characters as UTF-8") from None
    rule = "used as is"
    if len(text) != size:
        for tail in ("\n", "\r\n"):
            if text.endswith(tail) and len(text) - len(tail) == size:
                text, rule = text[: -len(tail)], f"used as is, less one trailing {tail!r} (the file was {size + len(tail)} characters)"
                break
        else:
            hint = " (it contains \\r\\n: written in text mode on Windows?)" if "\r\n" in text else ""
            raise LegacyImportError(path, f"the charset has {len(text)} characters but the model's input size is {size}{hint}")
    seen: set[str] = set()
    for i, c in enumerate(text):
        if c in seen:
            raise LegacyImportError(path, f"character {c!r} (U+{ord(c):04X}) appears twice (again at index {i}); a charset lists each character once")
        seen.add(c)
    return Charset(tuple(text)), rule


def epoch_from_name(path: Path) -> int | None:
    """The epoch the ancestor wrote into the weights file name (`..._epoch_12.hdf5`), if any."""
    m = re.search(r"epoch[_-]?(\d+)", path.stem, re.IGNORECASE)
    return int(m.group(1)) if m else None
