"""What `intake status` shows: per source, outbox, quarantine, tickets."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from intake.context import Context
from intake.oauth.store import token_states
from intake.ops.alerts import is_failing
from intake.store.models import OutboxMail, QuarantineItem, SourceItem, SourceState, Ticket

# What the counts of sources and mail cover: a day, through the indexes on source_items.at
# and outbox.sent_at; a count over all history grew with it (two years kept for compliance).
RECENT = timedelta(hours=24)


def collect(ctx: Context) -> dict:
    since = ctx.now() - RECENT
    with ctx.read_sessions() as session:
        # grouped by an expression, not the column: SQLite would otherwise group along the
        # (source, key) index, reading every row ever taken (96 ms for 300,000, against 1 ms)
        source = (SourceItem.source + "").label("source")
        taken = dict(session.execute(select(source, func.count()).where(SourceItem.at >= since).group_by(source)).all())
        states = {s.source: s for s in session.scalars(select(SourceState))}
        sources = [
            {
                "source": name,
                "last_success_at": s.last_success_at if s else None,
                "backlog": s.backlog if s else None,
                "taken_24h": taken.get(name, 0),
                "errors": (s.errors or 0) if s else 0,
                "last_error": s.last_error if s else None,
                "last_error_at": s.last_error_at if s else None,
                "up": not (s and is_failing(s)),  # its last attempt succeeded (intake/ops/alerts.py)
            }
            for name in sorted(set(taken) | set(states))
            for s in [states.get(name)]
        ]
        outbox = {
            status: session.scalar(select(func.count()).select_from(OutboxMail).where(OutboxMail.status == status))
            for status in ("pending", "failed")
        }
        sent = session.scalar(select(func.count()).select_from(OutboxMail).where(OutboxMail.sent_at >= since))
        oldest = session.scalar(select(func.min(OutboxMail.created_at)).where(OutboxMail.status == "pending"))
        quarantine = dict(session.execute(select(QuarantineItem.status, func.count()).group_by(QuarantineItem.status)).all())
        tickets = dict(session.execute(select(Ticket.status, func.count()).group_by(Ticket.status)).all())
        archive = _archive_counts(session)
    return {
        "paths": paths(ctx.config),
        "sources": sources,
        "outbox": {"pending": outbox["pending"], "sent_24h": sent, "failed": outbox["failed"], "oldest_pending": oldest},
        "quarantine": {"held": quarantine.get("held", 0), "released": quarantine.get("released", 0)},
        "tickets": tickets,
        **({"archive": archive} if archive is not None else {}),
        "tokens": token_states(ctx.config.var),  # OAuth2 logins: each access token's expiry
        "credentials": credentials(ctx),  # and each client secret's or certificate's
    }


def paths(config) -> dict:
    """Every file and folder the daemon uses, resolved: what a relative path in the config became."""
    from classify.rules import named_lexicon
    from intake.config import masked_url

    return {
        "config": str(config.source_file.resolve()) if config.source_file else None,
        "database": masked_url(config.database.url),
        "var": str(config.var),
        "drop": str(config.maildir.path) if config.maildir.enabled else None,
        "spool": str(config.spool.path) if config.spool.enabled else None,
        "outgoing": str(config.outgoing_maildir),
        "archive": str(config.archive.path) if config.archive.storage == "local" else f"s3://{config.archive.s3_bucket}",
        "rules": str(config.rules_file),
        "lexicon": str(lexicon) if (lexicon := named_lexicon(config.rules_file)) is not None else None,
        "staff": str(config.staff_file),
        "templates": [str(t) for t in config.template_dirs],
    }


def _archive_counts(session) -> dict | None:
    try:
        from archive.models import ArchiveJob
    except ImportError:
        return None
    counts = dict(session.execute(select(ArchiveJob.status, func.count()).group_by(ArchiveJob.status)).all())
    return {status: counts.get(status, 0) for status in ("pending", "running", "done", "failed")}


def credentials(ctx: Context) -> dict:
    """{login: {"expires_at", "days_left", "warn"}} of every OAuth2 client secret (secret_expires)
    and certificate whose expiry is known; `warn` within [alerts] credential_warn_days."""
    from intake.oauth import credential_expiries

    now, warn_days = ctx.now(), ctx.config.alerts.credential_warn_days
    found = {}
    for label, expires in credential_expiries(ctx.config).items():
        days = (expires - now).total_seconds() / 86400
        found[label] = {"expires_at": expires, "days_left": round(days, 1), "warn": days <= warn_days}
    return found
