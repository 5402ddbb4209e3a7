"""The console's compliance pages: archive search, a version's PDF, zip export, legal holds, the audit log.

Everything here goes through the archive's own code, as `intake archive ...` does
(intake/cli/archive.py): archive.search.search and Query for the search,
archive.originals.embedding_rows + archive.search.export_zip for the zip (the same zip
the CLI writes), archive.retention.hold/release for legal holds (they write the
archive's own audit rows). This module adds what a page needs on top: the form's
filters and their errors, results grouped by case with each file's verify status,
paging, and the console's audit row for every download, export, hold and release.

The logic (functions on a session and a storage) is apart from the Starlette handlers at
the end, so it is tested on a real archive without a browser.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import PurePosixPath
from typing import BinaryIO

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from archive.integrity import sha256
from archive.models import ArchiveAudit, ArchiveFile
from archive.originals import embedding_rows
from archive.search import ExportResult, Query, export_zip, search, type_code
from archive.storage import Storage

TYPES = ("inquiry", "complaint", "fault", "request", "suggestion")
CASES_PER_PAGE = 20
AUDIT_PER_PAGE = 50
DEFAULT_DAYS = 30  # a search with no filter at all shows the last month, not the whole archive
# the archive's audit actions a compliance officer reads ("written" is one per file: the search shows those)
AUDIT_SHOWN = ("purge", "hold", "release", "override", "verify")
MAX_REASON = 2000
MAX_FIELD = 300


# -- the search form -----------------------------------------------------------------


@dataclass(frozen=True)
class Filters:
    """The search form as given (strings kept for refilling the form) and parsed."""

    customer: str = ""  # a name, customer number or email: matched in the case's text
    company: str = ""  # the name the archive files the case under (the company, else the person)
    since: date | None = None
    until: date | None = None
    type: str = ""  # a code: complaint, ...
    ticket: str = ""
    page: int = 1

    def query(self) -> Query:
        """The archive's own Query (what `intake archive search` builds from its options)."""
        return Query(
            customer=self.company or None,
            since=self.since,
            until=self.until,
            type=self.type or None,
            ticket=self.ticket or None,
            words=[self.customer] if self.customer else [],
        )

    def params(self, **changes) -> dict[str, str]:
        """The filters as query parameters (links to other pages, the export form)."""
        values = {
            "customer": self.customer,
            "company": self.company,
            "since": self.since.isoformat() if self.since else "",
            "until": self.until.isoformat() if self.until else "",
            "type": self.type,
            "ticket": self.ticket,
            "page": str(self.page),
        }
        values.update({k: str(v) for k, v in changes.items()})
        return {k: v for k, v in values.items() if v and not (k == "page" and v == "1")}


def _text(params: Mapping[str, str], name: str) -> str:
    return " ".join(str(params.get(name) or "").split())[:MAX_FIELD]


def parse_filters(params: Mapping[str, str], today: date) -> tuple[Filters, dict[str, str]]:
    """The filters of a search request, and errors by field (codes: `date`, `range`, `type`).
    A field in error is left out of the search; nothing given at all means the last DEFAULT_DAYS days."""
    errors: dict[str, str] = {}
    dates: dict[str, date | None] = {}
    for name in ("since", "until"):
        raw = _text(params, name)
        dates[name] = None
        if raw:
            try:
                dates[name] = date.fromisoformat(raw)
            except ValueError:
                errors[name] = "date"
    since, until = dates["since"], dates["until"]
    if since and until and since > until:
        errors["until"] = "range"
        until = None
    kind = _text(params, "type")
    if kind:
        kind = type_code(kind)
        if kind not in TYPES:
            errors["type"] = "type"
            kind = ""
    try:
        page = max(1, int(_text(params, "page") or "1"))
    except ValueError:
        page = 1
    filters = Filters(
        customer=_text(params, "customer"),
        company=_text(params, "company"),
        since=since,
        until=until,
        type=kind,
        ticket=_text(params, "ticket"),
        page=page,
    )
    nothing_given = not any(_text(params, k) for k in ("customer", "company", "since", "until", "type", "ticket"))
    if nothing_given:
        filters = Filters(since=today - timedelta(days=DEFAULT_DAYS), page=page)
    return filters, errors


# -- results ---------------------------------------------------------------------------


@dataclass
class FileView:
    id: int
    path: str
    name: str
    version: int
    final: bool
    sha256: str
    size: int
    created_at: datetime
    retention_until: date | None
    legal_hold: bool
    rendition: str
    status: str  # ok, changed, missing: the stored bytes against the recorded SHA-256, checked now


@dataclass
class CaseView:
    ticket_ref: str
    customer: str
    case_date: date
    type: str
    files: list[FileView] = field(default_factory=list)
    legal_hold: bool = False
    hold_reason: str | None = None

    @property
    def retention_until(self) -> date | None:
        """The case's retention date: None while any version belongs to an open case."""
        dates = [f.retention_until for f in self.files]
        return None if not dates or None in dates else max(d for d in dates if d is not None)

    @property
    def problems(self) -> int:
        return sum(1 for f in self.files if f.status != "ok")


@dataclass
class Results:
    cases: list[CaseView]
    total_cases: int
    total_files: int
    page: int
    pages: int
    last_verify: ArchiveAudit | None


def file_status(storage: Storage, row: ArchiveFile) -> str:
    """This one file against its recorded hash (what `intake archive verify` checks for every file)."""
    try:
        data = storage.get(PurePosixPath(row.path))
    except FileNotFoundError:
        return "missing"
    return "ok" if sha256(data) == row.sha256 else "changed"


def _file_view(row: ArchiveFile, status: str) -> FileView:
    return FileView(
        id=row.id,
        path=row.path,
        name=PurePosixPath(row.path).name,
        version=row.version,
        final=row.final,
        sha256=row.sha256,
        size=row.size,
        created_at=row.created_at,
        retention_until=row.retention_until,
        legal_hold=row.legal_hold,
        rendition=row.rendition,
        status=status,
    )


def group_cases(rows: list[ArchiveFile]) -> list[list[ArchiveFile]]:
    """The search's rows (newest case first, versions in order) as one list per case."""
    groups: dict[str, list[ArchiveFile]] = {}
    for row in rows:
        groups.setdefault(row.ticket_ref, []).append(row)
    return list(groups.values())


def last_verify(session: Session) -> ArchiveAudit | None:
    """The latest whole-archive verification (`intake archive verify` or the daemon's)."""
    return session.scalars(
        select(ArchiveAudit).where(ArchiveAudit.action == "verify").order_by(ArchiveAudit.at.desc(), ArchiveAudit.id.desc()).limit(1)
    ).first()


def search_cases(session: Session, storage: Storage, filters: Filters, per_page: int = CASES_PER_PAGE) -> Results:
    """One page of matching cases, each with every version and each file's status checked now."""
    groups = group_cases(search(session, filters.query()))
    pages = max(1, -(-len(groups) // per_page))
    page = min(filters.page, pages)
    cases = []
    for rows in groups[(page - 1) * per_page : page * per_page]:
        first = rows[0]
        case = CaseView(ticket_ref=first.ticket_ref, customer=first.customer, case_date=first.case_date, type=first.type)
        case.files = [_file_view(r, file_status(storage, r)) for r in rows]
        held = next((r for r in rows if r.legal_hold), None)
        case.legal_hold, case.hold_reason = held is not None, held.hold_reason if held is not None else None
        cases.append(case)
    return Results(cases, len(groups), sum(len(g) for g in groups), page, pages, last_verify(session))


# -- a version's PDF -------------------------------------------------------------------


class NotServed(Exception):
    """A file the console will not hand out; `code` says why (unknown, purged, missing, changed)."""

    def __init__(self, code: str, row: ArchiveFile | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.row = row


def fetch_version(session: Session, storage: Storage, file_id: int) -> tuple[ArchiveFile, bytes]:
    """The row and the bytes of one archived version, only if they still match the recorded
    SHA-256 (as an export leaves out a changed file: a copy handed out must be the original)."""
    row = session.get(ArchiveFile, file_id)
    if row is None:
        raise NotServed("unknown")
    if row.purged_at is not None:
        raise NotServed("purged", row)
    try:
        data = storage.get(PurePosixPath(row.path))
    except FileNotFoundError:
        raise NotServed("missing", row) from None
    if sha256(data) != row.sha256:
        raise NotServed("changed", row)
    return row, data


# -- export ----------------------------------------------------------------------------


def selected_rows(session: Session, filters: Filters, file_ids: list[int]) -> list[ArchiveFile]:
    """The files ticked (never a purged one), else every file the filters find."""
    if file_ids:
        return list(
            session.scalars(select(ArchiveFile).where(ArchiveFile.id.in_(file_ids), ArchiveFile.purged_at.is_(None)).order_by(ArchiveFile.seq))
        )
    return search(session, filters.query())


def export_selection(session: Session, storage: Storage, rows: list[ArchiveFile], target: BinaryIO) -> ExportResult:
    """The zip `intake archive export` writes: the files, the versions embedding the originals
    they refer to, and manifest.json (archive.originals.embedding_rows, archive.search.export_zip)."""
    return export_zip(embedding_rows(session, rows), storage, target)


# -- legal holds -------------------------------------------------------------------------


def clean_reason(text: str) -> str:
    """A hold's or release's reason, mandatory: ValueError if blank."""
    reason = " ".join(str(text or "").split())
    if not reason:
        raise ValueError("reason")
    return reason[:MAX_REASON]


def case_exists(session: Session, ticket_ref: str) -> bool:
    return bool(session.scalar(select(func.count()).select_from(ArchiveFile).where(ArchiveFile.ticket_ref == ticket_ref)))


# -- the archive's audit log -------------------------------------------------------------


@dataclass
class AuditPage:
    rows: list[ArchiveAudit]
    page: int
    pages: int
    total: int


def audit_log(session: Session, *, action: str = "", ticket: str = "", page: int = 1, per_page: int = AUDIT_PER_PAGE) -> AuditPage:
    """Purges, holds, releases, retention overrides and verifications, newest first."""
    actions = (action,) if action in AUDIT_SHOWN else AUDIT_SHOWN
    where = [ArchiveAudit.action.in_(actions)]
    if ticket:
        where.append(ArchiveAudit.ticket_ref == ticket)
    total = session.scalar(select(func.count()).select_from(ArchiveAudit).where(*where)) or 0
    pages = max(1, -(-total // per_page))
    page = min(max(1, page), pages)
    rows = session.scalars(
        select(ArchiveAudit).where(*where).order_by(ArchiveAudit.at.desc(), ArchiveAudit.id.desc()).offset((page - 1) * per_page).limit(per_page)
    )
    return AuditPage(list(rows), page, pages, total)
