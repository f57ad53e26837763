"""`python -m training.train --culture NAME`: corpus -> windows -> model -> fit -> checkpoints -> bundle."""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from charlm import BundleError, Charset, Request, Runtime, Settings, generate, load_bundle
from charlm.bundle import NAME_RE
from charlm.text import END

from .corpus import CorpusError, read_corpus
from .windows import Windows, eval_windows, split_texts

LN2 = math.log(2)

# Titles and the ancestor's short commands for the reference cultures.
KNOWN = {
    "armenian": ("Армянские притчи", ["arm"], "Притчи армянского народа"),
    "hasidic": ("Хасидские притчи", ["hasid"], "Хасидские истории и притчи"),
    "indian": ("Индийские притчи", ["ind"], "Индийские притчи и сказания"),
    "jewish": ("Еврейские притчи", ["jew"], "Еврейские притчи"),
    "sufi": ("Суфийские притчи", ["suf"], "Суфийские притчи и истории"),
}

# The parts of the config that define the model; a resumed run must match them.
ARCH = ("cell", "layers", "units", "embedding")


@dataclass
class TrainConfig:
    """Everything that decides a run; stored in the checkpoint and the bundle's manifest."""

    culture: str
    corpus: list[str] = field(default_factory=list)
    models_dir: str = "models"
    checkpoint_dir: str = ""
    epochs: int = 30
    seed: int = 0
    split_seed: int = 0
    cell: str = "lstm"
    layers: int = 2
    units: int = 256
    embedding: int = 64
    dropout: float = 0.2
    window: int = 128
    stride: int = 64
    batch_size: int = 64
    lr: float = 3e-3
    min_lr: float = 1e-4
    clipnorm: float = 1.0
    val_share: float = 0.08
    patience: int = 4
    lr_patience: int = 1
    steps_per_epoch: int = 0
    sample_every: int = 5
    init_from: str = ""
    title: str = ""
    aliases: list[str] = field(default_factory=list)
    description: str = ""
    temperature: float = 0.5
    top_p: float = 0.95
    top_k: int = 0
    min_length: int = 60
    max_length: int = 400
    end_boost: float = 3.0
    export: bool = True

    def generation(self) -> Settings:
        return Settings(self.temperature, self.top_k, self.top_p, self.min_length, self.max_length, self.end_boost)


def parse_args(argv=None) -> tuple[TrainConfig, bool]:
    d = TrainConfig(culture="")
    p = argparse.ArgumentParser(
        prog="python -m training.train",
        description="Train a character-level proverb model on a corpus (one text per line) and export it as a bundle.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--culture", required=True, help="bundle name = bot command ([a-z0-9_]{1,32})")
    p.add_argument("--corpus", nargs="+", metavar="PATH", help="UTF-8 corpus file(s), one text per line (default: data/CULTURE.txt)")
    p.add_argument("--models-dir", default=d.models_dir, help="where the bundle folder is written")
    p.add_argument("--checkpoint-dir", default=None, help="checkpoints (default: checkpoints/CULTURE)")
    p.add_argument("--epochs", type=int, default=d.epochs, help="total epochs (with --resume too)")
    p.add_argument("--seed", type=int, default=d.seed, help="seed of weights, dropout and window order")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint exactly")
    p.add_argument("--init-from", default="", metavar="BUNDLE", help="start from another bundle's weights (fine-tuning; same charset)")
    g = p.add_argument_group("model")
    g.add_argument("--cell", choices=["lstm", "gru"], default=d.cell)
    g.add_argument("--layers", type=int, default=d.layers)
    g.add_argument("--units", type=int, default=d.units)
    g.add_argument("--embedding", type=int, default=d.embedding, help="embedding width")
    g.add_argument("--dropout", type=float, default=d.dropout, help="dropout after each recurrent layer")
    g = p.add_argument_group("data and optimisation")
    g.add_argument("--window", type=int, default=d.window, help="characters per training window")
    g.add_argument("--stride", type=int, default=d.stride, help="characters between window starts (the ancestor's step)")
    g.add_argument("--batch-size", type=int, default=d.batch_size)
    g.add_argument("--lr", type=float, default=d.lr, help="Adam learning rate (halved on a validation plateau)")
    g.add_argument("--min-lr", type=float, default=d.min_lr)
    g.add_argument("--clipnorm", type=float, default=d.clipnorm)
    g.add_argument("--val-share", type=float, default=d.val_share, help="share of characters held out, as whole texts")
    g.add_argument("--split-seed", type=int, default=d.split_seed, help="seed of the validation split")
    g.add_argument("--patience", type=int, default=d.patience, help="epochs without improvement before stopping")
    g.add_argument("--lr-patience", type=int, default=d.lr_patience, help="epochs without improvement before halving the lr")
    g.add_argument("--steps-per-epoch", type=int, default=d.steps_per_epoch, help="cap an epoch at N batches (0: all)")
    g.add_argument("--sample-every", type=int, default=d.sample_every, help="print a sample every N epochs (0: never)")
    g = p.add_argument_group("bundle")
    g.add_argument("--title", default="", help="human name shown by the bot")
    g.add_argument("--alias", dest="aliases", action="append", default=None, help="extra command (repeatable)")
    g.add_argument("--description", default="")
    g.add_argument("--temperature", type=float, default=d.temperature, help="default sampling temperature")
    g.add_argument("--top-p", type=float, default=d.top_p)
    g.add_argument("--top-k", type=int, default=d.top_k)
    g.add_argument("--min-length", type=int, default=d.min_length)
    g.add_argument("--max-length", type=int, default=d.max_length)
    g.add_argument("--end-boost", type=float, default=d.end_boost,
                   help="extra logits for '.', '!', '?' from half the maximum length on, so long proverbs end a sentence")
    g.add_argument("--no-export", dest="export", action="store_false", help="train and checkpoint only")
    a = p.parse_args(argv)
    if not NAME_RE.match(a.culture):
        p.error(f"--culture {a.culture!r} must be a Telegram command: lowercase letters, digits, _; at most 32")
    title, aliases, description = KNOWN.get(a.culture, ("", [], ""))
    cfg = TrainConfig(
        culture=a.culture, corpus=a.corpus or [f"data/{a.culture}.txt"], models_dir=a.models_dir,
        checkpoint_dir=a.checkpoint_dir or f"checkpoints/{a.culture}", epochs=a.epochs, seed=a.seed,
        split_seed=a.split_seed, cell=a.cell, layers=a.layers, units=a.units, embedding=a.embedding,
        dropout=a.dropout, window=a.window, stride=a.stride, batch_size=a.batch_size, lr=a.lr, min_lr=a.min_lr,
        clipnorm=a.clipnorm, val_share=a.val_share, patience=a.patience, lr_patience=a.lr_patience,
        steps_per_epoch=a.steps_per_epoch, sample_every=a.sample_every, init_from=a.init_from,
        title=a.title or title or a.culture, aliases=a.aliases if a.aliases is not None else aliases,
        description=a.description or description, temperature=a.temperature, top_p=a.top_p, top_k=a.top_k,
        min_length=a.min_length, max_length=a.max_length, end_boost=a.end_boost, export=a.export,
    )
    for name, ok in (("--epochs", cfg.epochs >= 1), ("--window", cfg.window >= 2), ("--stride", cfg.stride >= 1),
                     ("--batch-size", cfg.batch_size >= 1), ("--units", cfg.units >= 1), ("--layers", cfg.layers >= 1),
                     ("--dropout", 0 <= cfg.dropout < 1), ("--val-share", 0 <= cfg.val_share < 0.5), ("--lr", cfg.lr > 0)):
        if not ok:
            p.error(f"{name} is out of range")
    try:
        cfg.generation()
    except ValueError as e:
        p.error(str(e))
    return cfg, a.resume


class Stop(Exception):
    """Raised by the signal handler's flag check: save and exit."""


class Trainer:
    """Owns the model, optimizer, data and loop state of one run."""

    def __init__(self, cfg: TrainConfig, resume: bool, out=sys.stdout):
        self.cfg, self.out = cfg, out
        self.ckpt = Path(cfg.checkpoint_dir)
        self.stop_signal = None
        self.state = None
        if resume:
            self.state = _load_resume_state(self.ckpt)
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
        self.full_text = "".join(c.text for c in corpora)
        self.base = None
        if cfg.init_from:
            try:
                self.base = load_bundle(cfg.init_from)
            except BundleError as e:
                raise CorpusError(cfg.init_from, f"--init-from: {e.problem}") from None
            self.charset = self.base.charset
            missing = self.base.charset.unknown(self.full_text)
            if missing:
                raise CorpusError(cfg.corpus[0], f"--init-from {cfg.init_from}: its charset lacks {''.join(missing)!r}; "
                                  "fine-tune only on corpora whose characters the base model knows (or train from scratch)")
        elif self.state is not None:
            self.charset = Charset.from_json(json.dumps(self.state["charset"]))
        else:
            self.charset = Charset.from_text(self.full_text)
        self.train_ids = self.charset.encode(text)
        self.val_ids = self.charset.encode(val_text)
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
        self.say(f"epochs of {self.steps} batches of {B} x {T} (stride {cfg.stride})")

    # --- model --------------------------------------------------------------------------------------
    def _build(self) -> None:
        import keras
        import tensorflow as tf

        from .model import build_model

        cfg = self.cfg
        keras.utils.set_random_seed(cfg.seed)
        tf.config.experimental.enable_op_determinism()
        if self.base is not None:
            arch = self.base.manifest.get("training", {}).get("config", {})
            for k in ARCH:
                if k in arch and arch[k] != getattr(cfg, k):
                    self.say(f"note: --init-from keeps the base model's {k}={arch[k]!r}")
                    setattr(cfg, k, arch[k])
        self.model = build_model(len(self.charset), cfg.embedding, cfg.units, cfg.layers, cfg.dropout, cfg.cell, cfg.seed)
        if self.base is not None:
            try:
                self.model.load_weights(self.base.path / "model.weights.h5")
            except Exception as e:  # keras raises ValueError/KeyError variants on a structure mismatch
                raise CorpusError(cfg.init_from, f"--init-from: weights do not fit this architecture ({e})") from None
        self.optimizer = keras.optimizers.Adam(cfg.lr, clipnorm=cfg.clipnorm)
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

        self.train_step, self.eval_step = train_step, eval_step
        if self.state is not None:
            from . import checkpoint

            checkpoint.restore(self.ckpt, self.model, self.optimizer, self.state)
            self.say(f"resumed from {self.ckpt} at epoch {self.state['epoch']}, step {self.state['step']}")
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
        return total / count / LN2

    # --- loop ---------------------------------------------------------------------------------------
    def _on_signal(self, signum, frame) -> None:
        self.stop_signal = signum

    def run(self) -> int:
        from tqdm import tqdm

        from . import checkpoint

        cfg, st = self.cfg, self.state
        old = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            while not st["done"] and st["epoch"] < cfg.epochs:
                epoch = st["epoch"]
                t0 = time.time()
                bar = tqdm(total=self.steps, initial=st["step"], desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="batch",
                           file=sys.stderr, leave=False, mininterval=1 if sys.stderr.isatty() else 30, dynamic_ncols=True)
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
                        checkpoint.save(self.ckpt, self.model, self.optimizer, st)
                        name = signal.Signals(self.stop_signal).name
                        self.say(f"{name}: checkpoint saved at epoch {epoch + 1}, batch {st['step']}/{self.steps} "
                                 f"in {self.ckpt}; continue with --resume")
                        return 128 + self.stop_signal
                bar.close()
                self._end_epoch(epoch, time.time() - t0)
                checkpoint.save(self.ckpt, self.model, self.optimizer, st)
                if self.stop_signal is not None:
                    self.say(f"{signal.Signals(self.stop_signal).name}: checkpoint saved after epoch {epoch + 1}; continue with --resume")
                    return 128 + self.stop_signal
        finally:
            for s, h in old.items():
                signal.signal(s, h)
        if cfg.export:
            self.export()
        return 0

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
        from . import checkpoint
        from .export import export_bundle
        from .plot import plot_history

        cfg, st = self.cfg, self.state
        checkpoint.restore_best(self.ckpt, self.model)
        dest = Path(cfg.models_dir) / cfg.culture
        best = next((h for h in st["history"] if h["epoch"] == st["best_epoch"]), {})
        manifest = {
            "name": cfg.culture, "title": cfg.title, "aliases": cfg.aliases, "description": cfg.description,
            "seed": cfg.seed, "epochs": len(st["history"]), "best_epoch": st["best_epoch"],
            "corpus": {"files": [{"name": Path(c.path).name, "sha256": c.sha256, "bytes": c.size, "texts": len(c.texts),
                                  "chars": c.chars} for c in self.corpora],
                       "chars": sum(c.chars for c in self.corpora), "texts": sum(len(c.texts) for c in self.corpora),
                       "train_chars": int(len(self.train_ids)), "val_chars": int(len(self.val_ids))},
            "metrics": {"val_bpc": best.get("val_bpc"), "train_bpc": best.get("train_bpc")},
            "history": st["history"],
            "training": {"config": _portable(asdict(cfg)), "init_from": Path(cfg.init_from).name if cfg.init_from else None,
                         "base": self.base.manifest.get("files", {}).get("model.weights.h5") if self.base else None},
        }
        with tempfile.TemporaryDirectory() as d:
            plot = plot_history(st["history"], Path(d) / "training.png", f"{cfg.title} ({cfg.culture})")
            export_bundle(self.model, self.charset, dest, manifest, corpus_text=self.full_text,
                          generation=cfg.generation(), plot=plot)
        self.say(f"bundle written: {dest} (best epoch {st['best_epoch']}, validation {best.get('val_bpc')} bpc)")
        return dest


def _portable(config: dict) -> dict:
    """The config as the manifest keeps it: file names, not this machine's paths."""
    config = dict(config)
    config["corpus"] = [Path(p).name for p in config["corpus"]]
    config["init_from"] = Path(config["init_from"]).name if config["init_from"] else ""
    config.pop("checkpoint_dir", None)
    config.pop("models_dir", None)
    return config


def _load_resume_state(ckpt: Path) -> dict:
    from . import checkpoint

    state = checkpoint.load_state(ckpt)
    if state is None:
        raise CorpusError(ckpt, "no checkpoint to resume from; run without --resume first")
    return state


def main(argv=None) -> int:
    cfg, resume = parse_args(argv)
    try:
        trainer = Trainer(cfg, resume)
        return trainer.run()
    except (CorpusError, BundleError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.exit(main())
