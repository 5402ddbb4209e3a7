"""archive: archived case files (hash chain), audit log, archive jobs

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "archive_files",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("ticket_ref", sa.String(length=32), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("final", sa.Boolean(), nullable=False),
        sa.Column("path", sa.String(length=600), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_on", sa.Date(), nullable=True),
        sa.Column("retention_until", sa.Date(), nullable=True),
        sa.Column("legal_hold", sa.Boolean(), nullable=False),
        sa.Column("hold_reason", sa.Text(), nullable=True),
        sa.Column("purged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("customer", sa.String(length=300), nullable=False),
        sa.Column("case_date", sa.Date(), nullable=False),
        sa.Column("type", sa.String(length=20), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("chain_hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("seq"),
        sa.UniqueConstraint("path"),
        sa.UniqueConstraint("ticket_ref", "version"),
    )
    with op.batch_alter_table("archive_files", schema=None) as batch_op:
        batch_op.create_index("ix_archive_files_ticket_ref", ["ticket_ref"], unique=False)
        batch_op.create_index("ix_archive_files_ticket_id", ["ticket_id"], unique=False)
        batch_op.create_index("ix_archive_files_retention_until", ["retention_until"], unique=False)
        batch_op.create_index("ix_archive_files_customer", ["customer"], unique=False)
        batch_op.create_index("ix_archive_files_search", ["case_date", "type"], unique=False)

    op.create_table(
        "archive_audit",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=320), nullable=False),
        sa.Column("action", sa.String(length=20), nullable=False),
        sa.Column("path", sa.String(length=600), nullable=True),
        sa.Column("ticket_ref", sa.String(length=32), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("archive_audit", schema=None) as batch_op:
        batch_op.create_index("ix_archive_audit_at", ["at"], unique=False)
        batch_op.create_index("ix_archive_audit_action", ["action"], unique=False)
        batch_op.create_index("ix_archive_audit_ticket_ref", ["ticket_ref"], unique=False)

    op.create_table(
        "archive_jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=10), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("archive_file_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("archive_jobs", schema=None) as batch_op:
        batch_op.create_index("ix_archive_jobs_ticket_id", ["ticket_id"], unique=False)
        batch_op.create_index("ix_archive_jobs_due", ["status", "next_attempt_at"], unique=False)


def downgrade() -> None:
    op.drop_table("archive_jobs")
    op.drop_table("archive_audit")
    op.drop_table("archive_files")
