"""Archive integrity, retention and retrieval on a real database (SQLite file, PostgreSQL) with real PDFs."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import PurePosixPath

import pytest
from sqlalchemy import delete, select

from archive.integrity import MANIFEST, ManifestMismatch, sync_manifest, verify
from archive.models import ArchiveAudit, ArchiveFile
from archive.retention import RetentionError, RetentionPolicy, delete_archived, extend_all, hold, purge, record_policy, release
from archive.sample import sample_case
from archive.search import Query, describe, export_zip, search
from archive.storage import LocalStorage
from archive.writer import archive_now
from intake.store.db import make_engine, make_sessions, upgrade

T0 = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


@pytest.fixture
def env(db_url, tmp_path):
    engine = make_engine(db_url)
    upgrade(engine)  # the real migrations, 0002_archive included
    sessions = make_sessions(engine)
    storage = LocalStorage(tmp_path / "archive")
    yield sessions, storage
    engine.dispose()


def open_case(ref: str, customer: str = "深圳市某科技有限公司", day: date = date(2026, 11, 22), **changes):
    """The sample case, still open (no close date), unless changes say otherwise."""
    base = replace(sample_case(ref, customer=customer, day=day), status="in_progress", closed_on=None)
    return replace(base, **changes)


def closed(record, on: date):
    return replace(record, status="closed", closed_on=on)


def write(sessions, storage, *records, now=T0):
    with sessions() as s, s.begin():
        rows = [archive_now(s, storage, r, now=now) for r in records]
        paths = [r.path for r in rows]
    with sessions() as s:
        sync_manifest(s, storage)
    return paths


def problems(sessions, storage):
    with sessions() as s, s.begin():
        return verify(s, storage)


def test_written_files_verify_clean_and_are_chained_in_db_and_manifest(env):
    """Three versions of two cases: hashes recorded, chain linked, manifest one line per file."""
    sessions, storage = env
    c1 = open_case("261122-0001")
    paths = write(sessions, storage, c1, open_case("261122-0002", customer="北京某集团"), closed(c1, date(2026, 11, 30)))
    assert paths[0].endswith("_投诉_261122-0001_v1.pdf") and paths[2].endswith("_261122-0001_v2-final.pdf")
    assert problems(sessions, storage) == []
    lines = storage.get(MANIFEST).decode().splitlines()
    with sessions() as s:
        rows = s.scalars(select(ArchiveFile).order_by(ArchiveFile.seq)).all()
        assert [json.loads(line)["sha256"] for line in lines] == [r.sha256 for r in rows]
        assert [r.sha256 for r in rows] == [hashlib.sha256(storage.get(PurePosixPath(p))).hexdigest() for p in paths]
        assert rows[1].prev_hash == rows[0].chain_hash and rows[2].prev_hash == rows[1].chain_hash
        audit = s.scalars(select(ArchiveAudit).where(ArchiveAudit.action == "written")).all()
        assert sorted(a.path for a in audit) == sorted(paths)


def test_tampered_file_is_caught(env):
    """One byte changed in a PDF → verify reports it as changed, by path."""
    sessions, storage = env
    paths = write(sessions, storage, open_case("261122-0001"), open_case("261122-0002"))
    data = bytearray(storage.get(PurePosixPath(paths[1])))
    data[len(data) // 2] ^= 0x01
    storage.put(PurePosixPath(paths[1]), bytes(data))
    found = problems(sessions, storage)
    assert [(p.kind, p.path) for p in found] == [("changed", paths[1])]


def test_deleted_file_is_caught(env):
    """A file removed behind the archive's back → missing."""
    sessions, storage = env
    paths = write(sessions, storage, open_case("261122-0001"), open_case("261122-0002"))
    storage.delete(PurePosixPath(paths[0]))
    assert [(p.kind, p.path) for p in problems(sessions, storage)] == [("missing", paths[0])]


def test_removed_manifest_line_breaks_the_chain(env):
    """Deleting a middle line of MANIFEST.jsonl is detected by the chain (and the DB comparison)."""
    sessions, storage = env
    paths = write(sessions, storage, *(open_case(f"261122-000{i}") for i in range(1, 4)))
    lines = storage.get(MANIFEST).decode().splitlines()
    storage.put(MANIFEST, ("\n".join([lines[0], lines[2]]) + "\n").encode())
    found = problems(sessions, storage)
    kinds = {(p.kind, p.path) for p in found}
    assert ("chain", paths[2]) in kinds  # the line after the gap no longer follows its predecessor
    assert ("manifest", paths[1]) in kinds  # and the database knows which entry went missing
    with sessions() as s, pytest.raises(ManifestMismatch):
        sync_manifest(s, storage)  # never papers over it
    assert storage.get(MANIFEST).decode().splitlines() == [lines[0], lines[2]]


def test_removed_database_row_breaks_the_chain(env):
    """Deleting a row (and its file) from the middle breaks the database chain and shows in the manifest."""
    sessions, storage = env
    paths = write(sessions, storage, *(open_case(f"261122-000{i}") for i in range(1, 4)))
    with sessions() as s, s.begin():
        s.execute(delete(ArchiveFile).where(ArchiveFile.path == paths[1]))
    storage.delete(PurePosixPath(paths[1]))
    kinds = {(p.kind, p.path) for p in problems(sessions, storage)}
    assert ("chain", paths[2]) in kinds and ("manifest", paths[1]) in kinds


def test_unexpected_file_is_caught(env):
    """A PDF slipped into the archive folder that the archive never wrote → unexpected."""
    sessions, storage = env
    write(sessions, storage, open_case("261122-0001"))
    storage.put(PurePosixPath("2026/11/fake_2026-11-22_投诉_261122-0099_v1.pdf"), b"%PDF-fake")
    found = problems(sessions, storage)
    assert [(p.kind, p.path) for p in found] == [("unexpected", "2026/11/fake_2026-11-22_投诉_261122-0099_v1.pdf")]


def test_verify_is_audited(env):
    sessions, storage = env
    write(sessions, storage, open_case("261122-0001"))
    problems(sessions, storage)
    with sessions() as s:
        audit = s.scalars(select(ArchiveAudit).where(ArchiveAudit.action == "verify")).one()
        assert audit.detail == {"files": 1, "problems": 0, "kinds": []}


def test_early_deletion_is_refused_everywhere(env):
    """Closed 2026-11-30 → kept until 2028-11-30: purge a year later deletes nothing; direct deletion
    raises; an open case cannot be deleted at all."""
    sessions, storage = env
    paths = write(sessions, storage, closed(open_case("261122-0001"), date(2026, 11, 30)), open_case("261122-0002"))
    with sessions() as s, s.begin():
        assert s.scalars(select(ArchiveFile.retention_until).where(ArchiveFile.path == paths[0])).one() == date(2028, 11, 30)
        assert purge(s, storage, datetime(2027, 11, 30, tzinfo=UTC)) == []
        assert purge(s, storage, datetime(2028, 11, 30, 23, 0, tzinfo=UTC)) == []  # the last day still counts
        with pytest.raises(RetentionError, match="must be kept until 2028-11-30"):
            delete_archived(s, storage, paths[0], now=datetime(2028, 1, 1, tzinfo=UTC), actor="staff:x")
        with pytest.raises(RetentionError, match="not yet closed"):
            delete_archived(s, storage, paths[1], now=datetime(2040, 1, 1, tzinfo=UTC), actor="staff:x")
    assert all(storage.exists(PurePosixPath(p)) for p in paths)
    assert problems(sessions, storage) == []


def test_purge_after_expiry_deletes_and_audits(env):
    """Past retention and not on hold → deleted, marked purged, audited; verify stays clean."""
    sessions, storage = env
    c1 = open_case("261122-0001")
    paths = write(sessions, storage, c1, closed(c1, date(2026, 11, 30)), open_case("261122-0002"))
    with sessions() as s, s.begin():
        gone = purge(s, storage, datetime(2028, 12, 1, tzinfo=UTC), actor="staff:compliance")
        assert sorted(r.path for r in gone) == sorted(paths[:2])  # both versions of the closed case
    assert not storage.exists(PurePosixPath(paths[0])) and not storage.exists(PurePosixPath(paths[1]))
    assert storage.exists(PurePosixPath(paths[2]))
    with sessions() as s:
        audit = s.scalars(select(ArchiveAudit).where(ArchiveAudit.action == "purge")).all()
        assert sorted(a.path for a in audit) == sorted(paths[:2])
        assert all(a.actor == "staff:compliance" and a.detail["retention_until"] == "2028-11-30" for a in audit)
    assert problems(sessions, storage) == []


def test_legal_hold_blocks_purge_until_released(env):
    """A held case survives its retention date; released, it is purged."""
    sessions, storage = env
    paths = write(sessions, storage, closed(open_case("261122-0001"), date(2026, 11, 30)))
    later = datetime(2029, 1, 1, tzinfo=UTC)
    with sessions() as s, s.begin():
        hold(s, "261122-0001", "诉讼保全 case 2027-17", actor="staff:legal")
    with sessions() as s, s.begin():
        assert purge(s, storage, later) == []
        with pytest.raises(RetentionError, match="legal hold"):
            delete_archived(s, storage, paths[0], now=later, actor="staff:x")
    assert storage.exists(PurePosixPath(paths[0]))
    with sessions() as s, s.begin():
        release(s, "261122-0001", actor="staff:legal")
    with sessions() as s, s.begin():
        assert [r.path for r in purge(s, storage, later)] == paths
        actions = [a.action for a in s.scalars(select(ArchiveAudit).order_by(ArchiveAudit.id))]
    assert actions == ["written", "hold", "release", "purge"]


def test_a_version_written_during_a_hold_is_held_too(env):
    """The hold is on the case: a later version inherits it and is not purged either."""
    sessions, storage = env
    c = open_case("261122-0001")
    write(sessions, storage, c)
    with sessions() as s, s.begin():
        hold(s, "261122-0001", "监管调查", actor="staff:legal")
    write(sessions, storage, closed(c, date(2026, 11, 30)))
    with sessions() as s, s.begin():
        rows = s.scalars(select(ArchiveFile).order_by(ArchiveFile.version)).all()
        assert [(r.legal_hold, r.hold_reason) for r in rows] == [(True, "监管调查")] * 2
        assert purge(s, storage, datetime(2030, 1, 1, tzinfo=UTC)) == []


def test_hold_of_unknown_case_and_without_reason_is_refused(env):
    sessions, storage = env
    write(sessions, storage, open_case("261122-0001"))
    with sessions() as s:
        with pytest.raises(LookupError):
            hold(s, "999999-0000", "x", actor="staff:legal")
        with pytest.raises(ValueError):
            hold(s, "261122-0001", "  ", actor="staff:legal")


def test_reopened_case_is_kept_from_its_last_close(env):
    """Closed, reopened: nothing of it can go while open, even past two years from the first close;
    closed again a year later: every version is kept two years from that close."""
    sessions, storage = env
    c = open_case("261122-0001")
    write(sessions, storage, closed(c, date(2026, 11, 30)), replace(c, status="in_progress"))
    with sessions() as s, s.begin():
        assert set(s.scalars(select(ArchiveFile.retention_until))) == {None}
        assert purge(s, storage, datetime(2029, 1, 1, tzinfo=UTC)) == []
    write(sessions, storage, closed(c, date(2027, 12, 1)))
    with sessions() as s:
        assert set(s.scalars(select(ArchiveFile.retention_until))) == {date(2029, 12, 1)}


def test_retention_below_two_years_needs_an_override_that_is_logged(env):
    sessions, _ = env
    with pytest.raises(RetentionError, match="below the required 2"):
        RetentionPolicy(years=1)
    assert RetentionPolicy(years=5).until(date(2028, 2, 29)) == date(2033, 2, 28)
    with sessions() as s, s.begin():
        record_policy(s, RetentionPolicy(years=1, override=True), actor="config")
    with sessions() as s:
        audit = s.scalars(select(ArchiveAudit)).one()
        assert (audit.action, audit.detail) == ("override", {"retention_years": 1, "minimum": 2})


def test_raising_the_retention_years_extends_what_is_archived_but_lowering_never_shortens(env):
    """5 years configured later: existing closed cases are kept 5 years from close; a 1-year
    override afterwards shortens nothing already archived."""
    sessions, storage = env
    write(sessions, storage, closed(open_case("261122-0001"), date(2026, 11, 30)), open_case("261122-0002"))
    with sessions() as s, s.begin():
        assert extend_all(s, RetentionPolicy(years=5), actor="config") == 1
    with sessions() as s, s.begin():
        assert sorted(s.scalars(select(ArchiveFile.retention_until)), key=str) == [date(2031, 11, 30), None]
        assert extend_all(s, RetentionPolicy(years=1, override=True), actor="config") == 0
        assert purge(s, storage, datetime(2030, 1, 1, tzinfo=UTC)) == []
        extended = s.scalars(select(ArchiveAudit).where(ArchiveAudit.action == "override")).one()
        assert extended.detail == {"retention_years": 5, "extended_files": 1}


def test_search_by_customer_dates_type_ticket_and_words(env):
    """Each filter narrows the result; type accepts the code or its Chinese label."""
    sessions, storage = env
    write(
        sessions,
        storage,
        open_case("261101-0001", customer="深圳市某科技有限公司", day=date(2026, 11, 1)),
        open_case("261115-0002", customer="北京某集团", day=date(2026, 11, 15), type="inquiry", description="询问新产品的批发折扣政策"),
        open_case("261122-0003", customer="ACME 100%_Ltd", day=date(2026, 11, 22)),
    )
    with sessions() as s:

        def refs(**kw):
            return [r.ticket_ref for r in search(s, Query(**kw))]

        assert refs() == ["261122-0003", "261115-0002", "261101-0001"]
        assert refs(customer="某科技") == ["261101-0001"]
        assert refs(customer="acme 100%_") == ["261122-0003"]  # case-insensitive, % and _ are literal
        assert refs(customer="100%x") == []
        assert refs(since=date(2026, 11, 10), until=date(2026, 11, 20)) == ["261115-0002"]
        assert refs(type="咨询") == ["261115-0002"] and refs(type="complaint") == ["261122-0003", "261101-0001"]
        assert refs(ticket="261101-0001") == ["261101-0001"]
        assert refs(words=["批发折扣"]) == ["261115-0002"]
        assert refs(words=["硒鼓", "工程师"], customer="ACME") == ["261122-0003"]


def test_export_zip_holds_files_and_a_manifest_whose_hashes_match(env, tmp_path):
    """The zip has every found file byte for byte and a manifest with path, sha256, retention date;
    progress is reported file by file."""
    sessions, storage = env
    c = open_case("261122-0001")
    write(sessions, storage, c, closed(c, date(2026, 11, 30)), open_case("261122-0002"))
    seen = []
    target = tmp_path / "export.zip"
    with sessions() as s:
        rows = search(s, Query(customer="深圳"))
        result = export_zip(rows, storage, target, progress=lambda done, total, path: seen.append((done, total)))
    assert (result.files, result.problems) == (3, []) and seen == [(1, 3), (2, 3), (3, 3)]
    with zipfile.ZipFile(target) as zf:
        manifest = json.loads(zf.read("manifest.json"))
        assert sorted(zf.namelist()) == sorted([r.path for r in rows] + ["manifest.json"])
        for entry in manifest["files"]:
            assert hashlib.sha256(zf.read(entry["path"])).hexdigest() == entry["sha256"]
            assert zf.read(entry["path"]) == storage.get(PurePosixPath(entry["path"]))
    by_path = {e["path"]: e for e in manifest["files"]}
    assert {e["retention_until"] for e in by_path.values()} == {"2028-11-30", None}
    assert by_path == {r.path: describe(r) for r in rows}


def test_export_leaves_out_and_reports_a_tampered_file(env):
    """A file that no longer matches its hash is not exported as if it were the archived one."""
    sessions, storage = env
    paths = write(sessions, storage, open_case("261122-0001"), open_case("261122-0002"))
    storage.put(PurePosixPath(paths[0]), b"%PDF-forged")
    buf = io.BytesIO()
    with sessions() as s:
        result = export_zip(search(s, Query()), storage, buf)
    assert result.files == 1 and result.problems == [f"{paths[0]}: SHA-256 does not match the archive record"]
    with zipfile.ZipFile(buf) as zf:
        assert paths[0] not in zf.namelist()
        assert json.loads(zf.read("manifest.json"))["problems"] == result.problems


def test_purged_files_are_not_found_by_default(env):
    sessions, storage = env
    write(sessions, storage, closed(open_case("261122-0001"), date(2026, 11, 30)))
    with sessions() as s, s.begin():
        purge(s, storage, datetime(2029, 1, 1, tzinfo=UTC))
    with sessions() as s:
        assert search(s, Query()) == []
        assert [r.ticket_ref for r in search(s, Query(include_purged=True))] == ["261122-0001"]


def test_retention_counts_from_close_not_from_writing(env):
    """A version written long after close still expires two years after the close."""
    sessions, storage = env
    write(sessions, storage, closed(open_case("261122-0001"), date(2026, 11, 30)), now=T0 + timedelta(days=400))
    with sessions() as s:
        assert s.scalars(select(ArchiveFile.retention_until)).one() == date(2028, 11, 30)
