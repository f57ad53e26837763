"""Shared fixtures: tiny real bundles built with Keras on a few KB of synthetic text."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

WORDS = (
    "мудрец ученик сказал однажды спросил путник дорога вода камень река гора хлеб соль дом "
    "сердце слово молчание золото серебро время жизнь свет тень учитель царь купец бедняк"
).split()


def synthetic_text(n_texts: int = 40, seed: int = 0) -> str:
    """A few KB of Russian-looking parables, one per line, with paragraph marks (runs of NBSP)."""
    rnd = random.Random(seed)
    lines = []
    for _ in range(n_texts):
        sentences = []
        for _ in range(rnd.randint(2, 5)):
            words = [rnd.choice(WORDS) for _ in range(rnd.randint(4, 9))]
            sentences.append(" ".join(words).capitalize() + rnd.choice(".!?."))
        text = " ".join(sentences[:2]) + "  \u00a0\u00a0\u00a0 " + " ".join(sentences[2:])
        lines.append("\u00a0\u00a0\u00a0" + text)
    return "\n".join(lines) + "\n"


def make_bundle(models_dir: Path, name: str, text: str | None = None, rnn: str = "LSTM", units: int = 16,
                aliases: list[str] | None = None, steps: int = 30, seed: int = 0) -> Path:
    """Train a tiny real model for a few steps on `text` and export it as a bundle named `name`."""
    import keras
    import numpy as np

    from charlm import Charset, Settings
    from charlm.text import END, normalize_text
    from training.export import export_bundle

    text = text or synthetic_text(seed=seed)
    corpus = "".join(normalize_text(l) + END for l in text.splitlines() if l.strip())
    charset = Charset.from_text(corpus)
    keras.utils.set_random_seed(seed)
    V = len(charset)
    inp = keras.Input(shape=(None,), dtype="int32")
    x = keras.layers.Embedding(V, 8)(inp)
    x = getattr(keras.layers, rnn)(units, return_sequences=True)(x)
    x = keras.layers.Dense(V)(x)
    model = keras.Model(inp, x)
    model.compile(optimizer=keras.optimizers.Adam(0.02), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    ids = charset.encode(corpus)
    T = 32
    n = (len(ids) - 1) // T
    X = ids[: n * T].reshape(n, T)
    Y = ids[1 : n * T + 1].reshape(n, T)
    model.fit(X, Y, batch_size=16, epochs=max(1, steps * 16 // n), verbose=0, shuffle=False)
    manifest = {"name": name, "title": name.capitalize(), "aliases": aliases or [], "description": f"test bundle {name}",
                "corpus": {"chars": len(corpus)}, "metrics": {"val_bpc": 3.0}, "epochs": 1, "seed": seed}
    return export_bundle(model, charset, models_dir / name, manifest, corpus_text=corpus,
                         generation=Settings(temperature=0.8, min_length=20, max_length=120))


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> Path:
    """A models folder with two tiny bundles: `alpha` (LSTM, alias `al`) and `beta` (GRU, alias `be`)."""
    d = tmp_path_factory.mktemp("models")
    make_bundle(d, "alpha", aliases=["al"], seed=1)
    make_bundle(d, "beta", rnn="GRU", aliases=["be"], seed=2)
    return d
