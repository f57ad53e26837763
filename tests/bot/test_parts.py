"""The bot's pure parts: argument parsing, reply length, limits, log scrubbing, texts."""

from __future__ import annotations

import asyncio
import io
import logging
import time

import pytest

from bot.commands import ArgError, ProverbArgs, command_entity_length, entity_command, parse_args, replay_command
from bot.limits import TelegramLimiter, UserRateLimiter, Window
from bot.logs import REDACTED, Redactor, RedactingFormatter
from bot.replies import TELEGRAM_LIMIT, fit, proverb_reply
from bot.texts import TEXTS, lang_of
from charlm import Result


def test_a_command_is_what_its_entity_marks_and_the_rest_is_everything_after():
    text = "/Sufi@ProverbsBot  Однажды\nмудрец"
    c = entity_command(text, command_entity_length(text))
    assert (c.name, c.mention, c.rest) == ("sufi", "ProverbsBot", "Однажды\nмудрец")
    # punctuation and invisible characters end the command (as Telegram marks it) and are not the prefix
    for text in ("/sufi", "/sufi,", "/sufi!", "/sufi…", "/sufi\u200b", "/sufi\u200f", "/sufi\u2060 "):
        c = entity_command(text, command_entity_length(text))
        assert (c.name, c.mention, c.rest) == ("sufi", None, ""), repr(text)
    assert entity_command("/sufi,Однажды мудрец", 5).rest == "Однажды мудрец"
    # the entity's length counts UTF-16 units, as Telegram's offsets do
    assert entity_command("/sufi 😀 мудрец", 5).rest == "😀 мудрец"
    assert command_entity_length("sufi") == 0 and command_entity_length("/") == 0


def test_parse_args_options_anywhere():
    assert parse_args("Однажды мудрец t=0.6 seed=42") == ProverbArgs("Однажды мудрец", 0.6, 42)
    assert parse_args("seed=7 Однажды TEMP=0,5") == ProverbArgs("Однажды", 0.5, 7)
    assert parse_args("") == ProverbArgs()
    assert parse_args("Одна\u200bжды\u200f seed=\u200b7") == ProverbArgs("Однажды", None, 7)  # invisible characters dropped
    for bad, key in [("t=abc", "bad_temperature"), ("t=3", "bad_temperature"), ("seed=-1", "bad_seed"),
                     ("seed=1e3", "bad_seed"), ("seed=9999999999", "bad_seed"), ("seed=²", "bad_seed")]:
        with pytest.raises(ArgError) as e:
            parse_args(bad, max_temperature=2.0)
        assert e.value.key == key
    assert replay_command("sufi", ProverbArgs("Однажды", 0.5), 42) == "/sufi Однажды t=0.5 seed=42"
    assert replay_command("sufi", ProverbArgs(), 7) == "/sufi seed=7"


def test_replies_fit_telegram():
    long = Result(text="слово " * 2000, seed=1, ended="length", attempts=1)
    reply = proverb_reply(long, "/sufi seed=1")
    assert len(reply) <= TELEGRAM_LIMIT and reply.endswith("…\n\n/sufi seed=1")
    assert fit("короткий текст") == "короткий текст"
    assert proverb_reply(Result("", 3, "line", 6), "/sufi seed=3") == "…\n\n/sufi seed=3"


def test_user_rate_limiter():
    lim = UserRateLimiter(limit=2, period=10)
    assert lim.check(1, now=0) == 0 and lim.check(1, now=1) == 0
    assert lim.check(1, now=2) == pytest.approx(8)
    assert lim.check(2, now=2) == 0  # others are not affected
    assert lim.should_warn(1, now=2) and not lim.should_warn(1, now=3)
    assert lim.check(1, now=10.5) == 0
    assert UserRateLimiter(0, 10).check(1) == 0  # 0 turns it off


def test_the_user_limiter_forgets_idle_users_but_not_active_ones():
    lim = UserRateLimiter(limit=1, period=10)
    lim.should_warn(1, now=0)
    for uid in range(10_001):  # the 10,001st user makes it look for idle ones: none yet
        lim.check(uid, now=0)
    assert len(lim._times) == 10_001
    lim.check(20_000, now=5)  # asks at 5, and is warned
    assert lim.should_warn(20_000, now=5)
    lim.check(30_000, now=11)  # everyone who asked at 0 is idle now: forgotten, memory stays flat
    assert set(lim._times) == {20_000, 30_000} and set(lim._warned) == {20_000}
    # the active user is still limited, and not warned twice in one window
    assert lim.check(20_000, now=12) == pytest.approx(3)
    assert not lim.should_warn(20_000, now=12)


class FakeTime:
    """A monotonic clock and a sleep that only moves it (and notes each wait): limits without waiting."""

    def __init__(self):
        self.now = 0.0
        self.waits: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += max(seconds, 1e-6)  # time passes, as it does for real (a sleep of 1e-15 s would not move 63.0)


async def _sent() -> bool:
    return True


async def test_a_group_gets_20_messages_a_minute_and_a_private_chat_one_a_second():
    t = FakeTime()
    lim = TelegramLimiter(overall_rate=10_000, clock=t.clock, sleep=t.sleep)

    async def send(chat_id: int) -> None:
        await lim.process_request(_sent, (), {}, "sendMessage", {"chat_id": chat_id}, None)

    for _ in range(20):
        await send(-100)
    assert sum(t.waits) == 0  # 20 in the first instant
    await send(-100)  # the 21st waits for the minute to pass (5 % margin)
    assert sum(t.waits) == pytest.approx(63.0, abs=1e-3)
    t.waits.clear()
    await send(7)
    await send(7)  # a private chat: one a second
    assert sum(t.waits) == pytest.approx(1.05, abs=1e-3)


async def test_the_outgoing_limiter_forgets_idle_chats_but_keeps_a_busy_ones_window():
    t = FakeTime()
    lim = TelegramLimiter(overall_rate=10_000, clock=t.clock, sleep=t.sleep)

    async def send(chat_id: int) -> None:
        await lim.process_request(_sent, (), {}, "sendMessage", {"chat_id": chat_id}, None)

    for chat in range(1, 4098):
        await send(chat)
    t.now += 10  # all idle now, but for chat 1, which sends again
    await send(1)
    t.waits.clear()
    await send(99_999)  # a new chat: the idle windows go
    assert set(lim._chats) == {1, 99_999}
    await send(1)  # chat 1 kept its window: its second message in a second waits
    assert sum(t.waits) == pytest.approx(1.05, abs=1e-3)


async def test_window_keeps_any_period_under_the_limit():
    w = Window(limit=2, period=0.2)
    spans: list[tuple[float, float]] = []  # (entered the slot, left it)

    async def send():
        async with w.slot():
            entered = time.monotonic()
            await asyncio.sleep(0.01)  # the request in flight counts too
            spans.append((entered, time.monotonic()))

    t0 = time.monotonic()
    await asyncio.gather(*(send() for _ in range(6)))
    spans.sort()
    # the third message starts a full period after the first one finished, and so on
    assert all(spans[i + 2][0] - spans[i][1] >= 0.2 for i in range(len(spans) - 2))
    assert time.monotonic() - t0 < 5.0


def test_redaction_covers_messages_args_and_tracebacks():
    token = "123:ABC-secret_xyz"
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(RedactingFormatter(Redactor([token])))
    log = logging.getLogger("test.redaction")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("POST https://api.telegram.org/bot%s/getMe", token)
        log.warning("encoded %s", "123%3AABC-secret_xyz")
        try:
            raise RuntimeError(f"failed https://api.telegram.org/bot{token}/sendMessage")
        except RuntimeError:
            log.exception("boom")
    finally:
        log.removeHandler(handler)
    out = stream.getvalue()
    assert "ABC-secret_xyz" not in out and out.count(REDACTED) == 3
    assert "Traceback" in out and "RuntimeError: failed https://api.telegram.org/bot[REDACTED]/sendMessage" in out


def test_texts_have_both_languages():
    assert all(set(v) == {"ru", "en"} for v in TEXTS.values())
    assert lang_of("en-US") == "en" and lang_of("uk") == "ru" and lang_of(None) == "ru"


def _blas_threads() -> list[int]:
    from threadpoolctl import threadpool_info

    return [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]


def test_generation_workers_run_blas_on_one_thread():
    # N workers x one BLAS thread per core each spun on the cores: 8x the CPU per reply (bench/bot_load.py).
    # A real worker (its initializer runs before this module is imported there): a limit set before numpy
    # was loaded did not hold (2 threads on 2 CPUs).
    from bot.workers import process_pool

    with process_pool(1) as pool:
        threads = pool.submit(_blas_threads).result(timeout=120)
    assert threads and set(threads) == {1}
