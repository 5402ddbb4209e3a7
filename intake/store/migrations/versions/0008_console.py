"""console: the web console's users, audit log and failed sign-ins (intake/web/console);
who dismissed a quarantined item and why (intake/pipeline/quarantine.py); indexes on
source_items.at and outbox.sent_at, which the overview's charts of the last 24 hours count
(without them each load scanned the whole history: bench/console_overview.md)

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("quarantine") as batch:
        batch.add_column(sa.Column("dismissed_by", sa.String(100), nullable=True))
        batch.add_column(sa.Column("dismissed_reason", sa.Text(), nullable=True))
    op.create_table(
        "console_users",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False, unique=True),
        sa.Column("password_hash", sa.String(200), nullable=False),
        sa.Column("roles", sa.String(100), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("session_epoch", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_sign_in_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "console_audit",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("user", sa.String(100), nullable=False),
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column("target", sa.String(300), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("ip", sa.String(64), nullable=False),
    )
    op.create_index("ix_console_audit_at", "console_audit", ["at"])
    op.create_index("ix_console_audit_action", "console_audit", ["action", "at"])
    op.create_table(
        "console_failed_sign_ins",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("ip", sa.String(64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
    )
    op.create_index("ix_console_failed_name_at", "console_failed_sign_ins", ["name", "at"])
    op.create_index("ix_source_items_at", "source_items", ["at"])
    op.create_index("ix_outbox_sent_at", "outbox", ["sent_at"])


def downgrade() -> None:
    op.drop_index("ix_outbox_sent_at", "outbox")
    op.drop_index("ix_source_items_at", "source_items")
    op.drop_table("console_failed_sign_ins")
    op.drop_table("console_audit")
    op.drop_table("console_users")
    with op.batch_alter_table("quarantine") as batch:
        batch.drop_column("dismissed_reason")
        batch.drop_column("dismissed_by")
