"""The console's weekly report page on tickets made by the real pipeline (controllable clock):
its figures are intake.tickets.report.weekly's for any week asked, its charts report_pdf's
SVGs, its PDF the one `intake report weekly --pdf` writes, read back with pypdf."""

from __future__ import annotations

import base64
import io
import json
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta, timezone

import pypdf
import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from intake.context import build_context
from intake.pipeline.runner import Pipeline
from intake.sources.base import SourceRef
from intake.store.db import make_engine, upgrade
from intake.tickets.report import weekly
from intake.web.console.auth import add_user
from intake.web.console.models import ConsoleAudit
from intake.web.console.report_page import CHARTS
from tests.console.conftest import PASSWORD, console_config, sign_in, web_app
from tests.integration.conftest import Clock

SH = timezone(timedelta(hours=8))
SUBMISSIONS = [  # week 2026-W48 is 23-29 November; the last one falls in W47
    (datetime(2026, 11, 23, 10, tzinfo=SH), "我要投诉：维修人员答应上门却一直没来，服务太差了。"),
    (datetime(2026, 11, 24, 15, tzinfo=SH), "请问发票什么时候寄出？"),
    (datetime(2026, 11, 26, 9, tzinfo=SH), "系统无法登录，报错 500，全公司都用不了，紧急！"),
    (datetime(2026, 11, 18, 11, tzinfo=SH), "请问你们周末上班吗？"),
]


@pytest.fixture
def report_ctx(tmp_path):
    clock = Clock(datetime(2026, 11, 23, tzinfo=UTC))
    config = console_config(tmp_path)
    upgrade(make_engine(config.database.url))
    ctx = build_context(config, now=clock)
    pipeline = Pipeline(ctx)
    for n, (when, text) in enumerate(SUBMISSIONS):
        clock.at = when.astimezone(UTC)
        raw = json.dumps(
            {"name": f"客户{n}", "email": f"c{n}@kehu.example.cn", "message": text, "submitted_at": when.isoformat()}, ensure_ascii=False
        )
        assert pipeline.take(raw.encode(), SourceRef("spool", f"f{n}.json", "form")).outcome == "opened"
    clock.at = datetime(2026, 12, 2, 9, tzinfo=UTC)  # in W49: W48 is the last complete week
    for name, roles in (("olga", ("operator",)), ("carl", ("compliance",))):
        add_user(ctx.sessions, name, PASSWORD, roles)
    return ctx


@pytest.fixture
def client(report_ctx):
    with TestClient(web_app(report_ctx), follow_redirects=False) as c:
        yield c


def signed(client, name):
    assert sign_in(client, name).status_code == 303
    return client


def test_the_page_shows_the_weeks_figures_and_charts(report_ctx, client):
    page = signed(client, "olga").get("/console/report", params={"week": "2026-W48", "lang": "en"})
    assert page.status_code == 200
    figures = weekly(report_ctx, "2026-W48")
    assert figures["tickets"] == 3
    assert 'id="fig-tickets">3<' in page.text and "Weekly service review 2026-W48" in page.text and "2026-11-23 – 2026-11-29" in page.text
    for code, n in figures["by_type"].items():
        if n:
            assert f"<td>{code.capitalize()}</td>\n        <td>{n}</td>" in page.text
    for name in CHARTS:
        src = page.text.split(f'id="chart-{name}"')[0].rsplit('<img src="', 1)[1].split('"')[0]
        assert src.startswith("data:image/svg+xml;base64,")
        svg = ET.fromstring(base64.b64decode(src.split(",", 1)[1]))
        assert svg.tag.endswith("svg")
    types_svg = base64.b64decode(page.text.split('id="chart-types"')[0].rsplit("base64,", 1)[1].split('"')[0]).decode()
    assert "类型占比 Ticket types" in types_svg
    assert 'href="/console/report?week=2026-W47"' in page.text and 'href="/console/report?week=2026-W49"' in page.text


def test_any_week_either_role_and_a_bad_week_is_named(report_ctx, client):
    signed(client, "carl")
    default = client.get("/console/report", params={"lang": "zh"})
    assert default.status_code == 200 and "客服周报 2026-W48" in default.text  # the last complete week
    earlier = client.get("/console/report", params={"week": "2026-w47"})
    assert "2026-W47" in earlier.text and 'id="fig-tickets">1<' in earlier.text
    current = client.get("/console/report", params={"week": "2026-W49"})
    assert current.status_code == 200 and 'id="next-week"' not in current.text  # no link into the future
    bad = client.get("/console/report", params={"week": "2026-W99", "lang": "en"})
    assert bad.status_code == 422 and "Enter an ISO week such as 2026-W47." in bad.text and "2026-W48" in bad.text


def test_the_weeks_pdf_is_the_reports_and_is_audited(report_ctx, client):
    got = signed(client, "olga").get("/console/report/pdf", params={"week": "2026-W48"})
    assert got.status_code == 200 and got.headers["content-type"] == "application/pdf"
    text = "".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(got.content)).pages)
    assert "2026-W48" in text and "Weekly service review" in text
    with report_ctx.sessions() as s:
        [row] = s.scalars(select(ConsoleAudit).where(ConsoleAudit.action == "report_pdf")).all()
    assert (row.user, row.target) == ("olga", "2026-W48")
    assert client.get("/console/report/pdf", params={"week": "nope"}).status_code == 422
