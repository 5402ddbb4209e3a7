"""An (assignee, status) index: open tickets per person, counted for every new case.

Revision ID: 0004
Revises: 0003
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_tickets_assignee_status", "tickets", ["assignee", "status"])


def downgrade() -> None:
    op.drop_index("ix_tickets_assignee_status", table_name="tickets")
