"""The console's report page: the weekly review of `intake report weekly`, any week, with its charts.

The figures are intake.tickets.report.weekly's and the charts intake.tickets.report_pdf.charts'
(pygal SVG as data: URIs, allowed by the listener's img-src), so page, terminal and PDF never
disagree; the same week as a PDF is report_pdf.write_pdf's. Both roles may read it.
"""

from __future__ import annotations

import os
import tempfile
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from starlette.background import BackgroundTask
from starlette.responses import FileResponse, Response

from intake.outgoing.templates import label
from intake.tickets import report_pdf
from intake.tickets.report import default_week, week_bounds, week_label, weekly
from intake.web.console import routes
from intake.web.console.routes import COMPLIANCE, OPERATOR, View
from intake.web.console.texts import add_texts

add_texts(
    zh={
        "nav_report": "周报",
        "rp_report_title": "客服周报 {week}",
        "rp_report_span": "{start} – {end}（{tz}）。统计本周新建的工单；满意度按本周收到的评分。",
        "rp_week": "周（ISO，如 2026-W47）",
        "rp_week_col": "周",
        "rp_show": "显示",
        "rp_prev_week": "上一周",
        "rp_next_week": "下一周",
        "rp_err_week": "请输入 ISO 周，如 2026-W47。",
        "rp_report_pdf": "下载 PDF",
        "rp_k_tickets": "新建工单",
        "rp_k_flagged": "加急",
        "rp_k_sla": "时限达成",
        "rp_k_first": "首次响应中位数",
        "rp_k_resolution": "解决用时中位数",
        "rp_k_satisfaction": "平均满意度",
        "rp_charts": "图表",
        "rp_c_types": "类型占比",
        "rp_c_urgency": "紧急程度占比",
        "rp_c_sla": "时限达成：达成、超时、进行中",
        "rp_c_satisfaction": "满意度分布（1–5 分）",
        "rp_c_trend_tickets": "近 8 周每周工单数",
        "rp_c_trend_sla": "近 8 周时限达成率",
        "rp_c_trend_satisfaction": "近 8 周平均满意度",
        "rp_by_type": "类型",
        "rp_by_urgency": "紧急程度",
        "rp_by_department": "部门",
        "rp_by_channel": "渠道",
        "rp_keywords": "高频问题关键词",
        "rp_sla_by_urgency": "各紧急程度的时限达成",
        "rp_corrections": "人工更正（#type / #urgency）",
        "rp_trend": "周趋势",
        "rp_count": "数量",
        "rp_share": "占比",
        "rp_met": "达成",
        "rp_missed": "超时",
        "rp_pending": "进行中",
        "rp_type_corrected": "改类型",
        "rp_urgency_corrected": "改紧急程度",
        "rp_tickets": "工单",
        "rp_answers": "份评分",
        "rp_no_objection": "无异议关闭",
    },
    en={
        "nav_report": "Weekly report",
        "rp_report_title": "Weekly service review {week}",
        "rp_report_span": "{start} – {end} ({tz}). Tickets opened in the week; satisfaction from the scores received in the week.",
        "rp_week": "Week (ISO, such as 2026-W47)",
        "rp_week_col": "Week",
        "rp_show": "Show",
        "rp_prev_week": "Previous week",
        "rp_next_week": "Next week",
        "rp_err_week": "Enter an ISO week such as 2026-W47.",
        "rp_report_pdf": "Download PDF",
        "rp_k_tickets": "Tickets opened",
        "rp_k_flagged": "flagged",
        "rp_k_sla": "SLA met",
        "rp_k_first": "First response, median",
        "rp_k_resolution": "Resolution, median",
        "rp_k_satisfaction": "Satisfaction, average",
        "rp_charts": "Charts",
        "rp_c_types": "Share of ticket types",
        "rp_c_urgency": "Share of urgencies",
        "rp_c_sla": "SLA: met, missed, pending",
        "rp_c_satisfaction": "Satisfaction scores (1-5)",
        "rp_c_trend_tickets": "Tickets per week, last 8 weeks",
        "rp_c_trend_sla": "SLA met per week, last 8 weeks",
        "rp_c_trend_satisfaction": "Average satisfaction per week, last 8 weeks",
        "rp_by_type": "Type",
        "rp_by_urgency": "Urgency",
        "rp_by_department": "Department",
        "rp_by_channel": "Channel",
        "rp_keywords": "Top keywords",
        "rp_sla_by_urgency": "SLA met by urgency",
        "rp_corrections": "Staff corrections (#type / #urgency)",
        "rp_trend": "Week on week",
        "rp_count": "Count",
        "rp_share": "Share",
        "rp_met": "met",
        "rp_missed": "missed",
        "rp_pending": "pending",
        "rp_type_corrected": "Type corrected",
        "rp_urgency_corrected": "Urgency corrected",
        "rp_tickets": "tickets",
        "rp_answers": "answers",
        "rp_no_objection": "closed with no objection",
    },
)

CHARTS = ("types", "urgency", "sla", "satisfaction", "trend_tickets", "trend_sla", "trend_satisfaction")
PDF_ACTION = "report_pdf"


def chosen_week(view: View) -> tuple[str, str]:
    """The week asked for (normalised: '2026-w7' → '2026-W07'), else the last complete one;
    and an error code when what was asked is not an ISO week."""
    asked = view.request.query_params.get("week", "").strip()
    if not asked:
        return default_week(view.ctx), ""
    try:
        start, _ = week_bounds(asked, view.ctx.config.tickets.timezone)
    except ValueError:
        return default_week(view.ctx), "week"
    return week_label(start.date()), ""


def _neighbour(week: str, days: int, tz: str) -> str:
    start, _ = week_bounds(week, tz)
    return week_label(start.date() + timedelta(days=days))


@routes.page("/report", roles=(OPERATOR, COMPLIANCE), nav="nav_report")
def report(view: View) -> Response:
    week, error = chosen_week(view)
    tz = view.ctx.config.tickets.timezone
    figures = weekly(view.ctx, week)
    this_week = week_label(view.ctx.now().astimezone(ZoneInfo(tz)).date())
    following = _neighbour(week, 7, tz)
    return view.render(
        "console/report_week.html.j2",
        status=422 if error else 200,
        r=figures,
        charts=report_pdf.charts(figures),
        chart_names=CHARTS,
        week=week,
        error=error,
        previous=_neighbour(week, -7, tz),
        following=following if following <= this_week else "",
        lab=lambda kind, code: label(kind, code, view.lang),
    )


@routes.page("/report/pdf", roles=(OPERATOR, COMPLIANCE))
def report_download(view: View) -> Response:
    """The same week as the PDF of `intake report weekly --pdf`."""
    week, error = chosen_week(view)
    if error:
        return view.error(422, view.t["rp_err_week"])
    figures = weekly(view.ctx, week)
    fd, tmp = tempfile.mkstemp(prefix="intake-report-", suffix=".pdf")
    os.close(fd)
    try:
        report_pdf.write_pdf(figures, Path(tmp), view.ctx.config.template_dirs)
    except BaseException:
        os.unlink(tmp)
        raise
    view.audit(PDF_ACTION, week, {"week": week})
    return FileResponse(tmp, media_type="application/pdf", filename=f"weekly-report-{week}.pdf", background=BackgroundTask(os.unlink, tmp))
