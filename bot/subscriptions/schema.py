"""The bot's database tables (subscriptions, votes) (SQLAlchemy Core). Changing them needs a migration in migrations/versions."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (
    BigInteger, Column, Date, DateTime, Float, ForeignKey, Index, Integer, MetaData, SmallInteger, String, Table,
    TypeDecorator, UniqueConstraint,
)

# Named constraints, so later migrations (SQLite rebuilds tables in batch mode) can refer to them.
metadata = MetaData(naming_convention={
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
})


class UTCDateTime(TypeDecorator):
    """An aware datetime stored as naive UTC (SQLite has no time zones); read back as aware UTC.

    Stored values compare correctly as text in SQL (`next_due <= :now`), as all are UTC.
    """

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass an aware one")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect):
        return None if value is None else value.replace(tzinfo=timezone.utc)


chats = Table(
    "chats", metadata,
    Column("chat_id", BigInteger, primary_key=True, autoincrement=False),
    Column("timezone", String(64), nullable=False, server_default="UTC"),  # IANA key
    Column("created_at", UTCDateTime, nullable=False),
)

subscriptions = Table(
    "subscriptions", metadata,
    Column("id", Integer, primary_key=True),
    Column("chat_id", BigInteger, ForeignKey("chats.chat_id", ondelete="CASCADE"), nullable=False),
    Column("culture", String(32), nullable=False),  # a bundle name, or "random" (a culture picked each day)
    Column("local_time", String(5), nullable=False),  # "HH:MM" in the chat's time zone
    Column("due_date", Date, nullable=False),  # the local date of the next delivery
    Column("next_due", UTCDateTime, nullable=False),  # when it is next tried: the scheduled instant, or a retry
    Column("last_date", Date, nullable=True),  # the local date of the last delivery (never two on one date)
    Column("failures", Integer, nullable=False, server_default="0"),  # failed attempts in a row
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("chat_id", "culture"),
    Index(None, "next_due"),
)

# Readers' votes on proverbs (bot.votes): one row per user and proverb, changeable.
votes = Table(
    "votes", metadata,
    Column("id", Integer, primary_key=True),
    Column("user_id", BigInteger, nullable=False),
    # sha256 of (bundle_sha256, seed, prefix, settings): the proverb, whatever its text
    Column("proverb", String(64), nullable=False),
    Column("bundle", String(32), nullable=False),  # the bundle's name (its command)
    Column("bundle_sha256", String(64), nullable=False),  # sha256 of its manifest.json (which hashes every file)
    Column("seed", BigInteger, nullable=False),
    Column("prefix", String(1000), nullable=False, server_default=""),
    Column("temperature", Float, nullable=True),  # the user's t=, NULL for the bundle's own (for the replay command)
    Column("settings", String(1000), nullable=False),  # the decoding settings in effect, JSON
    Column("text_sha256", String(64), nullable=False),  # sha256 of the proverb's text (UTF-8)
    Column("value", SmallInteger, nullable=False),  # +1 👍, -1 👎
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("user_id", "proverb"),
    Index(None, "bundle", "bundle_sha256"),
)

# Which process runs the daily deliveries (bot.subscriptions.scheduler): one row per duty, held until expires_at
# and renewed while the holder works, so two processes on one database never deliver the same rows.
leases = Table(
    "leases", metadata,
    Column("name", String(32), primary_key=True),  # the duty: "delivery"
    Column("holder", String(128), nullable=False),  # host:pid:random of the process holding it
    Column("expires_at", UTCDateTime, nullable=False),
)
