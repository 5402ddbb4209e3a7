"""A CaseRecord from intake's tables (tickets, customers, messages, attachments): the worker's `load_record`.

The only module of the archive that reads the ticket system's models; the owner may pass
`TicketLoader(tz, lang, staff)` to ArchiveWorker or write their own loader.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from archive.record import AttachmentInfo, CaseRecord, RawOriginal, ThreadMessage

# messages that are not part of the conversation a reader needs (kept in the database)
_SKIPPED_KINDS = {"autoreply"}


def _day(at: datetime | None, tz: ZoneInfo) -> date | None:
    return at.astimezone(tz).date() if at is not None else None


def _explain(classification: dict, lang: str) -> list[str]:
    """The classifier's own explanation lines, rebuilt from the stored dict."""
    if not classification:
        return []
    try:
        from classify.classifier import Classification, Match

        data = dict(classification)
        data["matches"] = [Match(**m) for m in data.get("matches", [])]
        return [line.strip() for line in Classification(**data).explain(lang).splitlines() if line.strip()]
    except Exception:  # an older stored shape must not stop the archive
        return [f"{k}: {classification[k]}" for k in ("type", "urgency", "departments") if k in classification]


def _department(code: str, staff, lang: str) -> str:
    dept = staff.departments.get(code) if staff is not None and code else None
    if dept is None:
        return code
    return dept.label_zh if lang == "zh" else dept.label_en


def _handler(staff_id: str | None, staff) -> str:
    member = staff.member(staff_id) if staff is not None and staff_id else None
    return f"{member.name} ({staff_id})" if member else (staff_id or "")


def load_record(session: Session, ticket_id: int, *, tz: str = "Asia/Shanghai", lang: str = "zh", staff=None) -> CaseRecord:
    """`staff`: a classify.StaffDirectory (or None) to show department labels and staff names."""
    from intake.store.models import Ticket

    zone = ZoneInfo(tz)
    ticket = session.get(Ticket, ticket_id)
    if ticket is None:
        raise LookupError(f"no ticket with id {ticket_id}")
    customer = ticket.customer
    messages, originals = [], []
    for n, m in enumerate(ticket.messages, start=1):
        if m.kind in _SKIPPED_KINDS:
            continue
        at = (m.sent_at or m.received_at).astimezone(zone)
        sender = f"{m.from_name} <{m.from_addr}>" if m.from_name and m.from_addr else (m.from_name or m.from_addr)
        messages.append(
            ThreadMessage(
                direction=m.direction,
                at=at,
                sender=sender,
                subject=m.subject,
                text=m.text,
                html=m.html,
                attachments=[AttachmentInfo(a.filename, a.content_type, a.size) for a in m.attachments],
            )
        )
        if m.direction == "in" and m.raw:
            if m.channel == "form":
                originals.append(RawOriginal(f"{ticket.ref}-{n}-form.json", m.raw, "application/json"))
            else:
                originals.append(RawOriginal(f"{ticket.ref}-{n}-in.eml", m.raw, "message/rfc822"))
    first_in = next((m for m in messages if m.direction == "in"), None)
    return CaseRecord(
        ticket_ref=ticket.ref,
        customer_number=customer.number,
        customer_name=customer.name,
        company=customer.company,
        industry=customer.industry,
        email=customer.email or "",
        phone=customer.phone or "",
        date_opened=ticket.created_at.astimezone(zone).date(),  # set when the ticket is written
        channel=ticket.channel,
        type=ticket.type,
        urgency=ticket.urgency,
        department=_department(ticket.department, staff, lang),
        description=(first_in.text.strip()[:1500] if first_in else ticket.subject) or ticket.subject,
        handler=_handler(ticket.assignee, staff),
        status=ticket.status,
        expected_completion=_day(ticket.expected_completion, zone),
        actual_completion=_day(ticket.resolved_at, zone),
        closed_on=_day(ticket.closed_at, zone) if ticket.status == "closed" else None,
        outcome=ticket.outcome,
        satisfaction=ticket.satisfaction,
        follow_up_plan=ticket.follow_up_plan,
        notes=ticket.notes,
        flagged=ticket.flagged,
        classification=_explain(ticket.classification, lang),
        messages=messages,
        raw_originals=originals,
    )


class TicketLoader:
    """The `load_record(session, ticket_id)` for ArchiveWorker, with the configured zone,
    language and, optionally, a callable returning the current staff directory (it hot-reloads)."""

    def __init__(self, tz: str = "Asia/Shanghai", lang: str = "zh", staff: Callable[[], object] | None = None):
        self.tz, self.lang, self.staff = tz, lang, staff

    def __call__(self, session: Session, ticket_id: int) -> CaseRecord:
        return load_record(session, ticket_id, tz=self.tz, lang=self.lang, staff=self.staff() if self.staff else None)
