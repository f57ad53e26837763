"""chats (time zone) and daily subscriptions

Revision ID: 0001
Revises:
Create Date: 2026-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "chats",
        sa.Column("chat_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("timezone", sa.String(length=64), server_default="UTC", nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),  # naive UTC, as schema.UTCDateTime stores it
        sa.PrimaryKeyConstraint("chat_id", name=op.f("pk_chats")),
    )
    op.create_table(
        "subscriptions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("culture", sa.String(length=32), nullable=False),
        sa.Column("local_time", sa.String(length=5), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=False),
        sa.Column("next_due", sa.DateTime(), nullable=False),
        sa.Column("last_date", sa.Date(), nullable=True),
        sa.Column("failures", sa.Integer(), server_default="0", nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["chat_id"], ["chats.chat_id"], name=op.f("fk_subscriptions_chat_id_chats"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscriptions")),
        sa.UniqueConstraint("chat_id", "culture", name=op.f("uq_subscriptions_chat_id_culture")),
    )
    op.create_index(op.f("ix_subscriptions_next_due"), "subscriptions", ["next_due"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_subscriptions_next_due"), table_name="subscriptions")
    op.drop_table("subscriptions")
    op.drop_table("chats")
