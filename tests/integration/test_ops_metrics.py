"""/metrics and /healthz over real HTTP: from the real daemon process on SQLite and
PostgreSQL (counts match what the pipeline did and what the database holds), and
503 / database_up 0 from a listener whose PostgreSQL does not answer."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

import intake
from intake.config import ConfigError, from_dict
from intake.context import build_context
from intake.ops.server import ops_thread
from tests.daemonproc import DaemonProcess, Db, wait_until, write_config


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def samples(text: str) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted labels): value} of a Prometheus text page."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for family in text_string_to_metric_families(text) for s in family.samples}


def drop(folder: Path, name: str, raw: bytes) -> None:
    """Into a Maildir as a delivery agent does: tmp/ then rename into new/."""
    tmp = folder / "tmp" / name
    tmp.parent.mkdir(parents=True, exist_ok=True)
    (folder / "new").mkdir(parents=True, exist_ok=True)
    tmp.write_bytes(raw)
    os.rename(tmp, folder / "new" / name)


def mail(i: int, **headers) -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"] = f"customer{i}@kehu.example.cn", "support@example.com"
    msg["Subject"], msg["Message-ID"] = f"订单 {i} 无法付款", f"<metrics-{i}-{time.time_ns()}@kehu.example.cn>"
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content(f"您好，订单 {i} 付款时一直提示错误。")
    return bytes(msg)


def test_daemon_metrics_and_healthz_match_what_was_taken_and_what_the_database_holds(tmp_path, db_url):
    """Two new cases, an out-of-office and a non-message into the drop folder of a real
    daemon whose SMTP server is down: the counters say 2 opened, 1 autoreply_ignored,
    1 quarantined; the outbox, quarantine and age gauges equal the database's figures."""
    port, dead_smtp = free_port(), free_port()
    config = write_config(
        tmp_path / "intake.toml",
        db_url=db_url,
        var=tmp_path / "var",
        extra=(f'[smtp]\nhost = "127.0.0.1"\nport = {dead_smtp}\ntimeout = 1.0\n[metrics]\nlisten = "127.0.0.1:{port}"\n'),
    )
    daemon = DaemonProcess(config, tmp_path)
    daemon.cli("init")
    db = Db(db_url)
    try:
        daemon.start()
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: _answers(base + "/healthz"), 60, what="/healthz answering")

        drop_dir = tmp_path / "var" / "drop"
        drop(drop_dir, "a.eml", mail(1))
        drop(drop_dir, "b.eml", mail(2))
        drop(drop_dir, "c.eml", mail(3, Auto_Submitted="auto-replied"))
        drop(drop_dir, "d.eml", b"this is not a message at all\n")
        wait_until(lambda: db.scalar("select count(*) from source_items where source = 'maildir:drop'") == 4, 60, what="4 items taken")

        status, body = get(base + "/metrics")
        assert status == 200
        m = samples(body.decode())
        at = datetime.now(UTC)
        taken = [
            m.get(("intake_messages_taken_total", (("outcome", outcome), ("source", "maildir:drop"))))
            for outcome in ("opened", "autoreply_ignored", "quarantined")
        ]
        assert taken == [2, 1, 1]
        assert m[("intake_pipeline_seconds_count", (("channel", "email"),))] == 4
        assert 0 < m[("intake_pipeline_seconds_sum", (("channel", "email"),))] < 60
        assert m[("intake_database_up", ())] == 1

        pending = db.scalar("select count(*) from outbox where status = 'pending'")
        assert pending >= 2  # two acknowledgements at least, SMTP is down
        assert m[("intake_outbox_depth", ())] == pending
        assert m[("intake_outbox_mails", (("status", "pending"),))] == pending
        oldest = datetime.fromisoformat(str(db.scalar("select min(created_at) from outbox where status = 'pending'")))
        oldest = oldest if oldest.tzinfo else oldest.replace(tzinfo=UTC)
        assert abs(m[("intake_outbox_oldest_pending_age_seconds", ())] - (at - oldest).total_seconds()) < 5
        assert m[("intake_quarantine_held", ())] == db.scalar("select count(*) from quarantine where status = 'held'") == 1
        assert m[("intake_source_last_success_age_seconds", (("source", "maildir:drop"),))] < 60
        assert ("intake_archive_backlog", ()) in m and ("intake_sla_breaches", ()) in m
        assert m[("intake_sla_breaches", ())] == 0
        assert ("process_resident_memory_bytes", ()) in m

        status, body = get(base + "/healthz")
        health = json.loads(body)
        assert status == 200 and health["ok"] is True and health["database"] is True
        assert health["version"] == intake.__version__
        assert 0 <= health["sources"]["maildir:drop"]["last_success_age_seconds"] < 60
        assert daemon.terminate() == 0
    finally:
        daemon.close()
        db.close()


def _answers(url: str) -> bool:
    try:
        return get(url)[0] == 200
    except OSError:
        return False


def test_unreachable_database_gives_healthz_503_and_database_up_0(tmp_path):
    """A listener whose PostgreSQL refuses connections: /healthz 503 with ok false and the
    error, /metrics still 200 with intake_database_up 0 and no database gauges."""
    config = from_dict({"database": {"url": f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/test"}, "paths": {"var": str(tmp_path / "var")}})
    ctx = build_context(config)
    port, stop, ready = free_port(), threading.Event(), threading.Event()
    thread = ops_thread(ctx, f"127.0.0.1:{port}", stop, ready)
    thread.start()
    try:
        assert ready.wait(15)
        status, body = get(f"http://127.0.0.1:{port}/healthz")
        health = json.loads(body)
        assert status == 503 and health["ok"] is False and health["database"] is False
        assert "OperationalError" in health["error"]

        status, body = get(f"http://127.0.0.1:{port}/metrics")
        m = samples(body.decode())
        assert status == 200 and m[("intake_database_up", ())] == 0
        assert ("intake_outbox_depth", ()) not in m
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()


def test_metrics_listen_is_off_by_default_and_a_bad_address_names_the_key():
    """[metrics] listen defaults to empty (no listener); a malformed one is refused at start-up."""
    assert from_dict({}).metrics.listen == ""
    with pytest.raises(ConfigError, match=r"metrics\.listen"):
        from_dict({"metrics": {"listen": "9108"}})


def test_a_taken_metrics_port_is_logged_and_the_daemon_keeps_working(tmp_path):
    """The metrics address already in use: the daemon says so in its log and still takes mail."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        database = tmp_path / "var" / "intake.db"
        config = write_config(
            tmp_path / "intake.toml", db_url=f"sqlite:///{database}", var=tmp_path / "var", extra=f'[metrics]\nlisten = "127.0.0.1:{port}"\n'
        )
        daemon = DaemonProcess(config, tmp_path)
        daemon.cli("init")
        db = Db(f"sqlite:///{database}")
        try:
            daemon.start()
            wait_until(lambda: "metrics listener" in daemon.log.read_text(errors="replace"), 60, what="the error logged")
            drop(tmp_path / "var" / "drop", "a.eml", mail(1))
            wait_until(lambda: db.tickets() == 1, 60, what="the ticket")
            assert daemon.alive() and daemon.terminate() == 0
        finally:
            daemon.close()
            db.close()
    assert f"127.0.0.1:{port}" in daemon.log.read_text(errors="replace")
