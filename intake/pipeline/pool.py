"""The pipeline's worker processes: a backlog parsed and classified in parallel, written here.

Why: the daemon is one Python interpreter. Parsing and classifying are the work that
grows with the input and needs no database (intake/pipeline/prepare.py), so with a
backlog worker processes prepare the groups ahead while the daemon's thread writes the
group before them. One process writes: the daemon's (on SQLite its threads take turns
at the write lock, intake/store/turns.py), and it writes a batch's groups in arrival
order, whichever worker finishes first.

What goes to the workers is a source's batch (`take_many`, the IMAP backlog). Single
items (the Maildir drop, web forms), source reports and quarantine retries are
prepared in the daemon: they are few, and a round trip would only add latency.

The guarantees are the pipeline's own: the daemon commits, then the source lets go. A
worker writes nothing, so one that dies (killed, out of memory, a crash in a C library
on hostile input) costs no transaction: its group is prepared again item by item in a
fresh worker, and an item on which a worker dies twice is quarantined with its bytes,
never retried forever.
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
from intake.pipeline.case import Case, Quarantine
from intake.pipeline.prepare import Prepared
from intake.pipeline.runner import Committed, Items, Pipeline, groups_of
from intake.pipeline.worker import prepare_group, start_worker, worker_ready
from intake.sources.base import Result, SourceRef

log = logging.getLogger("intake.pipeline.runner")

# Groups handed to each worker at a time, per batch, so that a worker has the next
# group at hand while the daemon writes (the hand-over runs through the executor's
# threads; with two in flight a worker waited for work 18% of the time, with four 2%).
IN_FLIGHT = 4
STARTUP_TIMEOUT = 120  # seconds for a worker to import and load the rules
RESTART_BACKOFF = 60.0  # seconds before trying again to start workers that did not start


class PipelinePool:
    """The Sink of the daemon's sources when `pipeline.processes` > 0. Until `start()`
    (and after `close()`, or while no worker can be started) every call runs in this
    process, as with --once."""

    def __init__(self, ctx: Context, pipeline: Pipeline, processes: int, *, work: Callable[[list], list[Prepared]] | None = None):
        self.ctx, self.pipeline, self.processes = ctx, pipeline, processes
        self.work = work or prepare_group  # what a worker runs on a group (a module-level function)
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
        """Start the worker processes and wait until they are ready (imports, rules)."""
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
        """The batch in groups (intake/pipeline/runner.py): the workers prepare the groups
        ahead, up to IN_FLIGHT a worker, while this thread writes the one before them.
        Groups are written in arrival order, whichever worker finishes first."""
        if not self._started or self._closed or not items:
            return self.pipeline.take_many(items, committed)
        groups, results = deque(groups_of(items)), []
        in_flight: deque[tuple[Items, Future | None, ProcessPoolExecutor | None]] = deque()
        while groups or in_flight:
            while groups and len(in_flight) < IN_FLIGHT * self.processes:
                group = groups.popleft()
                in_flight.append((group, *self._hand_over(group)))
            group, future, executor = in_flight.popleft()
            taken = self.pipeline.take_prepared(self._cases(group, future, executor))
            results.extend(taken)
            if committed is not None and committed(group, taken) is False:
                break  # the groups in flight are only prepared: nothing of them is written, the source keeps them
        return results

    # -- handing over -------------------------------------------------------------------
    def _hand_over(self, group: Items) -> tuple[Future | None, ProcessPoolExecutor | None]:
        """The group handed to a worker to prepare; (None, None) if no worker is to be
        had: it is then prepared here when its turn comes."""
        with self._lock:
            while self._solo:
                self._lock.wait()
            executor = self._working_pool()
            if executor is None:
                return None, None
            return self._submit(executor, group), executor

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

    def _cases(self, group: Items, future: Future | None, executor: ProcessPoolExecutor | None) -> list[Case]:
        """The group's items as the transaction takes them, prepared by a worker (or here)."""
        if future is None:
            return [self.pipeline.prepared(raw, ref) for raw, ref in group]
        try:
            prepared = future.result()
        except BrokenProcessPool as exc:
            log.error("a worker process died preparing a group of %d (%s); preparing them one by one", len(group), exc)
            self._restart(executor)
            return [self._alone(raw, ref) for raw, ref in group]
        return [each.case(raw, ref) for each, (raw, ref) in zip(prepared, group, strict=True)]

    def _alone(self, raw: bytes, ref: SourceRef) -> Case:
        """One item of a group a worker died on, prepared again alone in a worker while no
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

    def _alone_in_a_worker(self, raw: bytes, ref: SourceRef) -> Case:
        with self._lock:
            executor = self._working_pool()
            future = self._submit(executor, [(raw, ref)]) if executor is not None else None
        if future is None:  # no worker to be had: here
            return self.pipeline.prepared(raw, ref)
        try:
            [prepared] = future.result()
        except BrokenProcessPool:
            self._restart(executor)
        else:
            return prepared.case(raw, ref)
        # Died again on this very message: the transaction keeps its bytes and says why.
        reason = "the pipeline's worker process died on this message twice (a crash in a library on this input?)"
        log.error("%s %s: %s", ref.source, ref.key, reason)
        return Prepared(unready=Quarantine(reason)).case(raw, ref)

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
        executor = ProcessPoolExecutor(
            self.processes,
            mp_context=multiprocessing.get_context("spawn"),  # no inherited threads or connections
            initializer=start_worker,
            initargs=(self.ctx.config, os.getpid()),
        )
        try:
            for ready in [executor.submit(worker_ready) for _ in range(self.processes)]:
                ready.result(timeout=STARTUP_TIMEOUT)
        except Exception:  # no worker to be had: the daemon prepares the backlog itself rather than not at all
            log.exception(
                "the pipeline's worker process did not start; the daemon prepares the backlog itself, and tries again in %.0f s", RESTART_BACKOFF
            )
            self._retry_at = time.monotonic() + RESTART_BACKOFF
            for process in dict(getattr(executor, "_processes", None) or {}).values():
                process.kill()  # a worker hung in its start would otherwise stay (the pool knows no other way)
            executor.shutdown(wait=False, cancel_futures=True)
            return None
        log.info("the pipeline prepares the backlog in %d worker process(es)", self.processes)
        return executor
