"""Each original of a case embedded once, in the first archived version that has it.

Every version of a case used to embed every original again: a 5.4 MB mail and a 5.4 MB
follow-up made v1 4.2 MB and v2 8.3 MB, kept for years. Now a version embeds only the
originals no earlier version of the case embeds, and lists the others with their SHA-256
and the version that holds them. Each archive_files row records, in `originals`, every
original of the case and the version that embeds it: what the next version, `export`
(which adds those versions to the zip) and `verify` read.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import PurePosixPath

from sqlalchemy import select
from sqlalchemy.orm import Session

from archive.models import ArchiveFile
from archive.record import CaseRecord


@dataclass(frozen=True)
class EmbeddedCopy:
    version: int
    path: str

    @property
    def label(self) -> str:
        """How the PDF names the file that holds the original."""
        return f"v{self.version} · {PurePosixPath(self.path).name}"


def earlier_copies(session: Session, ticket_ref: str) -> dict[str, EmbeddedCopy]:
    """SHA-256 → the archived version of this case that embeds that original (not purged)."""
    rows = session.scalars(
        select(ArchiveFile).where(ArchiveFile.ticket_ref == ticket_ref, ArchiveFile.purged_at.is_(None)).order_by(ArchiveFile.version)
    ).all()
    paths = {row.version: row.path for row in rows}
    copies: dict[str, EmbeddedCopy] = {}
    for row in rows:
        for entry in row.originals or []:  # NULL: written before 0006, embeds its own
            version = entry.get("version")
            if version in paths and entry.get("sha256") not in copies:
                copies[entry["sha256"]] = EmbeddedCopy(version, paths[version])
    return copies


def labels(copies: dict[str, EmbeddedCopy]) -> dict[str, str]:
    """What `render_case_pdf(earlier=...)` takes: SHA-256 → the file that embeds it."""
    return {digest: copy.label for digest, copy in copies.items()}


def entries(record: CaseRecord, version: int, copies: dict[str, EmbeddedCopy]) -> list[dict]:
    """The `originals` of the row of `version`: every original of the case and where it is embedded."""
    out = []
    for o in record.raw_originals:
        digest = hashlib.sha256(o.data).hexdigest()
        copy = copies.get(digest)
        out.append({"name": o.filename, "sha256": digest, "size": len(o.data), "version": copy.version if copy is not None else version})
    return out


def embedding_rows(session: Session, rows: list[ArchiveFile]) -> list[ArchiveFile]:
    """`rows` plus the versions that embed the originals they only refer to (an export of
    final versions alone would otherwise lack the originals embedded in earlier ones)."""
    have = {(r.ticket_ref, r.version) for r in rows}
    wanted = {(r.ticket_ref, e["version"]) for r in rows for e in (r.originals or [])} - have
    extra = []
    for ticket_ref, version in sorted(wanted):
        row = session.scalars(
            select(ArchiveFile).where(ArchiveFile.ticket_ref == ticket_ref, ArchiveFile.version == version, ArchiveFile.purged_at.is_(None))
        ).first()
        if row is not None:
            extra.append(row)
    return rows + extra
