"""`intake report weekly` on a known week of tickets made by the real pipeline, staff
replies and survey answers (controllable clock): every figure asserted; the PDF
read back with pdfplumber; one page rendered to PNG in test-artifacts/."""

from __future__ import annotations

import email
import json
import shutil
import subprocess
from datetime import UTC, datetime, timedelta, timezone
from email.policy import default
from pathlib import Path

import pytest
from sqlalchemy import select

from intake.pipeline.runner import Pipeline
from intake.sources.base import SourceRef
from intake.store.models import OutboxMail, Ticket
from intake.tickets.report import as_text, percentile, weekly
from tests.integration.conftest import Clock
from tests.integration.test_staffmail_kit import complaint, reply_to, staff_config

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
SH = timezone(timedelta(hours=8))  # Asia/Shanghai has no DST


def at(day: int, hour: int, month: int = 11) -> datetime:
    return datetime(2026, month, day, hour, 0, tzinfo=SH).astimezone(UTC)


class Week:
    """Drives the pipeline like the outside world would, on the clock."""

    def __init__(self, ctx, clock):
        self.ctx, self.clock, self.pipeline, self.n = ctx, clock, Pipeline(ctx), 0

    def take(self, raw: bytes, channel: str = "email"):
        self.n += 1
        return self.pipeline.take(raw, SourceRef("t", f"k{self.n}", channel))

    def open(self, when, subject, text, sender, channel="email") -> str:
        self.clock.at = when
        if channel == "form":
            name, addr = sender.split(" <")
            raw = json.dumps(
                {"name": name, "email": addr.rstrip(">"), "subject": subject, "message": text, "submitted_at": when.isoformat()}, ensure_ascii=False
            ).encode()
            return self.take(raw, "form").ticket
        return self.take(complaint(text, subject=subject, sender=sender)).ticket

    def _mail(self, ref: str, kind: str):
        with self.ctx.sessions() as s:
            t = s.scalar(select(Ticket).where(Ticket.ref == ref))
            row = s.scalar(select(OutboxMail).where(OutboxMail.ticket_id == t.id, OutboxMail.kind == kind).order_by(OutboxMail.id.desc()).limit(1))
            return row.rcpt_to, email.message_from_bytes(row.raw, policy=default)

    def staff(self, when, ref: str, text: str) -> None:
        self.clock.at = when
        who, note = self._mail(ref, "notify")
        assert self.take(reply_to(note.as_bytes(), sender=who, body=text)).outcome == "appended"

    def score(self, when, ref: str, text: str) -> None:
        self.clock.at = when
        customer, survey = self._mail(ref, "survey")
        assert self.take(reply_to(survey.as_bytes(), sender=customer, body=text)).outcome == "appended"


@pytest.fixture
def week(make_ctx, db_url):
    """Week 2026-W48 (23–29 Nov): six tickets, known answers, known scores; one in W47."""
    clock = Clock(at(18, 10))
    ctx = make_ctx(db_url, clock, **staff_config())
    w = Week(ctx, clock)
    g = w.open(at(18, 10), "Password reset", "How do I reset my password?", "Amy <amy@example.org>")  # W47
    w.staff(at(18, 12), g, "Use the reset link on the login page.")

    a = w.open(at(23, 10), "投诉售后服务", "我要投诉：你们的售后服务太差了，维修人员答应上门却一直没来，请给个说法。", "赵丽 <a@kehu.cn>")
    b = w.open(at(23, 11), "发票咨询", "请问发票什么时候寄出？", "钱多 <b@kehu.cn>")
    w.staff(at(23, 11), a, "非常抱歉，明天上门。")  # A: first response 1 h
    w.staff(at(23, 15), a, "#status resolved\n已修好。")  # A: resolved after 5 h
    w.score(at(23, 16), a, "5")
    c = w.open(at(24, 10), "系统宕机 紧急", "紧急！我们的生产系统全部宕机，所有员工都无法登录，核心业务停摆，请立即处理！", "孙强 <c@kehu.cn>")
    w.staff(at(24, 13), c, "工程师已在处理。")  # C: urgent, 3 h > 2 h: missed
    w.staff(at(24, 17), b, "发票已寄出。")  # B: 30 h ≤ 48 h: met
    d = w.open(at(25, 10), "功能需求", "希望你们的软件能增加导出Excel的功能。", "李四 <d@kehu.cn>")
    w.staff(at(25, 11), b, "#status resolved")  # B: resolved after 48 h
    w.score(at(25, 12), b, "2")  # low: reopened
    w.staff(at(25, 13), c, "#status resolved\n已恢复。")  # C: resolved after 27 h
    w.score(at(25, 14), c, "4")
    w.staff(at(25, 20), d, "已记录，下个版本考虑。")  # D: 10 h
    e = w.open(at(26, 10), "产品建议", "建议你们把界面字体调大一些。", "周五 <e@kehu.cn>")  # never answered: missed
    f = w.open(at(29, 20), "夜间热线", "建议增加夜间客服热线，晚上找不到人。", "王六 <f@kehu.cn>", channel="form")  # pending
    clock.at = at(30, 10)  # the Monday meeting
    with ctx.sessions() as s:
        kinds = {t.ref: (t.type, t.urgency, t.channel) for t in s.scalars(select(Ticket))}
    assert kinds == {
        g: ("inquiry", "normal", "email"),
        a: ("complaint", "important", "email"),
        b: ("inquiry", "normal", "email"),
        c: ("fault", "urgent", "email"),
        d: ("request", "normal", "email"),
        e: ("suggestion", "normal", "email"),
        f: ("suggestion", "normal", "form"),
    }
    return ctx


def test_weekly_figures_on_a_known_week(week):
    """Counts, SLA met, median/p90 response and resolution, satisfaction, keywords, trend."""
    r = weekly(week, "2026-W48")
    assert (r["from"], r["to"], r["tickets"], r["flagged"]) == ("2026-11-23", "2026-11-29", 6, 1)
    assert r["by_type"] == {"inquiry": 1, "complaint": 1, "fault": 1, "request": 1, "suggestion": 2}
    assert r["by_urgency"] == {"urgent": 1, "important": 1, "normal": 4}
    assert r["by_department"] == {"after_sales": 2, "general": 3, "product": 1}
    assert r["by_channel"] == {"email": 5, "form": 1}
    assert r["by_status"] == {"new": 2, "in_progress": 2, "follow_up": 0, "resolved": 0, "closed": 2}
    assert r["sla"] == {"met": 3, "missed": 2, "pending": 1, "met_percent": 60.0}
    assert r["sla_by_urgency"] == {  # urgent C missed; important A met; normal B, D met, E missed, F pending
        "urgent": {"met": 0, "missed": 1, "pending": 0, "met_percent": 0.0},
        "important": {"met": 1, "missed": 0, "pending": 0, "met_percent": 100.0},
        "normal": {"met": 2, "missed": 1, "pending": 1, "met_percent": 66.7},
    }
    assert r["first_response"] == {"count": 4, "median_hours": 6.5, "p90_hours": 30.0}  # 1, 3, 10, 30 h
    assert r["resolution"] == {"count": 2, "median_hours": 16.0, "p90_hours": 27.0}  # A 5 h, C 27 h (B reopened)
    assert r["satisfaction"] == {"answered": 3, "average": 3.67, "distribution": {"1": 0, "2": 1, "3": 0, "4": 1, "5": 1}, "no_objection": 0}
    assert r["keywords"][:2] == [{"keyword": "增加", "tickets": 2}, {"keyword": "建议", "tickets": 2}]
    assert all(k["tickets"] == 1 for k in r["keywords"][2:]) and "?" not in {k["keyword"] for k in r["keywords"]}
    assert r["department_labels"]["after_sales"] == "售后部 After-sales"
    assert [(w["week"], w["tickets"], w["sla_met_percent"], w["satisfaction"]) for w in r["trend"][-2:]] == [
        ("2026-W47", 1, 100.0, None),
        ("2026-W48", 6, 60.0, 3.67),
    ]
    assert len(r["trend"]) == 8 and r["trend"][0]["week"] == "2026-W41" and r["trend"][0]["tickets"] == 0
    text = as_text(r)
    assert "SLA met: 60%" in text and "median 6.5 h, p90 30 h" in text and "average 3.67 of 5" in text


def test_default_week_is_the_last_complete_one_and_bad_weeks_are_refused(week):
    assert weekly(week)["week"] == "2026-W48"
    with pytest.raises(ValueError, match="ISO week"):
        weekly(week, "2026-48")


def test_percentile_is_nearest_rank():
    assert percentile([1, 3, 10, 30], 90) == 30 and percentile(list(range(1, 11)), 90) == 9 and percentile([], 90) is None


def test_pdf_has_charts_and_the_figures(week, tmp_path):
    """--pdf: pygal SVG charts through weasyprint; the text read back holds the figures."""
    pdfplumber = pytest.importorskip("pdfplumber")
    from intake.tickets.report_pdf import write_pdf

    r = weekly(week, "2026-W48")
    out = write_pdf(r, tmp_path / "weekly.pdf", week.config.template_dirs)
    with pdfplumber.open(out) as pdf:
        assert len(pdf.pages) == 2  # figures and charts on one page, trend and tables on the next
        text = "\n".join(p.extract_text() for p in pdf.pages)
        curves = sum(len(p.curves) + len(p.rects) for p in pdf.pages)
    for figure in (
        "2026-W48",
        "60.0%",
        "6.5 h",
        "30.0 h",
        "3.67",
        "客服周报",
        "投诉",
        "紧急",
        "时限达成",
        "满意度",
        "周趋势",
        "增加",
        "建议",
        "售后部",
        "66.7%",
    ):
        assert figure in text, figure
    assert curves > 20  # the charts are drawn vector shapes, not text
    if shutil.which("pdftoppm"):
        ARTIFACTS.mkdir(exist_ok=True)
        for page in (1, 2):
            subprocess.run(
                [
                    "pdftoppm",
                    "-png",
                    "-r",
                    "80",
                    "-f",
                    str(page),
                    "-l",
                    str(page),
                    "-singlefile",
                    str(out),
                    str(ARTIFACTS / f"report-weekly-p{page}"),
                ],
                check=True,
            )
        assert (ARTIFACTS / "report-weekly-p1.png").stat().st_size > 10_000


def test_cli_report_weekly_text_json_and_pdf(week, tmp_path):
    """The real executable: `intake report weekly --week 2026-W48` as text, --json, and --pdf FILE."""
    import os
    import sys

    config = tmp_path / "intake.toml"
    config.write_text(f'[database]\nurl = "{week.config.database.url}"\n[paths]\nvar = "{tmp_path / "var"}"\n', encoding="utf-8")

    def run(*args):
        proc = subprocess.run(
            [sys.executable, "-m", "intake.cli.main", "--config", str(config), "report", "weekly", *args],
            capture_output=True,
            timeout=120,
            env={**os.environ, "INTAKE_CONFIG": ""},
            cwd=tmp_path,
        )
        assert proc.returncode == 0, proc.stderr.decode()
        return proc.stdout.decode()

    text = run("--week", "2026-W48")
    assert "Weekly report 2026-W48" in text and "tickets opened: 6" in text and "average 3.67 of 5" in text
    [line] = run("--week", "2026-W48", "--json").splitlines()
    data = json.loads(line)
    assert data["tickets"] == 6 and data["by_channel"] == {"email": 5, "form": 1} and data["satisfaction"]["distribution"]["2"] == 1
    pdf = tmp_path / "out" / "weekly.pdf"
    assert "PDF written" in run("--week", "2026-W48", "--pdf", str(pdf))
    assert pdf.read_bytes()[:5] == b"%PDF-"
    bad = subprocess.run(
        [sys.executable, "-m", "intake.cli.main", "--config", str(config), "report", "weekly", "--week", "48"],
        capture_output=True,
        timeout=60,
        env={**os.environ, "INTAKE_CONFIG": ""},
        cwd=tmp_path,
    )
    assert bad.returncode == 2 and b"ISO week" in bad.stderr
