"""`python -m training.import_legacy`: serve a char-LSTM trained with the legacy Keras 2 recipe.

    python -m training.import_legacy --json MODEL.json --weights WEIGHTS.hdf5 --charset CHARSET.txt \\
        --name NAME [--models-dir models] [--title T] [--alias A] [--description D] [--corpus TEXT] [--force]

The legacy model (one-hot input -> stacked LSTM -> TimeDistributed(Dense(vocab)) -> softmax) is rebuilt in
Keras 3 with the same weights: integer ids -> Embedding holding the identity matrix (one-hot @ kernel is a
row lookup; the charlm runtime folds it into the first LSTM's input table) -> the LSTMs -> Dense(vocab).
Keras 2's hard_sigmoid (clip(0.2x + 0.5)) differs from Keras 3's (clip(x/6 + 0.5)); gates that use it are
reproduced exactly by scaling the weights that feed them by 1.2. The charset file is used in its own order,
never sorted (see training.legacy.read_charset for the one trailing-newline rule).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from charlm import BundleError, load_bundle
from charlm.bundle import NAME_RE, sha256_file
from charlm.generate import start_context

from .cli import fail, quiet_tensorflow
from .legacy import (
    HARD_SIGMOID_SCALE,
    LegacyImportError,
    LegacyModel,
    epoch_from_name,
    read_architecture,
    read_charset,
    read_weights,
    require_file,
)

NOTE = "imported from legacy Keras 2 model"


def _scaled(kernel: np.ndarray, bias: np.ndarray | None, recurrent: np.ndarray | None, cols: np.ndarray):
    """Multiply the columns `cols` of every matrix (and bias) feeding a Keras-2 hard_sigmoid by 1.2."""
    scale = np.ones(kernel.shape[1], np.float32)
    scale[cols] = HARD_SIGMOID_SCALE
    return kernel * scale, None if bias is None else bias * scale, None if recurrent is None else recurrent * scale


def to_keras(model: LegacyModel):
    """The legacy model as a Keras 3 model over integer ids, with the legacy weights; same outputs."""
    import keras

    vocab = model.input_size
    x = inp = keras.Input(shape=(None,), dtype="int32", name="ids")  # (batch, time)
    assign = []  # (keras layer, weights) set once the model is built
    if model.one_hot:
        taken = {l.name for l in model.layers}
        name = next(n for n in ("one_hot", "one_hot_input", "legacy_one_hot") if n not in taken)
        emb = keras.layers.Embedding(vocab, vocab, name=name)  # row i of the identity is one_hot(i)
        x = emb(x)
        assign.append((emb, [np.eye(vocab, dtype=np.float32)]))
    for layer in model.layers:
        w = layer.weights
        if layer.kind == "Embedding":
            k = keras.layers.Embedding(vocab, layer.units, name=layer.name)
            arrays = [w["embeddings"]]
        elif layer.kind == "LSTM":
            kernel, bias, rec = w["kernel"], w.get("bias"), w["recurrent_kernel"]
            if layer.recurrent_activation == "hard_sigmoid":
                u = layer.units  # gate columns i, f, c, o (same order in Keras 2 and 3); c is not a gate
                gates = np.r_[0 : 2 * u, 3 * u : 4 * u]
                kernel, bias, rec = _scaled(kernel, bias, rec, gates)
            k = keras.layers.LSTM(layer.units, activation=layer.activation, recurrent_activation=layer.recurrent_activation,
                                  use_bias=layer.use_bias, return_sequences=True, name=layer.name)
            arrays = [kernel, rec] + ([bias] if layer.use_bias else [])
        else:
            kernel, bias = w["kernel"], w.get("bias")
            if layer.activation == "hard_sigmoid":
                kernel, bias, _ = _scaled(kernel, bias, None, np.arange(kernel.shape[1]))
            k = keras.layers.Dense(layer.units, activation=layer.activation, use_bias=layer.use_bias, name=layer.name)
            arrays = [kernel] + ([bias] if layer.use_bias else [])
        x = k(x)
        assign.append((k, arrays))
    keras_model = keras.Model(inp, x, name="legacy_import")  # (batch, time) -> (batch, time, vocab)
    for k, arrays in assign:
        k.set_weights([np.asarray(a, np.float32) for a in arrays])
    return keras_model


def _read_corpus(path: Path) -> str:
    """The legacy corpus exactly as the model saw it (for the recitation guard): UTF-8, nothing normalised."""
    require_file(path, "corpus")
    try:
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise LegacyImportError(path, f"not UTF-8 text (byte {e.start})") from None


def import_legacy(
    json_path: str | Path,
    weights_path: str | Path,
    charset_path: str | Path,
    name: str,
    models_dir: str | Path = "models",
    title: str | None = None,
    aliases: list[str] | None = None,
    description: str | None = None,
    corpus: str | Path | None = None,
    force: bool = False,
) -> Path:
    """Check the legacy files, rebuild the model in Keras 3 and export it as bundle `models_dir/name`."""
    json_path, weights_path, charset_path = Path(json_path), Path(weights_path), Path(charset_path)
    dest = Path(models_dir) / name
    if not NAME_RE.match(name):
        raise LegacyImportError(dest, f"name {name!r} is not a Telegram command ([a-z0-9_]{{1,32}})")
    if dest.exists() and not force:
        raise LegacyImportError(dest, "already exists; pass --force to replace it")
    legacy = read_architecture(json_path)
    read_weights(weights_path, legacy)
    charset, charset_rule = read_charset(charset_path, legacy.input_size)
    start = start_context(charset)
    if not all(c in charset for c in start):
        raise LegacyImportError(charset_path, "the charset has neither a line break nor a space, so there is nothing to start a text with")
    corpus_text = _read_corpus(Path(corpus)) if corpus is not None else None

    sources = {"json": json_path, "weights": weights_path, "charset": charset_path}
    manifest = {
        "name": name,
        "title": title or name,
        "aliases": list(aliases or []),
        "description": description or NOTE,
        "source": {
            "note": NOTE,
            "files": {k: {"file": p.name, "sha256": sha256_file(p)} for k, p in sources.items()},
            "keras_version": legacy.keras_version,
            "backend": legacy.backend,
            "architecture": legacy.architecture,
            "charset": charset_rule,
            "start": start,
            "hard_sigmoid": "Keras 2 hard_sigmoid gates reproduced by scaling their weights by 1.2 (Keras 3 hard_sigmoid)"
            if any(l.recurrent_activation == "hard_sigmoid" or (l.kind == "Dense" and l.activation == "hard_sigmoid") for l in legacy.layers)
            else None,
        },
        "corpus": None if corpus_text is None else {"file": Path(corpus).name, "sha256": sha256_file(corpus), "chars": len(corpus_text)},
        "metrics": {},
        "epochs": epoch_from_name(weights_path),
    }
    quiet_tensorflow()
    from .export import export_bundle  # imports Keras: only once every file has been checked

    export_bundle(to_keras(legacy), charset, dest, manifest, corpus_text=corpus_text)
    load_bundle(dest)  # what the bot will do at startup
    return dest


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, import, print one line; errors are one line on stderr, exit status 2."""
    p = argparse.ArgumentParser(prog="python -m training.import_legacy", description=__doc__.splitlines()[0])
    p.add_argument("--json", required=True, type=Path, help="the architecture, as written by model.to_json()")
    p.add_argument("--weights", required=True, type=Path, help="the HDF5 file written by model.save_weights() (or model.save())")
    p.add_argument("--charset", required=True, type=Path, help="the model's characters in index order, as one UTF-8 string")
    p.add_argument("--name", required=True, help="the bundle's name = the bot command ([a-z0-9_]{1,32})")
    p.add_argument("--models-dir", type=Path, default=Path("models"), help="where bundles live (default: models)")
    p.add_argument("--title", help="the name people see (default: NAME)")
    p.add_argument("--alias", action="append", default=[], help="another command for this bundle (repeatable)")
    p.add_argument("--description", help="one line about the model")
    p.add_argument("--corpus", type=Path, help="the text the model was trained on: lets the bot refuse verbatim recitation")
    p.add_argument("--force", action="store_true", help="replace an existing bundle of that name")
    args = p.parse_args(argv)
    try:
        dest = import_legacy(args.json, args.weights, args.charset, args.name, args.models_dir, args.title,
                             args.alias, args.description, args.corpus, args.force)
    except (LegacyImportError, BundleError) as e:
        return fail(e)
    bundle = load_bundle(dest)
    sample = bundle.manifest["golden"][0]["text"] if bundle.manifest.get("golden") else ""
    print(f"{dest}: {NOTE} ({len(bundle.charset)} characters, {', '.join(bundle.manifest['source']['architecture'])}); "
          f"sample: {sample[:80]!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
