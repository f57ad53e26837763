"""Best of N candidates: the kept proverb is the candidate with the fewest agreement errors, deterministically."""

from dataclasses import replace

import pytest

from charlm import Request, Settings, load_bundle
from charlm.candidates import candidate_seed, generate_best
from charlm.generate import generate


class CountLetter:
    """A stand-in grammar check for a tiny model that writes no real Russian: each «а» is one error."""

    def check(self, texts):
        from charlm.agreement import Agreement

        n = sum(t.count("а") for t in texts)
        return Agreement(pairs=max(n, 1), errors=n)


@pytest.fixture(scope="module")
def alpha(tiny_models):
    return load_bundle(tiny_models / "alpha")


def test_one_candidate_is_plain_generation(alpha):
    reqs = [Request(s, "", alpha.defaults) for s in range(5)]
    assert [r.text for r in generate_best(alpha.runtime, alpha.charset, reqs, alpha.novelty)] == \
           [r.text for r in generate(alpha.runtime, alpha.charset, reqs, alpha.novelty)]


def test_keeps_the_candidate_with_fewest_errors(alpha):
    s4 = replace(alpha.defaults, candidates=4)
    checker = CountLetter()
    for seed in range(6):
        alone = [generate(alpha.runtime, alpha.charset, [Request(candidate_seed(seed, k), "", s4)], alpha.novelty)[0]
                 for k in range(4)]
        assert alone[0].text == generate(alpha.runtime, alpha.charset, [Request(seed, "", s4)], alpha.novelty)[0].text
        fewest = min(range(4), key=lambda k: (alone[k].raw.count("а"), k))
        got = generate_best(alpha.runtime, alpha.charset, [Request(seed, "", s4)], alpha.novelty, checker)[0]
        assert got.text == alone[fewest].text and got.seed == seed
    assert len({candidate_seed(7, k) for k in range(4)}) == 4


def test_independent_of_batch_mates(alpha):
    s3 = replace(alpha.defaults, candidates=3)
    reqs = [Request(s, "", s3 if s % 2 else alpha.defaults) for s in range(9)]
    together = [r.text for r in generate_best(alpha.runtime, alpha.charset, reqs, alpha.novelty)]
    alone = [generate_best(alpha.runtime, alpha.charset, [r], alpha.novelty)[0].text for r in reqs]
    assert together == alone


def test_candidates_are_range_checked():
    with pytest.raises(ValueError, match="candidates"):
        Settings(candidates=0)
    with pytest.raises(ValueError, match="candidates"):
        Settings(candidates=17)


# --- words a parable never says (charlm.wordfilter) --------------------------------------------------------------

def test_the_list_catches_every_form_and_not_ordinary_words():
    from charlm.wordfilter import filtered_words

    assert filtered_words("Проституция - это собака, а проститутки ...") == ["Проституция", "проститутки"]
    assert filtered_words("Он купил водку, потом водки и пьяный пошёл к программисту.") == \
           ["водку", "водки", "пьяный", "программисту"]
    assert filtered_words("вино и хлеб") == ["вино"]
    # guilt, cloth, a brewer, water: not drink
    assert filtered_words("По его вине сукно намокло; пивовар пил воду из кувшина, лёжа на свободе.") == []
    assert filtered_words("Больной лежал в постели, а жена выбрала постели мягче.") == []
    assert filtered_words("Там был публичный дом.") == ["публичный дом"]


@pytest.fixture
def listed(monkeypatch):
    """List the start of a word the tiny model writes often, as if it were a word a parable never says."""
    import re

    import charlm.candidates as cand

    def use(stem):
        pattern = re.compile(rf"(?<![а-яёa-z]){stem}", re.IGNORECASE)
        monkeypatch.setattr(cand, "has_filtered_word", lambda text: pattern.search(text) is not None)
        return pattern

    return use


@pytest.mark.parametrize("candidates", [1, 3])
def test_a_listed_word_is_never_served_and_a_fresh_candidate_replaces_it(alpha, listed, candidates):
    settings = replace(alpha.defaults, candidates=candidates)
    reqs = [Request(s, "", settings) for s in range(24)]
    plain = [r.raw for r in generate_best(alpha.runtime, alpha.charset, reqs, alpha.novelty, CountLetter())]
    # the model's most frequent two-letter word start: listed, it is in a good share of the plain proverbs
    import collections
    import re

    starts = collections.Counter(w[:2] for t in plain for w in re.findall(r"\w{2,}", t))
    stem = starts.most_common(1)[0][0]
    pattern = listed(stem)
    assert sum(bool(pattern.search(t)) for t in plain) >= 3
    served = generate_best(alpha.runtime, alpha.charset, reqs, alpha.novelty, CountLetter())
    assert not any(pattern.search(r.raw) for r in served)
    assert all(r.text for r in served) and [r.seed for r in served] == list(range(24))
    # the same proverbs one by one (batch-independent), and again (deterministic)
    assert [generate_best(alpha.runtime, alpha.charset, [q], alpha.novelty, CountLetter())[0].text for q in reqs[:8]] == \
           [r.text for r in served[:8]]
    # proverbs without the word are the ones served before the word was listed
    assert all(s.raw == p for s, p in zip(served, plain) if not pattern.search(p))


class NoErrors:
    """A grammar check that finds every candidate equal: the model's own likelihood decides."""

    def check(self, texts):
        from charlm.agreement import Agreement

        return Agreement(pairs=1, errors=0)


def test_among_equal_candidates_the_one_the_model_finds_most_likely_is_kept(alpha):
    from charlm.candidates import _written
    from charlm.score import text_nats

    s4 = replace(alpha.defaults, candidates=4)
    chosen_k = []
    for seed in range(8):
        alone = [generate(alpha.runtime, alpha.charset, [Request(candidate_seed(seed, k), "", s4)], alpha.novelty)[0]
                 for k in range(4)]
        scores = [text_nats(alpha.runtime, alpha.charset, [_written(alpha.charset, a.raw)])[0] for a in alone]
        likeliest = min(range(4), key=lambda k: (scores[k][0] / scores[k][1], k))
        got = generate_best(alpha.runtime, alpha.charset, [Request(seed, "", s4)], alpha.novelty, NoErrors())[0]
        assert got.text == alone[likeliest].text
        chosen_k.append(likeliest)
    assert len(set(chosen_k)) > 1  # the likelihood, not the candidate's number, decided


def test_a_texts_score_does_not_depend_on_what_is_scored_with_it(alpha):
    from charlm.candidates import _written
    from charlm.score import text_nats

    texts = [_written(alpha.charset, r.raw)
             for r in generate(alpha.runtime, alpha.charset, [Request(s, "", alpha.defaults) for s in range(9)])]
    together = text_nats(alpha.runtime, alpha.charset, texts)
    assert [text_nats(alpha.runtime, alpha.charset, [t])[0] for t in texts] == together
    assert all(n == len(t) for (_, n), t in zip(together, texts))


def test_with_real_words_the_candidate_with_fewest_unknown_words_is_kept(alpha):
    from charlm.candidates import _written
    from charlm.score import text_nats
    from charlm.words import Vocabulary

    words = Vocabulary()  # pymorphy3 alone: the tiny model's «words» are mostly unknown, some («к», «ее») known
    s4 = replace(alpha.defaults, candidates=4)
    changed = 0
    for seed in range(10):
        alone = [generate(alpha.runtime, alpha.charset, [Request(candidate_seed(seed, k), "", s4)], alpha.novelty)[0]
                 for k in range(4)]
        nats = [(lambda t: t[0] / t[1])(text_nats(alpha.runtime, alpha.charset, [_written(alpha.charset, a.raw)])[0])
                for a in alone]
        fewest = min(range(4), key=lambda k: (len(words.unknown(alone[k].raw)), nats[k], k))
        on = generate_best(alpha.runtime, alpha.charset, [Request(seed, "", replace(s4, real_words=True))],
                           alpha.novelty, NoErrors(), words=words)[0]
        off = generate_best(alpha.runtime, alpha.charset, [Request(seed, "", s4)], alpha.novelty, NoErrors(),
                            words=words)[0]
        assert on.text == alone[fewest].text
        changed += on.text != off.text
    assert changed  # the words decided somewhere: without real_words the likeliest candidate is kept


def test_the_bundles_own_words_count_as_known(alpha):
    from charlm.words import Vocabulary

    s4 = replace(alpha.defaults, candidates=4, real_words=True)
    reqs = [Request(seed, "", s4) for seed in range(6)]
    texts = [r.raw for r in generate(alpha.runtime, alpha.charset, [Request(candidate_seed(r.seed, k), "", s4)
                                                                       for r in reqs for k in range(4)])]
    everything = Vocabulary.of_texts(texts)  # every word the candidates wrote is this bundle's own
    assert all(everything.unknown(t) == [] for t in texts)
    knowing = [r.text for r in generate_best(alpha.runtime, alpha.charset, reqs, alpha.novelty, NoErrors(), words=everything)]
    likeliest = [r.text for r in generate_best(alpha.runtime, alpha.charset, [replace(r, settings=replace(s4, real_words=False))
                                                                                for r in reqs], alpha.novelty, NoErrors())]
    assert knowing == likeliest


def test_the_likelihood_summed_while_generating_is_the_scoring_pass_bit_for_bit(alpha):
    from charlm.candidates import _written
    from charlm.score import text_nats

    cut = replace(alpha.defaults, min_length=10, max_length=30)  # many end at the length cut, some with "…"
    reqs = [Request(s, "Он" if s % 3 == 0 else "", cut if s % 2 else alpha.defaults) for s in range(24)]
    results = generate(alpha.runtime, alpha.charset, reqs, alpha.novelty)
    scored = text_nats(alpha.runtime, alpha.charset, [_written(alpha.charset, r.raw) for r in results])
    assert [r.nats for r in results] == scored  # exactly: the same float64 sums in the same order
    assert any(r.ended == "length" for r in results) and any(r.raw.startswith("Он") for r in results)


def test_a_text_without_its_summed_likelihood_is_scored_again(alpha):
    from charlm.candidates import _scores, _written
    from charlm.score import text_nats

    results = generate(alpha.runtime, alpha.charset, [Request(s, "", alpha.defaults) for s in range(4)])
    mixed = [replace(r, nats=None) if i % 2 else r for i, r in enumerate(results)]
    assert _scores(alpha.runtime, alpha.charset, mixed) == \
        text_nats(alpha.runtime, alpha.charset, [_written(alpha.charset, r.raw) for r in results])
