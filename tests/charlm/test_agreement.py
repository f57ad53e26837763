"""The agreement check: the errors readers trip over are counted, correct Russian is not."""

from charlm.agreement import AgreementChecker


def test_flags_the_errors_readers_saw_and_passes_correct_pairs():
    c = AgreementChecker()
    bad = c.check(["Он взял свою кошелек.", "Тогда вы стал царём.", "Мы испытываю страх.", "Он пришёл в своей городе."])
    assert bad.errors == 4 and bad.pairs == 6  # «Он взял», «Он пришёл» agree and count too
    assert set(bad.examples) == {"свою кошелек", "вы стал", "Мы испытываю", "своей городе"}
    good = c.check(["Он взял свой кошелек.", "Тогда вы стали царями.", "Мы испытываем страх.", "Он пришёл в свой город.",
                    "Она сказала: я знаю.", "Круглая сирота пришла."])
    assert good.pairs >= 6 and good.errors == 0
    assert good.rate == 0.0


def test_pairs_it_cannot_read_are_not_counted():
    c = AgreementChecker()
    # imperative, relative pronoun, punctuation between the words, a participle governing its noun
    r = c.check(["Ты скажи правду.", "Город, которого дервиши боялись.", "Свою, кошелек.", "Расстроенный ссорой ушёл."])
    assert r.pairs == 0 and r.rate is None


def test_the_parse_cache_stays_bounded_and_answers_stay_the_same(monkeypatch):
    # a generation worker checks candidates for weeks; the model keeps inventing words
    from charlm.agreement import AgreementChecker

    checker = AgreementChecker()
    monkeypatch.setattr(AgreementChecker, "CACHE_WORDS", 3)
    texts = ["Мы испытываю радость.", "свою кошелек", "Старый мудрец сказал.", "вы стал", "новые слова"]
    first = [checker.check([t]).errors for t in texts]
    assert len(checker._tags) <= 3
    assert [checker.check([t]).errors for t in texts] == first == [1, 1, 0, 1, 0]
