"""The overview's small charts: counts per hour of the last 24 hours, as pygal SVG (the
weekly report's library) in data: URIs, so the page's CSP needs no inline script or style
and the browser never runs the SVG's script (an <img> does not)."""

from __future__ import annotations

import base64
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from intake.store.models import OutboxMail, QuarantineItem, SourceItem, Ticket

SERIES = {  # chart name -> the timestamp column counted
    "taken": SourceItem.at,
    "tickets": Ticket.created_at,
    "sent": OutboxMail.sent_at,
    "quarantined": QuarantineItem.created_at,
}


def hour_starts(now: datetime, hours: int = 24) -> list[datetime]:
    """The starts of the last `hours` whole and current hours, oldest first (UTC)."""
    current = now.replace(minute=0, second=0, microsecond=0)
    return [current - timedelta(hours=hours - 1 - i) for i in range(hours)]


def hourly_counts(session: Session, column, now: datetime, hours: int = 24) -> list[int]:
    """How many rows have `column` in each of the last `hours` hours (oldest first)."""
    starts = hour_starts(now, hours)
    if session.get_bind().dialect.name == "sqlite":
        # stored as text "YYYY-MM-DD HH:MM:SS..." in UTC: the first 13 characters are the hour
        bucket = func.substr(column, 1, 13)
        key = lambda at: at.strftime("%Y-%m-%d %H")  # noqa: E731
    else:
        bucket = func.date_trunc("hour", func.timezone("UTC", column))
        key = lambda at: at.replace(tzinfo=None)  # noqa: E731
    rows = session.execute(select(bucket, func.count()).where(column >= starts[0]).group_by(bucket)).all()
    found = {(b if isinstance(b, str) else b.replace(tzinfo=None)): n for b, n in rows}
    return [found.get(key(at), 0) for at in starts]


def last_24_hours(session: Session, now: datetime) -> dict[str, list[int]]:
    return {name: hourly_counts(session, column, now) for name, column in SERIES.items()}


def bar_chart(title: str, counts: list[int], hours: list[datetime], color: str = "#0b5cad") -> str:
    """A small bar chart as a data: URI (an <img src>)."""
    import pygal
    from pygal.etree import etree
    from pygal.style import Style

    style = Style(
        background="white",
        plot_background="white",
        foreground="#1f2933",
        foreground_strong="#1f2933",
        foreground_subtle="#d5dbe3",
        colors=(color,),
        font_family="system-ui, 'PingFang SC', 'Microsoft YaHei', 'Noto Sans CJK SC', sans-serif",
        title_font_size=16,
        label_font_size=11,
        major_label_font_size=11,
    )
    top = max([*counts, 1])
    chart = pygal.Bar(
        style=style,
        width=480,
        height=220,
        title=title,
        show_legend=False,
        js=[],  # no script: the page shows it as an image
        range=(0, top),
        y_labels=list(range(0, top + 1)) if top <= 10 else None,  # whole numbers: these are counts
        truncate_label=-1,  # "18:00" whole, never "1…"
        x_label_rotation=0,
        show_minor_x_labels=False,
        x_labels_major_every=6,
        margin=8,
        print_values=False,
    )
    chart.x_labels = [at.strftime("%H:00") for at in hours]
    chart.add(title, counts)
    tree = chart.render_tree()
    for parent in list(tree.iter()):  # pygal writes its config as an inline script even with js=[]: no use in an image
        for child in [c for c in parent if isinstance(c.tag, str) and c.tag.endswith("script")]:
            parent.remove(child)
    svg = etree.tostring(tree, encoding="utf-8")
    return "data:image/svg+xml;charset=utf-8;base64," + base64.b64encode(svg).decode("ascii")
