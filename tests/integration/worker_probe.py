"""Work for a pipeline worker that also reports what the worker has loaded. A module of
its own: a test module importing the pool would load, in the worker, what is checked."""

from __future__ import annotations

import sys

from intake.pipeline.worker import take_group
from intake.sources.base import Result

UNNEEDED = ("prometheus_client", "sqlite3", "intake.store.turns")  # the daemon serves /metrics; SQLite and its turns only for SQLite


def take_and_name_libraries(group):
    """A worker's real work, and which of the UNNEEDED libraries it has loaded."""
    results = take_group(group)
    loaded = " ".join(name for name in UNNEEDED if name in sys.modules)
    return [Result(r.outcome, r.ticket, loaded) for r in results]
