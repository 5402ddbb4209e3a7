"""Never silent, the mailer too: a way out that fails for its own sake (an SMTP server refusing
our login, Graph refusing our token) is a red source in `intake status`, /metrics and
/healthz, with one alert mail when it starts failing and one when it recovers; and a
credential of a [[graph]] account (client secret, certificate) near its expiry is warned
about once and shown. The SMTP server is aiosmtpd on loopback with AUTH LOGIN/PLAIN."""

from __future__ import annotations

import subprocess
import sys
from datetime import date, timedelta
from email import message_from_bytes
from email.policy import default

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from sqlalchemy import select

from intake.ops.alerts import AlertsWorker
from intake.outgoing.mailer import OutboxWorker
from intake.pipeline.runner import Pipeline
from intake.sources.base import SourceRef
from intake.store.models import OutboxMail
from tests.integration.conftest import NOBODY_ON_DUTY, Clock
from tests.integration.graph_helpers import (  # noqa: F401 (fixtures are used by name)
    SECRET_ENV,
    account,
    context,
    graph,
    graph_server,
    idp,
    mail,
    secret_env,
)
from tests.servers.dovecot import HOST, free_port, make_self_signed_cert


class LoginSmtp:
    """aiosmtpd that logs in `user` with whichever password the test sets, and keeps what it gets."""

    def __init__(self):
        self.password = "right"
        self.received: list[bytes] = []
        self.refused = 0
        server = self

        class Handler:
            async def handle_DATA(self, smtp, session, envelope):
                if not session.authenticated:
                    return "530 5.7.0 Authentication required"
                server.received.append(envelope.original_content)
                return "250 OK"

        def authenticator(smtp, session, envelope, mechanism, auth_data):
            if isinstance(auth_data, LoginPassword) and auth_data.login == b"intake" and auth_data.password == self.password.encode():
                return AuthResult(success=True)
            self.refused += 1
            return AuthResult(success=False, handled=False)

        self.port = free_port()
        self.controller = Controller(
            Handler(), hostname=HOST, port=self.port, authenticator=authenticator, auth_require_tls=False, decode_data=False, ready_timeout=10
        )

    def subjects(self) -> list[str]:
        return [message_from_bytes(raw, policy=default)["Subject"] for raw in self.received]


@pytest.fixture
def login_smtp():
    server = LoginSmtp()
    server.controller.start()
    yield server
    server.controller.stop()


def test_smtp_refusing_our_login_turns_the_mailer_red_alerts_once_and_recovers(make_ctx, tmp_path, login_smtp, monkeypatch):
    from intake.ops.health import health
    from intake.ops.metrics import registry
    from intake.ops.status import collect

    monkeypatch.setenv("INTAKE_TEST_SMTP_PASSWORD", "right")
    clock = Clock()
    ctx = make_ctx(
        f"sqlite:///{tmp_path / 'intake.db'}",
        clock,
        paths={"staff": str(NOBODY_ON_DUTY)},
        smtp={"host": HOST, "port": login_smtp.port, "username": "intake", "password_env": "INTAKE_TEST_SMTP_PASSWORD", "timeout": 5},
        alerts={"to": ["ops@example.com"], "failing_seconds": 60},
        outbox={"retry_initial_seconds": 1, "retry_max_seconds": 1},
    )
    pipeline, mailer, alerts = Pipeline(ctx), OutboxWorker(ctx), AlertsWorker(ctx)
    pipeline.take(mail("before"), SourceRef("maildir:drop", "1"))
    assert mailer.run_once() == (1, 0)  # green: the mailer's row exists and is up
    assert [s["up"] for s in collect(ctx)["sources"] if s["source"] == "smtp"] == [True]

    clock.advance(seconds=1)
    login_smtp.password = "rotated"  # the server's password changed; ours did not
    pipeline.take(mail("during", sender="wang.fang@kehu.cn"), SourceRef("maildir:drop", "2"))
    for _ in range(3):  # several attempts, over more than failing_seconds
        assert mailer.run_once()[0] == 0
        clock.advance(seconds=30)
        alerts.run_once()
    assert login_smtp.refused >= 3

    status, body = health(ctx.sessions, ctx.now, ctx.config.var)
    assert status == 200 and body["failing"] == ["smtp"]
    assert "SMTP login to" in body["sources"]["smtp"]["last_error"] and "535" in body["sources"]["smtp"]["last_error"]
    assert "right" not in body["sources"]["smtp"]["last_error"]
    [row] = [s for s in collect(ctx)["sources"] if s["source"] == "smtp"]
    assert row["up"] is False
    metrics = {(s.name, s.labels.get("source")): s.value for m in registry(ctx.sessions, ctx.now).collect() for s in m.samples}
    assert metrics[("intake_source_up", "smtp")] == 0
    with ctx.sessions() as session:
        mails = list(session.execute(select(OutboxMail.kind, OutboxMail.status, OutboxMail.raw)))
    alert_rows = [m for m in mails if m.kind == "alert"]
    assert len(alert_rows) == 1  # one mail, however many failed attempts and looks
    assert "source failing: smtp" in message_from_bytes(alert_rows[0].raw, policy=default)["Subject"]
    assert all(m.status == "pending" for m in mails if m.kind != "alert" and b"during" in m.raw)  # a refused login gives no mail up

    login_smtp.password = "right"  # mended
    clock.advance(seconds=5)
    mailer.run_once()  # the waiting acknowledgement and the alert go out
    assert alerts.run_once() == [("smtp", "recovered")]
    mailer.run_once()
    assert alerts.run_once() == [] and mailer.run_once() == (0, 0)
    assert sorted(s for s in login_smtp.subjects() if "[intake]" in s) == [
        "[intake] 来源已恢复 source recovered: smtp",
        "[intake] 来源故障 source failing: smtp",
    ]
    assert len([s for s in login_smtp.subjects() if "during" in s]) == 1
    _, body = health(ctx.sessions, ctx.now, ctx.config.var)
    assert body["failing"] == []
    with ctx.sessions() as session:
        assert set(session.scalars(select(OutboxMail.status))) == {"sent"}


def test_a_graph_credential_near_its_expiry_is_warned_once_and_shown(tmp_path, idp, graph):
    from intake.oauth import credential_expiries
    from intake.ops.metrics import registry
    from intake.ops.status import collect

    (tmp_path / "cert").mkdir()
    cert, key = make_self_signed_cert(tmp_path / "cert", common_name="intake-graph")  # valid 2 days
    pem = tmp_path / "cert" / "app.pem"
    pem.write_bytes(key.read_bytes() + cert.read_bytes())
    soon = (date.today() + timedelta(days=10)).isoformat()
    later = (date.today() + timedelta(days=400)).isoformat()
    accounts = [
        account(idp, graph, secret_expires=soon),
        account(idp, graph, name="cert", client_secret_env="", certificate_file=str(pem), folders=["inbox"]),
        account(idp, graph, name="later", secret_expires=later),
    ]
    ctx = context(tmp_path, accounts, alerts={"to": ["ops@example.com"], "credential_warn_days": 30})
    alerts = AlertsWorker(ctx)
    assert sorted(alerts.run_once()) == [("credential:graph:cert", "expiring"), ("credential:graph:support", "expiring")]
    assert alerts.run_once() == [] and AlertsWorker(ctx).run_once() == []  # once, also after a restart
    with ctx.sessions() as session:
        sent = sorted(message_from_bytes(raw, policy=default)["Subject"] for raw in session.scalars(select(OutboxMail.raw)))
    assert len(sent) == 2 and any("graph:support" in s and ("in 9 days" in s or "in 10 days" in s) for s in sent)

    shown = collect(ctx)["credentials"]
    assert shown["graph:support"]["warn"] and 9 <= shown["graph:support"]["days_left"] <= 10
    assert shown["graph:cert"]["warn"] and shown["graph:later"]["warn"] is False
    metrics = {
        s.labels["source"]: s.value
        for m in registry(ctx.sessions, ctx.now, ctx.config.var, credential_expiries(ctx.config)).collect()
        for s in m.samples
        if s.name == "intake_credential_expires_seconds"
    }
    assert 86400 < metrics["graph:cert"] <= 2 * 86400 and 399 * 86400 < metrics["graph:later"] <= 400 * 86400

    config = tmp_path / "intake.toml"
    config.write_text(
        f'[database]\nurl = "sqlite:///{tmp_path / "intake.db"}"\n[paths]\nvar = "{tmp_path / "var"}"\n'
        f'[[graph]]\nname = "support"\nmailbox = "support@contoso.com"\ntenant = "t"\nclient_id = "c"\n'
        f'client_secret_env = "{SECRET_ENV}"\nsecret_expires = "{soon}"\n',
        encoding="utf-8",
    )
    out = subprocess.run([sys.executable, "-m", "intake.cli.main", "--config", str(config), "status"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert f"graph:support: client secret/certificate expires {soon}" in out.stdout and "RENEW IT" in out.stdout
