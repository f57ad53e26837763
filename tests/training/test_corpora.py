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


def test_the_expected_hashes_are_those_the_shipped_base_was_trained_on():
    # round 3's served bundles learned from the written corpora; the real collections reach them through base/
    manifest = json.loads((ROOT / "base" / "manifest.json").read_text(encoding="utf-8"))
    trained = {f["name"]: f["sha256"] for f in manifest["corpus"]["files"]}
    for stem, (name, sha) in corpora.PARABLES.items():
        assert trained[f"{name}.txt"] == sha, name


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
    (d / "other").write_text("Прочее: это не для афоризмов, а для новостей.\n", encoding="utf-8")
    for name in corpora.EXCLUDED:  # sex, drink, politics, computers: never in any corpus
        (d / name).write_text(f"Файл {name}: его строки не попадут ни в один корпус.\n", encoding="utf-8")
    (d / "life.dat").write_bytes(b"\x00\x01")
    out = tmp_path / "aphorism.txt"
    assert corpora.main(["fortunes", "--dir", str(d), "--curated", "-o", str(out)]) == 0
    lines = out.read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(corpora.CURATED)  # "Коротко." is under 20 characters; "other" is not curated
    assert not any("Прочее" in l for l in lines)
    everything = tmp_path / "all.txt"
    assert corpora.main(["fortunes", "--dir", str(d), "-o", str(everything)]) == 0
    whole = everything.read_text(encoding="utf-8").splitlines()
    assert any("Прочее" in l for l in whole) and not any(l.startswith("Файл") for l in whole)


def test_a_saying_with_a_listed_word_is_left_out(tmp_path, capsys):
    src = tmp_path / "life"
    src.write_text("Водка - враг, а враг должен быть выпит.\n%\nДруг познаётся в беде, а не в застолье.\n", encoding="utf-8")
    out = tmp_path / "f.txt"
    assert corpora.main(["fortunes", "--files", str(src), "-o", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == "Друг познаётся в беде, а не в застолье.\n"
    assert "1 with a word a parable never says" in capsys.readouterr().out


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


# --- TinyStories-ru ------------------------------------------------------------------------------------------------

def write_shard(path: Path, stories: list) -> None:
    path.write_text("".join(json.dumps({"noun": "дыня", "story": s}, ensure_ascii=False) + "\n" for s in stories),
                    encoding="utf-8")


def test_tinystories_one_story_a_line_with_paragraph_marks(tmp_path, capsys):
    d = tmp_path / "data"
    d.mkdir()
    write_shard(d / "a.jsonl", ["Маша шла домой.\n\n\"Мама!\" - сказала она.\n\nЁжик спал.", "Кот спал."])
    write_shard(d / "b.jsonl", ["Кот спал.", "Папа купил водку.", "Это история про Ыыы."])
    (d / "c.jsonl").write_text('{"story": 5}\nnot json\n\n', encoding="utf-8")
    out = tmp_path / "ts.txt"
    assert corpora.main(["tinystories", "--from", str(d), "--charset-of", "", "-o", str(out)]) == 0
    body = out.read_text(encoding="utf-8")
    # paragraphs are one U+2029 inside the story's one line; «Ё» is mapped to «Е» (the base writes no «Ё»)
    assert body.split("\n") == ["Маша шла домой.\u2029\"Мама!\" - сказала она.\u2029Ежик спал.", "Кот спал.",
                                 "Это история про Ыыы.", ""]
    report = capsys.readouterr().out
    assert "1 exact duplicates" in report and "1 with a word a parable never says" in report
    assert "2 unreadable lines" in report and "Ё -> Е in 1 stories" in report and "Apache-2.0" in report
    # read back as a corpus, a story is one text, not one per paragraph
    from training.corpus import read_corpus

    assert len(read_corpus(out, min_chars=1).texts) == 3


def test_tinystories_drops_what_the_base_cannot_write(tmp_path, tiny_models, capsys):
    d = tmp_path / "data"
    d.mkdir()
    write_shard(d / "a.jsonl", ["мудрец сказал ученик.", "Щука и «Ъ»."])
    out = tmp_path / "ts.txt"
    assert corpora.main(["tinystories", "--from", str(d), "--charset-of", str(tiny_models / "alpha"), "-o", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == "мудрец сказал ученик.\n"
    assert "characters the --charset-of model lacks" in capsys.readouterr().out


def test_tinystories_without_a_copy_says_where_to_get_one(tmp_path, capsys):
    assert corpora.main(["tinystories", "--from", str(tmp_path / "nowhere"), "-o", str(tmp_path / "t.txt")]) == 2
    assert "github.com/MichaelMonashev/TinyStories-ru" in one_line(capsys)
    assert corpora.main(["tinystories", "-o", str(tmp_path / "t.txt")]) == 2
    assert "--from" in one_line(capsys)
    assert not (tmp_path / "t.txt").exists()


# --- parables written for the project ------------------------------------------------------------------------------

GOOD = [
    "Старый гончар учил сына лепить кувшины. Сын торопился, и кувшины трескались в печи. Отец сказал: «Глина "
    "помнит каждую спешку твоих рук». С тех пор сын работал медленно, и его кувшины служили людям много лет.",
    "Бедный пастух нашёл в горах кошелёк с золотом. Он отнёс его в село и отдал хозяину. Тот спросил: «Почему ты "
    "не взял золото себе?» Пастух ответил: «Золото быстро кончается, а честное имя остаётся со мной навсегда».",
    "Ученик спросил учителя, как стать терпеливым. Учитель дал ему семя и велел ждать. Через месяц из земли "
    "показался росток. Учитель сказал: «Ты не торопил семя, и оно выросло. Так же не торопи и своё сердце».",
]


def written(tmp_path, lines, name="sufi.written.txt") -> Path:
    p = tmp_path / name
    p.write_text("".join(l + "\n" for l in lines), encoding="utf-8")
    return p


def test_written_check_passes_clean_varied_original_texts(tmp_path, capsys):
    p = written(tmp_path, GOOD)
    assert corpora.main(["written", "--check", "--charset-of", "", str(p)]) == 0
    out = capsys.readouterr().out
    assert "3 texts" in out and "all checks passed" in out and "copied windows 0.00%" in out


@pytest.mark.parametrize("spoil, why", [
    (lambda g: g + [g[0].replace("Старый", "Добрый")], "near-duplicates"),
    (lambda g: g + ["Короткая притча."], "outside 150-450 characters"),
    (lambda g: g + [g[1].replace("пастух", "пьяный пастух")], "listed words: пьяный"),
    (lambda g: g + [g[2].replace("Ученик спросил", "Ученик хорошая спросил").replace("и оно выросло", "и оно большой выросло")
                    .replace("Так же", "Так же красивый")], "agreement errors"),
    (lambda g: g + [g[0].replace("Старый", "Zтарый")], "characters the base cannot write"),
    (lambda g: [t.replace(t.split()[0], "Однажды рано утром", 1) for t in g], "opening «однажды рано утром»"),
])
def test_written_check_fails_and_names_the_fault(tmp_path, capsys, tiny_models, spoil, why):
    p = written(tmp_path, spoil(list(GOOD)))
    from charlm import load_bundle

    alphabet = "".join(sorted(set("".join(GOOD)) | set(load_bundle(tiny_models / "alpha").charset.chars) - {"Z"}))
    assert "Z" not in alphabet
    import training.written as w

    base = tmp_path / "base"
    from tests.conftest import make_bundle

    make_bundle(tmp_path, "base", text="".join(alphabet) * 200 + "\n") if why.startswith("characters") else None
    args = ["written", "--check", "--charset-of", str(base) if base.exists() else "", str(p)]
    assert corpora.main(args) == 1
    out = capsys.readouterr().out
    assert why in out and "some checks failed" in out
    assert corpora.main([a for a in args if a != "--check"]) == 0  # figures only: no failing exit


def test_written_check_counts_windows_copied_from_other_corpora(tmp_path, capsys):
    real = written(tmp_path, [GOOD[1]], name="real.txt")
    p = written(tmp_path, [GOOD[0], GOOD[2]])
    other = written(tmp_path, [GOOD[0][:120] + " И это всё, что нужно было знать об этой простой истории про глину."],
                    name="jewish.written.txt")
    assert corpora.main(["written", str(p), "--check", "--charset-of", "", "--against", str(real)]) == 0
    capsys.readouterr()
    p2 = written(tmp_path, [GOOD[0], GOOD[1], GOOD[2]])
    assert corpora.main(["written", str(p2), str(other), "--check", "--charset-of", "", "--against", str(real)]) == 1
    out = capsys.readouterr().out
    assert "of 40-character windows copied" in out


def test_a_corpus_line_with_paragraph_and_line_separators_stays_one_text(tmp_path):
    from training.corpus import read_corpus

    p = tmp_path / "c.txt"
    p.write_text("Первая притча.\u2029Её второй абзац.\u2028Третий.\nВторая притча.\r\nТретья\x85притча.\n", encoding="utf-8")
    assert read_corpus(p, min_chars=1).texts == [
        "Первая притча.\u2029Её второй абзац.\u2029Третий.", "Вторая притча.", "Третья\x85притча."]
