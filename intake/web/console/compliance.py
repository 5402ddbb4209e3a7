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

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import PurePosixPath
from typing import Any, BinaryIO
from urllib.parse import quote, urlencode

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement
from starlette.background import BackgroundTask
from starlette.responses import FileResponse, Response

from archive.integrity import sha256
from archive.models import ArchiveAudit, ArchiveFile
from archive.originals import embedding_rows
from archive.retention import hold, release
from archive.search import ExportResult, Query, export_zip, search, type_code
from archive.storage import Storage, open_storage
from intake.store.db import transaction
from intake.vocabulary import label as archive_label
from intake.web.console import audit, routes
from intake.web.console.routes import COMPLIANCE, View
from intake.web.console.texts import add_texts

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


def _text(params: Mapping[str, Any], name: str) -> str:
    return " ".join(str(params.get(name) or "").split())[:MAX_FIELD]


def parse_filters(params: Mapping[str, Any], today: date) -> tuple[Filters, dict[str, str]]:
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
    where: list[ColumnElement[bool]] = [ArchiveAudit.action.in_(actions)]
    if ticket:
        where.append(ArchiveAudit.ticket_ref == ticket)
    total = session.scalar(select(func.count()).select_from(ArchiveAudit).where(*where)) or 0
    pages = max(1, -(-total // per_page))
    page = min(max(1, page), pages)
    rows = session.scalars(
        select(ArchiveAudit).where(*where).order_by(ArchiveAudit.at.desc(), ArchiveAudit.id.desc()).offset((page - 1) * per_page).limit(per_page)
    )
    return AuditPage(list(rows), page, pages, total)


# == the pages ===========================================================================
# Handlers run in a worker thread (routes.ConsoleApp.guarded) once the guard has checked the
# session, the role (compliance only: an operator gets 403) and, for a POST, the CSRF token.

add_texts(
    zh={
        "nav_archive": "归档检索",
        "nav_archive_audit": "归档审计",
        "ar_archive_title": "合规归档检索",
        "ar_archive_intro": "按客户、公司、日期、类型或工单号查找归档的案件 PDF。每个文件的 SHA-256 在打开本页时重新核对。",
        "ar_f_customer": "客户（姓名、编号或邮箱）",
        "ar_f_company": "公司（归档名称）",
        "ar_f_since": "案件日期自",
        "ar_f_until": "案件日期至",
        "ar_f_type": "类型",
        "ar_f_type_any": "全部类型",
        "ar_f_ticket": "工单号",
        "ar_search": "检索",
        "ar_err_date": "请输入日期，如 2026-11-23。",
        "ar_err_range": "结束日期早于开始日期。",
        "ar_err_type": "没有这个类型。",
        "ar_default_range": "未填写条件：显示最近 {days} 天的案件。",
        "ar_found": "找到 {cases} 个案件，{files} 个文件。",
        "ar_nothing_found": "没有符合条件的归档文件。",
        "ar_page_of": "第 {page} / {pages} 页",
        "ar_prev": "上一页",
        "ar_next": "下一页",
        "ar_case": "案件",
        "ar_customer": "客户",
        "ar_case_date": "日期",
        "ar_type": "类型",
        "ar_version": "版本",
        "ar_final": "最终版",
        "ar_sha256": "SHA-256",
        "ar_size": "大小",
        "ar_archived_at": "归档时间",
        "ar_retention": "保留至",
        "ar_retention_open": "案件未结，不可删除",
        "ar_hold": "法律保全",
        "ar_on_hold": "保全中",
        "ar_not_on_hold": "未保全",
        "ar_verify": "校验",
        "ar_status_ok": "一致",
        "ar_status_changed": "已被改动",
        "ar_status_missing": "文件缺失",
        "ar_download": "下载 PDF",
        "ar_download_label": "下载 {name}",
        "ar_select": "选择",
        "ar_select_label": "选择 {name} 导出",
        "ar_export_selected": "导出所选文件（zip）",
        "ar_export_all": "导出全部检索结果（zip）",
        "ar_export_hint": "zip 与命令行 intake archive export 相同：文件、其引用的原件所在版本、manifest.json。",
        "ar_export_nothing": "没有可导出的文件。",
        "ar_hold_set": "设置法律保全",
        "ar_hold_release": "解除法律保全",
        "ar_reason_hold": "保全理由（必填）",
        "ar_reason_release": "解除理由（必填）",
        "ar_export": "导出",
        "ar_err_reason": "请填写理由。",
        "ar_held_done": "已对 {ref} 设置法律保全（{files} 个文件）。",
        "ar_released_done": "已解除 {ref} 的法律保全（{files} 个文件）。",
        "ar_not_held": "{ref} 未处于法律保全。",
        "ar_no_case": "没有工单 {ref} 的归档文件。",
        "ar_last_verify": "上次全库校验：{at}，{who}，{files} 个文件，{problems} 个问题。",
        "ar_never_verified": "尚未进行全库校验（intake archive verify）。",
        "ar_refused_unknown": "没有这个归档文件。",
        "ar_refused_purged": "该文件已按保留期限删除。",
        "ar_refused_missing": "该文件在存储中缺失，未提供下载。请运行 intake archive verify。",
        "ar_refused_changed": "该文件与归档时记录的 SHA-256 不符，未提供下载。请运行 intake archive verify。",
        "ar_audit_title": "归档审计日志",
        "ar_audit_intro": "删除、法律保全、解除保全、保留期例外与全库校验，最新的在前。",
        "ar_a_action": "操作",
        "ar_a_any": "全部",
        "ar_a_purge": "删除",
        "ar_a_hold": "保全",
        "ar_a_release": "解除保全",
        "ar_a_override": "保留期例外",
        "ar_a_verify": "校验",
        "ar_at": "时间",
        "ar_actor": "操作人",
        "ar_path": "文件",
        "ar_detail": "详情",
        "ar_filter": "筛选",
        "ar_console_archive_audit": "控制台的下载、导出与保全记录",
        "ar_no_entries": "没有记录。",
        "ar_user": "用户",
        "ar_target": "对象",
    },
    en={
        "nav_archive": "Archive",
        "nav_archive_audit": "Archive audit",
        "ar_archive_title": "Compliance archive search",
        "ar_archive_intro": "Find archived case PDFs by customer, company, date, type or ticket. Each file's SHA-256 is checked again as this page opens.",
        "ar_f_customer": "Customer (name, number or email)",
        "ar_f_company": "Company (name filed under)",
        "ar_f_since": "Case date from",
        "ar_f_until": "Case date to",
        "ar_f_type": "Type",
        "ar_f_type_any": "Any type",
        "ar_f_ticket": "Ticket",
        "ar_search": "Search",
        "ar_err_date": "Enter a date such as 2026-11-23.",
        "ar_err_range": "The end date is before the start date.",
        "ar_err_type": "There is no such type.",
        "ar_default_range": "No filter given: the cases of the last {days} days.",
        "ar_found": "{cases} cases, {files} files found.",
        "ar_nothing_found": "No archived file matches.",
        "ar_page_of": "Page {page} of {pages}",
        "ar_prev": "Previous",
        "ar_next": "Next",
        "ar_case": "Case",
        "ar_customer": "Customer",
        "ar_case_date": "Date",
        "ar_type": "Type",
        "ar_version": "Version",
        "ar_final": "final",
        "ar_sha256": "SHA-256",
        "ar_size": "Size",
        "ar_archived_at": "Archived",
        "ar_retention": "Keep until",
        "ar_retention_open": "case open: cannot be deleted",
        "ar_hold": "Legal hold",
        "ar_on_hold": "on hold",
        "ar_not_on_hold": "not on hold",
        "ar_verify": "Verify",
        "ar_status_ok": "matches",
        "ar_status_changed": "CHANGED",
        "ar_status_missing": "MISSING",
        "ar_download": "Download PDF",
        "ar_download_label": "Download {name}",
        "ar_select": "Select",
        "ar_select_label": "Select {name} for export",
        "ar_export_selected": "Export the selected files (zip)",
        "ar_export_all": "Export every file found (zip)",
        "ar_export_hint": "The same zip as intake archive export: the files, the versions holding the originals they refer to, manifest.json.",
        "ar_export_nothing": "There is nothing to export.",
        "ar_hold_set": "Set legal hold",
        "ar_hold_release": "Release legal hold",
        "ar_reason_hold": "Reason for the hold (required)",
        "ar_reason_release": "Reason for the release (required)",
        "ar_export": "Export",
        "ar_err_reason": "Give a reason.",
        "ar_held_done": "Legal hold set on {ref} ({files} files).",
        "ar_released_done": "Legal hold on {ref} released ({files} files).",
        "ar_not_held": "{ref} is not on legal hold.",
        "ar_no_case": "No archived files for ticket {ref}.",
        "ar_last_verify": "Last full verification: {at}, by {who}, {files} files, {problems} problems.",
        "ar_never_verified": "The whole archive was never verified yet (intake archive verify).",
        "ar_refused_unknown": "There is no such archived file.",
        "ar_refused_purged": "This file was deleted at the end of its retention.",
        "ar_refused_missing": "This file is missing from storage; it is not served. Run intake archive verify.",
        "ar_refused_changed": "This file no longer matches the SHA-256 recorded when it was archived; it is not served. Run intake archive verify.",
        "ar_audit_title": "Archive audit log",
        "ar_audit_intro": "Deletions, legal holds, releases, retention overrides and full verifications, newest first.",
        "ar_a_action": "Action",
        "ar_a_any": "All",
        "ar_a_purge": "purge",
        "ar_a_hold": "hold",
        "ar_a_release": "release",
        "ar_a_override": "retention override",
        "ar_a_verify": "verify",
        "ar_at": "When",
        "ar_actor": "Who",
        "ar_path": "File",
        "ar_detail": "Detail",
        "ar_filter": "Filter",
        "ar_console_archive_audit": "Downloads, exports and holds through the console",
        "ar_no_entries": "No entries.",
        "ar_user": "User",
        "ar_target": "What",
    },
)

# console audit actions of this module (console_audit.action)
DOWNLOAD, DOWNLOAD_REFUSED, EXPORT, HOLD, RELEASE = (
    "archive_download",
    "archive_download_refused",
    "archive_export",
    "archive_hold",
    "archive_release",
)
CONSOLE_ACTIONS = (DOWNLOAD, DOWNLOAD_REFUSED, EXPORT, HOLD, RELEASE)
REFUSAL_STATUS = {"unknown": 404, "purged": 410, "missing": 409, "changed": 409}

_storages: dict[int, tuple[object, Storage]] = {}


def storage_of(view: View) -> Storage:
    """The archive's storage as the daemon and the CLI open it (archive.storage.open_storage),
    opened once per configuration (S3 checks its bucket when opened)."""
    cfg = view.ctx.config.archive
    cached = _storages.get(id(cfg))
    if cached is None or cached[0] is not cfg:
        cached = (cfg, open_storage(cfg))
        _storages[id(cfg)] = cached
    return cached[1]


def actor(view: View) -> str:
    """Who the archive's own audit log names for a console action."""
    return f"console:{view.name}"


def _today(view: View) -> date:
    return view.ctx.now().date()


def _search_page(view: View, *, status: int = 200, message: str = "", hold_errors: dict[str, str] | None = None, params=None) -> Response:
    filters, errors = parse_filters(params if params is not None else view.request.query_params, _today(view))
    with view.read() as session:
        results = search_cases(session, storage_of(view), filters)
    given = any(
        str((params if params is not None else view.request.query_params).get(k) or "").strip()
        for k in ("customer", "company", "since", "until", "type", "ticket")
    )
    return view.render(
        "console/compliance_search.html.j2",
        status=status,
        message_bad=status >= 400,
        lab=lambda kind, code: archive_label(kind, code, view.lang),
        filters=filters,
        errors=errors,
        results=results,
        types=TYPES,
        default_range=not given,
        default_days=DEFAULT_DAYS,
        message=message,
        hold_errors=hold_errors or {},
        back=urlencode(filters.params()),
    )


@routes.page("/archive", roles=(COMPLIANCE,), nav="nav_archive")
def archive_search(view: View) -> Response:
    done, ref, files = view.request.query_params.get("done", ""), view.request.query_params.get("ref", ""), view.request.query_params.get("files", "")
    message = view.t[f"ar_{done}_done"].format(ref=ref, files=files) if done in ("held", "released") and ref else ""
    return _search_page(view, message=message)


def _content_disposition(row: ArchiveFile) -> str:
    """attachment with the file's real (UTF-8) name; old clients get the ASCII part (ticket and version)."""
    name = PurePosixPath(row.path).name
    fallback = f"{row.ticket_ref}_v{row.version}{'-final' if row.final else ''}.pdf"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


@routes.page("/archive/files/{file_id:int}/pdf", roles=(COMPLIANCE,), example={"file_id": 1})
def archive_download(view: View) -> Response:
    """One version's PDF, audited (who, when, which file and hash), served only while it matches its hash."""
    file_id = int(view.request.path_params["file_id"])
    try:
        with view.read() as session:
            row, data = fetch_version(session, storage_of(view), file_id)
    except NotServed as refused:
        target = refused.row.path if refused.row is not None else f"archive_file:{file_id}"
        view.audit(DOWNLOAD_REFUSED, target, {"file_id": file_id, "why": refused.code})
        return view.error(REFUSAL_STATUS[refused.code], view.t[f"ar_refused_{refused.code}"])
    view.audit(DOWNLOAD, row.path, {"file_id": row.id, "ticket_ref": row.ticket_ref, "version": row.version, "sha256": row.sha256, "size": row.size})
    return Response(
        data,
        media_type="application/pdf",
        headers={"Content-Disposition": _content_disposition(row), "X-Archive-SHA256": row.sha256, "X-Content-Type-Options": "nosniff"},
    )


def _ids(view: View) -> list[int]:
    assert view.form is not None
    ids = []
    for value in view.form.getlist("file"):
        if isinstance(value, str) and value.strip().isdigit():
            ids.append(int(value.strip()))
    return ids


@routes.page("/archive/export", roles=(COMPLIANCE,), methods=("POST",))
def archive_export(view: View) -> Response:
    """The ticked files (or, with `all`, every file the filters find) as `intake archive export`'s zip."""
    assert view.form is not None
    filters, _ = parse_filters(view.form, _today(view))
    ids = [] if view.form.get("all") else _ids(view)
    if not ids and not view.form.get("all"):
        return _search_page(view, status=422, message=view.t["ar_export_nothing"], params=view.form)
    fd, tmp = tempfile.mkstemp(prefix="intake-export-", suffix=".zip")
    try:
        with view.read() as session, os.fdopen(fd, "w+b") as out:  # a snapshot, as the CLI exports from
            rows = selected_rows(session, filters, ids)
            if not rows:
                raise LookupError("nothing to export")
            result = export_selection(session, storage_of(view), rows, out)
    except LookupError:
        os.unlink(tmp)
        return _search_page(view, status=422, message=view.t["ar_export_nothing"], params=view.form)
    except BaseException:
        os.unlink(tmp)
        raise
    selection = {"files": ids} if ids else {"filters": filters.params(page=1)}
    view.audit(EXPORT, f"{result.files} files", {**selection, "exported": result.files, "bytes": result.bytes, "problems": result.problems})
    name = f"archive-export-{view.ctx.now():%Y%m%d-%H%M%S}.zip"
    return FileResponse(tmp, media_type="application/zip", filename=name, background=BackgroundTask(os.unlink, tmp))


@routes.page("/archive/hold", roles=(COMPLIANCE,), methods=("POST",))
def archive_hold(view: View) -> Response:
    """Set (action=hold) or release (action=release) the legal hold of a case, with a mandatory reason.
    archive.retention writes the archive's audit entry; the console's row goes in the same transaction."""
    ref, action = view.value("ticket").strip(), view.value("action")
    if action not in ("hold", "release") or not ref:
        return view.error(400, view.t["not_found"])
    try:
        reason = clean_reason(view.value("reason"))
    except ValueError:
        return _search_page(view, status=422, hold_errors={ref: view.t["ar_err_reason"]}, params={"ticket": ref})
    storage = storage_of(view)
    with transaction(view.ctx.sessions) as session:
        if not case_exists(session, ref):
            return view.error(404, view.t["ar_no_case"].format(ref=ref))
        if action == "hold":
            rows = hold(session, ref, reason, actor=actor(view), storage=storage)
        else:
            if not any(r.legal_hold for r in session.scalars(select(ArchiveFile).where(ArchiveFile.ticket_ref == ref))):
                return _search_page(view, status=409, message=view.t["ar_not_held"].format(ref=ref), params={"ticket": ref})
            rows = release(session, ref, actor=actor(view), storage=storage, reason=reason)
        audit.record(session, view.name, HOLD if action == "hold" else RELEASE, ref, {"reason": reason, "files": [r.path for r in rows]}, ip=view.ip)
        files = len(rows)
    return view.redirect("/archive", ticket=ref, done="held" if action == "hold" else "released", ref=ref, files=files)


@routes.page("/archive-audit", roles=(COMPLIANCE,), nav="nav_archive_audit")
def archive_audit(view: View) -> Response:
    params = view.request.query_params
    action = params.get("action", "")
    action = action if action in AUDIT_SHOWN else ""
    ticket = " ".join(params.get("ticket", "").split())[:MAX_FIELD]
    try:
        page_no = max(1, int(params.get("page", "1")))
    except ValueError:
        page_no = 1
    with view.read() as session:
        log = audit_log(session, action=action, ticket=ticket, page=page_no)
        console_rows = audit.recent(session, actions=CONSOLE_ACTIONS, limit=AUDIT_PER_PAGE)
    return view.render("console/compliance_audit.html.j2", log=log, action=action, ticket=ticket, actions=AUDIT_SHOWN, console_rows=console_rows)
