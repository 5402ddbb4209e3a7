"""The web-form listener over real HTTP (uvicorn on loopback, httpx client): JSON, urlencoded and
multipart submissions, every field error, size and type limits, honeypot, rate limit, CSRF, escaping."""

from __future__ import annotations

import base64
import json
import logging
import re
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from intake.inbound.form import parse_submission
from intake.pipeline.runner import Pipeline
from intake.sources.base import Result, SourceRef
from intake.sources.spool import SpoolSource
from intake.store.models import OutboxMail, Ticket
from intake.web import WebSettings, create_app, serve

PDF = b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<<>>\n%%EOF\n"


class FlakySink:
    """The real pipeline behind a switch that makes it fail like a database that is down."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.fail = False
        self.taken: list[tuple[bytes, SourceRef]] = []

    def take(self, raw: bytes, ref: SourceRef) -> Result:
        if self.fail:
            raise RuntimeError("database is down")
        self.taken.append((raw, ref))
        return self.pipeline.take(raw, ref)

    def report(self, source, *, backlog=None, error=None) -> None:
        self.pipeline.report(source, backlog=backlog, error=error)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Web:
    def __init__(self, base: str, spool: Path, sink: FlakySink, ctx) -> None:
        self.base, self.spool, self.sink, self.ctx = base, spool, sink, ctx

    def client(self, **kwargs) -> httpx.Client:
        return httpx.Client(base_url=self.base, timeout=10, **kwargs)

    def done(self) -> list[Path]:
        return sorted((self.spool / "done").glob("*.json"))

    def stored(self) -> list[Path]:
        return sorted(self.spool.glob("*.json")) + self.done() + sorted((self.spool / "rejected").glob("*.json"))


@pytest.fixture
def make_web(tmp_path, make_ctx):
    """make_web(**WebSettings overrides) → a running server; stopped after the test."""
    stops: list[tuple[threading.Event, threading.Thread]] = []

    def make(**overrides) -> Web:
        settings = WebSettings(
            **{"max_body_bytes": 200_000, "max_file_bytes": 50_000, "rate_limit_per_minute": 50, "csrf_secret": "test-secret", **overrides}
        )
        ctx = make_ctx(f"sqlite:///{tmp_path / f'intake{len(stops)}.db'}")
        sink = FlakySink(Pipeline(ctx))
        spool = tmp_path / f"spool{len(stops)}"
        port = free_port()
        app = create_app(settings, sink, spool)
        stop, ready = threading.Event(), threading.Event()
        thread = threading.Thread(target=serve, args=(app, "127.0.0.1", port, stop), kwargs={"ready": ready})
        thread.start()
        assert ready.wait(10), "server did not start"
        stops.append((stop, thread))
        return Web(f"http://127.0.0.1:{port}", spool, sink, ctx)

    yield make
    for stop, thread in stops:
        stop.set()
        thread.join(timeout=10)
        assert not thread.is_alive()


@pytest.fixture
def web(make_web) -> Web:
    return make_web()


def valid(**changes) -> dict:
    data = {
        "name": "张伟",
        "company": "某某科技",
        "email": "zhang.wei@kehu.example.cn",
        "phone": "13812345678",
        "subject": "打印机故障",
        "message": "三楼打印机无法打印，整个部门受影响。",
    }
    data.update(changes)
    return data


def csrf(client: httpx.Client, path: str = "/") -> str:
    """Opens the page like a browser: the cookie lands in the client, the token is returned."""
    page = client.get(path)
    assert page.status_code == 200
    return re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)


def ticket_on_page(html: str) -> str:
    return re.search(r'id="ticket-ref">([^<]+)<', html).group(1)


REF = re.compile(r"\d{6}-\d{4}")


def ticket(web: Web, ref: str) -> Ticket:
    with web.ctx.sessions() as s:
        t = s.scalar(select(Ticket).where(Ticket.ref == ref))
        t.customer, [m.attachments for m in t.messages]  # load while the session is open
        return t


def acks(web: Web) -> list[str]:
    with web.ctx.sessions() as s:
        return [o.rcpt_to for o in s.scalars(select(OutboxMail).where(OutboxMail.kind == "ack").order_by(OutboxMail.id))]


def ticket_count(web: Web) -> int:
    with web.ctx.sessions() as s:
        return len(list(s.scalars(select(Ticket))))


# -- JSON clients --------------------------------------------------------------------


def test_json_submission_answers_201_with_ticket_after_spooling_and_taking(web):
    with web.client() as c:
        r = c.post("/submit", json=valid(crm_id="A-17"))
    assert r.status_code == 201
    body = r.json()
    assert REF.fullmatch(body["ticket"]) and body["outcome"] == "opened"
    [path] = web.done()  # written to the spool, then moved to done/ by the take
    [(raw, ref)] = web.sink.taken
    assert (ref.source, ref.key.split("#")[0], ref.channel) == ("spool", path.name, "form") and raw == path.read_bytes()
    stored = json.loads(raw)
    assert stored["crm_id"] == "A-17" and stored["submitted_at"] and stored["message"] == valid()["message"]
    t = ticket(web, body["ticket"])
    assert t.channel == "form" and t.language == "zh" and t.subject == "打印机故障"
    assert (t.customer.name, t.customer.email, t.customer.phone, t.customer.company) == (
        "张伟",
        "zhang.wei@kehu.example.cn",
        "13812345678",
        "某某科技",
    )
    assert acks(web) == ["zhang.wei@kehu.example.cn"]


def test_double_click_gives_one_ticket(web):
    """The same submission twice within seconds: the second answer carries the same ticket, one ticket exists."""
    with web.client() as c:
        first = c.post("/", json=valid())
        second = c.post("/", json=valid())
    assert first.status_code == second.status_code == 201
    assert second.json() == {"ticket": first.json()["ticket"], "outcome": "duplicate"}
    assert ticket_count(web) == 1 and acks(web) == ["zhang.wei@kehu.example.cn"] and len(web.done()) == 2


def test_json_422_names_every_invalid_field(web):
    bad = {"name": "", "email": "not-an-address", "phone": "12", "message": "", "type": "spam", "subject": "s" * 400, "lang": "en"}
    with web.client() as c:
        r = c.post("/", json=bad)
    assert r.status_code == 422
    assert set(r.json()["errors"]) == {"name", "email", "phone", "message", "type", "subject"}
    assert r.json()["errors"]["name"] == "Please fill in this field."
    with web.client() as c:
        r = c.post("/", json={"name": "王", "message": "你好，请联系我"})
    assert r.status_code == 422 and set(r.json()["errors"]) == {"email", "phone"}
    assert "电话" in r.json()["errors"]["email"]  # a Chinese submitter gets Chinese errors
    assert web.stored() == [] and web.sink.taken == []


def test_json_body_that_is_not_json_or_not_an_object(web):
    with web.client() as c:
        assert c.post("/", content=b"{oops", headers={"content-type": "application/json"}).status_code == 400
        assert c.post("/", json=[1, 2]).status_code == 422
        assert c.post("/", content=b"name=x", headers={"content-type": "text/plain"}).status_code == 415
    assert web.stored() == []


def test_json_attachment_with_wrong_type_is_refused(web):
    exe = {"filename": "invoice.pdf", "content_type": "application/pdf", "data_base64": base64.b64encode(b"MZ\x90\x00").decode()}
    with web.client() as c:
        r = c.post("/", json=valid(attachments=[exe]))
    assert r.status_code == 422 and "invoice.pdf" in r.json()["errors"]["attachments"]


def test_pipeline_down_still_spools_and_the_daemon_takes_it_later(web):
    """The submission is durable before the answer: with the pipeline failing, the file waits
    in the spool (JSON 202, page says it is stored), and the spool watcher makes it a ticket later."""
    web.sink.fail = True
    with web.client() as c:
        r = c.post("/", json=valid())
        token = csrf(c)
        page = c.post("/submit", data={**valid(email="other@kehu.example.cn", message="另一个问题：网络很慢。"), "csrf_token": token})
    assert r.status_code == 202 and r.json() == {"ticket": None, "outcome": "queued"}
    assert page.status_code == 200 and "您的请求已安全保存" in page.text and 'id="ticket-ref"' not in page.text
    waiting = sorted(web.spool.glob("*.json"))
    assert [json.loads(p.read_bytes())["email"] for p in waiting] == ["zhang.wei@kehu.example.cn", "other@kehu.example.cn"]
    assert ticket_count(web) == 0
    web.sink.fail = False
    assert SpoolSource(web.spool, web.sink).run_once() == 2  # what the daemon's watcher does
    assert ticket_count(web) == 2 and sorted(acks(web)) == ["other@kehu.example.cn", "zhang.wei@kehu.example.cn"]


# -- the HTML form --------------------------------------------------------------------


def test_page_in_chinese_and_english_with_security_headers(web):
    with web.client() as c:
        zh = c.get("/", headers={"accept-language": "zh-CN,zh;q=0.9"})
        en = c.get("/form", headers={"accept-language": "en-US,en;q=0.9"})
        switched = c.get("/?lang=en", headers={"accept-language": "zh-CN"})
        css = c.get("/forms.css")
        health = c.get("/healthz")
    assert zh.status_code == en.status_code == 200
    assert '<html lang="zh-CN">' in zh.text and "提交服务请求" in zh.text and 'href="/?lang=en"' in zh.text
    assert '<html lang="en">' in en.text and "Submit a support request" in en.text and 'href="/?lang=zh"' in en.text
    assert "Submit a support request" in switched.text
    assert "default-src 'none'" in zh.headers["content-security-policy"] and zh.headers["x-frame-options"] == "DENY"
    assert "intake_csrf" in zh.headers["set-cookie"] and "httponly" in zh.headers["set-cookie"].lower()
    assert "http://" not in zh.text and "https://" not in zh.text and "//" not in zh.text  # no external assets
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert health.status_code == 200 and health.text == "ok"


def test_urlencoded_form_submission_shows_confirmation_with_ticket(web):
    with web.client() as c:
        token = csrf(c)
        r = c.post("/submit", data={**valid(type="fault"), "csrf_token": token, "lang": "zh"})
    assert r.status_code == 200 and "已收到您的请求" in r.text
    ref = ticket_on_page(r.text)
    assert "138****5678" not in r.text and "zhang.wei@kehu.example.cn" in r.text
    [path] = web.done()
    stored = json.loads(path.read_bytes())
    assert stored["type"] == "fault" and stored["lang"] == "zh" and "csrf_token" not in stored and "website" not in stored
    assert ticket(web, ref).type == "fault"  # the customer's choice on the form stands


def test_multipart_form_with_a_file_keeps_the_attachment(web):
    with web.client() as c:
        token = csrf(c, "/?lang=en")
        r = c.post(
            "/submit",
            data={**valid(), "csrf_token": token, "lang": "en", "website": ""},
            files=[("attachments", ("报告.pdf", PDF, "application/pdf")), ("attachments", ("", b"", "application/octet-stream"))],
        )
    assert r.status_code == 200 and "We have your request" in r.text
    [path] = web.done()
    [att] = json.loads(path.read_bytes())["attachments"]
    assert att["filename"] == "报告.pdf" and base64.b64decode(att["data_base64"]) == PDF
    assert parse_submission(path.read_bytes()).attachments[0].data == PDF
    t = ticket(web, ticket_on_page(r.text))
    [attachment] = t.messages[0].attachments
    assert (attachment.filename, attachment.data) == ("报告.pdf", PDF)
    assert t.language == "en" and acks(web) == ["zhang.wei@kehu.example.cn"]  # the page language the customer chose


def test_phone_only_confirmation_masks_the_number(web):
    with web.client() as c:
        token = csrf(c)
        r = c.post("/submit", data={**valid(email=""), "csrf_token": token})
    assert r.status_code == 200 and "138****5678" in r.text
    t = ticket(web, ticket_on_page(r.text))
    assert t.customer.phone == "13812345678" and t.customer.email is None and acks(web) == []  # no email: no ack


def test_form_errors_next_to_fields_with_input_kept_and_escaped(web):
    """Every error sits next to its field; what was typed comes back, escaped, never as markup."""
    evil = '<script>alert("x")</script>'
    with web.client() as c:
        token = csrf(c)
        r = c.post("/submit", data={"name": evil, "email": "bad-address", "message": "", "subject": evil, "csrf_token": token, "lang": "zh"})
    assert r.status_code == 422
    assert "<script>" not in r.text and "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in r.text
    assert re.search(r'id="email"[^>]*value="bad-address"[^>]*aria-invalid="true"', r.text)
    assert '<p class="field-error" id="email-error">电子邮箱格式不正确' in r.text
    assert '<p class="field-error" id="message-error">请填写此项。</p>' in r.text
    assert 'id="name-error"' not in r.text
    assert web.stored() == []


def test_files_must_be_chosen_again_after_an_error_and_the_page_says_so(web):
    with web.client() as c:
        token = csrf(c)
        r = c.post("/submit", data={**valid(message=""), "csrf_token": token}, files={"attachments": ("日志.txt", "错误日志".encode(), "text/plain")})
    assert r.status_code == 422 and 'id="attachments-error">出于安全原因' in r.text and web.stored() == []


def test_bad_file_types_are_refused_next_to_the_field(web):
    with web.client() as c:
        token = csrf(c)
        exe = c.post(
            "/submit", data={**valid(), "csrf_token": token}, files={"attachments": ("setup.exe", b"MZ\x90\x00" * 10, "application/octet-stream")}
        )
        disguised = c.post(
            "/submit", data={**valid(), "csrf_token": token}, files={"attachments": ("invoice.pdf", b"MZ\x90\x00" * 10, "application/pdf")}
        )
    assert exe.status_code == 422 and '<p class="field-error" id="attachments-error">不支持文件“setup.exe”' in exe.text
    assert disguised.status_code == 422 and "invoice.pdf" in disguised.text and "内容与其扩展名不符" in disguised.text
    assert 'value="张伟"' in exe.text  # the rest of the input is kept
    assert web.stored() == []


def test_oversize_file_and_oversize_body(web):
    """A file over max_file_bytes is a field error; a body over max_body_bytes is 413 (declared or streamed)."""
    with web.client() as c:
        token = csrf(c)
        big_file = c.post(
            "/submit", data={**valid(), "csrf_token": token}, files={"attachments": ("big.pdf", PDF + b"0" * 60_000, "application/pdf")}
        )
        huge = c.post("/submit", data={**valid(), "csrf_token": token}, files={"attachments": ("huge.pdf", PDF + b"0" * 300_000, "application/pdf")})
        huge_json = c.post("/", json=valid(message="长" * 100_000))

        def chunks():
            for _ in range(30):
                yield b"x" * 10_000

        streamed = c.post("/", content=chunks(), headers={"content-type": "application/json"})
    assert big_file.status_code == 422 and "big.pdf" in big_file.text and "过大" in big_file.text
    assert huge.status_code == 413 and "提交内容过大" in huge.text
    assert huge_json.status_code == 413 and "too large" in huge_json.json()["errors"]["_"]
    assert streamed.status_code == 413
    assert web.stored() == []


def test_missing_or_wrong_csrf_token_is_403_and_nothing_stored(web):
    with web.client() as c:
        no_cookie = c.post("/submit", data=valid())
    with web.client() as c:
        csrf(c)
        wrong = c.post("/submit", data={**valid(), "csrf_token": "1700000000." + "0" * 64})
        missing = c.post("/submit", data=valid())
    with web.client() as other:  # a token from another browser's page does not fit this cookie
        stolen = csrf(other)
    with web.client() as c:
        csrf(c)
        mismatched = c.post("/submit", data={**valid(), "csrf_token": stolen})
    for r in (no_cookie, wrong, missing, mismatched):
        assert r.status_code == 403 and "页面已过期" in r.text
    assert 'value="张伟"' not in no_cookie.text  # a cross-site post does not get its text shown
    assert 'value="张伟"' in wrong.text  # the same browser with an expired page keeps its input
    assert web.stored() == []


def test_honeypot_gets_fake_success_and_nothing_is_stored(web, caplog):
    """A bot filling the hidden field sees a confirmation; nothing is stored and the log says so."""
    caplog.set_level(logging.WARNING, logger="intake.web.abuse")
    with web.client() as c:
        token = csrf(c)
        r = c.post("/submit", data={**valid(), "csrf_token": token, "website": "http://spam.example"})
    assert r.status_code == 200 and "已收到您的请求" in r.text and REF.fullmatch(ticket_on_page(r.text))
    assert web.stored() == [] and web.sink.taken == [] and ticket_count(web) == 0
    assert any("honeypot" in rec.getMessage() and "nothing stored" in rec.getMessage() for rec in caplog.records)


def test_json_integrations_keep_a_website_field(web):
    """The honeypot is the HTML form's: a JSON client's "website" is an ordinary extra field, kept."""
    with web.client() as c:
        r = c.post("/", json={**valid(), "website": "https://kehu.example.cn"})
    assert r.status_code == 201 and ticket_count(web) == 1
    [path] = web.done()
    assert json.loads(path.read_bytes())["website"] == "https://kehu.example.cn"


def test_answer_page_url_and_language_switch_lead_back_to_the_form(web):
    with web.client() as c:
        token = csrf(c)
        r = c.post("/submit", data={"name": "", "message": "", "csrf_token": token})
        back = c.get("/submit?lang=en")
    assert r.status_code == 422 and 'href="/?lang=en"' in r.text
    assert back.status_code == 200 and "Submit a support request" in back.text


def test_rate_limit_per_ip_email_and_phone_answers_429_with_retry_after(make_web):
    web = make_web(rate_limit_per_minute=3, trusted_proxies=("127.0.0.1",))
    with web.client() as c:
        codes = [
            c.post("/", json=valid(email=f"u{i}@example.cn", phone=f"1380000000{i}"), headers={"x-forwarded-for": "203.0.113.7"}).status_code
            for i in range(4)
        ]
        refused = c.post("/", json=valid(email="u9@example.cn", phone="13800000009"), headers={"x-forwarded-for": "203.0.113.7"})
        # the same address from four other places: limited by the address
        by_email = [
            c.post("/", json=valid(email="same@example.cn", phone=f"1390000000{i}"), headers={"x-forwarded-for": f"198.51.100.{i}"}).status_code
            for i in range(4)
        ]
        token = csrf(c)
        html = c.post("/submit", data={**valid(), "csrf_token": token}, headers={"x-forwarded-for": "203.0.113.7"})
        # the same phone number (no email) from three other places: limited by the number
        by_phone = [
            c.post(
                "/", json=valid(email="", phone="137-1234-5678" if i % 2 else "13712345678"), headers={"x-forwarded-for": f"192.0.2.{i}"}
            ).status_code
            for i in range(4)
        ]
    assert codes == [201, 201, 201, 429]
    assert by_phone == [201, 201, 201, 429]
    assert refused.status_code == 429 and 1 <= int(refused.headers["retry-after"]) <= 60
    assert by_email == [201, 201, 201, 429]
    assert html.status_code == 429 and "提交过于频繁" in html.text and 'value="张伟"' in html.text and html.headers["retry-after"]
    assert len(web.done()) == 9


def test_too_many_files_is_a_field_error_with_input_kept(make_web):
    web = make_web(max_files=2)
    with web.client() as c:
        token = csrf(c)
        r = c.post("/submit", data={**valid(), "csrf_token": token}, files=[("attachments", (f"p{i}.pdf", PDF, "application/pdf")) for i in range(3)])
    assert r.status_code == 422 and 'id="attachments-error">附件过多（最多 2 个）' in r.text and 'value="张伟"' in r.text
    assert web.stored() == []


def test_port_in_use_is_an_error_not_a_silent_thread_exit(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        app = create_app(WebSettings(), FlakySink(None), tmp_path / "spool")
        with pytest.raises(OSError, match="could not start"):
            serve(app, "127.0.0.1", taken.getsockname()[1], threading.Event())


def test_server_stops_promptly(tmp_path):
    """serve() returns within about a second of the stop event."""
    app = create_app(WebSettings(), FlakySink(None), tmp_path / "spool")
    stop, ready = threading.Event(), threading.Event()
    port = free_port()
    thread = threading.Thread(target=serve, args=(app, "127.0.0.1", port, stop), kwargs={"ready": ready})
    thread.start()
    assert ready.wait(10)
    assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
    stop.set()
    started = time.monotonic()
    thread.join(timeout=10)
    assert not thread.is_alive() and time.monotonic() - started < 1.5
