"""How long archived cases are kept, legal holds, and the only code path that deletes them.

A case is kept at least MIN_YEARS (2, the seeds' rule) from its close; more if
configured. Fewer only with an explicit override, which is written to the audit log.
Until a case is closed its files have no retention date and cannot be deleted at all.
`purge` removes what expired and is not on hold; `delete_archived` is the guarded
deletion every command must use, and refuses anything else with RetentionError.
Given the storage, dates and holds are passed on to it too (`set_retention`,
`set_legal_hold`), so a backend with its own lock (S3 Object Lock) enforces them as well.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import PurePosixPath

from sqlalchemy import select
from sqlalchemy.orm import Session

from archive.models import ArchiveAudit, ArchiveFile
from archive.storage import Storage

log = logging.getLogger("intake.archive.retention")

MIN_YEARS = 2


class RetentionError(Exception):
    """A deletion or a policy that the retention rules forbid."""


@dataclass(frozen=True)
class RetentionPolicy:
    years: int = MIN_YEARS
    override: bool = False  # allows years < MIN_YEARS; logged by `record_policy`

    def __post_init__(self) -> None:
        if self.years < 0:
            raise RetentionError(f"retention cannot be negative ({self.years} years)")
        if self.years < MIN_YEARS and not self.override:
            raise RetentionError(
                f"retention of {self.years} years is below the required {MIN_YEARS}; "
                "set the explicit override to allow it (it is written to the audit log)"
            )

    def until(self, closed_on: date) -> date:
        """The last day a case closed on `closed_on` must be kept (29 Feb → 28 Feb)."""
        try:
            return closed_on.replace(year=closed_on.year + self.years)
        except ValueError:
            return closed_on.replace(year=closed_on.year + self.years, day=28)


def record_policy(session: Session, policy: RetentionPolicy, *, actor: str) -> None:
    """Write an `override` audit entry when the policy is below the minimum (call at start-up)."""
    if policy.years < MIN_YEARS:
        log.warning("retention override: %d years, below the required %d", policy.years, MIN_YEARS)
        session.add(ArchiveAudit(actor=actor, action="override", detail={"retention_years": policy.years, "minimum": MIN_YEARS}))


def apply_close(session: Session, ticket_ref: str, closed_on: date, policy: RetentionPolicy, storage: Storage | None = None) -> date:
    """Set the retention date of every version of a closed case; only ever moves it later
    (a case reopened and closed again is kept from its last close)."""
    until = policy.until(closed_on)
    for row in session.scalars(select(ArchiveFile).where(ArchiveFile.ticket_ref == ticket_ref, ArchiveFile.purged_at.is_(None))):
        row.closed_on = max(filter(None, (row.closed_on, closed_on)))
        if row.retention_until is None or row.retention_until < until:
            row.retention_until = until
        if storage is not None:
            # the lock only moves later, so setting it before the commit is safe either way
            storage.set_retention(PurePosixPath(row.path), row.retention_until)
    return until


def extend_all(session: Session, policy: RetentionPolicy, *, actor: str, storage: Storage | None = None) -> int:
    """Apply a longer policy to what is already archived (call at start-up after raising
    the configured years). Dates only move later; returns how many files got a later date."""
    changed = 0
    rows = session.scalars(
        select(ArchiveFile).where(ArchiveFile.purged_at.is_(None), ArchiveFile.closed_on.is_not(None), ArchiveFile.retention_until.is_not(None))
    )
    for row in rows:
        assert row.closed_on is not None and row.retention_until is not None, "the query selects only these"
        until = policy.until(row.closed_on)
        if until > row.retention_until:
            row.retention_until = until
            changed += 1
            if storage is not None:
                storage.set_retention(PurePosixPath(row.path), until)
    if changed:
        session.add(ArchiveAudit(actor=actor, action="override", detail={"retention_years": policy.years, "extended_files": changed}))
    return changed


def apply_open(session: Session, ticket_ref: str) -> None:
    """A case (re)opened has no retention date: nothing of it may go while it is open,
    whatever an earlier close allowed. Its next close sets the date again."""
    for row in session.scalars(select(ArchiveFile).where(ArchiveFile.ticket_ref == ticket_ref, ArchiveFile.purged_at.is_(None))):
        row.retention_until = None


def expired(row: ArchiveFile, today: date) -> bool:
    """Past its retention date, not on hold, not already purged."""
    return row.purged_at is None and not row.legal_hold and row.retention_until is not None and row.retention_until < today


def _refusal(row: ArchiveFile, today: date) -> str | None:
    if row.purged_at is not None:
        return f"{row.path} was already purged on {row.purged_at:%Y-%m-%d}"
    if row.legal_hold:
        return f"{row.path} is on legal hold ({row.hold_reason or 'no reason given'})"
    if row.retention_until is None:
        return f"{row.path} belongs to a case not yet closed; it has no retention date and cannot be deleted"
    if row.retention_until >= today:
        return f"{row.path} must be kept until {row.retention_until.isoformat()}"
    return None


def delete_archived(session: Session, storage: Storage, path: str, *, now: datetime, actor: str, reason: str = "retention expired") -> ArchiveFile:
    """Delete one archived file, if and only if retention allows; records the purge.
    RetentionError otherwise. The caller commits."""
    row = session.scalars(select(ArchiveFile).where(ArchiveFile.path == path)).first()
    if row is None:
        raise RetentionError(f"{path} is not an archived file")
    refusal = _refusal(row, now.date())
    if refusal:
        log.warning("deletion refused: %s", refusal)
        raise RetentionError(f"deletion refused: {refusal}")
    # Record first, delete second: a crash in between leaves a file marked purged
    # (verify reports it, the next purge deletes it), never a file gone unrecorded.
    assert row.retention_until is not None, "_refusal refuses a file without a retention date"
    row.purged_at = now
    session.add(
        ArchiveAudit(
            actor=actor,
            action="purge",
            path=row.path,
            ticket_ref=row.ticket_ref,
            at=now,
            detail={"reason": reason, "retention_until": row.retention_until.isoformat(), "sha256": row.sha256},
        )
    )
    session.flush()
    try:
        storage.delete(PurePosixPath(row.path))
    except FileNotFoundError:
        log.warning("purge: %s was already gone", row.path)
    return row


def purge(session: Session, storage: Storage, now: datetime | None = None, *, actor: str = "system") -> list[ArchiveFile]:
    """Delete every file past retention and not on hold; returns their rows. The caller commits."""
    now = now or datetime.now(UTC)
    due = session.scalars(
        select(ArchiveFile)
        .where(
            ArchiveFile.purged_at.is_(None),
            ArchiveFile.legal_hold.is_(False),
            ArchiveFile.retention_until.is_not(None),
            ArchiveFile.retention_until < now.date(),
        )
        .order_by(ArchiveFile.seq)
    ).all()
    return [delete_archived(session, storage, row.path, now=now, actor=actor) for row in due]


def _case_rows(session: Session, ticket_ref: str) -> list[ArchiveFile]:
    rows = session.scalars(select(ArchiveFile).where(ArchiveFile.ticket_ref == ticket_ref).order_by(ArchiveFile.version)).all()
    if not rows:
        raise LookupError(f"no archived files for ticket {ticket_ref}")
    return list(rows)


def _tell_storage(storage: Storage | None, rows: list[ArchiveFile], on: bool) -> None:
    for row in rows:
        if storage is not None and row.purged_at is None:
            storage.set_legal_hold(PurePosixPath(row.path), on)


def hold(session: Session, ticket_ref: str, reason: str, *, actor: str, storage: Storage | None = None) -> list[ArchiveFile]:
    """Put every version of a case on legal hold: nothing of it is deleted until released."""
    if not reason.strip():
        raise ValueError("a legal hold needs a reason")
    rows = _case_rows(session, ticket_ref)
    for row in rows:
        row.legal_hold = True
        row.hold_reason = reason
    _tell_storage(storage, rows, True)
    session.add(ArchiveAudit(actor=actor, action="hold", ticket_ref=ticket_ref, detail={"reason": reason}))
    return rows


def release(session: Session, ticket_ref: str, *, actor: str, storage: Storage | None = None, reason: str | None = None) -> list[ArchiveFile]:
    """Lift a legal hold; retention dates apply again. `reason`, when given, goes into the audit entry."""
    rows = _case_rows(session, ticket_ref)
    was = next((r.hold_reason for r in rows if r.legal_hold), None)
    for row in rows:
        row.legal_hold = False
    _tell_storage(storage, rows, False)
    session.add(ArchiveAudit(actor=actor, action="release", ticket_ref=ticket_ref, detail={"was": was, **({"reason": reason} if reason else {})}))
    return rows
