"""The generation service's batching, on stand-in bundles in its thread mode (processes=0): no model, no sleep.

What the worker processes add (spawn, a worker that dies) is tested end to end in test_faults.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading

import pytest

from bot.generation import GenerationService
from charlm import Request, Result


class StandIn:
    """A bundle that 'generates' "<name>:<seed>" and notes each batch's seeds; held=True keeps each batch in the
    worker until `hold` is set, so that requests queue up behind it; `fail` makes every batch raise."""

    def __init__(self, name: str, fail: Exception | None = None, log: list | None = None, held: bool = False):
        self.name = name
        self.log = log  # shared by several stand-ins: (name, seeds) of every batch, in the order they ran
        self.path = f"/nonexistent/{name}"
        self.batches: list[list[int]] = []
        self.fail = fail
        self.hold: threading.Event | None = threading.Event() if held else None
        self.holding = threading.Event()
        self.finished = 0  # batches that came back

    def generate(self, requests: list[Request]) -> list[Result]:
        self.batches.append([r.seed for r in requests])
        if self.log is not None:
            self.log.append((self.name, self.batches[-1]))
        if self.hold is not None:
            self.holding.set()
            self.hold.wait(10)
        self.finished += 1
        if self.fail is not None:
            raise self.fail
        return [Result(f"{self.name}:{r.seed}", r.seed, "line", 1) for r in requests]


def _service(*bundles: StandIn, **kw) -> GenerationService:
    return GenerationService({b.name: b for b in bundles}, processes=0, **kw)


@contextlib.asynccontextmanager
async def _running(*bundles: StandIn, **kw):
    """A service over `bundles`, stopped at the end of the block whatever the test did."""
    service = _service(*bundles, **kw)
    try:
        yield service
    finally:
        await service.stop()


async def _holding(bundle: StandIn) -> None:
    """Wait until the worker is inside `bundle.generate` (off the event loop: the worker is a thread)."""
    await asyncio.get_running_loop().run_in_executor(None, bundle.holding.wait, 10)


async def test_each_asker_gets_its_own_results_in_order_across_bundles():
    a, b = StandIn("alpha"), StandIn("beta")
    async with _running(a, b) as service:
        results = await service.generate([("alpha", Request(1)), ("beta", Request(2)), ("alpha", Request(3))])
        assert [r.text for r in results] == ["alpha:1", "beta:2", "alpha:3"]
        assert a.batches == [[1, 3]] and b.batches == [[2]]  # one batch per bundle
        assert (service.stats.batches, service.stats.requests, service.stats.largest) == (2, 3, 2)


async def test_requests_that_queue_behind_a_batch_go_together_up_to_batch_size_per_bundle():
    a, b = StandIn("alpha", held=True), StandIn("beta")
    async with _running(a, b, batch_size=2) as service:
        first = asyncio.ensure_future(service.generate([("alpha", Request(0))]))
        await _holding(a)
        askers = [asyncio.ensure_future(service.generate([(n, Request(s))])) for n, s in
                  [("alpha", 1), ("alpha", 2), ("alpha", 3), ("beta", 4), ("beta", 5), ("beta", 6)]]
        await asyncio.sleep(0)  # all queued while the first batch is being generated
        a.hold.set()
        results = await asyncio.gather(first, *askers)
        assert [r.text for [r] in results] == ["alpha:0", "alpha:1", "alpha:2", "alpha:3", "beta:4", "beta:5", "beta:6"]
        # the oldest two of each bundle, then the rest
        assert a.batches == [[0], [1, 2], [3]] and b.batches == [[4, 5], [6]]
        assert (service.stats.batches, service.stats.requests, service.stats.largest) == (5, 7, 2)


async def test_a_batch_is_one_bundle_the_one_waiting_longest_and_the_others_gather():
    # rows of one bundle share their matrix products; rows of two bundles share nothing, so a batch takes one
    # bundle (all of its queued requests) and leaves the others queued, gathering, for the next free worker
    ran: list[tuple[str, list[int]]] = []
    a, b = StandIn("alpha", log=ran, held=True), StandIn("beta", log=ran)
    async with _running(a, b) as service:
        first = asyncio.ensure_future(service.generate([("alpha", Request(0))]))
        await _holding(a)
        order = [("beta", 1), ("alpha", 2), ("beta", 3), ("alpha", 4), ("alpha", 5), ("beta", 6)]
        askers = [asyncio.ensure_future(service.generate([(n, Request(s))])) for n, s in order]
        await asyncio.sleep(0)  # all queued while the first batch is being generated: beta's has waited longest
        a.hold.set()
        results = await asyncio.gather(first, *askers)
        assert [r.text for [r] in results] == ["alpha:0"] + [f"{n}:{s}" for n, s in order]
        assert ran == [("alpha", [0]), ("beta", [1, 3, 6]), ("alpha", [2, 4, 5])]
        assert service.stats.batches == 3  # taking every bundle at once made it 2, one of them mixed


async def test_a_bundle_that_fails_fails_its_own_requests_only():
    good, bad = StandIn("alpha"), StandIn("beta", fail=ValueError("no such character"))
    async with _running(good, bad) as service:
        ok, broken = await asyncio.gather(service.generate([("alpha", Request(1))]),
                                          service.generate([("beta", Request(2))]), return_exceptions=True)
        assert [r.text for r in ok] == ["alpha:1"]
        assert isinstance(broken, RuntimeError) and str(broken) == "ValueError: no such character"
        [[r]] = [await service.generate([("alpha", Request(3))])]  # the service goes on
        assert r.text == "alpha:3"


async def test_an_asker_that_gave_up_is_skipped_and_the_others_are_answered():
    a = StandIn("alpha", held=True)
    async with _running(a) as service:
        first = asyncio.ensure_future(service.generate([("alpha", Request(0))]))
        await _holding(a)
        gone = asyncio.ensure_future(service.generate([("alpha", Request(1))]))
        kept = asyncio.ensure_future(service.generate([("alpha", Request(2))]))
        await asyncio.sleep(0)
        gone.cancel()  # the user's update handler was cancelled (the bot is stopping, say)
        a.hold.set()
        assert [r.text for r in await kept] == ["alpha:2"] and (await first)[0].text == "alpha:0"
        assert a.batches == [[0], [2]]  # nothing generated for the one that gave up


async def test_an_unknown_bundle_is_refused_before_anything_is_queued():
    a = StandIn("alpha")
    async with _running(a) as service:
        with pytest.raises(KeyError, match="no bundle named 'gamma'"):
            await service.generate([("alpha", Request(1)), ("gamma", Request(2))])
        assert a.batches == []


async def test_stop_finishes_what_is_queued_and_a_stopped_service_starts_again():
    a = StandIn("alpha", held=True)
    service = _service(a)
    await service.start()
    await service.start()  # idempotent: still one worker
    assert len(service._workers) == 1
    asked = [asyncio.ensure_future(service.generate([("alpha", Request(s))])) for s in (1, 2)]
    await _holding(a)
    stopping = asyncio.ensure_future(service.stop())
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="stopping"):  # nothing new while stopping
        await service.generate([("alpha", Request(3))])
    a.hold.set()
    await stopping
    assert [r.text for [r] in [await x for x in asked]] == ["alpha:1", "alpha:2"]
    [r] = await service.generate([("alpha", Request(4))])  # asked again later: it starts again
    assert r.text == "alpha:4"
    await service.stop()


async def test_batch_wait_lets_requests_that_arrive_meanwhile_join_the_batch():
    a = StandIn("alpha")
    async with _running(a, batch_wait=0.05) as service:
        first = asyncio.ensure_future(service.generate([("alpha", Request(1))]))
        await asyncio.sleep(0)
        second = asyncio.ensure_future(service.generate([("alpha", Request(2))]))
        await asyncio.gather(first, second)
        assert a.batches == [[1, 2]]


async def test_the_worker_goes_on_after_everything_queued_was_given_up():
    a = StandIn("alpha", held=True)
    async with _running(a) as service:
        first = asyncio.ensure_future(service.generate([("alpha", Request(0))]))
        await _holding(a)
        gone = asyncio.ensure_future(service.generate([("alpha", Request(1))]))
        await asyncio.sleep(0)
        gone.cancel()  # the only request queued: the next batch is empty
        a.hold.set()
        await first
        [r] = await asyncio.wait_for(service.generate([("alpha", Request(2))]), 5)  # still answered
        assert r.text == "alpha:2"


async def test_an_asker_that_gives_up_mid_batch_does_not_hold_up_its_batch_mates():
    a = StandIn("alpha", held=True)
    async with _running(a) as service:
        gone = asyncio.ensure_future(service.generate([("alpha", Request(1))]))
        kept = asyncio.ensure_future(service.generate([("alpha", Request(2))]))
        await _holding(a)  # both in the batch being generated
        gone.cancel()
        a.hold.set()
        [r] = await asyncio.wait_for(kept, 5)
        assert r.text == "alpha:2" and a.batches == [[1, 2]]


async def test_a_stop_that_outlasts_its_timeout_gives_up_on_the_workers(caplog):
    a = StandIn("alpha", held=True)  # a batch that does not finish
    service = _service(a)
    asked = asyncio.ensure_future(service.generate([("alpha", Request(1))]))
    await _holding(a)
    queued = asyncio.ensure_future(service.generate([("alpha", Request(2))]))  # behind the batch that hangs
    await asyncio.sleep(0)
    try:
        await asyncio.wait_for(service.stop(timeout=0.05), 5)
        assert a.finished == 0  # the bot's stop went on without waiting for the batch
        assert caplog.messages == ["generation did not finish within 0.05 s; killing its workers"]
        for waiting in (asked, queued):  # and nobody waits forever for a proverb that will never come
            with pytest.raises(RuntimeError, match="stopped before this proverb was made"):
                await asyncio.wait_for(waiting, 1)
    finally:
        a.hold.set()
        asked.cancel()
        queued.cancel()
