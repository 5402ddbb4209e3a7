"""Put one rendered case into the archive: the file, its row in the hash chain, the audit entry.

The file is written first (atomically), then the row and audit entry in the caller's
transaction: a crash in between leaves an unreferenced file that the retried job
overwrites with the same name, never a row pointing at nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import PurePosixPath

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from archive.integrity import link, sha256
from archive.models import ArchiveAudit, ArchiveFile
from archive.naming import archive_path
from archive.record import CaseRecord, searchable_text
from archive.retention import RetentionPolicy, apply_close, apply_open
from archive.storage import Storage
from intake.vocabulary import label


def next_version(session: Session, ticket_ref: str) -> int:
    current = session.scalar(select(func.max(ArchiveFile.version)).where(ArchiveFile.ticket_ref == ticket_ref))
    return (current or 0) + 1


def is_final(record: CaseRecord) -> bool:
    """The version written at close is the final one (a reopened case gets a later final)."""
    return record.status == "closed"


def store_file(storage: Storage, record: CaseRecord, pdf: bytes, *, version: int, lang: str, policy: RetentionPolicy | None = None) -> PurePosixPath:
    """Write the PDF; given the policy, a closed case's file is locked from the start
    (on storage that can lock) until its retention date."""
    path = archive_path(record.customer_label, record.date_opened, label("type", record.type, lang), record.ticket_ref, version, is_final(record))
    retain_until = policy.until(record.closed_on) if policy is not None and record.closed_on else None
    storage.put(path, pdf, retain_until=retain_until)
    return path


def record_file(
    session: Session,
    record: CaseRecord,
    pdf: bytes,
    path: PurePosixPath,
    *,
    version: int,
    policy: RetentionPolicy,
    ticket_id: int | None = None,
    actor: str = "archiver",
    now: datetime | None = None,
    storage: Storage | None = None,
    rendition: str = "full",
    rendition_note: str | None = None,
    originals: list[dict] | None = None,
) -> ArchiveFile:
    """The archive_files row (linked into the chain) and the `written` audit entry; the caller commits.
    Given the storage, it is told the hold and retention dates too (S3 Object Lock).
    `rendition`/`rendition_note`: full or plain, and why; `originals`: archive.originals.entries."""
    now = now or datetime.now(UTC)
    # a legal hold is on the case: a version written while it holds is held too
    held = session.scalars(select(ArchiveFile).where(ArchiveFile.ticket_ref == record.ticket_ref, ArchiveFile.legal_hold.is_(True)).limit(1)).first()
    row = ArchiveFile(
        ticket_ref=record.ticket_ref,
        ticket_id=ticket_id,
        version=version,
        final=is_final(record),
        path=str(path),
        sha256=sha256(pdf),
        size=len(pdf),
        created_at=now,
        customer=record.customer_label,
        case_date=record.date_opened,
        type=record.type,
        text=searchable_text(record),
        legal_hold=held is not None,
        hold_reason=held.hold_reason if held is not None else None,
        rendition=rendition,
        rendition_note=rendition_note,
        originals=originals,
    )
    link(session, row)
    session.add(row)
    session.flush()
    if storage is not None and row.legal_hold:
        storage.set_legal_hold(path, True)
    if record.closed_on is not None:
        apply_close(session, record.ticket_ref, record.closed_on, policy, storage)
    else:
        apply_open(session, record.ticket_ref)
    session.add(
        ArchiveAudit(
            actor=actor,
            action="written",
            path=str(path),
            ticket_ref=record.ticket_ref,
            at=now,
            detail={
                "version": version,
                "final": row.final,
                "sha256": row.sha256,
                "size": row.size,
                "seq": row.seq,
                "rendition": rendition,
                **({"rendition_note": rendition_note} if rendition_note else {}),
            },
        )
    )
    return row


def archive_now(
    session: Session,
    storage: Storage,
    record: CaseRecord,
    *,
    lang: str = "zh",
    policy: RetentionPolicy = RetentionPolicy(),
    ticket_id: int | None = None,
    actor: str = "archiver",
    now: datetime | None = None,
) -> ArchiveFile:
    """Render (the plain rendition if the full one fails), store and record one case in the
    caller's transaction, in this process (tools and tests; the daemon goes through ArchiveWorker)."""
    from archive import originals
    from archive.safe_render import render_with_fallback

    version = next_version(session, record.ticket_ref)
    copies = originals.earlier_copies(session, record.ticket_ref)
    rendered = render_with_fallback(record, lang=lang, version=version, final=is_final(record), earlier=originals.labels(copies))
    path = store_file(storage, record, rendered.pdf, version=version, lang=lang, policy=policy)
    return record_file(
        session,
        record,
        rendered.pdf,
        path,
        version=version,
        policy=policy,
        ticket_id=ticket_id,
        actor=actor,
        now=now,
        storage=storage,
        rendition=rendered.rendition,
        rendition_note=rendered.note,
        originals=originals.entries(record, version, copies),
    )
