"""The pipeline in its own process: a Sink that hands each batch to a worker process.

Why: the daemon is one Python interpreter, and with a backlog it is bound by it: the
IMAP thread's pipeline (parsing, classifying, the ticket's SQL, rendering the mails)
and the mailer share one core while the second idles. With the pipeline in a worker
process, the daemon reads IMAP and sends mail while the worker writes tickets. On
SQLite both queue at the write lock on one shared turn lock (intake/sqlite.py).

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
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Sequence

from intake.config import Config
from intake.context import Context
from intake.ops.metrics import record_take
from intake.pipeline import Pipeline
from intake.sources.base import Result, SourceRef

log = logging.getLogger("intake.pipeline")

Items = Sequence[tuple[bytes, SourceRef]]


class PipelinePool:
    """The Sink of the daemon's sources when `pipeline.processes` > 0. Until `start()`
    (and after `close()`) every call runs in this process, as with --once."""

    def __init__(self, ctx: Context, pipeline: Pipeline, processes: int):
        self.ctx, self.pipeline, self.processes = ctx, pipeline, processes
        self._executor: ProcessPoolExecutor | None = None
        self._guard = threading.Lock()

    def start(self) -> None:
        """Start the worker processes and wait until they are ready (imports, database)."""
        if self.processes <= 0 or self._executor is not None:
            return
        from intake.sqlite import shared_turns

        self._executor = ProcessPoolExecutor(
            self.processes, mp_context=multiprocessing.get_context("spawn"),  # no inherited threads or connections
            initializer=_start_worker, initargs=(self.ctx.config, shared_turns(), os.getpid()),
        )
        for ready in [self._executor.submit(_ready) for _ in range(self.processes)]:
            ready.result()
        log.info("pipeline runs in %d worker process(es)", self.processes)

    def close(self) -> None:
        with self._guard:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)

    # -- the Sink ---------------------------------------------------------------------
    def take(self, raw: bytes, ref: SourceRef) -> Result:
        return self.pipeline.take(raw, ref)

    def report(self, source: str, *, backlog: int | None = None, error: str | None = None) -> None:
        self.pipeline.report(source, backlog=backlog, error=error)

    def take_many(self, items: Items) -> list[Result]:
        executor = self._executor
        if executor is None or not items:
            return self.pipeline.take_many(items)
        try:
            results = self._in_worker(executor, items)
        except BrokenProcessPool as exc:
            log.error("the pipeline's worker process died on a batch of %d (%s); taking them one by one", len(items), exc)
            results = [self._one_by_one(raw, ref) for raw, ref in items]
        self.ctx.wake_outbox.set()  # the mailer is in this process
        return results

    def _in_worker(self, executor: ProcessPoolExecutor, items: Items) -> list[Result]:
        started = time.perf_counter()
        try:
            results = executor.submit(_take_many, list(items)).result()
        except BrokenProcessPool:
            self._restart(executor)
            raise
        elapsed = (time.perf_counter() - started) / len(items)
        for (_, ref), result in zip(items, results):
            record_take(ref.source, ref.channel, result.outcome, elapsed)  # /metrics live in this process
        return results

    def _one_by_one(self, raw: bytes, ref: SourceRef) -> Result:
        executor = self._executor
        if executor is not None:
            try:
                return self._in_worker(executor, [(raw, ref)])[0]
            except BrokenProcessPool:
                pass
        # Died again on this very message: keep its bytes and say why, in this process
        # (the pipeline's quarantine answers with the earlier outcome if it was committed).
        reason = "the pipeline's worker process died on this message twice (a crash in a library on this input?)"
        log.error("%s %s: %s", ref.source, ref.key, reason)
        return self.pipeline.quarantine(raw, ref, reason)

    def _restart(self, broken: ProcessPoolExecutor) -> None:
        with self._guard:
            if self._executor is not broken:
                return  # another thread restarted it already
            self._executor = None
        broken.shutdown(wait=False, cancel_futures=True)
        self.start()


# -- in the worker process ------------------------------------------------------------
_pipeline: Pipeline | None = None


def _start_worker(config: Config, turns: dict, daemon_pid: int) -> None:
    global _pipeline
    from intake.context import build_context
    from intake.daemon import watch_rules
    from intake.logs import setup_logging
    from intake.processes import exit_with_daemon, leave_signals_to_the_daemon
    from intake.sqlite import adopt_turns

    threading.current_thread().name = "pipeline"  # as its log lines say
    leave_signals_to_the_daemon()
    exit_with_daemon(daemon_pid)
    setup_logging(config.log, verbose=True)
    adopt_turns(turns)  # before the first engine: queue with the daemon's own writers
    ctx = build_context(config)
    watch_rules(ctx)  # the worker classifies: it follows edits to the rules file as the daemon does
    _pipeline = Pipeline(ctx)


def _ready() -> int:
    return os.getpid()


def _take_many(items: list[tuple[bytes, SourceRef]]) -> list[Result]:
    return _pipeline.take_many(items)
