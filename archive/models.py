"""The archive's tables: archived files (with their hash chain), the audit log, the job queue.

Created by the Alembic revisions intake/store/migrations/versions/0002_archive.py and 0006_archive_renditions.py.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import JSON, Boolean, Date, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from intake.store.db import Base
from intake.store.models import UTCDateTime

JOB_REASONS = ("opened", "changed", "closed")
JOB_STATUSES = ("pending", "running", "done", "failed")
AUDIT_ACTIONS = ("written", "purge", "hold", "release", "override", "verify", "failed")


def utcnow() -> datetime:
    return datetime.now(UTC)


class ArchiveFile(Base):
    """One stored version of a case PDF. Rows are never deleted: a purge sets purged_at."""

    __tablename__ = "archive_files"
    __table_args__ = (
        UniqueConstraint("ticket_ref", "version"),
        Index("ix_archive_files_search", "case_date", "type"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # position in the hash chain; unique, so two writers racing for the same place
    # cannot both commit (the loser retries on top of the winner)
    seq: Mapped[int] = mapped_column(Integer, unique=True)
    ticket_ref: Mapped[str] = mapped_column(String(32), index=True)
    ticket_id: Mapped[int | None] = mapped_column(Integer, index=True)
    version: Mapped[int] = mapped_column(Integer)
    final: Mapped[bool] = mapped_column(Boolean, default=False)
    path: Mapped[str] = mapped_column(String(600), unique=True)
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    closed_on: Mapped[date | None] = mapped_column(Date)
    # NULL while the case is open: nothing of an open case may be purged
    retention_until: Mapped[date | None] = mapped_column(Date, index=True)
    legal_hold: Mapped[bool] = mapped_column(Boolean, default=False)
    hold_reason: Mapped[str | None] = mapped_column(Text)
    purged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    customer: Mapped[str] = mapped_column(String(300), index=True)
    case_date: Mapped[date] = mapped_column(Date)
    type: Mapped[str] = mapped_column(String(20))
    text: Mapped[str] = mapped_column(Text, default="")  # the case's words, for search
    prev_hash: Mapped[str] = mapped_column(String(64))
    chain_hash: Mapped[str] = mapped_column(String(64))
    # "full", or "plain" when the full layout could not be rendered; rendition_note says why
    rendition: Mapped[str] = mapped_column(String(10), default="full", server_default="full")
    rendition_note: Mapped[str | None] = mapped_column(Text)
    # every original of the case: {"name", "sha256", "size", "version"}, version being the one
    # that embeds it (each is embedded once); NULL before 0006: the file embeds all of its own
    originals: Mapped[list | None] = mapped_column(JSON)


class ArchiveAudit(Base):
    """Who did what to the archive, when: every write, purge, hold, release, override, verify."""

    __tablename__ = "archive_audit"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(320))
    action: Mapped[str] = mapped_column(String(20), index=True)
    path: Mapped[str | None] = mapped_column(String(600))
    ticket_ref: Mapped[str | None] = mapped_column(String(32), index=True)
    detail: Mapped[dict] = mapped_column(JSON, default=dict)


class ArchiveJob(Base):
    """A case to (re)archive, written by the pipeline in the ticket's own transaction."""

    __tablename__ = "archive_jobs"
    __table_args__ = (Index("ix_archive_jobs_due", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(Integer, index=True)
    reason: Mapped[str] = mapped_column(String(10))  # opened, changed, closed
    status: Mapped[str] = mapped_column(String(10), default="pending")  # pending, running, done, failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # when pending: not before; when running: the claim expires then (a crashed worker's job is taken again)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    archive_file_id: Mapped[int | None] = mapped_column(Integer)  # what it wrote
