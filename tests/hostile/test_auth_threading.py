"""Issue 13, section 2: nobody writes to another customer's case. A web form never
threads (but for the signed case link of its acknowledgement) and never changes a
customer record; by email only the ticket's own customer (or addresses and domains
configured for them) threads, reopens or answers a survey; a reused Message-ID
captures nothing. Real pipeline on real databases, the real web app over HTTP."""

from __future__ import annotations

import email
import json
import re
from email.policy import default

from sqlalchemy import select

from intake.pipeline.runner import Pipeline
from intake.staffmail.models import Survey
from intake.store.models import Customer, Ticket
from intake.tickets.records import set_status
from tests.integration.conftest import Clock, ctx, db_url, make_ctx, pipeline  # noqa: F401  (fixtures)
from tests.integration.test_pipeline import mail, outbox, ref, ticket
from tests.integration.test_web import make_web  # noqa: F401  (fixture)

VICTIM = "alice@vip.163.com"  # a public provider the old list of 26 did not name


def close(ctx, reference: str, status: str = "closed") -> None:
    with ctx.sessions() as s, s.begin():
        set_status(s, s.scalar(select(Ticket).where(Ticket.ref == reference)), status, "staff:li")


def customer(ctx, address: str) -> Customer:
    with ctx.sessions() as s:
        return s.scalar(select(Customer).where(Customer.email == address))


def test_a_form_post_naming_a_victims_ticket_opens_its_own_and_changes_nothing_of_theirs(make_web):
    """Through the real web app: the victim's address and [#REF] typed into the form, with
    their Message-ID. Before: appended, the closed case reopened, blank company/phone filled."""
    web = make_web()
    victim = web.sink.pipeline.take(mail("我的订单还没发货。", subject="订单", sender=VICTIM, message_id="<orig-1@vip.163.com>"), ref())
    close(web.ctx, victim.ticket)
    post = {
        "name": "Mallory",
        "email": VICTIM,
        "phone": "13900001111",
        "company": "Evil Ltd",
        "subject": f"Re: [#{victim.ticket}] 订单",
        "message": "请把退款打到账户 6222 0000。",
        "message_id": "<orig-1@vip.163.com>",
    }
    with web.client() as client:
        answer = client.post("/submit", json=post)
    assert answer.status_code == 201 and answer.json()["outcome"] == "opened"
    assert answer.json()["ticket"] != victim.ticket
    t = ticket(web.ctx, victim.ticket)
    assert t.status == "closed" and [m.direction for m in t.messages] == ["in", "out"]
    assert not [e for e in t.events if e.kind == "message"]
    record = customer(web.ctx, VICTIM)
    assert record.company == "" and record.phone is None and record.name == ""
    assert ticket(web.ctx, answer.json()["ticket"]).customer_id == record.id  # linked to the customer record


def test_a_colleague_at_an_unlisted_provider_neither_threads_nor_reopens(ctx, pipeline):
    """mallory@vip.163.com names alice@vip.163.com's resolved ticket: a ticket of her own."""
    victim = pipeline.take(mail("发票开错了。", subject="发票", sender=VICTIM), ref())
    close(ctx, victim.ticket, "resolved")
    other = pipeline.take(mail("补充说明", subject=f"Re: [#{victim.ticket}] 发票", sender="mallory@vip.163.com"), ref())
    assert other.outcome == "opened" and other.ticket != victim.ticket
    assert ticket(ctx, victim.ticket).status == "resolved"
    [note] = ticket(ctx, other.ticket).events[1].detail["notes"]
    assert "may not write to it" in note


def test_the_customer_and_configured_colleagues_still_thread(make_ctx, db_url):
    """customer_addresses names bob for alice; colleague_domains opens kehu.example.cn to colleagues."""
    ctx = make_ctx(db_url, tickets={"customer_addresses": {VICTIM: ["bob@vip.163.com"]}, "colleague_domains": ["kehu.example.cn"]})
    pipeline = Pipeline(ctx)
    alice = pipeline.take(mail("问题一", subject="一", sender=VICTIM), ref()).ticket
    zhang = pipeline.take(mail("问题二", subject="二", sender="zhang@kehu.example.cn"), ref()).ticket
    results = [
        pipeline.take(mail("我本人", subject=f"Re: [#{alice}]", sender=VICTIM), ref()),
        pipeline.take(mail("我是 bob", subject=f"Re: [#{alice}]", sender="bob@vip.163.com"), ref()),
        pipeline.take(mail("我是 carol", subject=f"Re: [#{alice}]", sender="carol@vip.163.com"), ref()),
        pipeline.take(mail("同事补充", subject=f"Re: [#{zhang}]", sender="wang@kehu.example.cn"), ref()),
    ]
    assert [(r.outcome, r.ticket) for r in results[:2]] == [("appended", alice)] * 2
    assert results[2].outcome == "opened"
    assert (results[3].outcome, results[3].ticket) == ("appended", zhang)


def test_a_reused_message_id_captures_nobody_elses_follow_ups(ctx, pipeline):
    """Mallory stores Alice's Message-ID on a ticket of her own; Alice's follow-up (References
    only, as many clients write it) still goes to Alice's ticket."""
    alice = pipeline.take(mail("打印机坏了。", subject="打印机", sender=VICTIM, message_id="<alice-1@vip.163.com>"), ref())
    trap = pipeline.take(mail("hello", subject="hello", sender="mallory@evil.example", message_id="<alice-1@vip.163.com>"), ref())
    assert trap.outcome == "opened" and trap.ticket != alice.ticket
    follow_up = pipeline.take(mail("还是不能打印。", subject="Re: 打印机", sender=VICTIM, headers={"References": "<alice-1@vip.163.com>"}), ref())
    assert (follow_up.outcome, follow_up.ticket) == ("appended", alice.ticket)
    assert [m.direction for m in ticket(ctx, trap.ticket).messages] == ["in", "out"]


def test_only_the_customer_answers_a_pending_survey(make_ctx, db_url):
    """A same-domain stranger's "5" neither closes the victim's case nor touches its survey;
    a configured colleague's mail is appended but is no survey answer; the customer's is."""
    ctx = make_ctx(db_url, staff_mail={"secret": "s" * 20}, tickets={"colleague_domains": ["vip.163.com"]})
    pipeline = Pipeline(ctx)
    victim = pipeline.take(mail("投诉：维修一直没来。", subject="投诉", sender=VICTIM), ref()).ticket
    with ctx.sessions() as s, s.begin():
        t = s.scalar(select(Ticket).where(Ticket.ref == victim))
        set_status(s, t, "resolved", "staff:li")
        from intake.staffmail import survey

        survey.start(s, ctx, t)
    [ack] = outbox(ctx)
    stranger = pipeline.take(
        mail("5", subject=f"Re: [#{victim}] 满意度调查", sender="mallory@evil.example", headers={"In-Reply-To": f"<{ack.message_id}>"}), ref()
    )
    assert stranger.outcome == "opened"
    colleague = pipeline.take(mail("5", subject=f"Re: [#{victim}] 满意度调查", sender="bob@vip.163.com"), ref())
    assert colleague.outcome == "appended"
    with ctx.sessions() as s:
        [pending] = s.scalars(select(Survey)).all()
        assert pending.outcome == "pending" and pending.score is None
    mine = pipeline.take(mail("5", subject=f"Re: [#{victim}] 满意度调查", sender=VICTIM), ref())
    assert mine.outcome == "appended" and "survey answered 5" in mine.reason
    assert ticket(ctx, victim).status == "closed"


def test_the_signed_case_link_of_a_form_acknowledgement_adds_to_that_case(make_ctx, tmp_path):
    """The acknowledgement of a form case carries a signed link; a post bringing it back is
    added to the case, a post with a forged signature opens a case of its own."""
    ctx = make_ctx(f"sqlite:///{tmp_path / 'link.db'}", web={"public_base_url": "https://support.example.com"}, staff_mail={"secret": "k" * 24})
    pipeline = Pipeline(ctx)
    form = {"name": "李娜", "email": "lina@kehu.example.cn", "message": "订单 2026112301 一直没有发货。"}
    first = pipeline.take(json.dumps(form, ensure_ascii=False).encode(), ref(channel="form", source="spool"))
    [ack] = outbox(ctx)
    body = email.message_from_bytes(ack.raw, policy=default).get_content()
    link = re.search(r"https://support\.example\.com/\?case=([\w-]+)&sig=([0-9a-f.]+)", body)
    assert link and link.group(1) == first.ticket

    def post(sig: str, text: str):
        data = {**form, "message": text, "case": link.group(1), "case_sig": sig}
        return pipeline.take(json.dumps(data, ensure_ascii=False).encode(), ref(channel="form", source="spool"))

    forged = post("0" * len(link.group(2)), "伪造的补充")
    added = post(link.group(2), "补充：收货地址已更改。")
    assert forged.outcome == "opened" and forged.ticket != first.ticket
    assert (added.outcome, added.ticket) == ("appended", first.ticket)
    assert "收货地址已更改" in ticket(ctx, first.ticket).messages[-1].text


def test_the_form_page_carries_the_case_link_into_its_post(make_web):
    """/?case=REF&sig=MAC puts both into hidden fields of the form, so the browser's post brings them back."""
    web = make_web()
    with web.client() as client:
        page = client.get("/", params={"case": "261123-0007", "sig": "ab" * 16})
    assert 'name="case" value="261123-0007"' in page.text and f'name="case_sig" value="{"ab" * 16}"' in page.text


def test_intake_ingest_keeps_a_same_domain_stranger_out_of_the_case(tmp_path):
    """As the review reproduced it, with the real `intake ingest` on embedded defaults."""
    from tests.integration.test_cli import eml, lines, run

    run(tmp_path, "init")
    [first] = lines(run(tmp_path, "ingest", "--json", str(eml(tmp_path / "a.eml", "发票开错了。", "发票", sender=VICTIM))))
    named = eml(tmp_path / "b.eml", "5", f"Re: [#{first['ticket']}] 发票", sender="mallory@vip.163.com")
    [second] = lines(run(tmp_path, "ingest", "--json", str(named)))
    assert first["outcome"] == "opened" and second["outcome"] == "opened" and second["ticket"] != first["ticket"]


def test_the_case_link_expires(make_ctx, tmp_path):
    """A link found in an old mailbox adds nothing once its date has passed ([web] case_link_days)."""
    from datetime import timedelta

    from intake.tickets.case_link import link, verify

    ctx = make_ctx(
        f"sqlite:///{tmp_path / 'expiry.db'}",
        web={"public_base_url": "https://support.example.com", "case_link_days": 30},
        staff_mail={"secret": "k" * 24},
    )
    today = ctx.now().date()
    sig = re.search(r"sig=([0-9a-f.]+)", link(ctx.config, "261123-0007", today)).group(1)
    assert verify(ctx.config, "261123-0007", sig, today + timedelta(days=30))
    assert not verify(ctx.config, "261123-0007", sig, today + timedelta(days=31))
    assert not verify(ctx.config, "261123-0008", sig, today)  # another case
    # the date is under the MAC: moving it forward breaks the signature
    later = (today + timedelta(days=400)).strftime("%Y%m%d") + sig[8:]
    assert not verify(ctx.config, "261123-0007", later, today)
    assert not verify(ctx.config, "261123-0007", "２０２７０１０１." + sig[9:], today)  # non-ASCII digits
