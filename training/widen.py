"""`python -m training.widen BUNDLE --units N -o DIR`: a wider model that computes exactly what BUNDLE does.

Net2Net-style widening of an Embedding -> LSTM stack -> Dense bundle: every old weight is copied into
its place in the wider layers; the new units get the fresh model's random incoming weights and zero
outgoing weights (into the old units' gates, the next layer and the logits), so the wider model's
logits equal the old one's until training moves them. Pretraining a larger model from a trained
smaller one skips the hours the smaller one already spent (2 cores: a 2 x 384 LSTM trains at ~4.7 K
characters/s, so re-learning the base's 2,900 steps from scratch would cost ~80 minutes).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from charlm import BundleError, load_bundle

from .cli import fail, quiet_tensorflow


def _widen_lstm(old: list[np.ndarray], new: list[np.ndarray], in_old: int, u_old: int, u_new: int) -> list[np.ndarray]:
    """Copy an LSTM's (kernel (in, 4U), recurrent (U, 4U), bias (4U)) into a wider one, gate block by block."""
    k_old, r_old, b_old = old
    k, r, b = (w.copy() for w in new)
    for g in range(4):  # Keras' gate order: input, forget, cell, output
        old_cols = slice(g * u_old, (g + 1) * u_old)
        new_cols = slice(g * u_new, g * u_new + u_old)
        k[:in_old, new_cols] = k_old[:, old_cols]
        k[in_old:, new_cols] = 0.0  # the old units ignore the new inputs (the new units keep random ones)
        r[:u_old, new_cols] = r_old[:, old_cols]
        r[u_old:, new_cols] = 0.0  # the new units' state does not reach the old units
        b[new_cols] = b_old[old_cols]
    return [k, r, b]


def widen(bundle_path: str | Path, units: int, seed: int = 0):
    """-> (the wider Keras model, the bundle) for an LSTM bundle of `build_model`'s shape."""
    from .model import build_model

    bundle = load_bundle(bundle_path)
    cfg = bundle.manifest.get("training", {}).get("config", {})
    if cfg.get("cell", "lstm") != "lstm":
        raise BundleError(bundle.path, "widening supports LSTM bundles only")
    u_old, layers, emb = int(cfg.get("units", 0)), int(cfg.get("layers", 0)), int(cfg.get("embedding", 0))
    if not (u_old and layers and emb):
        raise BundleError(bundle.path / "manifest.json", "training.config lacks units/layers/embedding")
    if units <= u_old:
        raise BundleError(bundle.path, f"--units {units} must be above the bundle's {u_old}")
    vocab = len(bundle.charset)
    old = build_model(vocab, emb, u_old, layers, 0.0, "lstm", seed)
    old.load_weights(bundle.path / "model.weights.h5")
    new = build_model(vocab, emb, units, layers, float(cfg.get("dropout", 0.0)), "lstm", seed)
    new.get_layer("embedding").set_weights(old.get_layer("embedding").get_weights())
    for i in range(layers):
        in_old = emb if i == 0 else u_old
        w = _widen_lstm(old.get_layer(f"lstm_{i}").get_weights(), new.get_layer(f"lstm_{i}").get_weights(), in_old, u_old, units)
        new.get_layer(f"lstm_{i}").set_weights(w)
    k_old, b_old = old.get_layer("logits").get_weights()
    k = np.zeros((units, vocab), np.float32)
    k[:u_old] = k_old  # the new units do not reach the logits until training moves them
    new.get_layer("logits").set_weights([k, b_old])
    return new, bundle


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.widen", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("bundle", help="the LSTM bundle to widen")
    p.add_argument("--units", type=int, required=True, help="units per layer of the wider model")
    p.add_argument("-o", "--out", required=True, help="folder for the wider bundle (e.g. runs/wide384)")
    p.add_argument("--seed", type=int, default=0, help="seed of the new units' random weights")
    a = p.parse_args(argv)
    from .export import export_bundle

    try:
        model, bundle = widen(a.bundle, a.units, a.seed)
    except BundleError as e:
        return fail(e)
    cfg = dict(bundle.manifest.get("training", {}).get("config", {}), units=a.units)
    manifest = {k: bundle.manifest[k] for k in ("title", "aliases", "description") if k in bundle.manifest}
    manifest.update(name=Path(a.out).name, metrics={}, history=[], widened_from={
        "bundle": bundle.name, "units": bundle.manifest["training"]["config"]["units"],
        "weights_sha256": bundle.manifest.get("files", {}).get("model.weights.h5")},
        training={"config": cfg, "init_from": bundle.name})
    dest = export_bundle(model, bundle.charset, a.out, manifest, generation=bundle.defaults)
    print(f"{dest}: {bundle.name} widened from {manifest['widened_from']['units']} to {a.units} units")
    return 0


if __name__ == "__main__":
    quiet_tensorflow()
    sys.exit(main())
