"""Limits: the per-user request limit (incoming) and Telegram's flood limits, 429s and retries (outgoing).

Every test runs on a fake clock (FakeTime): no test sleeps, and each wait the limiter makes is asserted.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time

import httpx
import pytest
from telegram.error import BadRequest, NetworkError, RetryAfter, TelegramError, TimedOut

from bot.limits import TelegramLimiter, UserRateLimiter, Window, delivery_unknown

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


# --- the per-user limit: what a user is told, and when they are let in again


def test_a_user_who_waits_the_time_told_is_let_in_then():
    lim = UserRateLimiter(limit=1, period=10)
    assert lim.check(1, now=0) == 0
    assert lim.check(1, now=4) == 6  # "try again in 6 s"...
    assert lim.check(1, now=10) == 0  # ...and 6 s later the request goes through, not a moment later


def test_the_wait_is_the_time_left_even_under_a_second():
    # the handlers show max(1, round(wait)) seconds, so a user reads "1 s" for anything under 1.5 s; the
    # figure itself is the time left (0.1 s at least, so that a refusal is never read as 0.0 = allowed)
    lim = UserRateLimiter(limit=1, period=10)
    lim.check(1, now=0)
    assert lim.check(1, now=9.5) == pytest.approx(0.5)


def test_a_limited_user_is_warned_once_a_window_and_again_in_the_next():
    lim = UserRateLimiter(limit=1, period=10)
    assert lim.should_warn(1, now=0)
    assert not lim.should_warn(1, now=9.9)
    assert lim.should_warn(1, now=10)  # a new window: one more polite reply


def test_the_user_limiter_runs_on_the_monotonic_clock_when_given_no_time():
    lim = UserRateLimiter(limit=1, period=60)  # as the handlers call it: no `now`
    assert lim.check(5) == 0
    assert 59 < lim.check(5) <= 60
    assert lim.should_warn(5) and not lim.should_warn(5)


# --- the outgoing limiter: 429s, retries, and what it throttles


class Replies:
    """A Bot API call that plays the given outcomes (an exception is raised, anything else returned), then True;
    it notes each call's arguments and the (fake) time it was made."""

    def __init__(self, *outcomes, clock=None):
        self.outcomes = list(outcomes)
        self.calls: list[tuple[tuple, dict]] = []
        self.times: list[float] = []
        self.clock = clock

    async def __call__(self, *args, **kwargs):
        self.calls.append((args, kwargs))
        if self.clock:
            self.times.append(self.clock())
        outcome = self.outcomes.pop(0) if self.outcomes else True
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


def _limiter(t: FakeTime, throttle: bool = False, **kw) -> TelegramLimiter:
    """Unthrottled unless asked: the waits are then the retries' alone, not also the chat's one a second."""
    return TelegramLimiter(overall_rate=10_000, throttle=throttle, clock=t.clock, sleep=t.sleep, **kw)


async def _request(lim: TelegramLimiter, call: Replies, endpoint: str = "sendMessage", chat_id=7,
                   rate_limit_args: int | None = None, args: tuple = (), kwargs: dict | None = None):
    data = {} if chat_id is None else {"chat_id": chat_id}
    return await lim.process_request(call, args, kwargs or {}, endpoint, data, rate_limit_args)


def _timed_out(cause: BaseException) -> TimedOut:
    exc = TimedOut()
    exc.__cause__ = cause  # as PTB's HTTPXRequest raises it: `raise TimedOut(...) from err`
    return exc


def _bad_gateway() -> NetworkError:
    return NetworkError("Bad Gateway")


async def test_a_429_waits_what_telegram_asked_and_the_request_goes_through(caplog):
    t = FakeTime()
    lim = _limiter(t, throttle=True)
    call = Replies(RetryAfter(3), {"message_id": 1})
    with caplog.at_level(logging.INFO, logger="bot.limits"):
        assert await _request(lim, call, args=("a",), kwargs={"text": "hi"}) == {"message_id": 1}
    assert t.waits == [pytest.approx(3.1)]  # retry_after and a little more
    assert call.calls == [(("a",), {"text": "hi"})] * 2 and lim.retries == 1
    assert caplog.messages == ["Telegram asked to wait 3.1 s (sendMessage); pausing all requests"]
    # an unthrottled call (no chat) gets its arguments too
    assert await _request(lim, Replies(), "getMe", chat_id=None, args=(1,), kwargs={"x": 2})
    call = Replies()
    await _request(lim, call, "getChat", chat_id=None, args=(1,), kwargs={"x": 2})
    assert call.calls == [((1,), {"x": 2})]


async def test_a_429_counted_in_a_timedelta_is_waited_out_too(monkeypatch):
    # PTB_TIMEDELTA makes RetryAfter.retry_after a timedelta (PTB's opt-in to its next major version)
    monkeypatch.setenv("PTB_TIMEDELTA", "true")
    t = FakeTime()
    assert await _request(_limiter(t), Replies(RetryAfter(3)))
    assert t.waits == [pytest.approx(3.1)]
    monkeypatch.delenv("PTB_TIMEDELTA")
    t = FakeTime()
    assert await _request(_limiter(t), Replies(RetryAfter(dt.timedelta(seconds=2.5))))
    assert t.waits == [pytest.approx(2.6)]


async def test_a_429_pauses_every_request_not_only_its_own():
    class YieldingTime(FakeTime):
        async def sleep(self, seconds: float) -> None:  # lets the other requests run while it waits
            self.waits.append(seconds)
            for _ in range(10):
                await asyncio.sleep(0)
            self.now += seconds

    t = YieldingTime()
    lim = TelegramLimiter(overall_rate=10_000, clock=t.clock, sleep=t.sleep)
    flooded, other = Replies(RetryAfter(5), clock=t.clock), Replies(clock=t.clock)
    await asyncio.gather(_request(lim, flooded, chat_id=1), _request(lim, other, "getChat", chat_id=2))
    assert other.times == [pytest.approx(5.1)] and flooded.times == [0, pytest.approx(5.1)]


async def test_429s_do_not_use_up_the_retries_for_network_errors():
    t = FakeTime()
    lim = _limiter(t, max_retries=1)
    assert await _request(lim, Replies(RetryAfter(1), RetryAfter(1), _bad_gateway()))
    assert t.waits == pytest.approx([1.1, 1.1, 0.5]) and lim.retries == 3
    t = FakeTime()
    assert await _request(_limiter(t, max_retries=0), Replies(RetryAfter(1)))  # no retries: 429s still waited out
    assert t.waits == [pytest.approx(1.1)]


async def test_429s_are_waited_out_up_to_max_flood_wait_then_the_request_is_dropped(caplog):
    t = FakeTime()
    assert await _request(_limiter(t, max_flood_wait=2.2), Replies(RetryAfter(1), RetryAfter(1)))
    assert t.waits == pytest.approx([1.1, 1.1])  # 2.2 s in all: just within the limit
    t = FakeTime()
    call = Replies(RetryAfter(1), RetryAfter(1), RetryAfter(1))
    with caplog.at_level(logging.WARNING, logger="bot.limits"), pytest.raises(RetryAfter):
        await _request(_limiter(t, max_flood_wait=2.2), call)
    assert t.waits == pytest.approx([1.1, 1.1]) and len(call.calls) == 3  # a third wait would pass 2.2 s
    assert caplog.messages == ["sendMessage: gave up after 2 s of Telegram's flood waits"]


async def test_a_caller_that_asks_for_no_retries_gets_the_429_at_once():
    t = FakeTime()
    with pytest.raises(RetryAfter):
        await _request(_limiter(t), Replies(RetryAfter(1)), rate_limit_args=0)
    assert t.waits == []
    # the error notice asks for one retry at most (bot.handlers): a 429 is still waited out
    assert await _request(_limiter(t), Replies(RetryAfter(1)), rate_limit_args=1)
    assert t.waits == [pytest.approx(1.1)]


async def test_network_errors_are_retried_with_a_doubling_backoff_up_to_max_retries(caplog):
    t = FakeTime()
    lim = _limiter(t, max_retries=2)
    with caplog.at_level(logging.WARNING, logger="bot.limits"):
        assert await _request(lim, Replies(_bad_gateway(), _bad_gateway()))
    assert t.waits == [0.5, 1.0] and lim.retries == 2
    assert caplog.messages == ["sendMessage failed (Bad Gateway); retry 1 of 2 in 0.5 s",
                               "sendMessage failed (Bad Gateway); retry 2 of 2 in 1.0 s"]
    t = FakeTime()
    call = Replies(_bad_gateway(), _bad_gateway(), _bad_gateway())
    with pytest.raises(NetworkError):
        await _request(_limiter(t, max_retries=2), call)
    assert t.waits == [0.5, 1.0] and len(call.calls) == 3
    t = FakeTime()  # the backoff stops growing at 10 s
    assert await _request(_limiter(t, max_retries=4, backoff=4.0), Replies(*[_bad_gateway() for _ in range(4)]))
    assert t.waits == [4.0, 8.0, 10.0, 10.0]
    t = FakeTime()  # the defaults: the first retry half a second later
    assert await _request(TelegramLimiter(throttle=False, clock=t.clock, sleep=t.sleep), Replies(_bad_gateway()))
    assert t.waits == [0.5]


async def test_a_caller_can_ask_for_fewer_retries():
    t = FakeTime()
    with pytest.raises(NetworkError):  # as the error notice does (bot.handlers): one retry at most
        await _request(_limiter(t, max_retries=5), Replies(_bad_gateway(), _bad_gateway()), rate_limit_args=1)
    assert t.waits == [0.5]


async def test_what_is_not_retried_here():
    t = FakeTime()
    for endpoint, exc in [("getUpdates", _bad_gateway()),  # the polling loop retries on its own
                          ("sendMessage", BadRequest("Chat not found"))]:  # our mistake: retrying cannot help
        call = Replies(exc)
        with pytest.raises(type(exc)):
            await _request(_limiter(t), call, endpoint, chat_id=None if endpoint == "getUpdates" else 7)
        assert len(call.calls) == 1
    assert t.waits == []


async def test_a_message_that_may_have_arrived_is_not_sent_again():
    t = FakeTime()
    call = Replies(_timed_out(httpx.ReadTimeout("read")))  # the request went out; the answer did not come
    with pytest.raises(TimedOut):
        await _request(_limiter(t), call)
    assert len(call.calls) == 1 and t.waits == []
    # nothing went out (connect timeout), or it was no message: retried
    assert await _request(_limiter(t), Replies(_timed_out(httpx.ConnectTimeout("connect"))))
    assert await _request(_limiter(t), Replies(_timed_out(httpx.ReadTimeout("read"))), "getChat")
    assert t.waits == [0.5, 0.5]


def test_delivery_is_unknown_on_a_read_timeout_or_an_unreadable_answer():
    unreadable = TelegramError("Invalid server response")
    unreadable.__cause__ = ValueError("Expecting value")  # as PTB raises it for a body that is not JSON
    assert delivery_unknown(unreadable) and delivery_unknown(_timed_out(httpx.ReadTimeout("read")))
    other = NetworkError("Bad Gateway")
    other.__cause__ = ValueError("x")
    assert not delivery_unknown(other) and not delivery_unknown(_timed_out(httpx.PoolTimeout("pool")))
    assert not delivery_unknown(TelegramError("Invalid server response")) and not delivery_unknown(None)


async def test_only_messages_are_throttled():
    t = FakeTime()
    lim = _limiter(t, throttle=True)
    for _ in range(3):
        await _request(lim, Replies(), "sendChatAction")  # "typing…": cheap, and worthless late
    assert t.waits == []
    await _request(lim, Replies())
    await _request(lim, Replies())
    assert t.waits == [pytest.approx(1.05)]
    t = FakeTime()
    lim = _limiter(t, throttle=False)  # OUTGOING_RATE_LIMIT=false
    await _request(lim, Replies())
    await _request(lim, Replies())
    assert t.waits == []


async def test_chat_ids_given_as_text_share_the_chat_s_window():
    t = FakeTime()
    lim = _limiter(t, throttle=True)
    await _request(lim, Replies(), chat_id="7")
    await _request(lim, Replies(), chat_id=7)  # the same private chat: one message a second
    assert t.waits == [pytest.approx(1.05)]
    t.waits.clear()
    for _ in range(3):  # a channel's @username: a group's 20 a minute
        await _request(lim, Replies(), chat_id="@proverbs")
    assert t.waits == []


async def test_the_overall_limit_spans_chats():
    t = FakeTime()
    lim = TelegramLimiter(overall_rate=2, clock=t.clock, sleep=t.sleep)
    for chat in (1, 2, 3):  # three chats, each within its own limit; the third waits for the overall one
        await _request(lim, Replies(), chat_id=chat)
    assert t.waits == [pytest.approx(1.05)]
