"""The training CLI end to end on a few KB of synthetic text with a tiny model."""

import hashlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from charlm import load_bundle
from tests.conftest import make_bundle, synthetic_text

ROOT = Path(__file__).resolve().parents[2]
# Each test runs training in child processes (TensorFlow import, tracing, export): a few seconds each on a calm
# machine, minutes on a loaded one; the project's default of 300 s per test is too tight for that.
pytestmark = pytest.mark.timeout(1800)
TINY = ["--units", "12", "--embedding", "6", "--window", "24", "--stride", "16", "--batch-size", "8",
        "--sample-every", "0", "--dropout", "0.1"]


def env():
    e = {**os.environ, "PYTHONPATH": str(ROOT)}
    e.pop("TF_CPP_MIN_LOG_LEVEL", None)  # the command must quiet TensorFlow itself
    return e


def run(args, cwd, check=True, **kw):
    p = subprocess.run([sys.executable, "-m", "training.train", *args], cwd=cwd, env=env(), capture_output=True,
                       text=True, timeout=900, **kw)
    if check:
        assert p.returncode == 0, p.stderr[-2000:]
    return p


def lines(stream: str) -> list[str]:
    """Non-empty lines, the progress bar's redraws left out."""
    return [l for l in re.split(r"[\r\n]", stream) if l.strip() and "batch/s" not in l and "?batch" not in l]


def weights_hash(run_dir: Path) -> str:
    (arrays,) = (run_dir / "checkpoint").glob("state-*.npz")
    return hashlib.sha256(arrays.read_bytes()).hexdigest()


def tree(folder: Path) -> dict:
    """Every file under `folder` -> its sha256: what `git status` would notice."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_same_seed_same_weights_and_resume_is_exact(tmp_path, corpus):
    run(["--culture", "toy", "--epochs", "3", "--run-dir", "r1", "--no-export", *TINY], tmp_path)
    run(["--culture", "toy", "--epochs", "3", "--run-dir", "r2", "--no-export", *TINY], tmp_path)
    assert weights_hash(tmp_path / "r1") == weights_hash(tmp_path / "r2")
    run(["--culture", "toy", "--epochs", "1", "--run-dir", "r3", "--no-export", *TINY], tmp_path)
    run(["--culture", "toy", "--epochs", "3", "--resume", "--run-dir", "r3", "--no-export", *TINY], tmp_path)
    assert weights_hash(tmp_path / "r3") == weights_hash(tmp_path / "r1")
    run(["--culture", "toy", "--epochs", "3", "--seed", "1", "--run-dir", "r4", "--no-export", *TINY], tmp_path)
    assert weights_hash(tmp_path / "r4") != weights_hash(tmp_path / "r1")


def test_a_bundle_replaces_the_served_one_only_when_better(tmp_path, corpus):
    models = tmp_path / "models"
    # 1. a poor first run (lr 1e-5: barely trained); nothing is served yet, so it is installed
    first = run(["--culture", "toy", "--epochs", "1", "--lr", "1e-5", "--title", "Игрушка", "--alias", "tt",
                 "--temperature", "0.7", *TINY], tmp_path)
    assert "installed" in first.stdout and (tmp_path / "runs" / "toy" / "bundle" / "manifest.json").is_file()
    assert "TensorFlow" not in first.stderr and "absl" not in first.stderr and "I0000" not in first.stderr
    poor = tree(models / "toy")
    checkpoint = tree(tmp_path / "runs" / "toy")

    # 1b. the same command again would start over that run's checkpoint: refused with one line, nothing touched
    again = run(["--culture", "toy", "--epochs", "1", *TINY], tmp_path, check=False)
    assert again.returncode == 2 and len(lines(again.stderr)) == 1
    assert "runs/toy/checkpoint" in again.stderr and "--resume" in again.stderr and "--force" in again.stderr
    assert tree(tmp_path / "runs" / "toy") == checkpoint and tree(models / "toy") == poor

    # 2. a better run replaces it; the old one is kept; title, alias and generation defaults carry over
    good = run(["--culture", "toy", "--epochs", "3", "--run-dir", "runs/good", *TINY], tmp_path).stdout
    (line,) = [l for l in good.splitlines() if "replaced" in l]
    # the scorings after "bundle written" are announced as they start, not silent
    said = [l.split(" ")[0] + " " + l.split(" ")[1] for l in good.splitlines()]
    assert said.index("bundle written:") < said.index("scoring the") < len(said) - 1 - said[::-1].index("scoring the"), good
    assert "scoring the installed models/toy on" in good and "scoring the new bundle on" in good
    old_bpc, new_bpc = map(float, re.search(r"held-out ([\d.]+) -> ([\d.]+) bits/char", line).groups())
    assert new_bpc < old_bpc
    (backup,) = (tmp_path / "runs" / "good" / "replaced").iterdir()
    assert tree(backup) == poor and backup.name.startswith("toy-")
    b = load_bundle(models / "toy")
    assert b.check_golden() == []
    m = b.manifest
    assert (m["title"], m["aliases"], m["generation"]["temperature"]) == ("Игрушка", ["tt"], 0.7)
    assert m["epochs"] == 3 and m["metrics"]["val_bpc"] > 0 and m["corpus"]["files"][0]["sha256"]
    assert (models / "toy" / "training.png").stat().st_size > 1000 and b.novelty is not None
    served = tree(models / "toy")

    # 3. a worse run leaves the served bundle untouched, and says so in one line comparing both
    worse = run(["--culture", "toy", "--epochs", "1", "--lr", "1e-5", "--run-dir", "runs/worse", *TINY], tmp_path).stdout
    assert tree(models / "toy") == served
    (kept,) = [l for l in worse.splitlines() if "kept:" in l]
    assert re.search(r"held-out [\d.]+ bits/char, the new bundle [\d.]+", kept) and "--force" in kept
    assert (tmp_path / "runs" / "worse" / "bundle" / "manifest.json").is_file()

    # 4. --resume with nothing left says so; --force installs the worse bundle anyway, keeping a backup
    forced = run(["--culture", "toy", "--epochs", "1", "--lr", "1e-5", "--run-dir", "runs/worse", "--resume", "--force", *TINY],
                 tmp_path).stdout
    assert "nothing left to train" in forced and "already written" in forced
    assert "replaced (--force)" in forced
    assert tree(models / "toy") != served
    assert tree(next((tmp_path / "runs" / "worse" / "replaced").iterdir())) == served


@pytest.mark.parametrize("flag", ["--models-dir", "--run-dir"])
def test_an_unwritable_output_folder_is_refused_before_training(tmp_path, corpus, flag):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    p = run(["--culture", "toy", "--epochs", "1", flag, str(blocker / "sub"), *TINY], tmp_path, check=False)
    assert p.returncode == 2
    (line,) = lines(p.stderr)
    assert str(blocker / "sub") in line and flag in line and "Traceback" not in p.stderr
    assert "corpus:" not in p.stdout  # refused before reading the corpus, let alone the first batch


def test_interrupts_save_and_resume_with_the_same_epoch_numbers(tmp_path, corpus):
    big = tmp_path / "data" / "big.txt"
    big.write_text(synthetic_text(400, seed=6), encoding="utf-8")
    args = [sys.executable, "-m", "training.train", "--culture", "big", "--epochs", "50", "--no-export", *TINY]

    # Ctrl-C while TensorFlow is still loading: one line, no traceback, nothing saved
    p = subprocess.Popen(args, cwd=tmp_path, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.stdout.readline().startswith("corpus:")  # the data is read; TensorFlow is imported next
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=300)
    assert p.returncode == 128 + signal.SIGINT
    assert lines(err) == ["interrupted before training started; nothing was saved"], err
    assert not (tmp_path / "runs" / "big" / "checkpoint" / "state.json").exists()

    # Ctrl-C mid-epoch: a checkpoint, and one line naming the epoch and batch that --resume names too
    p = subprocess.Popen(args, cwd=tmp_path, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 600
    while time.time() < deadline and not (tmp_path / "runs" / "big" / "checkpoint" / "state.json").exists():
        time.sleep(0.2)  # polling for the first epoch's checkpoint; not an assertion on time
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=300)
    assert p.returncode == 128 + signal.SIGINT, err[-1500:]
    assert "Traceback" not in err
    (saved,) = [l for l in lines(out) if l.startswith("SIGINT")]
    assert "--resume" in saved
    where = re.compile(r"in epoch (\d+)/\d+ at batch (\d+)/(\d+)|after epoch (\d+)/")
    r = run(["--culture", "big", "--epochs", "2", "--resume", "--no-export", *TINY], tmp_path)
    (resumed,) = [l for l in lines(r.stdout) if l.startswith("resumed")]
    assert where.search(resumed).groups() == where.search(saved).groups()


@pytest.mark.parametrize("content,message", [
    (None, "no such file"),
    (b"", "empty"),
    ("короткий текст\n".encode(), "too small"),
    ("текст".encode("cp1251") * 1000, "not UTF-8"),
])
def test_bad_corpus_gets_one_line(tmp_path, content, message):
    path = tmp_path / "bad.txt"
    if content is not None:
        path.write_bytes(content)
    p = run(["--culture", "bad", "--corpus", str(path), *TINY], tmp_path, check=False)
    assert p.returncode == 2
    (line,) = lines(p.stderr)
    assert message in line and "Traceback" not in p.stderr


def test_init_from_with_foreign_charset_is_refused(tmp_path, corpus):
    base = make_bundle(tmp_path / "base", "base", text="абвгд ежз. " * 300, seed=1)
    p = run(["--culture", "toy", "--init-from", str(base), *TINY], tmp_path, check=False)
    assert p.returncode == 2 and "charset lacks" in p.stderr and "Traceback" not in p.stderr


def test_a_new_culture_fine_tunes_from_the_base(tmp_path, corpus):
    # the pretrained base is the bundle folder base/ at the root (the bot serves models/ only)
    run(["--culture", "base", "--corpus", str(corpus), "--models-dir", ".", "--epochs", "2", *TINY], tmp_path)
    base = load_bundle(tmp_path / "base")
    # lower case: every letter of it is in the base's charset (capitals depend on which words start sentences)
    (tmp_path / "kurdish.txt").write_text(synthetic_text(40, seed=9).lower(), encoding="utf-8")
    r = run(["--culture", "kurdish", "--corpus", "kurdish.txt", "--init-from", "base", "--epochs", "1", *TINY], tmp_path)
    assert "installed" in r.stdout
    b = load_bundle(tmp_path / "models" / "kurdish")
    assert b.manifest["training"]["init_from"] == "base"  # the base's name, not a path of the machine it was trained on
    assert b.manifest["training"]["base"] == base.manifest["files"]["model.weights.h5"]
    assert b.charset.chars == base.charset.chars
    assert b.manifest["metrics"]["val_bpc"] <= base.manifest["metrics"]["val_bpc"] + 0.05  # starts from the base
    # the novelty guard covers what the base learned too: a proverb may not copy the base's corpus either
    from training.corpus import read_corpus

    window = read_corpus(corpus).text[5:45]
    assert window not in read_corpus(tmp_path / "kurdish.txt").text
    assert base.novelty.copied(window) == (1, 1)
    # the fine-tuned bundle holds the base's windows sampled (1 in 16 by hash value): exactly those
    from charlm.novelty import SAMPLE_EVERY, window_hashes

    base_windows = window_hashes(read_corpus(corpus).text)
    held = np.isin(base_windows, b.novelty.hashes) | np.isin(base_windows, window_hashes(read_corpus(tmp_path / "kurdish.txt").text))
    assert (held >= (base_windows % SAMPLE_EVERY == 0)).all() and (base_windows % SAMPLE_EVERY == 0).any()
    # its words.txt: the words of its own corpus that pymorphy3 lacks, for decoding with real_words
    from charlm.words import Vocabulary

    assert "words.txt" in b.manifest["files"]
    assert b.words.own == Vocabulary.of_texts(read_corpus(tmp_path / "kurdish.txt").texts).own


def test_help_shows_each_default_once_and_range_errors_say_the_range(tmp_path):
    out = run(["--help"], tmp_path).stdout
    for opt in ("--culture", "--corpus", "--models-dir", "--run-dir", "--epochs", "--seed", "--resume", "--force",
                "--init-from", "--stride", "--no-install"):
        assert opt in out
    flat = " ".join(out.split())
    assert "(default: None)" not in flat and "(default: True)" not in flat and "(default: False)" not in flat
    assert "(default: )" not in flat
    entries = re.split(r"\n(?=  -)", out)  # one entry per option, its help's wrapped lines joined
    for entry in entries:
        assert " ".join(entry.split()).count("(default:") <= 1, entry
    assert "--epochs EPOCHS total epochs, counting those before a --resume (default: 30)" in flat
    assert "--temperature TEMPERATURE default sampling temperature (default: 0.5)" in flat
    p = run(["--culture", "toy", "--epochs", "0"], tmp_path, check=False)
    assert p.returncode == 2 and lines(p.stderr) == [lines(p.stderr)[0]]
    assert "at least 1" in p.stderr and "usage" not in p.stderr
    p = run(["--culture", "toy", "--dropout", "1.5"], tmp_path, check=False)
    assert "[0, 1)" in p.stderr


def test_resume_faults_get_one_line(tmp_path, corpus):
    run(["--culture", "toy", "--epochs", "1", "--no-export", *TINY], tmp_path)
    ckpt = tmp_path / "runs" / "toy" / "checkpoint"
    resume = ["--culture", "toy", "--epochs", "2", "--resume", "--no-export", *TINY]

    def refused(expect: str) -> None:
        p = run(resume, tmp_path, check=False)
        assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr[-2000:]
        (line,) = lines(p.stderr)
        assert expect in line, line

    text = corpus.read_text(encoding="utf-8")
    corpus.write_text(text + "☃☃☃\n", encoding="utf-8")  # the corpus gained a character
    refused("charset lacks '☃'")
    corpus.write_text(text, encoding="utf-8")
    state = (ckpt / "state.json").read_text()
    (ckpt / "state.json").write_text(state[: len(state) // 2])  # cut short (a full disk, a copy interrupted)
    refused("state.json: unreadable")
    (ckpt / "state.json").unlink()
    refused("no checkpoint to resume from")


def test_a_one_line_corpus_trains_with_a_warning(tmp_path):
    one = tmp_path / "data" / "one.txt"
    one.parent.mkdir()
    one.write_text(synthetic_text(30, seed=3).replace("\n", " ") + "\n", encoding="utf-8")
    p = run(["--culture", "one", "--epochs", "1", "--no-export", *TINY], tmp_path)
    assert "Traceback" not in p.stderr
    (warning,) = [l for l in lines(p.stderr) if l.startswith("warning:")]
    assert "held out" in warning and "one.txt" in warning


@pytest.mark.parametrize("fails", [False, True])
def test_tensorflows_c_level_start_up_lines_are_hidden_unless_its_import_fails(tmp_path, fails):
    # tensorflow-cpu 2.21 writes absl/oneDNN lines to fd 2 while it loads, whatever TF_CPP_MIN_LOG_LEVEL says; a
    # stand-in package does the same, and fails to load when `fails`: then what it wrote must be shown
    pkg = tmp_path / "fake" / "tensorflow"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("import os\nos.write(2, b'I0000 oneDNN custom operations are on\\n')\n"
                                     + ("raise ImportError('libtensorflow.so: cannot open shared object file')\n" if fails else ""))
    code = "from training.cli import quiet_tensorflow\nquiet_tensorflow()\nimport tensorflow\nprint('loaded')"
    p = subprocess.run([sys.executable, "-c", code], env={**env(), "PYTHONPATH": f"{tmp_path / 'fake'}{os.pathsep}{ROOT}"},
                       capture_output=True, text=True, timeout=60)
    if fails:
        assert p.returncode == 1 and "I0000 oneDNN" in p.stderr and "cannot open shared object file" in p.stderr
    else:
        assert p.returncode == 0 and p.stdout == "loaded\n" and p.stderr == ""
