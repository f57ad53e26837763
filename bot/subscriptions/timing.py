"""Times of day, time zones and the delivery calendar: when a subscription is next due. Pure: no I/O."""

from __future__ import annotations

import functools
import re
import zoneinfo
from datetime import date, datetime, time, timedelta, timezone

UTC = timezone.utc
# A delivery this much later than its scheduled time (the bot was down) is skipped, not sent: a proverb
# "for 21:00" arriving at 03:00 would be a surprise, not a service. The next day's goes out as usual.
LATE_LIMIT = timedelta(hours=6)

_TIME = re.compile(r"^([01]?\d|2[0-3])(?:[:.h]([0-5]\d))?$")


def parse_time(value: str) -> time | None:
    """`9`, `9:05`, `09:05`, `21.30` -> time; None when it is not a time of day."""
    m = _TIME.match(value.strip().lower())
    if not m:
        return None
    return time(int(m.group(1)), int(m.group(2) or 0))


def format_time(at: time) -> str:
    """time -> `HH:MM`."""
    return f"{at.hour:02d}:{at.minute:02d}"


@functools.lru_cache(maxsize=1)
def _zone_index() -> dict[str, str]:
    """Lower-case IANA key, and a unique last part (`moscow`), -> the IANA key."""
    keys = zoneinfo.available_timezones() | {"UTC"}
    index = {k.lower(): k for k in keys}
    last: dict[str, set[str]] = {}
    for k in keys:
        if "/" in k and not k.startswith(("Etc/", "SystemV/")):
            last.setdefault(k.rsplit("/", 1)[1].lower(), set()).add(k)
    for part, ks in last.items():
        if len(ks) == 1:
            index.setdefault(part, ks.pop())
    return index


def find_zone(name: str) -> str | None:
    """An IANA time zone name, any case (`europe/moscow`), or a city that names one zone (`Moscow`) -> its key."""
    name = name.strip().replace(" ", "_")
    if not name or len(name) > 64:
        return None
    key = _zone_index().get(name.lower())
    if key is None:
        return None
    try:
        zoneinfo.ZoneInfo(key)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return None
    return key


def zone(key: str) -> zoneinfo.ZoneInfo:
    """The ZoneInfo for a stored key (UTC when the key is unknown to this machine's tz database)."""
    try:
        return zoneinfo.ZoneInfo(key)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo("UTC")


def scheduled(day: date, at: time, tz: str) -> datetime:
    """The UTC instant of `at` on local date `day` in zone `tz`.

    A time skipped by a daylight-saving jump (02:30 on the spring-forward night) maps to the instant
    with the offset before the jump; a repeated one (autumn) to its first occurrence.
    """
    return datetime.combine(day, at, tzinfo=zone(tz)).astimezone(UTC)


def plan(at: time, tz: str, last_date: date | None, now: datetime) -> tuple[date, datetime]:
    """The next delivery: (local date, UTC instant), strictly after `now` and on a date after `last_date`.

    The local date is what makes deliveries idempotent: at most one per subscription and local date,
    whatever restarts, time-zone or time changes happen in between.
    """
    day = now.astimezone(zone(tz)).date()
    if last_date is not None and day <= last_date:
        day = last_date + timedelta(days=1)
    while True:
        due = scheduled(day, at, tz)
        if due > now:
            return day, due
        day += timedelta(days=1)


def retry_delay(failures: int) -> timedelta:
    """How long to wait after the `failures`-th failed attempt in a row: 1, 2, 4 ... minutes, at most 1 hour."""
    return timedelta(minutes=min(2 ** max(0, failures - 1), 60))


def utcnow() -> datetime:
    """The real clock: an aware UTC datetime (the default the scheduler and handlers are given)."""
    return datetime.now(UTC)
