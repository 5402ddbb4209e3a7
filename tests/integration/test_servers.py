"""The test servers themselves work: Dovecot over plain/STARTTLS/TLS with IDLE, SMTP, PostgreSQL."""

from __future__ import annotations

import smtplib
import socket
import ssl
import time
from email.message import EmailMessage

import pytest
from imapclient import IMAPClient

from tests.servers import DovecotServer, SmtpServer


def message(subject: str, body: str = "hello") -> bytes:
    return (
        f"From: a@example.com\r\nTo: support@example.com\r\nSubject: {subject}\r\n"
        f"Message-ID: <{subject.replace(' ', '.')}@example.com>\r\n\r\n{body}\r\n"
    ).encode()


@pytest.mark.parametrize("security", ["plain", "starttls", "tls"])
def test_append_then_fetch_over_each_security(dovecot: DovecotServer, security: str):
    """A message appended over one connection is fetched byte-for-byte over plain, STARTTLS and TLS."""
    raw = message(f"over {security}")
    with dovecot.client("support", security) as c:
        c.append("INBOX", raw)
        c.select_folder("INBOX", readonly=True)
        uids = c.search("ALL")
        assert len(uids) == 1
        assert c.fetch(uids, ["BODY.PEEK[]"])[uids[0]][b"BODY[]"] == raw
    assert [m["raw"] for m in dovecot.fetch_all("support", "INBOX")] == [raw]


def test_tls_rejects_an_unknown_ca(dovecot: DovecotServer):
    """IMAPS with the system CAs fails certificate verification: the test CA is really needed."""
    with pytest.raises(ssl.SSLCertVerificationError):
        IMAPClient(dovecot.host, port=dovecot.tls_port, ssl=True, ssl_context=ssl.create_default_context(), timeout=5)


def test_users_are_separate_and_mailboxes_start_empty(dovecot: DovecotServer):
    """Each user has their own INBOX, empty at the start of every test."""
    assert dovecot.list_uids("support", "INBOX") == []
    dovecot.append("support2", "INBOX", message("for support2"))
    assert dovecot.list_uids("support", "INBOX") == []
    assert len(dovecot.list_uids("support2", "INBOX")) == 1


def test_wrong_password_is_refused(dovecot: DovecotServer):
    """Login with a wrong password fails with an IMAP error."""
    with IMAPClient(dovecot.host, port=dovecot.port, ssl=False, timeout=5) as c:
        with pytest.raises(Exception, match="(?i)auth"):
            c.login("support", "wrong")


def test_idle_receives_exists_after_append(dovecot: DovecotServer):
    """A client in IDLE gets an EXISTS push within a second of another client's APPEND."""
    with dovecot.client("support") as c:
        assert b"IDLE" in c.capabilities()
        c.select_folder("INBOX")
        c.idle()
        try:
            time.sleep(0.1)
            dovecot.append("support", "INBOX", message("pushed"))
            t0 = time.monotonic()
            responses = []
            while time.monotonic() - t0 < 3 and not any(r[1] == b"EXISTS" for r in responses if len(r) > 1):
                responses += c.idle_check(timeout=0.2)
            assert any(r[1] == b"EXISTS" for r in responses if len(r) > 1), responses
            assert time.monotonic() - t0 < 1.5
        finally:
            c.idle_done()


def test_create_mailbox_and_reset_uidvalidity(dovecot: DovecotServer):
    """reset_uidvalidity changes UIDVALIDITY and keeps the messages, for INBOX and other folders."""
    for box in ("INBOX", "Other"):
        dovecot.create_mailbox("support", box)
        dovecot.append_many("support", box, [message(f"{box} 1"), message(f"{box} 2")])
        before = dovecot.uidvalidity("support", box)
        raws = [m["raw"] for m in dovecot.fetch_all("support", box)]
        after = dovecot.reset_uidvalidity("support", box)
        assert after != before
        assert [m["raw"] for m in dovecot.fetch_all("support", box)] == raws


def test_kick_drops_the_users_connections(dovecot: DovecotServer):
    """kick(user) closes that user's open connections, not other users'."""
    c1 = dovecot.client("support")
    c2 = dovecot.client("staff")
    c1.select_folder("INBOX")
    dovecot.kick("support")
    with pytest.raises((IMAPClient.AbortError, OSError, IMAPClient.Error)):
        for _ in range(50):  # the server closes the socket asynchronously
            c1.noop()
            time.sleep(0.05)
    assert c2.noop()
    c2.logout()


def test_stop_then_start_on_same_ports(dovecot: DovecotServer):
    """stop() refuses connections; start() serves the same mail on the same ports again."""
    dovecot.append("support", "INBOX", message("kept"))
    dovecot.stop()
    with pytest.raises(OSError):
        socket.create_connection((dovecot.host, dovecot.port), timeout=1).close()
    dovecot.start()
    assert len(dovecot.list_uids("support", "INBOX")) == 1


def test_smtp_send_arrives(smtp_server: SmtpServer):
    """smtplib sends a UTF-8 message; the server keeps envelope and raw bytes."""
    msg = EmailMessage()
    msg["From"] = "support@example.com"
    msg["To"] = "客户 <kehu@example.com>"
    msg["Subject"] = "您的工单 T-1"
    msg.set_content("你好")
    with smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=5) as s:
        s.send_message(msg)
    got = smtp_server.wait_for(1, timeout=5)
    assert got[0].mail_from == "support@example.com"
    assert got[0].rcpt_tos == ("kehu@example.com",)
    assert b"Subject: =?utf-8?" in got[0].raw


def test_smtp_stop_then_start_same_port(smtp_server: SmtpServer):
    """With SMTP stopped a send is refused; after start() on the same port it arrives."""
    port = smtp_server.port
    smtp_server.stop()
    with pytest.raises(OSError):
        smtplib.SMTP(smtp_server.host, port, timeout=2)
    smtp_server.start()
    assert smtp_server.port == port
    with smtplib.SMTP(smtp_server.host, port, timeout=5) as s:
        s.sendmail("a@example.com", ["b@example.com"], message("after restart"))
    assert smtp_server.wait_for(1, timeout=5)[0].raw.startswith(b"From: a@example.com")
    with pytest.raises(TimeoutError):
        smtp_server.wait_for(2, timeout=0.2)


def test_pg_url_is_a_fresh_database(pg_url: str):
    """pg_url points to an empty database of its own, reachable with SQLAlchemy."""
    from sqlalchemy import create_engine, inspect, text

    engine = create_engine(pg_url)
    try:
        with engine.begin() as conn:
            assert inspect(conn).get_table_names() == []
            conn.execute(text("CREATE TABLE t (x int)"))
            assert conn.execute(text("SELECT current_database()")).scalar().startswith("intake_test_")
    finally:
        engine.dispose()
