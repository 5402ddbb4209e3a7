"""From a real Chinese email through intake's pipeline to an archived PDF/A: the loader over intake's tables."""

from __future__ import annotations

import io
import re
import subprocess
from email.message import EmailMessage
from pathlib import Path, PurePosixPath

import pypdf
from sqlalchemy import select

from archive.from_tickets import TicketLoader
from archive.integrity import verify
from archive.models import ArchiveFile
from archive.storage import LocalStorage
from archive.worker import ArchiveWorker, enqueue
from classify import load_staff
from intake.sources.base import SourceRef
from intake.store.models import Ticket
from intake.vocabulary import label


def gbk_mail() -> bytes:
    msg = EmailMessage()
    msg["From"] = "王芳 <wang.fang@kehu.example.cn>"
    msg["To"] = "support@example.com"
    msg["Subject"] = "投诉：ERP 系统数据同步延迟严重"
    msg["Date"] = "Mon, 23 Nov 2026 10:15:00 +0800"
    msg["Message-ID"] = "<archive-e2e-1@kehu.example.cn>"
    msg.set_content("你好，我们的 ERP 系统多工厂数据同步延迟超过 6 小时，已严重影响生产排程，请尽快处理。\n联系电话 13912345678", charset="gbk")
    return bytes(msg)


def test_a_real_ticket_is_archived_with_its_email_embedded(ctx, pipeline, tmp_path):
    """Pipeline opens the ticket; the worker (with archive.from_tickets) writes a PDF whose text is
    the customer's GBK email and whose embedded .eml is the raw message byte for byte."""
    raw = gbk_mail()
    result = pipeline.take(raw, SourceRef("test", "archive-e2e-1", "email"))
    assert result.outcome == "opened"
    with ctx.sessions() as s, s.begin():
        ticket = s.scalar(select(Ticket).where(Ticket.ref == result.ticket))
        enqueue(s, ticket.id, "opened")
        type_label = label("type", ticket.type)  # the classifier's business, not this test's: a sync delay is a fault
    storage = LocalStorage(tmp_path / "archive")
    staff = load_staff(Path(__file__).resolve().parents[2] / "config" / "staff.toml")
    with ArchiveWorker(ctx.sessions, storage, TicketLoader(ctx.config.tickets.timezone, "zh", staff=lambda: staff), processes=1) as worker:
        assert worker.run_once().written == 1
    with ctx.sessions() as s:
        row = s.scalars(select(ArchiveFile)).one()
        assert row.ticket_ref == result.ticket and verify(s, storage, record=False) == []
        assert "多工厂数据同步延迟" in row.text
    pdf = storage.get(PurePosixPath(row.path))
    ref = result.ticket  # YYMMDD-NNNN: the day the case opened in the team's time zone, as the file name has it
    opened_on = f"20{ref[0:2]}-{ref[2:4]}-{ref[4:6]}"
    assert re.search(rf"_{opened_on}_{type_label}_{re.escape(ref)}_v1\.pdf$", row.path), row.path
    (tmp_path / "a.pdf").write_bytes(pdf)
    text = re.sub(r"\s+", "", subprocess.run(["pdftotext", str(tmp_path / "a.pdf"), "-"], capture_output=True, check=True).stdout.decode())
    assert "ERP系统多工厂数据同步延迟超过6小时" in text and result.ticket in text and "王芳" in text
    assert "售后部" in text  # the department's label from the staff directory, not its code
    if ctx.config.database.url.startswith("sqlite"):
        from tests.integration.test_archive_render import ARTIFACTS

        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / "archive-pipeline-case.pdf").write_bytes(pdf)
    attachments = pypdf.PdfReader(io.BytesIO(pdf)).attachments
    assert list(attachments.values()) == [[raw]]
