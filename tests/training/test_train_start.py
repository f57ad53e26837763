"""A training run that cannot start says what to do next, in one line, and leaves nothing behind."""

from __future__ import annotations

import json

import pytest

from tests.conftest import make_bundle, synthetic_text
from training.train import main


def start(tmp_path, monkeypatch, capsys, *args) -> tuple[int, str, str]:
    monkeypatch.chdir(tmp_path)
    status = main(["--culture", "toy", "--epochs", "1", *args])
    out = capsys.readouterr()
    return status, out.out, out.err


def test_a_missing_corpus_names_the_command_that_fetches_it_and_leaves_no_run_folder(tmp_path, monkeypatch, capsys):
    # a bundle is installed, so title and aliases would be "kept from models/toy": not said before an error
    (tmp_path / "models" / "toy").mkdir(parents=True)
    (tmp_path / "models" / "toy" / "manifest.json").write_text(json.dumps({"title": "Игрушка", "aliases": ["tt"]}))
    status, out, err = start(tmp_path, monkeypatch, capsys)
    assert status == 2 and out == ""
    (line,) = err.strip().splitlines()
    assert "data/toy.txt" in line and "python -m training.corpora fetch" in line and "--from" in line
    assert not (tmp_path / "runs").exists()  # no empty runs/toy/checkpoint/ from a run that never started
    assert [p.name for p in (tmp_path / "models").iterdir()] == ["toy"]


def test_a_failed_start_keeps_folders_that_were_there(tmp_path, monkeypatch, capsys):
    (tmp_path / "runs" / "toy" / "checkpoint").mkdir(parents=True)
    (tmp_path / "runs" / "toy" / "notes.txt").write_text("mine")
    status, _, err = start(tmp_path, monkeypatch, capsys, "--run-dir", "runs/toy")
    assert status == 2 and "no such file" in err
    assert (tmp_path / "runs" / "toy" / "checkpoint").is_dir() and (tmp_path / "runs" / "toy" / "notes.txt").is_file()


@pytest.fixture
def base(tmp_path):
    return make_bundle(tmp_path / "bases", "base", steps=5)


def test_a_corpus_the_base_cannot_write_names_charset_of(tmp_path, monkeypatch, capsys, base):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "toy.txt").write_text(synthetic_text(50, seed=5) + "Ёжик % = Ы!\n", encoding="utf-8")
    status, _, err = start(tmp_path, monkeypatch, capsys, "--init-from", str(base))
    assert status == 2
    (line,) = err.strip().splitlines()
    assert "its charset lacks" in line and f"--charset-of {base}" in line and "python -m training.corpora" in line
    assert not (tmp_path / "runs").exists()
