"""The archiver: carries out archive_jobs, rendering in a pool of processes, off the acknowledgement path.

Jobs are claimed per ticket (all due jobs of one ticket become one rendering of its
current state), the record is loaded through the owner's `load_record`, rendered in a
ProcessPoolExecutor, stored, and recorded (row, chain, audit, jobs done) in one
transaction; the manifest is extended right after. A failure is retried with
exponential backoff and after `max_attempts` the job is marked failed with its error:
never silently skipped.

A case whose full rendition fails (RecursionError, its time limit, a MemoryError: see
archive.safe_render) is archived in the plain rendition in the same attempt, its row
saying so and why. A render that kills its process (out of memory, C libraries abort
rather than raise) fails the attempt of every ticket in flight; from the attempt after
FULL_RENDER_ATTEMPTS on, a ticket goes straight to the plain rendition, so no case stays
unarchived. Each original is embedded once (archive.originals).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from archive import originals
from archive.integrity import ManifestMismatch, sync_manifest
from archive.models import ArchiveAudit, ArchiveJob
from archive.record import CaseRecord
from archive.retention import RetentionPolicy, extend_all, record_policy
from archive.safe_render import Rendered, limit_memory, render_with_fallback
from archive.storage import Storage
from archive.writer import is_final, next_version, record_file, store_file
from intake.ops.processes import exit_with_daemon

log = logging.getLogger("intake.archive.worker")

LoadRecord = Callable[[Session, int], CaseRecord]


def utcnow() -> datetime:
    return datetime.now(UTC)


RENDER_NICENESS = 10
FULL_RENDER_ATTEMPTS = 2  # attempts that try the full rendition; later ones render the plain one


def _render(record: CaseRecord, lang: str, version: int, final: bool, earlier: dict[str, str], plain_reason: str | None) -> Rendered:
    # Runs in a pool process: imports weasyprint there, not in the daemon.
    return render_with_fallback(record, lang=lang, version=version, final=final, earlier=earlier, plain_reason=plain_reason)


def _warm_up(daemon_pid: int) -> None:
    # Rendering is batch work: below the daemon's priority, so acknowledgements get the
    # CPU first when a backlog arrives and both compete for the same cores.
    try:
        os.nice(RENDER_NICENESS)
    except OSError:
        pass
    exit_with_daemon(daemon_pid)
    limit_memory()  # a render out of memory fails (MemoryError, or pango aborts) instead of swapping the machine
    # Load fonts and stylesheet once per pool process, before the first job.
    from archive.render import _stylesheet

    _stylesheet()


@dataclass
class RunStats:
    written: int = 0
    retried: int = 0
    failed: int = 0
    plain: int = 0  # written in the plain rendition
    paths: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Claim:
    job_ids: list[int]
    attempts: int  # the most of its jobs, this one included
    last_error: str | None


@dataclass
class InFlight:
    ticket_id: int
    job_ids: list[int]
    record: CaseRecord
    version: int
    copies: dict[str, originals.EmbeddedCopy]
    args: tuple  # what _render takes
    work: Future | Rendered


class ArchiveWorker:
    """Carries out archive jobs. `processes=0` renders in this process (tests, small setups)."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        storage: Storage,
        load_record: LoadRecord,
        *,
        processes: int = 2,
        lang: str = "zh",
        policy: RetentionPolicy = RetentionPolicy(),
        max_attempts: int = 5,
        backoff: timedelta = timedelta(seconds=30),
        lease: timedelta = timedelta(minutes=10),
        batch: int | None = None,
        actor: str = "archiver",
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.sessions = sessions
        self.storage = storage
        self.load_record = load_record
        self.processes = processes
        self.lang = lang
        self.policy = policy
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.lease = lease
        self.batch = batch or max(1, processes) * 3
        self.actor = actor
        self.clock = clock
        self._pool: Executor | None = None
        with sessions() as session, session.begin():
            record_policy(session, policy, actor=actor)  # logs an override below the minimum
            extend_all(session, policy, actor=actor, storage=storage)  # a longer configured retention applies to the past too

    # -- the pool -----------------------------------------------------------------------
    def _executor(self) -> Executor | None:
        if self.processes <= 0:
            return None
        if self._pool is None:
            # forkserver: children do not inherit the daemon's threads, sockets or DB connections
            self._pool = ProcessPoolExecutor(
                self.processes, mp_context=multiprocessing.get_context("forkserver"), initializer=_warm_up, initargs=(os.getpid(),)
            )
        return self._pool

    def _reset_pool(self) -> None:
        # a render process died (killed, out of memory): every future of that pool fails
        # and the pool takes no more work, so the next job starts a fresh one
        log.error("a render process died; starting a new pool")
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> ArchiveWorker:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- claiming -----------------------------------------------------------------------
    def _claim(self, limit: int, busy: set[int]) -> dict[int, Claim]:
        """Claim every due job of up to `limit` tickets not in `busy`: ticket_id → its claim.

        A ticket is claimed whole or not at all, and never while another worker holds a
        live claim on it: its job rows are locked (FOR UPDATE on PostgreSQL; SQLite has
        one writer anyway), so two daemons never render the same ticket's next version.
        A job whose claim expired (its worker died) is due again."""
        now = self.clock()
        claimed: dict[int, Claim] = {}
        with self.sessions() as session, session.begin():
            candidates = session.scalars(
                select(ArchiveJob.ticket_id)
                .where(ArchiveJob.status.in_(("pending", "running")), ArchiveJob.next_attempt_at <= now)
                .group_by(ArchiveJob.ticket_id)
                .order_by(func.min(ArchiveJob.next_attempt_at), func.min(ArchiveJob.id))
            ).all()
            for ticket_id in candidates:
                if len(claimed) >= limit:
                    break
                if ticket_id in busy:  # its next version number depends on the one in flight
                    continue
                jobs = session.scalars(
                    select(ArchiveJob)
                    .where(ArchiveJob.ticket_id == ticket_id, ArchiveJob.status.in_(("pending", "running")))
                    .order_by(ArchiveJob.id)
                    .with_for_update()
                ).all()
                if any(j.status == "running" and j.next_attempt_at > now for j in jobs):
                    continue  # another worker is on it
                due = [j for j in jobs if j.next_attempt_at <= now]
                for job in due:
                    job.status, job.next_attempt_at, job.attempts = "running", now + self.lease, job.attempts + 1
                if due:
                    last = max(due, key=lambda j: j.attempts)
                    claimed[ticket_id] = Claim([j.id for j in due], last.attempts, last.last_error)
        return claimed

    # -- one ticket -----------------------------------------------------------------------
    def _prepare(self, ticket_id: int) -> tuple[CaseRecord, int, dict[str, originals.EmbeddedCopy]]:
        with self.sessions() as session:
            record = self.load_record(session, ticket_id)
            return (record, next_version(session, record.ticket_ref), originals.earlier_copies(session, record.ticket_ref))

    def _finish(self, item: InFlight, rendered: Rendered, stats: RunStats) -> None:
        ticket_id, job_ids, record, version = item.ticket_id, item.job_ids, item.record, item.version
        pdf = rendered.pdf
        path = store_file(self.storage, record, pdf, version=version, lang=self.lang, policy=self.policy)
        note = f"plain rendition: {rendered.note}" if rendered.rendition == "plain" else None
        for attempt in range(5):
            try:
                with self.sessions() as session, session.begin():
                    row = record_file(
                        session,
                        record,
                        pdf,
                        path,
                        version=version,
                        policy=self.policy,
                        ticket_id=ticket_id,
                        actor=self.actor,
                        now=self.clock(),
                        storage=self.storage,
                        rendition=rendered.rendition,
                        rendition_note=rendered.note,
                        originals=originals.entries(record, version, item.copies),
                    )
                    session.execute(
                        update(ArchiveJob)
                        .where(ArchiveJob.id.in_(job_ids))
                        .values(status="done", done_at=self.clock(), last_error=note, archive_file_id=row.id)
                    )
                break
            except IntegrityError:
                # another writer took this place in the chain first: link again on top of it
                if attempt == 4:
                    raise
                log.info("chain position taken for %s, relinking", record.ticket_ref)
        stats.written += 1
        stats.paths.append(str(path))
        if note:
            stats.plain += 1
            log.warning("archived %s v%d → %s in the %s", record.ticket_ref, version, path, note)
        else:
            log.info("archived %s v%d → %s", record.ticket_ref, version, path)

    def _fail(self, job_ids: list[int], error: BaseException, stats: RunStats) -> None:
        message = f"{type(error).__name__}: {error}"[:2000]
        now = self.clock()
        with self.sessions() as session, session.begin():
            for job in session.scalars(select(ArchiveJob).where(ArchiveJob.id.in_(job_ids))):
                job.last_error = message
                if job.attempts >= self.max_attempts:
                    job.status = "failed"
                    stats.failed += 1
                    log.error("archive job %d (ticket %d) failed for good after %d attempts: %s", job.id, job.ticket_id, job.attempts, message)
                    session.add(
                        ArchiveAudit(
                            actor=self.actor,
                            action="failed",
                            detail={"job": job.id, "ticket_id": job.ticket_id, "error": message, "attempts": job.attempts},
                        )
                    )
                else:
                    job.status = "pending"
                    job.next_attempt_at = now + self.backoff * (2 ** (job.attempts - 1))
                    stats.retried += 1
                    log.warning(
                        "archive job %d (ticket %d) attempt %d failed, retry at %s: %s",
                        job.id,
                        job.ticket_id,
                        job.attempts,
                        job.next_attempt_at,
                        message,
                    )

    # -- loops ----------------------------------------------------------------------------
    def run_once(self, stop: threading.Event | None = None) -> RunStats:
        """Carry out every due job until none is due. Keeps up to `batch` tickets in flight,
        claiming more while earlier ones render, so the pool never waits for the database.
        Once `stop` is set, claims nothing more and finishes what is in flight."""
        stats = RunStats()
        inflight: deque[InFlight] = deque()
        while True:
            if len(inflight) < self.batch and not (stop is not None and stop.is_set()):
                busy = {item.ticket_id for item in inflight}
                for ticket_id, claim in self._claim(self.batch - len(inflight), busy).items():
                    started = self._start(ticket_id, claim, stats)
                    if started is not None:
                        inflight.append(started)
            if not inflight:
                break
            item = inflight.popleft()
            try:
                rendered = item.work.result() if isinstance(item.work, Future) else item.work
                self._finish(item, rendered, stats)
            except BrokenProcessPool:
                # A render killed its process, and with it every render in flight: render those
                # again one at a time in a fresh pool, so only the ticket that kills it fails.
                self._reset_pool()
                for one in [item, *inflight]:
                    self._render_alone(one, stats)
                inflight.clear()
            except Exception as error:  # one bad case never stops the others
                log.exception("archiving ticket %d (%s) failed", item.ticket_id, item.record.ticket_ref)
                self._fail(item.job_ids, error, stats)
        if stats.written:
            self._sync_manifest()
        return stats

    def _start(self, ticket_id: int, claim: Claim, stats: RunStats) -> InFlight | None:
        """Load the record and hand it to the pool (or render it here when processes=0)."""
        try:
            record, version, copies = self._prepare(ticket_id)
            plain_reason = None
            if claim.attempts > FULL_RENDER_ATTEMPTS:
                plain_reason = f"{claim.attempts - 1} attempts failed; the last: {claim.last_error}"[:500]
            args = (record, self.lang, version, is_final(record), originals.labels(copies), plain_reason)
            executor = self._executor()
            work: Future | Rendered = _render(*args) if executor is None else executor.submit(_render, *args)
            return InFlight(ticket_id, claim.job_ids, record, version, copies, args, work)
        except Exception as error:
            log.exception("archive job for ticket %d could not start", ticket_id)
            self._fail(claim.job_ids, error, stats)
            if isinstance(error, BrokenProcessPool):
                self._reset_pool()
            return None

    def _render_alone(self, item: InFlight, stats: RunStats) -> None:
        """Render one ticket in the pool with nothing else in flight, and finish or fail it."""
        executor = self._executor()
        # only reached after a BrokenProcessPool, so there is a pool (processes > 0)
        assert executor is not None, "render_alone runs only with render processes"
        try:
            self._finish(item, executor.submit(_render, *item.args).result(), stats)
        except Exception as error:
            log.exception("archiving ticket %d (%s) failed", item.ticket_id, item.record.ticket_ref)
            self._fail(item.job_ids, error, stats)
            if isinstance(error, BrokenProcessPool):
                self._reset_pool()

    def _sync_manifest(self) -> None:
        try:
            with self.sessions() as session:
                sync_manifest(session, self.storage)
        except ManifestMismatch as error:
            # The files and rows are safe; the manifest stays as found, as evidence.
            log.error("manifest not extended: %s", error)

    def run_forever(self, stop: threading.Event, poll: float = 2.0) -> None:
        """run_once, then wait `poll` seconds (or until `stop` is set), until stopped."""
        try:
            while not stop.is_set():
                try:
                    self.run_once(stop)
                except Exception:
                    log.exception("archive worker round failed; going on")
                stop.wait(poll)
        finally:
            self.close()


def enqueue(session: Session, ticket_id: int, reason: str, *, now: datetime | None = None) -> ArchiveJob:
    """The pipeline's side: a job row in the ticket's own transaction."""
    if reason not in ("opened", "changed", "closed"):
        raise ValueError(f"unknown archive job reason {reason!r}")
    job = ArchiveJob(ticket_id=ticket_id, reason=reason, status="pending", attempts=0, next_attempt_at=now or utcnow(), created_at=now or utcnow())
    session.add(job)
    return job


def job_counts(session: Session) -> dict[str, int]:
    """Jobs per status, for `intake status`."""
    rows = session.execute(select(ArchiveJob.status, func.count()).group_by(ArchiveJob.status)).all()
    return {status: n for status, n in rows}


__all__ = ["ArchiveWorker", "RunStats", "enqueue", "job_counts"]
