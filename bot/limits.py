"""Limits: per-user request limit (incoming) and Telegram's flood limits with retries (outgoing)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from typing import Any, Awaitable, Callable, Coroutine

from telegram.error import BadRequest, NetworkError, RetryAfter, TelegramError, TimedOut
from telegram.ext import BaseRateLimiter

log = logging.getLogger(__name__)

# Requests that post a message into a chat: the ones Telegram's flood limits count.
# sendChatAction is not among them: it is cheap, and a delayed "typing…" is worthless.
MESSAGE_METHODS = frozenset({
    "sendMessage", "sendPhoto", "sendAudio", "sendDocument", "sendVideo", "sendAnimation", "sendVoice",
    "sendVideoNote", "sendMediaGroup", "sendLocation", "sendVenue", "sendContact", "sendPoll", "sendDice",
    "sendSticker", "copyMessage", "forwardMessage",
})


class UserRateLimiter:
    """At most `limit` requests per user in any `period` seconds (sliding window); limit 0 = off."""

    def __init__(self, limit: int, period: float):
        self.limit = limit
        self.period = period
        self._times: dict[int, deque[float]] = {}
        self._warned: dict[int, float] = {}  # user -> when we last said "slow down"

    def check(self, user_id: int, now: float | None = None) -> float:
        """Record a request; 0.0 if allowed, else the seconds until the user may ask again."""
        if self.limit <= 0:
            return 0.0
        now = time.monotonic() if now is None else now
        q = self._times.setdefault(user_id, deque())
        while q and now - q[0] >= self.period:
            q.popleft()
        if len(q) < self.limit:
            q.append(now)
            if len(self._times) > 10_000:  # forget idle users now and then, so memory stays flat
                self._forget(now)
            return 0.0
        return max(0.1, q[0] + self.period - now)

    def should_warn(self, user_id: int, now: float | None = None) -> bool:
        """True once per window for a limited user, so the polite reply is not itself a flood."""
        now = time.monotonic() if now is None else now
        last = self._warned.get(user_id)
        if last is not None and now - last < self.period:
            return False
        self._warned[user_id] = now
        return True

    def _forget(self, now: float) -> None:
        for uid in [u for u, q in self._times.items() if not q or now - q[-1] >= self.period]:
            del self._times[uid]
        for uid in [u for u, t in self._warned.items() if now - t >= self.period]:
            del self._warned[uid]


class Window:
    """At most `limit` messages in any `period` seconds, counted from when each request *finished*.

    Counting from the finish (not the start) keeps the gap Telegram sees at least `period` whatever the
    network delay; senders queue first-come first-served on the lock. `clock` and `sleep` are the
    monotonic clock and asyncio.sleep (tests pass a fake pair).
    """

    def __init__(self, limit: int, period: float, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep):
        self.limit = limit
        self.period = period
        self.clock = clock
        self.sleep = sleep
        self._ends: list[list[float]] = []  # one cell per recent message: [end time], inf while in flight
        self._lock = asyncio.Lock()
        self._freed = asyncio.Event()

    def _prune(self, now: float) -> None:
        self._ends = [c for c in self._ends if now - c[0] < self.period]

    def idle(self, now: float) -> bool:
        self._prune(now)
        return not self._ends and not self._lock.locked()

    @contextlib.asynccontextmanager
    async def slot(self):
        async with self._lock:
            while True:
                now = self.clock()
                self._prune(now)
                if len(self._ends) < self.limit:
                    cell = [math.inf]
                    self._ends.append(cell)
                    break
                earliest = min(c[0] for c in self._ends)
                if earliest == math.inf:  # every slot is in flight: wait for one to finish
                    self._freed.clear()
                    await self._freed.wait()
                else:
                    await self.sleep(earliest + self.period - now)
        try:
            yield
        finally:
            cell[0] = self.clock()
            self._freed.set()


def window(rate: float, per: float, margin: float = 1.05, **clock) -> Window:
    """A window for `rate` messages per `per` seconds, a little stricter than asked (`margin`); `clock`: Window's."""
    limit = max(1, int(rate))
    return Window(limit, per * limit / rate * margin, **clock)


def delivery_unknown(exc: BaseException | None) -> bool:
    """True when a request may have reached Telegram though no answer says so: it timed out while waiting
    for the answer (the request had gone out), or the answer could not be read. Sending it again could
    deliver it twice, and a duplicate is worse than a rare loss."""
    import httpx

    if isinstance(exc, TimedOut):
        return isinstance(exc.__cause__, httpx.ReadTimeout)  # connect or pool timeouts: nothing went out
    return type(exc) is TelegramError and isinstance(exc.__cause__, ValueError)  # "Invalid server response"


def retry_after_seconds(exc: RetryAfter) -> float:
    ra = getattr(exc, "_retry_after", None)
    return ra.total_seconds() if ra is not None else float(exc.retry_after)


class TelegramLimiter(BaseRateLimiter):
    """Outgoing requests: Telegram's flood limits, 429 retry_after, and retries of network errors.

    python-telegram-bot's AIORateLimiter does not throttle private chats (Telegram: about 1 message a
    second per chat) and its leaky buckets let through up to twice the rate within one second, so a
    burst earns 429s; this limiter uses sliding windows per chat and overall instead. Like
    AIORateLimiter, a 429 pauses every request for retry_after. Network errors (5xx, timeouts,
    connection resets) are retried with backoff; a 4xx other than 429 is not.
    """

    def __init__(self, overall_rate: float = 30.0, chat_rate: float = 1.0, group_rate_per_minute: float = 20.0,
                 max_retries: int = 5, throttle: bool = True, backoff: float = 0.5, max_flood_wait: float = 120.0,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep):
        self.throttle = throttle
        self.max_retries = max_retries
        self.max_flood_wait = max_flood_wait
        self.backoff = backoff
        self._overall_rate = overall_rate
        self._chat_rate = chat_rate
        self._group_rate = group_rate_per_minute
        self._overall: Window | None = None
        self._chats: dict[int | str, Window] = {}
        self._resume: asyncio.Event | None = None
        self._clock = {"clock": clock, "sleep": sleep}  # for the windows and the retry waits (tests pass a fake pair)
        self.retries = 0  # how many times a request was retried (for benches and logs)

    async def initialize(self) -> None:
        # asyncio primitives are made here, inside the running loop
        self._overall = window(self._overall_rate, 1.0, **self._clock)
        self._resume = asyncio.Event()
        self._resume.set()

    async def shutdown(self) -> None:
        self._chats.clear()

    def _chat_window(self, chat_id: int | str) -> Window:
        w = self._chats.get(chat_id)
        if w is None:
            if len(self._chats) > 4096:  # drop idle chats' windows so memory stays flat
                now = self._clock["clock"]()
                for k in [k for k, v in self._chats.items() if v.idle(now)]:
                    del self._chats[k]
            group = isinstance(chat_id, str) or chat_id < 0
            w = window(self._group_rate, 60.0, **self._clock) if group else window(self._chat_rate, 1.0, **self._clock)
            self._chats[chat_id] = w
        return w

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, bool | dict | list[dict]]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: int | None,
    ) -> bool | dict | list[dict]:
        if self._resume is None:
            await self.initialize()
        max_retries = self.max_retries if rate_limit_args is None else rate_limit_args
        chat_id = data.get("chat_id")
        with contextlib.suppress(ValueError, TypeError):
            chat_id = int(chat_id)
        throttled = self.throttle and endpoint in MESSAGE_METHODS and chat_id is not None
        attempt = 0
        flood_wait = 0.0  # seconds this request waited on 429s
        while True:
            await self._resume.wait()
            try:
                if throttled:
                    async with self._chat_window(chat_id).slot(), self._overall.slot():
                        await self._resume.wait()
                        return await callback(*args, **kwargs)
                return await callback(*args, **kwargs)
            except RetryAfter as exc:
                # Telegram said when to come back: a 429 does not use up a retry (a storm of them would drop
                # the reply), only the time this request may spend waiting does
                pause = retry_after_seconds(exc) + 0.1
                if (max_retries == 0 and rate_limit_args is not None) or flood_wait + pause > self.max_flood_wait:
                    log.warning("%s: gave up after %.0f s of Telegram's flood waits", endpoint, flood_wait)
                    raise
                flood_wait += pause
                attempt -= 1
                log.info("Telegram asked to wait %.1f s (%s); pausing all requests", pause, endpoint)
                if self._resume.is_set():
                    self._resume.clear()
                    await self._clock["sleep"](pause)
                    self._resume.set()
            except BadRequest:
                raise  # our own mistake (a 400): retrying cannot help
            except NetworkError as exc:  # 5xx, timeouts, resets; the getUpdates loop retries on its own
                if attempt >= max_retries or endpoint == "getUpdates":
                    raise
                if endpoint in MESSAGE_METHODS and delivery_unknown(exc):
                    raise  # it may have been delivered: never sent twice
                delay = min(self.backoff * 2**attempt, 10.0)
                log.warning("%s failed (%s); retry %d of %d in %.1f s", endpoint, exc, attempt + 1, max_retries, delay)
                await self._clock["sleep"](delay)
            attempt += 1
            self.retries += 1
