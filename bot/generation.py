"""The generation service: micro-batched generation off the event loop, in worker processes."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from concurrent.futures import Executor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from charlm import Bundle, Request, Result

from .errors import StartupError
from .workers import _ping, _run_jobs, _run_named, kill, one_blas_thread, process_pool

log = logging.getLogger(__name__)


@dataclass
class _Item:
    bundle: str
    request: Request
    future: asyncio.Future


@dataclass
class BatchStats:
    """What the service has done: for logs and benches."""

    batches: int = 0
    requests: int = 0
    largest: int = 0
    busy_s: float = 0.0  # time from handing a batch to a worker to getting its results
    worker_deaths: int = 0  # pools found broken (a worker died) and replaced


class GenerationService:
    """Generates proverbs in worker processes; requests that arrive together are generated together.

    `await service.generate([(name, request), ...])` queues the requests (of any bundles); a free worker
    takes everything queued for the bundle that has waited longest (`_take`: grouping happens here, and
    nowhere else) and runs one `Bundle.generate` on it (one `charlm.generate` call, all rows stepped
    together). Under load batches grow, so throughput grows instead of latency.
    Each request's text depends only on its bundle, seed, prefix and settings, never on its
    batch-mates (charlm's guarantee), so batching changes nothing a user can see.

    Workers are processes (`processes` >= 1), each with its own copy of the bundles, at a lower CPU
    priority than the bot: generation is Python-heavy, and in a thread of the bot's process it would
    hold the GIL the event loop needs (measured: replies/s fell and the loop stalled for 100s of ms).
    `processes=0` generates in one thread of this process instead (quicker to start; fine for the
    console and small tests).
    """

    def __init__(self, bundles: dict[str, Bundle], batch_size: int = 64, processes: int = 1, batch_wait: float = 0.0,
                 pool: Executor | None = None):
        """`pool`: workers started beforehand (bot.workers.start_workers), which the first start() takes."""
        self.bundles = bundles
        self.batch_size = batch_size
        self.processes = processes
        self.batch_wait = batch_wait
        self._pool = pool if processes else None
        self.stats = BatchStats()
        self._queue: list[_Item] = []
        self._in_flight: dict[int, _Item] = {}  # id -> item, in batches being generated
        self._wake: asyncio.Event | None = None
        self._workers: list[asyncio.Task] = []
        self._executor: Executor | None = None
        self._closing = False

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the workers and wait until they have loaded the bundles (idempotent)."""
        if self._workers:
            return
        self._closing = False
        self._wake = asyncio.Event()
        self._executor, self._pool = self._pool or self._make_executor(), None
        n = max(1, self.processes)
        if self.processes:  # start the processes now, not on the first request
            loop = asyncio.get_running_loop()
            try:
                self._check_loaded(await asyncio.gather(*(loop.run_in_executor(self._executor, _ping) for _ in range(n))))
            except BaseException:
                kill(self._executor, wait=True)
                self._executor = None
                raise
        self._workers = [asyncio.create_task(self._work(), name=f"generate-{i}") for i in range(n)]

    def wait_loaded(self) -> None:
        """Wait, in this thread, until the workers given as `pool` have loaded the bundles: the bot does, before
        it talks to Telegram. StartupError (one line), and the workers killed, if one could not load a bundle
        of the catalog (its model, which the bot process leaves unread: Catalog.load(models=False))."""
        if self._pool is None:
            return
        try:
            self._check_loaded([f.result() for f in [self._pool.submit(_ping) for _ in range(self.processes)]])
        except BrokenProcessPool as e:
            self.close_unstarted()
            raise StartupError(f"a generation worker died while loading the bundles ({e})") from None
        except BaseException:
            self.close_unstarted()
            raise

    def _check_loaded(self, loaded: list[tuple[list[str], dict[str, str]]]) -> None:
        """StartupError unless each worker's _ping names every bundle of the catalog."""
        for names, problems in loaded:
            missing = sorted(set(self.bundles) - set(names))
            if missing:
                folder = self.bundles[missing[0]].path
                # "broken bundle: <its file>: <what>", as Catalog.load says it
                raise StartupError(problems.get(os.path.abspath(folder)) or f"a generation worker found no bundle "
                                   f"{missing[0]!r} in {folder.parent} (was it moved while the bot started?)")

    def close_unstarted(self) -> None:
        """Kill the workers given as `pool` if start() never took them (the bot stopped before it served)."""
        pool, self._pool = self._pool, None
        kill(pool, wait=True)

    def _make_executor(self) -> Executor:
        if not self.processes:
            return ThreadPoolExecutor(1, thread_name_prefix="generate", initializer=one_blas_thread)
        return process_pool(self.processes, [b.path for b in self.bundles.values()])

    async def stop(self, timeout: float | None = None) -> None:
        """Finish everything queued, then stop the workers; after `timeout` s, kill what is left instead."""
        if not self._workers:
            return
        self._closing = True
        self._wake.set()
        done, pending = await asyncio.wait(self._workers, timeout=timeout)
        executor, self._executor, self._workers = self._executor, None, []
        if pending:
            log.error("generation did not finish within %g s; killing its workers", timeout)
            for task in pending:
                task.cancel()
            kill(executor)
            # their askers would otherwise wait forever: the batches given up on, and what was queued behind them
            for item in [*self._in_flight.values(), *self._queue]:
                if not item.future.done():
                    item.future.set_exception(RuntimeError("the generation service stopped before this proverb was made"))
            self._in_flight.clear()
            self._queue = []
        else:  # off the event loop: joining the processes takes a while
            await asyncio.get_running_loop().run_in_executor(None, executor.shutdown, True)

    # -- requests --------------------------------------------------------------------------------

    async def generate(self, requests: list[tuple[str, Request]]) -> list[Result]:
        """A result for each (bundle name, request), in order; generated with whatever else is queued."""
        for name, _ in requests:
            if name not in self.bundles:
                raise KeyError(f"no bundle named {name!r}")
        if not self._workers:
            await self.start()
        if self._closing:
            raise RuntimeError("the generation service is stopping")
        loop = asyncio.get_running_loop()
        items = [_Item(name, r, loop.create_future()) for name, r in requests]
        self._queue.extend(items)
        self._wake.set()
        return list(await asyncio.gather(*(i.future for i in items)))

    # -- the worker ------------------------------------------------------------------------------

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            if self.batch_wait > 0:
                await asyncio.sleep(self.batch_wait)  # let a few more arrive
            batch, self._queue = self._take(self._queue)
            if not batch:
                continue
            name, requests = batch[0].bundle, [item.request for item in batch]  # one bundle (`_take`)
            self._in_flight.update((id(item), item) for item in batch)
            t0 = time.perf_counter()
            if self.processes:
                jobs = [(name, requests)]
                # A worker that died (killed, out of memory) breaks the whole pool, while busy or idle: the
                # batch goes once more to a fresh pool, since a request's text does not depend on which
                # process makes it; a batch that breaks that one too fails.
                for attempt in (1, 2):
                    executor = self._executor
                    try:
                        outcomes = await loop.run_in_executor(executor, _run_named, jobs)
                        break
                    except BrokenProcessPool as e:
                        self.stats.worker_deaths += 1
                        log.error("a generation worker died (%s); starting new ones%s", e,
                                  ", and retrying its batch" if attempt == 1 else "")
                        # only if no other batch on the same broken pool replaced it already: replacing
                        # again killed the fresh pool under that batch's retry (bench/faults.py
                        # worker-death: 99 of 100 failed in 2 of 4 runs)
                        if self._executor is executor:
                            self._replace_executor()
                        outcomes = [RuntimeError("the generation worker died twice on this batch")]
            else:
                outcomes = await loop.run_in_executor(self._executor, _run_jobs, [(self.bundles[name], requests)])
            self.stats.busy_s += time.perf_counter() - t0
            self.stats.batches += 1
            self.stats.requests += len(batch)
            self.stats.largest = max(self.stats.largest, len(batch))
            (outcome,) = outcomes
            for item in batch:
                self._in_flight.pop(id(item), None)
            for k, item in enumerate(batch):
                if item.future.done():  # the asker gave up (cancelled)
                    continue
                if isinstance(outcome, BaseException):
                    item.future.set_exception(outcome)
                else:
                    item.future.set_result(outcome[k])

    def _replace_executor(self) -> None:
        """Kill what is left of a broken pool and start a fresh one (its processes start on first use)."""
        old, self._executor = self._executor, self._make_executor()
        kill(old)

    def _take(self, queue: list[_Item]) -> tuple[list[_Item], list[_Item]]:
        """The batch a free worker runs next: up to `batch_size` requests of ONE bundle, the bundle whose
        request has waited longest (oldest first); -> (taken, rest).

        Why one bundle: rows of the same bundle share their products (one gemm from charlm.runtime.GEMM_ROWS
        rows on), rows of different bundles share nothing. Taking every bundle at once made batches of ~1
        request per bundle under load (six bundles, two workers: each took what had come since the other's
        take); leaving the other bundles queued lets them gather while the workers are busy.
        """
        live = [item for item in queue if not item.future.done()]
        if not live:
            return [], []
        bundle = live[0].bundle  # the queue is in arrival order: its head has waited longest
        taken, rest = [], []
        for item in live:
            if item.bundle == bundle and len(taken) < self.batch_size:
                taken.append(item)
            else:
                rest.append(item)
        return taken, rest
