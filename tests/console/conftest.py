"""The console on a real SQLite database, served by the web listener's own app (create_app with
the console's routes), driven through Starlette's TestClient.

- `console_ctx`: a Context on a fresh, upgraded SQLite file, [console] enabled with a fixed key.
- `console_client`: a TestClient of the whole web app (customer form + console).
- `make_user(name, *roles, password=PASSWORD)`: a console user, made as `intake users add` does.
- `sign_in(client, name, password=PASSWORD)`: sign in through the form; returns the response.
- `csrf_of(html)`: the CSRF token of a page's forms.
"""

from __future__ import annotations

import re

import pytest
from starlette.testclient import TestClient

from intake.config import from_dict
from intake.context import build_context
from intake.pipeline.runner import Pipeline
from intake.store.db import make_engine, upgrade
from intake.web.app import create_app
from intake.web.console import console_routes
from intake.web.console.auth import add_user
from intake.web.settings import settings_from_config

PASSWORD = "correct horse battery"


def console_config(tmp_path, **console):
    var = tmp_path / "var"
    return from_dict(
        {
            "database": {"url": f"sqlite:///{var / 'intake.db'}"},
            "paths": {"var": str(var)},
            "maildir": {"path": str(var / "drop")},
            "spool": {"path": str(var / "spool")},
            "web": {"csrf_secret": "console-test-form-secret"},
            "console": {"enabled": True, "secret": "console-test-key", **console},
        }
    )


@pytest.fixture
def console_ctx(tmp_path):
    config = console_config(tmp_path)
    upgrade(make_engine(config.database.url))
    return build_context(config)


def web_app(ctx):
    """The daemon's web app with the console mounted, as `intake run --listen` builds it."""
    return create_app(settings_from_config(ctx.config, "127.0.0.1", 8080), Pipeline(ctx), ctx.config.spool.path, extra_routes=console_routes(ctx))


@pytest.fixture
def console_client(console_ctx):
    with TestClient(web_app(console_ctx), follow_redirects=False) as client:
        yield client


@pytest.fixture
def make_user(console_ctx):
    def make(name: str, *roles: str, password: str = PASSWORD):
        return add_user(console_ctx.sessions, name, password, roles)

    return make


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


def sign_in(client: TestClient, name: str, password: str = PASSWORD, next_url: str = ""):
    page = client.get("/console/sign-in")
    return client.post("/console/sign-in", data={"name": name, "password": password, "next": next_url, "csrf_token": csrf_of(page.text)})


@pytest.fixture
def signed_in(console_client, make_user):
    """signed_in(name, *roles): a user made and signed in on console_client; returns the client."""

    def go(name: str, *roles: str) -> TestClient:
        make_user(name, *roles)
        response = sign_in(console_client, name)
        assert response.status_code == 303, response.text
        return console_client

    return go
