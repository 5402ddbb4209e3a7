"""Staff corrections of a ticket's type or urgency, kept as labelled examples.

`record` is called where a `#type` / `#urgency` command changes a ticket
(intake/staffmail/actions.py), in the same transaction. `examples` turns the stored rows
into the labelled messages `intake rules suggest` learns from; `weekly` counts them for
the weekly report.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from intake.inbound.quote import strip_quoted
from intake.store.fastsql import insert_new
from intake.store.models import Correction, Message, Ticket
from intake.vocabulary import TYPES


def record(session: Session, ticket: Ticket, *, axis: str, old: str, new: str, actor: str, at) -> Correction:
    """Keep one correction with the text the rules read and what they decided then."""
    first = session.scalar(
        select(Message).where(Message.ticket_id == ticket.id, Message.direction == "in", Message.kind == "customer").order_by(Message.id).limit(1)
    )
    decided = ticket.classification or {}
    row = Correction(
        ticket_id=ticket.id,
        axis=axis,
        old_value=old,
        new_value=new,
        rule_type=str(decided.get("type") or ""),
        rule_urgency=str(decided.get("urgency") or ""),
        matches=[m for m in decided.get("matches", []) if isinstance(m, dict)],
        # what the classifier read: the subject and the new text of the first message (message.py: strip_quoted)
        subject=first.subject if first is not None else ticket.subject,
        text=strip_quoted(first.text) if first is not None else "",
        language=ticket.language or "",
        actor=actor,
        at=at,
    )
    return insert_new(session, row)


def examples(session: Session) -> list[dict]:
    """One labelled message per corrected ticket, in the shape of classify.evaluate.load_labelled:
    subject, body, and the type and/or urgency the staff member set last (an axis nobody
    corrected is None: the rules' value there was never confirmed)."""
    by_ticket: dict[int, dict] = {}
    for c in session.scalars(select(Correction).order_by(Correction.id)):
        row = by_ticket.setdefault(
            c.ticket_id, {"subject": c.subject, "body": c.text, "type": None, "urgency": None, "lang": c.language, "source": f"ticket {c.ticket_id}"}
        )
        row[c.axis] = c.new_value  # the last word wins
    return list(by_ticket.values())


def weekly(session: Session, tickets: list[Ticket]) -> dict:
    """Of these tickets, per type as opened: how many had their type and their urgency
    corrected by staff (each ticket once per axis), and to what."""
    opened_as = {t.id: str((t.classification or {}).get("type") or t.type) for t in tickets}
    per_type: dict[str, dict[str, Any]] = {t: {"tickets": 0, "type_corrected": 0, "urgency_corrected": 0, "to": {}} for t in TYPES}
    for type_ in opened_as.values():
        per_type.setdefault(type_, {"tickets": 0, "type_corrected": 0, "urgency_corrected": 0, "to": {}})["tickets"] += 1
    final: dict[tuple[int, str], str] = {}
    ids = list(opened_as)
    for start in range(0, len(ids), 500):  # bounded IN lists
        for c in session.scalars(select(Correction).where(Correction.ticket_id.in_(ids[start : start + 500])).order_by(Correction.id)):
            final[(c.ticket_id, c.axis)] = c.new_value
    for (ticket_id, axis), value in final.items():
        row = per_type[opened_as[ticket_id]]
        row[f"{axis}_corrected"] += 1
        if axis == "type":
            row["to"][value] = row["to"].get(value, 0) + 1
    for row in per_type.values():
        n = row["tickets"]
        row["type_percent"] = round(100 * row["type_corrected"] / n, 1) if n else None
        row["urgency_percent"] = round(100 * row["urgency_corrected"] / n, 1) if n else None
    total = len(tickets)
    type_total = sum(r["type_corrected"] for r in per_type.values())
    urgency_total = sum(r["urgency_corrected"] for r in per_type.values())
    return {
        "per_type": per_type,
        "type_corrected": type_total,
        "urgency_corrected": urgency_total,
        "type_percent": round(100 * type_total / total, 1) if total else None,
        "urgency_percent": round(100 * urgency_total / total, 1) if total else None,
    }
