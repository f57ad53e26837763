"""Generating proverbs in batches: prime, step, sample, stop, guard against recitation."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .charset import Charset
from .novelty import NoveltyIndex
from .proverb import Proverb
from .runtime import Runtime
from .sampling import Settings, choose, probabilities
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
        self.u = np.stack([j.rng.random(width) for j in jobs]) if jobs else np.zeros((0, width))  # (rows, width)
        self.used = np.zeros(len(jobs), np.int64)  # draws taken per row

    def take(self, rows: np.ndarray) -> np.ndarray:
        """The next draw of each of `rows` (indices into the jobs) -> (len(rows),)."""
        k = self.used[rows]
        self.used[rows] = k + 1
        return self.u[rows, k]

    def rewind(self) -> None:
        """Leave every row's generator just after the draws it used."""
        for job, state, used in zip(self.jobs, self.saved, self.used.tolist()):
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
        for i, (text, ended) in zip(pending, texts):
            job = jobs[i]
            copied, windows = novelty.copied(text) if novelty is not None else (0, 0)
            res = Result(display(text), job.req.seed, ended, job.attempts, copied, windows, text)
            if job.best is None or _better(res, job.best):
                job.best = res
            if (copied or not res.text) and job.attempts < max_attempts:
                retry.append(i)
        pending = retry
    return [j.best for j in jobs]


def _better(a: Result, b: Result) -> bool:
    return (bool(a.text), -a.copied) > (bool(b.text), -b.copied)


def _run(runtime: Runtime, charset: Charset, jobs: list[_Job]) -> list[tuple[str, str]]:
    """One attempt for each job, in one batched pass; -> (model text, how it ended) per job."""
    n = len(jobs)
    settings = [j.req.settings for j in jobs]
    temp = np.array([s.temperature for s in settings], np.float64)
    top_k = np.array([s.top_k for s in settings], np.int64)
    top_p = np.array([s.top_p for s in settings], np.float64)
    # the sentence-end nudge: from half the maximum length on, "." "!" "?" get up to `end_boost` extra
    # logits, growing linearly, so a long proverb closes its sentence instead of running into the cut
    boost = np.array([s.end_boost for s in settings], np.float64)
    b_start = np.array([max(s.min_length, s.max_length // 2) for s in settings], np.float64)
    b_span = np.array([max(1, s.max_length - max(s.min_length, s.max_length // 2)) for s in settings], np.float64)
    end_ids = [charset.chars.index(c) for c in ".!?" if c in charset]
    boosting = bool(end_ids) and bool((boost > 0).any())
    proverbs = [Proverb(j.prefix, s.min_length, s.max_length) for j, s in zip(jobs, settings)]
    draws = _Draws(jobs, settings)
    # each row's text length: a sampled character that does not end the proverb adds exactly one
    length = np.array([len(p.chars) for p in proverbs], np.float64)
    state = runtime.initial_state(n)
    prime_len = np.array([len(j.prime) for j in jobs], np.int64)
    longest = int(prime_len.max()) if n else 0
    fed = 0  # characters fed so far: the same for every active row, since all rows start together
    ids = np.array([j.prime[0] for j in jobs], np.int64)
    active = np.arange(n)  # rows still running, in the order of `state`'s rows
    chars = charset.chars
    # settings of the active rows, recut only when rows finish (the common step is all-sampling)
    a_temp, a_top_k, a_top_p = temp, top_k, top_p
    while len(active):
        logits, state = runtime.step(ids, state)  # (A, V)
        fed += 1
        if boosting:
            extra = boost[active] * np.clip((length[active] - b_start[active]) / b_span[active], 0.0, 1.0)  # (A,)
            if extra.any():
                logits = logits.copy()
                logits[:, end_ids] += extra[:, None].astype(np.float32)
        priming = prime_len[active] > fed if fed < longest else None  # rows still feeding their prefix
        if priming is None or not priming.any():  # every row samples: no masks to apply
            sampling = range(len(active))
            nxt = choose(probabilities(logits, a_temp, a_top_k, a_top_p), draws.take(active))
            if boosting:
                length[active] += 1
        else:
            nxt = np.empty(len(active), np.int64)
            nxt[priming] = [jobs[r].prime[fed] for r in active[priming]]
            sampling = ~priming
            if sampling.any():
                rows = active[sampling]
                p = probabilities(logits[sampling], temp[rows], top_k[rows], top_p[rows])
                nxt[sampling] = choose(p, draws.take(rows))
                if boosting:
                    length[rows] += 1
            sampling = np.flatnonzero(sampling).tolist()
        rows, ids_list = active.tolist(), nxt.tolist()
        done = [k for k in sampling if proverbs[rows[k]].add(chars[ids_list[k]])]
        if done:
            keep = np.ones(len(active), bool)
            keep[done] = False
            active = active[keep]
            state = Runtime.select(state, keep)
            nxt = nxt[keep]
            a_temp, a_top_k, a_top_p = temp[active], top_k[active], top_p[active]
        ids = nxt
    draws.rewind()
    return [(p.text, p.ended) for p in proverbs]
