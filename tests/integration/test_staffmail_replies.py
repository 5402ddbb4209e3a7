"""Issue 14 end to end: the real notification goes out through the SMTP server, the
assignee answers it from many mail clients, and what reaches the customer at the SMTP
server is exactly what they typed: no quoted notification, no command line, no
signature; the commands are carried out on the ticket. A reply whose text still holds
our notification is withheld and the staff member is told."""

from __future__ import annotations

from email.message import EmailMessage
from pathlib import Path

import pytest

from intake.pipeline.runner import Pipeline
from intake.sources.base import SourceRef
from tests.integration.conftest import Clock
from tests.integration.test_staffmail_kit import CUSTOMER, MONDAY_10, body, complaint, deliver, events, staff_config, ticket, to_addr

ROOT = Path(__file__).resolve().parents[2]
STAFF = "李娜 <li.na@example.com>"
SIGNATURE = "李娜 | 售后部\n电话 010-12345678"
ANSWER = "赵女士您好：\n\n非常抱歉给您带来不便，维修师傅明天上午十点上门。"


def _block(labels, note, colon=": ") -> str:
    values = ("客户服务中心 <support@example.com>", "2026年11月23日 10:00", STAFF, note["Subject"])
    return "\n".join(f"{label}{colon}{value}" for label, value in zip(labels, values))


def _quoted(text: str) -> str:
    return "\n".join("> " + line if line else ">" for line in text.splitlines())


# client → (the reply's plain text given the notification, or None for HTML only; its HTML or None)
CLIENTS = {
    "outlook_zh": lambda n, t: f"{ANSWER}\n\n-----邮件原件-----\n\n{_block(('发件人', '发送时间', '收件人', '主题'), n)}\n\n{t}\n",
    "foxmail": lambda n, t: f"{ANSWER}\n\n\n\nli.na@example.com\n \n{_block(('From', 'Date', 'To', 'Subject'), n)}\n{t}\n",
    "alibaba": lambda n, t: f"{ANSWER}\n\n阿里邮箱{'-' * 66}\n{_block(('发件人', '日　期', '收件人', '主　题'), n, colon='：')}\n\n{t}\n",
    "webde": lambda n, t: f"{ANSWER}\n\n \n \n{_block(('Gesendet', 'Von', 'An', 'Betreff'), n)}\n{t}\n",
    "gmail": lambda n, t: f"{ANSWER}\n\n客户服务中心 <support@example.com> 于2026年11月23日周一 10:00写道：\n\n{_quoted(t)}\n",
    "signature_from_staff_toml": lambda n, t: (
        f"{ANSWER}\n\n{SIGNATURE}\n\n-----原始邮件-----\n{_block(('发件人', '发送时间', '收件人', '主题'), n)}\n\n{t}\n"
    ),
    "no_marker_at_all": lambda n, t: f"{ANSWER}\n\n{t}\n",
}


def _html_outlook_web(note, text: str) -> str:
    escaped = "<br>".join(line.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;") for line in text.splitlines())
    answer = "".join(f"<div>{line or '<br>'}</div>" for line in ANSWER.splitlines())
    return (
        f'<html><body><div dir="ltr">{answer}</div><hr><div id="divRplyFwdMsg"><b>发件人:</b> 客户服务中心<br><b>发送时间:</b> '
        f"2026年11月23日 10:00<br><b>主题:</b> {note['Subject']}</div><div>{escaped}</div></body></html>"
    )


def reply_mail(note, *, text: str | None = None, html: str | None = None, sender: str = STAFF, to: str | None = None) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to or note["Reply-To"]
    msg["Subject"] = "回复: " + note["Subject"]
    msg["Date"] = "Mon, 23 Nov 2026 11:00:00 +0800"
    msg["Message-ID"] = f"<reply-{abs(hash((text, html, sender)))}@example.com>"
    msg["In-Reply-To"] = note["Message-ID"]
    msg["References"] = note["Message-ID"]
    if text is not None:
        msg.set_content(text)
    else:
        msg.set_content(html, subtype="html")
    return bytes(msg)


@pytest.fixture
def case(make_ctx, db_url, smtp_server, tmp_path):
    """A new complaint assigned to li.na (whose staff.toml entry has a signature); her notification as sent."""
    staff = (ROOT / "config" / "staff.toml").read_text(encoding="utf-8")
    staff = staff.replace('email = "li.na@example.com"\n', f'email = "li.na@example.com"\nsignature = """{SIGNATURE}"""\n')
    (tmp_path / "staff.toml").write_text(staff, encoding="utf-8")
    ctx = make_ctx(db_url, Clock(MONDAY_10), paths={"staff": str(tmp_path / "staff.toml")}, **staff_config(smtp_server))
    pipeline = Pipeline(ctx)
    ref = pipeline.take(complaint(), SourceRef("t", "open")).ticket
    [note] = [m for m in deliver(ctx, smtp_server) if to_addr(m) == "li.na@example.com"]
    assert ticket(ctx, ref).assignee == "li.na"
    return ctx, pipeline, ref, note


def _relayed_text(mail) -> str:
    """The staff member's part of the relayed mail: the template signs it with their name below."""
    text = body(mail)
    assert "\n\n李娜\n" in text
    return text.split("\n\n李娜\n")[0].strip()


def _notification_lines(note) -> list[str]:
    """Lines only the staff member saw (the customer's own message aside)."""
    customer = "我要投诉：你们的售后服务太差了，维修人员答应上门却一直没来，请给个说法。"
    return [line.strip() for line in body(note).splitlines() if len(line.strip()) >= 8 and line.strip() != customer]


@pytest.mark.parametrize("client", [*CLIENTS, "outlook_web_html_only"])
def test_reply_from_each_client_reaches_the_customer_exactly_as_typed(case, smtp_server, client):
    """Outlook zh, Foxmail, Alibaba, web.de, Gmail, a staff.toml signature, no marker at all, HTML only:
    the customer gets the answer and nothing of the notification."""
    ctx, pipeline, ref, note = case
    text = body(note)
    raw = (
        reply_mail(note, html=_html_outlook_web(note, text))
        if client == "outlook_web_html_only"
        else reply_mail(note, text=CLIENTS[client](note, text))
    )
    result = pipeline.take(raw, SourceRef("t", client))
    assert result.outcome == "appended", result
    [relayed] = deliver(ctx, smtp_server)
    assert to_addr(relayed) == CUSTOMER
    assert _relayed_text(relayed) == ANSWER
    leaked = [line for line in _notification_lines(note) if line in body(relayed)]
    assert leaked == []
    t = ticket(ctx, ref)
    assert t.status == "in_progress" and [m.kind for m in t.messages if m.direction == "out"] == ["ack", "staff_reply"]


def test_apple_mail_greeting_then_command_resolves_and_relays_no_command_line(case, smtp_server):
    """'Hi,' then '#status resolved' (issue 14): the ticket is resolved, the survey goes out, no text with '#'."""
    ctx, pipeline, ref, note = case
    text = f"Hi,\n#status resolved\n\nOn 23 Nov 2026, at 10:00, 客户服务中心 <support@example.com> wrote:\n\n{_quoted(body(note))}\n"
    pipeline.take(reply_mail(note, text=text), SourceRef("t", "apple"))
    sent = deliver(ctx, smtp_server)
    assert [to_addr(m) for m in sent] == [CUSTOMER] and "满意度调查" in sent[0]["Subject"]  # only the survey: a bare greeting is no answer
    assert "#status" not in body(sent[0])
    assert ticket(ctx, ref).status == "resolved"


def test_commands_between_paragraphs_run_and_lines_inside_the_quote_do_not(case, smtp_server):
    """Commands after a greeting and between paragraphs are carried out and cut from the text; the
    notification's own example command lines below the quote never run."""
    ctx, pipeline, ref, note = case
    text = (
        f"您好，\n\n#预计 2026-11-30\n#紧急程度 紧急\n\n维修师傅明天上午十点上门。\n\n#类型 故障\n\n发自我的iPhone\n\n"
        f"-----邮件原件-----\n\n{_block(('发件人', '发送时间', '收件人', '主题'), note)}\n\n{body(note)}\n#转派 sun.yue\n"
    )
    pipeline.take(reply_mail(note, text=text), SourceRef("t", "cmds"))
    sent = deliver(ctx, smtp_server)
    [relayed] = [m for m in sent if to_addr(m) == CUSTOMER]
    assert all(to_addr(m).endswith("@example.com") for m in sent if m is not relayed)  # the rest to staff (the 加急 notice of #紧急程度 紧急)
    assert _relayed_text(relayed) == "您好，\n\n维修师傅明天上午十点上门。"
    t = ticket(ctx, ref)
    assert (t.urgency, t.type, t.assignee) == ("urgent", "fault", "li.na")  # '#转派 sun.yue' below the quote never ran
    assert [e.detail["date"] for e in events(ctx, ref, "eta")] == ["2026-11-30"]


def test_a_reply_still_holding_our_notification_is_withheld_and_the_staff_member_told(case, smtp_server):
    """The safety net: a notification line left in the text (pasted in the answer, no quote run) means
    nothing goes to the customer, no command runs, the reply stays on the ticket and li.na hears why."""
    ctx, pipeline, ref, note = case
    due = next(line for line in body(note).splitlines() if "响应时限" in line)
    text = f"#status resolved\n赵女士您好：\n{due}\n我们会在此之前处理。\n"
    result = pipeline.take(reply_mail(note, text=text), SourceRef("t", "leak"))
    assert result.outcome == "appended"
    sent = deliver(ctx, smtp_server)
    assert [to_addr(m) for m in sent] == ["li.na@example.com"] and "响应时限" in body(sent[0])
    t = ticket(ctx, ref)
    assert t.status == "new" and [m.kind for m in t.messages if m.direction == "out"] == ["ack"]
    assert [m.kind for m in t.messages if m.direction == "in"] == ["customer", "staff"]
    [withheld] = events(ctx, ref, "relay_withheld")
    assert withheld.detail["lines"] == [due.strip()]


def test_a_customers_mail_never_runs_commands(case, smtp_server):
    """'#status resolved' from the customer is their text: appended, the ticket unchanged."""
    ctx, pipeline, ref, note = case
    raw = complaint("#status resolved\n#assign sun.yue\n问题还没解决。", subject=f"Re: [#{ref}] 投诉售后服务")
    assert pipeline.take(raw, SourceRef("t", "customer")).outcome == "appended"
    t = ticket(ctx, ref)
    assert t.status == "new" and t.assignee == "li.na" and events(ctx, ref, "status") == []


def test_a_sign_off_learned_from_earlier_replies_is_not_relayed_again(case, smtp_server):
    """The same closing lines under two replies (no '-- ' before them) are taken for the signature from the third on."""
    ctx, pipeline, ref, note = case
    sign_off = "Li Na · After-sales\nTel. 010-8888 6666"
    quote = f"\n\n在 2026年11月23日 10:00，客户服务中心 <support@example.com> 写道：\n{_quoted(body(note))}\n"
    texts = []
    for i, answer in enumerate(("师傅已出发。", "师傅已到达。", "已修好，请您确认。")):
        pipeline.take(reply_mail(note, text=f"{answer}\n\n{sign_off}{quote}"), SourceRef("t", f"sig{i}"))
        [relayed] = deliver(ctx, smtp_server)
        texts.append(_relayed_text(relayed))
    assert texts == [f"师傅已出发。\n\n{sign_off}", f"师傅已到达。\n\n{sign_off}", "已修好，请您确认。"]


def test_after_a_withheld_reply_the_corrected_answer_to_the_error_mail_goes_through(case, smtp_server):
    """Our error reply echoes the staff member's text; answering it again with the same greeting is
    their text, not ours: relayed, and the commands run this time."""
    ctx, pipeline, ref, note = case
    due = next(line for line in body(note).splitlines() if "响应时限" in line)
    pipeline.take(reply_mail(note, text=f"#status in_progress\n赵女士您好：\n{due}\n我们会在此之前处理。\n"), SourceRef("t", "leak"))
    [error] = deliver(ctx, smtp_server)
    assert to_addr(error) == "li.na@example.com" and "赵女士您好：" in body(error)
    again = f"#status in_progress\n赵女士您好：\n我们会在明天上午十点之前处理。\n\n在 2026年11月23日 10:05，客户服务中心 <support@example.com> 写道：\n{_quoted(body(error))}\n"
    pipeline.take(reply_mail(error, text=again), SourceRef("t", "again"))
    [relayed] = deliver(ctx, smtp_server)
    assert to_addr(relayed) == CUSTOMER and _relayed_text(relayed) == "赵女士您好：\n我们会在明天上午十点之前处理。"
    assert ticket(ctx, ref).status == "in_progress"


def test_a_reply_with_nothing_above_the_quote_relays_nothing_and_says_so(case, smtp_server):
    """Only the quoted notification (a bare forward back, an answer typed below an unquoted copy): the
    customer gets nothing, the staff member is told nothing was sent."""
    ctx, pipeline, ref, note = case
    text = f"\n\n-----邮件原件-----\n{_block(('发件人', '发送时间', '收件人', '主题'), note)}\n\n{body(note)}\n\n好的，明天上门。\n"
    assert pipeline.take(reply_mail(note, text=text), SourceRef("t", "empty")).outcome == "appended"
    [told] = deliver(ctx, smtp_server)
    assert to_addr(told) == "li.na@example.com" and "没有找到答复" in body(told)
    assert events(ctx, ref, "relay_empty") and [m.kind for m in ticket(ctx, ref).messages if m.direction == "out"] == ["ack"]
