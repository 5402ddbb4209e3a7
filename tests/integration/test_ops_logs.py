"""[log] format = "json" under the real `intake run`: every line the daemon writes is one
JSON object, from start to a clean SIGTERM stop, including the pipeline's outcome."""

from __future__ import annotations

import json
import os
import time
from email.message import EmailMessage

from tests.daemonproc import DaemonProcess, Db, wait_until, write_config


def test_daemon_logs_one_json_object_a_line_when_asked(tmp_path):
    """Start, take a mail from the drop folder, stop: each non-empty line parses as JSON
    with at/level/logger/thread/message, and the lines tell the story."""
    database = tmp_path / "var" / "intake.db"
    config = write_config(tmp_path / "intake.toml", db_url=f"sqlite:///{database}", var=tmp_path / "var", extra='[log]\nformat = "json"\n')
    daemon = DaemonProcess(config, tmp_path)
    daemon.cli("init")
    db = Db(f"sqlite:///{database}")
    try:
        daemon.start()
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = "lina@kehu.example.cn", "support@example.com", "发票 开错了"
        msg["Message-ID"] = f"<json-log-{time.time_ns()}@kehu.example.cn>"
        msg.set_content("您好，上周的发票抬头开错了，请重开。")
        drop = tmp_path / "var" / "drop"
        (drop / "tmp").mkdir(parents=True, exist_ok=True)
        (drop / "tmp" / "one.eml").write_bytes(bytes(msg))
        os.rename(drop / "tmp" / "one.eml", drop / "new" / "one.eml")
        wait_until(lambda: db.tickets() == 1, 60, what="the ticket")
        wait_until(lambda: db.sent() >= 1, 60, what="the acknowledgement written")
        assert daemon.terminate() == 0
    finally:
        daemon.close()
        db.close()

    lines = [line for line in daemon.log.read_text(encoding="utf-8").splitlines() if line.strip()]
    entries = []
    for line in lines:
        entry = json.loads(line)  # a non-JSON line fails the test here, naming it
        assert {"at", "level", "logger", "thread", "message"} <= set(entry), line
        entries.append(entry)
    messages = [e["message"] for e in entries]
    assert any(m.startswith("intake running:") for m in messages)
    taken = [e for e in entries if e["logger"] == "intake.pipeline.runner" and "→ opened" in e["message"]]
    assert len(taken) == 1 and taken[0]["level"] == "info" and taken[0]["thread"] == "maildir:drop"
    assert "received SIGTERM" in messages and messages[-1] == "stopped"
