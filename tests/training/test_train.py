"""The training CLI end to end on a few KB of synthetic text with a tiny model."""

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from charlm import load_bundle
from tests.conftest import make_bundle, synthetic_text

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--units", "12", "--embedding", "6", "--window", "24", "--stride", "16", "--batch-size", "8",
        "--sample-every", "0", "--dropout", "0.1"]


def run(args, cwd, check=True, **kw):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)}
    p = subprocess.run([sys.executable, "-m", "training.train", *args], cwd=cwd, env=env, capture_output=True,
                       text=True, timeout=240, **kw)
    if check:
        assert p.returncode == 0, p.stderr[-2000:]
    return p


@pytest.fixture
def corpus(tmp_path):
    p = tmp_path / "data" / "toy.txt"
    p.parent.mkdir()
    p.write_text(synthetic_text(50, seed=5), encoding="utf-8")
    return p


def weights_hash(ckpt: Path) -> str:
    (arrays,) = ckpt.glob("state-*.npz")
    return hashlib.sha256(arrays.read_bytes()).hexdigest()


def test_same_seed_same_weights_and_resume_is_exact(tmp_path, corpus):
    run(["--culture", "toy", "--epochs", "3", "--checkpoint-dir", "c1", "--no-export", *TINY], tmp_path)
    run(["--culture", "toy", "--epochs", "3", "--checkpoint-dir", "c2", "--no-export", *TINY], tmp_path)
    assert weights_hash(tmp_path / "c1") == weights_hash(tmp_path / "c2")
    run(["--culture", "toy", "--epochs", "1", "--checkpoint-dir", "c3", "--no-export", *TINY], tmp_path)
    run(["--culture", "toy", "--epochs", "3", "--resume", "--checkpoint-dir", "c3", "--no-export", *TINY], tmp_path)
    assert weights_hash(tmp_path / "c3") == weights_hash(tmp_path / "c1")
    other = run(["--culture", "toy", "--epochs", "3", "--seed", "1", "--checkpoint-dir", "c4", "--no-export", *TINY], tmp_path)
    assert weights_hash(tmp_path / "c4") != weights_hash(tmp_path / "c1")


def test_export_reproduces_golden_and_has_metrics(tmp_path, corpus):
    out = run(["--culture", "toy", "--epochs", "2", "--alias", "tt", *TINY], tmp_path).stdout
    assert "validation" in out and "bundle written" in out
    b = load_bundle(tmp_path / "models" / "toy")
    assert b.check_golden() == []
    m = b.manifest
    assert m["aliases"] == ["tt"] and m["epochs"] == 2 and m["seed"] == 0
    assert m["metrics"]["val_bpc"] > 0 and m["corpus"]["files"][0]["sha256"]
    assert (tmp_path / "models" / "toy" / "training.png").stat().st_size > 1000
    assert b.novelty is not None


def test_sigint_saves_a_checkpoint_that_resumes(tmp_path, corpus):
    big = tmp_path / "data" / "big.txt"
    big.write_text(synthetic_text(400, seed=6), encoding="utf-8")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)}
    args = [sys.executable, "-m", "training.train", "--culture", "big", "--epochs", "50", "--checkpoint-dir", "c",
            "--no-export", *TINY]
    p = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not (tmp_path / "c" / "state.json").exists():
        time.sleep(0.2)
    time.sleep(0.5)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 128 + signal.SIGINT, err[-1500:]
    assert "checkpoint saved" in out and "--resume" in out
    assert "Traceback" not in err
    r = run(["--culture", "big", "--epochs", "2", "--resume", "--checkpoint-dir", "c", "--no-export", *TINY], tmp_path)
    assert "resumed from" in r.stdout


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
    lines = [l for l in p.stderr.strip().splitlines() if l.strip()]
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in p.stderr


def test_init_from_with_foreign_charset_is_refused(tmp_path, corpus):
    base = make_bundle(tmp_path / "base", "base", text="абвгд ежз. " * 300, seed=1)
    p = run(["--culture", "toy", "--init-from", str(base), *TINY], tmp_path, check=False)
    assert p.returncode == 2 and "charset lacks" in p.stderr and "Traceback" not in p.stderr


def test_init_from_fine_tunes(tmp_path, corpus):
    run(["--culture", "base", "--corpus", str(corpus), "--epochs", "2", "--models-dir", "base", *TINY], tmp_path)
    r = run(["--culture", "toy", "--init-from", "base/base", "--epochs", "1", *TINY], tmp_path)
    b = load_bundle(tmp_path / "models" / "toy")
    assert b.manifest["training"]["init_from"] == "base"  # the bundle's name, not a path of the machine it was trained on
    base_bpc = load_bundle(tmp_path / "base" / "base").manifest["metrics"]["val_bpc"]
    assert b.manifest["metrics"]["val_bpc"] <= base_bpc + 0.05  # starts from the base, does not start over


def test_help_lists_the_options(tmp_path):
    out = run(["--help"], tmp_path).stdout
    for opt in ("--culture", "--corpus", "--models-dir", "--epochs", "--seed", "--resume", "--init-from", "--stride"):
        assert opt in out
