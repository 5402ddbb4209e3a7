"""Find archived cases and export them to a zip with a manifest, file by file.

Filters: customer (substring, any case), date range of the case, type (code such as
`complaint` or its label 投诉), ticket ref, and words that must all occur in the case's
text. The export streams one file at a time into the zip (memory stays at one PDF),
checks each file's SHA-256 on the way, and reports progress through a callback.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from archive.integrity import sha256
from archive.models import ArchiveFile
from archive.storage import Storage
from intake.vocabulary import LABELS


@dataclass(frozen=True)
class Query:
    customer: str | None = None
    since: date | None = None
    until: date | None = None
    type: str | None = None
    ticket: str | None = None
    words: list[str] = field(default_factory=list)
    include_purged: bool = False
    final_only: bool = False


def type_code(value: str) -> str:
    """`complaint`, `投诉` or `Complaint` → `complaint`; unknown values are kept as given."""
    v = value.strip().lower()
    for lang_labels in LABELS["type"].values():
        for code, shown in lang_labels.items():
            if v in (code, shown.lower()):
                return code
    return v


def search(session: Session, query: Query) -> list[ArchiveFile]:
    """Archived files matching every given filter, newest case first."""
    stmt = select(ArchiveFile)
    if query.customer:
        stmt = stmt.where(ArchiveFile.customer.icontains(query.customer, autoescape=True))
    if query.since:
        stmt = stmt.where(ArchiveFile.case_date >= query.since)
    if query.until:
        stmt = stmt.where(ArchiveFile.case_date <= query.until)
    if query.type:
        stmt = stmt.where(ArchiveFile.type == type_code(query.type))
    if query.ticket:
        stmt = stmt.where(ArchiveFile.ticket_ref == query.ticket.strip())
    for word in query.words:
        if word.strip():
            stmt = stmt.where(ArchiveFile.text.icontains(word.strip(), autoescape=True))
    if not query.include_purged:
        stmt = stmt.where(ArchiveFile.purged_at.is_(None))
    if query.final_only:
        stmt = stmt.where(ArchiveFile.final.is_(True))
    stmt = stmt.order_by(ArchiveFile.case_date.desc(), ArchiveFile.ticket_ref, ArchiveFile.version)
    return list(session.scalars(stmt))


def describe(row: ArchiveFile) -> dict:
    """One archived file as plain data: what search prints and the export manifest lists."""
    return {
        "path": row.path,
        "sha256": row.sha256,
        "size": row.size,
        "ticket_ref": row.ticket_ref,
        "version": row.version,
        "final": row.final,
        "customer": row.customer,
        "case_date": row.case_date.isoformat(),
        "type": row.type,
        "retention_until": row.retention_until.isoformat() if row.retention_until else None,
        "legal_hold": row.legal_hold,
        "rendition": row.rendition,
        # every original of the case and the version embedding it (NULL: this file embeds its own)
        "originals": row.originals,
    }


@dataclass
class ExportResult:
    files: int = 0
    bytes: int = 0
    problems: list[str] = field(default_factory=list)  # files missing or not matching their hash


Progress = Callable[[int, int, str], None]  # (done, total, path)


def export_zip(rows: list[ArchiveFile], storage: Storage, target: Path | BinaryIO, progress: Progress | None = None) -> ExportResult:
    """Write the files of `rows` and a manifest.json (path, sha256, retention date per file) to a zip.

    A file that is missing or whose SHA-256 no longer matches is left out and listed in
    the manifest's `problems` (and in the result), never exported silently."""
    result = ExportResult()
    entries = []
    total = len(rows)
    # PDFs are compressed already: store them, which keeps the export fast
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_STORED) as zf:
        for done, row in enumerate(rows, start=1):
            try:
                data = storage.get(PurePosixPath(row.path))
            except FileNotFoundError:
                result.problems.append(f"{row.path}: missing")
                data = None
            if data is not None and sha256(data) != row.sha256:
                result.problems.append(f"{row.path}: SHA-256 does not match the archive record")
                data = None
            if data is not None:
                with zf.open(row.path, "w") as out:
                    out.write(data)
                entries.append(describe(row))
                result.files += 1
                result.bytes += len(data)
            del data
            if progress:
                progress(done, total, row.path)
        manifest = {
            "exported_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "files": entries,
            "problems": result.problems,
        }
        zf.writestr("manifest.json", json.dumps(manifest, ensure_ascii=False, indent=1))
    return result
