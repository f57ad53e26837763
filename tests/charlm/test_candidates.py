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
