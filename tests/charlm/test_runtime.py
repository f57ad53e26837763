"""The numpy runtime computes what Keras computes, on real exported bundles, and samples reproducibly."""

from __future__ import annotations

import json

import numpy as np
import pytest

from charlm import BundleError, Charset, Request, Settings, load_bundle
from charlm.text import END
from tests.charlm.floats import float_products
from tests.conftest import synthetic_text

keras = pytest.importorskip("keras")

CHARSET = Charset.from_text(synthetic_text(20, seed=3) + END)
V = len(CHARSET)
SHORT = Settings(temperature=0.9, min_length=15, max_length=60)


def _stack(*layers, sequential: bool = False):
    """Embedding(V, 8) -> layers; random (not tiny) weights, so every gate and bias matters."""
    keras.utils.set_random_seed(0)
    if sequential:
        model = keras.Sequential([keras.Input(shape=(None,), dtype="int32"), keras.layers.Embedding(V, 8), *layers])
    else:
        inp = keras.Input(shape=(None,), dtype="int32")
        x = keras.layers.Embedding(V, 8)(inp)
        for layer in layers:
            x = layer(x)
        model = keras.Model(inp, x)
    rng = np.random.default_rng(0)
    model.set_weights([rng.normal(0.0, 0.5, w.shape).astype("float32") for w in model.get_weights()])
    return model


L, G, D = keras.layers.LSTM, keras.layers.GRU, keras.layers.Dense
MODELS = {
    "lstm_stack": lambda: _stack(L(12, return_sequences=True), L(10, return_sequences=True), D(V)),
    "gru_stack": lambda: _stack(G(12, return_sequences=True), G(10, return_sequences=True), D(V)),
    "lstm_dropout": lambda: _stack(L(12, return_sequences=True, dropout=0.2, recurrent_dropout=0.1),
                                   keras.layers.Dropout(0.3), L(10, return_sequences=True),
                                   keras.layers.Dropout(0.3), D(V)),
    "gru_dropout": lambda: _stack(G(12, return_sequences=True), keras.layers.Dropout(0.5), D(V)),
    "gru_reset_before": lambda: _stack(G(12, return_sequences=True, reset_after=False),
                                       G(9, return_sequences=True, reset_after=False), D(V)),
    "mixed_sequential": lambda: _stack(G(12, return_sequences=True), L(10, return_sequences=True), D(V),
                                       sequential=True),
    "softmax_head": lambda: _stack(L(12, return_sequences=True), D(V, activation="softmax")),
    "dense_relu_softmax": lambda: _stack(L(12, return_sequences=True), D(16, activation="relu"), D(V),
                                         keras.layers.Activation("softmax")),
}


def _export(model, dest):
    from training.export import export_bundle

    return load_bundle(export_bundle(model, CHARSET, dest, {"name": dest.name}, generation=SHORT))


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Every model of MODELS, exported as a bundle and loaded back: name -> (keras model, bundle)."""
    root = tmp_path_factory.mktemp("runtime")
    out = {}
    for name, build in MODELS.items():
        model = build()
        out[name] = (model, _export(model, root / name))
    return out


def _keras_and_runtime(exported, name, floats: bool):
    """-> (Keras' outputs, the runtime's outputs, as probabilities where the model ends in a softmax)."""
    model, bundle = exported[name]
    ids = np.random.default_rng(1).integers(0, V, size=(3, 25)).astype("int32")
    expected = np.asarray(model(ids, training=False))  # (batch, time, vocab)
    if floats:
        with float_products():
            logits = load_bundle(bundle.path).runtime.forward(ids)  # (batch, time, vocab)
    else:
        logits = bundle.runtime.forward(ids)
    assert logits.shape == expected.shape == (3, 25, V)
    if name in ("softmax_head", "dense_relu_softmax"):
        # the runtime drops a closing softmax and returns logits; compare probabilities
        z = np.exp(logits - logits.max(axis=-1, keepdims=True))
        return expected, z / z.sum(axis=-1, keepdims=True)
    return expected, logits


@pytest.mark.parametrize("name", MODELS)
def test_runtime_matches_keras_forward(exported, name):
    # the layers' wiring (gates, biases, the folded first kernel) with float32 products, as Keras computes
    expected, got = _keras_and_runtime(exported, name, floats=True)
    assert np.abs(got - expected).max() < 1e-4


@pytest.mark.parametrize("name", MODELS)
def test_exact_products_stay_close_to_keras(exported, name):
    # what the runtime ships: products on rounded weights and inputs. Measured max |diff| 0.0005-0.005 on
    # these small, saturated random models (weights N(0, 0.5)); a wrong gate or bias is off by ~0.1-1
    expected, got = _keras_and_runtime(exported, name, floats=False)
    assert np.abs(got - expected).max() < 2e-2


@pytest.mark.parametrize("name", ["lstm_stack", "gru_dropout", "gru_reset_before"])
def test_step_by_step_equals_forward_and_state_is_carried(exported, name):
    _, bundle = exported[name]
    rt = bundle.runtime
    ids = np.random.default_rng(2).integers(0, V, size=(2, 12))
    whole = rt.forward(ids)
    state = rt.initial_state(2)
    for t in range(12):
        logits, state = rt.step(ids[:, t], state)
        assert logits.dtype == np.float32
        np.testing.assert_array_equal(logits, whole[:, t])
    # the same character after different histories gives different logits: the state is used
    assert np.abs(whole[:, -1] - rt.step(ids[:, -1], rt.initial_state(2))[0]).max() > 1e-3


@pytest.mark.parametrize("name", ["lstm_stack", "gru_stack", "softmax_head"])
def test_same_seed_same_text_alone_or_in_a_batch(exported, name):
    _, bundle = exported[name]
    req = Request(11, "Мудрец", SHORT)
    first = bundle.generate([req])[0]
    again = bundle.generate([req])[0]
    others = [Request(s, p, SHORT.with_(temperature=t))
              for s, p, t in [(1, "", 0.5), (2, "Ре", 1.3), (3, "", 0.0), (4, "Вода", 0.8), (5, "", 1.0), (6, "Ц", 0.7)]]
    crowd = bundle.generate(others[:3] + [req] + others[3:])  # 7 requests, ours in the middle
    assert first.text == again.text == crowd[3].text
    assert first.text.startswith("Мудрец") and len(first.text) > len("Мудрец")
    assert bundle.generate([Request(12, "Мудрец", SHORT)])[0].text != first.text


def _bundle_with(tmp_path, *layers):
    """A bundle whose model has `layers` in the middle; loading must refuse it."""
    inp = keras.Input(shape=(None,), dtype="int32")
    x = keras.layers.Embedding(V, 8)(inp)
    for layer in layers:
        x = layer(x)
    x = keras.layers.Dense(V)(x)
    model = keras.Model(inp, x)
    d = tmp_path / "bad"
    d.mkdir()
    model.save_weights(d / "model.weights.h5")
    (d / "model.json").write_text(model.to_json(), encoding="utf-8")
    (d / "charset.json").write_text(CHARSET.to_json(), encoding="utf-8")
    return d


@pytest.mark.parametrize("layer, named", [
    (lambda: keras.layers.Conv1D(8, 3, padding="causal"), "Conv1D"),
    (lambda: keras.layers.Bidirectional(keras.layers.LSTM(6, return_sequences=True)), "Bidirectional"),
])
def test_unsupported_layer_is_refused_by_name(tmp_path, layer, named):
    from charlm import Runtime
    from charlm.bundle import write_bundle

    d = _bundle_with(tmp_path, layer())
    with pytest.raises(BundleError) as e:
        Runtime.load(d / "model.json", d / "model.weights.h5")
    assert named in str(e.value) and "model.json" in str(e.value)
    # and through a complete bundle folder, as the bot loads it
    files = {f: d / f for f in ("model.json", "model.weights.h5", "charset.json")}
    dest = write_bundle(tmp_path / "refused", files, {"name": "refused"})
    with pytest.raises(BundleError, match=named):
        load_bundle(dest)
    assert json.loads((dest / "manifest.json").read_text())["name"] == "refused"
