"""corrections: staff #type / #urgency changes kept as labelled examples

Each row holds the case's text as the rules read it, the rules' decision (type, urgency and
their matches), the staff member's label, who and when: what `intake rules suggest` learns
from and what the weekly report counts.

Revision ID: 0007
Revises: 0007a (source_alerts, written at the same time: one line of revisions rather than two heads)
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0007a"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "corrections",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("ticket_id", sa.Integer(), sa.ForeignKey("tickets.id"), nullable=False),
        sa.Column("axis", sa.String(10), nullable=False),
        sa.Column("old_value", sa.String(20), nullable=False),
        sa.Column("new_value", sa.String(20), nullable=False),
        sa.Column("rule_type", sa.String(20), nullable=False),
        sa.Column("rule_urgency", sa.String(20), nullable=False),
        sa.Column("matches", sa.JSON(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("language", sa.String(5), nullable=False),
        sa.Column("actor", sa.String(320), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    with op.batch_alter_table("corrections") as batch:
        batch.create_index("ix_corrections_ticket_id", ["ticket_id"])
        batch.create_index("ix_corrections_at", ["at"])


def downgrade() -> None:
    op.drop_table("corrections")
