"""The subscriptions database: chats' time zones and daily subscriptions, through SQLAlchemy (async)."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Iterable

from sqlalchemy import bindparam, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ..errors import StartupError
from .db import describe, make_engine, reason, sqlite_file
from .migrate import upgrade
from .schema import chats, leases, subscriptions
from .timing import format_time, parse_time, plan, retry_delay, scheduled as scheduled_at

RANDOM = "random"  # the culture of a subscription that gets a culture picked at random each day


@dataclass(frozen=True)
class Subscription:
    """One daily subscription, with its chat's time zone."""

    id: int
    chat_id: int
    culture: str  # bundle name or RANDOM
    at: time  # local time of day
    timezone: str  # the chat's IANA zone
    due_date: date  # local date of the next delivery
    next_due: datetime  # UTC: when it is next tried
    last_date: date | None  # local date of the last delivery
    failures: int

    @property
    def scheduled(self) -> datetime:
        """The UTC instant this delivery was scheduled for (next_due may be later, after failures)."""
        return scheduled_at(self.due_date, self.at, self.timezone)


_COLUMNS = (subscriptions.c.id, subscriptions.c.chat_id, subscriptions.c.culture, subscriptions.c.local_time,
            chats.c.timezone, subscriptions.c.due_date, subscriptions.c.next_due, subscriptions.c.last_date,
            subscriptions.c.failures)


def _row(r) -> Subscription:
    return Subscription(r.id, r.chat_id, r.culture, parse_time(r.local_time), r.timezone, r.due_date, r.next_due,
                        r.last_date, r.failures)


def _joined():
    return select(*_COLUMNS).select_from(subscriptions.join(chats, subscriptions.c.chat_id == chats.c.chat_id))


def prepare(url: str) -> None:
    """Create the database and migrate it now, before the bot talks to Telegram (StartupError with one line).

    Runs its own event loop in a worker thread, so it works whether or not the caller is inside a loop.
    """
    async def open_and_close() -> None:
        store = await Store.open(url)
        await store.close()

    with ThreadPoolExecutor(1, thread_name_prefix="migrate") as pool:
        pool.submit(asyncio.run, open_and_close()).result()


class Store:
    """Chats and their subscriptions. Open with `await Store.open(url)` (runs the migrations); `await close()`.

    Every method is one transaction. Times passed in (`now`) are aware datetimes, from the caller's clock.
    """

    def __init__(self, engine: AsyncEngine, url: str):
        self.engine = engine
        self.url = url

    @classmethod
    async def open(cls, url: str) -> "Store":
        """Create the database if needed and bring its schema up to date; StartupError with one line if not possible."""
        file = sqlite_file(url)
        if file is not None:
            folder = file.parent
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise StartupError(f"cannot create the data folder {folder} (DATA_DIR): {e.strerror or e}") from None
        engine = make_engine(url)
        try:
            await upgrade(engine, describe(url))
        except StartupError:
            await engine.dispose()
            raise
        except (SQLAlchemyError, OSError) as e:
            await engine.dispose()
            raise StartupError(f"cannot open the subscriptions database {describe(url)}: {reason(e)}") from None
        return cls(engine, url)

    async def close(self) -> None:
        await self.engine.dispose()

    # -- chats ------------------------------------------------------------------------------------

    async def timezone(self, chat_id: int) -> str:
        """The chat's time zone (UTC unless /timezone set one)."""
        async with self.engine.connect() as conn:
            tz = (await conn.execute(select(chats.c.timezone).where(chats.c.chat_id == chat_id))).scalar()
        return tz or "UTC"

    async def set_timezone(self, chat_id: int, tz: str, now: datetime) -> list[Subscription]:
        """Set the chat's time zone and reschedule its subscriptions in it; -> them."""
        async with self.engine.begin() as conn:
            await self._ensure_chat(conn, chat_id, now)
            await conn.execute(update(chats).where(chats.c.chat_id == chat_id).values(timezone=tz))
            for sub in await self._of_chat(conn, chat_id):
                await self._reschedule(conn, sub.id, sub.at, tz, sub.last_date, now)
            return await self._of_chat(conn, chat_id)

    async def forget_chat(self, chat_id: int) -> int:
        """Remove the chat and its subscriptions (the bot was blocked, removed, or the chat is gone); -> how many."""
        async with self.engine.begin() as conn:
            n = (await conn.execute(delete(subscriptions).where(subscriptions.c.chat_id == chat_id))).rowcount
            await conn.execute(delete(chats).where(chats.c.chat_id == chat_id))
        return n

    async def move_chat(self, old: int, new: int) -> None:
        """A group became a supergroup (a new chat id): its settings and subscriptions move along."""
        async with self.engine.begin() as conn:
            exists = (await conn.execute(select(chats.c.chat_id).where(chats.c.chat_id == new))).first()
            if exists:  # already moved (or subscribed anew there): the old chat's are dropped
                await conn.execute(delete(subscriptions).where(subscriptions.c.chat_id == old))
                await conn.execute(delete(chats).where(chats.c.chat_id == old))
                return
            row = (await conn.execute(select(chats).where(chats.c.chat_id == old))).first()
            if row is None:
                return
            await conn.execute(insert(chats).values(chat_id=new, timezone=row.timezone, created_at=row.created_at))
            await conn.execute(update(subscriptions).where(subscriptions.c.chat_id == old).values(chat_id=new))
            await conn.execute(delete(chats).where(chats.c.chat_id == old))

    # -- subscriptions ----------------------------------------------------------------------------

    async def subscribe(self, chat_id: int, culture: str, at: time, now: datetime) -> tuple[Subscription, bool]:
        """Subscribe the chat to `culture` daily at local time `at` (or move an existing one); -> (it, created)."""
        async with self.engine.begin() as conn:
            tz = await self._ensure_chat(conn, chat_id, now)
            existing = (await conn.execute(_joined().where(subscriptions.c.chat_id == chat_id,
                                                           subscriptions.c.culture == culture))).first()
            if existing is None:
                due_date, next_due = plan(at, tz, None, now)
                await conn.execute(insert(subscriptions).values(
                    chat_id=chat_id, culture=culture, local_time=format_time(at), due_date=due_date,
                    next_due=next_due, last_date=None, failures=0, created_at=now))
            else:
                await self._reschedule(conn, existing.id, at, tz, existing.last_date, now)
            row = (await conn.execute(_joined().where(subscriptions.c.chat_id == chat_id,
                                                      subscriptions.c.culture == culture))).one()
            return _row(row), existing is None

    async def unsubscribe(self, chat_id: int, culture: str | None = None) -> int:
        """Remove the chat's subscription to `culture` (all of them when None); -> how many."""
        q = delete(subscriptions).where(subscriptions.c.chat_id == chat_id)
        if culture is not None:
            q = q.where(subscriptions.c.culture == culture)
        async with self.engine.begin() as conn:
            return (await conn.execute(q)).rowcount

    async def of_chat(self, chat_id: int) -> list[Subscription]:
        """The chat's subscriptions, by local time."""
        async with self.engine.connect() as conn:
            return await self._of_chat(conn, chat_id)

    async def count(self) -> int:
        async with self.engine.connect() as conn:
            return (await conn.execute(select(func.count()).select_from(subscriptions))).scalar_one()

    # -- delivery ---------------------------------------------------------------------------------

    async def due(self, now: datetime, limit: int, exclude: Iterable[int] = ()) -> list[Subscription]:
        """Up to `limit` subscriptions due at `now` (next_due <= now), earliest first, leaving out `exclude` ids."""
        q = _joined().where(subscriptions.c.next_due <= now)
        exclude = list(exclude)
        if exclude:
            q = q.where(subscriptions.c.id.not_in(exclude))
        q = q.order_by(subscriptions.c.next_due, subscriptions.c.id).limit(limit)
        async with self.engine.connect() as conn:
            return [_row(r) for r in (await conn.execute(q)).all()]

    async def next_due(self, exclude: Iterable[int] = ()) -> datetime | None:
        """The earliest next_due of all subscriptions (but `exclude`), or None when there are none."""
        q = select(func.min(subscriptions.c.next_due))
        exclude = list(exclude)
        if exclude:
            q = q.where(subscriptions.c.id.not_in(exclude))
        async with self.engine.connect() as conn:
            return (await conn.execute(q)).scalar()  # min() keeps the column's type: an aware datetime

    async def delivered(self, subs: list[Subscription], now: datetime) -> None:
        """Record the delivery of each one's due_date and schedule its next one (as the row stands now), in one transaction."""
        async with self.engine.begin() as conn:
            rows = (await conn.execute(_joined().where(subscriptions.c.id.in_([s.id for s in subs])))).all()
            current = {r.id: _row(r) for r in rows}  # a row unsubscribed while it was being sent is gone
            params = []
            for sub in subs:
                cur = current.get(sub.id)
                if cur is None:
                    continue
                last = max(sub.due_date, cur.last_date) if cur.last_date else sub.due_date
                due_date, next_due = plan(cur.at, cur.timezone, last, now)
                params.append({"b_id": sub.id, "b_last": last, "b_due_date": due_date, "b_next_due": next_due})
            if params:
                await conn.execute(
                    update(subscriptions).where(subscriptions.c.id == bindparam("b_id")).values(
                        last_date=bindparam("b_last"), due_date=bindparam("b_due_date"),
                        next_due=bindparam("b_next_due"), failures=0),
                    params)

    async def skip(self, sub: Subscription, now: datetime) -> date:
        """Give up on `sub`'s due_date (too late, or failing too long): schedule the next one; -> its date."""
        async with self.engine.begin() as conn:
            due_date, _ = await self._reschedule(conn, sub.id, sub.at, sub.timezone, sub.last_date, now)
        return due_date

    async def failed(self, sub: Subscription, now: datetime) -> datetime:
        """Count a failed attempt and retry later (backing off); -> when."""
        retry = now + retry_delay(sub.failures + 1)
        async with self.engine.begin() as conn:
            await conn.execute(update(subscriptions).where(subscriptions.c.id == sub.id)
                               .values(failures=subscriptions.c.failures + 1, next_due=retry))
        return retry

    # -- leases -----------------------------------------------------------------------------------

    async def take_lease(self, name: str, holder: str, now: datetime, ttl: timedelta) -> tuple[bool, str, datetime]:
        """Hold (or renew) the lease `name` until now + ttl, unless another holder's is still valid.

        -> (held by `holder` now, the holder, until when). One conditional UPDATE, or an INSERT for the first
        holder ever, so two processes that race both see one winner (the other's INSERT hits the key)."""
        until = now + ttl
        won = update(leases).where(leases.c.name == name, or_(leases.c.holder == holder, leases.c.expires_at <= now)) \
            .values(holder=holder, expires_at=until)
        try:
            async with self.engine.begin() as conn:
                if (await conn.execute(won)).rowcount == 0:
                    row = (await conn.execute(select(leases).where(leases.c.name == name))).first()
                    if row is not None:
                        return False, row.holder, row.expires_at
                    await conn.execute(insert(leases).values(name=name, holder=holder, expires_at=until))
        except IntegrityError:  # another process inserted it first
            async with self.engine.connect() as conn:
                row = (await conn.execute(select(leases).where(leases.c.name == name))).one()
            return False, row.holder, row.expires_at
        return True, holder, until

    async def release_lease(self, name: str, holder: str) -> None:
        """Give the lease up (a clean stop), so a standby takes over at its next tick, not when it expires."""
        async with self.engine.begin() as conn:
            await conn.execute(delete(leases).where(leases.c.name == name, leases.c.holder == holder))

    # -- internals --------------------------------------------------------------------------------

    async def _ensure_chat(self, conn: AsyncConnection, chat_id: int, now: datetime) -> str:
        tz = (await conn.execute(select(chats.c.timezone).where(chats.c.chat_id == chat_id))).scalar()
        if tz is None:
            await conn.execute(insert(chats).values(chat_id=chat_id, timezone="UTC", created_at=now))
            tz = "UTC"
        return tz

    async def _of_chat(self, conn: AsyncConnection, chat_id: int) -> list[Subscription]:
        rows = (await conn.execute(_joined().where(subscriptions.c.chat_id == chat_id)
                                   .order_by(subscriptions.c.local_time, subscriptions.c.culture))).all()
        return [_row(r) for r in rows]

    async def _reschedule(self, conn: AsyncConnection, sub_id: int, at: time, tz: str, after: date | None,
                          now: datetime) -> tuple[date, datetime]:
        """Schedule the row's next delivery: the first local date after `after` whose time is still ahead."""
        due_date, next_due = plan(at, tz, after, now)
        await conn.execute(update(subscriptions).where(subscriptions.c.id == sub_id).values(
            local_time=format_time(at), due_date=due_date, next_due=next_due, failures=0))
        return due_date, next_due

