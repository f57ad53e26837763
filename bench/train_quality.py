"""Held-out bits per character, side by side: the ancestor's training recipe and ours, each given the same CPU time.

    python bench/train_quality.py [CORPUS] [--budget 600] [--eval-every S] [--seed 0] [--quick] [--save FILE]
                                  [-- OPTIONS FOR python -m training.train]

CORPUS defaults to data/armenian.txt (the smallest reference corpus: the ancestor's recipe fits in memory).
Both recipes train on the same texts and are scored on the same held-out texts: the split training.train
makes (`training.windows.split_texts(texts, val_share, split_seed)` with our defaults or the options
after `--`), with the same sorted charset.

The ancestor (NeuroBasnya's lstm_for_generating_text.py, after Trung Tran's text generator, with the
window 80 and step 3 of issue 5): one-hot input (batch, 80, vocab) -> LSTM(500) -> LSTM(500), both
return_sequences -> TimeDistributed(Dense(vocab)) -> softmax, categorical cross-entropy at every position
(its TimeDistributed variant: the target is the window shifted by one character), RMSprop (Keras default,
learning rate 1e-3), batch 32, windows every 3 characters, reshuffled every epoch (Keras fit's shuffle).
Three deliberate departures, none changing what is computed: the one-hot batches are made on the fly
(tf.one_hot of integer windows) instead of one float64 array up front, so it fits in memory; the softmax
is folded into the loss (from_logits=True), the same function without the 1e-7 clipping; and the output
layer is Dense applied to every position, which is what TimeDistributed(Dense) computes (Keras 3's
TimeDistributed mis-shapes its output in a tf.function with an unknown time axis).

Ours: training.train's Trainer itself (its data, model, train step, and its end-of-epoch logic: validation,
learning-rate halving on a plateau, early stopping), with --epochs unbounded so the budget or early
stopping ends it.

Budget: CPU seconds of this process (time.process_time, all threads), counted only while a recipe trains
(batch preparation + training steps), so the shared machine's load does not decide the result; evaluation
is not counted. The ancestor runs first, then ours, in one process, both with TensorFlow's op determinism.

Scores, on the held-out texts:
  - full context (the headline): every held-out text from its start, primed with END, each character and the
    closing END predicted — how the bot uses a model;
  - 80-char windows: the held-out text cut into windows of 80 from a zero state (the ancestor's training
    condition).
"final" is what each recipe hands over when the budget runs out: the ancestor its current weights (it has no
validation), ours what training.train would export (its best epoch by its own validation, else the current
weights). "best seen" is the lowest full-context score at any check (every --eval-every CPU seconds, every
epoch end and the end), for both: what perfect early stopping could have kept.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
LN2 = math.log(2)
WINDOW, STEP, UNITS, LAYERS, BATCH, LR = 80, 3, 500, 2, 32, 1e-3  # the ancestor's recipe


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                epilog="Options after -- go to python -m training.train (our recipe), e.g. -- --units 512.")
    p.add_argument("corpus", nargs="?", default="data/armenian.txt", help="UTF-8 corpus, one text per line")
    p.add_argument("--budget", type=float, default=600.0, help="CPU seconds of training per recipe")
    p.add_argument("--eval-every", type=float, default=0.0, help="score both every S CPU seconds too (0: budget / 6)")
    p.add_argument("--seed", type=int, default=0, help="seed of weights, dropout and window order (both recipes)")
    p.add_argument("--quick", action="store_true", help="smoke run: 20 CPU seconds each (1-2 minutes in all)")
    p.add_argument("--save", metavar="FILE", help="also write the figures as JSON to FILE")
    argv = list(sys.argv[1:] if argv is None else argv)
    cut = argv.index("--") if "--" in argv else len(argv)
    a = p.parse_args(argv[:cut])
    a.train_args = argv[cut + 1 :]
    if a.quick:
        a.budget = min(a.budget, 20.0)
    if a.budget <= 0:
        p.error("--budget must be > 0")
    a.eval_every = a.eval_every or a.budget / 6
    return a


class Clock:
    """CPU seconds spent inside `with clock:` blocks only."""

    def __init__(self):
        self.used = 0.0

    def __enter__(self):
        self.t = time.process_time()

    def __exit__(self, *exc):
        self.used += time.process_time() - self.t


def heldout_bpc(logits_fn, charset, texts, cells: int = 100_000) -> float:
    """Full-context bits/char of `texts`: each primed with END, scored on its characters and closing END.

    Texts are batched longest first, padded at the end (a causal model's outputs before the padding do not
    see it), at most `cells` characters per batch; padded positions are not scored.
    """
    from charlm.text import END

    seqs = sorted((charset.encode(END + t + END) for t in texts), key=len, reverse=True)
    total, count, i = 0.0, 0, 0
    while i < len(seqs):
        T = len(seqs[i]) - 1
        group = seqs[i : i + max(1, cells // T)]
        i += len(group)
        x = np.zeros((len(group), T), np.int32)  # (texts, longest)
        y = np.zeros((len(group), T), np.int64)
        mask = np.zeros((len(group), T), bool)
        for r, s in enumerate(group):
            x[r, : len(s) - 1], y[r, : len(s) - 1], mask[r, : len(s) - 1] = s[:-1], s[1:], True
        total += _nll(logits_fn(x), y)[mask].sum()
        count += int(mask.sum())
    return total / count / LN2


def window_bpc(logits_fn, val_ids: np.ndarray, window: int = WINDOW, batch: int = 64) -> float:
    """Bits/char of the held-out text cut into non-overlapping windows of `window`, each from a zero state."""
    from training.windows import eval_windows

    total, count = 0.0, 0
    for x, y in eval_windows(val_ids, window, batch):
        total += _nll(logits_fn(x), y).sum()
        count += y.size
    return total / count / LN2


def _nll(logits, y) -> np.ndarray:
    """logits (B, T, V), targets (B, T) -> negative log-likelihood in nats (B, T), float64."""
    z = np.asarray(logits, np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    lse = np.log(np.exp(z).sum(axis=-1))
    return lse - np.take_along_axis(z, np.asarray(y)[..., None].astype(np.int64), axis=-1)[..., 0]


class Run:
    """One recipe's bookkeeping: CPU clock, batches, checks, best weights seen."""

    def __init__(self, name: str, model, logits_fn):
        self.name, self.model, self.logits_fn = name, model, logits_fn
        self.clock = Clock()
        self.batches = 0
        self.epochs = 0.0
        self.loss_sum = 0.0
        self.loss_count = 0
        self.checks: list[dict] = []
        self.best = (math.inf, None)  # (full-context bpc, weights)
        self.next_check = 0.0

    def check(self, texts, charset, why: str) -> float:
        bpc = heldout_bpc(self.logits_fn, charset, texts)
        self.checks.append({"cpu_s": round(self.clock.used, 1), "batches": self.batches, "bpc": round(bpc, 4), "at": why})
        if bpc < self.best[0]:
            self.best = (bpc, self.model.get_weights())
        print(f"  {self.name}: {self.clock.used:6.1f} CPU s, {self.batches:5d} batches, held-out {bpc:.4f} bpc ({why})",
              flush=True)
        return bpc


def train_ancestor(train_ids, val_texts, charset, budget, eval_every, seed) -> Run:
    """The ancestor's recipe for `budget` CPU seconds."""
    import keras
    import tensorflow as tf

    V = len(charset)
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input(shape=(None, V)),  # one-hot characters (batch, time, vocab)
        *[keras.layers.LSTM(UNITS, return_sequences=True) for _ in range(LAYERS)],
        # Dense on (batch, time, units) is TimeDistributed(Dense): the same weights at every position. Keras 3's
        # TimeDistributed returns a wrong shape inside a tf.function whose time axis is unknown (evaluation).
        keras.layers.Dense(V),  # logits; the softmax is in the loss
    ])
    opt = keras.optimizers.RMSprop(LR)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)  # mean over batch and time
    spec = tf.TensorSpec((None, WINDOW), tf.int32)

    @tf.function(input_signature=[spec, spec])
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(tf.one_hot(x, V), training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        opt.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    @tf.function(input_signature=[tf.TensorSpec((None, None), tf.int32)])
    def logits(x):
        return model(tf.one_hot(x, V), training=False)

    run = Run("ancestor", model, lambda x: logits(tf.constant(x)).numpy())
    starts_all = np.arange(0, len(train_ids) - WINDOW, STEP)  # range(0, len - maxlen, step)
    cols = np.arange(WINDOW + 1)
    steps_per_epoch = math.ceil(len(starts_all) / BATCH)  # Keras fit keeps the last, smaller batch
    run.next_check = eval_every
    epoch = 0
    while run.clock.used < budget:
        starts = starts_all[np.random.default_rng([seed, epoch]).permutation(len(starts_all))]
        for b in range(steps_per_epoch):
            with run.clock:
                w = train_ids[starts[b * BATCH : (b + 1) * BATCH, None] + cols]  # (batch, 81)
                loss = float(step(w[:, :-1], w[:, 1:]))
            run.batches += 1
            run.loss_sum, run.loss_count = run.loss_sum + loss, run.loss_count + 1
            run.epochs = epoch + (b + 1) / steps_per_epoch
            if run.clock.used >= budget:
                break
            if run.clock.used >= run.next_check:
                run.check(val_texts, charset, "periodic")
                run.next_check += eval_every
        else:
            epoch += 1
            run.check(val_texts, charset, f"epoch {epoch} end")
    return run


def train_ours(cfg, val_texts, budget, eval_every) -> tuple[Run, object]:
    """training.train's recipe (its Trainer) for `budget` CPU seconds or until it stops early."""
    import tensorflow as tf

    from training import checkpoint
    from training.train import Trainer

    trainer = Trainer(cfg, resume=False)
    model = trainer.model

    @tf.function(input_signature=[tf.TensorSpec((None, None), tf.int32)])
    def logits(x):
        return model(x, training=False)

    run = Run("ours", model, lambda x: logits(tf.constant(x)).numpy())
    st = trainer.state
    run.next_check = eval_every
    while run.clock.used < budget and not st["done"]:
        epoch = st["epoch"]
        t0 = time.time()
        out_of_time = False
        batches = trainer.windows.batches(epoch, st["step"])
        while st["step"] < trainer.steps:
            with run.clock:
                batch = next(batches, None)  # cutting the windows is part of the recipe's cost
                total = 0.0 if batch is None else float(trainer.train_step(*batch))
            if batch is None:
                break
            y = batch[1]
            st["sum"] += total
            st["count"] += int(y.size)
            st["step"] += 1
            run.batches += 1
            run.loss_sum, run.loss_count = run.loss_sum + total / y.size, run.loss_count + 1
            run.epochs = epoch + st["step"] / trainer.steps
            if run.clock.used >= budget:
                out_of_time = True
                break
            if run.clock.used >= run.next_check:
                run.check(val_texts, trainer.charset, "periodic")
                run.next_check += eval_every
        if out_of_time:
            break
        trainer._end_epoch(epoch, time.time() - t0)  # the recipe's own validation, lr schedule, early stopping
        run.check(val_texts, trainer.charset, f"epoch {epoch + 1} end")
    # what training.train would export now: its best epoch by its own validation, if one has ended
    if st["best_epoch"]:
        checkpoint.restore_best(trainer.ckpt, model)
    return run, trainer


def describe(run: Run, charset, val_texts, val_ids) -> dict:
    final = run.check(val_texts, charset, "final")
    return {
        "params": int(run.model.count_params()),
        "cpu_s": round(run.clock.used, 1),
        "batches": run.batches,
        "epochs": round(run.epochs, 2),
        "train_bpc": round(run.loss_sum / max(run.loss_count, 1) / LN2, 4),
        "final_bpc": round(final, 4),
        "best_seen_bpc": round(min(final, run.best[0]), 4),
        "window80_bpc": round(window_bpc(run.logits_fn, val_ids), 4),
        "checks": run.checks,
    }


def main(argv=None) -> int:
    a = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.path.insert(0, str(ROOT))
    from charlm.text import END
    from training.corpus import CorpusError, read_corpus
    from training.train import parse_args as train_args
    from training.windows import split_texts

    with tempfile.TemporaryDirectory(prefix="train-quality-") as tmp:
        cfg, _ = train_args(["--culture", "qualitybench", "--corpus", a.corpus, "--epochs", "100000", "--no-export",
                             "--checkpoint-dir", str(Path(tmp) / "ckpt"), "--sample-every", "0", "--seed", str(a.seed),
                             *a.train_args])
        try:
            corpus = read_corpus(a.corpus)
        except CorpusError as e:
            sys.exit(f"error: {e}")
        train, val = split_texts(corpus.texts, cfg.val_share, cfg.split_seed)  # the split training.train makes
        if not val:
            sys.exit(f"error: {a.corpus}: no held-out texts (val_share {cfg.val_share}); pass -- --val-share 0.08")
        from charlm import Charset

        charset = Charset.from_text(corpus.text)  # training.train's charset: sorted, from the whole corpus
        train_ids = charset.encode("".join(t + END for t in train))  # int32
        val_ids = charset.encode("".join(t + END for t in val))
        print(f"{a.corpus}: {len(train)} texts / {len(train_ids):,} characters for training, {len(val)} texts / "
              f"{len(val_ids):,} held out (val_share {cfg.val_share}, split_seed {cfg.split_seed}); {len(charset)} "
              f"distinct characters; budget {a.budget:g} CPU s each", flush=True)

        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()  # training.train turns it on; the same for both
        print(f"ancestor: {LAYERS} x {UNITS} LSTM, one-hot, window {WINDOW}, step {STEP}, batch {BATCH}, RMSprop {LR:g}",
              flush=True)
        anc = train_ancestor(train_ids, val, charset, a.budget, a.eval_every, a.seed)
        anc_r = describe(anc, charset, val, val_ids)
        print(f"ours: {cfg.layers} x {cfg.units} {cfg.cell.upper()}, embedding {cfg.embedding}, dropout {cfg.dropout}, "
              f"window {cfg.window}, stride {cfg.stride}, batch {cfg.batch_size}, Adam {cfg.lr:g}", flush=True)
        ours, trainer = train_ours(cfg, val, a.budget, a.eval_every)
        ours_r = describe(ours, charset, val, val_ids)
        ours_r["best_epoch"] = trainer.state["best_epoch"]
        ours_r["stopped_early"] = bool(trainer.state["done"])

    recipes = {
        "ancestor": f"{LAYERS}x{UNITS} LSTM, one-hot, window {WINDOW}, step {STEP}, batch {BATCH}, RMSprop {LR:g}",
        "ours": f"{cfg.layers}x{cfg.units} {cfg.cell.upper()}, emb {cfg.embedding}, dropout {cfg.dropout}, window "
                f"{cfg.window}, stride {cfg.stride}, batch {cfg.batch_size}, Adam {cfg.lr:g}",
    }
    rows = [("recipe", "params", "trained", "CPU s", "final bpc", "best seen", "80-char windows")]
    for key, r in (("ancestor", anc_r), ("ours", ours_r)):
        rows.append((f"{key}: {recipes[key]}", f"{r['params'] / 1e6:.2f} M", f"{r['batches']} batches ({r['epochs']:g} epochs)",
                     f"{r['cpu_s']:.0f}", f"{r['final_bpc']:.3f}", f"{r['best_seen_bpc']:.3f}", f"{r['window80_bpc']:.3f}"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    print()
    for k, row in enumerate(rows):
        print("| " + " | ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))) + " |")
        if k == 0:
            print("|" + "|".join("-" * (w + 2) if i == 0 else "-" * (w + 1) + ":" for i, w in enumerate(widths)) + "|")
    ratio = ours_r["final_bpc"] / anc_r["final_bpc"]
    ratio_best = ours_r["best_seen_bpc"] / anc_r["best_seen_bpc"]
    print(f"\nheld-out bits/char, full context: ours / ancestor = {ratio:.3f} (final), {ratio_best:.3f} (best seen); "
          f"ours is {'lower' if ratio < 1 else 'NOT lower'}"
          + (f"; ours stopped early after epoch {len(trainer.state['history'])}, kept epoch {ours_r['best_epoch']}"
             if ours_r["stopped_early"] else ""))
    if a.save:
        report = {"corpus": a.corpus, "budget_cpu_s": a.budget, "seed": a.seed, "val_texts": len(val),
                  "val_chars": int(len(val_ids)), "val_share": cfg.val_share, "split_seed": cfg.split_seed,
                  "recipes": recipes, "ancestor": anc_r, "ours": ours_r, "ratio_final": ratio, "ratio_best_seen": ratio_best}
        Path(a.save).write_text(json.dumps(report, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
