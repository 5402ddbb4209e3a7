"""Prometheus metrics: counters the pipeline updates as it goes, gauges read from the
database at scrape time.

The counters live in this process (reset on restart, as Prometheus expects); the
gauges are short read queries, so they show the whole database, whichever daemon did
the work. A database that does not answer turns into `intake_database_up 0`, never
into a failed scrape.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger("intake.ops.metrics")

# not in prometheus_client's global registry: each listener builds its own (registry())
TAKEN = Counter("intake_messages_taken", "Items the pipeline took, by source and outcome", ["source", "outcome"], registry=None)
LATENCY = Histogram(
    "intake_pipeline_seconds",
    "Time from the pipeline receiving an item to its outcome",
    ["channel"],
    registry=None,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)


def record_take(source: str, channel: str, outcome: str, seconds: float) -> None:
    """Called by Pipeline.take once an item has its outcome."""
    TAKEN.labels(source=source, outcome=outcome).inc()
    LATENCY.labels(channel=channel).observe(seconds)


class DatabaseCollector:
    """Gauges computed at scrape time from the database."""

    def __init__(self, sessions: sessionmaker[Session], now: Callable[[], datetime]):
        self.sessions, self.now = sessions, now

    def collect(self) -> Iterator[Metric]:
        from intake.sources.lease import held

        leases = GaugeMetricFamily(
            "intake_lease_held", "1 where this daemon holds the source's lease (reads it), 0 where it stands by", labels=["source"]
        )
        for source, holds in sorted(held.items()):
            leases.add_metric([source], 1 if holds else 0)
        yield leases
        up = GaugeMetricFamily("intake_database_up", "1 when the database answered this scrape's queries")
        try:
            gauges = list(self._gauges())
        except Exception as exc:  # the database is down or locked: say so, keep the scrape
            log.warning("metrics: database unreachable: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from gauges

    def _gauges(self) -> Iterator[Metric]:
        from intake.ops.alerts import is_failing
        from intake.store.models import OutboxMail, QuarantineItem, SourceState

        now = self.now()
        with self.sessions() as session:
            # not "sent": that count grows forever and would cost a scan of the whole table
            outbox = dict(
                session.execute(
                    select(OutboxMail.status, func.count()).where(OutboxMail.status.in_(("pending", "failed"))).group_by(OutboxMail.status)
                ).all()
            )
            oldest = session.scalar(select(func.min(OutboxMail.created_at)).where(OutboxMail.status == "pending"))
            held = session.scalar(select(func.count()).select_from(QuarantineItem).where(QuarantineItem.status == "held"))
            states = list(session.scalars(select(SourceState)))
            archive = _archive_counts(session)
            breaches = _sla_breaches(session)

        g = GaugeMetricFamily("intake_outbox_mails", "Outbox mails waiting (pending) or given up (failed)", labels=["status"])
        for status in ("pending", "failed"):
            g.add_metric([status], outbox.get(status, 0))
        yield g
        yield GaugeMetricFamily("intake_outbox_depth", "Mails waiting to be sent", value=outbox.get("pending", 0))
        yield GaugeMetricFamily(
            "intake_outbox_oldest_pending_age_seconds",
            "Age of the oldest mail waiting to be sent (0: none)",
            value=max(0.0, (now - oldest).total_seconds()) if oldest else 0.0,
        )
        yield GaugeMetricFamily("intake_quarantine_held", "Items held in the quarantine", value=held or 0)
        age = GaugeMetricFamily("intake_source_last_success_age_seconds", "Seconds since each source last succeeded", labels=["source"])
        errors = GaugeMetricFamily("intake_source_errors", "Errors each source has reported", labels=["source"])
        up = GaugeMetricFamily("intake_source_up", "1 when the source's last attempt succeeded, 0 while it fails", labels=["source"])
        for state in states:
            if state.last_success_at is not None:
                age.add_metric([state.source], max(0.0, (now - state.last_success_at).total_seconds()))
            errors.add_metric([state.source], state.errors or 0)
            up.add_metric([state.source], 0 if is_failing(state) else 1)
        yield age
        yield errors
        yield up
        if archive is not None:
            jobs = GaugeMetricFamily("intake_archive_jobs", "Archive jobs by status", labels=["status"])
            for status in ("pending", "running", "done", "failed"):
                jobs.add_metric([status], archive.get(status, 0))
            yield jobs
            yield GaugeMetricFamily(
                "intake_archive_backlog",
                "Archive jobs not yet done (pending or running)",
                value=archive.get("pending", 0) + archive.get("running", 0),
            )
        if breaches is not None:
            yield GaugeMetricFamily("intake_sla_breaches", "Tickets escalated at an SLA breach", value=breaches)


def _archive_counts(session: Session) -> dict | None:
    try:
        from archive.models import ArchiveJob
    except ImportError:
        return None
    return dict(session.execute(select(ArchiveJob.status, func.count()).group_by(ArchiveJob.status)).all())


def _sla_breaches(session: Session) -> int | None:
    try:
        from intake.staffmail.models import SlaState
    except ImportError:
        return None
    return session.scalar(select(func.count()).select_from(SlaState).where(SlaState.escalated_at.is_not(None)))


class TokenCollector:
    """intake_token_expires_seconds{source}: how long each OAuth2 login's access token
    (paths.var/oauth, intake/oauth) is good for; negative once expired."""

    def __init__(self, var: Path, now: Callable[[], datetime], credentials: dict[str, datetime] | None = None):
        self.var, self.now, self.credentials = var, now, credentials or {}

    def collect(self) -> Iterator[Metric]:
        from intake.oauth.store import token_states

        g = GaugeMetricFamily("intake_token_expires_seconds", "Seconds until the OAuth2 access token of each login expires", labels=["source"])
        at = self.now()
        for label, state in token_states(self.var).items():
            g.add_metric([label], (state["expires_at"] - at).total_seconds())
        yield g
        c = GaugeMetricFamily(
            "intake_credential_expires_seconds",
            "Seconds until each OAuth2 login's client secret (secret_expires) or certificate expires",
            labels=["source"],
        )
        for label, expires in self.credentials.items():
            c.add_metric([label], (expires - at).total_seconds())
        yield c


def registry(
    sessions: sessionmaker[Session], now: Callable[[], datetime], var: Path | None = None, credentials: dict[str, datetime] | None = None
) -> CollectorRegistry:
    """What one listener serves: the pipeline's counters, the database gauges, the process,
    and with `var` the OAuth2 tokens' expiry."""
    reg = CollectorRegistry()
    reg.register(TAKEN)
    reg.register(LATENCY)
    reg.register(DatabaseCollector(sessions, now))
    if var is not None:
        reg.register(TokenCollector(var, now, credentials))
    ProcessCollector(registry=reg)
    PlatformCollector(registry=reg)
    GCCollector(registry=reg)
    return reg
