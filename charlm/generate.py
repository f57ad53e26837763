"""Generating proverbs in batches: prime, step, sample, stop, guard against recitation."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .charset import Charset
from .novelty import NoveltyIndex
from .proverb import Proverb
from .runtime import Runtime
from .sampling import Cuts, Settings, choose
from .text import END, display, normalize_prefix

MAX_ATTEMPTS = 6  # a proverb that copies the corpus or comes out empty is resampled this many times at most


@dataclass
class Request:
    """One proverb to generate: its seed, optional prefix and decoding settings."""

    seed: int
    prefix: str = ""
    settings: Settings = field(default_factory=Settings)


@dataclass
class Result:
    """A generated proverb: `text` as a person reads it, and how it came about."""

    text: str
    seed: int
    ended: str  # "sentence", "line" or "length"
    attempts: int
    copied: int = 0  # windows of the text found verbatim in the corpus (when the bundle has the index)
    windows: int = 0
    raw: str = ""  # the model's own text, paragraph marks included
    # (negative log-likelihood in nats, characters) of the text as charlm.score.text_nats scores it, summed while
    # it was generated; None where the text is not what was generated (a cut that added "…")
    nats: tuple[float, int] | None = None


def start_context(charset: Charset) -> str:
    """What a new text is primed with: the end of a previous text (".\n"), else END, else a space.

    A model's state at the start of a training window is zero mid-sentence, so zero state + END alone
    reads as "somewhere in a text" (95 % of proverbs began in lower case); a sentence end before END
    says "a new text starts here" (87 % begin with a capital, often "Однажды"). A model imported from
    elsewhere may know no line breaks; a space (a word boundary) is then the nearest thing.
    """
    if END in charset:
        return "." + END if "." in charset else END
    return " " if " " in charset else END


class _Job:
    def __init__(self, req: Request, charset: Charset):
        self.req = req
        self.prefix = normalize_prefix(req.prefix)
        self.prime = charset.encode(start_context(charset) + self.prefix)  # raises CharsetError naming the character
        self.rng = np.random.default_rng(req.seed)
        self.attempts = 0
        self.best: Result | None = None


class _Draws:
    """Each row's uniform draws for one attempt, taken from its own Generator in one call per row.

    Bit-identical to calling `job.rng.random()` once per sampled character: `Generator.random(n)` gives
    the same n doubles as n scalar calls (one 64-bit PCG64 output each), and at the end of the attempt
    each generator is put back just after its last used draw (state saved, then `advance(used)`), so a
    resampled attempt goes on from exactly where the scalar loop would have.
    """

    def __init__(self, jobs: list[_Job], settings: list[Settings]):
        self.jobs = jobs
        # at most max_length draws per attempt: every sampled character that does not end the proverb
        # adds one character, and a proverb ends at max_length characters
        width = max(s.max_length for s in settings) + 1
        self.saved = [j.rng.bit_generator.state for j in jobs]
        # (rows * width,): row r's draws at r * width onwards; `take` works on flat positions (ndarray.take
        # is ~3x cheaper than fancy indexing on a few rows)
        self.u = np.concatenate([j.rng.random(width) for j in jobs]) if jobs else np.zeros(0)
        self.first = np.arange(len(jobs), dtype=np.int64) * width  # (rows,) each row's first draw
        self.next = self.first.copy()  # (rows,) each row's next draw

    def take(self, rows: np.ndarray) -> np.ndarray:
        """The next draw of each of `rows` (indices into the jobs) -> (len(rows),)."""
        at = self.next.take(rows)
        self.next[rows] = at + 1
        return self.u.take(at)

    def rewind(self) -> None:
        """Leave every row's generator just after the draws it used."""
        for job, state, used in zip(self.jobs, self.saved, (self.next - self.first).tolist()):
            bg = job.rng.bit_generator
            bg.state = state
            bg.advance(used)


def generate(
    runtime: Runtime,
    charset: Charset,
    requests: list[Request],
    novelty: NoveltyIndex | None = None,
    max_attempts: int = MAX_ATTEMPTS,
) -> list[Result]:
    """Generate one proverb per request, all rows stepped together; results in request order.

    Each request draws from its own `numpy.random.Generator(seed)` and every row is computed on its own,
    so a request's text depends only on the bundle, its seed, prefix and settings — not on the batch.
    """
    jobs = [_Job(r, charset) for r in requests]
    pending = list(range(len(jobs)))
    while pending:
        for i in pending:
            jobs[i].attempts += 1
        texts = _run(runtime, charset, [jobs[i] for i in pending])
        retry = []
        for i, (text, ended, nats) in zip(pending, texts):
            job = jobs[i]
            copied, windows = novelty.copied(text) if novelty is not None else (0, 0)
            res = Result(display(text), job.req.seed, ended, job.attempts, copied, windows, text, nats)
            if job.best is None or _better(res, job.best):
                job.best = res
            if (copied or not res.text) and job.attempts < max_attempts:
                retry.append(i)
        pending = retry
    return [j.best for j in jobs]


def _better(a: Result, b: Result) -> bool:
    return (bool(a.text), -a.copied) > (bool(b.text), -b.copied)


class _Priming:
    """Step 1, priming: each row is fed its prime (start context + prefix) before it samples anything.

    All rows start together, so after `fed` steps the rows still priming are those whose prime is longer.
    """

    def __init__(self, jobs: list[_Job]):
        self.primes = [j.prime for j in jobs]
        self.lengths = np.array([len(p) for p in self.primes], np.int64)  # (rows,)
        self.longest = int(self.lengths.max()) if jobs else 0

    def first_ids(self) -> np.ndarray:
        """The first character of every row's prime -> (rows,)."""
        return np.array([p[0] for p in self.primes], np.int64)

    def feeding(self, rows: np.ndarray, fed: int) -> np.ndarray | None:
        """(len(rows),) bool: which of `rows` still feed their prime after `fed` characters; None when none does."""
        if fed >= self.longest:
            return None
        mask = self.lengths[rows] > fed
        return mask if mask.any() else None

    def next_ids(self, rows: np.ndarray, fed: int) -> list[int]:
        """The next prime character of each of `rows` (rows that are still feeding)."""
        return [self.primes[r][fed] for r in rows]


class EndBoost:
    """Step 2, a logit filter: the sentence-end nudge. From half the maximum length on, "." "!" "?" get up to
    `end_boost` extra logits, growing linearly, so a long proverb closes its sentence instead of running into
    the cut. It keeps each row's text length (a sampled character that does not end the proverb adds one).
    """

    def __init__(self, charset: Charset, settings: list[Settings], lengths: list[int]):
        self.boost = np.array([s.end_boost for s in settings], np.float64)  # (rows,)
        self.start = np.array([max(s.min_length, s.max_length // 2) for s in settings], np.float64)
        self.span = np.array([max(1, s.max_length - max(s.min_length, s.max_length // 2)) for s in settings], np.float64)
        self.end_ids = [charset.chars.index(c) for c in ".!?" if c in charset]
        self.on = bool(self.end_ids) and bool((self.boost > 0).any())
        self.length = np.array(lengths, np.float64)  # (rows,) text length so far
        # Sampling steps before any boosted row passes its start, counting down: each step adds at most one
        # character to a row, so until then every nudge is zero (half of a proverb's steps; 6 numpy calls each).
        self.quiet = int((self.start - self.length)[self.boost > 0].min()) if self.on else 0

    def apply(self, logits: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """logits (len(rows), V) of `rows` -> the same, nudged (a new array when anything changes)."""
        if not self.on or self.quiet >= 0:
            return logits
        extra = self.boost[rows] * np.clip((self.length[rows] - self.start[rows]) / self.span[rows], 0.0, 1.0)  # (A,)
        if not extra.any():
            return logits
        logits = logits.copy()
        logits[:, self.end_ids] += extra[:, None].astype(np.float32)
        return logits

    def sampled(self, rows: np.ndarray) -> None:
        """`rows` sampled one character each."""
        if self.on:
            self.length[rows] += 1
            self.quiet -= 1


class _Sampler:
    """Step 3, sampling: temperature, top-k and top-p, then each row's own next uniform draw."""

    def __init__(self, settings: list[Settings], draws: _Draws):
        self.temp = np.array([s.temperature for s in settings], np.float64)  # (rows,)
        self.top_k = np.array([s.top_k for s in settings], np.int64)
        self.top_p = np.array([s.top_p for s in settings], np.float64)
        self.draws = draws
        self._rows: np.ndarray | None = None  # the rows the cuts below are for
        self._cuts: Cuts | None = None

    def sample(self, logits: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """logits (len(rows), V) of `rows` -> the chosen ids (len(rows),)."""
        if rows is not self._rows:  # prepare the settings once per set of rows (the active rows change rarely)
            self._rows, self._cuts = rows, Cuts(self.temp[rows], self.top_k[rows], self.top_p[rows])
        return choose(self._cuts.probabilities(logits), self.draws.take(rows))


class _Likelihood:
    """Step 5, the text's likelihood as it is written: each character after the start context costs the nats the
    model's own distribution (temperature 1, no cuts, no end boost) gives it, summed in order. The same float64
    operations on the same exact logits as charlm.score.text_nats, one row at a time, so the sum over the kept
    text is bit for bit what a scoring pass would give, without that pass (~1/3 of a round-3 reply's CPU).
    """

    def __init__(self, jobs: list[_Job], settings: list[Settings], context: int):
        self.context = context  # characters of the start context, not scored
        width = max(len(j.prime) - context + s.max_length for j, s in zip(jobs, settings)) + 2 if jobs else 1
        self.running = np.zeros(len(jobs), np.float64)  # (rows,) nats so far
        self.sums = np.zeros((len(jobs), width), np.float64)  # (rows, width): [r, k] = nats of characters 0..k
        self.ids = np.zeros((len(jobs), width), np.int64)  # (rows, width): the characters scored

    def add(self, logits: np.ndarray, rows: np.ndarray, ids: np.ndarray, fed: int) -> None:
        """The model's logits (len(rows), V) after `fed` characters chose `ids` (len(rows),) as the next ones."""
        k = fed - self.context
        if k < 0:
            return
        z = logits.astype(np.float64)
        z -= z.max(axis=1, keepdims=True)
        self.running[rows] += np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(rows)), ids]
        self.sums[rows, k] = self.running[rows]
        self.ids[rows, k] = ids

    def of(self, row: int, written: np.ndarray) -> tuple[float, int] | None:
        """(nats, characters) of `written` (ids), when it is a prefix of what row `row` generated."""
        n = len(written)
        if n == 0:
            return 0.0, 0
        if n > self.ids.shape[1] or not np.array_equal(self.ids[row, :n], written):
            return None
        return float(self.sums[row, n - 1]), n


def _run(runtime: Runtime, charset: Charset, jobs: list[_Job]) -> list[tuple[str, str, tuple[float, int] | None]]:
    """One attempt for each job, in one batched pass; -> (model text, how it ended, its nats) per job.

    Each step: the model steps every active row (its state carried), the end boost nudges the logits, rows
    still priming take their next prime character and the others sample one; step 4, the stop rules
    (charlm.proverb.Proverb) end a row's proverb, and its row leaves the batch.
    """
    settings = [j.req.settings for j in jobs]
    proverbs = [Proverb(j.prefix, s.min_length, s.max_length) for j, s in zip(jobs, settings)]
    priming = _Priming(jobs)
    boost = EndBoost(charset, settings, [len(p.chars) for p in proverbs])
    draws = _Draws(jobs, settings)
    sampler = _Sampler(settings, draws)
    likelihood = _Likelihood(jobs, settings, len(start_context(charset)))
    chars = charset.chars
    state = runtime.initial_state(len(jobs))
    active = np.arange(len(jobs))  # (A,) rows still running, in the order of `state`'s rows
    ids = priming.first_ids()  # (A,) the characters fed at this step
    fed = 0  # characters fed so far: the same for every active row, since all rows start together
    while len(active):
        raw, state = runtime.step(ids, state)  # (A, V)
        fed += 1
        logits = boost.apply(raw, active)
        feeding = priming.feeding(active, fed)  # (A,) bool, or None: every row samples (the common step)
        if feeding is None:
            ids = sampler.sample(logits, active)
            sampled = list(range(len(active)))  # positions in `active` that sampled
            boost.sampled(active)
        else:
            ids = np.empty(len(active), np.int64)
            ids[feeding] = priming.next_ids(active[feeding], fed)
            sampling = ~feeding
            if sampling.any():
                rows = active[sampling]
                ids[sampling] = sampler.sample(logits[sampling], rows)
                boost.sampled(rows)
            sampled = np.flatnonzero(sampling).tolist()
        likelihood.add(raw, active, ids, fed)
        rows_list, ids_list = active.tolist(), ids.tolist()
        done = [k for k in sampled if proverbs[rows_list[k]].add(chars[ids_list[k]])]
        if done:
            keep = np.ones(len(active), bool)
            keep[done] = False
            active = active[keep]
            state = Runtime.select(state, keep)
            ids = ids[keep]
    draws.rewind()
    return [(p.text, p.ended, likelihood.of(r, charset.encode(written(charset, p.text)))) for r, p in enumerate(proverbs)]


def written(charset: Charset, raw: str) -> str:
    """What the model wrote: a proverb cut at its maximum length ends in a "…" the model may not know."""
    return "".join(c for c in raw if c in charset)
