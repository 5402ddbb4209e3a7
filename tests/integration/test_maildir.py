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

from intake.message import UnparseableMessage, parse_message
from intake.sources.base import Result, SourceRef
from intake.sources.maildir import MaildirSource


class RecordingSink:
    """Stands in for the pipeline: parses with the real parser, duplicate for a ref seen before."""

    def __init__(self) -> None:
        self.taken: list[tuple[bytes, SourceRef]] = []
        self.tickets: dict[tuple[str, str], str] = {}
        self.lock = threading.Lock()

    def take(self, raw: bytes, ref: SourceRef) -> Result:
        with self.lock:
            self.taken.append((raw, ref))
            if (ref.source, ref.key) in self.tickets:
                return Result("duplicate", self.tickets[(ref.source, ref.key)])
            try:
                parse_message(raw)
            except UnparseableMessage as exc:
                return Result("quarantined", reason=exc.reason)
            self.tickets[(ref.source, ref.key)] = ticket = f"T-{len(self.tickets) + 1}"
            return Result("opened", ticket)

    def report(self, source: str, *, backlog: int | None = None, error: str | None = None) -> None:
        pass


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


def test_new_and_cur_messages_are_taken_and_moved_to_processed(drop):
    """new/ and cur/ (read and flagged by a mail client) are taken once each, moved into
    .Processed/cur/ with the Seen flag; tmp/ (a delivery in progress) is left alone."""
    deliver(drop, "1700000001.M1P1.host", mail(1), "new")
    deliver(drop, "1700000002.M1P1.host:2,F", mail(2), "cur")
    (drop / "tmp" / "1700000003.M1P1.host").write_bytes(mail(3))  # still being delivered
    sink = RecordingSink()
    source = MaildirSource(drop, sink, name="drop")
    source.prepare()
    assert source.run_once() == 2
    assert [ref for _, ref in sink.taken] == [
        SourceRef("maildir:drop", "1700000001.M1P1.host", "email"),
        SourceRef("maildir:drop", "1700000002.M1P1.host", "email"),
    ]
    assert [raw for raw, _ in sink.taken] == [mail(1), mail(2)]
    assert names(drop / "new") == [] and names(drop / "cur") == []
    assert names(drop / "tmp") == ["1700000003.M1P1.host"]
    assert names(drop / ".Processed" / "cur") == ["1700000001.M1P1.host:2,S", "1700000002.M1P1.host:2,FS"]
    # The processed folder is a real Maildir++ folder a mail client (or Python) can read.
    processed = mailbox.Maildir(drop, create=False).get_folder("Processed")
    assert sorted(m["Message-ID"] for m in processed) == ["<drop1@example.cn>", "<drop2@example.cn>"]


def test_message_moved_from_new_to_cur_is_the_same_item(drop):
    """A mail client moving a message from new/ to cur/ (adding :2,S) does not make it a second item."""
    sink = RecordingSink()
    source = MaildirSource(drop, sink)
    source.prepare()
    deliver(drop, "1700000009.M9P9.host", mail(9), "new")
    ref = SourceRef("maildir:drop", "1700000009.M9P9.host", "email")
    assert sink.take(mail(9), ref).outcome == "opened"  # taken once already (a crash before the move)
    os.rename(drop / "new" / "1700000009.M9P9.host", drop / "cur" / "1700000009.M9P9.host:2,S")
    assert source.run_once() == 1
    assert sink.taken[-1][1] == ref and sink.tickets == {("maildir:drop", "1700000009.M9P9.host"): "T-1"}


def test_unparseable_message_goes_to_rejected_with_reason(drop):
    deliver(drop, "1700000005.M5P5.host", b"\x00\x01 this is not an email at all \xff" * 3, "new")
    sink = RecordingSink()
    source = MaildirSource(drop, sink)
    source.prepare()
    assert source.run_once() == 1
    assert names(drop / ".Rejected" / "cur") == ["1700000005.M5P5.host"]
    assert (drop / ".Rejected" / "1700000005.M5P5.host.reason.txt").read_text("utf-8").strip()
    assert names(drop / ".Processed" / "cur") == []


def test_messages_delivered_while_stopped_are_taken_at_start_and_watched_after(drop):
    """Start takes the backlog; a message delivered while running is taken within seconds."""
    deliver(drop, "1700000010.M1P1.host", mail(10))
    sink = RecordingSink()
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
