"""What runs inside the pipeline's worker process (intake/pipeline/pool.py starts it).

A module of its own so that the worker imports only what taking messages needs: the
daemon's side of the pool (its /metrics counters, the process management) stays in the
daemon. The worker's Pipeline records no metrics: the daemon records each group's
outcomes as they come back (pool._record_taken), in the registry that /metrics serves.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING

from intake.pipeline.runner import Pipeline
from intake.sources.base import Result, SourceRef

if TYPE_CHECKING:
    from intake.config import Config

_pipeline: Pipeline | None = None


def start_worker(config: Config, turns: dict, daemon_pid: int) -> None:
    """The pool's initializer: set the worker up once, before its first group."""
    global _pipeline
    from intake.context import build_context, watch_rules
    from intake.ops.logs import setup_logging
    from intake.ops.processes import exit_with_daemon, leave_signals_to_the_daemon

    threading.current_thread().name = "pipeline"  # as its log lines say
    leave_signals_to_the_daemon()
    exit_with_daemon(daemon_pid)
    setup_logging(config.log, verbose=True)
    if turns:  # SQLite: before the first engine, queue with the daemon's own writers
        from intake.store.turns import adopt_turns

        adopt_turns(turns)
    ctx = build_context(config)
    watch_rules(ctx)  # the worker classifies: it follows edits to the rules file as the daemon does
    _pipeline = Pipeline(ctx, metrics=False)


def worker_pid() -> int:
    """Answered once the worker is set up: the pool waits for it before handing work over."""
    return os.getpid()


def take_group(group: list[tuple[bytes, SourceRef]]) -> list[Result]:
    """Take one group in one transaction."""
    assert _pipeline is not None, "the worker was set up first (start_worker)"
    return _pipeline.take_many(group)
