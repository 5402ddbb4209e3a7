"""Never silent: a mail to the [alerts] addresses once when a source starts failing, and
once when it recovers.

A source (an IMAP account's mailbox, the drop folder, the spool) records each fetch in
source_state: its last success and its last error. It is failing while its last error is
newer than its last success. Every `check_seconds` this worker compares that with what
the operators were told (source_alerts) and, when a source has been failing for
`failing_seconds` (a dropped connection that the next attempt mends is no news), queues
the "failing" mail through the outbox; when it succeeds again, the "recovered" one. The
row is changed by a conditional UPDATE in the mail's transaction, so each change is
mailed exactly once, across restarts and across daemons sharing the database.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import Boolean, CursorResult, String, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from intake.context import Context
from intake.outgoing.queue import queue_mail
from intake.store.db import Base, transaction
from intake.store.models import SourceState, UTCDateTime

log = logging.getLogger("intake.ops.alerts")


class SourceAlert(Base):
    """What the operators were last told about one source (migration 0007)."""

    __tablename__ = "source_alerts"

    source: Mapped[str] = mapped_column(String(200), primary_key=True)
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    down: Mapped[bool] = mapped_column(Boolean, default=False)  # the "failing" mail went out
    changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


def _changed(result) -> bool:
    """Whether the conditional UPDATE changed the row (another daemon did not first)."""
    return cast(CursorResult, result).rowcount == 1


def is_failing(state: SourceState) -> bool:
    """The source's last attempt failed: its last error is newer than its last success."""
    return state.last_error_at is not None and (state.last_success_at is None or state.last_error_at > state.last_success_at)


class MailerHealth:
    """The mailer's way out (the SMTP server, Graph's sendMail) watched like a source: its
    row in source_state ("smtp", "graph-send:<account>") turns red when a send fails for the
    server's or the login's sake (TransportError.server), green at the next mail that goes
    out, so the alerts, `intake status`, /metrics and /healthz tell of it as of a mailbox.
    A change is written at once; the same news at most every `every` seconds (the mailer
    sends hundreds a second through a backlog). Writing it never stops a send."""

    def __init__(self, ctx: Context, name: str, every: float = 10.0):
        self.ctx, self.name, self.every = ctx, name, every
        self._last: tuple[str | None, float] | None = None  # (error or None, monotonic time written)

    def sent(self) -> None:
        self._record(None)

    def failed(self, error: str) -> None:
        self._record(error)

    def _record(self, error: str | None) -> None:
        import time

        now = time.monotonic()
        if self._last is not None and self._last[0] == error and now - self._last[1] < self.every:
            return
        try:
            with transaction(self.ctx.sessions) as session:
                state = session.get(SourceState, self.name) or SourceState(source=self.name, errors=0)
                at = self.ctx.now()
                if error is None:
                    state.last_success_at = at
                else:
                    state.last_error, state.last_error_at, state.errors = error[:2000], at, (state.errors or 0) + 1
                session.merge(state)
            self._last = (error, now)
        except Exception:
            log.exception("mailer health: could not record %s", self.name)


class AlertsWorker:
    def __init__(self, ctx: Context):
        self.ctx = ctx

    def run_forever(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.run_once()
            except Exception:
                log.exception("alerts: checking the sources failed")
            stop.wait(self.ctx.config.alerts.check_seconds)

    def run_once(self) -> list[tuple[str, str]]:
        """Look at every source once; returns the mails queued as (source, "failing" | "recovered")."""
        queued: list[tuple[str, str]] = []
        with self.ctx.sessions() as session:
            states = list(session.scalars(select(SourceState)))
            told = {a.source: (a.failing_since, a.down) for a in session.scalars(select(SourceAlert))}
        for state in states:
            try:
                change = self._check(state, *told.get(state.source, (None, None)))
            except IntegrityError:  # another daemon made the row first: its look counts
                continue
            if change:
                queued.append((state.source, change))
        queued += self._credentials(told)
        if queued:
            self.ctx.wake_outbox.set()
        return queued

    def _check(self, state: SourceState, failing_since: datetime | None, down: bool | None) -> str | None:
        now, cfg = self.ctx.now(), self.ctx.config.alerts
        failing = is_failing(state)
        with transaction(self.ctx.sessions) as session:
            if down is None:
                session.execute(insert(SourceAlert).values(source=state.source, down=False))
                down = False
            row = update(SourceAlert).where(SourceAlert.source == state.source)
            if failing and failing_since is None:
                failing_since = state.last_error_at or now
                session.execute(row.values(failing_since=failing_since))
            if failing and not down and failing_since is not None and now - failing_since >= timedelta(seconds=cfg.failing_seconds):
                if _changed(session.execute(row.where(SourceAlert.down.is_(False)).values(down=True, changed_at=now))):
                    self._mail(session, "failing", state, failing_since)
                    return "failing"
            if not failing and failing_since is not None:
                session.execute(row.values(failing_since=None))
            if not failing and down:
                if _changed(session.execute(row.where(SourceAlert.down.is_(True)).values(down=False, changed_at=now))):
                    self._mail(session, "recovered", state, failing_since)
                    return "recovered"
        return None

    def _credentials(self, told: dict) -> list[tuple[str, str]]:
        """One mail per credential (client secret, certificate) within credential_warn_days
        of its expiry; a renewed one (another expiry) is warned about again in its turn. The
        row is source_alerts' "credential:<label>", its failing_since the expiry warned about."""
        from intake.oauth import credential_expiries

        now, cfg = self.ctx.now(), self.ctx.config.alerts
        warned = []
        for label, expires in credential_expiries(self.ctx.config).items():
            key = f"credential:{label}"
            if expires - now > timedelta(days=cfg.credential_warn_days) or told.get(key, (None,))[0] == expires:
                continue
            try:
                with transaction(self.ctx.sessions) as session:
                    if key not in told:
                        session.execute(insert(SourceAlert).values(source=key, down=False))
                    not_yet = (SourceAlert.failing_since.is_(None)) | (SourceAlert.failing_since != expires)
                    if _changed(
                        session.execute(
                            update(SourceAlert).where(SourceAlert.source == key, not_yet).values(failing_since=expires, down=True, changed_at=now)
                        )
                    ):
                        log.warning("alerts: the credential of %s expires %s", label, expires)
                        mail = credential_mail(label, expires, now, self.ctx.config.tickets.timezone)
                        for address in cfg.to:
                            queue_mail(session, self.ctx, None, kind="alert", mail=mail, to_addr=address)
                        warned.append((key, "expiring"))
            except IntegrityError:  # another daemon made the row first
                continue
        return warned

    def _mail(self, session, change: str, state: SourceState, since: datetime | None) -> None:
        log.warning("alerts: %s %s", state.source, change)
        recipients = self.ctx.config.alerts.to
        if not recipients:
            return
        mail = alert_mail(change, state, since, self.ctx.config.tickets.timezone)
        for address in recipients:
            queue_mail(session, self.ctx, None, kind="alert", mail=mail, to_addr=address)


def credential_mail(label: str, expires: datetime, now: datetime, timezone: str):
    from zoneinfo import ZoneInfo

    from intake.outgoing.templates import RenderedMail

    when = expires.astimezone(ZoneInfo(timezone)).strftime("%Y-%m-%d %H:%M %Z")
    days = max(0, (expires - now).days)
    return RenderedMail(
        subject=f"[intake] 凭据即将过期 credential expires in {days} days: {label}",
        text=(
            f"{label} 的 OAuth2 凭据（客户端密钥或证书）将于 {when} 过期，届时无法登录邮箱。请提前更换并更新配置。\n"
            f"The OAuth2 credential (client secret or certificate) of {label} expires {when}; the mailbox "
            "cannot be logged in to after that. Make a new one in the app registration and update the "
            "configuration (client_secret_env and secret_expires, or certificate_file).\n"
        ),
        html=None,
    )


def alert_mail(change: str, state: SourceState, since: datetime | None, timezone: str):
    from zoneinfo import ZoneInfo

    from intake.outgoing.templates import RenderedMail

    def local(at: datetime | None) -> str:
        return at.astimezone(ZoneInfo(timezone)).strftime("%Y-%m-%d %H:%M:%S %Z") if at else "-"

    if change == "failing":
        subject = f"[intake] 来源故障 source failing: {state.source}"
        text = (
            f"来源 {state.source} 从 {local(since)} 起无法收取邮件。\n"
            f"The source {state.source} has been failing since {local(since)}.\n\n"
            f"最近错误 Last error ({local(state.last_error_at)}):\n{state.last_error}\n\n"
            f"最近成功 Last success: {local(state.last_success_at)}\n\n"
            "恢复时会再通知一次。You will get one more mail when it recovers.\n"
        )
    else:
        subject = f"[intake] 来源已恢复 source recovered: {state.source}"
        text = (
            f"来源 {state.source} 已恢复，于 {local(state.last_success_at)} 成功收取。\n"
            f"The source {state.source} works again: it succeeded at {local(state.last_success_at)}"
            f" (failing since {local(since)}).\n"
        )
    return RenderedMail(subject=subject, text=text, html=None)
