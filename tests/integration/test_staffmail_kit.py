"""Helpers shared by the staff mail tests (no tests here): a context on a fixed
Monday morning, customer and staff mails, mail through the real SMTP server."""

from __future__ import annotations

import email
import itertools
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import default
from email.utils import parseaddr

from sqlalchemy import select

from intake.outgoing.mailer import OutboxWorker
from intake.sources.base import SourceRef
from intake.store.models import Event, OutboxMail, Ticket

# Monday 23 Nov 2026, 10:00 in Asia/Shanghai: the after-sales day shift is on duty
MONDAY_10 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
CUSTOMER = "zhao.li@kehu.example.cn"
_n = itertools.count()


def complaint(
    body: str = "我要投诉：你们的售后服务太差了，维修人员答应上门却一直没来，请给个说法。",
    *,
    subject: str = "投诉售后服务",
    sender: str = f"赵丽 <{CUSTOMER}>",
    in_reply_to: str | None = None,
) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "support@example.com"
    msg["Subject"] = subject
    msg["Date"] = "Mon, 23 Nov 2026 10:00:00 +0800"
    msg["Message-ID"] = f"<c{next(_n)}@kehu.example.cn>"
    if in_reply_to:
        msg["In-Reply-To"] = f"<{in_reply_to}>"
        msg["References"] = f"<{in_reply_to}>"
    msg.set_content(body)
    return bytes(msg)


def reply_to(original: bytes, *, sender: str, body: str, to: str | None = None, headers: dict | None = None) -> bytes:
    """A mail client's reply to `original`: to its Reply-To, the original quoted below."""
    orig = email.message_from_bytes(original, policy=default)
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to or orig["Reply-To"] or orig["From"]
    msg["Subject"] = "Re: " + orig["Subject"]
    msg["Date"] = "Mon, 23 Nov 2026 11:00:00 +0800"
    msg["Message-ID"] = f"<r{next(_n)}@example.com>"
    msg["In-Reply-To"] = orig["Message-ID"]
    msg["References"] = orig["Message-ID"]
    for k, v in (headers or {}).items():
        msg[k] = v
    quoted = "\n".join("> " + line for line in orig.get_body(("plain",)).get_content().splitlines())
    msg.set_content(f"{body}\n\n在 2026年11月23日 10:00，客户服务中心 <support@example.com> 写道：\n{quoted}\n")
    return bytes(msg)


def ref(source: str = "test") -> SourceRef:
    return SourceRef(source, f"k{next(_n)}", "email")


def staff_config(smtp_server=None, **sections) -> dict:
    cfg = {"staff_mail": {"secret": "test-secret-0123456789abcdef"}, **sections}
    if smtp_server is not None:
        cfg["smtp"] = {"host": smtp_server.host, "port": smtp_server.port, "timeout": 5}
    return cfg


def deliver(ctx, smtp_server) -> list[email.message.EmailMessage]:
    """Send what is queued through the real SMTP server; the messages it received, parsed."""
    before = len(smtp_server.messages)
    OutboxWorker(ctx).run_once()
    return [email.message_from_bytes(m.raw, policy=default) for m in smtp_server.messages[before:]]


def to_addr(msg) -> str:
    return parseaddr(str(msg["To"]))[1]


def body(msg) -> str:
    return msg.get_body(("plain",)).get_content()


def ticket(ctx, reference: str) -> Ticket:
    with ctx.sessions() as s:
        t = s.scalar(select(Ticket).where(Ticket.ref == reference))
        _ = (t.customer, t.messages, t.events)  # load while the session is open
        return t


def events(ctx, reference: str, kind: str | None = None) -> list[Event]:
    return [e for e in ticket(ctx, reference).events if kind is None or e.kind == kind]


def outbox(ctx, kind: str | None = None) -> list[OutboxMail]:
    with ctx.sessions() as s:
        q = select(OutboxMail).order_by(OutboxMail.id)
        if kind:
            q = q.where(OutboxMail.kind == kind)
        return list(s.scalars(q))
