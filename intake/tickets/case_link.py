"""The signed case link of a form acknowledgement: how a customer adds to their case from the web.

A web form proves nothing about the address typed into it, so a submission never
threads by subject reference or Message-ID. The acknowledgement of a form case carries
a link to the form with the ticket's reference and an HMAC of it (the staff_mail key,
domain-separated from the Reply-To tokens); a submission that brings both back is
added to that ticket. Whoever holds the link received the acknowledgement. The link
carries its expiry date under the signature (`[web] case_link_days`, 90 by default): a
link found in an old mailbox years later adds nothing.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import date, timedelta
from urllib.parse import urlencode

from sqlalchemy import select
from sqlalchemy.orm import Session

from intake.context import Context
from intake.pipeline.case import Case
from intake.staffmail.token import load_key
from intake.store.models import Ticket

MAC_LENGTH = 32  # hex characters
SIGNATURE_LENGTH = 8 + 1 + MAC_LENGTH  # "YYYYMMDD." + MAC: the expiry date, then the MAC over it


def signature(config, ref: str, expires: date) -> str:
    day = expires.strftime("%Y%m%d")
    mac = hmac.new(load_key(config), f"case-link:{ref.upper()}:{day}".encode(), hashlib.sha256).hexdigest()[:MAC_LENGTH]
    return f"{day}.{mac}"


def verify(config, ref: str, given: str, today: date) -> bool:
    """The signature is ours for this reference and its date has not passed."""
    day, dot, _ = given.partition(".")
    if len(given) != SIGNATURE_LENGTH or not dot or not day.isascii() or not day.isdigit():
        return False
    try:
        expires = date(int(day[:4]), int(day[4:6]), int(day[6:]))
    except ValueError:
        return False
    # compare bytes: a non-ASCII string makes compare_digest raise TypeError
    return expires >= today and hmac.compare_digest(given.encode("utf-8", "replace"), signature(config, ref, expires).encode())


def link(config, ref: str, today: date) -> str:
    """The form with this case named, when the form has a public address; else ""."""
    base = config.web.public_base_url.rstrip("/")
    if not base:
        return ""
    expires = today + timedelta(days=config.web.case_link_days)
    return f"{base}/?{urlencode({'case': ref, 'sig': signature(config, ref, expires)})}"


def linked_ticket(case: Case, session: Session, ctx: Context) -> Ticket | None:
    """The ticket a form submission names with a valid signature, else None (a new ticket)."""
    ref, given = case.form.get("case"), case.form.get("case_sig")
    if not isinstance(ref, str) or not isinstance(given, str) or not ref or not given:
        return None
    if not verify(ctx.config, ref, given, ctx.now().date()):
        case.notes.append(f"the submission named case {ref[:40]!r} with a signature that does not verify or has expired")
        return None
    return session.scalar(select(Ticket).where(Ticket.ref == ref))
