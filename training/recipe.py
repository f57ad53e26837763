"""`python -m training.recipe`: the shipped bundles from the corpora, as one resumable command.

    python -m training.recipe [--only STEP ...] [--dry-run] [--force] [--set KEY=VALUE ...]

The steps (the STEPS table below) run in order: pooled pretraining of a 2 x 256 LSTM on the five parable
corpora, a fine-tune of sufi from it, its function-preserving widening to 384 units, continued pooled
pretraining of the wider model with the fortunes-ru sayings added (the base, installed as `base/`, which
the bot does not serve); then round 3 (issue 23): TinyStories-ru's simple stories (`simple`), the same with
every corpus written for the project (`genre`); round 4: the same with the written corpora four times over
(`mix`), and a fine-tune of every parable culture from it on its own written corpus (aphorism's is round 3's,
from `genre`), installed into models/ only when better on held-out text than the bundle there, or with --force. Each step writes under runs/STEP/ (a training step:
checkpoint/ and the candidate bundle/), and every bundle's manifest records the step that made it
("recipe": {"step": ...}). Run it again after an interruption and it continues: finished steps are
skipped, an interrupted training step resumes from its checkpoint bit-exactly. A step whose numbers were
raised in the table (more epochs) continues from its checkpoint too.

Needs data/armenian.txt ... (`python -m training.corpora fetch`), Debian's fortunes-ru package, and a copy of
TinyStories-ru's shards (`--tinystories DIR`, github.com/MichaelMonashev/TinyStories-ru).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from .cli import HelpFormatter, Parser, fail

CULTURES = ("armenian", "hasidic", "indian", "jewish", "sufi")
PARABLES = [f"data/{c}.txt" for c in CULTURES]

# Fine-tuning one culture from a pretrained model (docs/experiments.md, section 2): a lower lr, the culture's
# own corpus at stride 64, short epochs, early stopping on its own held-out texts. FINE_TUNE made the round-1
# bundles from base256; FINE_TUNE_384 the round-2 ones from base384 (lr 1e-3: the 2 x 384 base's held-out
# bits/char rose after 1-2 epochs at 1.5e-3 on the small corpora).
FINE_TUNE = dict(lr=1.5e-3, stride=64, dropout=0.2, steps_per_epoch=40, patience=3, lr_patience=1, epochs=30)
# The shipped decoding: 40-160 characters, best of 3 by the agreement check (docs/quality.md, panel C, and the
# serving budget in bench/README.md).
FINE_TUNE_384 = dict(lr=1e-3, stride=64, dropout=0.2, steps_per_epoch=40, patience=2, lr_patience=1, epochs=6,
                     top_p=0.9, end_boost=3.0, candidates=3, min_length=40, max_length=160)


# Round 3 (issue 23). PRETRAIN_SIMPLE: the pilot's schedule, longer (TinyStories-ru held-out bits/char 1.60 after
# the first 100 batches, 1.21 after 22 x 100, 1.137 after 49 x 100 and still falling ~0.003 an epoch: stopped for time). PRETRAIN_GENRE holds out 8 % of every file, as the fine-tunes do:
# split_texts' held-out texts at 0.08 are the same texts whether a file is pooled or alone, so no written text a
# fine-tune holds out was seen in pretraining. FINE_TUNE_WRITTEN: half the round-2 lr, to keep the grammar (round 3's
# fine-tunes; aphorism's is still the shipped one).
SERVED = ("armenian", "hasidic", "indian", "jewish", "sufi", "aphorism")
PARABLE_CULTURES = SERVED[:5]
WRITTEN = [f"corpora/{c}.written.txt" for c in SERVED]
PRETRAIN_SIMPLE = dict(window=128, stride=128, batch_size=64, dropout=0.1, lr=1e-3, steps_per_epoch=100, patience=8,
                       lr_patience=3, epochs=49, val_share=0.02, sample_every=0)
PRETRAIN_GENRE = dict(window=128, stride=128, batch_size=64, dropout=0.1, lr=1e-3, steps_per_epoch=200, patience=4,
                      lr_patience=2, epochs=4, sample_every=0)
# Round 4: PRETRAIN_MIX gives the written parables about half of the windows (every written corpus four times
# beside TinyStories-ru's 10 M training characters; `genre` gave them 18 %, half a pass), 9 epochs of 400
# batches; FINE_TUNE_MIX then only sets the collection: a lower lr, at most 4 x 40 batches, stopping at the
# first epoch that does not improve its held-out texts.
FINE_TUNE_WRITTEN = dict(lr=5e-4, stride=64, dropout=0.2, steps_per_epoch=40, patience=2, lr_patience=1, epochs=6,
                         sample_every=0)
PRETRAIN_MIX = dict(window=128, stride=128, batch_size=64, dropout=0.1, lr=1e-3, steps_per_epoch=400, patience=3,
                    lr_patience=1, epochs=9, sample_every=0)
FINE_TUNE_MIX = dict(lr=3e-4, stride=64, dropout=0.2, steps_per_epoch=40, patience=1, lr_patience=1, epochs=4,
                     sample_every=0)
TITLES = {"aphorism": ("Афоризмы", ["aph"], "Изречения о жизни, написанные для проекта в манере народных")}


def decoding(culture: str) -> dict:
    """The served decoding of a round-4 parable bundle (and round 3's aphorism, with its title).

    Best of 3, ties on the agreement check broken by the likeliest candidate, over one candidate at 0.6: panel
    E's four readers gave grammar 2.38 / sense 1.64 against 2.06 / 1.42 (round 3's models; docs/quality.md).
    Parables at temperature 0.4 and 100-280 characters rather than 0.5 and 150-400: panel G's four readers gave
    round 4's models grammar 3.04 / sense 1.79 against 2.51 / 1.61 (shorter texts hold fewer slips), and a reply
    costs ~0.7x the CPU (bench/README.md)."""
    if culture == "aphorism":
        title, aliases, description = TITLES[culture]
        return dict(title=title, aliases=aliases, description=description, temperature=0.5, top_p=0.9,
                    end_boost=3.0, candidates=3, min_length=20, max_length=160)
    return dict(temperature=0.4, top_p=0.9, end_boost=3.0, candidates=3, min_length=100, max_length=280)


@dataclass(frozen=True)
class Step:
    """One step of the recipe. `args` are named arguments of the step's command (training.train's options
    for "train", with a step name as `init_from`); `install` is where a training step's bundle goes:
    "models" (models/CULTURE, served), "base" (base/, the pretrained base; not served) or None (runs/ only)."""

    name: str
    kind: str  # "train" | "widen" | "fortunes" | "tinystories"
    about: str
    args: dict = field(default_factory=dict)
    install: str | None = None


STEPS: tuple[Step, ...] = (
    Step("base256", "train", "pooled pretraining of a 2 x 256 LSTM on the five parable corpora",
         dict(culture="base256", corpus=PARABLES, units=256, layers=2, embedding=64, window=128, stride=128,
              batch_size=64, dropout=0.1, lr=3e-3, epochs=23)),
    Step("sufi256", "train", "sufi fine-tuned from base256 (the round-1 sufi bundle)",
         dict(culture="sufi", corpus=["data/sufi.txt"], init_from="base256", **FINE_TUNE)),
    Step("wide384", "widen", "sufi256 widened to 2 x 384, computing exactly what it does",
         dict(bundle="sufi256", units=384, seed=0)),
    Step("fortunes", "fortunes", "data/fortunes.txt: the fortunes-ru sayings sufi256's charset can write",
         dict(charset_of="sufi256", out="data/fortunes.txt")),
    Step("base384", "train", "continued pooled pretraining of wide384 on the five corpora + fortunes: the base",
         dict(culture="base", corpus=[*PARABLES, "data/fortunes.txt"], init_from="wide384", window=128, stride=128,
              batch_size=64, dropout=0.1, lr=1e-3, steps_per_epoch=100, patience=8, lr_patience=3, epochs=36,
              title="Базовая модель: притчи и изречения", description="pretrained on every corpus; fine-tune from it"),
         install="base"),
    Step("aphorism-corpus", "fortunes", "data/aphorism.txt: the curated fortunes-ru sayings (life, love, work, ...)",
         dict(curated=True, charset_of="sufi256", out="data/aphorism.txt")),
    # Round 3 (issue 23): simple Russian first, then the genre from parables written for the project.
    Step("tinystories", "tinystories", "data/tinystories.txt: TinyStories-ru's simple children's stories (Apache-2.0)",
         dict(charset_of="base384", out="data/tinystories.txt")),
    Step("simple", "train", "base384 continued on TinyStories-ru alone: grammar from simple text",
         dict(culture="simple", corpus=["data/tinystories.txt"], init_from="base384", **PRETRAIN_SIMPLE)),
    Step("genre", "train", "simple continued on TinyStories-ru + every written corpus: the genres, grammar kept",
         dict(culture="genre", corpus=["data/tinystories.txt", *WRITTEN], init_from="simple", **PRETRAIN_GENRE)),
    Step("mix", "train", "genre continued with the written corpora four times over: half its windows written",
         dict(culture="mix", corpus=["data/tinystories.txt", *WRITTEN * 4], init_from="genre", **PRETRAIN_MIX)),
    *(Step(c, "train", f"{c} fine-tuned from mix on its written corpus",
           dict(culture=c, corpus=[f"corpora/{c}.written.txt"], init_from="mix", **FINE_TUNE_MIX, **decoding(c)),
           install="models") for c in PARABLE_CULTURES),
    # aphorism stays round 3's: panel G's readers gave its round-4 model less sense (1.25 against 1.60)
    Step("aphorism", "train", "aphorism fine-tuned from genre on its written corpus (round 3)",
         dict(culture="aphorism", corpus=["corpora/aphorism.written.txt"], init_from="genre", **FINE_TUNE_WRITTEN,
              **decoding("aphorism")), install="models"),
)

RUNS = Path("runs")
INSTALLED = {"base": lambda step: Path("base"), "models": lambda step: Path("models") / step.args["culture"]}
MODULE = {"train": "training.train", "widen": "training.widen", "fortunes": "training.corpora",
          "tinystories": "training.corpora"}
CORPUS_KINDS = ("fortunes", "tinystories")
TINYSTORIES_FROM = "data/tinystories-ru"  # the data set's shards (--tinystories DIR)


class RecipeError(Exception):
    """A recipe that cannot run as asked; the message says what to do."""


def by_name(name: str) -> Step:
    for s in STEPS:
        if s.name == name:
            return s
    raise RecipeError(f"no step {name!r}; the steps are: {', '.join(s.name for s in STEPS)}")


def candidate(step: Step) -> Path:
    return RUNS / step.name / "bundle"


def output(name: str) -> Path | None:
    """Where step `name`'s result is now: its candidate in runs/, else its installed copy; None if neither."""
    step = by_name(name)
    if step.kind in CORPUS_KINDS:
        out = Path(step.args["out"])
        return out if out.is_file() else None
    if (candidate(step) / "manifest.json").is_file():
        return candidate(step)
    if step.install and (INSTALLED[step.install](step) / "manifest.json").is_file():
        return INSTALLED[step.install](step)
    return None


def _stamped(path: Path, step: Step) -> bool:
    try:
        manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (manifest.get("recipe") or {}).get("step") == step.name


def _state(step: Step) -> dict | None:
    try:
        return json.loads((RUNS / step.name / "checkpoint" / "state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def status(step: Step, overrides: dict) -> str:
    """"done", "to do", or "resume (...)" for a training step with a checkpoint left to finish."""
    if step.kind in CORPUS_KINDS:
        return "done" if Path(step.args["out"]).is_file() else "to do"
    made = _stamped(candidate(step), step)
    if step.kind == "widen":
        return "done" if made else "to do"
    state = _state(step)
    if state is None:
        return "done" if made else "to do"
    epochs = int(overrides.get("epochs", step.args.get("epochs", 30)))
    finished = state.get("done") or state.get("epoch", 0) >= epochs
    if made and finished:
        return "done"
    where = f"in epoch {state['epoch'] + 1}, batch {state['step']}" if state.get("step") else f"after epoch {state.get('epoch', 0)}"
    return f"resume ({where} of {epochs})"


def _ref(name: str, needed_by: Step, planning: bool = False) -> str:
    path = output(name)
    if path is None and planning:  # what the earlier step will have made by then
        step = by_name(name)
        return step.args["out"] if step.kind in CORPUS_KINDS else str(candidate(step))
    if path is None:
        raise RecipeError(f"step {needed_by.name} needs the result of step {name}, which is not there yet: "
                          f"run `python -m training.recipe --only {name}` first (or the whole recipe)")
    return str(path)


def command(step: Step, overrides: dict, force: bool, planning: bool = False,
            tinystories_from: str = TINYSTORIES_FROM) -> list[str]:
    """The step as a command line (module and arguments); step names in the arguments resolved to paths."""
    if step.kind == "widen":
        a = step.args
        return ["-m", MODULE["widen"], _ref(a["bundle"], step, planning), "--units", str(a["units"]), "--seed", str(a.get("seed", 0)),
                "-o", str(candidate(step))]
    if step.kind == "fortunes":
        a = step.args
        argv = ["-m", MODULE["fortunes"], "fortunes", "-o", a["out"]]
        if a.get("curated"):
            argv.append("--curated")
        if a.get("charset_of"):
            argv += ["--charset-of", _ref(a["charset_of"], step, planning)]
        return argv
    if step.kind == "tinystories":
        a = step.args
        return ["-m", MODULE["tinystories"], "tinystories", "--from", tinystories_from, "-o", a["out"],
                "--charset-of", _ref(a["charset_of"], step, planning)]
    args = {**step.args, **overrides}
    argv = ["-m", MODULE["train"], "--recipe-step", step.name, "--run-dir", str(RUNS / step.name)]
    for k, v in args.items():
        if k == "init_from":
            v = _ref(v, step, planning)
        if k == "aliases":
            for alias in v:
                argv += ["--alias", alias]
        elif isinstance(v, (list, tuple)):
            argv += [f"--{k.replace('_', '-')}", *map(str, v)]
        elif v is True:
            argv.append(f"--{k.replace('_', '-')}")
        else:
            argv += [f"--{k.replace('_', '-')}", str(v)]
    if step.install is None:
        argv.append("--no-install")
    elif step.install == "base":
        argv += ["--models-dir", "."]  # the bundle named "base" goes to ./base
    if _state(step) is not None:
        argv.append("--resume")
    if force:
        argv.append("--force")
    return argv


def parse_overrides(pairs: list[str]) -> dict:
    """`KEY=VALUE` pairs -> training options for every training step (e.g. epochs=1 for a quick trial)."""
    from .train import TrainConfig

    allowed = set(TrainConfig.__dataclass_fields__) - {"culture", "corpus", "init_from", "run_dir", "models_dir", "aliases", "export"}
    out = {}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not eq or key not in allowed:
            raise RecipeError(f"--set {pair!r}: expected KEY=VALUE with KEY one of training.train's options: "
                              f"{', '.join(sorted(allowed))}")
        out[key] = value
    return out


def _show(argv: list[str]) -> str:
    return "python " + " ".join(a if a and " " not in a else repr(a) for a in argv)


def run_step(step: Step, argv: list[str]) -> int:
    """Run one step in a child process (its own output goes straight through); -> its exit status.

    Ctrl-C reaches the child (the terminal signals the whole process group): training saves a checkpoint and
    exits. The recipe only notes it and waits for the child to finish."""
    interrupted = []
    old = signal.signal(signal.SIGINT, lambda signum, frame: interrupted.append(signum))
    try:
        child = subprocess.Popen([sys.executable, *argv])
        while True:
            try:
                rc = child.wait()
                break
            except KeyboardInterrupt:  # only if our handler was replaced; keep waiting for the child
                continue
    finally:
        signal.signal(signal.SIGINT, old)
    return 130 if interrupted and rc == 0 else rc


def main(argv=None) -> int:
    p = Parser(prog="python -m training.recipe", description=__doc__.split("\n\n")[0],
               epilog="steps: " + "; ".join(f"{s.name}: {s.about}" for s in STEPS), formatter_class=HelpFormatter)
    p.add_argument("--only", action="append", metavar="STEP", help="run only this step (repeatable); its inputs must exist")
    p.add_argument("--dry-run", action="store_true", help="print the plan and the commands; run nothing")
    p.add_argument("--force", action="store_true", help="install every bundle even if it is not better than the one there")
    p.add_argument("--tinystories", default=TINYSTORIES_FROM, metavar="DIR",
                   help="TinyStories-ru's JSON-lines shards, for the tinystories step "
                        "(github.com/MichaelMonashev/TinyStories-ru, data/*.jsonl)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a training option in every training step (e.g. --set epochs=1 for a quick trial)")
    a = p.parse_args(argv)
    try:
        overrides = parse_overrides(a.overrides)
        steps = [by_name(n) for n in a.only] if a.only else list(STEPS)
        steps = [s for s in STEPS if s in steps]  # the table's order
        plan = [(s, status(s, overrides)) for s in steps]
        print(f"recipe: {len(plan)} of {len(STEPS)} steps; each writes under {RUNS}/STEP"
              + (f"; overrides: {', '.join(f'{k}={v}' for k, v in overrides.items())}" if overrides else ""))
        for i, (s, st) in enumerate(plan, 1):
            print(f"  {i:2}. {s.name:<16} {st:<26} {s.about}")
        if a.dry_run:
            for i, (s, st) in enumerate(plan, 1):
                print(f"  {i:2}. {_show(command(s, overrides, a.force, planning=True, tinystories_from=a.tinystories))}")
            return 0
        started = time.time()
        for i, (s, st) in enumerate(plan, 1):
            if st == "done":
                print(f"[{i}/{len(plan)}] {s.name}: done already", flush=True)
                continue
            argv_ = command(s, overrides, a.force, tinystories_from=a.tinystories)
            print(f"[{i}/{len(plan)}] {s.name}: {s.about}\n$ {_show(argv_)}", flush=True)
            t0 = time.time()
            rc = run_step(s, argv_)
            if rc in (130, 128 + signal.SIGTERM):
                print(f"recipe stopped in step {s.name}; run the same command again to continue", file=sys.stderr)
                return rc
            if rc != 0:
                print(f"recipe stopped: step {s.name} failed (exit {rc}); fix what it says above and run the same "
                      "command again", file=sys.stderr)
                return rc
            if s.kind == "widen":
                stamp(candidate(s), s)
            print(f"[{i}/{len(plan)}] {s.name}: done in {(time.time() - t0) / 60:.1f} min", flush=True)
        print(f"recipe: {len(plan)} steps done in {(time.time() - started) / 60:.1f} min")
        return 0
    except RecipeError as e:
        return fail(e)
    except KeyboardInterrupt:
        print("recipe interrupted between steps; run the same command again to continue", file=sys.stderr)
        return 130


def stamp(bundle: Path, step: Step) -> None:
    """Record the step in a bundle's manifest (not one of the hashed files), atomically."""
    path = bundle / "manifest.json"
    manifest = json.loads(path.read_text(encoding="utf-8"))
    manifest["recipe"] = {"step": step.name, "command": "python -m training.recipe"}
    tmp = path.with_name(".manifest.json.tmp")
    tmp.write_text(json.dumps(manifest, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


if __name__ == "__main__":
    sys.exit(main())
