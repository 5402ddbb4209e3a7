"""source_alerts: which sources the operators were told are failing ([alerts], intake/ops/alerts.py)

One row per source: since when it fails (NULL: healthy) and whether the "failing" mail
went out, so each change is mailed once, across restarts and across daemons sharing
the database.

Revision ID: 0007a
Revises: 0006

(Written beside 0007, corrections, at the same time; 0007 now follows it: 0006 -> 0007a -> 0007.)
"""

import sqlalchemy as sa
from alembic import op

revision = "0007a"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "source_alerts",
        sa.Column("source", sa.String(length=200), primary_key=True),
        sa.Column("failing_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("down", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("source_alerts")
