"""Issue 13, section 3: header injection and mail abuse. A Message-ID from input (an
email's, an encoded-word one, a form's `message_id`) is checked and replaced when
invalid; the composer refuses a line break in any header value; a form's
acknowledgement echoes nothing typed into the form, and all of them are capped per hour."""

from __future__ import annotations

import email
import json
from email.policy import default

import pytest
from sqlalchemy import select

from intake.outgoing.compose import compose
from intake.outgoing.templates import RenderedMail
from intake.pipeline.runner import Pipeline
from intake.store.models import Message
from tests.integration.conftest import ctx, db_url, make_ctx, pipeline  # noqa: F401  (fixtures)
from tests.integration.test_pipeline import outbox, ref, ticket
from tests.integration.test_web import make_web  # noqa: F401  (fixture)


def headers_of(raw: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(raw, policy=default)


def header_block(raw: bytes) -> bytes:
    return raw.split(b"\r\n\r\n", 1)[0]


def test_a_form_message_id_with_a_line_break_never_reaches_the_acknowledgements_headers(make_web):
    """Through the real web app. Before: the ack got a bare line that ended its header
    block, so Auto-Submitted was lost (and another installation answered it)."""
    web = make_web()
    post = {"name": "李娜", "email": "lina@kehu.example.cn", "message": "订单一直没有发货。", "message_id": "<x@y>\r\n\r\nX-Injected: yes"}
    with web.client() as client:
        answer = client.post("/submit", json=post)
    assert answer.status_code == 201 and answer.json()["outcome"] == "opened"
    [ack] = outbox(web.ctx)
    sent = headers_of(ack.raw)
    assert sent["Auto-Submitted"] == "auto-replied" and sent["X-Injected"] is None
    assert b"X-Injected" not in header_block(ack.raw)
    [inbound] = [m for m in ticket(web.ctx, answer.json()["ticket"]).messages if m.direction == "in"]
    assert "\n" not in inbound.message_id and any("not a valid Message-ID" in d for d in inbound.defects)
    assert sent["In-Reply-To"] == f"<{inbound.message_id}>"


def test_an_encoded_word_message_id_with_a_line_break_is_replaced_and_noted(ctx, pipeline):
    """`Message-ID: =?utf-8?q?…=0D=0A…?=` decodes to a line break, which the old fallback kept."""
    raw = (
        b"From: zhao@kehu.example.cn\r\nTo: support@example.com\r\nSubject: printer\r\n"
        b"Message-ID: =?utf-8?q?abc=0D=0AX-Injected:_yes=0D=0A?=\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n\r\nThe printer on floor 3 does not print.\r\n"
    )
    result = pipeline.take(raw, ref())
    assert result.outcome == "opened"
    [ack] = outbox(ctx)
    assert b"X-Injected" not in header_block(ack.raw) and headers_of(ack.raw)["Auto-Submitted"] == "auto-replied"
    with ctx.sessions() as s:
        [inbound] = s.scalars(select(Message).where(Message.direction == "in")).all()
        assert inbound.message_id.endswith("@invalid.intake") and any("not a valid Message-ID" in d for d in inbound.defects)
    assert pipeline.take(raw, ref()).outcome == "duplicate"  # the replacement is stable: dedupe still works


def test_invalid_references_are_dropped_before_they_reach_our_headers(ctx, pipeline):
    raw = (
        b"From: zhao@kehu.example.cn\r\nTo: support@example.com\r\nSubject: printer\r\n"
        b"Message-ID: <ok-1@kehu.example.cn>\r\nReferences: <good@kehu.example.cn> <" + b"a" * 300 + b"@x>\r\n"
        b"In-Reply-To: =?utf-8?q?<b=0D=0AX-Injected:_1@x>?=\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n\r\nThe printer on floor 3 does not print.\r\n"
    )
    assert pipeline.take(raw, ref()).outcome == "opened"
    [ack] = outbox(ctx)
    sent = headers_of(ack.raw)
    assert b"X-Injected" not in header_block(ack.raw) and "a" * 300 not in str(sent["References"])
    assert "<good@kehu.example.cn>" in str(sent["References"])


@pytest.mark.parametrize(
    "field, value",
    [
        ("subject", "hello\r\nBcc: victim@example.org"),
        ("in_reply_to", "x@y>\r\nBcc: victim@example.org"),
        ("to_addr", "a@b.example\nBcc: victim@example.org"),
        ("extra", "t\rX: y"),
    ],
)
def test_the_composer_refuses_a_line_break_in_any_header_value(field, value):
    args = {"message_id": "ack.1@example.com", "from_name": "Support", "from_addr": "support@example.com", "to_addr": "a@b.example"}
    subject = value if field == "subject" else "Subject"
    if field == "in_reply_to":
        args["in_reply_to"] = value
    elif field == "to_addr":
        args["to_addr"] = value
    elif field == "extra":
        args["extra_headers"] = {"X-Intake-Ticket": value}
    with pytest.raises(ValueError, match="line break"):
        compose(RenderedMail(subject=subject, text="body\n", html=None), **args)


def test_a_form_acknowledgement_echoes_nothing_typed_into_the_form(make_web):
    """The form as a spam relay: before, the ack repeated the typed name (as the To name and
    in the greeting) and subject, URLs included, from the support address to any address."""
    web = make_web()
    post = {
        "name": "WIN A PRIZE http://spam.example/claim",
        "email": "victim@example.org",
        "subject": "Cheap watches http://spam.example/buy",
        "message": "Visit http://spam.example/buy now",
    }
    with web.client() as client:
        answer = client.post("/submit", json=post)
    assert answer.status_code == 201
    [ack] = outbox(web.ctx)
    sent = headers_of(ack.raw)
    text = sent.get_content()
    assert "spam.example" not in str(sent["Subject"]) + str(sent["To"]) + text
    assert "PRIZE" not in str(sent["To"]) + text and "watches" not in str(sent["Subject"])
    assert answer.json()["ticket"] in str(sent["Subject"]) and answer.json()["ticket"] in text


def test_form_acknowledgements_have_a_global_hourly_cap(make_ctx, db_url):
    """Different addresses each time (the per-address cap never triggers): past the cap the
    cases still open, and get no mail; mail cases are not counted."""
    ctx = make_ctx(db_url, limits={"form_acks_per_hour": 3})
    pipeline = Pipeline(ctx)
    forms = [{"name": "x", "email": f"person{i}@example.org", "message": f"问题 {i}：打印机卡纸。"} for i in range(5)]
    results = [pipeline.take(json.dumps(f, ensure_ascii=False).encode(), ref(channel="form", source="spool")) for f in forms]
    assert [r.outcome for r in results] == ["opened"] * 5
    assert [m.rcpt_to for m in outbox(ctx)] == [f"person{i}@example.org" for i in range(3)]
    skipped = [e for e in ticket(ctx, results[-1].ticket).events if e.kind == "ack_skipped"]
    assert skipped and "limit 3" in skipped[0].detail["reason"]


def test_other_control_characters_in_a_subject_still_make_a_ticket_and_an_ack(ctx, pipeline):
    """Only line breaks are refused in headers: a stray ESC or BEL in a subject (broken
    encodings) must not quarantine the customer's message."""
    raw = (
        b"From: zhao@kehu.example.cn\r\nTo: support@example.com\r\nSubject: printer \x1b\x07 broken\r\n"
        b"Message-ID: <ctl-1@kehu.example.cn>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nThe printer does not print.\r\n"
    )
    assert pipeline.take(raw, ref()).outcome == "opened"
    [ack] = outbox(ctx)
    assert headers_of(ack.raw)["Auto-Submitted"] == "auto-replied"


def test_the_acknowledgement_repeats_at_most_20_references(ctx, pipeline):
    """A thousand References (64 KB) in a customer's mail made a 64 KB header in our answer."""
    ids = b" ".join(b"<r%d@kehu.example.cn>" % i for i in range(1000))
    raw = (
        b"From: zhao@kehu.example.cn\r\nTo: support@example.com\r\nSubject: printer\r\nMessage-ID: <refs-1@kehu.example.cn>\r\n"
        b"References: " + ids + b"\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nThe printer does not print.\r\n"
    )
    assert pipeline.take(raw, ref()).outcome == "opened"
    [ack] = outbox(ctx)
    references = str(headers_of(ack.raw)["References"]).split()
    assert len(references) == 21 and references[-2] == "<r999@kehu.example.cn>" and references[-1] == "<refs-1@kehu.example.cn>"


def test_a_name_typed_into_a_form_never_reaches_that_address_later(ctx, pipeline):
    """The form's post made the customer record, with the typed name; the real owner's own
    mail is then greeted by the name it gives, not by the record's."""
    form = {"name": "WIN A PRIZE http://spam.example/claim", "email": "ann@example.org", "message": "打印机卡纸。"}
    pipeline.take(json.dumps(form).encode(), ref(channel="form", source="spool"))
    raw = (
        b"From: Ann Lee <ann@example.org>\r\nTo: support@example.com\r\nSubject: invoices\r\nMessage-ID: <ann-1@example.org>\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n\r\nHow do I export my invoices as PDF?\r\n"
    )
    assert pipeline.take(raw, ref()).outcome == "opened"
    texts = [headers_of(m.raw).get_content() + str(headers_of(m.raw)["To"]) for m in outbox(ctx)]
    assert len(texts) == 2 and not any("spam.example" in t or "PRIZE" in t for t in texts)
    assert "Dear Ann Lee" in texts[1]


@pytest.mark.parametrize("sender", [b"<a\x01b@example.org>", b'"x y\\"Bcc"@example.org'])
def test_a_sender_address_that_is_not_plain_gets_a_ticket_and_no_acknowledgement(ctx, pipeline, sender):
    """The From address goes into our To header and the SMTP RCPT as it is: a control
    character or a quoted local part there is refused, the message still opens its ticket."""
    raw = (
        b"From: " + sender + b"\r\nTo: support@example.com\r\nSubject: printer\r\nMessage-ID: <odd-1@example.org>\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n\r\nThe printer does not print.\r\n"
    )
    result = pipeline.take(raw, ref())
    assert result.outcome == "opened" and outbox(ctx) == []
    [skipped] = [e for e in ticket(ctx, result.ticket).events if e.kind == "ack_skipped"]
    assert "not a plain address" in skipped.detail["reason"]
