"""Fixtures and helpers of the OAuth tests (test_oauth_*.py): the loopback identity
provider (tests/servers/oauth_idp.py), a Dovecot whose `oauth2` passdb asks it about every
token, and intake contexts with OAuth2 accounts."""

from __future__ import annotations

import threading
import time
from email.message import EmailMessage

import pytest
from sqlalchemy import select

from intake.config import from_dict
from intake.context import build_context
from intake.daemon import imap_account
from intake.pipeline.runner import Pipeline
from intake.sources.imap import ImapSource
from intake.store.db import make_engine, upgrade
from intake.store.models import Ticket
from tests.servers.dovecot import DovecotServer
from tests.servers.oauth_idp import IdentityProvider

SECRET_ENV = "INTAKE_TEST_OAUTH_SECRET"
SECRET = "app-secret-not-a-real-one"


@pytest.fixture(scope="module")
def idp(tmp_path_factory):
    provider = IdentityProvider(tmp_path_factory.mktemp("idp")).start()
    yield provider
    provider.stop()


@pytest.fixture(scope="module")
def oauth_server(idp):
    server = DovecotServer(oauth2_introspection_url=idp.introspection_url)
    server.start()
    yield server
    server.close()


@pytest.fixture
def dovecot(oauth_server, idp):
    """The OAuth-speaking Dovecot, mail emptied; the token server's state fresh."""
    if oauth_server._proc is None:
        oauth_server.start()
    oauth_server.reset()
    idp.apps.clear()
    idp.access.clear()
    idp.refresh.clear()
    idp.grants.clear()
    idp.refused.clear()
    idp.lifetime, idp.rotate_refresh_tokens = 3600, True
    return oauth_server


@pytest.fixture(autouse=True)
def secret_env(monkeypatch):
    monkeypatch.setenv(SECRET_ENV, SECRET)


def mail(subject: str, sender: str = "li.wei@kehu.cn") -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, "support@example.com", subject
    msg["Message-ID"] = f"<{time.time_ns()}@kehu.cn>"
    msg.set_content(f"{subject}\n打印机无法连接，请帮忙。")
    return msg.as_bytes()


def microsoft_app(idp, dovecot, name="support", user="support", client_id="app-support", **keys) -> dict:
    return {
        "name": name,
        "host": dovecot.host,
        "port": dovecot.port,
        "security": "plain",
        "username": user,
        "auth": "oauth2",
        "oauth_provider": "microsoft",
        "tenant": idp.tenant,
        "client_id": client_id,
        "authority": idp.authority,
        "oauth_ca_file": idp.ca_file,
        "idle_timeout": 5,
        "poll_interval": 0.5,
        **({"client_secret_env": SECRET_ENV} if "certificate_file" not in keys else {}),
        **keys,
    }


def context(tmp_path, accounts: list[dict], **sections):
    data = {
        "database": {"url": f"sqlite:///{tmp_path / 'intake.db'}"},
        "paths": {"var": str(tmp_path / "var")},
        "imap": accounts,
        "pipeline": {"processes": 0},
        "archive": {"enabled": False},
        **sections,
    }
    config = from_dict(data)
    upgrade(make_engine(config.database.url))
    return build_context(config)


def source_for(ctx, account_name: str, stop=None, settings=None) -> ImapSource:
    cfg = next(a for a in ctx.config.imap if a.name == account_name)
    return ImapSource(settings or imap_account(cfg, ctx.config.var), "INBOX", Pipeline(ctx), stop or threading.Event())


def subjects(ctx) -> list[str]:
    with ctx.sessions() as session:
        return sorted(session.scalars(select(Ticket.subject)))


def wait_until(predicate, timeout: float = 20.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def text_of(raw: bytes):
    from email import message_from_bytes
    from email.policy import default

    return message_from_bytes(raw, policy=default)


def logins(dovecot, user: str) -> list[str]:
    return [line for line in dovecot.log_text().splitlines() if f"Login: user=<{user}>" in line]
