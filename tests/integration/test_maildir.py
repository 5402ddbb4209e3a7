"""The Maildir drop folder on a real folder: new/ and cur/ taken, tmp/ left alone, processed
messages moved to the .Processed sub-maildir, unparseable ones to .Rejected with a reason."""

from __future__ import annotations

import mailbox
import os
import threading
import time
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import func, select

from intake.pipeline.runner import Pipeline
from intake.sources.base import SourceRef
from intake.sources.maildir import MaildirSource
from intake.store.models import OutboxMail, QuarantineItem, SourceItem, Ticket


@pytest.fixture
def ctx(make_ctx, tmp_path):
    return make_ctx(f"sqlite:///{tmp_path / 'intake.db'}")


@pytest.fixture
def sink(ctx) -> Pipeline:
    return Pipeline(ctx)


def source_items(ctx) -> list[tuple[str, str, str, str | None]]:
    with ctx.sessions() as s:
        # the key is the file's unique name and a digest of its content
        return [(i.source, i.key.split("#")[0], i.outcome, i.ticket_ref) for i in s.scalars(select(SourceItem).order_by(SourceItem.id))]


def mail(n: int) -> bytes:
    msg = EmailMessage()
    msg["From"] = f"客户{n} <kehu{n}@example.cn>"
    msg["To"] = "support@example.com"
    msg["Subject"] = f"问题 {n}"
    msg["Message-ID"] = f"<drop{n}@example.cn>"
    msg.set_content(f"第{n}封：服务器无法访问。", charset="utf-8")
    return bytes(msg)


def deliver(root: Path, name: str, data: bytes, sub: str = "new") -> Path:
    """As an MTA does: write into tmp/, rename into new/ (or cur/); then make it look settled."""
    for d in ("tmp", "new", "cur"):
        (root / d).mkdir(parents=True, exist_ok=True)
    tmp = root / "tmp" / name
    tmp.write_bytes(data)
    final = root / sub / name
    os.rename(tmp, final)
    t = time.time() - 10
    os.utime(final, (t, t))
    return final


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@pytest.fixture
def drop(tmp_path) -> Path:
    return tmp_path / "drop"


def test_new_and_cur_messages_are_taken_and_moved_to_processed(drop, ctx, sink):
    """new/ and cur/ (read and flagged by a mail client) are taken once each, moved into
    .Processed/cur/ with the Seen flag; tmp/ (a delivery in progress) is left alone."""
    deliver(drop, "1700000001.M1P1.host", mail(1), "new")
    deliver(drop, "1700000002.M1P1.host:2,F", mail(2), "cur")
    (drop / "tmp" / "1700000003.M1P1.host").write_bytes(mail(3))  # still being delivered
    source = MaildirSource(drop, sink, name="drop")
    source.prepare()
    assert source.run_once() == 2
    items = source_items(ctx)
    assert [i[:3] for i in items] == [
        ("maildir:drop", "1700000001.M1P1.host", "opened"),
        ("maildir:drop", "1700000002.M1P1.host", "opened"),
    ]
    with ctx.sessions() as s:
        assert sorted(t.channel for t in s.scalars(select(Ticket))) == ["email", "email"]
        assert sorted(o.rcpt_to for o in s.scalars(select(OutboxMail).where(OutboxMail.kind == "ack"))) == ["kehu1@example.cn", "kehu2@example.cn"]
    assert names(drop / "new") == [] and names(drop / "cur") == []
    assert names(drop / "tmp") == ["1700000003.M1P1.host"]
    assert names(drop / ".Processed" / "cur") == ["1700000001.M1P1.host:2,S", "1700000002.M1P1.host:2,FS"]
    # The processed folder is a real Maildir++ folder a mail client (or Python) can read.
    processed = mailbox.Maildir(drop, create=False).get_folder("Processed")
    assert sorted(m["Message-ID"] for m in processed) == ["<drop1@example.cn>", "<drop2@example.cn>"]


def test_message_moved_from_new_to_cur_is_the_same_item(drop, ctx, sink):
    """A mail client moving a message from new/ to cur/ (adding :2,S) after a crash does not make it a second ticket."""
    source = MaildirSource(drop, sink)
    source.prepare()
    deliver(drop, "1700000009.M9P9.host", mail(9), "new")
    ref = SourceRef("maildir:drop", "1700000009.M9P9.host", "email")
    first = sink.take(mail(9), ref)  # taken once already, then a crash before the move
    assert first.outcome == "opened"
    os.rename(drop / "new" / "1700000009.M9P9.host", drop / "cur" / "1700000009.M9P9.host:2,S")
    assert source.run_once() == 1
    assert names(drop / ".Processed" / "cur") == ["1700000009.M9P9.host:2,S"]
    with ctx.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Ticket)) == 1
        assert s.scalar(select(func.count()).select_from(OutboxMail).where(OutboxMail.kind == "ack")) == 1


def test_unparseable_message_goes_to_rejected_with_reason(drop, ctx, sink):
    """Quarantined by the pipeline (bytes kept there too), moved to .Rejected with the reason beside it."""
    junk = b"\x00\x01 this is not an email at all \xff" * 3
    deliver(drop, "1700000005.M5P5.host", junk, "new")
    source = MaildirSource(drop, sink)
    source.prepare()
    assert source.run_once() == 1
    assert names(drop / ".Rejected" / "cur") == ["1700000005.M5P5.host"]
    assert (drop / ".Rejected" / "1700000005.M5P5.host.reason.txt").read_text("utf-8").strip()
    assert names(drop / ".Processed" / "cur") == []
    assert (drop / ".Rejected" / "cur" / "1700000005.M5P5.host").read_bytes() == junk
    with ctx.sessions() as s:
        [item] = s.scalars(select(QuarantineItem))
        assert item.raw == junk and item.source == "maildir:drop"


def test_messages_delivered_while_stopped_are_taken_at_start_and_watched_after(drop, ctx, sink):
    """Start takes the backlog; a message delivered while running is taken within seconds."""
    deliver(drop, "1700000010.M1P1.host", mail(10))
    source = MaildirSource(drop, sink, rescan_seconds=600, settle_seconds=0.2)
    stop = threading.Event()
    runner = threading.Thread(target=source.run_forever, args=(stop,))
    runner.start()
    try:
        deadline = time.monotonic() + 10
        while len(names(drop / ".Processed" / "cur")) < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        (drop / "tmp" / "1700000011.M1P1.host").write_bytes(mail(11))
        os.rename(drop / "tmp" / "1700000011.M1P1.host", drop / "new" / "1700000011.M1P1.host")
        while len(names(drop / ".Processed" / "cur")) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        runner.join(timeout=5)
    assert not runner.is_alive()
    assert names(drop / ".Processed" / "cur") == ["1700000010.M1P1.host:2,S", "1700000011.M1P1.host:2,S"]
    assert [i[2] for i in source_items(ctx)] == ["opened", "opened"]
