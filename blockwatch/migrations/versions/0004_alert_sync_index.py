"""alerts: a covering index for sync backfills

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 09:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_alerts_sync", "alerts",
        ["group_id", "id", "seq", "status", "expires_at", "lon"],
    )


def downgrade() -> None:
    op.drop_index("ix_alerts_sync", table_name="alerts")
