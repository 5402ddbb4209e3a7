"""A compliance officer in a real Chromium (Debian's, driven by Playwright), against the web
listener served by uvicorn (intake.web.server.serve) with the console on a real archive of PDFs:
sign in, search the archive, download a version's PDF and check its SHA-256 against the
archive's record, set a legal hold with a reason and see it in the audit log, export a ticked
file as a zip; the search page at phone width. Screenshots in test-artifacts/."""

from __future__ import annotations

import hashlib
import threading
import zipfile

import pytest
from sqlalchemy import select

from archive.models import ArchiveAudit, ArchiveFile
from archive.storage import open_storage
from intake.context import build_context
from intake.store.db import make_engine, upgrade
from intake.web.console.auth import add_user
from intake.web.server import serve
from tests.browser.test_form_browser import ARGS, ARTIFACTS, CHROMIUM, free_port
from tests.console.conftest import PASSWORD, console_config, web_app
from tests.console.test_compliance import write_cases
from tests.daemonproc import wait_for_web

playwright_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian package chromium is not installed")


@pytest.fixture
def served(tmp_path):
    """The web app with the console on 127.0.0.1, an archive of three cases, a compliance user."""
    config = console_config(tmp_path)
    upgrade(make_engine(config.database.url))
    ctx = build_context(config)
    write_cases(ctx.sessions, open_storage(ctx.config.archive))
    add_user(ctx.sessions, "carol", PASSWORD, ("compliance",))
    port, stop = free_port(), threading.Event()
    thread = threading.Thread(target=serve, args=(web_app(ctx), "127.0.0.1", port, stop), name="web")
    thread.start()
    base = f"http://127.0.0.1:{port}"
    wait_for_web(base, "the web listener")
    yield base, ctx
    stop.set()
    thread.join(timeout=10)


@pytest.fixture
def browser():
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


def test_search_download_check_hash_hold_with_reason_audit_and_export(served, browser, tmp_path):
    base, ctx = served
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="zh-CN", accept_downloads=True)

    page.goto(base + "/console/archive")
    assert "/console/sign-in" in page.url  # nothing without a session
    page.fill("#name", "carol")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/console/archive")

    page.fill("#f-company", "某科技")
    page.fill("#f-since", "2026-10-01")
    page.select_option("#f-type", "complaint")
    page.click("#archive-search button[type=submit]")
    page.wait_for_selector("#case-261101-0001")
    assert page.locator("section.case").count() == 1 and page.locator("tr.file").count() == 2
    assert page.locator(".verify-status").all_inner_texts() == ["一致", "一致"]
    page.screenshot(path=str(ARTIFACTS / "console-archive-search-zh.png"), full_page=True)

    # Download v2 and check it against the hash the page shows and the archive's record.
    with ctx.sessions() as s:
        v2 = s.scalars(select(ArchiveFile).where(ArchiveFile.ticket_ref == "261101-0001", ArchiveFile.version == 2)).one()
    row = page.locator(f'tr.file[data-file-id="{v2.id}"]')
    shown = row.locator("code.sha256").inner_text()
    with page.expect_download() as info:
        row.locator("a.download").click()
    saved = tmp_path / info.value.suggested_filename
    info.value.save_as(saved)
    assert saved.name.endswith("_261101-0001_v2-final.pdf") and "深圳市某科技有限公司" in saved.name
    assert hashlib.sha256(saved.read_bytes()).hexdigest() == shown == v2.sha256

    # A legal hold with its reason.
    page.fill("#reason-261101-0001", "法院调查令 2026-77 号")
    page.click("#case-261101-0001 .hold-form button[type=submit]")
    page.wait_for_selector("#archive-message")
    assert "已对 261101-0001 设置法律保全（2 个文件）" in page.locator("#archive-message").inner_text()
    assert "法院调查令 2026-77 号" in page.locator("#case-261101-0001 .hold-state").inner_text()
    page.screenshot(path=str(ARTIFACTS / "console-archive-hold-zh.png"), full_page=True)
    with ctx.sessions() as s:
        assert all(r.legal_hold for r in s.scalars(select(ArchiveFile).where(ArchiveFile.ticket_ref == "261101-0001")))
        assert s.scalars(select(ArchiveAudit).where(ArchiveAudit.action == "hold")).one().detail == {"reason": "法院调查令 2026-77 号"}

    # The audit log, reached by the navigation, in English.
    page.click("nav >> text=归档审计")
    page.wait_for_url("**/console/archive-audit")
    page.click(".lang-switch")
    page.wait_for_selector("#archive-audit")
    held = page.locator('#archive-audit tr[data-action="hold"]')
    assert held.count() == 1
    text = held.inner_text()
    assert "console:carol" in text and "261101-0001" in text and "法院调查令 2026-77 号" in text
    downloads = page.locator('#console-audit tr[data-action="archive_download"]')
    assert downloads.count() == 1 and v2.path in downloads.inner_text()
    page.screenshot(path=str(ARTIFACTS / "console-archive-audit-en.png"), full_page=True)

    # Export the ticked v1: the zip holds it, byte for byte, and the manifest.
    page.goto(base + "/console/archive?ticket=261101-0001")
    with ctx.sessions() as s:
        v1 = s.scalars(select(ArchiveFile).where(ArchiveFile.ticket_ref == "261101-0001", ArchiveFile.version == 1)).one()
    page.check(f"#select-{v1.id}")
    with page.expect_download() as info:
        page.click("#export-selected")
    zipped = tmp_path / "export.zip"
    info.value.save_as(zipped)
    with zipfile.ZipFile(zipped) as z:
        assert sorted(z.namelist()) == sorted([v1.path, "manifest.json"])
        assert hashlib.sha256(z.read(v1.path)).hexdigest() == v1.sha256


def test_the_search_page_fits_a_phone(served, browser):
    base, _ = served
    page = browser.new_page(viewport={"width": 390, "height": 844}, locale="en-GB", is_mobile=True, has_touch=True)
    page.goto(base + "/console/sign-in")
    page.fill("#name", "carol")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.goto(base + "/console/archive?since=2026-01-01")
    page.wait_for_selector("#case-261101-0001")
    assert page.locator("label[for=f-customer]").inner_text() == "Customer (name, number or email)"
    # the page itself never scrolls sideways: wide tables scroll inside their own box
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.screenshot(path=str(ARTIFACTS / "console-archive-phone-en.png"), full_page=True)
