"""Alembic environment for the subscriptions database.

Always run through bot.subscriptions.migrate (at the bot's startup, or by hand: `python -m bot.subscriptions`),
which hands over an open connection in `config.attributes["connection"]`: the bot's own engine, with its
SQLite settings, in one transaction.
Batch mode (`render_as_batch`) lets migrations alter SQLite tables, which SQLite only allows by rebuilding them.
"""

from __future__ import annotations

from alembic import context

from bot.subscriptions.schema import metadata

config = context.config


def run_with(connection) -> None:
    # transactional_ddl: the connection is in a transaction (BEGIN IMMEDIATE, see db.make_engine), so a
    # migration that fails halfway leaves the schema as it was, on SQLite too
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True, compare_type=True,
                      transactional_ddl=True)
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `python -m bot.subscriptions`, not the alembic command")
run_with(connection)
