"""Staff #type / #urgency corrections through the real staff-mail flow (real SMTP, SQLite and
PostgreSQL): each kept as a labelled example; `intake rules suggest` learns from them and
from an imported file without touching the live rules; the weekly report counts them."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from classify.rules import load_rules
from intake.pipeline.runner import Pipeline
from intake.sources.base import SourceRef
from intake.store.models import Correction, Ticket
from intake.tickets.corrections import examples
from intake.tickets.report import as_text, weekly
from tests.integration.conftest import Clock
from tests.integration.test_report_weekly import Week, at
from tests.integration.test_staffmail_kit import MONDAY_10, complaint, deliver, reply_to, staff_config, to_addr

ROOT = Path(__file__).resolve().parents[2]
QUOTED_BODY = (
    "我要投诉：你们的售后服务太差了，维修人员答应上门却一直没来，请给个说法。\n\n"
    "在 2026年11月20日，客户服务中心 写道：\n> 您的工单已受理，我们会尽快安排。"
)


@pytest.fixture
def case(make_ctx, db_url, smtp_server):
    """A complaint with a quoted earlier mail below it; replies from the assignee li.na."""
    ctx = make_ctx(db_url, Clock(MONDAY_10), **staff_config(smtp_server))
    pipeline = Pipeline(ctx)
    ref = pipeline.take(complaint(QUOTED_BODY), SourceRef("t", "open")).ticket
    [note] = [m for m in deliver(ctx, smtp_server) if to_addr(m) == "li.na@example.com"]
    n = iter(range(100))

    def reply(text: str) -> None:
        result = pipeline.take(reply_to(note.as_bytes(), sender="李娜 <li.na@example.com>", body=text), SourceRef("t", f"r{next(n)}"))
        assert result.outcome == "appended"
        deliver(ctx, smtp_server)

    return ctx, ref, reply


def rows(ctx) -> list[Correction]:
    with ctx.sessions() as s:
        return list(s.scalars(select(Correction).order_by(Correction.id)))


def test_type_and_urgency_corrections_are_kept_with_text_decision_who_and_when(case):
    ctx, ref, reply = case
    with ctx.sessions() as s:
        t = s.scalar(select(Ticket).where(Ticket.ref == ref))
        decided = dict(t.classification)
        ticket_id = t.id
    assert (decided["type"], decided["urgency"]) == ("complaint", "important")

    reply("#type fault\n您好，已转技术部排查。")
    reply("#紧急程度 紧急")
    reply("#type fault")  # no change: no correction
    first, second = rows(ctx)
    assert (first.ticket_id, first.axis, first.old_value, first.new_value) == (ticket_id, "type", "complaint", "fault")
    assert (second.axis, second.old_value, second.new_value) == ("urgency", "important", "urgent")
    for row in (first, second):
        assert (row.rule_type, row.rule_urgency) == ("complaint", "important")
        assert row.matches == decided["matches"] and "投诉" in {m["keyword"] for m in row.matches}
        assert row.subject == "投诉售后服务"
        # the customer's first message as the rules read it: the quote below it left out
        assert row.text == QUOTED_BODY.split("\n\n")[0]
        assert (row.actor, row.at, row.language) == ("staff:li.na", MONDAY_10, "zh")

    with ctx.sessions() as s:
        assert examples(s) == [
            {
                "subject": "投诉售后服务",
                "body": QUOTED_BODY.split("\n\n")[0],
                "type": "fault",
                "urgency": "urgent",
                "lang": "zh",
                "source": f"ticket {ticket_id}",
            }
        ]
    reply("#type complaint")  # changed back: the last word is the label
    with ctx.sessions() as s:
        assert [e["type"] for e in examples(s)] == ["complaint"]
    assert len(rows(ctx)) == 3


def test_a_refused_command_keeps_no_correction(case):
    """All or nothing: a reply with a bad command changes nothing, so nothing is learned from it."""
    ctx, ref, reply = case
    reply("#type fault\n#urgency soon")
    assert rows(ctx) == []


LABELLER = [  # faults in words the default rules do not know: the labeller skips labels
    "The labeller on line {n} skips labels since this morning.",
    "Labeller skips every third box on packing line {n}.",
    "Our labeller skips labels again, line {n}, please check.",
]


def test_cli_rules_suggest_learns_from_stored_and_imported_examples(case, tmp_path):
    """`intake rules suggest --import FILE --out FILE` through the real executable: the candidate
    file loads with load_rules, holds the phrase that separates the labels, and the live rules
    are untouched; writing over the live rules is refused."""
    ctx, ref, reply = case
    reply("#type fault")  # one stored correction

    imported = tmp_path / "team.jsonl"
    lines = [{"subject": "", "body": LABELLER[n % 3].format(n=n), "type": "fault", "urgency": "important"} for n in range(16)]
    lines += [{"subject": "", "body": f"How do I print a label for order {n}?", "type": "inquiry", "urgency": "normal"} for n in range(8)]
    imported.write_text("\n".join(json.dumps(x) for x in lines) + "\n", encoding="utf-8")
    config_dir = tmp_path / "conf"
    config_dir.mkdir()
    shutil.copy(ROOT / "config" / "rules.toml", config_dir / "rules.toml")
    shutil.copy(ROOT / "config" / "lexicon.tsv", config_dir / "lexicon.tsv")  # rules.toml's [lexicon] file
    live = config_dir / "rules.toml"
    live_hash = hashlib.sha256(live.read_bytes()).hexdigest()
    config = config_dir / "intake.toml"
    config.write_text(f'[database]\nurl = "{ctx.config.database.url}"\n[paths]\nvar = "{tmp_path / "var"}"\n', encoding="utf-8")

    def run(*args):
        return subprocess.run(
            [sys.executable, "-m", "intake.cli.main", "--config", str(config), *args],
            capture_output=True,
            timeout=120,
            env={**os.environ, "INTAKE_CONFIG": ""},
            cwd=tmp_path,
        )

    out = tmp_path / "candidate-rules.toml"
    proc = run("rules", "suggest", "--import", str(imported), "--out", str(out))
    assert proc.returncode == 0, proc.stderr.decode()
    candidates = load_rules(out)
    assert candidates.rules and all(r.note.startswith("precision ") and "held out" in r.note for r in candidates.rules)
    fault = {k.text for r in candidates.rules if r.target == "type:fault" for k in r.keywords}
    assert fault & {"labeller", "labeller skips", "skips labels", "skips"}, fault
    text = out.read_text(encoding="utf-8")
    assert "examples: 1 corrected tickets, " in text and str(imported) in text
    assert "held out, type" in proc.stderr.decode()
    assert hashlib.sha256(live.read_bytes()).hexdigest() == live_hash

    [line, *_] = run("rules", "suggest", "--json", "--import", str(imported), "--out", str(tmp_path / "again.toml")).stdout.decode().splitlines()
    assert {"target", "keyword", "precision", "support", "fixes", "breaks"} <= set(json.loads(line))

    refused = run("rules", "suggest", "--import", str(imported), "--out", str(live))
    assert refused.returncode == 2 and b"live rules file" in refused.stderr
    assert hashlib.sha256(live.read_bytes()).hexdigest() == live_hash

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"body": "x", "type": "praise", "urgency": "normal"}\n', encoding="utf-8")
    wrong = run("rules", "suggest", "--import", str(bad), "--no-stored")
    assert wrong.returncode == 2 and b"bad.jsonl" in wrong.stderr and b"type must be one of" in wrong.stderr


def test_weekly_report_counts_corrections_per_type(make_ctx, db_url, tmp_path):
    """Week 2026-W48: a complaint re-typed and re-rated, a second complaint re-rated, an inquiry
    re-typed twice (counted once, as its last value), a fault untouched; the week before has
    a correction that must not count in W48."""
    clock = Clock(at(16, 10))
    ctx = make_ctx(db_url, clock, **staff_config())
    w = Week(ctx, clock)
    old = w.open(at(16, 10), "投诉送货", "我要投诉，送货太慢了。", "赵丽 <z@kehu.cn>")  # W47
    w.staff(at(16, 11), old, "#type fault")
    a = w.open(at(23, 10), "投诉维修", "我要投诉，维修人员一直没来。", "钱多 <a@kehu.cn>")
    b = w.open(at(23, 11), "投诉客服", "投诉：客服态度很差。", "孙强 <b@kehu.cn>")
    c = w.open(at(24, 10), "发票咨询", "请问发票什么时候寄出？", "李四 <c@kehu.cn>")
    w.open(at(24, 11), "系统故障", "系统宕机，所有人都无法登录。", "周五 <d@kehu.cn>")
    w.staff(at(24, 12), a, "#type fault\n#urgency urgent")
    w.staff(at(24, 13), b, "#urgency normal")
    w.staff(at(25, 10), c, "#type request")
    w.staff(at(25, 11), c, "#type complaint")
    clock.at = at(30, 10)

    with ctx.sessions() as s:
        opened = {t.subject: t.classification["type"] for t in s.scalars(select(Ticket))}
    assert opened == {"投诉送货": "complaint", "投诉维修": "complaint", "投诉客服": "complaint", "发票咨询": "inquiry", "系统故障": "fault"}

    report = weekly(ctx, "2026-W48")
    r = report["corrections"]
    assert r["per_type"]["complaint"] == {
        "tickets": 2,
        "type_corrected": 1,
        "urgency_corrected": 2,
        "to": {"fault": 1},
        "type_percent": 50.0,
        "urgency_percent": 100.0,
    }
    assert r["per_type"]["inquiry"] == {
        "tickets": 1,
        "type_corrected": 1,
        "urgency_corrected": 0,
        "to": {"complaint": 1},
        "type_percent": 100.0,
        "urgency_percent": 0.0,
    }
    assert r["per_type"]["fault"] == {
        "tickets": 1,
        "type_corrected": 0,
        "urgency_corrected": 0,
        "to": {},
        "type_percent": 0.0,
        "urgency_percent": 0.0,
    }
    assert r["per_type"]["request"]["tickets"] == 0 and r["per_type"]["request"]["type_percent"] is None
    assert (r["type_corrected"], r["urgency_corrected"], r["type_percent"], r["urgency_percent"]) == (2, 2, 50.0, 50.0)
    assert weekly(ctx, "2026-W47")["corrections"]["per_type"]["complaint"] == {
        "tickets": 1,
        "type_corrected": 1,
        "urgency_corrected": 0,
        "to": {"fault": 1},
        "type_percent": 100.0,
        "urgency_percent": 0.0,
    }
    text = as_text(report)
    assert "staff corrections: type 2 (50%), urgency 2 (50%)" in text
    [complaints] = [line for line in text.splitlines() if line.split()[:2] == ["投诉", "complaint"] and "tickets" in line]
    assert complaints.split() == ["投诉", "complaint", "2", "tickets", "type", "1", "50%", "urgency", "2", "100%", "(→", "fault", "1)"]

    pdfplumber = pytest.importorskip("pdfplumber")
    from intake.tickets.report_pdf import write_pdf

    pdf_path = write_pdf(report, tmp_path / "weekly.pdf", ctx.config.template_dirs)
    with pdfplumber.open(pdf_path) as pdf:
        assert len(pdf.pages) == 2  # the corrections table fits beside the others
        pdf_text = "\n".join(p.extract_text() for p in pdf.pages)
    assert "人工更正" in pdf_text and "投诉 complaint 2 1 (50%) 2 (100%) 故障 1" in pdf_text and "咨询 inquiry 1 1 (100%) 0 (0%) 投诉 1" in pdf_text
    assert "合计 all 4 2 (50%) 2 (50%)" in pdf_text
