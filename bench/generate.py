"""Generation speed, side by side: the ancestor's loop, Keras, charlm; on a 2 x 256 LSTM and the shipped model's shape.

    python bench/generate.py [--bundle models/sufi] [--corpus data/sufi.txt] [--threads 1] [--ancestor-chars 300]

Two models, one table each: Embedding(V, 64) -> LSTM(256) -> LSTM(256) -> Dense(V) (the baseline every
earlier figure was measured on), and a model of the shape of `--bundle` (layers, units, embedding and
charset read from its model.json and charset.json; default: the first bundle in models/), unless that is
the same shape. Weights are random (speed does not depend on training); each model is exported as a real
bundle with training.export.export_bundle into a temporary folder and loaded back with charlm.load_bundle.
The 2 x 256's charset comes from `--corpus` when that file exists, else from a built-in Russian alphabet
(~100 characters, like the reference corpora). The END logit is pushed down
(Dense bias -30) so no proverb stops early: every proverb really samples 300 characters. (That near-zero
tail also keeps sampling on its exact sorted path, as a trained model's sharp distributions do.)

Methods, all primed like charlm.generate and sampling with the same charlm.sampling code (temperature 0.7):
  (a) the ancestor's loop: `model.predict` on the whole id prefix for every new character (O(n²));
  (b) Keras, a compiled single-step cell: one `tf.function(ids, states) -> (logits, states)` call per
      character through the layers' own cells, the state carried; (b′) the same with XLA (jit_compile);
  (c) charlm: `charlm.generate` on the bundle (priming, sampling, stop rules), batch 1 and batch 32, with
      its exact whole-number products (one gemm for a batch of 8 or more rows, batch invariant by arithmetic);
      (c′) float32 products, one gemv per row (round 1's way to batch invariance), the rest of the runtime as
      in (c): loaded and run under tests/charlm/floats.py's `float_products`.
Times are the best of --repeats runs (wall clock, and CPU time of the process, all threads). It prints a
markdown table (for the README) and diagnostics, and writes nothing outside a temporary folder.
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ALPHABET = (
    " !\"'(),-.:;?«»—…\u2029\n0123456789"
    "абвгдежзийклмнопрстуфхцчшщъыьэюяё"
    "АБВГДЕЖЗИЙКЛМНОПРСТУФХЦЧШЩЪЫЬЭЮЯЁ"
)  # 99 characters
LENGTH = 300  # characters in one proverb
UNITS = 256
EMBED = 64


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--corpus", default="data/sufi.txt", help="text whose characters make the charset (optional)")
    p.add_argument("--threads", type=int, default=1, help="threads for TensorFlow (intra and inter op) and BLAS")
    p.add_argument("--ancestor-chars", type=int, default=LENGTH,
                   help="characters to really generate with the ancestor's loop (<300: the rest is extrapolated)")
    # best of 10: on a shared 2-core machine, runs of 3-5 repeats put charlm's batch-1 ratio anywhere in 5.9-6.3x
    p.add_argument("--repeats", type=int, default=10, help="timed runs per method (the best is reported)")
    p.add_argument("--batch", type=int, default=32, help="the larger charlm batch")
    p.add_argument("--bundle", type=Path, default=None,
                   help="a bundle whose shape to measure beside the 2 x 256 (default: the first in models/)")
    return p.parse_args(argv)


def bundle_shape(path: Path) -> tuple[str, list[int], int, list[str]]:
    """(recurrent layer class, units per layer, embedding width, charset) of a bundle folder."""
    import json

    try:
        layers = json.loads((path / "model.json").read_text(encoding="utf-8"))["config"]["layers"]
        chars = json.loads((path / "charset.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, KeyError) as e:
        raise SystemExit(f"{path}: not a bundle folder with model.json and charset.json ({e})")
    rnn = [l for l in layers if l["class_name"] in ("LSTM", "GRU")]
    emb = [l["config"]["output_dim"] for l in layers if l["class_name"] == "Embedding"]
    if len(rnn) != 2 or not emb or any(l["class_name"] != "LSTM" for l in rnn):
        raise SystemExit(f"{path}: this bench measures Embedding -> LSTM -> LSTM -> Dense models only")
    return "LSTM", [int(l["config"]["units"]) for l in rnn], int(emb[0]), chars


def main(argv=None) -> int:
    args = parse_args(argv)
    if not 30 <= args.ancestor_chars <= LENGTH:
        raise SystemExit(f"--ancestor-chars must be between 30 and {LENGTH}")
    bundle = args.bundle
    if bundle is None:
        found = sorted(p.parent for p in Path("models").glob("*/model.json"))
        bundle = found[0] if found else None
    shipped = bundle_shape(Path(bundle)) if bundle is not None else None
    # Thread counts must be fixed before numpy / TensorFlow start their pools.
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from training.cli import quiet_tensorflow

    quiet_tensorflow()  # no absl/oneDNN start-up lines (TF_CPP_MIN_LOG_LEVEL=0 brings them back)
    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    import keras

    import charlm
    from charlm import Charset, Request, Settings, load_bundle
    from charlm.sampling import choose, probabilities
    from charlm.text import END
    from tests.charlm.floats import float_products
    from training.export import export_bundle

    corpus = Path(args.corpus)
    if corpus.is_file():
        charset = Charset.from_text(corpus.read_text(encoding="utf-8") + END)
        source = str(corpus)
    else:
        charset = Charset.from_text(ALPHABET)
        source = "built-in alphabet"
    results = {}

    def measure(units: list[int], embed: int, charset, source: str) -> dict:
        """Every method on one random-weight Embedding(V, embed) -> LSTM(u) ... -> Dense(V); prints its table."""
        V = len(charset)
        end_id = charset.chars.index(END)
        # every method is primed the way charlm.generate primes a proverb (the end of a previous text)
        start = getattr(importlib.import_module("charlm.generate"), "start_context", lambda cs: END)(charset)
        prime = [int(i) for i in charset.encode(start)]

        # --- the model and its bundle -------------------------------------------------------------------
        keras.utils.set_random_seed(0)
        inp = keras.Input(shape=(None,), dtype="int32")
        x = keras.layers.Embedding(V, embed)(inp)
        x = keras.layers.LSTM(units[0], return_sequences=True)(x)
        x = keras.layers.LSTM(units[1], return_sequences=True)(x)
        x = keras.layers.Dense(V)(x)
        model = keras.Model(inp, x)
        emb_l, lstm1, lstm2, dense = model.layers[1:]
        kernel, bias = dense.get_weights()
        bias[end_id] = -30.0  # no END: every proverb runs the full 300 characters
        dense.set_weights([kernel, bias])

        settings = Settings(temperature=0.7, min_length=LENGTH, max_length=LENGTH)
        tmp = tempfile.TemporaryDirectory(prefix="bench-generate-")
        export_bundle(model, charset, Path(tmp.name) / "bench", {"name": "bench"}, generation=settings, golden=[(1, "")])
        bundle = load_bundle(Path(tmp.name) / "bench")
        runtime = bundle.runtime

        temp = np.array([settings.temperature])
        zero_k, one_p = np.array([0]), np.array([1.0])

        def sample(logits, rng):  # (1, V) -> id, the same code charlm.generate uses
            return int(choose(probabilities(logits, temp, zero_k, one_p), np.array([rng.random()]))[0])

        def clock():  # (wall, CPU of this process, all threads) in ms
            return np.array([time.perf_counter(), time.process_time()]) * 1e3

        # --- (a) the ancestor: model.predict on the whole prefix, every character -------------------------
        def ancestor(n_chars: int, seed: int):
            rng = np.random.default_rng(seed)
            ids = list(prime)
            steps = []  # (wall, cpu) ms per character
            for _ in range(n_chars):
                t0 = clock()
                logits = model.predict(np.array([ids], np.int32), verbose=0)[:, -1]  # (1, V)
                ids.append(sample(logits, rng))
                steps.append(clock() - t0)
            return np.array(steps).reshape(-1, 2), ids

        # --- (b) Keras, compiled single-step cell, state carried -----------------------------------------
        spec1, spec2 = tf.TensorSpec([None, units[0]], tf.float32), tf.TensorSpec([None, units[1]], tf.float32)

        def zero_state():
            z1, z2 = tf.zeros([1, units[0]]), tf.zeros([1, units[1]])
            return (z1, z1, z2, z2)

        def compiled_step(jit: bool):
            """One step of the model through the layers' own cells: (ids, h1, c1, h2, c2) -> (logits, states)."""

            @tf.function(input_signature=[tf.TensorSpec([None], tf.int32), spec1, spec1, spec2, spec2], jit_compile=jit)
            def cell_step(ids, h1, c1, h2, c2):
                x = emb_l(ids)  # (B, embed)
                x, (h1, c1) = lstm1.cell(x, [h1, c1], training=False)
                x, (h2, c2) = lstm2.cell(x, [h2, c2], training=False)
                return dense(x), h1, c1, h2, c2  # (B, V) logits

            return cell_step

        cell_step, xla_step = compiled_step(False), compiled_step(True)

        def keras_cell(n_chars: int, seed: int, fn=cell_step):
            rng = np.random.default_rng(seed)
            state = zero_state()
            ids = list(prime)
            t0 = clock()
            for i in prime[:-1]:
                _, *state = fn(tf.constant([i], tf.int32), *state)
            for _ in range(n_chars):
                logits, *state = fn(tf.constant([ids[-1]], tf.int32), *state)
                ids.append(sample(logits.numpy(), rng))
            return clock() - t0, ids

        def keras_steps(n: int = LENGTH):
            """The compiled cell alone: n steps, logits fetched to numpy, no sampling."""
            state = zero_state()
            ids = tf.constant([end_id], tf.int32)
            t0 = clock()
            for _ in range(n):
                logits, *state = cell_step(ids, *state)
                logits.numpy()
            return clock() - t0

        # --- (c) charlm ----------------------------------------------------------------------------------
        class Counting:
            """The bundle's runtime, counting the rows it steps: one row-step per sampled character."""

            def __init__(self, inner):
                self.inner, self.rows = inner, 0

            def __getattr__(self, name):
                return getattr(self.inner, name)

            def step(self, ids, state):
                self.rows += len(ids)
                return self.inner.step(ids, state)

        counting = Counting(runtime)

        def charlm_batch(batch: int, seed: int):
            reqs = [Request(seed + i, "", settings) for i in range(batch)]
            counting.rows = 0
            t0 = clock()
            res = charlm.generate(counting, charset, reqs)
            t = clock() - t0
            # the text is cut at a word boundary after 300 chars, so count the steps, not the text:
            # len(prime) - 1 priming steps, then one step per sampled character
            expected = batch * (len(prime) - 1 + LENGTH)
            assert counting.rows == expected, f"expected {expected} steps, ran {counting.rows}"
            return t, res

        def charlm_steps(batch: int, n: int = LENGTH):
            """The runtime alone: n calls of runtime.step, no sampling."""
            inner = counting.inner
            ids = np.full(batch, end_id, np.int64)
            state = inner.initial_state(batch)
            t0 = clock()
            for _ in range(n):
                _, state = inner.step(ids, state)
            return clock() - t0

        def best_of(fn, *a):  # the least-disturbed run, wall and CPU each: the machine may be shared
            return np.min([fn(*a) for _ in range(args.repeats)], axis=0)

        # --- checks: the three compute the same thing ------------------------------------------------------
        probe = np.random.default_rng(1).integers(0, V, size=(1, 40)).astype(np.int32)
        keras_logits = model.predict(probe, verbose=0)  # (1, 40, V)
        charlm_logits = runtime.forward(probe)
        state = zero_state()
        cell_logits = []
        for t in range(probe.shape[1]):
            lg, *state = cell_step(tf.constant(probe[:, t]), *state)
            cell_logits.append(lg.numpy())
        cell_logits = np.stack(cell_logits, axis=1)
        diff_charlm = float(np.abs(keras_logits - charlm_logits).max())
        diff_cell = float(np.abs(keras_logits - cell_logits).max())

        load0 = os.getloadavg()[0]
        # --- warm up (tracing, first calls), then time ---------------------------------------------------
        ancestor(3, 0)
        keras_cell(10, 0)
        keras_cell(10, 0, xla_step)
        charlm_batch(2, 0)

        a_steps, a_ids = ancestor(args.ancestor_chars, 7)  # (n, 2)
        n_a = len(a_steps)
        if n_a >= LENGTH:
            a_total = a_steps[:LENGTH].sum(axis=0)
            a_label = "measured"
        else:  # fit ms(t) = c0 + c1·t (c1 >= 0: the prefix only grows) over the measured steps, sum it to t = 300
            t = np.arange(1, n_a + 1)
            rest = np.arange(n_a + 1, LENGTH + 1)
            fits = []
            for j in (0, 1):  # wall, CPU
                c1, c0 = np.polyfit(t, a_steps[:, j], 1)
                if c1 < 0:
                    c1, c0 = 0.0, float(np.median(a_steps[:, j]))
                fits.append((c0 + c1 * rest).sum())
            a_total = a_steps.sum(axis=0) + np.array(fits)
            a_label = f"{n_a} characters measured, the rest extrapolated linearly"

        b_total = best_of(lambda: keras_cell(LENGTH, 7)[0])
        _, b_ids = keras_cell(LENGTH, 7)
        x_total = best_of(lambda: keras_cell(LENGTH, 7, xla_step)[0])
        c1_total = best_of(lambda: charlm_batch(1, 7)[0])
        cB_total = best_of(lambda: charlm_batch(args.batch, 7)[0])
        c1_res = charlm_batch(1, 7)[1]
        kstep = best_of(keras_steps) / LENGTH
        step1 = best_of(charlm_steps, 1) / LENGTH
        stepB = best_of(charlm_steps, args.batch) / LENGTH

        # round 1's way to batch invariance: float32 products, one gemv per row
        with float_products():
            counting.inner = load_bundle(Path(tmp.name) / "bench").runtime
            try:
                charlm_batch(2, 0)
                r1_total = best_of(lambda: charlm_batch(1, 7)[0])
                rB_total = best_of(lambda: charlm_batch(args.batch, 7)[0])
                r1_res = charlm_batch(1, 7)[1]
                row1 = best_of(charlm_steps, 1) / LENGTH
                rowB = best_of(charlm_steps, args.batch) / LENGTH
            finally:
                counting.inner = runtime

        # --- report ------------------------------------------------------------------------------------------
        # every figure is (wall ms, CPU ms); per character and per 300-character proverb
        per_char = {"a": a_total / LENGTH, "b": b_total / LENGTH, "x": x_total / LENGTH, "c1": c1_total / LENGTH,
                    "cB": cB_total / (args.batch * LENGTH), "r1": r1_total / LENGTH,
                    "rB": rB_total / (args.batch * LENGTH)}
        rows = [
            ("a", "(a) ancestor: `model.predict` on the whole prefix, every char", "1"),
            ("b", "(b) Keras: compiled single-step cell (`tf.function`), state carried", "1"),
            ("x", "(b′) the same cell, XLA (`jit_compile=True`)", "1"),
            ("c1", "(c) charlm (numpy): `charlm.generate`, exact products", "1"),
            ("cB", "(c) charlm (numpy): `charlm.generate`, exact products", str(args.batch)),
            ("r1", "(c′) float32 products, one gemv per row (round 1's way)", "1"),
            ("rB", "(c′) float32 products, one gemv per row (round 1's way)", str(args.batch)),
        ]
        print(f"\n2-layer {units[0]}/{units[1]}-unit LSTM (embedding {embed}, vocabulary {V} from {source}), random weights, "
              f"{LENGTH}-character proverbs at temperature {settings.temperature}, every method sampling with "
              f"charlm.sampling; {args.threads} thread(s) for TensorFlow (intra/inter op) and BLAS; best of "
              f"{args.repeats} runs ((a): one run, {a_label}); load average {load0:.1f} before, "
              f"{os.getloadavg()[0]:.1f} after, on {os.cpu_count()} CPUs.\n")
        print("| method | batch | ms / char | ms / 300-char proverb | CPU ms / char | (a) ÷ this | (b) ÷ this |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for key, name, batch in rows:
            pc = per_char[key]
            print(f"| {name} | {batch} | {pc[0]:.3f} | {pc[0] * LENGTH:,.1f} | {pc[1]:.3f} | "
                  f"{per_char['a'][0] / pc[0]:,.0f}× | {per_char['b'][0] / pc[0]:,.1f}× |")
        print(f"\nBatch {args.batch}: ms / proverb is the batch's wall time ÷ {args.batch} (the whole batch takes "
              f"{cB_total[0]:,.0f} ms). Ratios use wall time; by CPU time charlm batch 1 is "
              f"{per_char['b'][1] / per_char['c1'][1]:.1f}× (b) and {per_char['a'][1] / per_char['c1'][1]:,.0f}× (a).")
        at = [k for k in (1, 30, 60, 150, 300) if k <= n_a]
        print("(a) per character grows with the prefix: "
              + ", ".join(f"{a_steps[k - 1, 0]:.1f} ms at {k} chars" for k in at))
        print(f"model step alone (no sampling, wall): Keras compiled cell {kstep[0]:.3f} ms; charlm runtime.step "
              f"{step1[0]:.3f} ms at batch 1 ({kstep[0] / step1[0]:.1f}× faster), {stepB[0]:.3f} ms at batch "
              f"{args.batch} ({stepB[0] / args.batch:.4f} ms/char)")
        print(f"runtime.step wall (CPU), exact products / float32 products one gemv per row: batch 1 "
              f"{step1[0]:.3f} ({step1[1]:.3f}) / {row1[0]:.3f} ({row1[1]:.3f}) ms = {row1[0] / step1[0]:.2f}×, "
              f"batch {args.batch} {stepB[0]:.3f} ({stepB[1]:.3f}) / {rowB[0]:.3f} ({rowB[1]:.3f}) ms = "
              f"{rowB[0] / stepB[0]:.2f}×")
        print(f"same model: max |logit diff| vs Keras forward: charlm {diff_charlm:.1e} (exact products round inputs "
              f"and weights), compiled cell {diff_cell:.1e}")
        same = charset.decode(b_ids[len(prime):]).startswith(r1_res[0].raw.removesuffix("…"))
        n_p = len(prime) + n_a
        print(f"(b) and (c′) sample the same text for the same seed: {same}; (a) too: {a_ids[:n_p] == b_ids[:n_p]}")
        target_b = per_char["b"][0] / per_char["c1"][0]
        target_bB = per_char["b"][0] / per_char["cB"][0]
        target_a = per_char["a"][0] / per_char["c1"][0]
        print(f"targets: charlm batch 1 >= 6× (b): {target_b:.1f}× {'ok' if target_b >= 6 else 'MISSED'} "
              f"((b′) XLA: {per_char['x'][0] / per_char['c1'][0]:.1f}×); batch {args.batch} >= 20× (b): "
              f"{target_bB:.1f}× {'ok' if target_bB >= 20 else 'MISSED'}; "
              f">= 500× (a): {target_a:,.0f}× {'ok' if target_a >= 500 else 'MISSED'}")
        tmp.cleanup()
        return per_char

    base = measure([UNITS, UNITS], EMBED, charset, source)
    if shipped is not None and (shipped[1], shipped[2], len(shipped[3])) != ([UNITS, UNITS], EMBED, len(charset)):
        big = measure(shipped[1], shipped[2], Charset(tuple(shipped[3])), f"{bundle}/charset.json")
        print(f"\nshipped shape ({bundle}) vs 2 x {UNITS}, wall ms / char: charlm batch 1 "
              f"{big['c1'][0] / base['c1'][0]:.2f}x, batch {args.batch} {big['cB'][0] / base['cB'][0]:.2f}x, "
              f"Keras cell {big['b'][0] / base['b'][0]:.2f}x")
    print(f"versions: python {platform.python_version()}, numpy {np.__version__}, tensorflow {tf.__version__}, "
          f"keras {keras.__version__}; {platform.machine()}, {os.cpu_count()} CPUs")
    try:
        from threadpoolctl import threadpool_info
    
        for pool in threadpool_info():
            print(f"BLAS: {pool.get('internal_api')} {pool.get('version')} {pool.get('architecture')}, "
                  f"{pool.get('num_threads')} thread(s)")
    except ImportError:
        print("BLAS: " + ", ".join(f"{k}={v}" for k, v in os.environ.items() if k.startswith("OPENBLAS")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
