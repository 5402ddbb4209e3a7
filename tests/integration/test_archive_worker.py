"""The archive worker on a real database (migrated with Alembic) rendering in real worker processes."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import PurePosixPath

import pypdf
import pytest
from sqlalchemy import select, update

from archive.integrity import verify
from archive.models import ArchiveAudit, ArchiveFile, ArchiveJob
from archive.sample import sample_case
from archive.storage import LocalStorage
from archive.worker import ArchiveWorker, enqueue, job_counts
from intake.store.db import make_engine, make_sessions, upgrade


class Clock:
    def __init__(self) -> None:
        self.at = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.at


class Cases:
    """The owner's load_record, as plain data: ticket id → record; ids listed in `broken` raise."""

    def __init__(self) -> None:
        self.records = {i: replace(sample_case(f"261122-{i:04d}", customer=f"客户{i}"), status="in_progress", closed_on=None) for i in range(1, 6)}
        self.broken: set[int] = set()
        self.loads = 0

    def __call__(self, session, ticket_id: int):
        self.loads += 1
        if ticket_id in self.broken:
            raise RuntimeError(f"ticket {ticket_id} cannot be loaded")
        return self.records[ticket_id]


@pytest.fixture
def env(db_url, tmp_path):
    engine = make_engine(db_url)
    upgrade(engine)  # the real migrations, 0002_archive included
    sessions = make_sessions(engine)
    yield sessions, LocalStorage(tmp_path / "archive")
    engine.dispose()


def add_jobs(sessions, *jobs, now=None):
    with sessions() as s, s.begin():
        for ticket_id, reason in jobs:
            enqueue(s, ticket_id, reason, now=now)


def test_jobs_become_archived_pdfs_rendered_in_worker_processes(env):
    """Two tickets' jobs → two PDF/A files, rows, audit entries, manifest; jobs done; verify clean."""
    sessions, storage = env
    cases = Cases()
    add_jobs(sessions, (1, "opened"), (2, "opened"))
    with ArchiveWorker(sessions, storage, cases, processes=2) as worker:
        stats = worker.run_once()
    assert stats.written == 2 and stats.failed == 0
    with sessions() as s:
        rows = s.scalars(select(ArchiveFile).order_by(ArchiveFile.ticket_ref)).all()
        assert [(r.ticket_ref, r.version, r.final, r.ticket_id) for r in rows] == [("261122-0001", 1, False, 1), ("261122-0002", 1, False, 2)]
        assert rows[0].path == "2026/11/客户1_2026-11-22_投诉_261122-0001_v1.pdf"
        assert {j.status for j in s.scalars(select(ArchiveJob))} == {"done"}
        assert job_counts(s) == {"done": 2}
        assert problems_of(s, storage) == []
    pdf = storage.get(PurePosixPath(rows[0].path))
    reader = pypdf.PdfReader(__import__("io").BytesIO(pdf))
    assert "261122-0001" in reader.pages[0].extract_text() and set(reader.attachments)


def problems_of(session, storage):
    return verify(session, storage, record=False)


def test_all_due_jobs_of_a_ticket_make_one_version_and_close_makes_the_final(env):
    """opened + changed + changed → one render (v1); then closed → v2-final with retention set."""
    sessions, storage = env
    cases = Cases()
    add_jobs(sessions, (3, "opened"), (3, "changed"), (3, "changed"))
    worker = ArchiveWorker(sessions, storage, cases, processes=0)
    assert worker.run_once().written == 1 and cases.loads == 1
    cases.records[3] = replace(cases.records[3], status="closed", closed_on=date(2026, 11, 30), satisfaction=4)
    add_jobs(sessions, (3, "closed"))
    assert worker.run_once().written == 1
    with sessions() as s:
        rows = s.scalars(select(ArchiveFile).order_by(ArchiveFile.version)).all()
        assert [(r.version, r.final) for r in rows] == [(1, False), (2, True)]
        assert rows[1].path.endswith("_261122-0003_v2-final.pdf")
        assert {r.retention_until for r in rows} == {date(2028, 11, 30)}
        jobs = s.scalars(select(ArchiveJob).order_by(ArchiveJob.id)).all()
        assert [j.archive_file_id for j in jobs] == [rows[0].id] * 3 + [rows[1].id]


def test_failed_job_is_retried_with_backoff_then_marked_failed_with_its_error(env):
    """A ticket that cannot be loaded: retried at 30 s, 60 s, ... never skipped; after max_attempts
    it is failed, its error kept and audited; other tickets are archived meanwhile."""
    sessions, storage = env
    cases, clock = Cases(), Clock()
    cases.broken.add(4)
    add_jobs(sessions, (4, "opened"), (5, "opened"), now=clock.at)
    worker = ArchiveWorker(sessions, storage, cases, processes=0, max_attempts=3, clock=clock)
    stats = worker.run_once()
    assert (stats.written, stats.retried, stats.failed) == (1, 1, 0)
    with sessions() as s:
        job = s.scalars(select(ArchiveJob).where(ArchiveJob.ticket_id == 4)).one()
        assert (job.status, job.attempts) == ("pending", 1)
        assert job.last_error == "RuntimeError: ticket 4 cannot be loaded"
        assert job.next_attempt_at == clock.at + timedelta(seconds=30)
    assert worker.run_once().retried == 0  # not due yet
    clock.at += timedelta(seconds=30)
    assert worker.run_once().retried == 1
    clock.at += timedelta(seconds=60)
    assert worker.run_once().failed == 1
    clock.at += timedelta(days=1)
    assert worker.run_once().written == 0  # a failed job stays failed, visibly
    with sessions() as s:
        job = s.scalars(select(ArchiveJob).where(ArchiveJob.ticket_id == 4)).one()
        assert (job.status, job.attempts) == ("failed", 3)
        audit = s.scalars(select(ArchiveAudit).where(ArchiveAudit.action == "failed")).one()
        assert audit.detail["ticket_id"] == 4 and "cannot be loaded" in audit.detail["error"]
        assert job_counts(s) == {"done": 1, "failed": 1}


def test_a_render_that_fails_in_the_worker_process_is_retried(env):
    """An exception inside the pool process comes back, is recorded, and the job succeeds once fixed."""
    sessions, storage = env
    cases, clock = Cases(), Clock()
    good = cases.records[1]
    cases.records[1] = replace(good, date_opened=None)  # the template cannot format it
    add_jobs(sessions, (1, "opened"), now=clock.at)
    with ArchiveWorker(sessions, storage, cases, processes=1, clock=clock) as worker:
        assert worker.run_once().retried == 1
        with sessions() as s:
            job = s.scalars(select(ArchiveJob)).one()
            assert job.status == "pending" and "isoformat" in job.last_error
        cases.records[1] = good
        clock.at += timedelta(minutes=1)
        assert worker.run_once().written == 1
    with sessions() as s:
        assert s.scalars(select(ArchiveJob.status)).one() == "done"


class DiesWhenUnpickled(str):
    """A string that kills the process that unpickles it: a render process dying mid-job."""

    def __reduce__(self):
        import os

        return (os._exit, (3,))


def test_a_render_process_that_dies_is_replaced_and_the_job_retried(env):
    """A pool process killed mid-render fails that job (retried later), and the next jobs get a new pool."""
    sessions, storage = env
    cases, clock = Cases(), Clock()
    good = cases.records[1]
    cases.records[1] = replace(good, notes=DiesWhenUnpickled("x"))
    add_jobs(sessions, (1, "opened"), now=clock.at)
    with ArchiveWorker(sessions, storage, cases, processes=1, clock=clock) as worker:
        stats = worker.run_once()
        assert (stats.written, stats.retried) == (0, 1)
        with sessions() as s:
            assert "BrokenProcessPool" in s.scalars(select(ArchiveJob.last_error)).one()
        cases.records[1] = good
        add_jobs(sessions, (2, "opened"), now=clock.at)
        clock.at += timedelta(minutes=1)
        assert worker.run_once().written == 2
    with sessions() as s:
        assert job_counts(s) == {"done": 2}


def test_a_job_claimed_by_a_worker_that_died_is_taken_again_after_its_lease(env):
    """A job left `running` (its worker crashed) is due again once the claim expires."""
    sessions, storage = env
    cases, clock = Cases(), Clock()
    add_jobs(sessions, (2, "opened"), now=clock.at)
    with sessions() as s, s.begin():
        s.execute(update(ArchiveJob).values(status="running", attempts=1, next_attempt_at=clock.at + timedelta(minutes=10)))
    worker = ArchiveWorker(sessions, storage, cases, processes=0, clock=clock)
    assert worker.run_once().written == 0
    clock.at += timedelta(minutes=11)
    assert worker.run_once().written == 1


def test_run_forever_works_until_stopped(env):
    """The daemon loop picks up jobs as they arrive and stops when asked."""
    sessions, storage = env
    stop = threading.Event()
    worker = ArchiveWorker(sessions, storage, Cases(), processes=0)
    thread = threading.Thread(target=worker.run_forever, args=(stop, 0.05))
    thread.start()
    try:
        add_jobs(sessions, (1, "opened"))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with sessions() as s:
                if job_counts(s).get("done") == 1:
                    break
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()
    with sessions() as s:
        assert job_counts(s) == {"done": 1}


def test_two_workers_on_one_database_keep_one_unbroken_chain(env):
    """Two archivers (two daemons) draining the same queue concurrently: every job done once,
    one version per ticket, the chain and manifest intact."""
    sessions, storage = env
    cases = Cases()
    cases.records.update({i: replace(cases.records[1], ticket_ref=f"261122-{i:04d}", customer_name=f"客户{i}") for i in range(6, 17)})
    add_jobs(sessions, *((i, "opened") for i in range(1, 17)))
    workers = [ArchiveWorker(sessions, storage, cases, processes=0, batch=2) for _ in range(2)]
    results = []
    threads = [threading.Thread(target=lambda w=w: results.append(w.run_once())) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert sum(r.written for r in results) == 16 and all(r.failed == 0 for r in results)
    workers[0]._sync_manifest()  # each run_once synced its own view; this one sees all rows
    with sessions() as s:
        assert job_counts(s) == {"done": 16}
        rows = s.scalars(select(ArchiveFile).order_by(ArchiveFile.seq)).all()
        assert [r.seq for r in rows] == list(range(1, 17)) and {r.version for r in rows} == {1}
        assert verify(s, storage, record=False) == []


def test_enqueue_refuses_unknown_reasons(env):
    sessions, _ = env
    with sessions() as s, pytest.raises(ValueError):
        enqueue(s, 1, "whenever")
