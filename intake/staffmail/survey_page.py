"""The survey's one-question page: /survey/<ref>/<survey id>/<mac>.

The link in the survey mail carries a MAC over the ticket and survey (survey.link),
so it is the customer's credential: no login, and no other survey can be answered
with it. GET shows five buttons; POST records the score exactly as a mailed score
would (survey.answer), once. Mount with `routes += survey_routes(ctx)`.
"""

from __future__ import annotations

import jinja2
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from intake.context import Context
from intake.staffmail import survey as surveys
from intake.staffmail.models import Survey
from intake.store.db import transaction

TEXTS = {
    "zh": {
        "title": "满意度调查",
        "question": "您对工单 {ref} 的处理结果满意吗？",
        "low": "非常不满意",
        "high": "非常满意",
        "thanks": "感谢您的评价！",
        "closed": "工单已关闭。",
        "reopened": "我们会重新跟进您的问题。",
        "done": "这份调查已经答过或已过期。",
        "invalid": "链接无效。",
        "bad": "请选择 1–5 分。",
    },
    "en": {
        "title": "How did we do?",
        "question": "Are you satisfied with how ticket {ref} was handled?",
        "low": "very dissatisfied",
        "high": "very satisfied",
        "thanks": "Thank you for your rating!",
        "closed": "The ticket is closed.",
        "reopened": "We will pick up your case again.",
        "done": "This survey was already answered or has expired.",
        "invalid": "This link is not valid.",
        "bad": "Please choose 1 to 5.",
    },
}


def survey_routes(ctx: Context) -> list[Route]:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(ctx.config.template_dirs), autoescape=True)
    template = env.get_template("survey/page.html.j2")

    def page(lang: str, status: int = 200, **kw) -> HTMLResponse:
        lang = lang if lang in TEXTS else "zh"
        return HTMLResponse(template.render(t=TEXTS[lang], lang=lang, **kw), status_code=status)

    def lookup(session, ref: str, survey_id: int, mac: str):
        if not surveys.verify_link(ctx, ref, survey_id, mac):
            return None, None
        item = session.get(Survey, survey_id)
        if item is None or item.ticket.ref != ref:
            return None, None
        return item, item.ticket

    def show(ref: str, survey_id: int, mac: str) -> tuple[str, dict, int]:
        with ctx.sessions() as session:
            item, ticket = lookup(session, ref, survey_id, mac)
            if item is None:
                return "zh", {"message": "invalid"}, 404
            if item.outcome != "pending":
                return ticket.language, {"message": "done"}, 200
            return ticket.language, {"ref": ref}, 200

    def record(ref: str, survey_id: int, mac: str, score: int) -> tuple[str, dict, int]:
        with transaction(ctx.sessions) as session:
            item, ticket = lookup(session, ref, survey_id, mac)
            if item is None:
                return "zh", {"message": "invalid"}, 404
            if item.outcome != "pending":
                return ticket.language, {"message": "done"}, 409
            outcome = surveys.answer(session, ctx, ticket, item, score, via="web")
            return ticket.language, {"message": "thanks", "outcome": outcome}, 200

    async def get(request: Request) -> HTMLResponse:
        p = request.path_params
        lang, kw, status = await run_in_threadpool(show, p["ref"], p["survey_id"], p["mac"])
        return page(lang, status, **kw)

    async def post(request: Request) -> HTMLResponse:
        p = request.path_params
        form = await request.form()
        score = str(form.get("score", ""))
        if score not in ("1", "2", "3", "4", "5"):
            lang, kw, status = await run_in_threadpool(show, p["ref"], p["survey_id"], p["mac"])
            return page(lang, 400 if status == 200 else status, error="bad", **kw)
        lang, kw, status = await run_in_threadpool(record, p["ref"], p["survey_id"], p["mac"], int(score))
        ctx.wake_outbox.set()  # a low score notifies the assignee
        return page(lang, status, **kw)

    path = "/survey/{ref}/{survey_id:int}/{mac}"
    return [Route(path, get, methods=["GET"]), Route(path, post, methods=["POST"])]
