"""Schema migrations (Alembic, scripts in migrations/versions): run at the bot's startup, or by hand
(`python -m bot.subscriptions`)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine

from ..errors import StartupError

if TYPE_CHECKING:
    from alembic.config import Config

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# The newest revision in migrations/versions (tests/bot/test_subscriptions.py: it is Alembic's head). A database
# already there is opened without Alembic, whose import was ~0.1 s of the bot's start (python -X importtime).
HEAD = "0003"


def alembic_config(connection=None) -> Config:
    """An Alembic config for our scripts, with no alembic.ini; `connection` (sync) is what env.py runs on."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def head() -> str:
    """The newest revision this code knows."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(connection) -> str | None:
    """The database's revision (None: no schema yet)."""
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


# Processes started together on a new PostgreSQL database (webhook replicas and a scheduler, docs/scaling.md) each
# created the tables, and all but one failed with 'duplicate key value violates unique constraint
# "pg_type_typname_nsp_index"' (bench/replicas.py: 3 of 5 runs). A lock held until the migration's transaction ends
# makes them take turns: the next one reads the revision the first committed, and has nothing to do.
MIGRATION_LOCK = 0x70726F76  # any number every process of this bot uses alike ("prov")


async def upgrade(engine: AsyncEngine, where: str = "the database") -> None:
    """Bring the database to the newest schema, in one transaction; StartupError if it is newer than this code."""

    def run(connection) -> None:
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
        if _revision_without_alembic(connection) == HEAD:  # after the lock: another process may just have migrated
            return
        from alembic import command
        from alembic.script import ScriptDirectory
        from alembic.util.exc import CommandError

        rev = current_revision(connection)
        scripts = ScriptDirectory.from_config(alembic_config())
        if rev is not None:
            try:
                scripts.get_revision(rev)
            except CommandError:
                raise StartupError(f"the subscriptions database {where} has schema revision {rev!r}, which this bot "
                                   f"does not know (made by a newer version?); latest known: {scripts.get_current_head()!r}") from None
        if rev != scripts.get_current_head():
            # a new database is routine (DEBUG); migrating one that holds subscriptions is worth a line
            log.log(logging.DEBUG if rev is None else logging.INFO, "subscriptions database %s: schema revision %s -> %s",
                    where, rev or "(new)", scripts.get_current_head())
            command.upgrade(alembic_config(connection), "head")

    async with engine.begin() as conn:
        await conn.run_sync(run)


def _revision_without_alembic(connection) -> str | None:
    """The revision in the database's alembic_version table, read with SQLAlchemy alone (None: no such table)."""
    if not inspect(connection).has_table("alembic_version"):
        return None
    return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
