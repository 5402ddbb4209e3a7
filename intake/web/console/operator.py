"""The operators' pages: the overview (refreshes itself, charts of the last 24 hours), the
sources, the outbox, the archive jobs, and the quarantine with its safe text view and the
retry and dismiss buttons (the same code as `intake quarantine retry` / `dismiss`)."""

from __future__ import annotations

import json
import unicodedata

from sqlalchemy import func, select
from starlette.responses import Response

from intake.oauth import credential_expiries
from intake.ops.status import collect
from intake.store.db import transaction
from intake.store.models import OutboxMail, QuarantineItem
from intake.web.console import audit, charts
from intake.web.console.models import ConsoleAudit
from intake.web.console.routes import COMPLIANCE, OPERATOR, View, page
from intake.web.console.texts import add_texts

MAX_TEXT_CHARS = 200_000  # the text view of a huge body stops here (the bytes stay whole in the database)
LIST_LIMIT = 200

add_texts(
    zh={
        "nav_overview": "概览",
        "nav_sources": "来源",
        "nav_outbox": "发件队列",
        "nav_jobs": "归档任务",
        "nav_quarantine": "隔离区",
        "overview_title": "运行概览",
        "refreshes": "本页每 {seconds} 秒自动刷新。",
        "updated": "更新于",
        "sources_failing": "故障来源",
        "sources_ok": "正常来源",
        "outbox_pending": "待发邮件",
        "outbox_failed": "发送失败",
        "outbox_oldest": "最早待发",
        "quarantine_held": "隔离中",
        "jobs_pending": "待归档",
        "jobs_failed": "归档失败",
        "chart_taken": "每小时收取",
        "chart_tickets": "每小时新工单",
        "chart_sent": "每小时发出邮件",
        "chart_quarantined": "每小时隔离",
        "charts_title": "最近 24 小时",
        "source": "来源",
        "state": "状态",
        "up": "正常",
        "failing": "故障",
        "last_success": "最近成功收取",
        "backlog": "积压",
        "taken": "24小时收取",
        "errors": "错误次数",
        "last_error": "最近错误",
        "token_expiry": "令牌/凭据到期",
        "no_sources": "还没有来源运行过。",
        "id": "编号",
        "kind": "类型",
        "to": "收件人",
        "attempts": "尝试次数",
        "created": "创建时间",
        "status": "状态",
        "failed_mail": "发送失败的邮件",
        "pending_mail": "待发邮件（最早的在前）",
        "ticket": "工单",
        "reason": "原因",
        "jobs_title": "归档任务",
        "job_reason": "触发",
        "quarantine_title": "隔离区",
        "show_all": "显示全部（含已处理）",
        "show_held": "只显示隔离中",
        "received": "收到时间",
        "size": "大小",
        "retries": "重试次数",
        "nothing_held": "隔离区是空的。",
        "item_title": "隔离邮件 #{id}",
        "headers": "邮件头",
        "body_text": "正文（纯文本显示，不渲染 HTML）",
        "not_parsed": "无法解析为邮件，以下为原始内容的文本形式。",
        "retry": "重新处理",
        "retry_hint": "修复问题后，用与命令行 intake quarantine retry 相同的流程重新处理。",
        "dismiss": "标记为已处理（不生成工单）",
        "dismiss_reason": "处理说明（必填）",
        "dismiss_hint": "例如：垃圾邮件、测试邮件、已电话回复。原始内容会保留。",
        "reason_required": "请填写处理说明。",
        "retried_ok": "已重新处理：{outcome}",
        "retried_again": "仍无法处理，已留在隔离区：{reason}",
        "dismissed_ok": "已标记为已处理。",
        "not_held": "此项目已不在隔离中。",
        "dismissed_by": "处理人",
        "status_held": "隔离中",
        "status_released": "已放行",
        "status_dismissed": "已标记处理",
        "channel": "渠道",
        "nav_audit": "操作记录",
        "audit_title": "控制台操作记录",
        "audit_intro": "每次登录（含失败）、每个操作和被拒绝的访问，最新的在前。",
        "when": "时间",
        "user": "用户",
        "action": "操作",
        "target": "对象",
        "detail": "详情",
        "address": "地址",
        "filter": "筛选",
        "all_actions": "全部操作",
        "older": "更早",
    },
    en={
        "nav_overview": "Overview",
        "nav_sources": "Sources",
        "nav_outbox": "Outbox",
        "nav_jobs": "Archive jobs",
        "nav_quarantine": "Quarantine",
        "overview_title": "Overview",
        "refreshes": "This page refreshes itself every {seconds} seconds.",
        "updated": "Updated",
        "sources_failing": "Failing sources",
        "sources_ok": "Healthy sources",
        "outbox_pending": "Mail pending",
        "outbox_failed": "Mail failed",
        "outbox_oldest": "Oldest pending",
        "quarantine_held": "Quarantined",
        "jobs_pending": "Archive jobs pending",
        "jobs_failed": "Archive jobs failed",
        "chart_taken": "Taken per hour",
        "chart_tickets": "New tickets per hour",
        "chart_sent": "Mail sent per hour",
        "chart_quarantined": "Quarantined per hour",
        "charts_title": "Last 24 hours",
        "source": "Source",
        "state": "State",
        "up": "up",
        "failing": "failing",
        "last_success": "Last successful fetch",
        "backlog": "Backlog",
        "taken": "Taken (24 h)",
        "errors": "Errors",
        "last_error": "Last error",
        "token_expiry": "Token / credential expiry",
        "no_sources": "No source has run yet.",
        "id": "ID",
        "kind": "Kind",
        "to": "To",
        "attempts": "Attempts",
        "created": "Created",
        "status": "Status",
        "failed_mail": "Mail that failed",
        "pending_mail": "Mail pending (oldest first)",
        "ticket": "Ticket",
        "reason": "Reason",
        "jobs_title": "Archive jobs",
        "job_reason": "Trigger",
        "quarantine_title": "Quarantine",
        "show_all": "Show all (dealt with too)",
        "show_held": "Held only",
        "received": "Received",
        "size": "Size",
        "retries": "Retries",
        "nothing_held": "The quarantine is empty.",
        "item_title": "Quarantined item #{id}",
        "headers": "Headers",
        "body_text": "Body (shown as plain text; HTML is never rendered)",
        "not_parsed": "Not readable as an email; the raw bytes as text follow.",
        "retry": "Retry",
        "retry_hint": "After fixing the cause: process it again, the same way as intake quarantine retry.",
        "dismiss": "Dismiss (no ticket)",
        "dismiss_reason": "Reason (required)",
        "dismiss_hint": "For example: spam, a test mail, answered by phone. The original bytes are kept.",
        "reason_required": "Please give a reason.",
        "retried_ok": "Processed again: {outcome}",
        "retried_again": "Still not processable, kept in quarantine: {reason}",
        "dismissed_ok": "Dismissed.",
        "not_held": "This item is no longer held.",
        "dismissed_by": "Dismissed by",
        "status_held": "held",
        "status_released": "released",
        "status_dismissed": "dismissed",
        "channel": "Channel",
        "nav_audit": "Activity",
        "audit_title": "Console activity",
        "audit_intro": "Every sign-in (failed ones too), every action and every refused page, newest first.",
        "when": "When",
        "user": "User",
        "action": "Action",
        "target": "Target",
        "detail": "Detail",
        "address": "Address",
        "filter": "Filter",
        "all_actions": "All actions",
        "older": "Older",
    },
)


# -- what the pages show ------------------------------------------------------------------------


def sources_view(ctx, status: dict) -> list[dict]:
    """The sources of `intake status`, each with its login's token and credential expiry."""
    tokens = {label: t["expires_at"] for label, t in status.get("tokens", {}).items()}
    credentials = credential_expiries(ctx.config)
    out = []
    for s in status["sources"]:
        login = s["source"].split("/")[0]  # "imap:support/INBOX" -> the login "imap:support"
        out.append({**s, "token_expires": tokens.get(login), "credential_expires": credentials.get(login)})
    return out


def outbox_lists(session) -> tuple[list[OutboxMail], list[OutboxMail]]:
    failed = list(session.scalars(select(OutboxMail).where(OutboxMail.status == "failed").order_by(OutboxMail.id.desc()).limit(LIST_LIMIT)))
    pending = list(session.scalars(select(OutboxMail).where(OutboxMail.status == "pending").order_by(OutboxMail.id).limit(LIST_LIMIT)))
    return failed, pending


def safe_text(text: str) -> str:
    """Text fit for a <pre>: no control or bidirectional-override characters (which could make
    a line read as something it is not), at most MAX_TEXT_CHARS. Escaping is jinja2's."""
    cleaned = "".join(c if c in "\n\t" or unicodedata.category(c) not in ("Cc", "Cf", "Cs", "Co") else "\ufffd" for c in text[:MAX_TEXT_CHARS])
    return cleaned + ("\n…" if len(text) > MAX_TEXT_CHARS else "")


def readable(item: QuarantineItem) -> dict:
    """Headers and the plain text of a quarantined item, never its HTML: an email through the
    pipeline's own parser (an HTML-only body comes out as its text conversion), a form
    submission as its JSON; bytes that parse as neither as UTF-8 text."""
    from intake.inbound.message import UnparseableMessage, parse_message

    raw = item.raw
    if item.channel == "form" or raw.lstrip()[:1] == b"{":
        try:
            data = json.loads(raw)
            return {"parsed": True, "headers": [], "text": safe_text(json.dumps(data, ensure_ascii=False, indent=2))}
        except ValueError:
            pass
    try:
        parsed = parse_message(raw)
    except UnparseableMessage:
        return {"parsed": False, "headers": [], "text": safe_text(raw.decode("utf-8", "replace"))}
    headers = [(name, safe_text(value)[:2000]) for name, value in parsed.headers[:200]]
    return {"parsed": True, "headers": headers, "text": safe_text(parsed.text)}


def quarantine_items(session, show_all: bool) -> list[QuarantineItem]:
    query = select(QuarantineItem).order_by(QuarantineItem.id.desc()).limit(LIST_LIMIT)
    if not show_all:
        query = query.where(QuarantineItem.status == "held")
    return list(session.scalars(query))


def first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0][:300] if (text or "").strip() else ""


# -- pages --------------------------------------------------------------------------------------


@page("/overview", roles={OPERATOR}, nav="nav_overview")
def overview(view: View) -> Response:
    status = collect(view.ctx)
    now = view.ctx.now()
    sources = sources_view(view.ctx, status)
    hours = charts.hour_starts(now)
    with view.read() as session:
        series = charts.last_24_hours(session, now)
    colors = {"taken": "#0b5cad", "tickets": "#067647", "sent": "#6941c6", "quarantined": "#b42318"}
    images = [(view.t[f"chart_{name}"], charts.bar_chart(view.t[f"chart_{name}"], counts, hours, colors[name])) for name, counts in series.items()]
    return view.render(
        "console/operator_overview.html.j2",
        refresh=view.app.settings.refresh_seconds,
        now=now,
        summary=status,
        sources=sources,
        failing=[s for s in sources if not s["up"]],
        charts=images,
    )


@page("/sources", roles={OPERATOR}, nav="nav_sources")
def sources(view: View) -> Response:
    status = collect(view.ctx)
    return view.render(
        "console/operator_sources.html.j2", refresh=view.app.settings.refresh_seconds, now=view.ctx.now(), sources=sources_view(view.ctx, status)
    )


@page("/outbox", roles={OPERATOR}, nav="nav_outbox")
def outbox(view: View) -> Response:
    status = collect(view.ctx)
    with view.read() as session:
        failed, pending = outbox_lists(session)
    return view.render("console/operator_outbox.html.j2", outbox=status["outbox"], failed=failed, pending=pending, first_line=first_line)


@page("/archive-jobs", roles={OPERATOR}, nav="nav_jobs")
def archive_jobs(view: View) -> Response:
    from archive.models import ArchiveJob

    with view.read() as session:
        counts = dict(session.execute(select(ArchiveJob.status, func.count()).group_by(ArchiveJob.status)).all())
        jobs = list(
            session.scalars(
                select(ArchiveJob)
                .where(ArchiveJob.status.in_(("failed", "pending", "running")))
                .order_by(ArchiveJob.status, ArchiveJob.id)
                .limit(LIST_LIMIT)
            )
        )
    return view.render(
        "console/operator_jobs.html.j2",
        counts={s: counts.get(s, 0) for s in ("pending", "running", "done", "failed")},
        jobs=jobs,
        first_line=first_line,
    )


@page("/quarantine", roles={OPERATOR}, nav="nav_quarantine")
def quarantine(view: View) -> Response:
    show_all = view.value("all") == "1"
    with view.read() as session:
        items = quarantine_items(session, show_all)
    return view.render("console/operator_quarantine.html.j2", items=items, show_all=show_all, first_line=first_line)


def _item_page(view: View, item_id: int, *, status: int = 200, notice: str = "", error: str = "") -> Response:
    with view.read() as session:
        item = session.get(QuarantineItem, item_id)
    if item is None:
        return view.error(404, view.t["not_found"])
    return view.render("console/operator_item.html.j2", status=status, item=item, shown=readable(item), notice=notice, error=error)


@page("/quarantine/{item:int}", roles={OPERATOR}, example={"item": 1})
def quarantine_item(view: View) -> Response:
    item_id = view.request.path_params["item"]
    notice = ""
    if view.value("done") == "retried":
        notice = "retried"
    elif view.value("done") == "dismissed":
        notice = view.t["dismissed_ok"]
    return _item_page(view, item_id, notice=notice)


@page("/quarantine/{item:int}/retry", roles={OPERATOR}, methods=("POST",), example={"item": 1})
def quarantine_retry(view: View) -> Response:
    from intake.pipeline.runner import Pipeline

    item_id = view.request.path_params["item"]
    # the request is on record before anything is done: the retry commits in the pipeline's own
    # transaction, and a failure to write the outcome's row afterwards must not leave no trace
    view.audit("quarantine_retry_requested", f"quarantine:{item_id}")
    try:
        [(_, result)] = Pipeline(view.ctx).retry_quarantined(item_id)
    except LookupError:
        view.audit("quarantine_retry", f"quarantine:{item_id}", {"outcome": "not held"})
        return _item_page(view, item_id, status=409, error=view.t["not_held"])
    view.audit("quarantine_retry", f"quarantine:{item_id}", {"outcome": result.outcome, "ticket": result.ticket, "reason": result.reason})
    if result.outcome == "quarantined":
        return _item_page(view, item_id, status=422, error=view.t["retried_again"].format(reason=result.reason or ""))
    return view.redirect(f"/quarantine/{item_id}", done="retried")


@page("/quarantine/{item:int}/dismiss", roles={OPERATOR}, methods=("POST",), example={"item": 1})
def quarantine_dismiss(view: View) -> Response:
    from intake.pipeline.quarantine import dismiss_quarantined

    item_id = view.request.path_params["item"]
    reason = view.value("reason").strip()
    if not reason:
        return _item_page(view, item_id, status=422, error=view.t["reason_required"])
    try:
        with transaction(view.ctx.sessions) as session:  # the dismissal and its audit row together
            dismiss_quarantined(session, item_id, by=view.name, reason=reason, now=view.ctx.now())
            audit.record(session, view.name, "quarantine_dismiss", f"quarantine:{item_id}", {"reason": reason}, ip=view.ip)
    except LookupError:
        return _item_page(view, item_id, status=409, error=view.t["not_held"])
    return view.redirect(f"/quarantine/{item_id}", done="dismissed")


@page("/audit", roles={OPERATOR, COMPLIANCE}, nav="nav_audit")
def audit_log(view: View) -> Response:
    """The console's own audit rows (sign-ins, actions, refusals), newest first, 200 a page."""
    user, action = view.value("user").strip()[:100], view.value("action").strip()[:40]
    before = view.value("before")
    query = select(ConsoleAudit).order_by(ConsoleAudit.id.desc()).limit(LIST_LIMIT)
    if user:
        query = query.where(ConsoleAudit.user == user)
    if action:
        query = query.where(ConsoleAudit.action == action)
    if before.isdigit():
        query = query.where(ConsoleAudit.id < int(before))
    with view.read() as session:
        rows = list(session.scalars(query))
        actions = sorted(session.scalars(select(ConsoleAudit.action).distinct()))
    older = rows[-1].id if len(rows) == LIST_LIMIT else None
    return view.render("console/audit.html.j2", rows=rows, actions=actions, user_filter=user, action_filter=action, older=older)
