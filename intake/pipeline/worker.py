"""A worker process of the pipeline's pool (intake/pipeline/pool.py): it prepares groups,
parsing and classifying them (intake/pipeline/prepare.py), and writes nothing.

It imports nothing of the database, the templates or the mail sources: what it holds
is the rules and the parser.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Any

from intake.config import Config
from intake.pipeline.prepare import Prepared, prepared
from intake.sources.base import SourceRef


@dataclass
class WorkerContext:
    """What prepare (and watch_rules) read of a Context: the config and the rules in force."""

    config: Config
    rules: Any  # classify.Classifier; replaced whole on hot reload

    def classifier(self):
        return self.rules


_ctx: WorkerContext | None = None


def start_worker(config: Config, daemon_pid: int) -> None:
    global _ctx
    from classify import Classifier
    from intake.context import watch_rules
    from intake.ops.logs import setup_logging
    from intake.ops.processes import exit_with_daemon, leave_signals_to_the_daemon

    threading.current_thread().name = "prepare"  # as its log lines say
    leave_signals_to_the_daemon()
    exit_with_daemon(daemon_pid)
    setup_logging(config.log, verbose=True)
    _ctx = WorkerContext(config, Classifier.from_file(config.rules_file))
    watch_rules(_ctx)  # the worker classifies: it follows edits to the rules file as the daemon does


def worker_ready() -> int:
    return os.getpid()


def prepare_group(group: list[tuple[bytes, SourceRef]]) -> list[Prepared]:
    """In a worker: what prepare learns of each item of a group."""
    assert _ctx is not None, "the worker was set up first (start_worker)"
    return [prepared(raw, ref, _ctx) for raw, ref in group]
