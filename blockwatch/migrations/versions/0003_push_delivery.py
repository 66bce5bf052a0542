"""push delivery: devices, followed groups, the outbox

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 06:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import blockwatch.types

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "devices",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("platform", sa.String(length=10), nullable=False),
        sa.Column("push", sa.JSON(), nullable=False),
        sa.Column("secret_sha256", sa.String(length=64), nullable=False),
        sa.Column("area_lon", sa.Float(), nullable=True),
        sa.Column("area_lat", sa.Float(), nullable=True),
        sa.Column("area_radius_m", sa.Float(), nullable=True),
        sa.Column("min_lon", sa.Float(), nullable=True),
        sa.Column("min_lat", sa.Float(), nullable=True),
        sa.Column("max_lon", sa.Float(), nullable=True),
        sa.Column("max_lat", sa.Float(), nullable=True),
        sa.Column("subscription", sa.JSON(), nullable=False),
        sa.Column("categories_mask", sa.Integer(), nullable=False),
        sa.Column("min_severity_rank", sa.Integer(), nullable=False),
        sa.Column("quiet_start_min", sa.Integer(), nullable=True),
        sa.Column("quiet_end_min", sa.Integer(), nullable=True),
        sa.Column("quiet_tz", sa.String(length=64), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("deactivated_reason", sa.String(length=200), nullable=True),
        sa.Column("created_at", blockwatch.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", blockwatch.types.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("platform IN ('fcm', 'webpush', 'webhook')", name="ck_devices_platform"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.create_index(
            "ix_devices_area_box",
            ["active", "min_lat", "max_lat", "min_lon", "max_lon"],
            unique=False,
        )

    op.create_table(
        "device_groups",
        sa.Column("device_id", sa.String(length=36), nullable=False),
        sa.Column("group_id", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(["device_id"], ["devices.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("device_id", "group_id"),
    )
    with op.batch_alter_table("device_groups", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_device_groups_group_id"), ["group_id"], unique=False)

    op.create_table(
        "deliveries",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
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
        sa.ForeignKeyConstraint(["alert_id"], ["alerts.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["device_id"], ["devices.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("alert_id", "device_id", "kind", name="uq_deliveries_message"),
    )
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.create_index("ix_deliveries_device", ["device_id", "state"], unique=False)
        batch_op.create_index("ix_deliveries_due", ["state", "due_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_deliveries_due")
        batch_op.drop_index("ix_deliveries_device")

    op.drop_table("deliveries")
    with op.batch_alter_table("device_groups", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_device_groups_group_id"))

    op.drop_table("device_groups")
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.drop_index("ix_devices_area_box")

    op.drop_table("devices")
