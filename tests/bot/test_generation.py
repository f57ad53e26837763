"""The generation service's batching: which requests a worker runs together."""

from __future__ import annotations

import asyncio

from bot import generation
from bot.catalog import Catalog
from bot.generation import GenerationService
from charlm import Request, Settings


async def test_a_batch_is_one_bundle_the_one_waiting_longest_and_the_others_gather(tiny_models, monkeypatch):
    # rows of one bundle share their matrix products; rows of two bundles share nothing, so a batch takes one
    # bundle (all of its queued requests) and leaves the others queued, gathering, for the next free worker
    ran: list[list[tuple[str, int]]] = []  # per worker call: (bundle, requests) of each job
    real = generation._run_jobs

    def spy(jobs):
        ran.append([(bundle.name, len(requests)) for bundle, requests in jobs])
        return real(jobs)

    monkeypatch.setattr(generation, "_run_jobs", spy)
    catalog = Catalog.load(tiny_models, ())
    service = GenerationService(catalog.bundles, processes=0)
    settings = Settings(min_length=5, max_length=30)
    asks = [("beta" if i % 3 == 0 else "alpha", Request(i, "", settings)) for i in range(12)]  # beta first, then mixed
    try:
        results = await asyncio.gather(*(service.generate([a]) for a in asks))
    finally:
        await service.stop()
    assert ran == [[("beta", 4)], [("alpha", 8)]]  # one bundle a batch, all its requests; the head's bundle first
    # and each request got its own text, the one it gets alone
    for (name, req), got in zip(asks, results):
        assert got[0].text == catalog.bundles[name].generate([req])[0].text
