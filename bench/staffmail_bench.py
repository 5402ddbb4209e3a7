"""Staff mail loop costs: notification per new ticket, relay per staff reply, one timers pass,
the weekly report (figures and PDF). Run: .venv/bin/python bench/staffmail_bench.py [--n 300] [--pg URL] [--write]

Everything runs the real pipeline on a fresh database (SQLite file, or PostgreSQL with --pg);
mail is only queued (the mailer is measured elsewhere). Reports medians; --write puts the
figures into bench/staffmail_bench.md.
"""

from __future__ import annotations

import argparse
import email
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from email.policy import default
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import select  # noqa: E402

from intake.config import from_dict  # noqa: E402
from intake.context import build_context  # noqa: E402
from intake.pipeline.runner import Pipeline  # noqa: E402
from intake.sources.base import SourceRef  # noqa: E402
from intake.staffmail.timers import TimersWorker  # noqa: E402
from intake.store.db import make_engine, upgrade  # noqa: E402
from intake.store.models import OutboxMail  # noqa: E402
from intake.tickets.report import weekly  # noqa: E402
from intake.tickets.report_pdf import write_pdf  # noqa: E402
from tests.integration.test_staffmail_kit import complaint, reply_to  # noqa: E402

MONDAY_10 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
TEXTS = [
    ("投诉售后服务", "我要投诉：你们的售后服务太差了，维修人员答应上门却一直没来，请给个说法。"),
    ("发票咨询", "请问发票什么时候寄出？"),
    ("功能需求", "希望你们的软件能增加导出Excel的功能。"),
    ("打印机故障", "打印机卡纸了，请派人看一下。"),
]


class Clock:
    def __init__(self, at):
        self.at = at

    def __call__(self):
        return self.at


def ms(seconds: list[float]) -> str:
    return f"{statistics.median(seconds) * 1000:.1f} ms"


def run(n: int, url: str | None) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="staffmail-bench-"))
    url = url or f"sqlite:///{tmp / 'bench.db'}"
    cfg = from_dict({"database": {"url": url}, "paths": {"var": str(tmp)}, "staff_mail": {"secret": "bench-secret-0123456789"}})
    upgrade(make_engine(url))
    clock = Clock(MONDAY_10)
    ctx = build_context(cfg, now=clock)
    pipeline = Pipeline(ctx)
    opened, replied = [], []
    for i in range(n):
        subject, text = TEXTS[i % len(TEXTS)]
        clock.at = MONDAY_10 + timedelta(seconds=60 * i % (6 * 3600))
        raw = complaint(f"{text}（{i}）", subject=subject, sender=f"客户{i} <c{i}@kehu.example.cn>")
        started = time.perf_counter()
        pipeline.take(raw, SourceRef("bench", f"o{i}"))
        opened.append(time.perf_counter() - started)
    with ctx.sessions() as s:
        notes = [(r.rcpt_to, r.raw) for r in s.scalars(select(OutboxMail).where(OutboxMail.kind == "notify").order_by(OutboxMail.id))]
    for i, (who, raw) in enumerate(notes[: n // 2]):
        note = email.message_from_bytes(raw, policy=default)
        answer = reply_to(note.as_bytes(), sender=who, body=f"您好，已安排处理（{i}）。\n\n--\n客服")
        started = time.perf_counter()
        pipeline.take(answer, SourceRef("bench", f"r{i}"))
        replied.append(time.perf_counter() - started)
    worker = TimersWorker(ctx)
    clock.at = MONDAY_10 + timedelta(hours=23)  # reminders for the unanswered important ones
    started = time.perf_counter()
    done = worker.run_once()
    timers = time.perf_counter() - started
    clock.at = MONDAY_10 + timedelta(days=7)
    report_runs, pdf_runs = [], []
    for _ in range(3):
        started = time.perf_counter()
        report = weekly(ctx, "2026-W48")
        report_runs.append(time.perf_counter() - started)
        started = time.perf_counter()
        write_pdf(report, tmp / "weekly.pdf", cfg.template_dirs)
        pdf_runs.append(time.perf_counter() - started)
    return {
        "database": "PostgreSQL" if url.startswith("postgresql") else "SQLite",
        "tickets": n,
        "take + notify (median per new ticket)": ms(opened),
        "staff reply relayed (median)": ms(replied),
        "replies": len(replied),
        "timers pass": f"{timers * 1000:.0f} ms for {sum(done.values())} reminders/escalations",
        "weekly report figures (median of 3)": ms(report_runs),
        "weekly report PDF (median of 3)": ms(pdf_runs),
        "PDF size": f"{(tmp / 'weekly.pdf').stat().st_size // 1024} KB",
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--pg", help="a PostgreSQL URL of an empty database")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    rows = [run(args.n, None)] + ([run(args.n, args.pg)] if args.pg else [])
    keys = list(rows[0])
    table = ["| " + " | ".join(["figure", *(r["database"] for r in rows)]) + " |", "|---" * (len(rows) + 1) + "|"]
    table += ["| " + " | ".join([k, *(str(r[k]) for r in rows)]) + " |" for k in keys if k != "database"]
    print("\n".join(table))
    if args.write:
        path = Path(__file__).with_suffix(".md")
        text = path.read_text(encoding="utf-8")
        start, end = text.index("<!-- figures -->"), text.index("<!-- /figures -->")
        path.write_text(text[: start + len("<!-- figures -->")] + "\n" + "\n".join(table) + "\n" + text[end:], encoding="utf-8")


if __name__ == "__main__":
    main()
