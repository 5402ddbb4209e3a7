"""The pipeline in its own process: a Sink that hands each batch to a worker process.

Why: the daemon is one Python interpreter, and with a backlog it is bound by it: the
IMAP thread's pipeline (parsing, classifying, the ticket's SQL, rendering the mails)
and the mailer share one core while the second idles. With the pipeline in a worker
process, the daemon reads IMAP and sends mail while the worker writes tickets. On
SQLite both queue at the write lock on one shared turn lock (intake/store/sqlite.py).
The other way round (workers that only parse and classify, the daemon writing) was
measured slower: beside the mailer in one interpreter the writing runs at 0.64 of its
speed on PostgreSQL (0.92 on SQLite) against the mailer in another process, more than
parsing takes off it (bench/writer_beside_mailer.md).

What goes to the worker is a source's batch (`take_many`, the IMAP backlog). Single
items (the Maildir drop, web forms), source reports and quarantine retries stay in
the daemon's own Pipeline: they are few, and a round trip would only add latency.

The guarantees are the pipeline's own: the worker commits, then the source lets go.
If the worker dies (killed, out of memory, a crash in a C library on hostile input),
the batch is taken again item by item in a fresh worker, and an item on which a worker
dies twice is quarantined with its bytes, never retried forever.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from intake.context import Context
from intake.ops.metrics import record_take
from intake.pipeline.runner import Committed, Items, Pipeline, groups_of
from intake.pipeline.worker import start_worker, take_group, worker_pid
from intake.sources.base import Result, SourceRef

log = logging.getLogger("intake.pipeline.runner")

# Groups handed to the workers at a time, per batch. With two, the worker waited for
# its next group 18% of the time (py-spy): the hand-over runs through the executor's
# threads and the source's MOVE of the group before; with four, 2%.
IN_FLIGHT = 4
STARTUP_TIMEOUT = 120  # seconds for a worker to import, connect and be ready
RESTART_BACKOFF = 60.0  # seconds before trying again to start workers that did not start


class PipelinePool:
    """The Sink of the daemon's sources when `pipeline.processes` > 0. Until `start()`
    (and after `close()`, or while no worker can be started) every call runs in this
    process, as with --once."""

    def __init__(self, ctx: Context, pipeline: Pipeline, processes: int, *, work: Callable[[list], list[Result]] | None = None):
        self.ctx, self.pipeline, self.processes = ctx, pipeline, processes
        self.work = work or take_group  # what a worker runs on a group (a module-level function)
        self._executor: ProcessPoolExecutor | None = None
        self._started = self._closed = False
        self._retry_at = 0.0  # when to try again to start workers after a failed start
        # Guards the fields below; held through a restart, so that no thread hands work
        # to a pool that is being replaced.
        self._lock = threading.Condition(threading.RLock())
        self._busy = 0  # groups handed to the workers and not yet finished
        self._solo = False  # an item is being tried alone: nothing else goes to the workers
        self._solo_turn = threading.Lock()  # one item tried alone at a time, across threads

    def start(self) -> None:
        """Start the worker processes and wait until they are ready (imports, database)."""
        with self._lock:
            if self.processes > 0 and self._executor is None and not self._closed:
                self._started = True
                self._executor = self._started_pool()

    def close(self) -> None:
        with self._lock:
            executor, self._executor, self._closed = self._executor, None, True
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)

    # -- the Sink ---------------------------------------------------------------------
    def take(self, raw: bytes, ref: SourceRef) -> Result:
        return self.pipeline.take(raw, ref)

    def report(self, source: str, *, backlog: int | None = None, error: str | None = None) -> None:
        self.pipeline.report(source, backlog=backlog, error=error)

    def quarantine(self, raw: bytes, ref: SourceRef, reason: str) -> Result:
        return self.pipeline.quarantine(raw, ref, reason)

    def take_many(self, items: Items, committed: Committed | None = None) -> list[Result]:
        """The batch in groups (intake/pipeline/runner.py), IN_FLIGHT of them handed over at a
        time: while the source lets go of one committed group, the worker is already
        taking the next. Groups commit in order, one after the other."""
        if not self._started or self._closed or not items:
            return self.pipeline.take_many(items, committed)
        # One worker takes the groups in the order handed over, so two in flight still
        # commit in order (a reply after the message it answers); several workers could
        # overtake each other: they get one group of a batch at a time (their gain is
        # several mailboxes at once). A group goes only behind groups handed to the same
        # pool: after a worker died, the groups in flight are taken again first, in order.
        limit = IN_FLIGHT if self.processes == 1 else 1
        groups, results = deque(groups_of(items)), []
        in_flight: deque[tuple[Items, Future, ProcessPoolExecutor | None, float]] = deque()
        go_on = True
        while in_flight or (go_on and groups):
            while go_on and groups and len(in_flight) < limit:
                handed = self._hand_over(groups[0], behind=in_flight[-1][2] if in_flight else _NOTHING)
                if handed is None:
                    break  # the pool changed: what is in flight comes first
                in_flight.append((groups.popleft(), *handed, time.perf_counter()))
            group, future, executor, started = in_flight.popleft()
            taken = self._outcome(group, future, executor, started)
            results.extend(taken)
            self.ctx.wake_outbox.set()  # the mailer is in this process
            if committed is not None and committed(group, taken) is False:
                go_on = False  # the groups already handed over are finished and reported all the same
        return results

    # -- handing over -------------------------------------------------------------------
    def _hand_over(self, group: Items, behind: object) -> tuple[Future, ProcessPoolExecutor | None] | None:
        """The group handed to a worker, or taken here and now if no worker is to be
        had; None (nothing done) if that is not where the groups in flight (`behind`)
        went: they are to be finished first."""
        with self._lock:
            while self._solo:
                self._lock.wait()
            executor = self._working_pool()
            if behind is not _NOTHING and behind is not executor:
                return None
            if executor is not None:
                return self._submit(executor, group), executor
        done: Future = Future()
        done.set_result(self.pipeline.take_many(group))  # raises as in-process taking does
        return done, None

    def _working_pool(self) -> ProcessPoolExecutor | None:
        """With the lock held: the pool, restarted first if a worker died meanwhile (or
        started again, a while after its workers did not start)."""
        executor = self._executor
        if executor is not None and getattr(executor, "_broken", False):  # it knows before its futures fail
            self._restart(executor)
        elif executor is None and self._started and not self._closed and time.monotonic() >= self._retry_at:
            self._executor = self._started_pool()
        return self._executor

    def _submit(self, executor: ProcessPoolExecutor, group: Items) -> Future:
        """With the lock held."""
        try:
            future = executor.submit(self.work, list(group))
        except BrokenProcessPool as exc:  # broke meanwhile: the caller's result() raises it
            future = Future()
            future.set_exception(exc)
            return future
        self._busy += 1
        future.add_done_callback(self._finished)
        return future

    def _finished(self, _future: Future) -> None:
        with self._lock:
            self._busy -= 1
            self._lock.notify_all()

    def _outcome(self, group: Items, future: Future, executor: ProcessPoolExecutor | None, started: float) -> list[Result]:
        try:
            results = future.result()
        except BrokenProcessPool as exc:
            log.error("the pipeline's worker process died on a group of %d (%s); taking them one by one", len(group), exc)
            self._restart(executor)
            return [self._alone(raw, ref) for raw, ref in group]
        if executor is not None:
            _record_taken(group, results, started)
        return results

    def _alone(self, raw: bytes, ref: SourceRef) -> Result:
        """One item of a group a worker died on, taken again alone in a worker while no
        other work is in the workers (of any thread): if a worker dies now, it died on
        this item, which is then quarantined with its bytes, not retried forever."""
        with self._solo_turn:
            with self._lock:
                self._solo = True
                while self._busy:
                    self._lock.wait()
            try:
                return self._alone_in_a_worker(raw, ref)
            finally:
                with self._lock:
                    self._solo = False
                    self._lock.notify_all()

    def _alone_in_a_worker(self, raw: bytes, ref: SourceRef) -> Result:
        with self._lock:
            executor = self._working_pool()
            future = self._submit(executor, [(raw, ref)]) if executor is not None else None
        if future is None:  # no worker to be had: in this process
            return self.pipeline.take(raw, ref)
        started = time.perf_counter()
        try:
            [result] = future.result()
        except BrokenProcessPool:
            self._restart(executor)
        else:
            _record_taken([(raw, ref)], [result], started)
            return result
        # Died again on this very message: keep its bytes and say why, in this process
        # (the pipeline's quarantine answers with the earlier outcome if it was committed).
        reason = "the pipeline's worker process died on this message twice (a crash in a library on this input?)"
        log.error("%s %s: %s", ref.source, ref.key, reason)
        return self.pipeline.quarantine(raw, ref, reason)

    # -- the workers ----------------------------------------------------------------------
    def _restart(self, broken: ProcessPoolExecutor | None) -> None:
        """A fresh pool for a broken one; other threads wait for it (the lock is held)."""
        with self._lock:
            if broken is None or self._executor is not broken:
                return  # another thread restarted it already, or it was closed
            self._executor = None
            broken.shutdown(wait=False, cancel_futures=True)
            self._executor = self._started_pool()

    def _started_pool(self) -> ProcessPoolExecutor | None:
        """A pool whose workers are ready, or None (logged) if they do not start."""
        url = self.ctx.config.database.url
        turns = {}
        if url.startswith("sqlite"):  # imported only here: a PostgreSQL daemon loads no SQLite
            from intake.store.sqlite import database_path
            from intake.store.turns import share_turns

            turns = share_turns(database_path(url))
        executor = ProcessPoolExecutor(
            self.processes,
            mp_context=multiprocessing.get_context("spawn"),  # no inherited threads or connections
            initializer=start_worker,
            initargs=(self.ctx.config, turns, os.getpid()),
        )
        try:
            for ready in [executor.submit(worker_pid) for _ in range(self.processes)]:
                ready.result(timeout=STARTUP_TIMEOUT)
        except Exception:  # no worker to be had: the daemon takes the backlog itself rather than not at all
            log.exception(
                "the pipeline's worker process did not start; the daemon takes the backlog itself, and tries again in %.0f s", RESTART_BACKOFF
            )
            self._retry_at = time.monotonic() + RESTART_BACKOFF
            for process in dict(getattr(executor, "_processes", None) or {}).values():
                process.kill()  # a worker hung in its start would otherwise stay (the pool knows no other way)
            executor.shutdown(wait=False, cancel_futures=True)
            return None
        log.info("pipeline runs in %d worker process(es)", self.processes)
        return executor


_NOTHING = object()  # nothing in flight


def _record_taken(group: Items, results: list[Result], started: float) -> None:
    """/metrics for items a worker took: they live in this process."""
    elapsed = (time.perf_counter() - started) / len(group)
    for (_, ref), result in zip(group, results):
        record_take(ref.source, ref.channel, result.outcome, elapsed)
