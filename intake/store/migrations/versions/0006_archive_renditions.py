"""archive_files: which rendition a version is and why, and where each original of the case is embedded

`rendition` is "full", or "plain" when the full layout could not be rendered (a case is
never left unarchived); `rendition_note` says why. `originals` lists every original of
the case (name, SHA-256, size) with the version that embeds it: each is embedded once,
in the first version that has it, so a thread's archive grows with the thread, not with
its square. NULL for versions written before: they embed every original themselves.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("archive_files") as batch:
        batch.add_column(sa.Column("rendition", sa.String(length=10), nullable=False, server_default="full"))
        batch.add_column(sa.Column("rendition_note", sa.Text(), nullable=True))
        batch.add_column(sa.Column("originals", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("archive_files") as batch:
        batch.drop_column("originals")
        batch.drop_column("rendition_note")
        batch.drop_column("rendition")
