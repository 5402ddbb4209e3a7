"""Fixtures and helpers of the Graph tests (test_graph_*.py): the loopback Graph API
(tests/servers/graph_api.py), its tokens from the loopback identity provider
(tests/servers/oauth_idp.py, standing in for Entra ID's token endpoint), and intake
contexts with [[graph]] accounts."""

from __future__ import annotations

import threading
import time
from email.message import EmailMessage

import pytest
from sqlalchemy import select

from intake.config import from_dict
from intake.context import build_context
from intake.pipeline.runner import Pipeline
from intake.sources.graph import GraphSource, graph_account
from intake.store.db import make_engine, upgrade
from intake.store.models import SourceItem, Ticket
from tests.integration.conftest import NOBODY_ON_DUTY
from tests.integration.oauth_helpers import SECRET, SECRET_ENV, idp, secret_env  # noqa: F401 (fixtures are used by name)
from tests.servers.graph_api import GraphApi, idp_authorizer

MAILBOX = "support@contoso.com"
APP = "graph-app"


@pytest.fixture(scope="module")
def graph_server(tmp_path_factory, idp):
    server = GraphApi(tmp_path_factory.mktemp("graph"), idp_authorizer(idp)).start()
    yield server
    server.stop()


@pytest.fixture
def graph(graph_server, idp):
    """The Graph API with one empty mailbox, and an app granted it; the token server fresh."""
    with graph_server.lock:
        graph_server.mailboxes.clear()
        graph_server.requests.clear()
        graph_server._throttle.clear()
        graph_server.latency, graph_server.max_in_flight = 0.0, 0
        graph_server.failing.clear()
        graph_server.idless.clear()
    graph_server.add_mailbox(MAILBOX)
    idp.apps.clear()
    idp.access.clear()
    idp.grants.clear()
    idp.refused.clear()
    idp.lifetime = 3600
    idp.add_app(APP, secret=SECRET, mailboxes={MAILBOX})
    return graph_server


def account(idp, graph, name: str = "support", **keys) -> dict:
    return {
        "name": name,
        "mailbox": MAILBOX,
        "tenant": idp.tenant,
        "client_id": APP,
        "client_secret_env": SECRET_ENV,
        "authority": idp.authority,
        "oauth_ca_file": idp.ca_file,
        "api_url": graph.base,
        "ca_file": graph.ca_file,
        "poll_interval": 0.2,
        **keys,
    }


def context(tmp_path, accounts: list[dict], **sections):
    data = {
        "database": {"url": f"sqlite:///{tmp_path / 'intake.db'}"},
        "paths": {"var": str(tmp_path / "var"), "staff": str(NOBODY_ON_DUTY)},
        "graph": accounts,
        "pipeline": {"processes": 0},
        "archive": {"enabled": False},
        **sections,
    }
    config = from_dict(data)
    upgrade(make_engine(config.database.url))
    return build_context(config)


def source_for(ctx, name: str = "support", folder: str = "inbox", stop=None, sink=None) -> GraphSource:
    cfg = next(g for g in ctx.config.graph if g.name == name)
    stop = stop or threading.Event()
    return GraphSource(graph_account(cfg, ctx.config.var, stop), folder, sink or Pipeline(ctx), stop)


def mail(subject: str, sender: str = "li.wei@kehu.cn") -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, MAILBOX, subject
    msg["Message-ID"] = f"<{time.time_ns()}.{subject.replace(' ', '-')}@kehu.cn>"
    msg.set_content(f"{subject}\n打印机无法连接，请帮忙。")
    return msg.as_bytes()


def subjects(ctx) -> list[str]:
    with ctx.sessions() as session:
        return sorted(session.scalars(select(Ticket.subject)))


def source_keys(ctx) -> list[str]:
    with ctx.sessions() as session:
        return sorted(session.scalars(select(SourceItem.key)))
