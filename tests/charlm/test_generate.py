import numpy as np
import pytest

from charlm import Charset, CharsetError, Request, Settings, load_bundle
from charlm.novelty import NoveltyIndex, window_hashes
from tests.conftest import make_bundle


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return load_bundle(make_bundle(tmp_path_factory.mktemp("g"), "delta", seed=4))


def test_same_seed_same_text_and_batch_invariance(bundle):
    s = bundle.defaults
    alone = bundle.generate([Request(7, "Мудрец", s)])[0]
    crowd = bundle.generate([Request(i, "", s.with_(temperature=0.3 + 0.1 * i)) for i in range(5)]
                            + [Request(7, "Мудрец", s)] + [Request(9, "Од", s)])
    assert crowd[5].text == alone.text
    assert alone.text.startswith("Мудрец")


def test_proverbs_respect_lengths(bundle):
    s = Settings(temperature=1.0, min_length=20, max_length=50)
    for r in bundle.generate([Request(i, "", s) for i in range(20)]):
        assert 0 < len(r.text) <= 51
        assert "\n\n" not in r.text


def test_greedy_and_top_k_are_deterministic(bundle):
    g = Settings(temperature=0, min_length=10, max_length=40)
    a, b = bundle.generate([Request(1, "", g), Request(2, "", g)])
    assert a.text == b.text  # greedy ignores the seed
    k1 = Settings(temperature=1.0, top_k=1, min_length=10, max_length=40)
    assert bundle.generate([Request(5, "", k1)])[0].text == a.text  # top-1 sampling is greedy


def test_prefix_outside_charset_raises_named(bundle):
    with pytest.raises(CharsetError) as e:
        bundle.generate([Request(1, "Привет ☃")])
    assert e.value.char == "☃"


def test_novelty_guard_resamples_copies():
    text = "Слово серебро, молчание золото, а дело дороже всего на свете."
    idx = NoveltyIndex.from_text(text)
    assert idx.copied(text) == (len(text) - 39, len(text) - 39)
    assert idx.copied("Совсем другая фраза, которой нет в корпусе никогда и нигде.")[0] == 0
    assert len(window_hashes("коротко")) == 0


def test_generate_resamples_a_proverb_that_recites_the_corpus(bundle):
    s = Settings(temperature=1.0, min_length=45, max_length=80)
    first = bundle.generate([Request(11, "", s)])[0]
    assert first.windows > 0
    saved = bundle.novelty
    try:
        bundle.novelty = NoveltyIndex.from_text(first.raw)  # pretend the corpus holds exactly that proverb
        again = bundle.generate([Request(11, "", s)])[0]
    finally:
        bundle.novelty = saved
    assert again.attempts >= 2 and again.copied == 0
    assert again.text != first.text


def test_end_boost_makes_long_proverbs_end_a_sentence(bundle):
    plain = Settings(temperature=1.0, min_length=20, max_length=80)
    nudged = plain.with_(end_boost=8.0)
    reqs = lambda s: [Request(i, "", s) for i in range(40)]  # noqa: E731
    before = sum(r.ended == "sentence" for r in bundle.generate(reqs(plain)))
    after = bundle.generate(reqs(nudged))
    assert sum(r.ended == "sentence" for r in after) > before
    assert not any(r.ended == "length" for r in after)  # none runs into the cut any more
    # a nudged row is still batch invariant
    assert bundle.generate([Request(3, "", nudged)])[0].text == after[3].text


def test_the_novelty_index_finds_windows_from_hashes_in_any_order():
    # bundles store their hashes sorted and unique (taken as they are); anything else is sorted first
    text = "Сказал мудрец: кто ищет, тот найдёт, а кто спит, тот видит сны."
    h = window_hashes(text, 10)
    for hashes in (np.unique(h), h[::-1], np.concatenate([h, h])):
        assert NoveltyIndex(hashes, 10).copied(text[5:40]) == (26, 26)
        assert NoveltyIndex(hashes, 10).copied("Совсем другие слова здесь.")[0] == 0


def test_the_end_boost_skips_only_steps_where_every_nudge_is_zero():
    # EndBoost counts down the steps before any row can pass its start; the logits it returns must be what
    # the nudge formula gives at every step, for rows sampling in any pattern
    from charlm.generate import EndBoost

    chars = Charset.from_text("абв. !?\n")
    rng = np.random.default_rng(3)
    settings = [Settings(min_length=m, max_length=x, end_boost=b)
                for m, x, b in [(5, 30, 2.0), (12, 20, 0.0), (1, 16, 5.0), (8, 40, 1.0)]]
    lengths = [0, 3, 4, 9]
    boost = EndBoost(chars, settings, lengths)
    length = np.array(lengths, np.float64)
    start = np.array([max(s.min_length, s.max_length // 2) for s in settings], np.float64)
    span = np.array([max(1, s.max_length - st) for s, st in zip(settings, start)])
    nudged = 0
    for step in range(45):
        rows = np.arange(4) if step < 12 else np.flatnonzero(rng.random(4) < 0.8)  # all at first: tight bound
        logits = rng.standard_normal((len(rows), len(chars))).astype(np.float32)
        want = logits.copy()
        extra = np.array([s.end_boost for s in settings])[rows] * np.clip((length[rows] - start[rows]) / span[rows], 0, 1)
        want[:, [chars.chars.index(c) for c in ".!?"]] += extra[:, None].astype(np.float32)
        np.testing.assert_array_equal(boost.apply(logits, rows), want)
        nudged += int(extra.any())
        boost.sampled(rows)
        length[rows] += 1
    assert 10 < nudged < 45


def test_the_novelty_index_of_corpora_covers_each_in_full_or_sampled_and_the_bases():
    from charlm.novelty import SAMPLE_ABOVE, SAMPLE_EVERY, NoveltyIndex, window_hashes

    small = "Маленький корпус притч, весь целиком в указателе новизны.\n"
    rng = np.random.default_rng(0)
    letters = np.array(list("абвгдежзиклмнопрстуфхцчшщыэюя "))
    big = "".join(rng.choice(letters, SAMPLE_ABOVE + 1000))
    base = NoveltyIndex.from_text("".join(rng.choice(letters, 5000)) + "\n")
    index = NoveltyIndex.of_corpora([small, big], also=base)
    assert index.copied(small)[0] == index.copied(small)[1] > 0  # every window of a small corpus
    # the base's windows: the sampled ones, the same 1 in 16 as the big corpus'
    kept_base = base.hashes[base.hashes % SAMPLE_EVERY == 0]
    assert len(kept_base) > 0 and np.isin(kept_base, index.hashes).all()
    assert not np.isin(base.hashes[base.hashes % SAMPLE_EVERY != 0], index.hashes).any()
    h = window_hashes(big)
    kept = h % SAMPLE_EVERY == 0
    # the big corpus: exactly the windows whose hash is a multiple of SAMPLE_EVERY, about 1 in 16
    assert 0.04 < kept.mean() < 0.09
    assert np.isin(h, index.hashes).tolist() == (kept | np.isin(h, window_hashes(small)) | np.isin(h, kept_base)).tolist()
