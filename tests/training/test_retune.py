"""New decoding defaults without retraining: golden samples follow, the model files stay as they were."""

import json
import shutil

import pytest

from charlm import BundleError, load_bundle
from charlm.bundle import FORMAT_VERSION
from training.retune import main


def test_retune_rewrites_defaults_and_golden_samples(tiny_models, tmp_path, capsys):
    b = tmp_path / "alpha"
    shutil.copytree(tiny_models / "alpha", b)
    before = load_bundle(b)
    assert main([str(b), "--candidates", "3", "--max-length", "80"]) == 0
    assert "candidates 1 -> 3" in capsys.readouterr().out
    after = load_bundle(b)
    assert after.defaults.candidates == 3 and after.defaults.max_length == 80
    assert after.defaults.temperature == before.defaults.temperature
    assert after.manifest["files"] == before.manifest["files"]  # the model itself is untouched
    assert after.check_golden() == []  # the bot reproduces the new golden samples exactly
    assert all(len(g["text"]) <= 80 + 1 for g in after.manifest["golden"])


def test_out_of_range_is_one_line_and_leaves_the_bundle(tiny_models, tmp_path, capsys):
    b = tmp_path / "alpha"
    shutil.copytree(tiny_models / "alpha", b)
    manifest = (b / "manifest.json").read_bytes()
    assert main([str(b), "--candidates", "40"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "candidates must be between 1 and 16" in err
    assert (b / "manifest.json").read_bytes() == manifest


def test_a_format_1_bundle_is_refused_by_name_and_retune_brings_it_up(tiny_models, tmp_path, capsys):
    # format 1's golden samples came from float32 products: the bot must not serve it as it is (`check` would
    # fail on samples that no longer reproduce), and retune is the one-line way forward
    b = tmp_path / "alpha"
    shutil.copytree(tiny_models / "alpha", b)
    m = json.loads((b / "manifest.json").read_text(encoding="utf-8"))
    m["format"] = 1
    m["golden"][0]["text"] = "a text the float runtime once wrote"
    (b / "manifest.json").write_text(json.dumps(m), encoding="utf-8")
    with pytest.raises(BundleError, match="format 1 holds golden samples of an older runtime.*training.retune"):
        load_bundle(b)
    assert main([str(b)]) == 0
    assert "settings unchanged; 3 golden samples regenerated" in capsys.readouterr().out
    after = load_bundle(b)
    assert after.manifest["format"] == FORMAT_VERSION and after.check_golden() == []


def test_real_words_with_the_bundles_own_words(tiny_models, tmp_path, capsys):
    b = tmp_path / "alpha"
    shutil.copytree(tiny_models / "alpha", b)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("Старый Зюзябр сказал ученику: «Иди».\nУченик пошёл к Зюзябру.\n" * 40, encoding="utf-8")
    assert main([str(b), "--candidates", "3", "--real-words", "--words-from", str(corpus)]) == 0
    assert "real_words False -> True" in capsys.readouterr().out
    after = load_bundle(b)
    assert after.defaults.real_words and (b / "words.txt").read_text(encoding="utf-8") == "зюзябр\nзюзябру\n"
    assert after.words.known("Зюзябру") and not after.words.known("Зюзябрам")
    assert after.check_golden() == []  # golden samples chosen with those words, as the bot chooses
    assert main([str(b), "--words-from", str(tmp_path / "missing.txt")]) == 2
    assert capsys.readouterr().err.count("\n") == 1
