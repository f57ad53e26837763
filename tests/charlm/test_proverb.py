from charlm.proverb import Proverb, cut, ends_sentence
from charlm.text import PARAGRAPH, display, normalize_text


def feed(p: Proverb, text: str) -> int | None:
    """Feed characters; return how many were consumed when the proverb finished."""
    for i, c in enumerate(text):
        if p.add(c):
            return i + 1
    return None


def test_sentence_end_after_min_length_stops():
    p = Proverb("", min_length=10, max_length=100)
    assert feed(p, "Коротко. Это уже длинная фраза. И дальше") is not None
    assert p.text == "Коротко. Это уже длинная фраза."
    assert p.ended == "sentence"


def test_sentence_end_before_min_length_does_not_stop():
    p = Proverb("", min_length=30, max_length=100)
    feed(p, "Да. Нет. Может быть, когда-нибудь потом. Хвост")
    assert p.text == "Да. Нет. Может быть, когда-нибудь потом."


def test_closing_quote_is_kept():
    p = Proverb("", min_length=5, max_length=100)
    feed(p, "Он сказал: «Иди.» Потом")
    assert p.text == "Он сказал: «Иди.»"


def test_abbreviation_is_not_a_sentence_end():
    p = Proverb("", min_length=5, max_length=100)
    feed(p, "Число 1.5 больше. Да")
    assert p.text == "Число 1.5 больше."


def test_line_end_stops_and_trims_to_sentence():
    p = Proverb("", min_length=20, max_length=200)
    feed(p, "Первая фраза тут. Вторая без конца\n")
    assert p.text == "Первая фраза тут."
    assert p.ended == "sentence"


def test_max_length_cuts_at_word_with_ellipsis():
    p = Proverb("", min_length=10, max_length=30)
    feed(p, "слово " * 20)
    assert len(p.text) <= 30 + 1
    assert p.text.endswith("…") and not p.text.endswith(" …")
    assert p.ended == "length"


def test_max_length_prefers_last_sentence_end():
    text = "Начало истории здесь. " + "много слов подряд " * 10
    p = Proverb("", min_length=30, max_length=60)
    feed(p, text)
    assert p.text == "Начало истории здесь."


def test_prefix_is_part_of_text():
    p = Proverb("Однажды", min_length=5, max_length=100)
    feed(p, " мудрец ушёл. И")
    assert p.text == "Однажды мудрец ушёл."


def test_helpers():
    assert ends_sentence("Так!»")
    assert not ends_sentence("Так,")
    assert cut("а б в г", 0) == "а б в…"
    assert normalize_text("\u00a0\u00a0 Раз.  \u00a0\u00a0\u00a0Два.") == "Раз." + PARAGRAPH + "Два."
    assert display("Раз." + PARAGRAPH + "Два.") == "Раз.\nДва."
