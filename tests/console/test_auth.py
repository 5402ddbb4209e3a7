"""Signing in and out of the console: argon2 hashes, the session cookie, lock-out, the audit rows."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from intake.web.console.models import ConsoleAudit, ConsoleUser
from tests.console.conftest import PASSWORD, csrf_of, sign_in


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


# -- intake users ... (the command line that makes the users) ------------------------------------


def run_cli(tmp_path, monkeypatch, capsys, *argv, stdin: str = ""):
    import io

    from intake.cli.main import main

    config = tmp_path / "intake.toml"
    if not config.exists():
        var = tmp_path / "var"
        config.write_text(
            f'[database]\nurl = "sqlite:///{var / "intake.db"}"\n[paths]\nvar = "{var}"\n[console]\nenabled = true\nsecret = "console-test-key"\n'
        )
        assert main(["--config", str(config), "init"]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    capsys.readouterr()
    code = main(["--config", str(config), *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_users_add_list_disable_from_the_command_line(tmp_path, monkeypatch, capsys):
    import json

    code, out, _ = run_cli(
        tmp_path,
        monkeypatch,
        capsys,
        "users",
        "add",
        "zhang.wei",
        "--role",
        "operator",
        "--role",
        "compliance",
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )
    assert code == 0 and "zhang.wei added (compliance, operator)" in out
    code, out, _ = run_cli(tmp_path, monkeypatch, capsys, "users", "list", "--json")
    [row] = [json.loads(line) for line in out.splitlines()]
    assert row["name"] == "zhang.wei" and row["roles"] == ["compliance", "operator"] and row["disabled"] is False
    code, out, _ = run_cli(tmp_path, monkeypatch, capsys, "users", "disable", "zhang.wei")
    assert code == 0
    code, out, _ = run_cli(tmp_path, monkeypatch, capsys, "users", "list")
    assert "zhang.wei: compliance,operator (disabled), last sign-in never" in out


def test_users_add_refuses_bad_input_with_a_clear_message(tmp_path, monkeypatch, capsys):
    code, _, err = run_cli(tmp_path, monkeypatch, capsys, "users", "add", "li", "--role", "operator", "--password-stdin", stdin="short\n")
    assert code == 2 and "at least 10 characters" in err
    code, _, err = run_cli(tmp_path, monkeypatch, capsys, "users", "add", "li na", "--role", "operator", "--password-stdin", stdin=PASSWORD + "\n")
    assert code == 2 and "user name 'li na'" in err
    run_cli(tmp_path, monkeypatch, capsys, "users", "add", "li", "--role", "operator", "--password-stdin", stdin=PASSWORD + "\n")
    code, _, err = run_cli(tmp_path, monkeypatch, capsys, "users", "add", "li", "--role", "operator", "--password-stdin", stdin=PASSWORD + "\n")
    assert code == 2 and "exists already" in err
    code, _, err = run_cli(tmp_path, monkeypatch, capsys, "users", "passwd", "nobody", "--password-stdin", stdin=PASSWORD + "\n")
    assert code == 2 and "no user 'nobody'" in err
    try:
        run_cli(tmp_path, monkeypatch, capsys, "users", "add", "wang", "--role", "admin", "--password-stdin", stdin=PASSWORD + "\n")
    except SystemExit as exc:  # argparse: the role is not one of the choices
        assert exc.code == 2
    assert "invalid choice: 'admin'" in capsys.readouterr().err


def test_a_user_made_on_the_command_line_signs_in_and_a_new_password_ends_old_sessions(tmp_path, monkeypatch, capsys):
    from starlette.testclient import TestClient

    from intake.config import load
    from intake.context import build_context
    from tests.console.conftest import web_app

    run_cli(tmp_path, monkeypatch, capsys, "users", "add", "ops", "--role", "operator", "--password-stdin", stdin=PASSWORD + "\n")
    ctx = build_context(load(tmp_path / "intake.toml"))
    with TestClient(web_app(ctx), follow_redirects=False) as client:
        assert sign_in(client, "ops").status_code == 303
        assert client.get("/console/overview").status_code == 200
        assert run_cli(tmp_path, monkeypatch, capsys, "users", "passwd", "ops", "--password-stdin", stdin="another long password\n")[0] == 0
        assert client.get("/console/overview").status_code == 303  # the old session is over
        client.cookies.clear()
        assert sign_in(client, "ops").status_code == 401
        assert sign_in(client, "ops", "another long password").status_code == 303
    with ctx.sessions() as s:
        actions = [r.action for r in s.scalars(select(ConsoleAudit).order_by(ConsoleAudit.id))]
    assert actions == ["user_add", "sign_in", "user_passwd", "sign_in_failed", "sign_in"]


def test_sign_in_page_has_labelled_fields_and_both_languages(console_client):
    zh = console_client.get("/console/sign-in")
    assert '<label for="name">用户名</label>' in zh.text and '<label for="password">密码</label>' in zh.text
    en = console_client.get("/console/sign-in", headers={"Accept-Language": "en"})
    assert '<html lang="en">' in en.text and '<label for="password">Password</label>' in en.text
    assert csrf_of(en.text)


@pytest.mark.postgres
def test_sign_in_lock_out_and_retry_on_postgresql(tmp_path, pg_url):
    """The same console on PostgreSQL (what several daemons share): users, lock-out, audit, a retry."""
    from starlette.testclient import TestClient

    from intake.context import build_context
    from intake.store.db import make_engine, upgrade
    from intake.web.console.auth import add_user
    from tests.console.conftest import console_config, web_app
    from tests.console.test_operator import customer_mail, quarantine_one

    config = console_config(tmp_path, lockout_failures=2)
    config = config.model_copy(update={"database": config.database.model_copy(update={"url": pg_url})})
    upgrade(make_engine(pg_url))
    ctx = build_context(config)
    add_user(ctx.sessions, "ops", PASSWORD, ["operator"])
    add_user(ctx.sessions, "locked.out", PASSWORD, ["operator"])
    item = quarantine_one(ctx, customer_mail())
    with TestClient(web_app(ctx), follow_redirects=False) as client:
        assert [sign_in(client, "locked.out", "wrong password").status_code for _ in range(2)] == [401, 401]
        assert sign_in(client, "locked.out").status_code == 429
        assert sign_in(client, "ops").status_code == 303
        page = client.get(f"/console/quarantine/{item}")
        assert client.post(f"/console/quarantine/{item}/retry", data={"csrf_token": csrf_of(page.text)}).status_code == 303
    with ctx.sessions() as s:
        actions = [r.action for r in s.scalars(select(ConsoleAudit).where(ConsoleAudit.action != "user_add").order_by(ConsoleAudit.id))]
    assert actions == ["sign_in_failed", "sign_in_failed", "sign_in_locked", "sign_in", "quarantine_retry_requested", "quarantine_retry"]


def test_the_password_is_checked_outside_the_write_lock(console_ctx, console_client, make_user, monkeypatch):
    """On SQLite a transaction holds the one write lock from its BEGIN: a sign-in must not hold
    it while argon2 runs (tens of ms and 64 MiB an attempt), or anyone who can reach the page
    could hold up the pipeline. While the hash is checked, another thread writes and commits."""
    import threading

    from intake.store.db import transaction
    from intake.web.console import audit, auth

    make_user("li.na", "operator")
    real_verify, wrote, written_during_checks = auth._verify, threading.Event(), []

    def write_meanwhile() -> None:
        with transaction(console_ctx.sessions) as session:
            audit.record(session, "pipeline", "meanwhile", "test:lock")
        wrote.set()

    def verify_while_another_writes(hashed: str, password: str) -> bool:
        writer = threading.Thread(target=write_meanwhile, daemon=True)
        writer.start()
        writer.join(timeout=5)
        written_during_checks.append(wrote.is_set())
        return real_verify(hashed, password)

    monkeypatch.setattr(auth, "_verify", verify_while_another_writes)
    assert sign_in(console_client, "li.na").status_code == 303
    console_client.cookies.clear()
    wrote.clear()
    assert sign_in(console_client, "li.na", "wrong password, long enough").status_code == 401
    assert written_during_checks == [True, True], "another writer waited for the sign-in's password check"
