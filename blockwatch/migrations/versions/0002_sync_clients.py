"""sync: pushed mutations per client, and the cursor signing key

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 04:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import blockwatch.types

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sync_state", schema=None) as batch_op:
        batch_op.add_column(sa.Column("cursor_secret", sa.String(length=64), nullable=True))
    op.create_table(
        "sync_clients",
        sa.Column("client_id", sa.String(length=36), nullable=False),
        sa.Column("account_id", sa.String(length=36), nullable=False),
        sa.Column("last_mutation_id", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", blockwatch.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("client_id"),
    )
    with op.batch_alter_table("sync_clients", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_sync_clients_account_id"), ["account_id"], unique=False
        )
    op.create_table(
        "sync_mutations",
        sa.Column("client_id", sa.String(length=36), nullable=False),
        sa.Column("mutation_id", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("result", sa.JSON(), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=True),
        sa.Column("applied_at", blockwatch.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"], ["sync_clients.client_id"], ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("client_id", "mutation_id"),
    )
    with op.batch_alter_table("sync_mutations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_sync_mutations_applied_at"), ["applied_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("sync_mutations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sync_mutations_applied_at"))
    op.drop_table("sync_mutations")
    with op.batch_alter_table("sync_clients", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sync_clients_account_id"))
    op.drop_table("sync_clients")
    with op.batch_alter_table("sync_state", schema=None) as batch_op:
        batch_op.drop_column("cursor_secret")
