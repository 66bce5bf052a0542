"""deliveries: no foreign keys, no unique message constraint; indexed by alert and kind

An alert to a dense city writes tens of thousands of outbox rows in one transaction, and a key
check per row cost more than the write itself (see ``models.Delivery``); a message is written once
by construction, so the unique constraint only cost an index that grew in random order. Queries
find an alert's deliveries by ``(alert_id, kind)``, not a device's by state. 0003 as released
(stop 8) made the old shape: this revision brings such databases to the models.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24 10:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import blockwatch.types

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_COLUMNS = (
    "id, alert_id, device_id, kind, platform, state, due_at, attempts, claimed_by, "
    "claimed_until, last_error, created_at, finished_at"
)


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        # The names PostgreSQL gave the unnamed foreign keys of 0003.
        op.drop_constraint("deliveries_alert_id_fkey", "deliveries", type_="foreignkey")
        op.drop_constraint("deliveries_device_id_fkey", "deliveries", type_="foreignkey")
        op.drop_constraint("uq_deliveries_message", "deliveries", type_="unique")
        op.drop_index("ix_deliveries_device", table_name="deliveries")
        op.create_index("ix_deliveries_alert", "deliveries", ["alert_id", "kind"])
        return
    # SQLite alters no constraint in place: the table is made again, its rows copied over.
    op.create_table(
        "_deliveries_new",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  autoincrement=True, nullable=False),
        sa.Column("alert_id", sa.String(length=36), nullable=False),
        sa.Column("device_id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("platform", sa.String(length=10), nullable=False),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("due_at", blockwatch.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("claimed_by", sa.String(length=36), nullable=True),
        sa.Column("claimed_until", blockwatch.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=300), nullable=True),
        sa.Column("created_at", blockwatch.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", blockwatch.types.UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint("kind IN ('alert', 'cancel')", name="ck_deliveries_kind"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.execute(f"INSERT INTO _deliveries_new ({_COLUMNS}) SELECT {_COLUMNS} FROM deliveries")
    op.drop_table("deliveries")
    op.rename_table("_deliveries_new", "deliveries")
    op.create_index("ix_deliveries_alert", "deliveries", ["alert_id", "kind"])
    op.create_index("ix_deliveries_due", "deliveries", ["state", "due_at"])


def downgrade() -> None:
    # The foreign keys and the unique constraint are not put back: rows kept past their alert
    # or device (which this revision allows) would break them.
    op.drop_index("ix_deliveries_alert", table_name="deliveries")
    op.create_index("ix_deliveries_device", "deliveries", ["device_id", "state"])
