"""staff mail: SLA state, follow-ups, surveys

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sla_state",
        sa.Column("ticket_id", sa.Integer(), sa.ForeignKey("tickets.id"), primary_key=True),
        sa.Column("reminder_sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("escalated_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "follow_ups",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("ticket_id", sa.Integer(), sa.ForeignKey("tickets.id"), nullable=False),
        sa.Column("due_on", sa.Date(), nullable=False),
        sa.Column("what", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reminded_at", sa.DateTime(timezone=True), nullable=True),
    )
    with op.batch_alter_table("follow_ups") as batch:
        batch.create_index("ix_follow_ups_ticket_id", ["ticket_id"])
        batch.create_index("ix_follow_ups_due_on", ["due_on"])
    op.create_table(
        "surveys",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("ticket_id", sa.Integer(), sa.ForeignKey("tickets.id"), nullable=False),
        sa.Column("message_id", sa.String(998), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("score", sa.Integer(), nullable=True),
        sa.Column("answer", sa.Text(), nullable=False),
        sa.Column("via", sa.String(10), nullable=False),
        sa.Column("outcome", sa.String(20), nullable=False),
    )
    with op.batch_alter_table("surveys") as batch:
        batch.create_index("ix_surveys_ticket_id", ["ticket_id"])
        batch.create_index("ix_surveys_expires_at", ["expires_at"])
        batch.create_index("ix_surveys_outcome", ["outcome"])


def downgrade() -> None:
    op.drop_table("surveys")
    op.drop_table("follow_ups")
    op.drop_table("sla_state")
