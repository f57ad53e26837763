"""Widening a bundle: the wider model computes exactly what the old one did, and trains on."""

import numpy as np

from charlm import Charset, Request, Settings, load_bundle
from tests.charlm.floats import float_products
from tests.conftest import synthetic_text


def _bundle(tmp_path, units=8):
    import keras

    from training.export import export_bundle
    from training.model import build_model

    text = synthetic_text(n_texts=10)
    charset = Charset.from_text(text)
    keras.utils.set_random_seed(3)
    model = build_model(len(charset), 8, units, 2, 0.1, "lstm", 3)
    config = {"cell": "lstm", "layers": 2, "units": units, "embedding": 8, "dropout": 0.1}
    manifest = {"name": "small", "title": "Small", "training": {"config": config}}
    return export_bundle(model, charset, tmp_path / "small", manifest, generation=Settings(min_length=10, max_length=40))


def test_widened_bundle_gives_the_same_logits_and_text(tmp_path):
    from training.widen import main

    old = _bundle(tmp_path)
    assert main([str(old), "--units", "20", "-o", str(tmp_path / "wide")]) == 0
    b = load_bundle(tmp_path / "wide")
    assert b.manifest["training"]["config"]["units"] == 20
    assert b.manifest["widened_from"]["units"] == 8
    assert b.check_golden() == []
    # the same function: with float32 products (exact products round the wider matrices differently)
    with float_products():
        a, b = load_bundle(old), load_bundle(tmp_path / "wide")
        ids = a.charset.encode("Мудрец сказал ученику вода и камень.")
        sa, sb = a.runtime.initial_state(1), b.runtime.initial_state(1)
        for i in ids:
            la, sa = a.runtime.step(np.array([i]), sa)
            lb, sb = b.runtime.step(np.array([i]), sb)
            np.testing.assert_allclose(la, lb, atol=1e-5)
        reqs = [Request(g["seed"], g.get("prefix", ""), Settings.from_dict(g["settings"])) for g in a.manifest["golden"]]
        assert [r.text for r in a.generate(reqs)] == [r.text for r in b.generate(reqs)]


def test_refuses_a_narrower_width_with_one_line(tmp_path, capsys):
    from training.widen import main

    old = _bundle(tmp_path)
    assert main([str(old), "--units", "8", "-o", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "--units 8" in err and "\n" not in err
