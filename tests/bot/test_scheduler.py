"""Daily delivery's decisions, fast: the scheduler on a real SQLite store, with a stand-in generator, a metadata-only
catalog, a fake bot and a clock the test sets (no model: ~0.2 s a test). With real generation: test_daily.py;
end to end: test_subscriptions.py."""

from __future__ import annotations

import logging
import sqlite3
from datetime import datetime, time, timedelta, timezone
from pathlib import Path

import httpx
import pytest
from sqlalchemy.exc import DBAPIError, OperationalError
from telegram.error import BadRequest, ChatMigrated, Forbidden, NetworkError, TimedOut

from bot.catalog import Catalog
from bot.health import Status
from bot.subscriptions.scheduler import Scheduler, connection_lost, database_error
from bot.subscriptions.store import Store
from charlm import Bundle, Charset, Result

UTC = timezone.utc
NINE = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)


def _catalog(*names: str) -> Catalog:
    charset = Charset.from_text("абв")
    bundles = {n: Bundle(Path(f"/nonexistent/{n}"), {"name": n}, charset, None, None) for n in names}
    return Catalog(bundles, {n: n for n in names}, {n: f"{n}-digest" for n in names})


class Generator:
    """Stands in for GenerationService: "<culture> <seed>" for each request; `fail` makes the next call raise."""

    def __init__(self):
        self.calls: list[list[str]] = []
        self.fail: Exception | None = None

    async def generate(self, requests):
        self.calls.append([name for name, _ in requests])
        if self.fail is not None:
            fail, self.fail = self.fail, None
            raise fail
        return [Result(f"{name} {r.seed}.", r.seed, "sentence", 1) for name, r in requests]


class Bot:
    """send_message notes (chat, text, buttons), or raises the fault set for that chat (once)."""

    def __init__(self):
        self.sent: list[tuple[int, str, object]] = []
        self.faults: dict[int, Exception] = {}

    async def send_message(self, chat_id: int, text: str, reply_markup=None, **kwargs) -> None:
        fault = self.faults.pop(chat_id, None)
        if fault is not None:
            raise fault
        self.sent.append((chat_id, text, reply_markup))


class Clock:
    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def world(tmp_path):
    """(scheduler with an open store, its clock, a fake bot, the generator); cultures alpha and beta; 08:00 UTC."""
    clock, generator = Clock(datetime(2024, 5, 1, 8, 0, tzinfo=UTC)), Generator()
    scheduler = Scheduler(f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}", _catalog("alpha", "beta"), generator,
                          Status(), clock, chunk=2, concurrency=2)
    scheduler.store = await Store.open(scheduler.url)
    yield scheduler, clock, Bot(), generator
    await scheduler.store.close()


async def test_a_due_proverb_goes_out_once_with_its_replay_line_and_buttons(world):
    scheduler, clock, bot, _ = world
    await scheduler.store.subscribe(5, "alpha", time(9, 0), clock())
    assert await scheduler.deliver(bot) == 0 and bot.sent == []  # 08:00: not yet
    clock.now = NINE
    assert await scheduler.deliver(bot) == 1  # one row handled: the run is worth repeating at once
    [(chat, text, buttons)] = bot.sent
    seed = int(text.split()[1].rstrip("."))
    assert chat == 5 and text == f"alpha {seed}.\n\n/alpha seed={seed}" and buttons.inline_keyboard
    assert await scheduler.deliver(bot) == 0 and len(bot.sent) == 1  # never twice the same day
    [sub] = await scheduler.store.of_chat(5)
    assert sub.last_date.isoformat() == "2024-05-01" and sub.due_date.isoformat() == "2024-05-02"
    assert (scheduler.stats.delivered, scheduler.stats.runs) == (1, 3)


async def test_every_due_row_goes_out_chunk_by_chunk_each_culture_generated_together(world):
    scheduler, clock, bot, generator = world  # chunk=2
    for chat in (1, 2, 3, 4, 5):
        await scheduler.store.subscribe(chat, "beta" if chat % 2 else "alpha", time(9, 0), clock())
    clock.now = NINE
    assert await scheduler.deliver(bot) == 5
    assert sorted(chat for chat, _, _ in bot.sent) == [1, 2, 3, 4, 5]
    assert [len(c) for c in generator.calls] == [2, 2, 1]
    assert all(text.startswith("beta " if chat % 2 else "alpha ") for chat, text, _ in bot.sent)


async def test_a_culture_that_is_gone_is_replaced_by_one_that_is_served(world):
    scheduler, clock, bot, _ = world
    await scheduler.store.subscribe(5, "gamma", time(9, 0), clock())  # a bundle since removed
    clock.now = NINE
    await scheduler.deliver(bot)
    [(_, text, _)] = bot.sent
    assert text.split()[0] in ("alpha", "beta")


async def test_a_chat_that_blocked_the_bot_or_is_gone_loses_its_subscriptions(world):
    scheduler, clock, bot, _ = world
    for chat in (1, 2, 3):
        await scheduler.store.subscribe(chat, "alpha", time(9, 0), clock())
    clock.now = NINE
    bot.faults = {1: Forbidden("Forbidden: bot was blocked by the user"), 2: BadRequest("Chat not found"),
                  3: BadRequest("Bad Request: message is too long")}  # our mistake: the chat is still there
    assert await scheduler.deliver(bot) == 3
    assert [len(await scheduler.store.of_chat(c)) for c in (1, 2, 3)] == [0, 0, 1]
    assert (scheduler.stats.removed, scheduler.stats.failed, bot.sent) == (2, 1, [])


async def test_a_failed_delivery_is_retried_a_minute_later_and_then_goes_out(world):
    scheduler, clock, bot, _ = world
    await scheduler.store.subscribe(5, "alpha", time(9, 0), clock())
    clock.now = NINE
    bot.faults[5] = NetworkError("Bad Gateway")
    await scheduler.deliver(bot)
    [sub] = await scheduler.store.of_chat(5)
    assert sub.next_due == NINE + timedelta(minutes=1) and sub.failures == 1 and scheduler.stats.failed == 1
    await scheduler.deliver(bot)
    assert bot.sent == []  # not before the minute is up
    clock.now = NINE + timedelta(minutes=1)
    await scheduler.deliver(bot)
    assert [chat for chat, _, _ in bot.sent] == [5]


async def test_a_proverb_that_may_have_arrived_counts_as_sent_and_is_not_sent_again(world):
    scheduler, clock, bot, _ = world
    await scheduler.store.subscribe(5, "alpha", time(9, 0), clock())
    clock.now = NINE
    timed_out = TimedOut()
    timed_out.__cause__ = httpx.ReadTimeout("read")  # the request went out; no answer came
    bot.faults[5] = timed_out
    await scheduler.deliver(bot)
    await scheduler.deliver(bot)
    assert bot.sent == [] and scheduler.stats.delivered == 1
    [sub] = await scheduler.store.of_chat(5)
    assert sub.last_date.isoformat() == "2024-05-01"


async def test_a_delivery_more_than_six_hours_late_is_skipped_for_the_next_day(world):
    scheduler, clock, bot, _ = world
    for chat in (5, 6):
        await scheduler.store.subscribe(chat, "alpha", time(9, 0), clock())
    clock.now = NINE + timedelta(hours=6)  # the bot was down: exactly 6 hours late still goes out...
    await scheduler.store.unsubscribe(6)
    await scheduler.deliver(bot)
    assert [chat for chat, _, _ in bot.sent] == [5]
    await scheduler.store.subscribe(6, "alpha", time(9, 0), datetime(2024, 5, 1, 8, 0, tzinfo=UTC))
    clock.now = NINE + timedelta(hours=6, seconds=1)  # ...a second more does not: skipped, not sent
    assert await scheduler.deliver(bot) == 1
    assert [chat for chat, _, _ in bot.sent] == [5] and scheduler.stats.skipped == 1
    assert scheduler.stats.delivered == 1
    [sub] = await scheduler.store.of_chat(6)
    assert sub.due_date.isoformat() == "2024-05-02"


async def test_when_generation_fails_the_rows_stay_due_and_go_out_later(world):
    scheduler, clock, bot, generator = world
    await scheduler.store.subscribe(5, "alpha", time(9, 0), clock())
    clock.now = NINE
    generator.fail = RuntimeError("the generation worker died twice on this batch")
    assert await scheduler.deliver(bot) == 1 and bot.sent == [] and scheduler.stats.failed == 1
    clock.now = NINE + timedelta(minutes=1)
    generator.fail = RuntimeError("again")
    assert await scheduler.deliver(bot) == 1 and scheduler.stats.failed == 2
    clock.now = NINE + timedelta(minutes=3)  # then 2 minutes later
    await scheduler.deliver(bot)
    assert [chat for chat, _, _ in bot.sent] == [5]


def test_a_lost_database_connection_is_told_from_other_database_errors():
    class PgError(Exception):
        def __init__(self, sqlstate):
            self.sqlstate = sqlstate

    assert connection_lost(ConnectionRefusedError()) and connection_lost(PgError("08006"))
    assert connection_lost(PgError("57P03"))  # "the database system is starting up"
    wrapped = DBAPIError("SELECT 1", {}, PgError("57P01"))
    assert connection_lost(wrapped)  # SQLAlchemy's wrapper: the driver's sqlstate is on .orig
    locked = OperationalError("UPDATE ...", {}, sqlite3.OperationalError("database is locked"))
    assert not connection_lost(locked) and database_error(locked)
    assert not connection_lost(PgError("23505")) and not database_error(PgError("23505"))  # not the database's
    assert not connection_lost(ValueError("x")) and not database_error(ValueError("x"))
    assert database_error(ConnectionRefusedError()) and database_error(PgError("08006"))


async def test_a_group_that_became_a_supergroup_gets_its_proverb_at_the_new_id(world):
    scheduler, clock, bot, _ = world
    await scheduler.store.subscribe(-100, "alpha", time(9, 0), clock())
    clock.now = NINE
    bot.faults[-100] = ChatMigrated(-100200)
    assert await scheduler.deliver(bot) == 1 and bot.sent == []  # handled: the next run goes at once
    assert await scheduler.store.of_chat(-100) == []
    [moved] = await scheduler.store.of_chat(-100200)
    assert moved.due_date.isoformat() == "2024-05-01"  # still due today
    assert await scheduler.deliver(bot) == 1 and [chat for chat, _, _ in bot.sent] == [-100200]


async def test_a_proverb_sent_but_not_recorded_is_recorded_later_never_sent_again(world, monkeypatch):
    scheduler, clock, bot, _ = world
    await scheduler.store.subscribe(5, "beta", time(9, 0), clock())
    clock.now = NINE
    real = scheduler.store.delivered
    failures = [OperationalError("UPDATE subscriptions ...", {}, sqlite3.OperationalError("database is locked"))]

    async def flaky(subs, now):  # the write after Telegram's answer fails once
        if failures:
            raise failures.pop()
        await real(subs, now)

    monkeypatch.setattr(scheduler.store, "delivered", flaky)
    # sent, not recorded: the row stays due, and the run's next look at it records it without sending it again
    assert await scheduler.deliver(bot) == 1 and failures == []
    assert await scheduler.deliver(bot) == 0
    assert len(bot.sent) == 1 and scheduler.stats.delivered == 1
    [sub] = await scheduler.store.of_chat(5)
    assert sub.last_date.isoformat() == "2024-05-01" and sub.due_date.isoformat() == "2024-05-02"


async def test_a_second_process_stands_by_until_the_delivering_one_s_lease_runs_out(world, caplog):
    first, clock, bot, generator = world  # poll_interval 60 s: a lease lasts 3 minutes
    second = Scheduler(first.url, first.catalog, generator, Status(), clock, chunk=2, concurrency=2)
    second.store = await Store.open(first.url)
    try:
        await first.store.subscribe(5, "alpha", time(9, 0), clock())
        await first.store.subscribe(6, "alpha", time(9, 2), clock())
        clock.now = NINE
        await first.deliver(bot)  # the first process delivers, and holds the lease until 09:03
        clock.now = NINE + timedelta(seconds=179)  # chat 6 is due, but the lease is the first one's
        with caplog.at_level(logging.WARNING, logger="bot.subscriptions.scheduler"):
            assert await second.deliver(bot) == 0 and await second.deliver(bot) == 0
            assert [chat for chat, _, _ in bot.sent] == [5]
            clock.now = NINE + timedelta(seconds=180)  # the first one stopped renewing (killed): taken over
            assert await second.deliver(bot) == 1
        assert [chat for chat, _, _ in bot.sent] == [5, 6]
        assert caplog.messages == [  # said once, not at every tick
            f"daily deliveries: {first.holder} delivers them (lease until 2024-05-01 09:03:00 UTC); this process "
            f"stands by and takes over if that one stops", f"daily deliveries: taken over from {first.holder}"]
    finally:
        await second.store.close()
