"""Daily delivery on python-telegram-bot's JobQueue: due subscriptions -> batched generation -> sendMessage.

How a delivery stays exactly-once per subscription and local date:
- each subscription row holds the local date of its next delivery (due_date), the UTC instant to try it
  (next_due) and the local date of its last delivery (last_date); `timing.plan` only ever schedules a date
  after last_date, so no date is delivered twice, whatever restarts or time changes happen;
- a tick (a JobQueue job) delivers every row with next_due <= now: a bot restarted at 08:59 finds the 09:00
  row still due and delivers it at 09:00; a bot that was down at 09:00 delivers it when it comes back
  (up to timing.LATE_LIMIT late), and one that comes back at 09:01 after delivering finds last_date = today;
- a row is marked delivered right after Telegram accepted its message (deliveries that finish while a
  write is under way go into the next one together). Only a crash in that instant (between Telegram's
  answer and the commit) could repeat a message; a stop (SIGTERM) lets the messages in flight finish and
  be recorded first, and a failed write is retried by the next run without resending.

Throughput: rows are taken in chunks of BATCH_SIZE, each chunk's proverbs are generated in one batched pass
per culture while the previous chunk is being sent, and at most SUBSCRIPTION_CONCURRENCY messages are in
flight, so the application's rate limiter (bot.limits.TelegramLimiter: 30 a second overall, 1 a second per
chat) paces them without a queue long enough to hold up replies to people's commands.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import secrets
import socket
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Callable

from apscheduler.jobstores.base import JobLookupError
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from telegram.error import BadRequest, ChatMigrated, Forbidden, TelegramError
from telegram.ext import Application, ContextTypes, Job

from ..buttons import keyboard
from ..catalog import Catalog
from ..commands import ProverbArgs, replay_command
from ..errors import StartupError
from ..generation import GenerationService
from ..health import Status
from ..limits import delivery_unknown
from ..replies import proverb_reply
from ..texts import DEFAULT_LANG
from .db import describe, reason, sqlite_file
from .store import Store, Subscription
from .timing import LATE_LIMIT

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]  # -> an aware datetime: now
# a 400 that means the chat no longer exists (a 403 always means the bot was blocked or removed)
CHAT_NOT_FOUND = ("chat not found", "peer_id_invalid")
STOP_WAIT = 20.0  # seconds a stop waits for the messages in flight
LEASE = "delivery"  # the leases row of the process that delivers (one per database)


def connection_lost(e: BaseException) -> bool:
    """The database server went away (a restart, a failover, the network): retried until it is back.

    SQLAlchemy marks an error that broke the connection (connection_invalidated; the pool then drops it).
    A new connection fails with the driver's own error, unwrapped: a plain OSError while the server is down,
    or PostgreSQL's SQLSTATE 57P03 "the database system is starting up / shutting down" around a restart
    (class 08 is connection exceptions, 57P the server shutting down or not yet up)."""
    if isinstance(e, (OSError, asyncio.TimeoutError)) or (isinstance(e, DBAPIError) and e.connection_invalidated):
        return True
    state = str(getattr(e, "sqlstate", "") or getattr(getattr(e, "orig", None), "sqlstate", "") or "")
    return state.startswith(("08", "57P"))


def database_error(e: BaseException) -> bool:
    return isinstance(e, SQLAlchemyError) or connection_lost(e)


@dataclass
class Stats:
    """What delivery has done since startup (logs, tests, the bench)."""

    runs: int = 0
    delivered: int = 0
    removed: int = 0  # subscriptions dropped: the bot was blocked, or the chat is gone
    failed: int = 0  # attempts that will be retried
    skipped: int = 0  # deliveries given up: too late (the bot was down)
    last_run_s: float = 0.0


class Scheduler:
    """Owns the store (the database, open between start and stop) and the delivery job (`context.subscriptions`)."""

    def __init__(self, url: str, catalog: Catalog, generator: GenerationService, status: Status, clock: Clock,
                 poll_interval: float = 60.0, concurrency: int = 16, chunk: int = 64, delivery: bool = True):
        self.url = url
        self.delivery = delivery  # False: this process answers commands; another one delivers
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        # renewed at every tick (at most poll_interval apart) and every chunk of a run: a holder that stops
        # renewing (killed) is replaced by a standby within 3 intervals
        self.lease_ttl = timedelta(seconds=3 * poll_interval)
        self._standby: str | None = None  # the other holder, while this process stands by
        self.catalog = catalog
        self.generator = generator
        self.status = status  # where "subscriptions unavailable" is said (health, heartbeat)
        self.clock = clock
        self.poll_interval = poll_interval
        self.concurrency = concurrency
        self.chunk = chunk
        self.store: Store | None = None
        self.stats = Stats()
        self.ticks = 0  # ticks that looked at the clock: tests wait for one that saw the time they set
        self._app: Application | None = None
        self._job: Job | None = None
        self._run: asyncio.Task | None = None
        self._ticking: asyncio.Future | None = None  # the tick's database work (see _tick)
        self._missed = False  # a wake-up fired while a tick was under way
        self._claimed: set[int] = set()  # rows being generated or sent: never taken twice
        # row -> due_date sent but not yet recorded (the database write failed): recorded later, never resent
        self._unrecorded: dict[int, date] = {}
        self._to_record: list[Subscription] = []
        self._record_lock = asyncio.Lock()
        self._stopping = False
        self._lost: str | None = None  # the degraded reason while the database server is unreachable
        self._progress = 0  # rows whose outcome was recorded (delivered, removed, retried, skipped, moved)

    # -- lifecycle (bot.app's on_startup / on_stop) --------------------------------------------------

    @property
    def unavailable(self) -> str | None:
        """Why subscriptions are down (the database cannot be used), or None."""
        return self.status.degraded.get("subscriptions")

    def degrade(self, why: str) -> None:
        """The database failed: subscriptions are unavailable (said to users and by `health`); proverbs flow on."""
        if self.unavailable is None:
            log.error("subscriptions unavailable: %s", why)
        self.status.degrade("subscriptions", why)

    def database_failed(self, e: BaseException, why: str) -> None:
        """A database call failed: degrade, for good (`why`), or until a tick reaches the server again."""
        if connection_lost(e):
            self._lost = f"the subscriptions database is unreachable ({reason(e)}); retrying"
            self.degrade(self._lost)
        else:
            self.degrade(why)

    def _reachable(self) -> None:
        """A tick used the database: subscriptions are back if they were down."""
        self.database_worked()

    def database_worked(self) -> None:
        """A transaction on the open database succeeded (every one takes SQLite's write lock: BEGIN IMMEDIATE):
        whatever had degraded subscriptions while running (a read-only, full, lost or replaced database) is
        over. Before, only a lost connection recovered: health said "degraded" until a restart (issue 24)."""
        if self.store is not None and self.unavailable is not None:
            self.status.recover("subscriptions")
            log.warning("subscriptions available again: the database works")
        self._lost = None

    async def start(self, app: Application) -> None:
        """Open the database (migrating it) and tick at once: anything due while the bot was down goes out now."""
        self._app = app
        if self.unavailable:
            return
        try:
            self.store = await Store.open(self.url)
        except StartupError as e:
            self.degrade(str(e))
            return
        self._stopping = False
        n = await self.store.count()
        log.info("subscriptions: %d in %s", n, describe(self.url))
        if not self.delivery:
            log.info("daily deliveries: off in this process (SUBSCRIPTION_DELIVERY=false); the scheduler process sends them")
            return
        self.wake()

    async def stop(self) -> None:
        """Stop ticking, let the messages in flight finish and be recorded, close the database."""
        self._stopping = True
        self._cancel_job()
        if self._ticking is not None:
            with contextlib.suppress(Exception):  # its error, if any, was handled (or logged) by the tick
                await self._ticking
        if self._unrecorded:
            log.warning("%d daily proverbs went out but could not be recorded (the database is unreachable); "
                        "they will be sent again after the restart", len(self._unrecorded))
        if self._run is not None and not self._run.done():
            try:
                await asyncio.wait_for(asyncio.shield(self._run), STOP_WAIT)
            except asyncio.TimeoutError:
                log.warning("stopping with daily deliveries still in flight; they will be retried after restart")
                self._run.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._run
        if self.store is not None:
            if self.delivery and self._standby is None:
                try:
                    await self.store.release_lease(LEASE, self.holder)
                except Exception as e:  # noqa: BLE001 - the database is gone: the lease expires by itself
                    if not database_error(e):
                        raise
            await self.store.close()
            self.store = None

    # -- the job ------------------------------------------------------------------------------------

    def wake(self, delay: float = 0.0) -> None:
        """(Re)schedule the next tick in `delay` seconds (handlers call it after a change)."""
        if self._stopping or not self.delivery or self._app is None or self._app.job_queue is None:
            return
        self._cancel_job()
        # no misfire grace limit: a tick armed before the JobQueue started (post_init), or held up by a busy
        # loop, must run late rather than be dropped
        self._job = self._app.job_queue.run_once(self._tick, max(0.0, delay), name="subscriptions",
                                                 job_kwargs={"misfire_grace_time": None})

    def _cancel_job(self) -> None:
        job, self._job = self._job, None
        if job is not None:
            with contextlib.suppress(JobLookupError):  # it has just fired
                job.schedule_removal()

    async def _tick(self, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Job: start a delivery run if anything is due, else sleep until the earliest due time (at most poll_interval)."""
        self._job = None
        if self._stopping or self.store is None:
            return
        if self._ticking is not None and not self._ticking.done():
            # a tick is under way (a handler's wake-up fired meanwhile): two at once could both find the same
            # rows due and start two delivery runs; the one under way ticks again at once when it ends
            self._missed = True
            return
        self.ticks += 1
        self._missed = False
        db = sqlite_file(self.url)
        if db is not None and not db.exists() and not self.unavailable:
            # SQLite keeps writing to the deleted file, and all of it is gone at the next start
            self.degrade(f"the database file {db} was deleted while the bot ran; changes from now on are lost "
                         f"at the next restart (restore the file, or restart the bot to start afresh)")
        # Shielded, and awaited by stop(): python-telegram-bot cancels a job that is running when it stops,
        # and a tick cancelled inside a transaction would leave SQLite's write lock held by a connection
        # nobody closes (a bot restarted in the same process then found the database locked).
        self._ticking = asyncio.ensure_future(self._tick_store(context))
        try:
            await asyncio.shield(self._ticking)
        except Exception as e:  # noqa: BLE001 - a tick that raises would end the chain of ticks for good
            if database_error(e):
                self.database_failed(e, f"the subscriptions database failed: {reason(e)}")
            else:
                log.exception("the daily delivery tick failed")
            self.wake(min(self.poll_interval, 60.0))
        else:
            self._reachable()

    async def _tick_store(self, context: ContextTypes.DEFAULT_TYPE) -> None:
        if self._run is not None and not self._run.done():
            return  # the run wakes us when it ends
        now = self.clock()
        if not await self._lease(now):
            self.wake(self.poll_interval)
            return
        if await self.store.due(now, 1):
            # its own task, not the job's: JobQueue.stop would wait for a whole run (minutes with thousands)
            self._run = asyncio.create_task(self.deliver(context.bot), name="daily-delivery")
            self._run.add_done_callback(self._run_done)
            return
        earliest = await self.store.next_due()
        if self._job is None:  # else a handler woke us meanwhile, for a change this tick may not have seen
            delay = self.poll_interval if earliest is None else (earliest - now).total_seconds()
            self.wake(0.0 if self._missed else min(self.poll_interval, max(0.0, delay)))

    async def _lease(self, now: datetime) -> bool:
        """Hold (renew) the delivery lease; False while another process holds it (this one stands by)."""
        held, holder, until = await self.store.take_lease(LEASE, self.holder, now, self.lease_ttl)
        if not held and self._standby != holder:
            log.warning("daily deliveries: %s delivers them (lease until %s UTC); this process stands by and takes "
                        "over if that one stops", holder, until.strftime("%Y-%m-%d %H:%M:%S"))
        elif held and self._standby is not None:
            log.warning("daily deliveries: taken over from %s", self._standby)
        self._standby = None if held else holder
        return held

    def _run_done(self, task: asyncio.Task) -> None:
        """Tick again at once when the run got through rows; after one that failed or did nothing, not so soon."""
        if task.cancelled():
            return
        if task.exception() is not None:
            log.error("daily delivery failed", exc_info=task.exception())
        progress = task.exception() is None and task.result()
        self.wake(0.0 if progress or self._missed else min(self.poll_interval, 60.0))

    # -- delivery -----------------------------------------------------------------------------------

    async def deliver(self, bot) -> int:
        """Deliver everything due, chunk by chunk, generating the next chunk while this one is sent; -> rows handled."""
        t0 = time.perf_counter()
        before = (self.stats.delivered, self.stats.removed, self.stats.failed, self.stats.skipped)
        progress = self._progress
        chunks: asyncio.Queue = asyncio.Queue(maxsize=1)
        producer = asyncio.create_task(self._produce(chunks), name="daily-generate")
        slots = asyncio.Semaphore(self.concurrency)
        sending: set[asyncio.Task] = set()
        try:
            while not self._stopping:
                chunk = await chunks.get()
                if chunk is None:
                    break
                for item in chunk:
                    await slots.acquire()
                    if self._stopping:  # the rest stay due: delivered after the restart
                        slots.release()
                        break
                    task = asyncio.create_task(self._send(bot, *item))
                    sending.add(task)
                    task.add_done_callback(lambda t: (sending.discard(t), slots.release()))
        finally:
            producer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await producer
            if sending:
                await asyncio.gather(*sending, return_exceptions=True)
            self._claimed.clear()
        s = self.stats
        s.runs += 1
        s.last_run_s = time.perf_counter() - t0
        d, r, f, k = (s.delivered - before[0], s.removed - before[1], s.failed - before[2], s.skipped - before[3])
        log.info("daily delivery: %d sent in %.1f s, %d removed (blocked or gone), %d to retry, %d skipped (too late)",
                 d, s.last_run_s, r, f, k)
        return self._progress - progress

    async def _produce(self, chunks: asyncio.Queue) -> None:
        """Take due rows chunk by chunk, generate their proverbs (one batch per culture), hand them to the sender.

        Ends with None in the queue; when the sender stops first, it cancels this task instead.
        """
        try:
            while not self._stopping:
                now = self.clock()
                if not await self._lease(now):  # renewed chunk by chunk: a long run keeps it
                    break
                subs = await self.store.due(now, self.chunk, exclude=self._claimed)
                if not subs:
                    break
                self._claimed.update(s.id for s in subs)
                fresh = []
                for sub in subs:
                    if self._unrecorded.get(sub.id) == sub.due_date:
                        await self._record(sub)
                        self._claimed.discard(sub.id)
                    elif now - sub.scheduled > LATE_LIMIT:
                        day = await self.store.skip(sub, now)
                        self._claimed.discard(sub.id)
                        self.stats.skipped += 1
                        self._progress += 1
                        log.info("chat %s: skipped the %s delivery of %s (%s late); next on %s", sub.chat_id,
                                 sub.due_date, sub.culture, now - sub.scheduled, day)
                    else:
                        fresh.append(sub)
                items = await self._generate(fresh, now) if fresh else []
                if items:
                    await chunks.put(items)
        except Exception as e:  # noqa: BLE001 - logged; the rows stay due for the next run
            if database_error(e):
                log.warning("taking due subscriptions failed: %s; they stay due", reason(e))
            else:
                log.exception("taking due subscriptions failed")
        await chunks.put(None)

    async def _generate(self, subs: list[Subscription], now: datetime) -> list[tuple]:
        """-> [(subscription, bundle name, request, result)], generated together (the service batches them by culture)."""
        catalog = self.catalog
        # a subscription to a culture that is gone gets a random one, as "what_gone" tells the chat
        names = [sub.culture if sub.culture in catalog.bundles else random.choice(catalog.names) for sub in subs]
        requests = [catalog.request(name) for name in names]
        try:
            results = await self.generator.generate(list(zip(names, requests)))
        except Exception:  # noqa: BLE001 - the rows stay due and are retried, backing off
            log.exception("generating %d daily proverbs failed", len(subs))
            for sub in subs:
                await self.store.failed(sub, now)
                self._claimed.discard(sub.id)
                self.stats.failed += 1
                self._progress += 1
            return []
        return list(zip(subs, names, requests, results))

    async def _send(self, bot, sub: Subscription, name: str, request, result) -> None:
        """Send one daily proverb; record it, or drop the subscription (blocked / gone), or back off."""
        try:
            body = proverb_reply(result, replay_command(name, ProverbArgs(), request.seed))
            # the chat's language is not known here: the buttons speak the bot's default, Russian
            markup = keyboard(name, self.catalog.version(name), request.seed, None, request.prefix, DEFAULT_LANG)
            try:
                await bot.send_message(sub.chat_id, body, reply_markup=markup)
            except ChatMigrated as e:  # a group became a supergroup: the next tick delivers to the new id
                log.info("chat %s moved to %s", sub.chat_id, e.new_chat_id)
                await self.store.move_chat(sub.chat_id, e.new_chat_id)
                self._progress += 1
            except Forbidden as e:
                await self._remove(sub, e)
            except BadRequest as e:
                await (self._remove if any(g in str(e).lower() for g in CHAT_NOT_FOUND) else self._failed)(sub, e)
            except TelegramError as e:  # network errors and 429s the limiter could not ride out
                if delivery_unknown(e):  # it may have arrived: counted as sent, never sent twice
                    log.warning("chat %s: the daily proverb may not have arrived (%s); not sent again", sub.chat_id,
                                type(e).__name__)
                    self.stats.delivered += 1
                    await self._record(sub)
                else:
                    await self._failed(sub, e)
            else:
                self.stats.delivered += 1
                await self._record(sub)
        except Exception as e:  # noqa: BLE001 - one row's trouble must not end the run
            if not database_error(e):
                log.exception("daily delivery to chat %s failed", sub.chat_id)
            elif self._unrecorded.get(sub.id) == sub.due_date:
                log.warning("chat %s: the daily proverb went out, but recording it failed (%s); the next run "
                            "records it without sending it again", sub.chat_id, reason(e))
            else:
                log.warning("chat %s: daily delivery: the database failed (%s); it stays due", sub.chat_id, reason(e))
        finally:
            self._claimed.discard(sub.id)

    async def _record(self, sub: Subscription) -> None:
        """Record a sent delivery; what the database fails to take now, the next run records (never resends).

        Group commit: while one transaction is being written, deliveries that finish queue up and go
        into the next one together, so under load one write serves many messages, and alone a message
        is recorded at once.
        """
        self._unrecorded[sub.id] = sub.due_date
        self._to_record.append(sub)
        async with self._record_lock:
            batch, self._to_record = self._to_record, []
            if batch:
                await self.store.delivered(batch, self.clock())
                for s in batch:
                    self._unrecorded.pop(s.id, None)
                self._progress += len(batch)

    async def _remove(self, sub: Subscription, error: TelegramError) -> None:
        n = await self.store.forget_chat(sub.chat_id)
        self.stats.removed += n
        self._progress += 1
        log.info("chat %s: %s; removed its %d subscription(s)", sub.chat_id, error, n)

    async def _failed(self, sub: Subscription, error: TelegramError) -> None:
        retry = await self.store.failed(sub, self.clock())
        self.stats.failed += 1
        self._progress += 1
        log.warning("chat %s: daily delivery failed (%s); retrying at %s", sub.chat_id, error, retry.isoformat(timespec="seconds"))
