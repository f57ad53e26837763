"""`python -m training.evaluate` on a tiny real bundle: figures in range, copying detected exactly, clear errors."""

import json
import math

import numpy as np

from charlm.generate import start_context
import pytest

from charlm import load_bundle
from charlm.text import END
from tests.conftest import make_bundle, synthetic_text
from training.corpus import read_corpus
from training.evaluate import CopyIndex, WordChecker, evaluate, heldout_bpc, main
from training.windows import split_texts


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """(models dir, corpus path) of a tiny LSTM bundle `toy` trained on the corpus file."""
    d = tmp_path_factory.mktemp("evaluate")
    corpus = d / "toy.txt"
    corpus.write_text(synthetic_text(40, seed=3), encoding="utf-8")
    make_bundle(d / "models", "toy", text=corpus.read_text(encoding="utf-8"), seed=3)
    return d / "models", corpus


def test_report_figures_are_in_range(toy):
    models, corpus = toy
    r = evaluate(models / "toy", corpus, n=24, seed=5, batch=10)
    assert r["n"] == 24 and r["words"] > 0 and r["windows"] >= 0
    for k in ("known_words", "sentence_end", "proverbs_with_copy"):
        assert 0.0 <= r[k] <= 1.0, k
    assert r["copied_windows"] is None or 0.0 <= r["copied_windows"] <= 1.0
    assert r["corpus_known_words"] > 0.95  # the synthetic corpus is made of dictionary words
    assert r["longest"] <= r["max_length"] == 120 and r["over_max_length"] == 0
    # a proverb cut at max_length ends with a "…" the model did not write: not a sentence end
    assert sum(r["ended"].values()) == 24
    assert r["sentence_end"] == pytest.approx(r["ended"].get("sentence", 0) / 24)
    assert 0 < r["mean_length"] <= r["max_length"]
    # a barely trained model: worse than uniform is impossible for long, better than 1 bpc is impossible
    assert 1.0 < r["val_bpc"] < math.log2(len(load_bundle(models / "toy").charset)) + 1
    assert r["val_texts"] >= 1 and r["val_split"]["val_share"] == 0.08
    # the same seeds give the same report
    again = evaluate(models / "toy", corpus, n=24, seed=5, batch=7)
    assert again["samples"] == r["samples"]
    assert 0.0 < r["distinct"] <= 1.0
    # the agreement check reads the synthetic corpus (dictionary words): its rate is a share or None
    assert r["corpus_agreement_errors"] is None or 0.0 <= r["corpus_agreement_errors"] <= 1.0


def test_distinct_counts_repeats(toy):
    models, corpus = toy
    # seeds 5..8 served as 1, 0, 1, 0: at most two different proverbs among four
    from unittest import mock

    import charlm.bundle as cb

    real = cb.Bundle.generate
    with mock.patch.object(cb.Bundle, "generate", lambda self, reqs: real(self, [type(q)(q.seed % 2, q.prefix, q.settings) for q in reqs])):
        twice = evaluate(models / "toy", corpus, n=4, seed=5, batch=4)
    assert twice["distinct"] <= 0.5


def test_heldout_bpc_is_full_context_over_the_training_split(toy):
    models, corpus = toy
    b = load_bundle(models / "toy")
    _, held = split_texts(read_corpus(corpus).texts, 0.08, 0)
    bpc, chars = heldout_bpc(b.runtime, b.charset, held)
    # the same figure, one text at a time through Runtime.forward, no batching tricks
    total = 0.0
    for t in held:
        ids = b.charset.encode(start_context(b.charset) + t + END)
        skip = len(start_context(b.charset)) - 1  # the prime's own characters are context, not scored
        logits = b.runtime.forward(ids[None, :-1])[0].astype(np.float64)  # (len, vocab)
        logp = logits - logits.max(1, keepdims=True)
        logp -= np.log(np.exp(logp).sum(1, keepdims=True))
        total -= logp[np.arange(len(ids) - 1), ids[1:]][skip:].sum()
    assert chars == sum(len(t) + 1 for t in held)
    assert bpc == pytest.approx(total / chars / math.log(2), rel=1e-6)


def test_copy_share_counts_verbatim_windows_exactly():
    corpus = "Мудрец сказал ученику: вода камень точит, а слово сердце лечит.\nДругая притча о царе и купце, что шли по дороге.\n"
    index = CopyIndex(corpus, n=10)
    copied = corpus.split(END)[0][5:45]  # 40 characters from the corpus: all 31 windows of 10 found
    assert index.copied(copied) == (31, 31)
    fresh = "Ничего подобного в этом корпусе нет."
    assert index.copied(fresh) == (0, len(fresh) - 9)
    half = copied[:20] + fresh  # windows inside the copied head only
    assert index.copied(half) == (11, len(half) - 9)
    # a hash match alone is a candidate, not a copy: pretend every window of `fresh` collides
    from charlm.novelty import window_hashes

    index.hashes = np.unique(np.concatenate([index.hashes, window_hashes(fresh, 10)]))
    assert index.copied(fresh)[0] == 0


def test_corpus_reference_and_unknown_words():
    c = WordChecker()
    known, total, unknown = c.count(["Мудрец сказал: кто-то пришёл, а xyz 123 не в счёт.", "Абырвалг сказал"])
    assert total == 10 and known == 9 and list(unknown) == ["абырвалг"]
    from charlm.words import Vocabulary

    own = WordChecker(Vocabulary(["Абырвалг"]))  # a bundle's words.txt: its own names count as known
    assert own.count(["Абырвалг сказал"])[:2] == (2, 2)


def test_cli_prints_table_and_json(toy, capsys, tmp_path):
    models, corpus = toy
    args = ["toy", "--models-dir", str(models), "--corpus", str(corpus), "-n", "8"]
    assert main(args + ["--save", str(tmp_path / "r.json")]) == 0
    table = capsys.readouterr().out
    assert "known words (pymorphy3 + the bundle's words.txt)" in table and "validation bits/char" in table
    assert main(args + ["--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["n"] == 8 and report == json.loads((tmp_path / "r.json").read_text(encoding="utf-8")) | {"seconds": report["seconds"]}


def test_missing_bundle_or_corpus_is_one_clear_line(toy, capsys, tmp_path):
    models, corpus = toy
    assert main(["nosuch", "--models-dir", str(models), "--corpus", str(corpus)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "nosuch" in err and "not a bundle folder" in err and "\n" not in err
    assert main(["toy", "--models-dir", str(models), "--corpus", str(tmp_path / "none.txt")]) == 2
    err = capsys.readouterr().err.strip()
    assert "none.txt" in err and "no such file" in err and "\n" not in err
    other = tmp_path / "latin.txt"
    other.write_text("Quick brown fox jumps over the lazy dog. " * 60 + "\n", encoding="utf-8")
    assert main(["toy", "--models-dir", str(models), "--corpus", str(other)]) == 2
    assert "does not know" in capsys.readouterr().err
