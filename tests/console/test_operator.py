"""The operators' pages on a real SQLite database: sources from source_state (a failing one
marked red), the outbox and archive jobs, the quarantine's safe text view, retry (the same
code as `intake quarantine retry`) and dismiss, the overview's charts of the last 24 hours."""

from __future__ import annotations

import base64
import os
import re
from datetime import UTC
from email.message import EmailMessage
from urllib.parse import unquote

import pytest
from sqlalchemy import select

from intake.pipeline.runner import Pipeline
from intake.sources.base import SourceRef
from intake.store.models import QuarantineItem, Ticket
from intake.web.console.models import ConsoleAudit
from tests.console.conftest import csrf_of

HOSTILE_HTML = '<p>打印机<b>坏了</b></p><script>alert("x")</script><img src="http://198.51.100.7/track.png" onerror="alert(1)">'


def customer_mail(
    subject: str = "打印机无法连接网络", body: str = "从今天早上开始打印机无法连接，请尽快处理。" * 40, html_only: bool = False
) -> bytes:
    msg = EmailMessage()
    msg["From"] = "王芳 <wang.fang@kehu.example.cn>"
    msg["To"] = "support@example.com"
    msg["Subject"] = subject
    msg["Message-ID"] = "<console-test-1@kehu.example.cn>"
    if html_only:
        msg.set_content(HOSTILE_HTML + body, subtype="html")
    else:
        msg.set_content(body)
        msg.add_alternative(HOSTILE_HTML + body, subtype="html")
    return msg.as_bytes()


def quarantine_one(ctx, raw: bytes) -> int:
    """Quarantine `raw` as the daemon does when a message is over limits.max_message_bytes:
    the same database, a stricter limit (the console's own context keeps the normal one)."""
    strict = ctx.config.model_copy(update={"limits": ctx.config.limits.model_copy(update={"max_message_bytes": 1024})})
    from intake.context import build_context

    result = Pipeline(build_context(strict)).take(raw, SourceRef("imap:support/INBOX", "7/42", "email"))
    assert result.outcome == "quarantined"
    with ctx.sessions() as s:
        return s.scalars(select(QuarantineItem.id).order_by(QuarantineItem.id.desc())).first()


def test_failing_source_is_red_and_healthy_one_green(signed_in, console_ctx):
    pipeline = Pipeline(console_ctx)
    pipeline.report("imap:support/INBOX", backlog=3)
    pipeline.report("imap:sales/INBOX", backlog=0)
    pipeline.report("imap:sales/INBOX", error="LOGIN failed: authentication failed")
    client = signed_in("ops", "operator")
    page = client.get("/console/sources")
    assert page.status_code == 200
    rows = dict(re.findall(r'<tr class="(bad|ok)" data-source="([^"]+)"', page.text)[i][::-1] for i in range(2))
    assert rows == {"imap:support/INBOX": "ok", "imap:sales/INBOX": "bad"}
    assert "LOGIN failed: authentication failed" in page.text
    overview = client.get("/console/overview")
    assert 'class="figure bad" id="fig-failing"' in overview.text
    assert re.search(r'<meta http-equiv="refresh" content="30">', overview.text)


def test_overview_charts_count_the_last_24_hours(signed_in, console_ctx):
    pipeline = Pipeline(console_ctx)
    for i in range(3):
        raw = customer_mail(subject=f"问题 {i}", body="请帮忙看一下。").replace(b"console-test-1", f"chart-{i}".encode())
        assert pipeline.take(raw, SourceRef("imap:support/INBOX", f"1/{i}", "email")).outcome == "opened"
    client = signed_in("ops", "operator")
    page = client.get("/console/overview")
    uris = re.findall(r'<img src="data:image/svg\+xml;(?:charset=utf-8;)?base64,([^"]+)" alt="([^"]+)"', page.text)
    assert [alt for _, alt in uris] == ["每小时收取", "每小时新工单", "每小时发出邮件", "每小时隔离"] or [alt for _, alt in uris] == [
        "Taken per hour",
        "New tickets per hour",
        "Mail sent per hour",
        "Quarantined per hour",
    ]
    svg = base64.b64decode(uris[1][0]).decode()
    assert "<script" not in svg
    # 24 bars, the last (this hour) holding the three new tickets
    values = re.findall(r'<desc class="value">(\d+)</desc>', svg)
    assert len(values) == 24 and values[-1] == "3" and set(values[:-1]) == {"0"}


def test_quarantined_mail_shows_reason_headers_and_text_never_html(signed_in, console_ctx):
    item = quarantine_one(console_ctx, customer_mail(html_only=True))
    client = signed_in("ops", "operator")
    listing = client.get("/console/quarantine")
    assert f'href="/console/quarantine/{item}"' in listing.text and "max_message_bytes" in listing.text
    page = client.get(f"/console/quarantine/{item}")
    assert page.status_code == 200
    assert "exceeds limits.max_message_bytes" in page.text
    assert "wang.fang@kehu.example.cn" in page.text and "打印机无法连接网络" in page.text  # headers, decoded
    body = re.search(r'<pre class="body" id="item-body">(.*?)</pre>', page.text, re.S).group(1)
    assert "打印机无法连接，请尽快处理" in body and "打印机" in body and "坏了" in body  # the HTML as text
    # nothing of the HTML part is live: no script, no image, no element of the customer's
    assert "<script" not in page.text and "<img" not in page.text and "onerror" not in page.text.replace("&#34;", "")
    assert "198.51.100.7" not in page.text


def test_retry_button_makes_the_ticket_like_the_cli_and_is_audited(signed_in, console_ctx):
    item = quarantine_one(console_ctx, customer_mail())
    client = signed_in("ops", "operator")
    page = client.get(f"/console/quarantine/{item}")
    answer = client.post(f"/console/quarantine/{item}/retry", data={"csrf_token": csrf_of(page.text)})
    assert answer.status_code == 303
    shown = client.get(answer.headers["location"])
    ref = re.search(r'<strong id="ticket-ref">([^<]+)</strong>', shown.text).group(1)
    with console_ctx.sessions() as s:
        q = s.get(QuarantineItem, item)
        assert q.status == "released" and q.ticket_ref == ref and q.retries == 1
        assert s.scalar(select(Ticket).where(Ticket.ref == ref)).subject == "打印机无法连接网络"
        [row] = s.scalars(select(ConsoleAudit).where(ConsoleAudit.action == "quarantine_retry")).all()
        assert row.user == "ops" and row.target == f"quarantine:{item}" and row.detail["ticket"] == ref
    # a second press finds nothing held: said so, nothing processed twice
    again = client.post(f"/console/quarantine/{item}/retry", data={"csrf_token": csrf_of(shown.text)})
    assert again.status_code == 409
    with console_ctx.sessions() as s:
        assert len(s.scalars(select(Ticket)).all()) == 1


def test_dismiss_needs_a_reason_keeps_the_bytes_and_names_the_operator(signed_in, console_ctx):
    raw = customer_mail()
    item = quarantine_one(console_ctx, raw)
    client = signed_in("ops", "operator")
    page = client.get(f"/console/quarantine/{item}")
    empty = client.post(f"/console/quarantine/{item}/dismiss", data={"csrf_token": csrf_of(page.text), "reason": "  "})
    assert empty.status_code == 422 and 'id="item-error"' in empty.text
    with console_ctx.sessions() as s:
        assert s.get(QuarantineItem, item).status == "held"
    done = client.post(f"/console/quarantine/{item}/dismiss", data={"csrf_token": csrf_of(page.text), "reason": "测试邮件，无需处理"})
    assert done.status_code == 303
    with console_ctx.sessions() as s:
        q = s.get(QuarantineItem, item)
        assert (q.status, q.dismissed_by, q.dismissed_reason, q.raw) == ("dismissed", "ops", "测试邮件，无需处理", raw)
        [row] = s.scalars(select(ConsoleAudit).where(ConsoleAudit.action == "quarantine_dismiss")).all()
        assert row.user == "ops" and row.detail == {"reason": "测试邮件，无需处理"}
    shown = client.get(done.headers["location"])
    assert 'id="retry"' not in shown.text and "测试邮件，无需处理" in shown.text


def test_form_submission_in_quarantine_is_shown_as_its_json(signed_in, console_ctx):
    with console_ctx.sessions() as s, s.begin():
        s.add(
            QuarantineItem(
                source="spool", key="x.json", channel="form", raw='{"name": "<b>李雷</b>", "message": "网站打不开"}'.encode(), reason="test"
            )
        )
    client = signed_in("ops", "operator")
    with console_ctx.sessions() as s:
        item = s.scalar(select(QuarantineItem.id))
    page = client.get(f"/console/quarantine/{item}")
    assert "&lt;b&gt;李雷&lt;/b&gt;" in page.text and "<b>李雷" not in page.text and "网站打不开" in page.text


def test_outbox_and_archive_jobs_pages(signed_in, console_ctx):
    pipeline = Pipeline(console_ctx)
    assert pipeline.take(customer_mail(body="请帮忙。"), SourceRef("imap:support/INBOX", "1/1", "email")).outcome == "opened"
    client = signed_in("ops", "operator")
    outbox = client.get("/console/outbox")
    assert outbox.status_code == 200 and "wang.fang@kehu.example.cn" in unquote(outbox.text)  # the pending ack
    jobs = client.get("/console/archive-jobs")
    assert jobs.status_code == 200 and 'id="jobs"' in jobs.text  # the new ticket's archive job waits


def test_pages_in_english_by_switch_and_by_accept_language(signed_in):
    client = signed_in("ops", "operator")
    assert "<h1>运行概览</h1>" in client.get("/console/overview").text  # the default: Chinese
    assert "<h1>Overview</h1>" in client.get("/console/overview", headers={"Accept-Language": "en-GB,en;q=0.8"}).text
    switched = client.get("/console/overview?lang=en")
    assert "<h1>Overview</h1>" in switched.text
    assert "<h1>Overview</h1>" in client.get("/console/quarantine").text.replace("<h1>Quarantine</h1>", "<h1>Overview</h1>")  # the cookie keeps it


def test_hourly_counts_on_sqlite_and_postgresql(tmp_path, request):
    """The chart's GROUP BY hour is written per dialect: both must count the same."""
    from datetime import UTC, datetime, timedelta

    from intake.config import from_dict
    from intake.context import build_context
    from intake.store.db import make_engine, upgrade
    from intake.store.models import SourceItem
    from intake.web.console import charts

    now = datetime(2026, 12, 6, 15, 40, tzinfo=UTC)
    stamps = [now - timedelta(minutes=m) for m in (0, 39, 41, 100, 60 * 23 + 30, 60 * 24 + 1, 60 * 30)]
    urls = [f"sqlite:///{tmp_path / 'h.db'}"]
    try:
        urls.append(request.getfixturevalue("pg_url"))
    except pytest.skip.Exception:
        pass
    assert len(urls) == 2 or not os.environ.get("CI"), "PostgreSQL is part of this test in CI"
    for url in urls:
        config = from_dict({"database": {"url": url}, "paths": {"var": str(tmp_path / "var")}})
        upgrade(make_engine(url))
        ctx = build_context(config)
        with ctx.sessions() as s, s.begin():
            s.add_all(SourceItem(source="drop", key=f"{url}-{i}", outcome="opened", at=at) for i, at in enumerate(stamps))
        with ctx.read_sessions() as s:
            counts = charts.hourly_counts(s, SourceItem.at, now)
        # 15:xx: 15:40, 15:01; 14:xx: 14:59, 14:00; the oldest hour (16:xx yesterday): 16:10; 15:39 yesterday is too old
        assert counts[-1] == 2 and counts[-2] == 2 and counts[0] == 1 and sum(counts) == 5, (url, counts)


def test_activity_page_lists_sign_ins_and_actions_for_both_roles(signed_in, console_ctx, make_user):
    from intake.web.console.auth import sign_in

    make_user("auditor", "compliance")
    client = signed_in("ops", "operator")
    failed = sign_in(console_ctx.sessions, "auditor", "not the password", ip="192.0.2.9", now=console_ctx.now(), failures=5, minutes=15)
    assert failed.outcome == "bad"
    page = client.get("/console/audit")
    assert page.status_code == 200
    rows = re.findall(r"<tr class=\"[a-z]*\"><td>[^<]+</td><td>([^<]+)</td><td>([^<]+)</td>", page.text)
    assert ("ops", "sign_in") in rows and ("auditor", "sign_in_failed") in rows
    assert '<tr class="bad"><td>' in page.text and "192.0.2.9" in page.text
    only = client.get("/console/audit?action=sign_in&user=ops")
    assert set(re.findall(r"<td>(sign_in[a-z_]*)</td>", only.text)) == {"sign_in"}


def test_cli_quarantine_dismiss_is_the_same_action(tmp_path, monkeypatch, capsys):
    import getpass
    import json

    from intake.config import load
    from intake.context import build_context
    from tests.console.test_auth import run_cli

    run_cli(tmp_path, monkeypatch, capsys, "users", "list")  # writes the config and runs intake init
    ctx = build_context(load(tmp_path / "intake.toml"))
    raw = customer_mail()
    item = quarantine_one(ctx, raw)
    code, _, err = run_cli(tmp_path, monkeypatch, capsys, "quarantine", "dismiss", str(item), "--reason", " ")
    assert code == 2 and "a reason is required" in err
    code, out, _ = run_cli(tmp_path, monkeypatch, capsys, "quarantine", "dismiss", str(item), "--reason", "垃圾邮件", "--json")
    assert code == 0 and json.loads(out) == {"id": item, "status": "dismissed", "by": f"cli:{getpass.getuser()}", "reason": "垃圾邮件"}
    code, _, err = run_cli(tmp_path, monkeypatch, capsys, "quarantine", "dismiss", str(item), "--reason", "again")
    assert code == 1 and f"no held quarantine item #{item}" in err
    code, out, _ = run_cli(tmp_path, monkeypatch, capsys, "quarantine", "list", "--all", "--json")
    [row] = [json.loads(line) for line in out.splitlines()]
    assert row["status"] == "dismissed" and row["dismissed_reason"] == "垃圾邮件"
    with ctx.sessions() as s:
        assert s.get(QuarantineItem, item).raw == raw
        [audited] = s.scalars(select(ConsoleAudit).where(ConsoleAudit.action == "quarantine_dismiss")).all()
        assert audited.user == f"cli:{getpass.getuser()}" and audited.detail == {"reason": "垃圾邮件"}


def test_sources_show_the_oauth_token_expiry_of_their_login(signed_in, console_ctx):
    from datetime import datetime, timedelta

    from intake.oauth.store import record_expiry

    expires = (datetime.now(UTC) + timedelta(minutes=55)).replace(second=0, microsecond=0)
    record_expiry(console_ctx.config.var, "imap:support", expires)  # what a token refresh writes
    pipeline = Pipeline(console_ctx)
    pipeline.report("imap:support/INBOX", backlog=0)
    pipeline.report("imap:other/INBOX", backlog=0)
    page = signed_in("ops", "operator").get("/console/sources")
    row = re.search(r'data-source="imap:support/INBOX">(.*?)</tr>', page.text, re.S).group(1)
    assert expires.strftime("%Y-%m-%d %H:%M UTC") in row
    other = re.search(r'data-source="imap:other/INBOX">(.*?)</tr>', page.text, re.S).group(1)
    assert expires.strftime("%Y-%m-%d %H:%M UTC") not in other


def test_safe_text_keeps_lines_and_replaces_control_and_direction_characters():
    from intake.web.console.operator import MAX_TEXT_CHARS, safe_text

    assert safe_text("第一行\n\t缩进") == "第一行\n\t缩进"
    # U+202E would show "gnp.exe" as "exe.png"; NUL and ESC could confuse a terminal copy
    assert safe_text("invoice\u202egnp.exe\x00\x1b[31m") == "invoice\ufffdgnp.exe\ufffd\ufffd[31m"
    assert safe_text("x" * (MAX_TEXT_CHARS + 5)).endswith("\n…")
