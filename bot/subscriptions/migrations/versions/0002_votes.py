"""readers' votes on proverbs

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "votes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("proverb", sa.String(length=64), nullable=False),
        sa.Column("bundle", sa.String(length=32), nullable=False),
        sa.Column("bundle_sha256", sa.String(length=64), nullable=False),
        sa.Column("seed", sa.BigInteger(), nullable=False),
        sa.Column("prefix", sa.String(length=1000), server_default="", nullable=False),
        sa.Column("temperature", sa.Float(), nullable=True),
        sa.Column("settings", sa.String(length=1000), nullable=False),
        sa.Column("text_sha256", sa.String(length=64), nullable=False),
        sa.Column("value", sa.SmallInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),  # naive UTC, as schema.UTCDateTime stores it
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_votes")),
        sa.UniqueConstraint("user_id", "proverb", name=op.f("uq_votes_user_id_proverb")),
    )
    op.create_index(op.f("ix_votes_bundle"), "votes", ["bundle", "bundle_sha256"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_votes_bundle"), table_name="votes")
    op.drop_table("votes")
