"""Daily subscriptions end to end: the real bot (with a settable clock) against
the fake Bot API, over an SQLite file that outlives each bot; plus the calendar rules and the migrations."""

from __future__ import annotations

import logging
import re
import time
from datetime import date, datetime, time as dtime, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text as sql

from bot.errors import StartupError
from bot.subscriptions.migrate import current_revision, head
from bot.subscriptions.schema import metadata
from bot.subscriptions.store import Store
from bot.subscriptions.timing import find_zone, parse_time, plan

from .conftest import BOTH_DATABASES, PYTHON, ROOT, RunningBot, bot_env, bot_starter
from .fakeapi import FakeBotAPI, user

UTC = timezone.utc
PROVERB = re.compile(r"\n\n/(alpha|beta) seed=\d+$")
BOT_USER = {"id": 4242, "is_bot": True, "first_name": "Fake Proverbs", "username": "fake_proverbs_bot"}


class Clock:
    """The time the bot sees: set by the test."""

    def __init__(self, *when: int):
        self.now = datetime(*when, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def set(self, *when: int) -> None:
        self.now = datetime(*when, tzinfo=UTC)


@pytest.fixture
def clock() -> Clock:
    return Clock(2024, 5, 1, 8, 0)


@pytest.fixture
def run_bot(api, tiny_models, tmp_path, clock, database):
    """run_bot(**settings) -> the real bot, polling the fake API.

    Every bot of a test shares DATA_DIR (tmp_path/data) and `database`, so a second one is a restart over the
    same database.
    """
    # no outgoing throttle: a dozen replies in one chat would take a dozen seconds at Telegram's 1 a second
    yield from bot_starter(api, tiny_models, tmp_path, clock, data_dir=tmp_path / "data", generation_processes=0,
                           subscription_poll_interval=0.05, outgoing_rate_limit=False, database_url=database)


def scheduler(bot: RunningBot):
    return bot.parts.subscriptions


def ticks(bot: RunningBot, n: int = 3) -> None:
    """Wait until the delivery job has run `n` more times (so it has seen the clock as it is now)."""
    s = scheduler(bot)
    start = s.ticks
    deadline = time.monotonic() + 10
    while s.ticks < start + n:
        assert time.monotonic() < deadline, "the delivery job stopped ticking"
        time.sleep(0.01)


def ask(api: FakeBotAPI, chat_id: int, text: str, user_id: int | None = None, chat_type: str = "private",
        lang: str = "ru") -> str:
    """Send `text` to the bot and return its next message in that chat."""
    before = len(api.sent(chat_id))
    api.send_text(chat_id, text, user_id=user_id, chat_type=chat_type, lang=lang)
    return api.wait_sent(chat_id, before + 1)[before]


def proverbs(api: FakeBotAPI, chat_id: int) -> list[str]:
    """The daily proverbs the chat got (a proverb, then its replay command)."""
    return [t for t in api.sent(chat_id) if PROVERB.search(t)]


# -- end to end ---------------------------------------------------------------------------------------


@BOTH_DATABASES
def test_subscribe_restart_and_deliver_once_at_the_minute(api, run_bot, clock):
    bot = run_bot()
    reply = ask(api, 101, "/subscribe")
    assert "случайного сборника" in reply and "09:00" in reply and "UTC" in reply and "сегодня" in reply
    bot.stop()

    clock.set(2024, 5, 1, 8, 59)  # a restart at 08:59, over the same database
    bot = run_bot()
    ticks(bot)
    clock.set(2024, 5, 1, 8, 59, 59)
    ticks(bot)
    assert proverbs(api, 101) == [], "delivered before its minute"

    clock.set(2024, 5, 1, 9, 0)
    api.wait_for(lambda: proverbs(api, 101), what="the 09:00 proverb")
    ticks(bot, 5)
    clock.set(2024, 5, 1, 9, 0, 30)
    ticks(bot, 5)
    assert len(proverbs(api, 101)) == 1, "delivered twice"

    bot.stop()  # a restart after the delivery does not repeat it
    clock.set(2024, 5, 1, 9, 1)
    bot = run_bot()
    ticks(bot)
    assert len(proverbs(api, 101)) == 1

    clock.set(2024, 5, 2, 9, 0)  # the next day's
    api.wait_for(lambda: len(proverbs(api, 101)) == 2, what="the next day's proverb")
    ticks(bot)
    assert len(proverbs(api, 101)) == 2


@BOTH_DATABASES
def test_a_bot_down_at_the_minute_delivers_when_back_but_not_hours_late(api, run_bot, clock):
    bot = run_bot()
    ask(api, 102, "/subscribe alpha 09:00")
    ask(api, 103, "/subscribe beta 09:00")
    bot.stop()
    clock.set(2024, 5, 1, 9, 3)  # down from 08:00 to 09:03: delivered on startup, once each
    bot = run_bot()
    api.wait_for(lambda: proverbs(api, 102) and proverbs(api, 103), what="the missed deliveries")
    assert "/alpha seed=" in proverbs(api, 102)[0] and "/beta seed=" in proverbs(api, 103)[0]
    bot.stop()

    clock.set(2024, 5, 2, 16, 0)  # down over the next 09:00 for 7 hours: that day's is skipped, not sent at 16:00
    bot = run_bot()
    ticks(bot)
    assert len(proverbs(api, 102)) == 1 and scheduler(bot).stats.skipped == 2
    assert "завтра в 09:00" in ask(api, 102, "/subscriptions")
    clock.set(2024, 5, 3, 9, 0)
    api.wait_for(lambda: len(proverbs(api, 102)) == 2, what="the day after's proverb")


@BOTH_DATABASES
def test_culture_time_and_time_zone(api, run_bot, clock):
    bot = run_bot()
    assert "Часовой пояс: UTC" in ask(api, 104, "/timezone")
    assert "Не знаю часового пояса «Mars/Olympus»" in ask(api, 104, "/timezone Mars/Olympus")
    reply = ask(api, 104, "/timezone moscow")
    assert "Europe/Moscow" in reply and "11:00" in reply  # 08:00 UTC
    reply = ask(api, 104, "/subscribe be 7:30")  # 07:30 in Moscow has passed today
    assert "«Beta» (/beta)" in reply and "07:30" in reply and "Europe/Moscow" in reply and "завтра" in reply
    assert "Не понял «25:00»" in ask(api, 104, "/subscribe alpha 25:00")
    assert "Не понял «nosuch»" in ask(api, 104, "/subscribe nosuch")
    assert "I don't understand" in ask(api, 104, "/subscribe nosuch", lang="en")
    listing = ask(api, 104, "/subscriptions")
    assert "Europe/Moscow" in listing and "/beta" in listing and "07:30" in listing

    clock.set(2024, 5, 2, 4, 29, 59)  # 07:29:59 in Moscow
    ticks(bot)
    assert proverbs(api, 104) == []
    clock.set(2024, 5, 2, 4, 30)
    assert "/beta seed=" in api.wait_for(lambda: proverbs(api, 104), what="the 07:30 Moscow proverb")[0]
    # a new time zone moves the time, and the day already served is not served again
    reply = ask(api, 104, "/timezone Asia/Yerevan")  # 08:30 there: 07:30 has passed, and today is done anyway
    assert "Asia/Yerevan" in reply and "завтра в 07:30" in reply


@BOTH_DATABASES
def test_unsubscribe_stops_it(api, run_bot, clock):
    bot = run_bot()
    ask(api, 106, "/subscribe")
    ask(api, 106, "/subscribe alpha 09:00")
    # «притча из сборника «…»»: the title names the collection (issue 25: «притча «Суфийские притчи»» read badly)
    assert "Отменил: притча из сборника «Alpha» (/alpha)." in ask(api, 106, "/unsubscribe al")
    listing = ask(api, 106, "/subscriptions")
    assert "случайного сборника" in listing and "Alpha" not in listing
    assert "Отменил все подписки (1)" in ask(api, 106, "/unsubscribe")
    assert "Подписок нет" in ask(api, 106, "/subscriptions")
    assert "Подписок и так нет" in ask(api, 106, "/unsubscribe")
    clock.set(2024, 5, 1, 9, 0)
    ticks(bot)
    clock.set(2024, 5, 2, 9, 0)
    ticks(bot)
    assert proverbs(api, 106) == []


@BOTH_DATABASES
@pytest.mark.parametrize("status, description", [
    (403, "Forbidden: bot was blocked by the user"),
    (400, "Bad Request: chat not found"),
])
def test_blocked_or_gone_chat_loses_its_subscription(api, run_bot, clock, status, description):
    bot = run_bot()
    ask(api, 107, "/subscribe")
    api.fail("sendMessage", status=status, description=description)
    clock.set(2024, 5, 1, 9, 0)
    api.wait_for(lambda: scheduler(bot).stats.removed == 1, what="the subscription to be removed")
    assert [c.status for c in api.calls_of("sendMessage")][-1] == status, [(c.status, c.params.get("chat_id"), str(c.params.get("text"))[:40]) for c in api.calls_of("sendMessage")]
    assert "Подписок нет" in ask(api, 107, "/subscriptions")
    clock.set(2024, 5, 2, 9, 0)
    ticks(bot)
    assert proverbs(api, 107) == []


@BOTH_DATABASES
def test_bot_removed_from_a_chat_drops_its_subscriptions(api, run_bot):
    run_bot()
    ask(api, 108, "/subscribe")
    api.push(my_chat_member={"chat": {"id": 108, "type": "private", "first_name": "u"}, "from": user(108),
                             "date": int(time.time()), "old_chat_member": {"status": "member", "user": BOT_USER},
                             "new_chat_member": {"status": "kicked", "user": BOT_USER, "until_date": 0}})
    api.wait_for(lambda: "Подписок нет" in ask(api, 108, "/subscriptions"), what="the subscription to go")


@BOTH_DATABASES
def test_a_failed_delivery_is_retried_later_not_dropped(api, run_bot, clock):
    bot = run_bot(max_retries=0)
    ask(api, 109, "/subscribe")
    api.fail("sendMessage", status=500)
    clock.set(2024, 5, 1, 9, 0)
    api.wait_for(lambda: scheduler(bot).stats.failed == 1, what="the failed attempt")
    clock.set(2024, 5, 1, 9, 0, 50)  # the first retry waits a minute
    ticks(bot)
    assert proverbs(api, 109) == []
    clock.set(2024, 5, 1, 9, 1)
    api.wait_for(lambda: proverbs(api, 109), what="the retry")
    ticks(bot)
    assert len(proverbs(api, 109)) == 1


@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
def test_a_database_restart_mid_delivery_is_survived_and_nothing_is_sent_twice(api, run_bot, clock, postgres, database,
                                                                               caplog):
    chats = list(range(140, 146))  # fewer than the bot's HTTP connections, so all are in flight at once
    bot = run_bot(read_timeout=120.0)  # the held messages below wait for the server's stop, seconds under load
    for chat in chats:
        ask(api, chat, "/subscribe alpha 09:00")
    ask(api, 152, "/subscribe alpha 09:01")
    caplog.set_level(logging.WARNING, logger="bot")
    api.hold("sendMessage")  # Telegram is slow: the 09:00 messages are in flight when the database goes
    try:
        clock.set(2024, 5, 1, 9, 0)
        api.wait_for(lambda: len(api.calls_of("sendMessage")) == len(chats) + 7, what="the 09:00 messages in flight")
        postgres.stop()
        api.release("sendMessage")  # they go out; recording them fails
        api.wait_for(lambda: all(proverbs(api, c) for c in chats), what="the held messages")
        api.wait_for(lambda: "unreachable" in (bot.parts.status.line or ""), what="health to say the database is unreachable")
        clock.set(2024, 5, 1, 9, 1)  # due while the server is down
        ticks(bot)
    finally:
        api.release("sendMessage")
        if not postgres.running():  # the server is shared by the session's tests
            postgres.start()
    api.wait_for(lambda: "subscriptions" not in bot.parts.status.degraded, 60, "the database to be reachable again")
    api.wait_for(lambda: proverbs(api, 152), what="the 09:01 proverb, due while the server was down")
    ticks(bot, 10)
    assert {c: len(proverbs(api, c)) for c in [*chats, 152]} == {c: 1 for c in [*chats, 152]}, "sent twice or never"
    said = [r.getMessage() for r in caplog.records]
    assert any("went out, but recording it failed" in m for m in said), said
    assert any("available again" in m for m in said), said
    assert not [r for r in caplog.records if r.exc_info], "a lost connection is a line, not a traceback"
    clock.set(2024, 5, 2, 9, 1)  # recorded: the next day's come once each
    api.wait_for(lambda: all(len(proverbs(api, c)) == 2 for c in [*chats, 152]), what="the next day's proverbs")
    ticks(bot, 5)
    assert all(len(proverbs(api, c)) == 2 for c in [*chats, 152])


@BOTH_DATABASES
def test_two_processes_on_one_database_deliver_once_and_a_standby_takes_over(api, run_bot, clock, caplog):
    caplog.set_level(logging.WARNING, logger="bot")
    first = run_bot()
    ask(api, 160, "/subscribe alpha 09:00")
    second = run_bot()  # deliveries on too (a misconfigured replica, or a standby): it must not send the same rows
    replica = run_bot(subscription_delivery=False)  # a webhook replica: answers commands, never delivers
    ticks(second)
    clock.set(2024, 5, 1, 9, 0)
    api.wait_for(lambda: proverbs(api, 160), what="the 09:00 proverb")
    ticks(first, 5)
    ticks(second, 5)
    assert len(proverbs(api, 160)) == 1
    # the test's clock jumps an hour, past the lease (3 ticks), so either may hold it at 09:00; one sent
    (holder,) = [b for b in (first, second) if scheduler(b).stats.delivered]
    standby = second if holder is first else first
    assert scheduler(standby).stats.delivered == 0
    standing = [r.getMessage() for r in caplog.records if "stands by" in r.getMessage()]
    assert standing and len(standing) == len(set(standing)), standing  # a line when the holder changes, not per tick
    assert scheduler(holder).holder in standing[-1]

    holder.stop()  # a clean stop gives the lease up: the standby delivers from its next tick on
    clock.set(2024, 5, 2, 9, 0)
    api.wait_for(lambda: len(proverbs(api, 160)) == 2, what="the next day's proverb, from the standby")
    ticks(standby, 5)
    assert len(proverbs(api, 160)) == 2 and scheduler(standby).stats.delivered == 1
    assert any("taken over from" in r.getMessage() for r in caplog.records)
    assert scheduler(replica).ticks == 0 and scheduler(replica).stats.delivered == 0


@BOTH_DATABASES
def test_in_a_group_only_administrators_change_it(api, run_bot):
    run_bot()
    group, member, admin = -200, 20, 21
    api.members[(group, admin)] = "administrator"
    refusal = "только администраторы"
    assert refusal in ask(api, group, "/subscribe@fake_proverbs_bot", user_id=member, chat_type="group")
    assert "Подписок нет" in ask(api, group, "/subscriptions@fake_proverbs_bot", user_id=member, chat_type="group")
    assert "Готово" in ask(api, group, "/subscribe@fake_proverbs_bot alpha 10:00", user_id=admin, chat_type="group")
    assert refusal in ask(api, group, "/unsubscribe@fake_proverbs_bot", user_id=member, chat_type="group")
    assert refusal in ask(api, group, "/timezone@fake_proverbs_bot Asia/Yerevan", user_id=member, chat_type="group")
    # anyone may look
    assert "10:00" in ask(api, group, "/subscriptions@fake_proverbs_bot", user_id=member, chat_type="group")
    asked = {(c.params["chat_id"], c.params["user_id"]) for c in api.calls_of("getChatMember")}
    assert asked == {(group, member), (group, admin)}


def test_an_unusable_data_dir_degrades_to_proverbs_without_subscriptions(tiny_models, tmp_path):
    import signal
    import subprocess

    (tmp_path / "taken").write_text("a file, not a folder")
    with FakeBotAPI() as api:
        env = bot_env(api, tiny_models, tmp_path, DATA_DIR=str(tmp_path / "taken"), GENERATION_PROCESSES="0")
        proc = subprocess.Popen([PYTHON, "-m", "bot"], env=env, cwd=tmp_path, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            api.wait_for(lambda: api.calls_of("getUpdates") or proc.poll() is not None, 180, "the bot to poll")
            assert proc.poll() is None, proc.communicate()[1]
            assert "seed=" in ask(api, 130, "/alpha")  # proverbs flow
            assert "недоступны" in ask(api, 130, "/subscribe")
            health = subprocess.run([PYTHON, "-m", "bot", "health"], env=env, cwd=tmp_path, capture_output=True,
                                    text=True, timeout=60)
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert health.returncode == 0 and "degraded" in health.stdout and "subscriptions unavailable" in health.stdout
    assert "cannot create the data folder" in err and "Traceback" not in err


def test_a_corrupt_database_degrades_and_proverbs_flow(api, run_bot, tmp_path, caplog):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "bot.sqlite3").write_bytes(b"this is not an SQLite database" * 100)
    caplog.set_level(logging.ERROR, logger="bot")
    bot = run_bot()
    assert "недоступны" in ask(api, 131, "/subscribe")
    assert "недоступны" in ask(api, 131, "/subscriptions")
    assert "seed=" in ask(api, 131, "/alpha")
    assert "subscriptions unavailable" in bot.parts.status.line and "bot.sqlite3" in bot.parts.status.line
    said = [r.getMessage() for r in caplog.records if "subscriptions unavailable" in r.getMessage()]
    assert len(said) == 1, said  # one line, not one per command


def test_a_database_that_fills_up_while_running_degrades(api, run_bot, monkeypatch):
    import sqlite3

    from sqlalchemy.exc import OperationalError

    bot = run_bot()
    store = scheduler(bot).store
    # the startup tick's transaction, done before the disk fills (one that ends after it would recover: it worked)
    api.wait_for(lambda: scheduler(bot)._ticking is not None and scheduler(bot)._ticking.done(), 30, "the first tick")

    async def full(*args, **kwargs):  # what SQLite says when the disk fills up under a write
        raise OperationalError("INSERT INTO subscriptions ...", {}, sqlite3.OperationalError("database or disk is full"))

    monkeypatch.setattr(store, "subscribe", full)
    monkeypatch.setattr(store, "take_lease", full)  # every write fails: a tick that wrote would recover (issue 24)
    assert "недоступны" in ask(api, 133, "/subscribe")  # not the generic error
    assert "seed=" in ask(api, 133, "/alpha")
    assert "database or disk is full" in bot.parts.status.line


def test_a_database_deleted_underneath_is_noticed(api, run_bot, tmp_path):
    bot = run_bot()
    ask(api, 132, "/subscribe")
    (tmp_path / "data" / "bot.sqlite3").unlink()
    api.wait_for(lambda: "subscriptions" in bot.parts.status.degraded, 30, "the deleted database to be noticed")
    assert "deleted" in bot.parts.status.degraded["subscriptions"]
    # `health` says so at once, not at the next heartbeat (15 s later)
    from bot import health

    ok, line = health.check(tmp_path / "bot.heartbeat", 60)
    assert ok and "degraded" in line and "deleted" in line, line


# -- the calendar -----------------------------------------------------------------------------------


def test_times_and_zones_people_type():
    assert [parse_time(s) for s in ("9", "9:05", "09:05", "21.30", "23:59")] == \
        [dtime(9), dtime(9, 5), dtime(9, 5), dtime(21, 30), dtime(23, 59)]
    assert [parse_time(s) for s in ("24:00", "9:60", "nine", "", "9:5")] == [None] * 5
    assert find_zone("europe/moscow") == find_zone("Moscow") == "Europe/Moscow"
    assert find_zone("utc") == "UTC" and find_zone("New York") == "America/New_York"
    assert find_zone("Mars/Olympus") is None and find_zone("") is None


def test_plan_never_serves_a_local_date_twice():
    now = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
    assert plan(dtime(9), "UTC", None, now) == (date(2024, 5, 1), datetime(2024, 5, 1, 9, tzinfo=UTC))
    assert plan(dtime(9), "UTC", date(2024, 5, 1), now)[0] == date(2024, 5, 2)  # today's already went out
    assert plan(dtime(7), "UTC", None, now)[0] == date(2024, 5, 2)  # 07:00 has passed
    # served at 09:00 Tokyo on May 1 (00:00 UTC); moved to Los Angeles, where it is still April 30
    served = date(2024, 5, 1)
    day, due = plan(dtime(9), "America/Los_Angeles", served, datetime(2024, 5, 1, 0, 5, tzinfo=UTC))
    assert day == date(2024, 5, 2) and due == datetime(2024, 5, 2, 16, tzinfo=UTC)
    # a daylight-saving night: 02:30 does not exist in Berlin on 2024-03-31; it is still served that day
    day, due = plan(dtime(2, 30), "Europe/Berlin", None, datetime(2024, 3, 30, 23, tzinfo=UTC))
    assert day == date(2024, 3, 31) and due == datetime(2024, 3, 31, 1, 30, tzinfo=UTC)


# -- the schema -------------------------------------------------------------------------------------


@BOTH_DATABASES
async def test_migrations_build_the_schema_and_refuse_a_newer_database(tmp_path, database):
    url = database or f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}"
    store = await Store.open(url)
    async with store.engine.connect() as conn:
        assert await conn.run_sync(current_revision) == head()
        diff = await conn.run_sync(lambda c: compare_metadata(MigrationContext.configure(c), metadata))
        assert diff == [], f"schema.py and the migrations differ: {diff}"
    await store.subscribe(1, "random", dtime(9), datetime(2024, 5, 1, tzinfo=UTC))
    await store.close()
    store = await Store.open(url)  # reopening migrates nothing and keeps the data
    assert await store.count() == 1
    async with store.engine.begin() as conn:
        await conn.execute(sql("UPDATE alembic_version SET version_num = 'f00d'"))
    await store.close()
    with pytest.raises(StartupError, match="revision 'f00d'.*newer version"):
        await Store.open(url)


def test_a_database_at_the_newest_revision_opens_without_alembic(tmp_path):
    # Alembic's import was ~0.1 s of the bot's start: a restart (the database is up to date) skips it
    import subprocess

    from bot.subscriptions.migrate import HEAD

    assert HEAD == head(), "a new migration: set migrate.HEAD to its revision"
    url = f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}"
    code = ("import asyncio, sys\nfrom bot.subscriptions.store import Store\n"
            "async def main(url):\n    store = await Store.open(url)\n    await store.close()\n"
            f"asyncio.run(main({url!r}))\n"
            "print('alembic' in sys.modules)")
    opened = [subprocess.run([PYTHON, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                             timeout=120).stdout.strip() for _ in range(2)]
    assert opened == ["True", "False"]  # a new database is made by Alembic; the same one opened again is not
