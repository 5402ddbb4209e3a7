"""Signing in and out of the console: argon2 hashes, the session cookie, lock-out, the audit rows."""

from __future__ import annotations

from sqlalchemy import select

from intake.web.console.models import ConsoleAudit, ConsoleUser
from tests.console.conftest import PASSWORD, sign_in


def audit_rows(ctx, action=None):
    with ctx.sessions() as s:
        q = select(ConsoleAudit).order_by(ConsoleAudit.id)
        if action:
            q = q.where(ConsoleAudit.action == action)
        return list(s.scalars(q))


def test_password_is_stored_as_argon2id_hash_never_in_clear(console_ctx, make_user):
    make_user("li.na", "operator")
    with console_ctx.sessions() as s:
        user = s.scalar(select(ConsoleUser).where(ConsoleUser.name == "li.na"))
    assert user.password_hash.startswith("$argon2id$") and PASSWORD not in user.password_hash


def test_sign_in_sets_session_and_lands_on_home_with_audit_row(console_client, make_user, console_ctx):
    make_user("li.na", "operator")
    response = sign_in(console_client, "li.na")
    assert response.status_code == 303
    assert "intake_console=" in response.headers["set-cookie"]
    page = console_client.get(response.headers["location"])
    assert "sign-in" not in page.headers.get("location", "")  # the session is accepted
    assert [r.user for r in audit_rows(console_ctx, "sign_in")] == ["li.na"]
