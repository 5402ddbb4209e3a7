"""The console's guard, checked by walking the route table (a new page is covered without
being named here): no session -> sign-in; CSRF missing -> 403; each role only its pages;
the session cookie's flags; lock-out; forged, expired and signed-out cookies."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from intake.context import build_context
from intake.store.db import make_engine, upgrade
from intake.store.models import QuarantineItem
from intake.web.console.models import ConsoleAudit
from intake.web.console.routes import COMPLIANCE, OPERATOR, PREFIX, load_pages
from tests.console.conftest import PASSWORD, console_config, csrf_of, sign_in, web_app

PAGES = load_pages()


def url_of(page) -> str:
    path = page.path
    for name, value in page.example.items():
        path = re.sub(r"\{" + name + r"(:[a-z]+)?\}", str(value), path)
    assert "{" not in path, f"{page.path}: give example={{...}} for its path parameters so this walk can reach it"
    return PREFIX + path


GUARDED = [(p, m) for p in PAGES for m in p.methods if not p.public]


def call(client: TestClient, method: str, url: str, **kw):
    return client.request(method, url, **kw)


def test_the_table_holds_the_operator_pages_and_only_sign_in_and_css_are_public():
    paths = {p.path for p in PAGES}
    assert {"/overview", "/sources", "/outbox", "/archive-jobs", "/quarantine", "/quarantine/{item:int}/retry"} <= paths
    assert sorted((p.path, p.methods) for p in PAGES if p.public) == [("/console.css", ("GET",)), ("/sign-in", ("GET",)), ("/sign-in", ("POST",))]


@pytest.mark.parametrize(("page", "method"), GUARDED, ids=[f"{m} {p.path}" for p, m in GUARDED])
def test_every_console_url_without_a_session_goes_to_sign_in(console_client, page, method):
    answer = call(console_client, method, url_of(page), data={"reason": "x"} if method == "POST" else None)
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/console/sign-in")
    assert "set-cookie" not in answer.headers or "intake_console=" not in answer.headers["set-cookie"]


@pytest.mark.parametrize(("page", "method"), GUARDED, ids=[f"{m} {p.path}" for p, m in GUARDED])
def test_a_forged_or_tampered_session_cookie_is_no_session(console_client, signed_in, page, method):
    client = signed_in("both", OPERATOR, COMPLIANCE)
    real = client.cookies.get("intake_console")
    user_id, epoch, issued, nonce, mac = real.split(".")
    for forged in (f"{user_id}.{epoch}.{int(issued) + 1}.{nonce}.{mac}", f"{user_id}.{epoch}.{issued}.{nonce}.{'0' * 64}", "1.0.1.x.y"):
        client.cookies.set("intake_console", forged, path="/console")
        answer = call(client, method, url_of(page))
        assert answer.status_code == 303 and answer.headers["location"].startswith("/console/sign-in")


POSTS = [p for p in PAGES if "POST" in p.methods and not p.public]


@pytest.mark.parametrize("page", POSTS, ids=[p.path for p in POSTS])
def test_every_post_without_its_csrf_token_is_refused(signed_in, page):
    client = signed_in("both", OPERATOR, COMPLIANCE)
    assert call(client, "POST", url_of(page), data={"reason": "x"}).status_code == 403
    assert call(client, "POST", url_of(page), data={"reason": "x", "csrf_token": "1700000000.deadbeef"}).status_code == 403


def test_sign_in_itself_needs_the_csrf_token(console_client, make_user):
    make_user("ops", OPERATOR)
    answer = console_client.post("/console/sign-in", data={"name": "ops", "password": PASSWORD})
    assert answer.status_code == 403 and "intake_console=" not in answer.headers.get("set-cookie", "")


ROLE_PAGES = [(p, m) for p in PAGES for m in p.methods if p.roles and len(p.roles) == 1]


@pytest.mark.parametrize(("page", "method"), ROLE_PAGES, ids=[f"{m} {p.path}" for p, m in ROLE_PAGES])
def test_each_role_is_refused_the_other_roles_pages(signed_in, page, method, console_ctx):
    other = COMPLIANCE if OPERATOR in page.roles else OPERATOR
    client = signed_in("someone", other)
    token = csrf_of(client.get("/console/sign-in", follow_redirects=True).text)
    answer = call(client, method, url_of(page), data={"csrf_token": token, "reason": "x"} if method == "POST" else None)
    assert answer.status_code == 403
    with console_ctx.sessions() as s:
        [row] = s.scalars(select(ConsoleAudit).where(ConsoleAudit.action == "forbidden")).all()
        assert row.user == "someone" and row.target == url_of(page)


def test_compliance_user_cannot_retry_quarantine(signed_in, console_ctx):
    with console_ctx.sessions() as s, s.begin():
        s.add(QuarantineItem(source="drop", key="a.eml", channel="email", raw=b"Subject: x\r\n\r\nhello", reason="test"))
    client = signed_in("auditor", COMPLIANCE)
    token = csrf_of(client.get("/console/sign-in", follow_redirects=True).text)
    assert client.post("/console/quarantine/1/retry", data={"csrf_token": token}).status_code == 403
    assert client.get("/console/quarantine/1").status_code == 403
    with console_ctx.sessions() as s:
        assert s.get(QuarantineItem, 1).status == "held"


def test_operator_cannot_download_archive_files(signed_in):
    client = signed_in("ops", OPERATOR)
    downloads = [p for p in PAGES if p.roles == {COMPLIANCE} and "pdf" in p.path]
    assert downloads, "the compliance download page is in the table"
    for p in downloads:
        answer = client.get(url_of(p))
        assert answer.status_code == 403 and "%PDF" not in answer.text


def test_session_cookie_flags_over_http(console_client, make_user):
    make_user("ops", OPERATOR)
    cookie = sign_in(console_client, "ops").headers["set-cookie"]
    assert cookie.startswith("intake_console=")
    flags = {f.strip().split("=")[0].lower(): f.strip() for f in cookie.split(";")}
    assert "httponly" in flags and flags["samesite"].lower() == "samesite=strict" and flags["path"] == "Path=/console"
    assert "secure" not in flags  # plain http, not configured: a Secure cookie would never come back


@pytest.mark.parametrize("setting", [{"cookie_secure": True}, {}])
def test_session_cookie_is_secure_when_configured_or_the_site_is_https(tmp_path, setting):
    config = console_config(tmp_path, **setting)
    if not setting:
        config = config.model_copy(update={"web": config.web.model_copy(update={"public_base_url": "https://support.example.com"})})
    upgrade(make_engine(config.database.url))
    ctx = build_context(config)
    from intake.web.console.auth import add_user

    add_user(ctx.sessions, "ops", PASSWORD, [OPERATOR])
    with TestClient(web_app(ctx), base_url="https://testserver", follow_redirects=False) as client:
        cookie = sign_in(client, "ops").headers["set-cookie"]
    assert "secure" in [f.strip().lower() for f in cookie.split(";")]


class Clock:
    def __init__(self):
        self.at = datetime.now(UTC)

    def __call__(self):
        return self.at


def test_lock_out_after_repeated_failures_then_open_again(tmp_path):
    config = console_config(tmp_path, lockout_failures=3, lockout_minutes=10)
    upgrade(make_engine(config.database.url))
    clock = Clock()
    ctx = build_context(config, now=clock)
    from intake.web.console.auth import add_user

    add_user(ctx.sessions, "ops", PASSWORD, [OPERATOR])
    with TestClient(web_app(ctx), follow_redirects=False) as client:
        assert [sign_in(client, "ops", "wrong password!").status_code for _ in range(3)] == [401, 401, 401]
        locked = sign_in(client, "ops")  # the right password, but locked
        assert locked.status_code == 429 and 'id="sign-in-error"' in locked.text and "intake_console=" not in locked.headers.get("set-cookie", "")
        assert sign_in(client, "nobody", "whatever pw").status_code == 401  # other names are not locked
        clock.at += timedelta(minutes=11)
        assert sign_in(client, "ops").status_code == 303
    with ctx.sessions() as s:
        actions = [r.action for r in s.scalars(select(ConsoleAudit).where(ConsoleAudit.user == "ops").order_by(ConsoleAudit.id))]
    assert actions == ["sign_in_failed"] * 3 + ["sign_in_locked", "sign_in"]


def test_unknown_user_and_wrong_password_get_the_same_answer(console_client, make_user):
    make_user("ops", OPERATOR)
    unknown, wrong = sign_in(console_client, "nobody"), sign_in(console_client, "ops", "not the password")
    assert unknown.status_code == wrong.status_code == 401
    assert re.search(r'id="sign-in-error">([^<]+)<', unknown.text).group(1) == re.search(r'id="sign-in-error">([^<]+)<', wrong.text).group(1)


def test_signing_out_ends_the_session_even_for_a_copied_cookie(signed_in):
    client = signed_in("ops", OPERATOR)
    copied = client.cookies.get("intake_console")
    page = client.get("/console/overview")
    assert client.post("/console/sign-out", data={"csrf_token": csrf_of(page.text)}).status_code == 303
    client.cookies.set("intake_console", copied, path="/console")
    assert client.get("/console/overview").headers["location"].startswith("/console/sign-in")


def test_disabled_user_is_out_at_once(signed_in, console_ctx):
    from intake.web.console.auth import set_disabled

    client = signed_in("ops", OPERATOR)
    assert client.get("/console/overview").status_code == 200
    set_disabled(console_ctx.sessions, "ops", True)
    assert client.get("/console/overview").status_code == 303
    assert sign_in(client, "ops").status_code == 401


def test_an_expired_session_is_no_session(tmp_path):
    import time

    from intake.web.console.auth import add_user, session_cookie
    from intake.web.console.models import ConsoleUser

    config = console_config(tmp_path, session_minutes=5)
    upgrade(make_engine(config.database.url))
    ctx = build_context(config)
    add_user(ctx.sessions, "ops", PASSWORD, [OPERATOR])
    with ctx.sessions() as s:
        user = s.scalar(select(ConsoleUser))
    with TestClient(web_app(ctx), follow_redirects=False) as client:
        client.cookies.set("intake_console", session_cookie(b"console-test-key", user, int(time.time()) - 301), path="/console")
        assert client.get("/console/overview").status_code == 303
        client.cookies.set("intake_console", session_cookie(b"console-test-key", user, int(time.time()) - 200), path="/console")
        assert client.get("/console/overview").status_code == 200


def test_after_sign_in_only_a_console_path_is_followed(console_client, make_user):
    make_user("ops", OPERATOR)
    for evil in ("https://evil.example/console/x", "//evil.example/console/", "/console\\@evil.example", "/elsewhere"):
        console_client.cookies.clear()
        answer = sign_in(console_client, "ops", next_url=evil)
        assert answer.headers["location"] == "/console/overview", evil
    console_client.cookies.clear()
    assert sign_in(console_client, "ops", next_url="/console/quarantine?all=1").headers["location"] == "/console/quarantine?all=1"


def test_console_pages_carry_the_strict_headers_and_are_not_cached(signed_in):
    client = signed_in("ops", OPERATOR)
    page = client.get("/console/overview")
    assert "script-src" not in page.headers["content-security-policy"] and "default-src 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY" and page.headers["cache-control"] == "no-store"


def test_the_customer_form_stays_public(console_client):
    assert console_client.get("/").status_code == 200


def test_sign_ins_from_one_address_are_rate_limited_whatever_the_names(console_client, monkeypatch):
    from intake.web.console import routes

    answers = [sign_in(console_client, f"name{i}", "wrong password").status_code for i in range(routes.SIGN_INS_PER_MINUTE + 1)]
    assert answers == [401] * routes.SIGN_INS_PER_MINUTE + [429]


def test_the_console_does_not_exist_unless_enabled(tmp_path):
    config = console_config(tmp_path, enabled=False)
    upgrade(make_engine(config.database.url))
    with TestClient(web_app(build_context(config)), follow_redirects=False) as client:
        assert client.get("/console/sign-in").status_code == 404
        assert client.get("/console/overview").status_code == 404
        assert client.get("/").status_code == 200
