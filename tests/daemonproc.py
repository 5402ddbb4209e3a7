"""Run the real `intake` daemon as a separate process, as an operator would: for
end-to-end tests and benchmarks (start, SIGTERM, kill -9, restart)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import create_engine, func, select, text

from intake.store.models import OutboxMail, Ticket


def write_config(
    path: Path, *, db_url: str, var: Path, dovecot=None, smtp=None, users=("support",), extra: str = "", lease_retry_seconds: float | None = None
) -> Path:
    lines = [
        "[database]",
        f'url = "{db_url}"',
        *([f"lease_retry_seconds = {lease_retry_seconds}"] if lease_retry_seconds else []),
        "[paths]",
        f'var = "{var}"',
        "[maildir]",
        f'path = "{var / "drop"}"',
        "[spool]",
        f'path = "{var / "spool"}"',
        "[limits]",
        "acks_per_sender_per_hour = 1000",
        "[outbox]",
        "retry_initial_seconds = 0.5",
        "retry_max_seconds = 2.0",
    ]
    if smtp is not None:
        lines += ["[smtp]", 'host = "127.0.0.1"', f"port = {smtp.port}", "timeout = 2.0"]
    for user in users if dovecot is not None else ():
        lines += [
            "[[imap]]",
            f'name = "{user}"',
            'host = "127.0.0.1"',
            f"port = {dovecot.port}",
            'security = "plain"',
            f'username = "{user}"',
            f'password = "{dovecot.users[user]}"',
            "poll_interval = 1.0",
        ]
    path.write_text("\n".join(lines) + "\n" + extra, encoding="utf-8")
    return path


class DaemonProcess:
    def __init__(self, config: Path, cwd: Path, log: Path | None = None):
        self.config, self.cwd = config, cwd
        self.log = log or cwd / "daemon.log"
        self.proc: subprocess.Popen | None = None
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", "INTAKE_CONFIG": ""}

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [sys.executable, "-m", "intake.cli.main", "--config", str(self.config), *args],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            timeout=300,
        )
        if check and proc.returncode != 0:
            raise RuntimeError(f"intake {' '.join(args)} failed: {proc.stderr.decode()}")
        return proc

    def start(self, *args: str) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "intake.cli.main", "--config", str(self.config), "run", *args],
                cwd=self.cwd,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def terminate(self, timeout: float = 30) -> int:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout)
        self.proc = None
        return code

    def kill9(self) -> None:
        self.proc.kill()  # SIGKILL: no cleanup of any kind
        self.proc.wait(10)
        self.proc = None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None


class Db:
    """Read-only peeks at the daemon's database from the test."""

    def __init__(self, url: str):
        self.engine = create_engine(url)

    def tickets(self) -> int:
        with self.engine.connect() as c:
            return c.scalar(select(func.count()).select_from(Ticket))

    def sent(self) -> int:
        with self.engine.connect() as c:
            return c.scalar(select(func.count()).select_from(OutboxMail).where(OutboxMail.status == "sent"))

    def scalar(self, sql: str):
        with self.engine.connect() as c:
            return c.scalar(text(sql))

    def rows(self, sql: str) -> list:
        with self.engine.connect() as c:
            return list(c.execute(text(sql)))

    def close(self) -> None:
        self.engine.dispose()


def wait_until(predicate, timeout: float, interval: float = 0.1, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"{what} not reached within {timeout} s")


def wait_for_web(base: str, what: str = "the daemon's web listener", seconds: float = 15) -> None:
    """Until `base`/healthz answers 200 (a web listener started in a thread of the test)."""
    import httpx

    deadline = time.monotonic() + seconds
    while True:
        try:
            if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, f"{what} did not come up"
        time.sleep(0.1)
