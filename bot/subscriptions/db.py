"""The bot's database: where it is (DATABASE_URL, or an SQLite file in DATA_DIR) and its engine, made here only."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

DB_FILE = "bot.sqlite3"


def database_url(data_dir: Path, url: str | None = None) -> str:
    """DATABASE_URL when set, else an SQLite file in DATA_DIR (an absolute path, whatever the working directory)."""
    return url or f"sqlite+aiosqlite:///{Path(data_dir).resolve() / DB_FILE}"


def sqlite_file(url: str) -> Path | None:
    """The file of an SQLite URL; None for an in-memory database or another backend."""
    u = make_url(url)
    if u.get_backend_name() == "sqlite" and u.database and u.database != ":memory:":
        return Path(u.database)
    return None


def describe(url: str) -> str:
    """The URL for logs and errors: the file for SQLite, no password for the rest."""
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        return u.database or ":memory:"
    return u.render_as_string(hide_password=True)


def reason(e: BaseException) -> str:
    """The driver's own words for a database error (its first line), without SQLAlchemy's SQL and links."""
    orig = getattr(e, "orig", None)
    return str(orig or e).splitlines()[0]


def make_engine(url: str) -> AsyncEngine:
    """An async engine; for SQLite: one connection, WAL, foreign keys, and real transactions (DDL included).

    One connection: SQLite has one writer at a time anyway, and two connections of this process would make
    each other's transactions fail ("database is locked") instead of queueing on the pool. The sqlite3
    driver's legacy mode begins transactions only before INSERT/UPDATE/DELETE, so a migration (CREATE
    TABLE ...) would commit statement by statement; SQLAlchemy emits BEGIN IMMEDIATE itself instead, which
    also makes another process (the migration command, a bench) wait its turn rather than fail.
    """
    u = make_url(url)
    if u.get_backend_name() != "sqlite":
        return create_async_engine(url, pool_pre_ping=True)
    if sqlite_file(url) is not None:
        engine = create_async_engine(url, connect_args={"timeout": 30}, pool_size=1, max_overflow=0, pool_timeout=60)
    else:
        engine = create_async_engine(url)

    @event.listens_for(engine.sync_engine, "connect")
    def _connect(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON", "busy_timeout=30000"):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine
