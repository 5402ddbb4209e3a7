"""kill -9 of the daemon while customers submit the web form, then a restart: every submission
that was answered 201 is exactly one ticket with one acknowledgement, and every file that
reached the spool became exactly one ticket (none lost, none doubled)."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session

from intake.store.models import OutboxMail, Ticket

REPO = Path(__file__).resolve().parents[2]
INTAKE = [str(Path(sys.executable).with_name("intake"))]  # the console script of this venv


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(config: Path, port: int, log: Path) -> subprocess.Popen:
    proc = subprocess.Popen(
        [*INTAKE, "--config", str(config), "run", "--listen", f"127.0.0.1:{port}"], cwd=REPO, stdout=open(log, "ab"), stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
        time.sleep(0.1)


@pytest.mark.slow
def test_kill_9_during_submissions_then_restart_loses_and_doubles_nothing(tmp_path):
    var = tmp_path / "var"
    config = tmp_path / "intake.toml"
    config.write_text(
        f'[database]\nurl = "sqlite:///{var / "intake.db"}"\n\n[paths]\nvar = "{var}"\n\n'
        f'[maildir]\npath = "{var / "drop"}"\n\n[spool]\npath = "{var / "spool"}"\n\n'
        "[web]\nrate_limit_per_minute = 100000\n\n"
        # every submission's acknowledgement is counted below: the global hourly cap on form
        # acknowledgements (a spam-relay guard, 200 by default) is not what this test is about
        "[limits]\nform_acks_per_hour = 100000\n",
        "utf-8",
    )
    subprocess.run([*INTAKE, "--config", str(config), "init"], cwd=REPO, check=True, capture_output=True)
    port = free_port()
    log = tmp_path / "daemon.log"
    proc = start(config, port, log)

    answered: dict[str, str] = {}  # email -> ticket, for every 201
    stop = threading.Event()

    def customer(k: int) -> None:
        n = 0
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            while not stop.is_set():
                n += 1
                address = f"c{k}-{n}@kehu.example.cn"
                try:
                    r = client.post("/", json={"name": "客户", "email": address, "message": f"第{n}个问题，请处理。"})
                except httpx.HTTPError:
                    continue  # the daemon died under us: that submission may or may not be spooled
                if r.status_code == 201:
                    answered[address] = r.json()["ticket"]

    clients = [threading.Thread(target=customer, args=(k,)) for k in range(4)]
    for c in clients:
        c.start()
    time.sleep(2.0)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    stop.set()
    for c in clients:
        c.join(timeout=20)
    assert len(answered) > 10, "too few submissions before the kill to prove anything"

    # Restart: whatever waits in the spool is taken at start.
    subprocess.run([*INTAKE, "--config", str(config), "run", "--once"], cwd=REPO, check=True, capture_output=True)

    spool = var / "spool"
    assert sorted(spool.glob("*.json")) == []  # nothing left waiting
    assert sorted((spool / "rejected").glob("*")) == []
    done = sorted((spool / "done").glob("*.json"))
    spooled = {json.loads(p.read_bytes())["email"] for p in done}
    assert len(spooled) == len(done)  # one file per submission
    engine = create_engine(f"sqlite:///{var / 'intake.db'}")
    with Session(engine) as s:
        tickets = {t.customer.email: t.ref for t in s.scalars(select(Ticket).where(Ticket.channel == "form"))}
        acks = s.scalar(select(func.count()).select_from(OutboxMail).where(OutboxMail.kind == "ack"))
        per_address = s.execute(select(OutboxMail.rcpt_to, func.count()).where(OutboxMail.kind == "ack").group_by(OutboxMail.rcpt_to)).all()
    engine.dispose()
    assert set(tickets) == spooled  # every spooled submission is a ticket, and nothing else is
    assert {a: tickets[a] for a in answered} == answered  # every 201 answer names its real ticket
    assert acks == len(tickets) and all(count == 1 for _, count in per_address)
    assert len(tickets) >= len(answered)  # some may have been spooled but not answered before the kill
    leftovers = len(list((spool / "tmp").iterdir()))
    print(f"answered {len(answered)}, tickets {len(tickets)}, temp files left {leftovers}")
