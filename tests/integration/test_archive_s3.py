"""The archive on a real S3 server (SeaweedFS on 127.0.0.1) with Object Lock COMPLIANCE:
locks and legal holds set by our code, enforced by the server, and verify, search, export
and purge working on objects as they do on files."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import PurePosixPath

import pytest
from botocore.exceptions import ClientError
from sqlalchemy import select, update

from archive.integrity import MANIFEST, sha256, sync_manifest, verify
from archive.models import ArchiveFile
from archive.retention import RetentionPolicy, hold, purge, release
from archive.s3 import S3Storage, lock_end
from archive.sample import sample_case
from archive.search import Query, export_zip, search
from archive.storage import open_storage
from archive.writer import archive_now
from intake.config import ConfigError, from_dict
from intake.store.db import make_engine, make_sessions, upgrade
from tests.servers.seaweed import REGION, SeaweedServer

NOW = datetime.now(UTC)  # the server's lock compares with the real clock
TODAY = NOW.date()
DEFAULT_POLICY = RetentionPolicy()
SHORT = RetentionPolicy(0, override=True)  # retention ends on the day of the close: purgeable tomorrow


@pytest.fixture(scope="module")
def seaweed(tmp_path_factory):
    with SeaweedServer(tmp_path_factory.mktemp("seaweed")) as server:
        yield server


@pytest.fixture
def env(db_url, seaweed):
    engine = make_engine(db_url)
    upgrade(engine)
    sessions = make_sessions(engine)
    storage = S3Storage(seaweed.client(), seaweed.bucket())
    yield sessions, storage
    engine.dispose()


def case(ref: str, *, closed_on: date | None, day: date = TODAY):
    base = sample_case(ref, day=day)
    if closed_on is None:
        return replace(base, status="in_progress", closed_on=None)
    return replace(base, status="closed", closed_on=closed_on)


def write(sessions, storage, *records, policy=DEFAULT_POLICY, now=NOW) -> list[str]:
    with sessions() as s, s.begin():
        paths = [archive_now(s, storage, r, policy=policy, now=now).path for r in records]
    with sessions() as s:
        sync_manifest(s, storage)
    return paths


def versions(storage: S3Storage, path: str) -> list[str]:
    listing = storage.client.list_object_versions(Bucket=storage.bucket, Prefix=path)
    return [v["VersionId"] for v in listing.get("Versions", []) if v["Key"] == path]


def delete_version(storage: S3Storage, path: str, version_id: str) -> None:
    """Bypass all of our code: the S3 API call an operator or attacker with the keys would make."""
    storage.client.delete_object(Bucket=storage.bucket, Key=path, VersionId=version_id)


def problems(sessions, storage):
    with sessions() as s, s.begin():
        return verify(s, storage)


def test_closed_case_is_written_locked_compliance_and_the_server_refuses_deleting_the_version(env):
    """A closed case's PDF carries COMPLIANCE retain-until = the day after its retention date;
    deleting that version straight through boto3 is refused by the server and the bytes stay."""
    sessions, storage = env
    [path] = write(sessions, storage, case("261123-0001", closed_on=TODAY))
    with sessions() as s:
        row = s.scalars(select(ArchiveFile)).one()
    assert row.retention_until == TODAY.replace(year=TODAY.year + 2)
    [vid] = versions(storage, path)
    got = storage.client.get_object_retention(Bucket=storage.bucket, Key=path, VersionId=vid)["Retention"]
    assert got["Mode"] == "COMPLIANCE" and got["RetainUntilDate"] == lock_end(row.retention_until)

    with pytest.raises(ClientError) as refused:
        delete_version(storage, path, vid)
    assert refused.value.response["Error"]["Code"] == "AccessDenied"
    assert sha256(storage.get(PurePosixPath(path))) == row.sha256 and versions(storage, path) == [vid]
    # and our storage's own delete (what purge calls) hits the same wall
    with pytest.raises(PermissionError):
        storage.delete(PurePosixPath(path))
    assert problems(sessions, storage) == []


def test_purge_with_a_tampered_retention_date_is_refused_by_the_storage(env):
    """Someone moves the database's retention date into the past: our purge now believes the
    file expired, but the server still holds the lock, so nothing is deleted."""
    sessions, storage = env
    [path] = write(sessions, storage, case("261123-0002", closed_on=TODAY))
    with sessions() as s, s.begin():
        s.execute(update(ArchiveFile).values(retention_until=TODAY - timedelta(days=400)))
    with pytest.raises(PermissionError, match="Object Lock"):
        with sessions() as s, s.begin():
            purge(s, storage, NOW, actor="test")
    assert storage.exists(PurePosixPath(path)) and len(versions(storage, path)) == 1
    with sessions() as s:
        assert s.scalars(select(ArchiveFile.purged_at)).one() is None  # the purge rolled back


def test_versions_written_while_open_are_locked_when_the_case_closes(env):
    """An open case's version has no lock (no retention date yet); the close extends the lock
    to every earlier version, and a later, longer policy moves it later again."""
    sessions, storage = env
    [v1] = write(sessions, storage, case("261123-0003", closed_on=None))
    assert storage.retention(PurePosixPath(v1)) is None
    [v2] = write(sessions, storage, case("261123-0003", closed_on=TODAY))
    until = TODAY.replace(year=TODAY.year + 2)
    assert storage.retention(PurePosixPath(v1)) == lock_end(until) == storage.retention(PurePosixPath(v2))
    with pytest.raises(ClientError):
        delete_version(storage, v1, versions(storage, v1)[0])

    from archive.retention import extend_all

    with sessions() as s, s.begin():
        assert extend_all(s, RetentionPolicy(5), actor="test", storage=storage) == 2
    assert storage.retention(PurePosixPath(v1)) == lock_end(TODAY.replace(year=TODAY.year + 5))


def test_legal_hold_is_an_s3_legal_hold_and_purge_deletes_every_version_after_release(env):
    """With retention already over, a held case still cannot be deleted by the server;
    released, purge removes every version of the object, not just its latest view."""
    sessions, storage = env
    closed = TODAY - timedelta(days=3)
    [path] = write(sessions, storage, case("261123-0004", closed_on=closed, day=closed), policy=SHORT)
    assert storage.retention(PurePosixPath(path)) is None  # its date is past: nothing left to lock
    with sessions() as s, s.begin():
        hold(s, "261123-0004", "court order 2026-17", actor="test", storage=storage)
    [vid] = versions(storage, path)
    status = storage.client.get_object_legal_hold(Bucket=storage.bucket, Key=path, VersionId=vid)
    assert status["LegalHold"]["Status"] == "ON"
    with pytest.raises(ClientError):
        delete_version(storage, path, vid)
    with sessions() as s, s.begin():
        assert purge(s, storage, NOW, actor="test") == []  # our side refuses too

    with sessions() as s, s.begin():
        release(s, "261123-0004", actor="test", storage=storage)
    status = storage.client.get_object_legal_hold(Bucket=storage.bucket, Key=path, VersionId=vid)
    assert status["LegalHold"]["Status"] == "OFF"
    with sessions() as s, s.begin():
        assert [r.path for r in purge(s, storage, NOW, actor="test")] == [path]
    assert versions(storage, path) == [] and not storage.exists(PurePosixPath(path))
    assert problems(sessions, storage) == []  # purged on time, recorded, gone


def test_verify_catches_a_changed_object_and_one_nobody_archived(env):
    """A new version uploaded over an archived key is 'changed' (verify reads the object and
    compares SHA-256); a key the archive never wrote is 'unexpected' (from the listing)."""
    sessions, storage = env
    [path] = write(sessions, storage, case("261123-0005", closed_on=None))
    assert storage.exists(MANIFEST) and problems(sessions, storage) == []
    storage.client.put_object(Bucket=storage.bucket, Key=path, Body=storage.get(PurePosixPath(path)) + b"%x")
    storage.client.put_object(Bucket=storage.bucket, Key="2026/11/slipped-in.pdf", Body=b"%PDF-1.7")
    found = {(p.kind, p.path) for p in problems(sessions, storage)}
    assert found == {("changed", path), ("unexpected", "2026/11/slipped-in.pdf")}


def test_search_and_export_read_the_pdfs_back_from_s3(env):
    """search finds the archived versions; export_zip fetches each object, checks its hash and
    zips the exact bytes."""
    sessions, storage = env
    paths = write(sessions, storage, case("261123-0006", closed_on=None), case("261123-0007", closed_on=TODAY))
    with sessions() as s:
        rows = search(s, Query())
        assert sorted(r.path for r in rows) == sorted(paths)
        buf = io.BytesIO()
        result = export_zip(rows, storage, buf)
        hashes = {r.path: r.sha256 for r in rows}
    assert result.files == 2 and result.problems == []
    with zipfile.ZipFile(buf) as z:
        for path in paths:
            data = z.read(path)
            assert data.startswith(b"%PDF") and sha256(data) == hashes[path]


def test_open_storage_builds_the_s3_backend_from_config_with_keys_from_the_environment(seaweed, monkeypatch, tmp_path):
    """[archive] storage = "s3" gives an S3Storage on that bucket, keys read from the named
    variables; a missing variable fails at start with its name."""
    bucket = seaweed.bucket()
    section = {
        "storage": "s3",
        "s3_endpoint": seaweed.endpoint,
        "s3_bucket": bucket,
        "s3_region": REGION,
        "s3_access_key_env": "T_S3_KEY",
        "s3_secret_key_env": "T_S3_SECRET",
        "path": str(tmp_path),
    }
    cfg = from_dict({"archive": section}).archive
    monkeypatch.delenv("T_S3_SECRET", raising=False)
    monkeypatch.setenv("T_S3_KEY", seaweed.access_key)
    with pytest.raises(RuntimeError, match="T_S3_SECRET"):
        open_storage(cfg)
    monkeypatch.setenv("T_S3_SECRET", seaweed.secret_key)
    storage = open_storage(cfg)
    assert isinstance(storage, S3Storage) and storage.bucket == bucket
    storage.check_bucket()
    storage.put(PurePosixPath("a/b.pdf"), b"%PDF")
    assert list(storage.list()) == [PurePosixPath("a/b.pdf")] and list(tmp_path.iterdir()) == []
    with pytest.raises(ConfigError, match="s3_bucket"):
        from_dict({"archive": {"storage": "s3"}})


def test_open_storage_refuses_a_bucket_without_object_lock(seaweed, monkeypatch):
    """A bucket created without Object Lock could not refuse an early delete: refused at start."""
    plain = "plain-" + seaweed.bucket()[-8:]
    seaweed.client().create_bucket(Bucket=plain)
    monkeypatch.setenv("T_S3_KEY", seaweed.access_key)
    monkeypatch.setenv("T_S3_SECRET", seaweed.secret_key)
    cfg = from_dict(
        {
            "archive": {
                "storage": "s3",
                "s3_endpoint": seaweed.endpoint,
                "s3_bucket": plain,
                "s3_access_key_env": "T_S3_KEY",
                "s3_secret_key_env": "T_S3_SECRET",
            }
        }
    ).archive
    with pytest.raises(RuntimeError, match="Object Lock"):
        open_storage(cfg)


def test_daemon_and_cli_use_the_s3_archive_from_config(seaweed, tmp_path):
    """`intake run --once` archives the case into the bucket (nothing under var/archive);
    `intake archive search/verify/hold` work on it, and hold sets the S3 legal hold."""
    bucket = seaweed.bucket()
    config = tmp_path / "intake.toml"
    config.write_text(f'''
[archive]
workers = 0
storage = "s3"
s3_endpoint = "{seaweed.endpoint}"
s3_bucket = "{bucket}"
s3_region = "{REGION}"
s3_access_key_env = "T_S3_KEY"
s3_secret_key_env = "T_S3_SECRET"
''')
    env = {**os.environ, "INTAKE_CONFIG": str(config), "T_S3_KEY": seaweed.access_key, "T_S3_SECRET": seaweed.secret_key}

    def intake(*args: str, ok: bool = True) -> list[dict]:
        proc = subprocess.run([sys.executable, "-m", "intake.cli.main", *args], cwd=tmp_path, env=env, capture_output=True, timeout=180)
        assert (proc.returncode == 0) == ok, proc.stderr.decode()
        if "--json" not in args:
            return []
        return [json.loads(line) for line in proc.stdout.decode().splitlines() if line.strip()]

    intake("init")
    eml = tmp_path / "a.eml"
    eml.write_bytes(
        "From: kefu@mou-keji.example.cn\r\nTo: support@example.com\r\nSubject: 投诉快递员\r\n"
        "Message-ID: <s3-a@mou-keji.example.cn>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        "你们的快递员态度恶劣，我要投诉。\r\n".encode()
    )
    intake("ingest", str(eml))
    intake("run", "--once")
    [found] = intake("archive", "search", "--json")
    client = seaweed.client()
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert sorted(keys) == sorted([found["path"], "MANIFEST.jsonl"])
    assert not any((tmp_path / "var" / "archive").rglob("*.pdf"))
    assert intake("archive", "verify", "--json")[0]["kind"] == "ok"

    intake("archive", "hold", found["ticket_ref"], "--reason", "audit 2026")
    assert client.get_object_legal_hold(Bucket=bucket, Key=found["path"])["LegalHold"]["Status"] == "ON"
    client.put_object(Bucket=bucket, Key=found["path"], Body=b"%PDF-forged")
    changed = intake("archive", "verify", "--json", ok=False)
    assert [p["kind"] for p in changed] == ["changed"]


def test_the_archive_worker_locks_a_closed_case_it_writes_to_s3(env):
    """The daemon's path: ArchiveWorker stores a closed case with its COMPLIANCE lock, like archive_now."""
    from archive.worker import ArchiveWorker, enqueue

    sessions, storage = env
    record = case("261123-0008", closed_on=TODAY)
    with sessions() as s, s.begin():
        enqueue(s, 1, "closed")
    with ArchiveWorker(sessions, storage, lambda session, ticket_id: record, processes=0) as worker:
        [path] = worker.run_once().paths
    assert storage.retention(PurePosixPath(path)) == lock_end(TODAY.replace(year=TODAY.year + 2))
