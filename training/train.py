"""`python -m training.train --culture NAME`: corpus -> windows -> model -> fit -> checkpoints -> bundle.

Everything a run writes goes under its run folder (`runs/NAME/`: `checkpoint/` and the candidate `bundle/`);
the candidate replaces `models/NAME` only when it is better on held-out text (or with --force)."""

from __future__ import annotations

if __name__ == "__main__":  # before the imports below: Ctrl-C while they load is one line too
    from training.cli import interrupt_in_one_line, missing_dependency_in_one_line, quiet_tensorflow

    missing_dependency_in_one_line()
    quiet_tensorflow()
    interrupt_in_one_line("before training started; nothing was saved")

import argparse
import datetime as _dt
import json
import math
import os
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import asdict, fields
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from charlm import BundleError, Charset, NoveltyIndex, Request, Runtime, generate, load_bundle
from charlm.bundle import MANIFEST, NAME_RE, WEIGHTS, swap_in
from charlm.errors import PathError
from charlm.text import END
from charlm.words import Vocabulary

from .cli import HelpFormatter, Parser, fail, quiet_tensorflow, ranged
from .corpus import CorpusError, read_corpus
from .sources import learned_from
from .distribute import STRATEGIES, StrategyError
from .windows import Windows, eval_windows, split_texts
from .config import ARCH, CANDIDATE, CARRIED, CHECKPOINT, GENERATION, TrainConfig  # noqa: F401 (names of this module too)
from .heldout import heldout_bpc

LN2 = math.log(2)

# Titles and the ancestor's short commands for the reference cultures (used when no bundle is replaced).
KNOWN = {
    "armenian": ("Армянские притчи", ["arm"], "Притчи армянского народа"),
    "hasidic": ("Хасидские притчи", ["hasid"], "Хасидские истории и притчи"),
    "indian": ("Индийские притчи", ["ind"], "Индийские притчи и сказания"),
    "jewish": ("Еврейские притчи", ["jew"], "Еврейские притчи"),
    "sufi": ("Суфийские притчи", ["suf"], "Суфийские притчи и истории"),
}

REPLACED = "replaced"  # (the run folder's subfolder for the bundles an install replaced)


class SetupError(PathError):
    """An output folder or option that makes the run impossible; the message names the path and the fix."""


def parse_args(argv=None) -> tuple[TrainConfig, SimpleNamespace]:
    """-> (the run's config, the invocation's options: resume, force, install, recipe_step)."""
    d = TrainConfig(culture="")
    pos, nonneg = ranged(int, 1), ranged(int, 0)
    p = Parser(
        prog="python -m training.train",
        description="Train a character-level proverb model on a corpus (one text per line). Checkpoints and the "
                    "new bundle go to the run folder (runs/CULTURE); the bundle replaces models/CULTURE only if "
                    "it scores better on the held-out texts (or with --force), and the old one is kept as a backup.",
        formatter_class=HelpFormatter,
    )
    p.add_argument("--culture", required=True, help="bundle name = bot command ([a-z0-9_]{1,32})")
    p.add_argument("--corpus", nargs="+", metavar="PATH", help="UTF-8 corpus file(s), one text per line (default: data/CULTURE.txt)")
    p.add_argument("--models-dir", default=d.models_dir, metavar="DIR",
                   help="the bundle is installed as DIR/CULTURE if it beats the one there")
    p.add_argument("--run-dir", metavar="DIR", help="checkpoints (DIR/checkpoint) and the new bundle (DIR/bundle) (default: runs/CULTURE)")
    p.add_argument("--checkpoint-dir", metavar="DIR", help="the checkpoint folder (default: RUN_DIR/checkpoint)")
    p.add_argument("--epochs", type=pos, default=d.epochs, help="total epochs, counting those before a --resume")
    p.add_argument("--seed", type=int, default=d.seed, help="seed of weights, dropout and window order")
    p.add_argument("--resume", action="store_true", help="continue the run folder's checkpoint exactly")
    p.add_argument("--force", action="store_true",
                   help="start over an existing checkpoint (without --resume), and install the bundle even if it is not better")
    p.add_argument("--no-install", dest="install", action="store_false",
                   help="leave the models folder alone: the bundle stays in the run folder")
    p.add_argument("--init-from", default="", metavar="BUNDLE",
                   help="start from a bundle's weights (fine-tuning; same charset): a bundle folder, e.g. base "
                        "(the shipped pretrained model) or models/sufi, or a name in --models-dir")
    p.add_argument("--recipe-step", default="", metavar="NAME", help="recorded in the manifest (set by training.recipe)")
    p.add_argument("--strategy", choices=STRATEGIES, default="default",
                   help="default: one device, and the same seed gives the same weights bit for bit. mirrored: "
                        "tf.distribute.MirroredStrategy over every local GPU (or every CPU device when there is "
                        "none). multiworker: MultiWorkerMirroredStrategy over the machines in TF_CONFIG; run the "
                        "same command on each, with the same --run-dir contents to --resume; the chief (worker 0) "
                        "alone writes checkpoints and the bundle. --batch-size stays the global batch, split "
                        "evenly across replicas. Not bit-exact: a distributed run's weights differ from a default "
                        "run's by float rounding (sums in another order), and dropout masks follow the replica "
                        "layout, so only runs of the same layout on the same hardware repeat each other "
                        "(docs/distributed.md)")
    g = p.add_argument_group("model")
    g.add_argument("--cell", choices=["lstm", "gru"], default=d.cell, help="recurrent layer type")
    g.add_argument("--layers", type=pos, default=d.layers, help="recurrent layers")
    g.add_argument("--units", type=pos, default=d.units, help="units per recurrent layer")
    g.add_argument("--embedding", type=pos, default=d.embedding, help="embedding width")
    g.add_argument("--dropout", type=ranged(float, 0, 1, high_open=True), default=d.dropout,
                   help="dropout after each recurrent layer")
    g = p.add_argument_group("data and optimisation")
    g.add_argument("--window", type=ranged(int, 2), default=d.window, help="characters per training window")
    g.add_argument("--stride", type=pos, default=d.stride, help="characters between window starts (the ancestor's step)")
    g.add_argument("--batch-size", type=pos, default=d.batch_size, help="windows per batch")
    g.add_argument("--lr", type=ranged(float, 0, low_open=True), default=d.lr, help="Adam learning rate (halved on a validation plateau)")
    g.add_argument("--min-lr", type=ranged(float, 0), default=d.min_lr, help="the learning rate is never halved below this")
    g.add_argument("--clipnorm", type=ranged(float, 0, low_open=True), default=d.clipnorm, help="gradient norm clip")
    g.add_argument("--val-share", type=ranged(float, 0, 0.5, high_open=True), default=d.val_share,
                   help="share of characters held out, as whole texts")
    g.add_argument("--split-seed", type=int, default=d.split_seed, help="seed of the validation split")
    g.add_argument("--patience", type=pos, default=d.patience, help="epochs without improvement before stopping")
    g.add_argument("--lr-patience", type=pos, default=d.lr_patience, help="epochs without improvement before halving the lr")
    g.add_argument("--steps-per-epoch", type=nonneg, default=d.steps_per_epoch, help="cap an epoch at N batches (0: all)")
    g.add_argument("--sample-every", type=nonneg, default=d.sample_every, help="print a sample every N epochs (0: never)")
    g = p.add_argument_group("bundle", "Title, aliases, description and generation defaults not given here are "
                             "kept from the bundle being replaced (models/CULTURE), else the defaults shown.")
    g.add_argument("--title", help="human name shown by the bot (default: the replaced bundle's, else the culture's known title, else CULTURE)")
    g.add_argument("--alias", dest="aliases", action="append", metavar="NAME", help="extra command, repeatable (default: the replaced bundle's)")
    g.add_argument("--description", help="one line shown by /about (default: the replaced bundle's)")
    g.add_argument("--temperature", type=ranged(float, 0, 5), help=f"default sampling temperature (default: {d.temperature})")
    g.add_argument("--top-p", type=ranged(float, 0, 1, low_open=True), help=f"default nucleus cut (default: {d.top_p})")
    g.add_argument("--top-k", type=nonneg, help=f"default top-k cut, 0: none (default: {d.top_k})")
    g.add_argument("--min-length", type=pos, help=f"characters before a sentence end may stop a proverb (default: {d.min_length})")
    g.add_argument("--max-length", type=pos, help=f"longest proverb, characters (default: {d.max_length})")
    g.add_argument("--end-boost", type=ranged(float, 0, 20), help="extra logits for '.', '!', '?' from half the maximum "
                   f"length on, so long proverbs end a sentence (default: {d.end_boost})")
    g.add_argument("--candidates", type=ranged(int, 1, 16), help="proverbs generated per request, the one whose grammar agrees best "
                   f"is served (default: {d.candidates})")
    g.add_argument("--real-words", action=argparse.BooleanOptionalAction, default=None,
                   help="among the candidates, prefer those whose words pymorphy3 or the corpus knows "
                   f"(default: {str(d.real_words).lower()})")
    g.add_argument("--no-export", dest="export", action="store_false", help="only train and checkpoint; write no bundle")
    a = p.parse_args(argv)
    if not NAME_RE.match(a.culture):
        p.error(f"--culture {a.culture!r} must be a Telegram command: lowercase letters, digits, _; at most 32")
    # Each config field is the option of the same name, except these three; title, aliases, description and
    # the generation defaults are filled in by carry_over below.
    derived = {"corpus": a.corpus or [f"data/{a.culture}.txt"], "run_dir": a.run_dir or f"runs/{a.culture}",
               "checkpoint": a.checkpoint_dir or ""}
    cfg = TrainConfig(**{f.name: derived[f.name] if f.name in derived else getattr(a, f.name)
                         for f in fields(TrainConfig) if f.name in derived or f.name not in CARRIED})
    carried = carry_over(a, cfg.install_dir)
    for k, v in carried.values.items():
        setattr(cfg, k, v)
    try:
        cfg.generation()
    except ValueError as e:
        p.error(str(e))
    return cfg, SimpleNamespace(resume=a.resume, force=a.force, install=a.install and a.export,
                                recipe_step=a.recipe_step, carried=carried.kept, strategy=a.strategy)


def carry_over(a, dest: Path) -> SimpleNamespace:
    """Title, aliases, description and generation defaults: given > the replaced bundle's > known > defaults."""
    d = TrainConfig(culture="")
    try:
        old = json.loads((dest / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        old = {}
    known_title, known_aliases, known_description = KNOWN.get(a.culture, ("", [], ""))
    given = {"title": a.title, "aliases": a.aliases, "description": a.description,
             **{k: getattr(a, k) for k in GENERATION}}
    old_values = {"title": old.get("title"), "aliases": old.get("aliases"), "description": old.get("description"),
                  **{k: (old.get("generation") or {}).get(k) for k in GENERATION}}
    fallback = {"title": known_title or a.culture, "aliases": known_aliases, "description": known_description,
                **{k: getattr(d, k) for k in GENERATION}}
    values, kept = {}, []
    for k in given:
        if given[k] is not None:
            values[k] = given[k]
        elif old_values[k] is not None:
            values[k] = old_values[k]
            kept.append(k)
        else:
            values[k] = fallback[k]
    return SimpleNamespace(values=values, kept=kept)


def check_writable(folder: Path, fix: str) -> None:
    """Create `folder` if needed and write a file in it; SetupError naming the folder and `fix` if not."""
    if folder.exists() and not folder.is_dir():
        raise SetupError(folder, f"not a folder; {fix}")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SetupError(folder, f"cannot be created ({e.strerror}); {fix}") from None
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".write-test-")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise SetupError(folder, f"not writable ({e.strerror}); {fix}") from None


def check_outputs(cfg: TrainConfig, opts) -> dict | None:
    """Before any data is read: refuse to start over a checkpoint by accident, and make sure every folder the
    run writes to is writable (not found after the first epoch, or after the last). -> the checkpoint's state."""
    from . import checkpoint

    ckpt = cfg.checkpoint_dir
    try:
        state = checkpoint.load_state(ckpt)
    except checkpoint.CheckpointError as e:
        raise SetupError(e.path, f"{e.problem}: this checkpoint cannot be resumed; start over with --force "
                         "(or choose another --run-dir)") from None
    if opts.resume and state is None:
        raise SetupError(ckpt, "no checkpoint to resume from; run without --resume first")
    if state is not None and not opts.resume and not opts.force:
        raise SetupError(ckpt, f"holds a checkpoint ({_progress(state)}); continue it with --resume, "
                         "or start over with --force (or choose another --run-dir)")
    docker = 'in Docker, run as yourself (--user "$(id -u):$(id -g)") on folders you own'
    check_writable(ckpt, f"fix its permissions or choose another --run-dir ({docker})")
    if cfg.export:
        check_writable(Path(cfg.run_dir), f"fix its permissions or choose another --run-dir ({docker})")
    if opts.install:
        check_writable(Path(cfg.models_dir), f"fix its permissions, choose another --models-dir, or pass --no-install ({docker})")
    return state


def _progress(state: dict) -> str:
    cfg = state.get("config") or {}
    e, s = state.get("epoch", 0), state.get("step", 0)
    total = cfg.get("epochs", "?")
    return f"epoch {e + 1}/{total} at batch {s}" if s else f"{e} of {total} epochs done"


class Trainer:
    """Owns the model, optimizer, data and loop state of one run."""

    def __init__(self, cfg: TrainConfig, resume: bool, out=sys.stdout, state: dict | None = None,
                 install: bool = True, force: bool = False, recipe_step: str = "", strategy: str = "default"):
        self.cfg, self.out = cfg, out
        self.strategy = strategy
        self.ckpt = cfg.checkpoint_dir
        self.install, self.force, self.recipe_step = install, force, recipe_step
        self.stop_signal = None
        self.phase = "setup"
        self.resumed = resume
        self.start_over = not resume and state is not None
        self.state = None
        if resume:
            self.state = state if state is not None else _load_resume_state(self.ckpt)
            saved = self.state["config"]
            for k in ARCH + ("window", "stride", "batch_size", "seed", "split_seed", "val_share", "init_from"):
                if saved.get(k) != getattr(cfg, k):
                    self.say(f"note: --resume keeps the checkpoint's {k}={saved.get(k)!r} (ignoring {getattr(cfg, k)!r})")
                    setattr(cfg, k, saved.get(k))
        self._prepare_data()
        self._build()

    def say(self, msg: str) -> None:
        print(msg, file=self.out, flush=True)

    # --- data ---------------------------------------------------------------------------------------
    def _prepare_data(self) -> None:
        cfg = self.cfg
        corpora = [read_corpus(p) for p in cfg.corpus]
        train, val = [], []
        for c in corpora:  # split each file on its own: the same texts are held out however files are pooled
            t, v = split_texts(c.texts, cfg.val_share, cfg.split_seed)
            train += t
            val += v
        text = "".join(t + END for t in train)
        val_text = "".join(t + END for t in val)
        self.corpora = corpora
        self.val_texts = val
        self.full_text = "".join(c.text for c in corpora)
        self.base = None
        if cfg.init_from:
            path = resolve_bundle(cfg.init_from, cfg.models_dir)
            if not path.exists():
                raise SetupError(cfg.init_from, "--init-from: no such bundle folder; the pretrained base is base/ "
                                 "(`python -m training.recipe --only base384` makes it), a shipped culture is e.g. models/sufi")
            try:
                self.base = load_bundle(path)
            except BundleError as e:
                raise SetupError(cfg.init_from, f"--init-from: {e}") from None
            self.charset = self.base.charset
            missing = self.base.charset.unknown(self.full_text)
            if missing:
                raise CorpusError(cfg.corpus[0], f"--init-from {cfg.init_from}: its charset lacks {''.join(missing)!r}; "
                                  f"fine-tune only on corpora whose characters the base model knows: build the corpus with "
                                  f"--charset-of {cfg.init_from} (python -m training.corpora fortunes|tinystories "
                                  f"--charset-of {cfg.init_from}), or train from scratch")
        elif self.state is not None:
            self.charset = Charset.from_json(json.dumps(self.state["charset"]))
            missing = self.charset.unknown(self.full_text)
            if missing:  # the corpus changed since the run began: the model has no place for these characters
                raise CorpusError(cfg.corpus[0], f"--resume: the checkpoint's charset lacks {''.join(missing[:20])!r}; "
                                  "resume on the corpus the run began with, or start over with --force")
        else:
            self.charset = Charset.from_text(self.full_text)
        self.train_ids = self.charset.encode(text)
        self.val_ids = self.charset.encode(val_text)
        if len(self.val_ids) < cfg.window + 1 and cfg.val_share > 0:
            # split_texts holds out whole texts (lines): a corpus of one line has none to spare
            print(f"warning: {cfg.corpus[0]}: {len(train)} text(s), {len(self.val_ids)} characters held out: too few to "
                  f"validate (--window {cfg.window}); early stopping and the better-than check use the training loss. "
                  "Put one text a line", file=sys.stderr, flush=True)
        if len(self.train_ids) < cfg.window * cfg.batch_size + 2:
            raise CorpusError(cfg.corpus[0], f"too small for --window {cfg.window} x --batch-size {cfg.batch_size} "
                              f"({len(self.train_ids)} training characters); lower them")
        self.windows = Windows(self.train_ids, cfg.window, cfg.stride, cfg.batch_size, cfg.seed)
        steps = self.windows.steps()
        self.steps = min(steps, cfg.steps_per_epoch) if cfg.steps_per_epoch else steps
        V = len(self.charset)
        B, T, U, L = cfg.batch_size, cfg.window, cfg.units, cfg.layers
        ids_mb = (self.train_ids.nbytes + self.val_ids.nbytes) / 1e6
        act_mb = B * T * (cfg.embedding + L * U * 8 + 3 * V) * 4 / 1e6
        legacy_gb = (len(self.train_ids) / 3) * 80 * V * 8 / 1e9
        self.say(f"corpus: {', '.join(str(c.path) for c in corpora)}: {len(train)} texts / {len(self.train_ids):,} chars for "
                 f"training, {len(val)} texts / {len(self.val_ids):,} chars held out; {V} distinct characters")
        self.say(f"memory: ids {ids_mb:.1f} MB + one batch of windows {B * (T + 1) * 4 / 1e3:.0f} KB + activations "
                 f"~{act_mb:.0f} MB (one-hot windows of step 3 x 80 would need {legacy_gb:.1f} GB)")
        self.say(f"epochs of {self.steps} batches of {B} x {T} (stride {cfg.stride}); writing to {cfg.run_dir}")

    # --- model --------------------------------------------------------------------------------------
    def _build(self) -> None:
        import keras
        import tensorflow as tf

        from .model import build_model

        from .distribute import distributed_steps, place

        cfg = self.cfg
        self.placement = where = place(self.strategy, cfg.batch_size)  # first: MultiWorkerMirroredStrategy must be
        if where.strategy is not None:
            self.say(f"strategy {where.name}: {where.replicas} replica{'s' if where.replicas != 1 else ''} ({where.where}), "
                     f"{cfg.batch_size // where.replicas} windows each per batch of {cfg.batch_size}")
        keras.utils.set_random_seed(cfg.seed)
        tf.config.experimental.enable_op_determinism()
        if self.base is not None:
            arch = self.base.manifest.get("training", {}).get("config", {})
            for k in ARCH:
                if k in arch and arch[k] != getattr(cfg, k):
                    self.say(f"note: --init-from keeps the base model's {k}={arch[k]!r}")
                    setattr(cfg, k, arch[k])
        with where.scope():  # variables made here are mirrored on every replica
            self.model = build_model(len(self.charset), cfg.embedding, cfg.units, cfg.layers, cfg.dropout, cfg.cell, cfg.seed)
            if self.base is not None:
                try:
                    self.model.load_weights(self.base.path / WEIGHTS)
                except Exception as e:  # keras raises ValueError/KeyError variants on a structure mismatch
                    raise SetupError(cfg.init_from, f"--init-from: weights do not fit this architecture ({e})") from None
            # Under a strategy the step clips the summed gradient itself (distribute.distributed_steps).
            self.optimizer = keras.optimizers.Adam(cfg.lr, clipnorm=cfg.clipnorm if where.strategy is None else None)
            self.optimizer.build(self.model.trainable_variables)
        loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="sum")
        model, opt = self.model, self.optimizer

        @tf.function
        def train_step(x, y):
            with tf.GradientTape() as tape:
                logits = model(x, training=True)  # (batch, window, vocab)
                total = loss_fn(y, logits)
                loss = total / tf.cast(tf.size(y), tf.float32)
            grads = tape.gradient(loss, model.trainable_variables)
            opt.apply_gradients(zip(grads, model.trainable_variables))
            return total

        @tf.function
        def eval_step(x, y):
            return loss_fn(y, model(x, training=False))

        self.train_step, self.eval_step, self.agree = train_step, eval_step, lambda v: v
        if where.strategy is not None:
            self.train_step, agree = distributed_steps(where, model, opt, loss_fn, cfg.clipnorm, cfg.batch_size)
            if where.name == "multiworker":
                self.agree = agree
        if self.state is not None:
            from . import checkpoint

            checkpoint.restore(self.ckpt, self.model, self.optimizer, self.state)
            st = self.state
            where = (f"in epoch {st['epoch'] + 1}/{cfg.epochs} at batch {st['step']}/{self.steps}" if st["step"]
                     else f"after epoch {st['epoch']}/{cfg.epochs}")
            self.say(f"resumed from {self.ckpt} {where}")
        else:
            self.state = {"epoch": 0, "step": 0, "sum": 0.0, "count": 0, "history": [], "best": None, "best_epoch": 0,
                          "bad": 0, "done": False, "charset": list(self.charset.chars)}
        self.state["config"] = asdict(cfg)

    def evaluate(self) -> float | None:
        if len(self.val_ids) < self.cfg.window + 1:
            return None
        total, count = 0.0, 0
        for x, y in eval_windows(self.val_ids, self.cfg.window, self.cfg.batch_size):
            total += float(self.eval_step(x, y))
            count += y.size
        return self.agree(total / count / LN2)

    # --- loop ---------------------------------------------------------------------------------------
    def _on_signal(self, signum, frame) -> None:
        if self.phase == "finish":
            if self.stop_signal is not None:  # a second Ctrl-C while the bundle is written: stop now
                raise KeyboardInterrupt
            self.say(f"{signal.Signals(signum).name}: the checkpoint is saved; finishing the bundle first "
                     "(seconds; Ctrl-C again stops now)")
        self.stop_signal = signum

    def run(self) -> int:
        from tqdm import tqdm

        from . import checkpoint

        cfg, st = self.cfg, self.state
        old = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            chief = self.placement.chief  # the other workers of a multiworker run write nothing
            save = checkpoint.save if chief else (lambda *a: None)
            if self.start_over and chief:
                checkpoint.clear(self.ckpt)
                self.say(f"--force: starting over; the old checkpoint in {self.ckpt} is gone")
            if self.resumed and (st["done"] or st["epoch"] >= cfg.epochs):
                why = (f"early stopping ended it after epoch {st['epoch']} (best: epoch {st['best_epoch']})" if st["done"]
                       else f"all {cfg.epochs} epochs are done; pass a larger --epochs to train more")
                self.say(f"nothing left to train: {why}")
            self.phase = "train"
            while not st["done"] and st["epoch"] < cfg.epochs:
                epoch = st["epoch"]
                t0 = time.time()
                bar = tqdm(total=self.steps, initial=st["step"], desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="batch",
                           file=sys.stderr, leave=False, mininterval=1 if sys.stderr.isatty() else 30, dynamic_ncols=True,
                           disable=not chief)
                for x, y in self.windows.batches(epoch, st["step"]):
                    if st["step"] >= self.steps:
                        break
                    st["sum"] += float(self.train_step(x, y))
                    st["count"] += int(y.size)
                    st["step"] += 1
                    bar.update(1)
                    if st["step"] % 20 == 0:
                        bar.set_postfix(bpc=f"{st['sum'] / st['count'] / LN2:.3f}", refresh=False)
                    if self.stop_signal is not None:
                        bar.close()
                        save(self.ckpt, self.model, self.optimizer, st)
                        name = signal.Signals(self.stop_signal).name
                        self.say(f"{name}: checkpoint saved in epoch {epoch + 1}/{cfg.epochs} at batch "
                                 f"{st['step']}/{self.steps} ({self.ckpt}); continue with --resume")
                        return 128 + self.stop_signal
                bar.close()
                self._end_epoch(epoch, time.time() - t0)
                save(self.ckpt, self.model, self.optimizer, st)
                if self.stop_signal is not None:
                    self.say(f"{signal.Signals(self.stop_signal).name}: checkpoint saved after epoch {epoch + 1}/{cfg.epochs} "
                             f"({self.ckpt}); continue with --resume")
                    return 128 + self.stop_signal
            if cfg.export and not chief:
                self.say(f"{self.placement.where}: the chief writes the bundle")
            elif cfg.export:
                self.phase = "finish"
                candidate = self.export()
                if self.install:
                    self.say(install_bundle(candidate, cfg.install_dir, self.val_texts, self.force,
                                            Path(cfg.run_dir) / REPLACED, say=self.say))
                else:
                    self.say(f"--no-install: {cfg.install_dir} left as it is")
        finally:
            for s, h in old.items():
                signal.signal(s, h)
        return 128 + self.stop_signal if self.stop_signal is not None else 0

    def _end_epoch(self, epoch: int, seconds: float) -> None:
        from . import checkpoint

        cfg, st = self.cfg, self.state
        train_bpc = st["sum"] / max(st["count"], 1) / LN2
        val_bpc = self.evaluate()
        lr = float(np.asarray(self.optimizer.learning_rate))
        st["history"].append({"epoch": epoch + 1, "train_bpc": round(train_bpc, 5),
                              "val_bpc": None if val_bpc is None else round(val_bpc, 5), "lr": lr, "seconds": round(seconds, 1)})
        score = val_bpc if val_bpc is not None else train_bpc
        mark = ""
        if st["best"] is None or score < st["best"] - 1e-4:
            st["best"], st["best_epoch"], st["bad"] = score, epoch + 1, 0
            if self.placement.chief:
                checkpoint.save_best(self.ckpt, self.model)
            mark = "  *best"
        else:
            st["bad"] += 1
            if st["bad"] >= cfg.patience:
                st["done"] = True
                mark = f"  (no improvement for {st['bad']} epochs: stopping, keeping epoch {st['best_epoch']})"
            elif st["bad"] % cfg.lr_patience == 0 and lr > cfg.min_lr:
                self.optimizer.learning_rate.assign(max(lr / 2, cfg.min_lr))
                mark = f"  (lr -> {max(lr / 2, cfg.min_lr):.2g})"
        val_s = "n/a" if val_bpc is None else f"{val_bpc:.4f}"
        self.say(f"epoch {epoch + 1}/{cfg.epochs}: train {train_bpc:.4f} bpc, validation {val_s} bpc, lr {lr:.2g}, {seconds:.0f} s{mark}")
        st.update(epoch=epoch + 1, step=0, sum=0.0, count=0)
        if cfg.sample_every and (epoch + 1) % cfg.sample_every == 0:
            self.say(f"  sample: {self.sample(epoch + 1)!r}")

    def _runtime(self, tmp: Path) -> Runtime:
        self.model.save_weights(tmp / "m.weights.h5")
        (tmp / "m.json").write_text(self.model.to_json(), encoding="utf-8")
        return Runtime.load(tmp / "m.json", tmp / "m.weights.h5")

    def sample(self, seed: int) -> str:
        with tempfile.TemporaryDirectory() as d:
            return generate(self._runtime(Path(d)), self.charset, [Request(seed, "", self.cfg.generation())])[0].text

    def export(self) -> Path:
        """The best epoch's weights as the candidate bundle in the run folder (skipped if it is already there)."""
        from . import checkpoint
        from .export import export_bundle
        from .plot import plot_history

        cfg, st = self.cfg, self.state
        dest = cfg.candidate_dir
        best = next((h for h in st["history"] if h["epoch"] == st["best_epoch"]), {})
        try:
            made = json.loads((dest / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            made = {}
        if (made.get("history") == st["history"] and made.get("best_epoch") == st["best_epoch"]
                and (made.get("training") or {}).get("config") == _portable(asdict(cfg))):
            self.say(f"bundle {dest} is already written (best epoch {st['best_epoch']})")
            return dest
        checkpoint.restore_best(self.ckpt, self.model)
        manifest = {
            "name": cfg.culture, "title": cfg.title, "aliases": cfg.aliases, "description": cfg.description,
            "seed": cfg.seed, "epochs": len(st["history"]), "best_epoch": st["best_epoch"],
            "corpus": {"files": [{"name": Path(c.path).name, "sha256": c.sha256, "bytes": c.size, "texts": len(c.texts),
                                  "chars": c.chars} for c in self.corpora],
                       "chars": sum(c.chars for c in self.corpora), "texts": sum(len(c.texts) for c in self.corpora),
                       "train_chars": int(len(self.train_ids)), "val_chars": int(len(self.val_ids))},
            "sources": learned_from(self.corpora, self.base.manifest if self.base else None),
            "metrics": {"val_bpc": best.get("val_bpc"), "train_bpc": best.get("train_bpc")},
            "history": st["history"],
            "training": {"config": _portable(asdict(cfg)), "init_from": self._base_name(),
                         "base": self.base.manifest.get("files", {}).get(WEIGHTS) if self.base else None},
        }
        if self.placement.strategy is not None:  # the run's last leg; a resumed run may have changed it
            manifest["training"]["strategy"] = {"name": self.placement.name, "replicas": self.placement.replicas}
        if self.recipe_step:
            manifest["recipe"] = {"step": self.recipe_step, "command": "python -m training.recipe"}
        with tempfile.TemporaryDirectory() as d:
            plot = plot_history(st["history"], Path(d) / "training.png", f"{cfg.title} ({cfg.culture})")
            # the novelty guard covers every text the model learned from: this run's corpora and its base's
            novelty = NoveltyIndex.of_corpora([c.text for c in self.corpora], self.base.novelty if self.base else None)
            words = Vocabulary.of_texts(t for c in self.corpora for t in c.texts)
            export_bundle(self.model, self.charset, dest, manifest, generation=cfg.generation(), plot=plot,
                          novelty=novelty, words=words)
        self.say(f"bundle written: {dest} (best epoch {st['best_epoch']}, validation {best.get('val_bpc')} bpc)")
        return dest

    def _base_name(self) -> str | None:
        """The base's name as a reader knows it: the recipe step that made it, else the bundle's name."""
        if self.base is None:
            return None
        return (self.base.manifest.get("recipe") or {}).get("step") or self.base.name


def resolve_bundle(ref: str, models_dir: str) -> Path:
    """--init-from's argument -> a bundle folder: a path, else a name in the models folder."""
    path = Path(ref)
    if path.is_dir() or os.sep in ref or (os.altsep and os.altsep in ref):
        return path
    if (Path(models_dir) / ref).is_dir():
        return Path(models_dir) / ref
    return path


def install_bundle(candidate: Path, dest: Path, heldout: list[str], force: bool, backups: Path, say=None) -> str:
    """Put `candidate` at `dest` if it scores better on `heldout` than the bundle there (or `force`). -> one line.

    Both bundles are scored the same way, through charlm with full context on the same held-out texts, so the
    comparison holds even when the two were trained with different windows. The replaced bundle is copied to
    `backups` first."""
    if not (dest / MANIFEST).is_file():
        _swap_in(candidate, dest)
        return f"{dest}: installed (there was none); the run's copy is {candidate}"
    new = load_bundle(candidate)
    reason, old_bpc = "", None
    try:
        old = load_bundle(dest)
    except BundleError as e:
        old, reason = None, f"the bundle there does not load ({e})"
    if old is not None and old.manifest.get("files") == new.manifest.get("files"):
        return f"{dest}: already this bundle"
    if old is not None and not heldout:
        reason = "there are no held-out texts to compare on (--val-share 0)"
    elif old is not None and old.charset.unknown("".join(heldout)):
        reason = f"its charset lacks characters of the held-out texts ({''.join(old.charset.unknown(''.join(heldout))[:10])!r})"
    # each scoring runs every held-out text through a model with full context, after "bundle written" (where
    # issue 25 saw 45 silent seconds on a served culture): each is announced before it starts
    size = f"{len(heldout)} held-out texts, {sum(len(t) + 1 for t in heldout):,} characters"
    if old is not None and not reason:
        if say:
            say(f"scoring the installed {dest} on {size} (held-out bits/char, full context)...")
        old_bpc, chars = heldout_bpc(old.runtime, old.charset, heldout)
    if heldout and say:
        say(f"scoring the new bundle on {size}...")
    new_bpc, chars = heldout_bpc(new.runtime, new.charset, heldout) if heldout else (None, 0)
    where = f"{chars:,} characters of {len(heldout)} held-out texts"
    if old_bpc is not None and new_bpc is not None and new_bpc < old_bpc or force:
        backup = backups / f"{dest.name}-{_dt.datetime.now(_dt.timezone.utc):%Y%m%dT%H%M%S}"
        backup.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(dest, backup)
        _swap_in(candidate, dest)
        if old_bpc is None:
            return f"{dest}: replaced (--force; {reason}); the old bundle is kept in {backup}"
        how = "" if new_bpc < old_bpc else " (--force)"
        return (f"{dest}: replaced{how}: held-out {old_bpc:.4f} -> {new_bpc:.4f} bits/char ({where}); "
                f"the old bundle is kept in {backup}")
    if old_bpc is None:
        return f"{dest}: kept, not compared: {reason}; the new bundle stays in {candidate} (--force installs it)"
    return (f"{dest}: kept: held-out {old_bpc:.4f} bits/char, the new bundle {new_bpc:.4f} ({where}); "
            f"the new bundle stays in {candidate} (--force installs it)")


def _swap_in(src: Path, dest: Path) -> None:
    """Copy bundle folder `src` to `dest` atomically: a hidden copy beside it, then renamed into place."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
    try:
        os.rmdir(tmp)
        shutil.copytree(src, tmp)
        umask = os.umask(0o022)
        os.umask(umask)
        tmp.chmod(0o777 & ~umask)
        swap_in(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _portable(config: dict) -> dict:
    """The config as the manifest keeps it: file names, not this machine's paths."""
    config = dict(config)
    config["corpus"] = [Path(p).name for p in config["corpus"]]
    config["init_from"] = Path(config["init_from"]).name if config["init_from"] else ""
    for k in ("run_dir", "models_dir", "checkpoint"):
        config.pop(k, None)
    return config


def _load_resume_state(ckpt: Path) -> dict:
    from . import checkpoint

    state = checkpoint.load_state(ckpt)
    if state is None:
        raise SetupError(ckpt, "no checkpoint to resume from; run without --resume first")
    return state


def absent(folders: list[Path]) -> list[Path]:
    """The folders (and their parents) that do not exist yet, deepest first."""
    missing = []
    for folder in folders:
        for f in (folder, *folder.parents):
            if f.exists() or f in missing or f == Path("."):
                break
            missing.append(f)
    return sorted(missing, key=lambda f: len(f.parts), reverse=True)


def remove_empty(folders: list[Path]) -> None:
    """Remove those of `folders` (deepest first) that are empty: what check_outputs made for a run that did not start."""
    for f in folders:
        try:
            f.rmdir()
        except OSError:
            pass


def main(argv=None) -> int:
    quiet_tensorflow()
    new_folders: list[Path] = []
    try:
        cfg, opts = parse_args(argv)
        new_folders = absent([cfg.checkpoint_dir, Path(cfg.run_dir), Path(cfg.models_dir)])
        state = check_outputs(cfg, opts)
        trainer = Trainer(cfg, opts.resume, state=state, install=opts.install, force=opts.force,
                          recipe_step=opts.recipe_step, strategy=opts.strategy)
        if opts.carried and cfg.export and opts.install:  # (once the run can start: not before an error)
            kept = [k for k in opts.carried if k not in GENERATION] + (["generation defaults"] if set(opts.carried) & set(GENERATION) else [])
            print(f"kept from {cfg.install_dir}: {', '.join(kept)} (options given override them)", flush=True)
        return trainer.run()
    except (CorpusError, BundleError, SetupError, StrategyError) as e:
        remove_empty(new_folders)  # a failed start leaves no empty runs/NAME/checkpoint/ behind
        return fail(e)
    except KeyboardInterrupt:
        print("interrupted; the last checkpoint saved is intact (continue with --resume)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
