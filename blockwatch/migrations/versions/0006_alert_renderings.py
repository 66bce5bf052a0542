"""alerts: renderings stored with the row (blockwatch.renderings)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24 12:00:00

Existing alerts have none until ``blockwatch render-alerts`` (or ``blockwatch serve``, which
runs it) renders them; until then they are rendered when read, as before.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("alerts") as batch:
        batch.add_column(sa.Column("rendering_exact", sa.Text(), nullable=True))
        batch.add_column(sa.Column("rendering_public", sa.Text(), nullable=True))
        batch.add_column(sa.Column("rendered_as", sa.String(length=120), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("alerts") as batch:
        batch.drop_column("rendered_as")
        batch.drop_column("rendering_public")
        batch.drop_column("rendering_exact")
