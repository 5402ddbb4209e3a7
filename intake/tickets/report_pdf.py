"""The weekly report as a PDF a manager can put on the meeting's screen.

Charts are SVG from pygal (type and urgency shares, SLA met, satisfaction
distribution, week-on-week trend), placed inline in templates/report/weekly.html.j2
and rendered with weasyprint, with the archive's CJK fonts (templates/pdf/fonts).
"""

from __future__ import annotations

import base64
import os
import tempfile
from pathlib import Path

import jinja2

from intake.outgoing.templates import label

FONT_STACK = '"Intake Sans", "Intake Sans Rare", "Noto Sans CJK SC", sans-serif'
PALETTE = ("#2563eb", "#dc2626", "#f59e0b", "#16a34a", "#7c3aed", "#0891b2", "#db2777", "#65a30d")


def _style(colors=PALETTE):
    from pygal.style import Style

    return Style(
        font_family=FONT_STACK,
        background="white",
        plot_background="white",
        foreground="#1f2937",
        foreground_strong="#111827",
        foreground_subtle="#9ca3af",
        colors=colors,
        opacity="1",
        opacity_hover="1",
        title_font_size=17,
        legend_font_size=14,
        label_font_size=13,
        major_label_font_size=13,
        value_font_size=14,
        value_label_font_size=14,
        tooltip_font_size=13,
    )


def _config(**kw) -> dict:
    # no scripts, no XML declaration: the SVG goes inline into HTML rendered to PDF
    return {
        "disable_xml_declaration": True,
        "js": [],
        "explicit_size": False,
        "width": 330,
        "height": 345,
        "print_values": True,
        "legend_at_bottom": True,
        "legend_at_bottom_columns": 2,
        **kw,
    }


def _svg(chart, name: str) -> str:
    """The chart as a data: URI for an <img>: sized by CSS like any image, no id clashes."""
    svg = chart.render(is_unicode=True).encode("utf-8")
    return "data:image/svg+xml;base64," + base64.b64encode(svg).decode("ascii")


def charts(report: dict) -> dict[str, str]:
    import pygal

    out: dict = {}
    pie = pygal.Pie(style=_style(), inner_radius=0.45, **_config(title="类型占比 Ticket types"))
    for key, n in report["by_type"].items():
        pie.add(f"{label('type', key, 'zh')} {label('type', key, 'en')}", [{"value": n, "label": f"{n}"}] if n else [])
    out["types"] = pie

    pie = pygal.Pie(style=_style(("#dc2626", "#f59e0b", "#2563eb")), inner_radius=0.45, **_config(title="紧急程度 Urgency"))
    for key, n in report["by_urgency"].items():
        pie.add(f"{label('urgency', key, 'zh')} {label('urgency', key, 'en')}", [n] if n else [])
    out["urgency"] = pie

    s = report["sla"]
    gauge = pygal.Pie(
        style=_style(("#16a34a", "#dc2626", "#9ca3af")),
        inner_radius=0.6,
        half_pie=True,
        **_config(title=f"时限达成 SLA met: {'-' if s['met_percent'] is None else str(s['met_percent']) + '%'}"),
    )
    gauge.add("达成 met", [s["met"]] if s["met"] else [])
    gauge.add("超时 missed", [s["missed"]] if s["missed"] else [])
    gauge.add("进行中 pending", [s["pending"]] if s["pending"] else [])
    out["sla"] = gauge

    sat = report["satisfaction"]
    counts = [sat["distribution"][str(i)] for i in range(1, 6)]
    top = max([*counts, 1])
    bar = pygal.Bar(
        style=_style(("#2563eb",)),
        show_legend=False,
        range=(0, top),
        y_labels=list(range(0, top + 1)),
        **_config(title=f"满意度分布 Satisfaction (avg {sat['average'] if sat['average'] is not None else '-'})"),
    )
    bar.x_labels = ["1", "2", "3", "4", "5"]
    bar.add("answers", counts)
    out["satisfaction"] = bar

    trend = report["trend"]
    weeks = [w["week"][5:] for w in trend]
    most = max([*(w["tickets"] for w in trend), 1])
    tickets = pygal.Bar(
        style=_style(("#2563eb",)), show_legend=False, range=(0, most), **_config(title="每周工单 Tickets per week", width=440, height=317)
    )
    tickets.x_labels = weeks
    tickets.add("工单 tickets", [w["tickets"] for w in trend])
    out["trend_tickets"] = tickets
    sla = pygal.Line(
        style=_style(("#16a34a",)),
        show_legend=False,
        range=(0, 100),
        y_labels=[0, 20, 40, 60, 80, 100],
        **_config(title="时限达成 SLA met % by week", width=440, height=317),
    )
    sla.x_labels = weeks
    sla.add("SLA %", [w["sla_met_percent"] for w in trend])
    out["trend_sla"] = sla
    score = pygal.Line(
        style=_style(("#f59e0b",)),
        show_legend=False,
        range=(1, 5),
        y_labels=[1, 2, 3, 4, 5],
        **_config(title="平均满意度 Satisfaction by week", width=440, height=317),
    )
    score.x_labels = weeks
    score.add("avg", [w["satisfaction"] for w in trend])
    out["trend_satisfaction"] = score
    return {name: _svg(chart, name) for name, chart in out.items()}


def render_html(report: dict, templates: list[Path]) -> str:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(templates), autoescape=True, undefined=jinja2.StrictUndefined)
    env.globals["label"] = label
    return env.get_template("report/weekly.html.j2").render(r=report, charts=charts(report))


def write_pdf(report: dict, path: Path, templates: list[Path]) -> Path:
    """Render and write atomically (temp file, fsync, rename)."""
    import weasyprint
    from weasyprint.text.fonts import FontConfiguration

    html = render_html(report, templates)
    fonts = FontConfiguration()
    # the stylesheet and the fonts it names come from the first folder that has the stylesheet
    folder = next(Path(t) / "report" for t in templates if (Path(t) / "report" / "weekly.css").is_file())
    css = weasyprint.CSS(filename=str(folder / "weekly.css"), font_config=fonts)
    data = weasyprint.HTML(string=html, base_url=folder.as_uri() + "/").write_pdf(stylesheets=[css], font_config=fonts)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path
