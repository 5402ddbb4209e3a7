"""The command line as outside tools use it: the real `intake` executable in a fresh
folder on embedded defaults (SQLite under ./var, outgoing mail into ./var/outgoing)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from email.message import EmailMessage
from pathlib import Path

import pytest

INTAKE = [sys.executable, "-m", "intake.cli.main"]


def run(cwd: Path, *args: str, ok: bool = True, env: dict | None = None, input: bytes | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [*INTAKE, *args], cwd=cwd, capture_output=True, timeout=120, input=input, env={**os.environ, "INTAKE_CONFIG": "", **(env or {})}
    )
    if ok:
        assert proc.returncode == 0, proc.stderr.decode()
    return proc


def outgoing_acks(home: Path) -> list[bytes]:
    """Acknowledgements in the local outgoing Maildir (staff notifications land there too)."""
    raws = [p.read_bytes() for p in (home / "var" / "outgoing" / "new").iterdir()]
    return [raw for raw in raws if b"Message-ID: <ack." in raw]


def lines(proc) -> list[dict]:
    return [json.loads(line) for line in proc.stdout.decode().splitlines() if line.strip()]


def eml(path: Path, body: str, subject: str, sender: str = "zhao@kehu.example.cn", **headers) -> Path:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, "support@example.com", subject
    msg["Message-ID"] = f"<{path.stem}@kehu.example.cn>"
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content(body)
    path.write_bytes(bytes(msg))
    return path


@pytest.fixture
def home(tmp_path) -> Path:
    run(tmp_path, "init")
    return tmp_path


def test_init_creates_database_and_folders_and_is_idempotent(tmp_path):
    first = lines(run(tmp_path, "init", "--json"))
    assert first[0]["migrations_applied"] and (tmp_path / "var" / "intake.db").exists()
    assert (tmp_path / "var" / "drop" / "new").is_dir() and (tmp_path / "var" / "spool").is_dir()
    again = lines(run(tmp_path, "init", "--json"))
    assert again[0]["migrations_applied"] == []


def test_ingest_reports_every_outcome(home):
    new = eml(home / "new.eml", "你好，请问发票怎么开？", "咨询发票")
    dup = home / "dup.eml"
    dup.write_bytes(new.read_bytes())
    ooo = eml(home / "ooo.eml", "I am out of office.", "Automatic reply: away", Auto_Submitted="auto-replied")
    bad = home / "bad.eml"
    bad.write_bytes(b"\x00\xff nothing here")
    out = lines(run(home, "ingest", "--json", str(new), str(dup), str(ooo), str(bad)))
    assert [o["outcome"] for o in out] == ["opened", "duplicate", "autoreply_ignored", "quarantined"]
    assert out[0]["ticket"] and out[1]["ticket"] == out[0]["ticket"]
    assert out[3]["reason"] and [o["file"] for o in out] == [str(new), str(dup), str(ooo), str(bad)]

    reply = eml(home / "reply.eml", "补充：需要增值税专用发票。", f"Re: [#{out[0]['ticket']}] 咨询发票")
    [appended] = lines(run(home, "ingest", "--json", str(reply)))
    assert appended["outcome"] == "appended" and appended["ticket"] == out[0]["ticket"]


def test_tickets_list_and_show(home):
    [opened] = lines(run(home, "ingest", "--json", str(eml(home / "a.eml", "系统崩溃了，所有人都无法登录，非常紧急！", "系统崩溃"))))
    [listed] = lines(run(home, "tickets", "list", "--json"))
    assert listed["ref"] == opened["ticket"] and listed["status"] == "new" and listed["customer"] == "zhao@kehu.example.cn"
    [shown] = lines(run(home, "tickets", "show", opened["ticket"], "--json"))
    assert [m["direction"] for m in shown["messages"]] == ["in", "out"]
    assert {"opened", "classified", "ack_queued"} <= {e["kind"] for e in shown["events"]}
    text = run(home, "tickets", "show", opened["ticket"]).stdout.decode()
    assert opened["ticket"] in text and "系统崩溃" in text
    missing = run(home, "tickets", "show", "000000-0000", ok=False)
    assert missing.returncode == 1 and "no ticket" in missing.stderr.decode()


def test_run_once_sends_acknowledgements_into_the_outgoing_maildir_and_status_counts(home):
    run(home, "ingest", str(eml(home / "a.eml", "How do I reset my password?", "Password reset", sender="amy@example.org")))
    run(home, "run", "--once")
    [raw] = outgoing_acks(home)
    assert b"Auto-Submitted: auto-replied" in raw and b"amy@example.org" in raw
    [status] = lines(run(home, "status", "--json"))
    assert status["outbox"]["sent_24h"] >= 1 and status["outbox"]["pending"] == 0
    assert any(s["source"] == "ingest" and s["taken_24h"] == 1 for s in status["sources"])


def test_run_once_takes_the_drop_folder(home):
    src = eml(home / "x.eml", "打印机卡纸了", "打印机故障")
    (home / "var" / "drop" / "new" / "1700000000.M1P1.host").write_bytes(src.read_bytes())
    run(home, "run", "--once")
    [t] = lines(run(home, "tickets", "list", "--json"))
    assert t["subject"] == "打印机故障"
    assert list((home / "var" / "drop" / "new").iterdir()) == []  # moved, not deleted
    assert len(outgoing_acks(home)) == 1


def test_quarantine_list_and_retry(home):
    bad = home / "bad.eml"
    bad.write_bytes(b"")
    run(home, "ingest", str(bad))
    [held] = lines(run(home, "quarantine", "list", "--json"))
    assert held["status"] == "held" and held["bytes"] == 0 and "empty" in held["reason"]
    retried = run(home, "quarantine", "retry", str(held["id"]), "--json", ok=False)
    assert retried.returncode == 1 and lines(retried)[0]["outcome"] == "quarantined"
    assert lines(run(home, "quarantine", "list", "--json"))[0]["retries"] == 1


def test_bad_config_names_the_key_and_exits_2(tmp_path):
    (tmp_path / "bad.toml").write_text("[smtp]\nprot = 25\n")
    proc = run(tmp_path, "--config", str(tmp_path / "bad.toml"), "status", ok=False)
    assert proc.returncode == 2 and "smtp.prot: unknown key" in proc.stderr.decode()


def test_classify_prints_type_urgency_department_and_matches(home):
    path = eml(home / "c.eml", "你们的客服态度太差了，我要投诉！已经等了三天没人处理。", "投诉客服态度")
    [result] = lines(run(home, "classify", "--json", str(path)))
    assert result["type"] == "complaint" and result["department"] and result["matches"]
    text = run(home, "classify", "-", input=path.read_bytes()).stdout.decode()
    assert "type: complaint" in text and "urgency:" in text


def test_archive_from_the_command_line_search_verify_export_tamper_and_purge(home):
    """A case PDF appears after `run --once`; verify passes, then catches a changed
    file; export writes a zip with a manifest; purge deletes nothing that is not expired."""
    import zipfile

    run(
        home, "ingest", str(eml(home / "a.eml", "你们的快递员态度恶劣，我要投诉。", "投诉快递员", sender="某科技有限公司 <kefu@mou-keji.example.cn>"))
    )
    run(home, "run", "--once")
    [found] = lines(run(home, "archive", "search", "--json", "--type", "投诉"))
    pdf = home / "var" / "archive" / found["path"]
    assert pdf.read_bytes().startswith(b"%PDF") and "_投诉_" in pdf.name and found["sha256"]
    assert lines(run(home, "archive", "search", "--json", "--customer", "nobody-such")) == []
    assert lines(run(home, "archive", "verify", "--json"))[0]["kind"] == "ok"

    exported = lines(run(home, "archive", "export", "--json", "--output", str(home / "out.zip")))[0]
    assert exported["files"] == 1
    with zipfile.ZipFile(home / "out.zip") as z:
        assert any(name.endswith(".pdf") for name in z.namelist()) and any("manifest" in name for name in z.namelist())

    assert lines(run(home, "archive", "purge", "--json")) == []  # an open case is never past retention
    assert pdf.exists()

    pdf.write_bytes(pdf.read_bytes() + b"%tampered")
    tampered = run(home, "archive", "verify", "--json", ok=False)
    assert tampered.returncode == 1 and any(p["kind"] == "changed" for p in lines(tampered))
