"""Outgoing mail as bytes: built once, stored in the outbox, sent as stored."""
from __future__ import annotations

import secrets
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr

from intake.models import utcnow
from intake.render import RenderedMail


def new_message_id(kind: str, ticket_ref: str, domain: str) -> str:
    """Unique and stable: chosen once, stored with the outbox row, reused on every resend."""
    return f"{kind}.{ticket_ref}.{secrets.token_hex(8)}@{domain}"


def compose(
    mail: RenderedMail,
    *,
    message_id: str,
    from_name: str,
    from_addr: str,
    to_addr: str,
    to_name: str = "",
    in_reply_to: str | None = None,
    references: list[str] | None = None,
    auto_submitted: str | None = None,
    extra_headers: dict[str, str] | None = None,
) -> bytes:
    msg = EmailMessage(policy=SMTP)
    msg["From"] = formataddr((from_name, from_addr))
    msg["To"] = formataddr((to_name, to_addr)) if to_name else to_addr
    msg["Subject"] = mail.subject
    msg["Date"] = format_datetime(utcnow())
    msg["Message-ID"] = f"<{message_id}>"
    if in_reply_to:
        msg["In-Reply-To"] = f"<{in_reply_to}>"
        msg["References"] = " ".join(f"<{r}>" for r in [*(references or []), in_reply_to] if r)
    if auto_submitted:
        # RFC 3834: tells other responders not to answer us, which ends mail loops
        msg["Auto-Submitted"] = auto_submitted
        msg["X-Auto-Response-Suppress"] = "All"
    for name, value in (extra_headers or {}).items():
        msg[name] = value
    msg.set_content(mail.text, charset="utf-8")
    if mail.html:
        msg.add_alternative(mail.html, subtype="html", charset="utf-8")
    return msg.as_bytes()

