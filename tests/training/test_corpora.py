"""`python -m training.corpora`: the parable corpora from a zip the test makes, and fortunes-ru cleaning on tiny files."""

import hashlib
import json
import zipfile
from pathlib import Path

import pytest

from training import corpora

ROOT = Path(__file__).resolve().parents[2]
STEMS = {"arm": "armenian", "hasid": "hasidic", "ind": "indian", "jew": "jewish", "suf": "sufi"}


def one_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [l for l in err.splitlines() if l.strip() and not l.startswith("downloading ")]  # progress, not an error
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.fixture
def tiny_zip(tmp_path, monkeypatch):
    """A training.zip of five tiny corpora, shaped like NeuroBasnya's, and the table of their hashes."""
    bodies = {stem: f"\u00a0\u00a0\u00a0Притча {stem} номер один.\n\u00a0\u00a0\u00a0Притча {stem}, вторая.\n".encode()
              for stem in STEMS}
    path = tmp_path / "training.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("training/", "")
        for stem, body in bodies.items():
            z.writestr(f"training/{stem}.txt", body)
    table = {stem: (name, hashlib.sha256(bodies[stem]).hexdigest()) for stem, name in STEMS.items()}
    monkeypatch.setattr(corpora, "PARABLES", table)
    return path, bodies


def test_fetch_from_a_local_zip_writes_the_corpora_byte_for_byte(tmp_path, tiny_zip, capsys):
    path, bodies = tiny_zip
    out = tmp_path / "data"
    assert corpora.main(["fetch", "--from", str(path), "-o", str(out)]) == 0
    for stem, name in STEMS.items():
        assert (out / f"{name}.txt").read_bytes() == bodies[stem]
    printed = capsys.readouterr().out
    assert "MIT" in printed and "NeuroBasnya" in printed and f"{out / 'sufi.txt'}" in printed


def test_a_corpus_with_another_hash_gets_one_line_and_nothing_is_written(tmp_path, tiny_zip, monkeypatch, capsys):
    path, _ = tiny_zip
    table = dict(corpora.PARABLES)
    table["jew"] = ("jewish", "0" * 64)
    monkeypatch.setattr(corpora, "PARABLES", table)
    out = tmp_path / "data"
    assert corpora.main(["fetch", "--from", str(path), "-o", str(out)]) == 2
    line = one_line(capsys)
    assert "jew.txt" in line and "sha256" in line and "--no-check" in line
    assert not out.exists() or not list(out.iterdir())  # checked before any write
    assert corpora.main(["fetch", "--from", str(path), "-o", str(out), "--no-check"]) == 0
    assert (out / "jewish.txt").is_file()


@pytest.mark.parametrize("make,message", [
    (lambda p: p.write_bytes(b"not a zip"), "not a zip file"),
    (lambda p: zipfile.ZipFile(p, "w").writestr("training/arm.txt", "x"), "lacks training/hasid.txt"),
    (None, "cannot read"),
])
def test_a_bad_zip_gets_one_line(tmp_path, tiny_zip, capsys, make, message):
    path = tmp_path / "other.zip"
    if make:
        make(path)
    assert corpora.main(["fetch", "--from", str(path), "-o", str(tmp_path / "data")]) == 2
    assert message in one_line(capsys)


def test_a_failed_download_gets_one_line(tmp_path, capsys):
    # nothing listens on port 9 of this machine (discard): the connection is refused at once
    assert corpora.main(["fetch", "--url", "http://127.0.0.1:9/training.zip", "--timeout", "5", "-o", str(tmp_path)]) == 2
    line = one_line(capsys)
    assert "cannot download" in line and "--from" in line


def test_the_expected_hashes_are_those_the_shipped_bundles_were_trained_on():
    for stem, (name, sha) in corpora.PARABLES.items():
        manifest = json.loads((ROOT / "models" / name / "manifest.json").read_text(encoding="utf-8"))
        assert [f["sha256"] for f in manifest["corpus"]["files"]] == [sha], name


FORTUNES = """\
Жизнь - это то, что с тобой происходит, пока ты строишь
другие планы.
\t\t-- Джон Леннон
%
— Кто там?
— Это я, почтальон Печкин.
%
Жизнь - это то, что с тобой происходит, пока ты строишь другие планы.
%
Python is a programming language.
%
\t\t-- только подпись
%
Короткая.
"""


def test_fortunes_are_cleaned_one_per_line(tmp_path, capsys):
    src = tmp_path / "life"
    src.write_text(FORTUNES, encoding="utf-8")
    out = tmp_path / "fortunes.txt"
    assert corpora.main(["fortunes", "--files", str(src), "-o", str(out)]) == 0
    assert out.read_text(encoding="utf-8").splitlines() == [
        "Жизнь - это то, что с тобой происходит, пока ты строишь другие планы.",  # wrapping joined, author dropped
        "— Кто там? — Это я, почтальон Печкин.",  # dialogue dashes are not attributions
        "Короткая.",
    ]
    report = capsys.readouterr().out
    assert "1 exact duplicates" in report and "1 with Latin letters" in report and "1 attribution only" in report
    assert "GPL-2" in report


def test_curated_takes_the_sayings_files_and_lengths(tmp_path):
    d = tmp_path / "ru"
    d.mkdir()
    for i, name in enumerate(corpora.CURATED):
        (d / name).write_text(f"Мудрость номер {i} о жизни и о людях вообще.\n%\nКоротко.\n", encoding="utf-8")
    (d / "politics").write_text("Политика: это не для афоризмов, а для новостей.\n", encoding="utf-8")
    (d / "life.dat").write_bytes(b"\x00\x01")
    out = tmp_path / "aphorism.txt"
    assert corpora.main(["fortunes", "--dir", str(d), "--curated", "-o", str(out)]) == 0
    lines = out.read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(corpora.CURATED)  # "Коротко." is under 20 characters; politics is not curated
    assert not any("Политика" in l for l in lines)
    everything = tmp_path / "all.txt"
    assert corpora.main(["fortunes", "--dir", str(d), "-o", str(everything)]) == 0
    assert any("Политика" in l for l in everything.read_text(encoding="utf-8").splitlines())


def test_charset_of_keeps_what_the_bundle_can_write(tmp_path, tiny_models):
    src = tmp_path / "life"
    src.write_text("мудрец сказал ученик.\n%\nЩука ёрш «Ъ».\n", encoding="utf-8")
    out = tmp_path / "f.txt"
    assert corpora.main(["fortunes", "--files", str(src), "--charset-of", str(tiny_models / "alpha"), "-o", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == "мудрец сказал ученик.\n"


def test_without_fortunes_ru_one_line_says_how_to_install_it(tmp_path, capsys):
    assert corpora.main(["fortunes", "--dir", str(tmp_path / "nowhere"), "-o", str(tmp_path / "f.txt")]) == 2
    assert "apt-get install fortunes-ru" in one_line(capsys)
    assert not (tmp_path / "f.txt").exists()


def test_help_shows_defaults_once(capsys):
    with pytest.raises(SystemExit):
        corpora.main(["fetch", "--help"])
    out = capsys.readouterr().out
    assert "(default: None)" not in out and "(default: False)" not in out and "(default: data)" in out
