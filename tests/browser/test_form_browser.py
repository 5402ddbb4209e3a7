"""A real Chromium (Debian's, driven by Playwright) fills the form in Chinese against the running
daemon (`intake run --listen`): confirmation with the ticket reference, the ticket with its
attachment in the database, the acknowledgement at a real SMTP server. Screenshots of the form,
an error state and the confirmation are kept in test-artifacts/."""

from __future__ import annotations

import email
import socket
import struct
import threading
import time
import zlib
from email.policy import default
from pathlib import Path

import pytest
from sqlalchemy import select

from intake.config import from_dict
from intake.context import build_context
from intake.daemon import Daemon
from intake.store.db import make_engine, upgrade
from intake.store.models import Ticket
from tests.daemonproc import wait_for_web

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

playwright_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian package chromium is not installed")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def png(width: int = 40, height: int = 24) -> bytes:
    """A small real PNG (a blue bar), as a customer's screenshot would be."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\x0b\x5c\xad" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


@pytest.fixture
def daemon(tmp_path, smtp_server):
    """`intake run --listen 127.0.0.1:PORT` in a thread, on SQLite, sending to the test SMTP server."""
    var = tmp_path / "var"
    config = from_dict(
        {
            "database": {"url": f"sqlite:///{var / 'intake.db'}"},
            "paths": {"var": str(var)},
            "maildir": {"path": str(var / "drop")},
            "spool": {"path": str(var / "spool")},
            "smtp": {"host": smtp_server.host, "port": smtp_server.port},
            "web": {"csrf_secret": "browser-test-secret"},
        }
    )
    upgrade(make_engine(config.database.url))
    port = free_port()
    d = Daemon(build_context(config), listen=f"127.0.0.1:{port}")
    thread = threading.Thread(target=d.run_forever, name="daemon")
    thread.start()
    base = f"http://127.0.0.1:{port}"
    wait_for_web(base, "the daemon's web listener")
    yield base, d
    d.stop.set()
    thread.join(timeout=40)
    assert not thread.is_alive()


@pytest.fixture
def browser():
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


def test_customer_fills_the_form_in_chinese_and_gets_ticket_attachment_and_ack(daemon, smtp_server, browser, tmp_path):
    base, d = daemon
    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = tmp_path / "屏幕截图.png"
    screenshot.write_bytes(png())

    page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="zh-CN")
    page.goto(base + "/")
    assert page.locator("h1").inner_text() == "提交服务请求"
    page.screenshot(path=str(ARTIFACTS / "form-zh-desktop.png"), full_page=True)

    # First try: name only and a mistyped address -> errors beside the fields, input kept.
    page.fill("#name", "张伟")
    page.fill("#email", "zhang.wei.kehu.example.cn")
    page.click("button[type=submit]")
    page.wait_for_selector("#email-error")
    assert "电子邮箱格式不正确" in page.locator("#email-error").inner_text()
    assert page.locator("#message-error").inner_text().endswith("请填写此项。")
    assert page.input_value("#name") == "张伟" and page.input_value("#email") == "zhang.wei.kehu.example.cn"
    page.screenshot(path=str(ARTIFACTS / "form-zh-errors.png"), full_page=True)

    page.fill("#email", "zhang.wei@kehu.example.cn")
    page.fill("#company", "上海某某科技有限公司")
    page.fill("#phone", "138 1234 5678")
    page.select_option("#type", "fault")
    page.fill("#subject", "财务系统无法登录")
    page.fill("#message", "从今天上午九点开始，财务部所有人都无法登录系统，提示“连接超时”。附上截图，请尽快处理。")
    page.set_input_files("#attachments", str(screenshot))
    page.click("button[type=submit]")
    page.wait_for_selector("#ticket-ref")
    assert page.locator("h1").inner_text() == "已收到您的请求"
    ref = page.locator("#ticket-ref").inner_text().strip()
    page.screenshot(path=str(ARTIFACTS / "form-zh-confirmation.png"), full_page=True)

    with d.ctx.sessions() as s:
        ticket = s.scalar(select(Ticket).where(Ticket.ref == ref))
        assert ticket is not None and ticket.channel == "form" and ticket.type == "fault" and ticket.language == "zh"
        assert ticket.customer.name == "张伟" and ticket.customer.company == "上海某某科技有限公司"
        [attachment] = ticket.messages[0].attachments
        assert attachment.filename == "屏幕截图.png" and attachment.data == screenshot.read_bytes()

    deadline = time.monotonic() + 15
    to_customer: list = []
    while not to_customer and time.monotonic() < deadline:  # staff notifications may arrive too
        to_customer = [m for m in smtp_server.messages if m.rcpt_tos == ("zhang.wei@kehu.example.cn",)]
        time.sleep(0.1)
    [received] = to_customer
    ack = email.message_from_bytes(received.raw, policy=default)
    assert ref in ack["Subject"] and ack["Auto-Submitted"] == "auto-replied"


def test_form_on_a_phone_in_english(daemon, browser):
    """The page fits a phone screen: no horizontal scrolling, one column, a full-width button."""
    base, _ = daemon
    page = browser.new_page(viewport={"width": 390, "height": 844}, locale="en-US", is_mobile=True, has_touch=True)
    page.goto(base + "/?lang=en")
    assert page.locator("h1").inner_text() == "Submit a support request"
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    name, company = page.locator("#name").bounding_box(), page.locator("#company").bounding_box()
    assert company["y"] > name["y"] + name["height"]  # stacked, not side by side
    button = page.locator("button[type=submit]").bounding_box()
    assert button["width"] > 300
    page.screenshot(path=str(ARTIFACTS / "form-en-phone.png"), full_page=True)
    page.click("text=中文")
    assert page.locator("h1").inner_text() == "提交服务请求"
