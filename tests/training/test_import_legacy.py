"""Importing a model saved by the legacy Keras 2 recipe: same predictions as Keras 2, served by charlm."""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from charlm import Request, Settings, load_bundle
from tests.charlm.floats import float_products
from tests.conftest import synthetic_text
from training.import_legacy import main

ROOT = Path(__file__).resolve().parents[2]


def keras2():
    """Real Keras 2 (tf-keras, installed with --no-deps by scripts/test.sh); it runs beside Keras 3 in one process.

    Imported when a test needs it, not at collection, so collecting this file does not load TensorFlow.
    """
    return pytest.importorskip("tf_keras", reason='needs tf-keras: pip install --no-deps "tf-keras==2.21.*"')


def build_legacy(kind: str, vocab: int, seed: int):
    """A tiny Keras 2 model of the legacy family, with big random weights so predictions are far from uniform."""
    tf_keras = keras2()
    L = tf_keras.layers
    tf_keras.utils.set_random_seed(seed)
    if kind == "ancestor":  # the ancestor: one-hot -> 2 x LSTM(return_sequences) -> TimeDistributed(Dense) -> softmax
        model = tf_keras.Sequential([
            L.LSTM(8, input_shape=(None, vocab), return_sequences=True, recurrent_activation="hard_sigmoid"),
            L.Dropout(0.2),
            L.LSTM(8, return_sequences=True),
            L.Dropout(0.2),
            L.TimeDistributed(L.Dense(vocab)),
            L.Activation("softmax"),
        ])
    elif kind == "window":  # Keras' lstm_text_generation example: fixed window, last LSTM returns one vector
        model = tf_keras.Sequential([
            L.LSTM(8, input_shape=(12, vocab), recurrent_activation="hard_sigmoid"),
            L.Dense(vocab, activation="softmax"),
        ])
    else:  # functional, Embedding input
        inp = tf_keras.Input(shape=(None,), dtype="int32")
        x = L.Embedding(vocab, 6)(inp)
        x = L.LSTM(8, return_sequences=True)(x)
        model = tf_keras.Model(inp, L.Dense(vocab, activation="softmax")(x))
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(0.0, 1.5 if w.ndim == 2 else 0.5, w.shape).astype("float32") for w in model.get_weights()])
    return model


def save_legacy(d: Path, kind: str = "ancestor", newline: bool = True, seed: int = 0, tail: str = ""):
    """Save a legacy model the ancestor's way; -> (json, weights, charset file, chars in index order, model)."""
    text = synthetic_text(12, seed=seed)
    if not newline:
        text = text.replace("\n", " ")
    chars = sorted(set(text))
    random.Random(seed).shuffle(chars)  # the index order is arbitrary, as with list(set(text)): it must be kept
    model = build_legacy(kind, len(chars), seed)
    d.mkdir(parents=True, exist_ok=True)
    (d / "model.json").write_text(model.to_json(), encoding="utf-8")
    model.save_weights(str(d / "char_lstm_epoch_7.hdf5"))
    (d / "chars.txt").write_bytes(("".join(chars) + tail).encode("utf-8"))
    return d / "model.json", d / "char_lstm_epoch_7.hdf5", d / "chars.txt", chars, model


def cli(json_path, weights, charset, name, models, *extra) -> int:
    return main(["--json", str(json_path), "--weights", str(weights), "--charset", str(charset),
                 "--name", name, "--models-dir", str(models), *extra])


def probe(chars, n: int, t: int) -> np.ndarray:
    """(n, t) ids, in the legacy index order, of windows of a text the model never saw."""
    index = {c: i for i, c in enumerate(chars)}
    ids = [index[c] for c in synthetic_text(6, seed=99) if c in index]
    return np.array([ids[k * 50 : k * 50 + t] for k in range(n)])


def softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@pytest.fixture(scope="module")
def ancestor(tmp_path_factory):
    """The ancestor's files, imported once into a models folder as `legacy`."""
    d = tmp_path_factory.mktemp("legacy")
    js, w, cs, chars, model = save_legacy(d / "files")
    assert cli(js, w, cs, "legacy", d / "models") == 0
    return js, w, cs, chars, model, d / "models" / "legacy"


def float_forward(bundle, ids):
    """The bundle's logits with float32 products: what the imported weights compute, to compare with Keras 2
    at float precision (the shipped exact products round; tests/charlm/test_runtime.py bounds that)."""
    with float_products():
        return load_bundle(bundle.path).runtime.forward(ids)


def test_bundle_predicts_what_keras2_predicts_and_keeps_the_charset_order(ancestor):
    js, w, cs, chars, model, dest = ancestor
    bundle = load_bundle(dest)
    assert bundle.charset.chars == tuple(chars)  # the file's order, not sorted
    assert list(bundle.charset.chars) != sorted(chars)
    ids = probe(chars, 3, 25)  # (3, 25)
    legacy = model.predict(np.eye(len(chars), dtype="float32")[ids], verbose=0)  # (3, 25, V) softmax
    ours = softmax(float_forward(bundle, ids).astype(np.float64))
    assert np.abs(ours - legacy).max() < 1e-4
    assert legacy.max() > 0.5  # a peaked distribution: the comparison means something
    src = bundle.manifest["source"]
    assert src["note"] == "imported from legacy Keras 2 model"
    assert src["files"]["weights"] == {"file": w.name, "sha256": hashlib.sha256(w.read_bytes()).hexdigest()}
    assert "hard_sigmoid" in src["hard_sigmoid"] and bundle.manifest["epochs"] == 7


def test_imported_bundle_generates_through_charlm(ancestor):
    bundle = load_bundle(ancestor[-1])
    assert bundle.check_golden() == []
    settings = Settings(temperature=0.8, min_length=10, max_length=60)
    reqs = [Request(seed, "", settings) for seed in (1, 2, 3)] + [Request(4, "мудрец", settings)]
    results = bundle.generate(reqs)
    assert all(r.text for r in results)
    assert all(set(bundle.charset.unknown(r.raw)) <= {"…"} for r in results)  # "…" marks a cut at max_length
    assert results[3].text.startswith("мудрец")
    assert [r.text for r in bundle.generate(reqs)] == [r.text for r in results]  # same seed, same text


@pytest.mark.parametrize("kind", ["window", "embedding"])
def test_other_members_of_the_family(tmp_path, kind):
    """A fixed-window model without "\\n" in its charset, and a functional model with an Embedding."""
    js, w, cs, chars, model = save_legacy(tmp_path / "files", kind, newline=kind != "window", seed=3)
    assert ("\n" in chars) == (kind != "window")
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(synthetic_text(12, seed=3), encoding="utf-8")
    assert cli(js, w, cs, "imported", tmp_path / "models", "--corpus", str(corpus)) == 0
    bundle = load_bundle(tmp_path / "models" / "imported")
    assert bundle.novelty is not None and bundle.manifest["corpus"]["file"] == "corpus.txt"
    ids = probe(chars, 3, 12)  # (3, 12)
    if kind == "window":
        legacy = model.predict(np.eye(len(chars), dtype="float32")[ids], verbose=0)  # (3, V): after the window
        ours = softmax(float_forward(bundle, ids)[:, -1].astype(np.float64))
    else:
        legacy = model.predict(ids, verbose=0)
        ours = softmax(float_forward(bundle, ids).astype(np.float64))
    assert np.abs(ours - legacy).max() < 1e-4
    res = bundle.generate([Request(1, "", Settings(min_length=10, max_length=40))])  # primed with " " if no "\n"
    assert res[0].text


@pytest.mark.filterwarnings("ignore:You are saving your model as an HDF5 file")
def test_a_whole_model_h5_works_as_weights_and_force_replaces(ancestor, tmp_path):
    """model.save("x.h5") nests the weights under model_weights/; importing it gives the same model."""
    js, w, cs, chars, model, _ = ancestor
    model.save(str(tmp_path / "whole.h5"))
    shutil.copytree(ancestor[-1], tmp_path / "models" / "legacy")
    assert cli(js, tmp_path / "whole.h5", cs, "legacy", tmp_path / "models", "--force", "--title", "Legacy", "--alias", "old") == 0
    bundle = load_bundle(tmp_path / "models" / "legacy")
    assert (bundle.title, bundle.aliases) == ("Legacy", ["old"])
    ids = probe(chars, 2, 20)
    legacy = model.predict(np.eye(len(chars), dtype="float32")[ids], verbose=0)
    assert np.abs(softmax(float_forward(bundle, ids).astype(np.float64)) - legacy).max() < 1e-4


def test_keras_2_0_file_layout(ancestor, tmp_path):
    """Keras 2.0-2.2 wrote a Sequential's config as a bare layer list, and HDF5 names as bytes, unnested."""
    import h5py

    js, w, cs, chars, model, _ = ancestor
    spec = json.loads(js.read_text(encoding="utf-8"))
    spec["config"] = [l for l in spec["config"]["layers"] if l["class_name"] != "InputLayer"]
    (tmp_path / "old.json").write_text(json.dumps(spec), encoding="utf-8")
    with h5py.File(w, "r") as src, h5py.File(tmp_path / "old.hdf5", "w") as dst:
        names = [str(n) for n in src.attrs["layer_names"] if str(n) != "top_level_model_weights"]
        dst.attrs["layer_names"] = np.array([n.encode() for n in names])
        for n in names:
            g = dst.create_group(n)
            arrays = [np.asarray(src[n][wn]) for wn in src[n].attrs["weight_names"]]
            keys = [f"{n}/{str(wn).split('/')[-1]}".encode() for wn in src[n].attrs["weight_names"]]  # "lstm/kernel:0"
            g.attrs["weight_names"] = np.array(keys)
            for k, a in zip(keys, arrays):
                g.create_dataset(k.decode(), data=a)
    assert cli(tmp_path / "old.json", tmp_path / "old.hdf5", cs, "old", tmp_path / "models") == 0
    bundle = load_bundle(tmp_path / "models" / "old")
    ids = probe(chars, 2, 20)
    legacy = model.predict(np.eye(len(chars), dtype="float32")[ids], verbose=0)
    assert np.abs(softmax(float_forward(bundle, ids).astype(np.float64)) - legacy).max() < 1e-4


@pytest.mark.parametrize("tail", ["\n", "\r\n"])
def test_a_trailing_line_break_added_to_the_charset_file_is_dropped(tmp_path, tail):
    js, w, cs, chars, _ = save_legacy(tmp_path / "files", "window", newline=False, seed=4, tail=tail)
    assert cli(js, w, cs, "trail", tmp_path / "models") == 0
    bundle = load_bundle(tmp_path / "models" / "trail")
    assert bundle.charset.chars == tuple(chars)
    assert "trailing" in bundle.manifest["source"]["charset"]


def edited_json(src: Path, dest: Path, edit) -> Path:
    spec = json.loads(src.read_text(encoding="utf-8"))
    edit(spec["config"]["layers"])
    dest.write_text(json.dumps(spec), encoding="utf-8")
    return dest


def _set(layer_index, key, value):
    def edit(layers):
        if key == "class_name":
            layers[layer_index]["class_name"] = value
        else:
            layers[layer_index]["config"][key] = value
    return edit


# the ancestor's JSON layers: 0 InputLayer, 1 lstm, 2 dropout, 3 lstm_1, 4 dropout_1, 5 time_distributed, 6 activation
ERRORS = {
    "foreign layer": (dict(json=_set(3, "class_name", "GRU")), "layer 'lstm_1' (GRU) is not of the family"),
    "hard_sigmoid cell": (dict(json=_set(1, "activation", "hard_sigmoid")), "cell activation must be one of"),
    "units differ": (dict(json=_set(3, "units", 9)), "layer 'lstm_1': kernel has shape (8, 32) but the JSON needs (8, 36)"),
    "layer renamed": (dict(json=_set(3, "name", "lstm_x")), "holds weights for layer 'lstm_1', which the JSON does not have"),
    "charset short": (dict(charset=lambda chars: "".join(chars[:-1])), "the charset has {v1} characters but the model's input size is {v}"),
    "charset repeats": (dict(charset=lambda chars: "".join(chars[:-1]) + chars[0]), "appears twice"),
    "not hdf5": (dict(weights="json"), "not an HDF5 file"),
    "keras 3 weights": (dict(weights="keras3"), "not a Keras 2 weights file"),
    "missing file": (dict(charset="missing"), "no such file (the charset file)"),
    "bad name": (dict(name="Bad-Name"), "is not a Telegram command"),
    "exists": (dict(name="legacy"), "already exists; pass --force"),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_errors_are_one_clear_line(ancestor, tmp_path, capsys, case):
    js, w, cs, chars, _, dest = ancestor
    change, expected = ERRORS[case]
    models, name = tmp_path / "models", change.get("name", "x")
    if name == "legacy":
        models = dest.parent
    if "json" in change:
        js = edited_json(js, tmp_path / "edited.json", change["json"])
    if change.get("weights") == "json":
        w = js
    elif change.get("weights") == "keras3":
        w = dest / "model.weights.h5"
    if change.get("charset") == "missing":
        cs = tmp_path / "nope.txt"
    elif "charset" in change:
        cs = tmp_path / "chars.txt"
        cs.write_text(change["charset"](chars), encoding="utf-8")
    capsys.readouterr()
    assert cli(js, w, cs, name, models) == 2
    out, err = capsys.readouterr()
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err
    assert expected.format(v=len(chars), v1=len(chars) - 1) in err
    assert not (tmp_path / "models" / name).exists()


def test_command_line_error_exits_2_without_traceback(ancestor, tmp_path):
    js, w, cs, *_ = ancestor
    shutil.copy(js, tmp_path / "weights.hdf5")  # JSON text under an HDF5 name
    proc = subprocess.run([sys.executable, "-m", "training.import_legacy", "--json", str(js), "--weights",
                           str(tmp_path / "weights.hdf5"), "--charset", str(cs), "--name", "x", "--models-dir", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"error: {tmp_path / 'weights.hdf5'}: not an HDF5 file; pass the .hdf5/.h5 file written by model.save_weights()"]
