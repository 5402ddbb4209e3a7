"""Tickets as plain dicts for `intake tickets list/show`, and as text for people."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from intake.context import Context
from intake.outgoing.templates import label
from intake.store.models import Message, Ticket
from intake.tickets.records import OPEN_STATUSES


def list_tickets(ctx: Context, *, status: str | None = None, limit: int = 50) -> list[dict]:
    with ctx.read_sessions() as session:
        query = select(Ticket).options(selectinload(Ticket.customer)).order_by(Ticket.id.desc()).limit(limit)
        if status == "open":
            query = query.where(Ticket.status.in_(OPEN_STATUSES))
        elif status:
            query = query.where(Ticket.status == status)
        return [_summary(t) for t in session.scalars(query)]


def _summary(t: Ticket) -> dict:
    return {
        "ref": t.ref,
        "status": t.status,
        "type": t.type,
        "urgency": t.urgency,
        "flagged": t.flagged,
        "department": t.department,
        "assignee": t.assignee,
        "channel": t.channel,
        "customer": t.customer.email or t.customer.phone or t.customer.number,
        "customer_number": t.customer.number,
        "subject": t.subject,
        "created_at": t.created_at,
        "due_at": t.due_at,
    }


def show_ticket(ctx: Context, ref: str) -> dict | None:
    with ctx.read_sessions() as session:
        t = session.scalar(
            select(Ticket)
            .where(Ticket.ref == ref)
            .options(
                selectinload(Ticket.customer),
                selectinload(Ticket.events),
                selectinload(Ticket.messages).selectinload(Message.attachments),
            )
        )
        if t is None:
            return None
        return {
            **_summary(t),
            "language": t.language,
            "customer_name": t.customer.name,
            "company": t.customer.company,
            "classification": t.classification,
            "messages": [
                {
                    "direction": m.direction,
                    "kind": m.kind,
                    "message_id": m.message_id,
                    "from": m.from_addr,
                    "to": m.to_addrs,
                    "subject": m.subject,
                    "at": m.received_at,
                    "text": m.text,
                    "defects": m.defects,
                    "bytes": len(m.raw),
                    "attachments": [
                        {"filename": a.filename, "content_type": a.content_type, "size": a.size, "truncated": a.truncated} for a in m.attachments
                    ],
                }
                for m in t.messages
            ],
            "events": [{"at": e.at, "actor": e.actor, "kind": e.kind, "detail": e.detail} for e in t.events],
        }


def format_ticket(t: dict) -> str:
    lang = t["language"]
    lines = [
        f"{t['ref']}  {t['subject']}",
        f"  customer:   {t['customer_name'] or '-'} <{t['customer']}> ({t['customer_number']}) {t['company']}",
        f"  status:     {t['status']} ({label('status', t['status'], lang)})",
        f"  type:       {t['type']} ({label('type', t['type'], lang)})   urgency: {t['urgency']} ({label('urgency', t['urgency'], lang)})"
        + ("  加急" if t["flagged"] else ""),
        f"  department: {t['department'] or '-'}   assignee: {t['assignee'] or '-'}   channel: {t['channel']}",
        f"  opened:     {t['created_at']:%Y-%m-%d %H:%M %Z}   due: {t['due_at']:%Y-%m-%d %H:%M %Z}" if t["due_at"] else "",
        "",
        "messages:",
    ]
    for m in t["messages"]:
        arrow = "→" if m["direction"] == "out" else "←"
        lines.append(f"  {arrow} {m['at']:%Y-%m-%d %H:%M} {m['kind']} {m['from']} : {m['subject']}")
        for a in m["attachments"]:
            lines.append(f"      📎 {a['filename']} ({a['content_type']}, {a['size']} bytes{', truncated' if a['truncated'] else ''})")
        for line in m["text"].strip().splitlines()[:12]:
            lines.append(f"      {line}")
    lines += ["", "events:"]
    for e in t["events"]:
        detail = ", ".join(f"{k}={v}" for k, v in e["detail"].items() if v not in (None, "", [], {}))
        lines.append(f"  {e['at']:%Y-%m-%d %H:%M:%S} {e['actor']} {e['kind']} {detail}")
    return "\n".join(lines)
