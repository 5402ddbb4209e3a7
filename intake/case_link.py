"""The signed case link of a form acknowledgement: how a customer adds to their case from the web.

A web form proves nothing about the address typed into it, so a submission never
threads by subject reference or Message-ID. The acknowledgement of a form case carries
a link to the form with the ticket's reference and an HMAC of it (the staff_mail key,
domain-separated from the Reply-To tokens); a submission that brings both back is
added to that ticket. Whoever holds the link received the acknowledgement.
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import urlencode

from sqlalchemy import select
from sqlalchemy.orm import Session

from intake.case import Case
from intake.context import Context
from intake.models import Ticket
from intake.staffmail.token import load_key

SIGNATURE_LENGTH = 32  # hex characters


def signature(config, ref: str) -> str:
    return hmac.new(load_key(config), f"case-link:{ref.upper()}".encode(), hashlib.sha256).hexdigest()[:SIGNATURE_LENGTH]


def verify(config, ref: str, given: str) -> bool:
    # compare bytes: a non-ASCII string makes compare_digest raise TypeError
    return len(given) == SIGNATURE_LENGTH and hmac.compare_digest(given.encode("utf-8", "replace"), signature(config, ref).encode())


def link(config, ref: str) -> str:
    """The form with this case named, when the form has a public address; else ""."""
    base = config.web.public_base_url.rstrip("/")
    if not base:
        return ""
    return f"{base}/?{urlencode({'case': ref, 'sig': signature(config, ref)})}"


def linked_ticket(case: Case, session: Session, ctx: Context) -> Ticket | None:
    """The ticket a form submission names with a valid signature, else None (a new ticket)."""
    ref, given = case.form.get("case"), case.form.get("case_sig")
    if not isinstance(ref, str) or not isinstance(given, str) or not ref or not given:
        return None
    if not verify(ctx.config, ref, given):
        case.notes.append(f"the submission named case {ref[:40]!r} with a signature that does not verify")
        return None
    return session.scalar(select(Ticket).where(Ticket.ref == ref))
