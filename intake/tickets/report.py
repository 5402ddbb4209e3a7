"""`intake report weekly`: the figures of the seeds' weekly review meeting, as plain data.

The week is an ISO week in tickets.timezone (default: the last complete week).
Cohort rules, chosen so a figure never moves between weeks:
- counts, SLA, first-response and resolution times: tickets OPENED in the week;
- SLA met: first answer to the customer at or before the due time; missed: later,
  or none yet and the due time has passed (as of the report's run); pending: neither;
- satisfaction: survey scores ANSWERED in the week; "no objection" closes counted apart;
- keywords: the classifier's (non-negated) keyword matches stored on those tickets;
- corrections: of those tickets, per type as opened, how many staff re-typed (`#type`) or
  re-rated (`#urgency`) up to the report's run, each ticket once per axis.
Percentiles are nearest-rank (p90 of 10 values is the 9th), in hours.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select

from intake.context import Context
from intake.store.models import Ticket
from intake.tickets import corrections
from intake.vocabulary import TYPES, URGENCIES

TREND_WEEKS = 8


def week_label(day: date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def week_bounds(label: str, tz: str) -> tuple[datetime, datetime]:
    """'2026-W47' → [Monday 00:00, next Monday 00:00) in the zone; raises ValueError."""
    try:
        year, week = label.upper().split("-W")
        monday = date.fromisocalendar(int(year), int(week), 1)
    except ValueError:
        raise ValueError(f"not an ISO week like 2026-W47: {label!r}") from None
    start = datetime.combine(monday, time(0), tzinfo=ZoneInfo(tz))
    return start, start + timedelta(days=7)


def default_week(ctx: Context) -> str:
    """The last complete week, for the Monday meeting."""
    today = ctx.now().astimezone(ZoneInfo(ctx.config.tickets.timezone)).date()
    return week_label(today - timedelta(days=7))


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def _hours(values: list[float]) -> dict:
    p90 = percentile(values, 90)  # None for no values
    return {
        "count": len(values),
        "median_hours": round(statistics.median(values), 2) if values else None,
        "p90_hours": round(p90, 2) if p90 is not None else None,
    }


def _tickets(session, start: datetime, end: datetime) -> list[Ticket]:
    return list(session.scalars(select(Ticket).where(Ticket.created_at >= start, Ticket.created_at < end).order_by(Ticket.id)))


def _sla(tickets: list[Ticket], now: datetime) -> dict:
    met = missed = pending = 0
    for t in tickets:
        if t.due_at is None:
            continue
        if t.first_response_at is not None:
            met, missed = (met + 1, missed) if t.first_response_at <= t.due_at else (met, missed + 1)
        elif t.due_at <= now:
            missed += 1
        else:
            pending += 1
    decided = met + missed
    return {"met": met, "missed": missed, "pending": pending, "met_percent": round(100 * met / decided, 1) if decided else None}


def _satisfaction(session, start: datetime, end: datetime) -> dict:
    from intake.staffmail.models import Survey

    scores = list(session.scalars(select(Survey.score).where(Survey.answered_at >= start, Survey.answered_at < end, Survey.score.is_not(None))))
    no_objection = len(
        list(session.scalars(select(Survey.id).where(Survey.outcome == "no_objection", Survey.expires_at >= start, Survey.expires_at < end)))
    )
    distribution = {str(s): scores.count(s) for s in range(1, 6)}
    return {
        "answered": len(scores),
        "average": round(statistics.mean(scores), 2) if scores else None,
        "distribution": distribution,
        "no_objection": no_objection,
    }


def _keywords(tickets: list[Ticket], top: int = 10) -> list[dict]:
    counts: Counter[str] = Counter()
    for t in tickets:
        seen = {
            m["keyword"]
            for m in (t.classification or {}).get("matches", [])
            if not m.get("negated") and any(ch.isalnum() for ch in m.get("keyword") or "")  # "?" says nothing of the problem
        }
        counts.update(seen)  # once per ticket: how many cases mention it
    return [{"keyword": k, "tickets": n} for k, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:top]]


def _counts(tickets: list[Ticket], attr: str, keys: tuple[str, ...] = ()) -> dict[str, int]:
    counts = {k: 0 for k in keys}
    for t in tickets:
        value = getattr(t, attr) or "-"
        counts[value] = counts.get(value, 0) + 1
    return counts


def weekly(ctx: Context, week: str | None = None) -> dict:
    """Every figure of one week, plus the trend of the weeks before it."""
    tz = ctx.config.tickets.timezone
    label = week or default_week(ctx)
    start, end = week_bounds(label, tz)
    now = ctx.now()
    with ctx.sessions() as session:
        tickets = _tickets(session, start, end)
        first = [(t.first_response_at - t.created_at).total_seconds() / 3600 for t in tickets if t.first_response_at]
        resolved = [(t.resolved_at - t.created_at).total_seconds() / 3600 for t in tickets if t.resolved_at]
        by_department = _counts(tickets, "department")
        report = {
            "week": label,
            "from": start.date().isoformat(),
            "to": (end - timedelta(days=1)).date().isoformat(),
            "timezone": tz,
            "tickets": len(tickets),
            "by_type": _counts(tickets, "type", TYPES),
            "by_urgency": _counts(tickets, "urgency", URGENCIES),
            "by_department": by_department,
            "by_channel": _counts(tickets, "channel"),
            "by_status": _counts(tickets, "status", ("new", "in_progress", "follow_up", "resolved", "closed")),
            "flagged": sum(1 for t in tickets if t.flagged),
            "sla": _sla(tickets, now),
            "sla_by_urgency": {u: _sla([t for t in tickets if t.urgency == u], now) for u in URGENCIES},
            "first_response": _hours(first),
            "resolution": _hours(resolved),
            "satisfaction": _satisfaction(session, start, end),
            "keywords": _keywords(tickets),
            "corrections": corrections.weekly(session, tickets),
        }
        trend = []
        for back in range(TREND_WEEKS - 1, -1, -1):
            w_start = start - timedelta(days=7 * back)
            w_end = w_start + timedelta(days=7)
            w_tickets = tickets if back == 0 else _tickets(session, w_start, w_end)
            trend.append(
                {
                    "week": week_label(w_start.date()),
                    "tickets": len(w_tickets),
                    "sla_met_percent": _sla(w_tickets, now)["met_percent"],
                    "satisfaction": _satisfaction(session, w_start, w_end)["average"],
                }
            )
        report["trend"] = trend
    directory = ctx.staff()
    report["department_labels"] = {
        d: (f"{directory.departments[d].label_zh} {directory.departments[d].label_en}" if directory is not None and d in directory.departments else d)
        for d in by_department
    }
    return report


def _fmt(value, unit: str = "") -> str:
    return "-" if value is None else f"{value:g}{unit}"


def as_text(r: dict) -> str:
    """The report for a terminal: one figure a line, Chinese and English labels."""
    from intake.outgoing.templates import label

    lines = [
        f"周报 Weekly report {r['week']} ({r['from']} – {r['to']}, {r['timezone']})",
        f"工单 tickets opened: {r['tickets']} (加急 flagged {r['flagged']})",
    ]

    def block(title: str, counts: dict, kind: str = "") -> None:
        total = sum(counts.values()) or 1
        lines.append(title)
        for key, n in counts.items():
            name = f"{label(kind, key, 'zh')} {key}" if kind else key
            lines.append(f"  {name:<22} {n:>4}  {100 * n / total:5.1f}%")

    block("类型 by type:", r["by_type"], "type")
    block("紧急程度 by urgency:", r["by_urgency"], "urgency")
    block("部门 by department:", {r["department_labels"].get(k, k): n for k, n in r["by_department"].items()})
    block("渠道 by channel:", r["by_channel"])
    s = r["sla"]
    lines.append(f"时限达成 SLA met: {_fmt(s['met_percent'], '%')} (met {s['met']}, missed {s['missed']}, pending {s['pending']})")
    for urgency, u in r["sla_by_urgency"].items():
        lines.append(
            f"  {label('urgency', urgency, 'zh')} {urgency:<10} {_fmt(u['met_percent'], '%'):>7}  (met {u['met']}, missed {u['missed']}, pending {u['pending']})"
        )
    for key, title in (("first_response", "首次响应 first response"), ("resolution", "解决用时 resolution")):
        f = r[key]
        lines.append(f"{title}: median {_fmt(f['median_hours'], ' h')}, p90 {_fmt(f['p90_hours'], ' h')} ({f['count']} tickets)")
    sat = r["satisfaction"]
    dist = "  ".join(f"{k}:{v}" for k, v in sat["distribution"].items())
    lines.append(f"满意度 satisfaction: average {_fmt(sat['average'])} of 5 ({sat['answered']} answers; {dist}); no objection {sat['no_objection']}")
    lines.append("高频问题 top keywords: " + (", ".join(f"{k['keyword']} ({k['tickets']})" for k in r["keywords"]) or "-"))
    c = r["corrections"]
    lines.append(
        f"人工更正 staff corrections: type {c['type_corrected']} ({_fmt(c['type_percent'], '%')}), "
        f"urgency {c['urgency_corrected']} ({_fmt(c['urgency_percent'], '%')})"
    )
    for type_, row in c["per_type"].items():
        to = ", ".join(f"→ {k} {n}" for k, n in sorted(row["to"].items()))
        lines.append(
            f"  {label('type', type_, 'zh')} {type_:<10} {row['tickets']:>4} tickets  type {row['type_corrected']:>3} "
            f"{_fmt(row['type_percent'], '%'):>6}  urgency {row['urgency_corrected']:>3} {_fmt(row['urgency_percent'], '%'):>6}"
            + (f"  ({to})" if to else "")
        )
    lines.append("趋势 trend:")
    for w in r["trend"]:
        lines.append(f"  {w['week']}  tickets {w['tickets']:>4}  SLA {_fmt(w['sla_met_percent'], '%'):>7}  satisfaction {_fmt(w['satisfaction'])}")
    return "\n".join(lines)
