"""A real Chromium (Debian's, driven by Playwright) works the console of a running daemon
(`intake run --listen`, [console] enabled) reading a real Dovecot mailbox: an operator signs
in, sees the mailbox green, sees it turn red on the self-refreshing overview when Dovecot
stops, and retries a quarantined mail, which becomes a ticket. Screenshots (desktop and
phone width) are kept in test-artifacts/."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import pytest
from sqlalchemy import select

from intake.config import from_dict
from intake.context import build_context
from intake.daemon import Daemon
from intake.store.db import make_engine, upgrade
from intake.store.models import QuarantineItem, Ticket
from intake.web.console.auth import add_user
from intake.web.console.models import ConsoleAudit
from tests.browser.test_form_browser import ARGS, CHROMIUM, free_port
from tests.console.conftest import PASSWORD
from tests.console.test_operator import customer_mail, quarantine_one
from tests.daemonproc import wait_for_web

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

playwright_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian package chromium is not installed")


@pytest.fixture
def daemon(tmp_path, smtp_server, dovecot):
    """`intake run --listen` with the console on, one IMAP mailbox at the test Dovecot polled every second."""
    var = tmp_path / "var"
    config = from_dict(
        {
            "database": {"url": f"sqlite:///{var / 'intake.db'}"},
            "paths": {"var": str(var)},
            "maildir": {"path": str(var / "drop")},
            "spool": {"path": str(var / "spool")},
            "smtp": {"host": smtp_server.host, "port": smtp_server.port},
            "imap": [
                {
                    "name": "support",
                    "host": dovecot.host,
                    "port": dovecot.port,
                    "security": "plain",
                    "username": "support",
                    "password": "secret",
                    "idle": False,
                    "poll_interval": 1,
                }
            ],
            "web": {"csrf_secret": "browser-test-secret"},
            "console": {"enabled": True, "secret": "console-browser-key", "refresh_seconds": 5},
        }
    )
    upgrade(make_engine(config.database.url))
    ctx = build_context(config)
    add_user(ctx.sessions, "wang.ops", PASSWORD, ["operator"])
    held = quarantine_one(ctx, customer_mail(html_only=True))  # quarantined before the daemon starts
    port = free_port()
    d = Daemon(ctx, listen=f"127.0.0.1:{port}")
    thread = threading.Thread(target=d.run_forever, name="daemon")
    thread.start()
    base = f"http://127.0.0.1:{port}"
    wait_for_web(base, "the daemon's web listener")
    yield base, d, held
    d.stop.set()
    thread.join(timeout=40)
    assert not thread.is_alive()


@pytest.fixture
def browser():
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


def test_operator_signs_in_sees_a_stuck_mailbox_turn_red_and_retries_a_quarantined_mail(daemon, dovecot, browser):
    base, d, held = daemon
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="zh-CN")

    # nothing without a session: the console sends the browser to sign in, then back
    page.goto(base + "/console/overview")
    assert page.url.startswith(base + "/console/sign-in")
    assert page.locator("h1").inner_text() == "登录控制台"
    page.fill("#name", "wang.ops")
    page.fill("#password", "wrong password")
    page.click("button[type=submit]")
    assert page.locator("#sign-in-error").inner_text() == "用户名或密码不正确。"
    # by keyboard: Tab from the name reaches the password, Enter submits
    page.focus("#name")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "password"
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(base + "/console/overview")
    assert page.locator("#user-name").inner_text() == "wang.ops"

    # the mailbox flows: green
    source = 'tr[data-source="imap:support/INBOX"]'
    page.wait_for_selector(f"{source}.ok", timeout=20_000)
    page.screenshot(path=str(ARTIFACTS / "console-overview-green.png"), full_page=True)

    # Dovecot goes away: the page, reloading itself, shows the mailbox red with the error
    dovecot.stop()
    page.wait_for_selector(f"{source}.bad", timeout=40_000)
    assert page.locator(f"{source} .status-bad").inner_text() == "故障"
    assert page.locator("#fig-failing .n").inner_text() == "1"
    page.screenshot(path=str(ARTIFACTS / "console-overview-red.png"), full_page=True)

    # the quarantined mail: reason, headers, its HTML shown as text; retry makes the ticket
    page.click("nav >> text=隔离区")
    page.click(f'a[href="/console/quarantine/{held}"]')
    assert "max_message_bytes" in page.locator("#item-reason").inner_text()
    assert "打印机" in page.locator("#item-body").inner_text()
    assert page.locator("#item-body script, #item-body img").count() == 0
    page.screenshot(path=str(ARTIFACTS / "console-quarantine-item.png"), full_page=True)
    page.focus("#retry")
    page.keyboard.press("Enter")
    page.wait_for_selector("#ticket-ref")
    ref = page.locator("#ticket-ref").inner_text().strip()
    assert re.fullmatch(r"\d{6}-\d{4,}", ref), ref
    assert page.locator("#item-status").inner_text() == "已放行"
    page.screenshot(path=str(ARTIFACTS / "console-quarantine-retried.png"), full_page=True)
    with d.ctx.sessions() as s:
        ticket = s.scalar(select(Ticket).where(Ticket.ref == ref))
        assert ticket is not None and ticket.subject == "打印机无法连接网络"
        assert s.get(QuarantineItem, held).status == "released"
        actions = [r.action for r in s.scalars(select(ConsoleAudit).order_by(ConsoleAudit.id))]
    assert actions == ["user_add", "sign_in_failed", "sign_in", "quarantine_retry_requested", "quarantine_retry"]

    # phone width, English: the same overview, usable
    phone = browser.new_page(viewport={"width": 390, "height": 844}, locale="en-US", is_mobile=True)
    phone.context.add_cookies(page.context.cookies())
    phone.goto(base + "/console/overview?lang=en")
    assert phone.locator("h1").inner_text() == "Overview"
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390 + 1  # no sideways scrolling of the page
    phone.screenshot(path=str(ARTIFACTS / "console-overview-phone-en.png"), full_page=True)
