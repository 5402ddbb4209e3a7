"""The single-daemon guard: one `intake run` per SQLite database, proven with real
daemon processes (second start refused, --once refused, one-shot commands allowed,
released by kill -9); PostgreSQL daemons are not guarded."""

from __future__ import annotations

import os
import time
from email.message import EmailMessage
from pathlib import Path

import pytest

from intake.ops.guard import AlreadyRunning, DaemonLock, daemon_lock, lock_path, sqlite_file
from tests.daemonproc import DaemonProcess, Db, wait_until, write_config


def customer_mail(i: int) -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"] = f"customer{i}@kehu.example.cn", "support@example.com"
    msg["Subject"], msg["Message-ID"] = f"订单 {i} 无法付款", f"<guard-{i}-{time.time_ns()}@kehu.example.cn>"
    msg.set_content(f"您好，订单 {i} 付款时一直提示错误。")
    return bytes(msg)


@pytest.fixture
def sqlite_home(tmp_path):
    """(make_daemon(), database path): daemons sharing one SQLite database and config."""
    database = tmp_path / "var" / "intake.db"
    config = write_config(tmp_path / "intake.toml", db_url=f"sqlite:///{database}", var=tmp_path / "var")
    made: list[DaemonProcess] = []

    def make() -> DaemonProcess:
        daemon = DaemonProcess(config, tmp_path, log=tmp_path / f"daemon{len(made)}.log")
        made.append(daemon)
        return daemon

    made_first = make()
    made_first.cli("init")
    yield make, database
    for daemon in made:
        daemon.close()


def holder_pid(database: Path) -> int | None:
    text = lock_path(database).read_text() if lock_path(database).exists() else ""
    return int(text) if text.strip().isdigit() else None


def start_and_wait(daemon: DaemonProcess, database: Path) -> None:
    daemon.start()
    wait_until(lambda: holder_pid(database) == daemon.proc.pid, 30, what="daemon holding the lock")


def test_second_daemon_and_run_once_refuse_naming_database_and_pid_while_one_shot_commands_work(sqlite_home, tmp_path):
    """A second `intake run` and `intake run --once` on the same SQLite file exit 1 naming
    the database and the running daemon's pid; `ingest` and `status` still work."""
    make, database = sqlite_home
    first = make()
    start_and_wait(first, database)

    started = time.monotonic()
    for args in (("run",), ("run", "--once")):
        proc = first.cli(*args, check=False)
        assert proc.returncode == 1, (args, proc.stderr.decode())
        err = proc.stderr.decode()
        assert str(database) in err and f"pid {first.proc.pid}" in err, err
        assert "PostgreSQL" in err
    assert time.monotonic() - started < 30  # refused at once, not after waiting
    assert first.alive() and holder_pid(database) == first.proc.pid

    mail = tmp_path / "one.eml"
    mail.write_bytes(customer_mail(1))
    assert b"opened" in first.cli("ingest", str(mail)).stdout
    assert first.cli("status").returncode == 0
    db = Db(f"sqlite:///{database}")
    try:
        assert db.tickets() == 1
    finally:
        db.close()


def test_guard_is_released_by_kill_9_and_taken_by_the_next_daemon(sqlite_home):
    """After kill -9 of the holder (no clean-up of any kind) a new daemon starts, holds
    the lock, and in turn refuses a third."""
    make, database = sqlite_home
    first = make()
    start_and_wait(first, database)
    first_pid = first.proc.pid
    first.kill9()

    second = make()
    start_and_wait(second, database)
    time.sleep(1.0)
    assert second.alive()
    proc = second.cli("run", check=False)
    assert proc.returncode == 1
    assert f"pid {second.proc.pid}" in proc.stderr.decode() and f"pid {first_pid}" not in proc.stderr.decode()
    assert second.terminate() == 0


def test_daemon_lock_in_process_conflicts_until_released(tmp_path):
    """Two DaemonLocks on one file conflict even within one process (flock is per open
    file); release lets the next one in; the refusal names our pid."""
    database = tmp_path / "intake.db"
    first = DaemonLock(database).acquire()
    with pytest.raises(AlreadyRunning) as refused:
        DaemonLock(database).acquire()
    assert refused.value.pid == os.getpid() and refused.value.database == database
    first.release()
    with DaemonLock(database) as second:
        assert lock_path(database).read_text().strip() == str(os.getpid())
    second.release()


def test_only_sqlite_files_are_guarded(tmp_path, monkeypatch):
    """PostgreSQL and :memory: get no lock; a relative SQLite path is resolved like SQLite does, from the cwd."""
    monkeypatch.chdir(tmp_path)
    assert daemon_lock("postgresql+psycopg://postgres@127.0.0.1:5432/test") is None
    assert daemon_lock("sqlite://") is None and daemon_lock("sqlite:///:memory:") is None
    assert sqlite_file("sqlite:///var/intake.db") == tmp_path / "var" / "intake.db"
    assert daemon_lock("sqlite:///var/intake.db").path == tmp_path / "var" / "intake.db.lock"


@pytest.mark.postgres
def test_two_daemons_on_one_postgresql_database_both_run(tmp_path, pg_url):
    """No guard on PostgreSQL: a second daemon on the same database starts and keeps running."""
    made = []
    try:
        for i in range(2):
            config = write_config(tmp_path / f"intake{i}.toml", db_url=pg_url, var=tmp_path / f"var{i}")
            daemon = DaemonProcess(config, tmp_path, log=tmp_path / f"daemon{i}.log")
            made.append(daemon)
            if i == 0:
                daemon.cli("init")
            daemon.start()
        wait_until(lambda: all("intake running" in d.log.read_text(errors="replace") for d in made), 60, what="both daemons running")
        time.sleep(1.0)
        assert all(d.alive() for d in made)
        assert [d.terminate() for d in made] == [0, 0]
    finally:
        for d in made:
            d.close()
