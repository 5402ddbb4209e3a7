"""outbox_claims: which mailer holds a claimed outbox row (intake/outgoing/mailer.py)

A claimed row names its mailer's owner number until it is marked sent or failed; a
claim whose owner is dead (PostgreSQL: its advisory lock is gone; SQLite: any claim
found when the one daemon starts) is taken over at once instead of after its lease.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("claimed_by", sa.BigInteger(), nullable=True))
        batch.create_index("ix_outbox_claimed_by", ["claimed_by"])


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.drop_index("ix_outbox_claimed_by")
        batch.drop_column("claimed_by")
