"""Shared fixtures: a private Dovecot, an aiosmtpd SMTP server, a fresh PostgreSQL database.

- `dovecot_server` (session): one `DovecotServer` for the whole run.
- `dovecot` (function): the same server, every user's mail emptied before the test.
- `smtp_server` (function): a fresh `SmtpServer` on its own port, stopped after the test.
- `pg_url` (function): a SQLAlchemy URL of a database made for this test and dropped after.
  Skips when PostgreSQL is unreachable, unless CI is set: then it fails.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator

import pytest

from tests.servers import DovecotServer, SmtpServer

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(scope="session")
def dovecot_server() -> Iterator[DovecotServer]:
    if shutil.which("dovecot") is None:
        if _in_ci():
            pytest.fail("dovecot is not installed (scripts/test installs it)")
        pytest.skip("dovecot is not installed: run scripts/test once to install it")
    # Its own temp dir, not pytest's: Dovecot's unprivileged users cannot enter
    # /tmp/pytest-of-root (mode 0700). Removed again by close().
    server = DovecotServer()
    server.start()
    yield server
    server.close()


@pytest.fixture
def dovecot(dovecot_server: DovecotServer) -> Iterator[DovecotServer]:
    """The session's Dovecot, running, with every user's mailboxes emptied."""
    if dovecot_server._proc is None:  # a previous test stopped it
        dovecot_server.start()
    dovecot_server.reset()
    yield dovecot_server
    if dovecot_server._proc is None:
        dovecot_server.start()


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    server = SmtpServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """postgresql+psycopg URL of a brand-new database, dropped after the test."""
    import psycopg

    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        if _in_ci():
            pytest.fail(f"PostgreSQL unreachable in CI: {exc}")
        pytest.skip(f"PostgreSQL unreachable at {PG_ADMIN}: {exc}")
    name = f"intake_test_{uuid.uuid4().hex[:12]}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
        finally:
            # FORCE: a test that leaked a connection must not leave its database behind.
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
