"""Known words: pymorphy3's dictionary plus a bundle's own words (its words.txt)."""

from charlm.words import Vocabulary


def test_invented_forms_are_unknown_and_real_ones_known():
    v = Vocabulary()
    assert v.unknown("Сосед отдал соседям хлеб, а соседам — придуть.") == ["соседам", "придуть"]
    assert v.known("Соседям") and not v.known("поставьть")


def test_a_corpus_gives_only_the_words_the_dictionary_lacks_and_they_round_trip():
    v = Vocabulary.of_texts(["Ребе Зуся сказал хасидам: «Молитесь».", "Зусе ответили хасиды."])
    assert {"ребе", "зуся", "зусе"} <= v.own and not {"сказал", "хасидам", "молитесь"} & v.own
    assert v.unknown("Зуся и ребе пошли к Зюзябру") == ["Зюзябру"]
    again = Vocabulary.from_text(v.to_text())
    assert again.own == v.own and v.to_text().splitlines() == sorted(v.own)
