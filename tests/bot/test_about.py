"""/about names what a model learned from, in the reader's language, from the manifest's "sources"."""

from dataclasses import replace

from charlm import load_bundle

from bot.replies import about_reply


def test_about_names_the_sources_in_the_readers_language(tiny_models):
    alpha = load_bundle(tiny_models / "alpha")
    with_sources = replace(alpha, manifest={**alpha.manifest, "sources": ["tinystories", "written", "neurobasnya", "odd.txt"]})
    ru = about_reply(with_sources, "ru")
    assert "Училась на: простые детские рассказы TinyStories-ru (Apache-2.0" in ru
    assert "написанные для проекта языковой моделью" in ru and "NeuroBasnya, MIT" in ru and "odd.txt" in ru
    en = about_reply(with_sources, "en")
    assert "Learned from: simple children's stories of TinyStories-ru (Apache-2.0" in en and "language model" in en
    # a bundle made before the list existed says nothing about it
    older = replace(alpha, manifest={k: v for k, v in alpha.manifest.items() if k != "sources"})
    assert "Училась" not in about_reply(older, "ru")


def test_a_bundle_records_its_sources_and_its_bases(tmp_path):
    from training.corpus import read_corpus
    from training.sources import learned_from

    files = {}
    for name in ("sufi.written.txt", "tinystories.txt", "mine.txt"):
        files[name] = tmp_path / name
        files[name].write_text("Притча.\n", encoding="utf-8")
    corpora = [read_corpus(files[n], min_chars=1) for n in ("mine.txt", "sufi.written.txt")]
    assert learned_from(corpora) == ["written", "mine.txt"]
    # a base made before "sources" existed: read from its corpus files
    old_base = {"corpus": {"files": [{"name": "sufi.txt"}, {"name": "fortunes.txt"}]}}
    assert learned_from(corpora, old_base) == ["written", "neurobasnya", "fortunes", "mine.txt"]
    assert learned_from([read_corpus(files["tinystories.txt"], min_chars=1)], {"sources": ["written"]}) == \
           ["tinystories", "written"]
