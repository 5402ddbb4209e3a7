"""Never silent: an OAuth2 account whose token is refused turns red in /healthz and
/metrics, the operators get one mail when it starts failing and one when it recovers, and
the other accounts keep flowing meanwhile. Same loopback identity provider and Dovecot as
test_oauth_imap.py (see tests/servers/oauth_idp.py for what the server stands in for)."""

from __future__ import annotations

import threading
import time

import pytest

from tests.integration.oauth_helpers import (  # noqa: F401 (fixtures are used by name)
    SECRET,
    SECRET_ENV,
    context,
    dovecot,
    idp,
    logins,
    mail,
    microsoft_app,
    oauth_server,
    secret_env,
    source_for,
    subjects,
    text_of,
    wait_until,
)


def run_until_refused(source, ctx) -> None:
    """Run the source until its login is refused: a kicked session may first be seen as a
    broken pipe (doveadm kick returns before the connection is gone)."""
    from intake.store.models import SourceState

    def refused() -> bool:
        assert source.run_once() == 0
        with ctx.sessions() as session:
            state = session.get(SourceState, source.name)
            return "invalid_client" in (state.last_error or "")

    wait_until(refused, timeout=10, what="the refused login")


# -- never silent ---------------------------------------------------------------------------


def test_revoked_token_turns_the_account_red_alerts_once_and_others_flow(tmp_path, idp, dovecot, smtp_server):
    from intake.daemon import Daemon
    from intake.ops.health import health
    from intake.ops.metrics import registry

    idp.add_app("app-support", secret=SECRET, mailboxes={"support"})
    idp.add_app("app-support2", secret=SECRET, mailboxes={"support2"})
    ctx = context(
        tmp_path,
        [microsoft_app(idp, dovecot), microsoft_app(idp, dovecot, name="support2", user="support2", client_id="app-support2")],
        alerts={"to": ["ops@example.com"], "failing_seconds": 2, "check_seconds": 0.2},
        smtp={"host": smtp_server.host, "port": smtp_server.port},
        maildir={"enabled": False},
        spool={"enabled": False},
    )
    daemon = Daemon(ctx)
    runner = threading.Thread(target=daemon.run_forever, daemon=True)
    dovecot.append("support", "INBOX", mail("one before"))
    dovecot.append("support2", "INBOX", mail("two before"))
    runner.start()
    try:
        wait_until(lambda: subjects(ctx) == ["one before", "two before"], what="both accounts' first messages")
        idp.withdraw_mailbox("app-support", "support")  # every token of the app is refused for the mailbox
        dovecot.kick("support")
        dovecot.append("support", "INBOX", mail("one stuck"))
        dovecot.append("support2", "INBOX", mail("two during"))
        wait_until(lambda: "two during" in subjects(ctx), timeout=10, what="the other account's mail")

        alerts = wait_until(lambda: [m for m in smtp_server.messages if m.rcpt_tos == ("ops@example.com",)], what="the alert mail")
        time.sleep(2)  # several more failed attempts and alert checks
        alerts = [m for m in smtp_server.messages if m.rcpt_tos == ("ops@example.com",)]
        assert len(alerts) == 1
        alert = text_of(alerts[0].raw)
        assert "source failing: imap:support/INBOX" in alert["Subject"]
        # the last error when the alert went out: the dropped session, or already the refused login
        assert "Last error" in alert.get_content() and SECRET not in alert.get_content()

        status, body = health(ctx.sessions, ctx.now, ctx.config.var)
        assert status == 200 and body["failing"] == ["imap:support/INBOX"]
        assert "AUTHENTICATIONFAILED" in body["sources"]["imap:support/INBOX"]["last_error"]
        assert body["sources"]["imap:support2/INBOX"]["up"] is True
        assert 3500 < body["tokens"]["imap:support2"]["expires_in_seconds"] <= 3600
        metrics = {(s.name, s.labels.get("source")): s.value for m in registry(ctx.sessions, ctx.now, ctx.config.var).collect() for s in m.samples}
        assert metrics[("intake_source_up", "imap:support/INBOX")] == 0
        assert metrics[("intake_source_up", "imap:support2/INBOX")] == 1
        assert 3500 < metrics[("intake_token_expires_seconds", "imap:support2")] <= 3600
        assert "one stuck" not in subjects(ctx)

        assert idp.issued("client_credentials") >= 3  # a new token was tried each time the old one was refused
        idp.grant_mailbox("app-support", "support")
        wait_until(lambda: "one stuck" in subjects(ctx), timeout=90, what="the account's recovery")
        recovered = wait_until(lambda: [m for m in smtp_server.messages if m.rcpt_tos == ("ops@example.com",)][1:], what="the recovery mail")
        time.sleep(1)
        assert len([m for m in smtp_server.messages if m.rcpt_tos == ("ops@example.com",)]) == 2
        assert "source recovered: imap:support/INBOX" in text_of(recovered[0].raw)["Subject"]
    finally:
        daemon.stop.set()
        runner.join(40)


def test_app_whose_consent_is_withdrawn_turns_red_naming_the_reason(tmp_path, idp, dovecot):
    from intake.ops.health import health

    idp.add_app("app-support", secret=SECRET, mailboxes={"support"})
    ctx = context(tmp_path, [microsoft_app(idp, dovecot)])
    source = source_for(ctx, "support")
    source.run_once()  # logged in: a token in msal's cache
    assert idp.issued("client_credentials") == 1
    idp.revoke_app("app-support")  # its tokens die and the token endpoint refuses new ones
    dovecot.kick("support")  # ... and the server ends the session
    dovecot.append("support", "INBOX", mail("stuck"))
    run_until_refused(source, ctx)

    _, body = health(ctx.sessions, ctx.now, ctx.config.var)
    assert body["failing"] == ["imap:support/INBOX"]
    error = body["sources"]["imap:support/INBOX"]["last_error"]
    assert "invalid_client" in error and SECRET not in error
    assert dovecot.list_uids("support", "INBOX")  # the message waits on the server, untouched


def test_status_shows_the_failing_source_and_the_token(tmp_path, idp, dovecot):
    from intake.ops.status import collect

    idp.add_app("app-support", secret=SECRET, mailboxes={"support"})
    ctx = context(tmp_path, [microsoft_app(idp, dovecot)])
    source = source_for(ctx, "support")
    source.run_once()
    idp.revoke_app("app-support")
    dovecot.kick("support")
    run_until_refused(source, ctx)

    status = collect(ctx)
    [row] = [s for s in status["sources"] if s["source"] == "imap:support/INBOX"]
    assert row["up"] is False and "invalid_client" in row["last_error"]
    assert 3500 < (status["tokens"]["imap:support"]["expires_at"] - ctx.now()).total_seconds() <= 3600


@pytest.mark.parametrize("db", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_one_mail_per_change_not_for_a_blip_and_once_across_daemons(db, make_ctx, tmp_path, request):
    """The alert rules on their own, on SQLite and PostgreSQL: a source failing for less than
    failing_seconds is no news; past it one mail per address, even with two daemons looking;
    one more when it works again."""
    from sqlalchemy import func, select

    from intake.ops.alerts import AlertsWorker
    from intake.pipeline.runner import Pipeline
    from intake.store.models import OutboxMail
    from tests.integration.conftest import Clock

    url = f"sqlite:///{tmp_path / 'alerts.db'}" if db == "sqlite" else request.getfixturevalue("pg_url")
    clock = Clock()
    ctx = make_ctx(url, clock, alerts={"to": ["ops@example.com", "it@example.com"], "failing_seconds": 300})
    other_daemon = AlertsWorker(ctx)
    pipeline, alerts = Pipeline(ctx), AlertsWorker(ctx)

    def mails() -> int:
        with ctx.sessions() as session:
            return session.scalar(select(func.count()).select_from(OutboxMail).where(OutboxMail.kind == "alert"))

    pipeline.report("imap:support/INBOX", error="LoginError: OAUTHBEARER login refused")
    pipeline.report("spool", backlog=0)
    assert alerts.run_once() == []
    clock.advance(seconds=60)
    pipeline.report("imap:support/INBOX", backlog=0)  # a blip, mended within failing_seconds
    clock.advance(seconds=600)
    assert alerts.run_once() == [] and mails() == 0

    pipeline.report("imap:support/INBOX", error="TokenError: invalid_client")
    clock.advance(seconds=299)
    assert alerts.run_once() == []
    clock.advance(seconds=2)
    assert alerts.run_once() + other_daemon.run_once() == [("imap:support/INBOX", "failing")]
    assert alerts.run_once() == [] and mails() == 2  # one per address

    clock.advance(seconds=30)
    pipeline.report("imap:support/INBOX", backlog=0)
    assert other_daemon.run_once() + alerts.run_once() == [("imap:support/INBOX", "recovered")]
    assert alerts.run_once() == [] and mails() == 4


def test_a_credential_near_its_expiry_is_warned_about_once(tmp_path, idp, dovecot):
    """A client secret (its expiry date written as secret_expires) and a certificate (its
    own expiry, 2 days here) within credential_warn_days: one mail each, and the metric."""
    from datetime import date, timedelta

    from sqlalchemy import select

    from intake.oauth import credential_expiries
    from intake.ops.alerts import AlertsWorker
    from intake.ops.metrics import registry
    from intake.store.models import OutboxMail
    from tests.servers.dovecot import make_self_signed_cert

    (tmp_path / "cert").mkdir()
    cert, key = make_self_signed_cert(tmp_path / "cert", common_name="intake-app")  # valid 2 days
    pem = tmp_path / "cert" / "app.pem"
    pem.write_bytes(key.read_bytes() + cert.read_bytes())
    soon = (date.today() + timedelta(days=20)).isoformat()
    later = (date.today() + timedelta(days=400)).isoformat()
    ctx = context(
        tmp_path,
        [
            microsoft_app(idp, dovecot, secret_expires=soon),
            microsoft_app(idp, dovecot, name="support2", user="support2", certificate_file=str(pem)),
            microsoft_app(idp, dovecot, name="staff", user="staff", secret_expires=later),
        ],
        alerts={"to": ["ops@example.com"], "credential_warn_days": 30},
    )
    alerts = AlertsWorker(ctx)

    assert sorted(alerts.run_once()) == [("credential:imap:support", "expiring"), ("credential:imap:support2", "expiring")]
    assert alerts.run_once() == [] and AlertsWorker(ctx).run_once() == []  # once, also after a restart
    with ctx.sessions() as session:
        subjects_sent = sorted(text_of(raw)["Subject"] for raw in session.scalars(select(OutboxMail.raw).where(OutboxMail.kind == "alert")))
    assert len(subjects_sent) == 2
    assert any(s.endswith(("in 19 days: imap:support", "in 20 days: imap:support")) for s in subjects_sent)
    assert any(s.endswith("in 1 days: imap:support2") for s in subjects_sent)

    metrics = {
        s.labels["source"]: s.value
        for m in registry(ctx.sessions, ctx.now, ctx.config.var, credential_expiries(ctx.config)).collect()
        for s in m.samples
        if s.name == "intake_credential_expires_seconds"
    }
    assert 86400 < metrics["imap:support2"] <= 2 * 86400 and 18 * 86400 < metrics["imap:support"] <= 20 * 86400
    assert 399 * 86400 < metrics["imap:staff"] <= 400 * 86400


def test_token_kept_fresh_while_idling_and_a_revoked_app_turns_red_without_a_reconnect(tmp_path, idp, dovecot):
    """Between IDLE rounds the source asks for its token: a token near its expiry is renewed
    with the session still open, and a credential revoked meanwhile turns the account red at
    once, though the server never ended the session."""
    from intake.ops.alerts import is_failing
    from intake.store.models import SourceState

    idp.add_app("app-support", secret=SECRET, mailboxes={"support"})
    idp.lifetime = 120  # within msal's 5-minute margin: each ask renews it
    ctx = context(tmp_path, [microsoft_app(idp, dovecot, idle_timeout=1)])
    stop = threading.Event()
    source = source_for(ctx, "support", stop)
    thread = threading.Thread(target=source.run_forever, daemon=True)
    before = len(logins(dovecot, "support"))
    thread.start()
    try:
        wait_until(lambda: idp.issued("client_credentials") >= 3, what="renewals while idling")
        assert len(logins(dovecot, "support")) - before == 1  # one session all along

        idp.revoke_app("app-support")  # no kick: the session stays open

        def red() -> bool:
            with ctx.sessions() as session:
                state = session.get(SourceState, "imap:support/INBOX")
                return state is not None and is_failing(state) and "invalid_client" in state.last_error

        wait_until(red, timeout=15, what="the account turning red")
    finally:
        stop.set()
        thread.join(10)
