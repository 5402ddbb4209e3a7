"""The console's compliance logic on a real archive: real PDFs written by archive.writer into a
real SQLite database (the project's migrations) and a local archive folder; the export compared
with the zip the real `intake archive export` writes from the same archive."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path, PurePosixPath

import pytest
from sqlalchemy import select

from archive.integrity import sync_manifest
from archive.models import ArchiveAudit, ArchiveFile
from archive.retention import RetentionPolicy, hold, purge, release
from archive.sample import sample_case
from archive.storage import LocalStorage, open_storage
from archive.writer import archive_now
from intake.store.db import make_engine, make_sessions, transaction, upgrade
from intake.web.console import compliance as c
from intake.web.console.models import ConsoleAudit
from tests.console.conftest import csrf_of

T0 = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
TODAY = date(2026, 12, 6)


def case(ref: str, customer: str, day: date, **changes):
    return replace(sample_case(ref, customer=customer, day=day), status="in_progress", closed_on=None, **changes)


def write_cases(sessions, storage) -> None:
    """Three cases, four files: 0001 (complaint, v1 open, v2 closed), 0002 (inquiry), 0003 (fault, an older month)."""
    a = case("261101-0001", "深圳市某科技有限公司", date(2026, 11, 1))
    b = case("261110-0002", "北京某集团", date(2026, 11, 10), type="inquiry", email="li.na@beijing-group.example.cn")
    d = case("261005-0003", "上海某物流公司", date(2026, 10, 5), type="fault")
    with transaction(sessions) as s:
        for record in (a, b, d, replace(a, status="closed", closed_on=date(2026, 11, 5))):
            archive_now(s, storage, record, now=T0, policy=RetentionPolicy(years=2))
    with sessions() as s:
        sync_manifest(s, storage)


def build_archive(home: Path):
    """The archive where `intake` run in `home` on its embedded defaults finds it."""
    engine = make_engine(f"sqlite:///{home / 'var' / 'intake.db'}")
    upgrade(engine)
    sessions = make_sessions(engine)
    storage = LocalStorage(home / "var" / "archive")
    write_cases(sessions, storage)
    return engine, sessions, storage


@pytest.fixture
def archive_home(tmp_path):
    engine, sessions, storage = build_archive(tmp_path)
    yield tmp_path, sessions, storage
    engine.dispose()


def filters(**given) -> c.Filters:
    f, errors = c.parse_filters({k: str(v) for k, v in given.items()}, TODAY)
    assert errors == {}
    return f


# -- the form --------------------------------------------------------------------------


def test_form_errors_name_the_field_and_drop_only_that_filter():
    f, errors = c.parse_filters({"since": "2026-13-01", "company": "某集团", "type": "投诉"}, TODAY)
    assert errors == {"since": "date"} and f.since is None and f.company == "某集团" and f.type == "complaint"
    f, errors = c.parse_filters({"since": "2026-11-10", "until": "2026-11-01"}, TODAY)
    assert errors == {"until": "range"} and f.since == date(2026, 11, 10) and f.until is None
    f, errors = c.parse_filters({"type": "bribery"}, TODAY)
    assert errors == {"type": "type"} and f.type == ""
    f, errors = c.parse_filters({"page": "x"}, TODAY)
    assert errors == {} and f.since == date(2026, 11, 6) and f.page == 1  # nothing given: the last 30 days
    assert c.parse_filters({"ticket": "  261101-0001 "}, TODAY)[0].query().ticket == "261101-0001"


# -- search ------------------------------------------------------------------------------


def test_search_by_each_filter_shows_versions_hashes_retention_hold_and_status(archive_home):
    home, sessions, storage = archive_home
    with sessions() as s:
        found = c.search_cases(s, storage, filters(company="某科技"))
        assert [k.ticket_ref for k in found.cases] == ["261101-0001"] and found.total_files == 2
        [k] = found.cases
        assert [(f.version, f.final) for f in k.files] == [(1, False), (2, True)]
        for f in k.files:
            assert f.sha256 == hashlib.sha256((home / "var" / "archive" / f.path).read_bytes()).hexdigest()
            assert f.status == "ok" and f.retention_until == date(2028, 11, 5) and not f.legal_hold
        assert k.retention_until == date(2028, 11, 5) and k.problems == 0

        assert [k.ticket_ref for k in c.search_cases(s, storage, filters(customer="li.na@beijing-group")).cases] == ["261110-0002"]
        assert [k.ticket_ref for k in c.search_cases(s, storage, filters(type="咨询")).cases] == ["261110-0002"]
        assert [k.ticket_ref for k in c.search_cases(s, storage, filters(ticket="261005-0003")).cases] == ["261005-0003"]
        in_november = c.search_cases(s, storage, filters(since="2026-11-01", until="2026-11-30"))
        assert [k.ticket_ref for k in in_november.cases] == ["261110-0002", "261101-0001"]  # newest case first
        open_case = in_november.cases[0]
        assert open_case.retention_until is None and open_case.files[0].retention_until is None  # open: no date, no purge
        assert c.search_cases(s, storage, filters(company="nobody-such")).cases == []


def test_paging_counts_cases_not_files(archive_home):
    _, sessions, storage = archive_home
    with sessions() as s:
        first = c.search_cases(s, storage, filters(since="2026-01-01"), per_page=2)
        second = c.search_cases(s, storage, replace(filters(since="2026-01-01"), page=2), per_page=2)
    assert (first.total_cases, first.total_files, first.pages) == (3, 4, 2)
    assert [k.ticket_ref for k in first.cases] == ["261110-0002", "261101-0001"] and [k.ticket_ref for k in second.cases] == ["261005-0003"]


def test_a_changed_or_missing_file_shows_so_and_is_not_served(archive_home):
    home, sessions, storage = archive_home
    with sessions() as s:
        rows = s.scalars(select(ArchiveFile).order_by(ArchiveFile.seq)).all()
    changed, missing, fine = rows[0], rows[1], rows[2]
    data = bytearray(storage.get(PurePosixPath(changed.path)))
    data[len(data) // 2] ^= 0x01
    storage.put(PurePosixPath(changed.path), bytes(data))
    storage.delete(PurePosixPath(missing.path))
    with sessions() as s:
        statuses = {f.id: f.status for k in c.search_cases(s, storage, filters(since="2026-01-01")).cases for f in k.files}
        assert statuses[changed.id] == "changed" and statuses[missing.id] == "missing" and statuses[fine.id] == "ok"
        for file_id, code in ((changed.id, "changed"), (missing.id, "missing"), (999, "unknown")):
            with pytest.raises(c.NotServed) as refused:
                c.fetch_version(s, storage, file_id)
            assert refused.value.code == code
        row, pdf = c.fetch_version(s, storage, fine.id)
        assert pdf.startswith(b"%PDF") and hashlib.sha256(pdf).hexdigest() == row.sha256


# -- export: the zip of `intake archive export` ---------------------------------------------


def zip_content(data: bytes) -> tuple[dict[str, str], dict]:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        manifest = json.loads(z.read("manifest.json"))
        files = {n: hashlib.sha256(z.read(n)).hexdigest() for n in z.namelist() if n != "manifest.json"}
    manifest.pop("exported_at")
    return files, manifest


def test_export_is_the_zip_the_command_line_writes(archive_home):
    home, sessions, storage = archive_home
    run_cli(home, "archive", "export", "--customer", "某科技", "--output", str(home / "cli.zip"))
    out = io.BytesIO()
    with sessions() as s:
        f = filters(company="某科技")
        result = c.export_selection(s, storage, c.selected_rows(s, f, []), out)
    assert result.files == 2 and result.problems == []
    ours, cli = zip_content(out.getvalue()), zip_content((home / "cli.zip").read_bytes())
    assert ours == cli and len(ours[0]) == 2


def test_export_of_ticked_files_adds_the_versions_embedding_their_originals(archive_home):
    """Ticking only the final version exports v1 too when v2 refers to originals embedded in v1."""
    _, sessions, storage = archive_home
    with sessions() as s:
        final = s.scalars(select(ArchiveFile).where(ArchiveFile.ticket_ref == "261101-0001", ArchiveFile.final.is_(True))).one()
        assert {o["version"] for o in final.originals} == {1}  # the sample case's originals live in v1
        out = io.BytesIO()
        result = c.export_selection(s, storage, c.selected_rows(s, c.Filters(), [final.id]), out)
    files, manifest = zip_content(out.getvalue())
    assert result.files == 2 and sorted(e["version"] for e in manifest["files"]) == [1, 2]


# -- reasons and the audit log ------------------------------------------------------------------


def test_a_reason_is_mandatory():
    for blank in ("", "   ", "\n\t"):
        with pytest.raises(ValueError):
            c.clean_reason(blank)
    assert c.clean_reason("  court order\n 2026/123 ") == "court order 2026/123"


def test_audit_log_lists_purges_holds_releases_newest_first_and_filters(archive_home):
    _, sessions, storage = archive_home
    with transaction(sessions) as s:
        hold(s, "261110-0002", "litigation 2026-7", actor="console:carol", storage=storage)
    with transaction(sessions) as s:
        release(s, "261110-0002", actor="console:carol", storage=storage, reason="case settled")
    with transaction(sessions) as s:
        removed = purge(s, storage, datetime(2029, 1, 1, tzinfo=UTC), actor="cli")  # 0001 is past its date by then
    assert [r.ticket_ref for r in removed] == ["261101-0001", "261101-0001"]
    with sessions() as s:
        log = c.audit_log(s)
        assert [a.action for a in log.rows] == ["purge", "purge", "release", "hold"] and log.total == 4
        assert log.rows[2].detail == {"was": "litigation 2026-7", "reason": "case settled"}
        assert [a.action for a in c.audit_log(s, action="hold").rows] == ["hold"]
        assert [a.action for a in c.audit_log(s, ticket="261101-0001").rows] == ["purge", "purge"]
        assert "written" not in {a.action for a in c.audit_log(s, action="written").rows}  # not one of the shown actions
        assert s.scalar(select(ArchiveAudit).where(ArchiveAudit.action == "written").limit(1)) is not None
        assert c.audit_log(s, per_page=3, page=2).rows[0].action == "hold"


# == the pages, through the web listener's app (tests/console/conftest.py) ==================


def run_cli(home: Path, *args: str) -> subprocess.CompletedProcess:
    """The real `intake` command on the database home/var/intake.db and the archive home/var/archive."""
    config = home / "cli.toml"
    config.write_text(f'[database]\nurl = "sqlite:///{home / "var" / "intake.db"}"\n[paths]\nvar = "{home / "var"}"\n', encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "intake.cli.main", "--config", str(config), *args],
        cwd=home,
        capture_output=True,
        timeout=120,
        env={**os.environ, "INTAKE_CONFIG": ""},
    )
    assert proc.returncode == 0, proc.stderr.decode()
    return proc


@pytest.fixture
def archived(console_ctx):
    """The console's own archive (open_storage of its [archive] section) with the three cases."""
    storage = open_storage(console_ctx.config.archive)
    write_cases(console_ctx.sessions, storage)
    return storage


def file_row(ctx, ref: str, version: int) -> ArchiveFile:
    with ctx.sessions() as s:
        return s.scalars(select(ArchiveFile).where(ArchiveFile.ticket_ref == ref, ArchiveFile.version == version)).one()


def console_audit(ctx, *actions: str) -> list[ConsoleAudit]:
    with ctx.sessions() as s:
        return list(s.scalars(select(ConsoleAudit).where(ConsoleAudit.action.in_(actions)).order_by(ConsoleAudit.id)))


def archive_audit(ctx, action: str) -> list[ArchiveAudit]:
    with ctx.sessions() as s:
        return list(s.scalars(select(ArchiveAudit).where(ArchiveAudit.action == action).order_by(ArchiveAudit.id)))


def test_search_page_shows_every_version_with_hash_retention_hold_and_status(console_ctx, archived, signed_in):
    client = signed_in("carol", "compliance")
    page = client.get("/console/archive", params={"company": "某科技", "lang": "en"})
    assert page.status_code == 200
    v1, v2 = file_row(console_ctx, "261101-0001", 1), file_row(console_ctx, "261101-0001", 2)
    for row in (v1, v2):
        assert f'data-sha256="{row.sha256}"' in page.text and f"/console/archive/files/{row.id}/pdf" in page.text
    assert page.text.count('class="status status-ok verify-status">matches') == 2 and "2028-11-05" in page.text
    assert "1 cases, 2 files found." in page.text and "261110-0002" not in page.text
    zh = client.get("/console/archive", params={"type": "咨询", "lang": "zh"})
    assert "261110-0002" in zh.text and "案件未结，不可删除" in zh.text and "261101-0001" not in zh.text
    bad = client.get("/console/archive", params={"since": "yesterday"})
    assert bad.status_code == 200 and 'id="f-since-error"' in bad.text and 'aria-invalid="true"' in bad.text


def test_download_gives_the_archived_bytes_and_is_audited(console_ctx, archived, signed_in):
    client = signed_in("carol", "compliance")
    row = file_row(console_ctx, "261101-0001", 2)
    got = client.get(f"/console/archive/files/{row.id}/pdf")
    assert got.status_code == 200 and got.headers["content-type"] == "application/pdf"
    assert hashlib.sha256(got.content).hexdigest() == row.sha256 == got.headers["x-archive-sha256"]
    assert "filename*=UTF-8''" in got.headers["content-disposition"] and 'filename="261101-0001_v2-final.pdf"' in got.headers["content-disposition"]
    [entry] = console_audit(console_ctx, c.DOWNLOAD)
    assert (entry.user, entry.target) == ("carol", row.path)
    assert entry.detail == {"file_id": row.id, "ticket_ref": "261101-0001", "version": 2, "sha256": row.sha256, "size": row.size}


def test_a_changed_file_is_not_handed_out_and_the_attempt_is_audited(console_ctx, archived, signed_in):
    client = signed_in("carol", "compliance")
    row = file_row(console_ctx, "261110-0002", 1)
    archived.put(PurePosixPath(row.path), archived.get(PurePosixPath(row.path)) + b"%edited")
    page = client.get("/console/archive", params={"ticket": "261110-0002", "lang": "en"})
    assert "CHANGED" in page.text and f"/console/archive/files/{row.id}/pdf" not in page.text
    got = client.get(f"/console/archive/files/{row.id}/pdf", params={"lang": "en"})
    assert got.status_code == 409 and b"%PDF" not in got.content and "no longer matches" in got.text
    assert client.get("/console/archive/files/9999/pdf").status_code == 404
    assert [(a.action, a.detail["why"]) for a in console_audit(console_ctx, c.DOWNLOAD_REFUSED)] == [
        (c.DOWNLOAD_REFUSED, "changed"),
        (c.DOWNLOAD_REFUSED, "unknown"),
    ]
    assert console_audit(console_ctx, c.DOWNLOAD) == []


def test_an_operator_cannot_download_export_or_hold(console_ctx, archived, signed_in):
    client = signed_in("otto", "operator")
    row = file_row(console_ctx, "261101-0001", 1)
    assert client.get("/console/archive").status_code == 403
    got = client.get(f"/console/archive/files/{row.id}/pdf")
    assert got.status_code == 403 and b"%PDF" not in got.content
    token = csrf_of(client.get("/console/report").text)
    assert client.post("/console/archive/export", data={"all": "1", "csrf_token": token}).status_code == 403
    assert (
        client.post("/console/archive/hold", data={"ticket": "261101-0001", "action": "hold", "reason": "x", "csrf_token": token}).status_code == 403
    )
    assert not file_row(console_ctx, "261101-0001", 1).legal_hold and archive_audit(console_ctx, "hold") == []
    assert console_audit(console_ctx, c.DOWNLOAD, c.EXPORT) == []
    assert len(console_audit(console_ctx, "forbidden")) == 4


def test_hold_and_release_need_a_reason_and_show_in_both_audit_logs(console_ctx, archived, signed_in):
    client = signed_in("carol", "compliance")
    page = client.get("/console/archive", params={"ticket": "261101-0001", "lang": "en"})
    token = csrf_of(page.text)
    form = {"ticket": "261101-0001", "action": "hold", "csrf_token": token}
    blank = client.post("/console/archive/hold", data={**form, "reason": "   "}, params={"lang": "en"})
    assert blank.status_code == 422 and "Give a reason." in blank.text
    assert not file_row(console_ctx, "261101-0001", 1).legal_hold and archive_audit(console_ctx, "hold") == []

    done = client.post("/console/archive/hold", data={**form, "reason": "court order 2026-77"})
    assert done.status_code == 303 and "done=held" in done.headers["location"]
    assert all(file_row(console_ctx, "261101-0001", v).legal_hold for v in (1, 2))
    [held] = archive_audit(console_ctx, "hold")
    assert (held.actor, held.ticket_ref, held.detail) == ("console:carol", "261101-0001", {"reason": "court order 2026-77"})
    [mine] = console_audit(console_ctx, c.HOLD)
    assert (mine.user, mine.target, mine.detail["reason"]) == ("carol", "261101-0001", "court order 2026-77")
    shown = client.get(done.headers["location"] + "&lang=en")
    assert "Legal hold set on 261101-0001 (2 files)." in shown.text and "court order 2026-77" in shown.text and "Release legal hold" in shown.text

    release = {"ticket": "261101-0001", "action": "release", "csrf_token": token}
    assert client.post("/console/archive/hold", data={**release, "reason": ""}).status_code == 422
    assert file_row(console_ctx, "261101-0001", 1).legal_hold
    assert client.post("/console/archive/hold", data={**release, "reason": "order lifted"}).status_code == 303
    assert not file_row(console_ctx, "261101-0001", 2).legal_hold
    [released] = archive_audit(console_ctx, "release")
    assert released.detail == {"was": "court order 2026-77", "reason": "order lifted"}
    again = client.post("/console/archive/hold", data={**release, "reason": "twice"}, params={"lang": "en"})
    assert again.status_code == 409 and "is not on legal hold" in again.text

    log = client.get("/console/archive-audit", params={"lang": "en"})
    assert log.status_code == 200
    assert log.text.index('<tr class="audit-row" data-action="release"') < log.text.index('<tr class="audit-row" data-action="hold"')  # newest first
    assert "order lifted" in log.text and "console:carol" in log.text
    assert 'data-action="archive_hold"' in log.text and 'data-action="archive_release"' in log.text
    only_holds = client.get("/console/archive-audit", params={"action": "hold"})
    assert 'data-action="hold"' in only_holds.text and '<tr class="audit-row" data-action="release"' not in only_holds.text


def test_hold_without_csrf_token_changes_nothing(console_ctx, archived, signed_in):
    client = signed_in("carol", "compliance")
    got = client.post("/console/archive/hold", data={"ticket": "261101-0001", "action": "hold", "reason": "no token"})
    assert got.status_code == 403 and not file_row(console_ctx, "261101-0001", 1).legal_hold


def test_export_from_the_page_is_the_command_lines_zip_and_is_audited(console_ctx, archived, signed_in, tmp_path):
    client = signed_in("carol", "compliance")
    token = csrf_of(client.get("/console/archive").text)
    got = client.post("/console/archive/export", data={"company": "某科技", "all": "1", "csrf_token": token})
    assert got.status_code == 200 and got.headers["content-type"] == "application/zip"
    run_cli(tmp_path, "archive", "export", "--customer", "某科技", "--output", str(tmp_path / "cli.zip"))
    assert zip_content(got.content) == zip_content((tmp_path / "cli.zip").read_bytes())
    [entry] = console_audit(console_ctx, c.EXPORT)
    assert entry.user == "carol" and entry.detail["exported"] == 2 and entry.detail["filters"] == {"company": "某科技"}

    row = file_row(console_ctx, "261110-0002", 1)
    ticked = client.post("/console/archive/export", data={"file": [str(row.id)], "csrf_token": token})
    files, manifest = zip_content(ticked.content)
    assert files == {row.path: row.sha256} and manifest["problems"] == []
    nothing = client.post("/console/archive/export", data={"csrf_token": token}, params={"lang": "en"})
    assert nothing.status_code == 422 and "There is nothing to export." in nothing.text
    assert not list(Path(tempfile.gettempdir()).glob("intake-export-*.zip"))  # each zip removed once sent
