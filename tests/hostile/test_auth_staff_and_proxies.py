"""Issue 13, section 3: a stranger cannot make the daemon mail staff at will (a refused
reply is told at most once an hour per staff member, only about an existing ticket,
never echoing the received subject); forwarded headers are believed only from
[web] trusted_proxies; Authentication-Results count only in our server's topmost one."""

from __future__ import annotations

import email
from email.policy import default

import pytest

from intake.config import from_dict
from intake.pipeline.runner import Pipeline
from intake.sources.base import SourceRef
from intake.web.settings import settings_from_config
from tests.integration.conftest import Clock, db_url, make_ctx  # noqa: F401  (fixtures)
from tests.integration.test_staffmail_kit import MONDAY_10, body, complaint, deliver, outbox, reply_to, staff_config, to_addr
from tests.integration.test_web import make_web, valid  # noqa: F401  (fixture)


@pytest.fixture
def staffed(make_ctx, db_url, smtp_server):
    """A complaint assigned to li.na, its ack and her notification delivered."""
    clock = Clock(MONDAY_10)
    ctx = make_ctx(db_url, clock, **staff_config(smtp_server))
    pipeline = Pipeline(ctx)
    ref = pipeline.take(complaint(), SourceRef("t", "first")).ticket
    sent = deliver(ctx, smtp_server)
    [note] = [m for m in sent if to_addr(m) == "li.na@example.com"]
    return ctx, clock, pipeline, ref, note


def forged(note, n: int, *, to: str | None = None, subject: str = "") -> bytes:
    raw = reply_to(note.as_bytes(), sender="李娜 <li.na@example.com>", body=f"forged {n}", to=to or "support@example.com")
    if subject:
        raw = raw.replace(b"Subject: ", b"Subject: " + subject.encode() + b" ", 1)
    return raw


def test_refused_replies_tell_the_staff_member_at_most_once_an_hour(staffed, smtp_server):
    """Forged From of the assignee, to the plain support address, five times: one notice; an hour on, another."""
    ctx, clock, pipeline, ref, note = staffed
    results = [pipeline.take(forged(note, n), SourceRef("t", f"f{n}")) for n in range(5)]
    assert [r.outcome for r in results] == ["quarantined"] * 5
    assert [to_addr(m) for m in deliver(ctx, smtp_server)] == ["li.na@example.com"]
    clock.advance(minutes=61)
    pipeline.take(forged(note, 9), SourceRef("t", "f9"))
    assert [to_addr(m) for m in deliver(ctx, smtp_server)] == ["li.na@example.com"]


def test_a_token_naming_no_ticket_tells_nobody(staffed, smtp_server):
    """support+anything.garbage@: before, the staff member whose From was forged got a mail each time."""
    ctx, clock, pipeline, ref, note = staffed
    result = pipeline.take(forged(note, 1, to="support+990101-9999.0123456789abcdef0123@example.com"), SourceRef("t", "g"))
    assert result.outcome == "quarantined" and "bad token" in result.reason
    assert deliver(ctx, smtp_server) == []


def test_the_refusal_notice_never_echoes_the_received_subject(staffed, smtp_server):
    ctx, clock, pipeline, ref, note = staffed
    pipeline.take(forged(note, 1, subject="BUY NOW http://spam.example/pills"), SourceRef("t", "s"))
    [told] = deliver(ctx, smtp_server)
    assert "spam.example" not in str(told["Subject"]) + body(told) and "BUY NOW" not in str(told["Subject"]) + body(told)
    assert ref in body(told)


def test_forwarded_for_is_ignored_from_an_untrusted_peer(make_web):
    """The real listener: uvicorn believed X-Forwarded-For from loopback, so varied headers
    passed the per-IP limit (24 of 24 accepted in the review)."""
    web = make_web(rate_limit_per_minute=3)
    with web.client() as client:
        codes = [
            client.post(
                "/submit", json=valid(email=f"p{i}@kehu.example.cn", phone="", message=f"问题 {i}"), headers={"X-Forwarded-For": f"203.0.113.{i}"}
            ).status_code
            for i in range(6)
        ]
    assert codes[:3] == [201] * 3 and codes[3:] == [429] * 3


def test_forwarded_for_is_believed_from_a_configured_proxy(make_web):
    """[web] trusted_proxies (empty by default) reaches the app: behind our proxy, each customer counts alone."""
    config = from_dict({"web": {"trusted_proxies": ["127.0.0.1"]}})
    assert from_dict({}).web.trusted_proxies == []
    settings = settings_from_config(config, "127.0.0.1", 0)
    assert settings.trusted_proxies == ("127.0.0.1",)
    web = make_web(rate_limit_per_minute=3, trusted_proxies=settings.trusted_proxies)
    with web.client() as client:
        codes = [
            client.post(
                "/submit", json=valid(email=f"p{i}@kehu.example.cn", phone="", message=f"问题 {i}"), headers={"X-Forwarded-For": f"203.0.113.{i}"}
            ).status_code
            for i in range(5)
        ]
    assert codes == [201] * 5


def _answer(pipeline, note, key: str, *results: str) -> str:
    """li.na's reply to her notification as our MX delivers it: its Authentication-Results on
    top (the first given), the rest further down as the sender wrote them."""
    raw = reply_to(note.as_bytes(), sender="李娜 <li.na@example.com>", body="已处理。")
    on_top = b"".join(f"Authentication-Results: {r}\r\n".encode() for r in results[:1])
    below = b"".join(f"Authentication-Results: {r}\n".encode() for r in results[1:])
    head, _, rest = raw.partition(b"\n\n")
    return pipeline.take(on_top + head + b"\n" + below + b"\n" + rest, SourceRef("t", key)).outcome


@pytest.fixture
def authserv(make_ctx, db_url):
    ctx = make_ctx(db_url, Clock(MONDAY_10), **staff_config(None, staff_mail={"secret": "x" * 20, "trusted_authserv_id": "mx.example.com"}))
    pipeline = Pipeline(ctx)
    pipeline.take(complaint(), SourceRef("t", "1"))
    [row] = outbox(ctx, "notify")
    return pipeline, email.message_from_bytes(row.raw, policy=default)


def test_only_our_topmost_authentication_results_counts(authserv):
    """Our MX says dkim=fail on top; a pass with our id further down was written by the sender."""
    pipeline, note = authserv
    assert (
        _answer(pipeline, note, "a", "mx.example.com; dkim=fail header.d=example.com", "mx.example.com; dkim=pass header.d=example.com")
        == "quarantined"
    )
    assert _answer(pipeline, note, "b", "mx.example.com; dkim=pass header.d=example.com") == "appended"


def test_dmarc_pass_must_name_the_from_domain(authserv):
    pipeline, note = authserv
    assert _answer(pipeline, note, "a", "mx.example.com; dmarc=pass") == "quarantined"
    assert _answer(pipeline, note, "b", "mx.example.com; dmarc=pass header.from=evil.example") == "quarantined"
    assert _answer(pipeline, note, "c", "mx.example.com; dmarc=pass header.from=example.com") == "appended"


def test_a_trusted_proxy_that_is_no_address_stops_the_start():
    from intake.config import ConfigError

    with pytest.raises(ConfigError, match="web.trusted_proxies"):
        from_dict({"web": {"trusted_proxies": ["localhost"]}})
