"""The real daemon process reading a mailbox through Microsoft Graph (the loopback Graph API
of tests/servers/graph_api.py, tokens from the loopback identity provider standing in for
Entra ID): kill -9 at random moments of a backlog loses and doubles nothing, as for IMAP
(test_daemon_email.py)."""

from __future__ import annotations

import email
import random
import time
from collections import Counter
from email.message import EmailMessage
from pathlib import Path

import pytest

from tests.daemonproc import DaemonProcess, Db, wait_until, write_config
from tests.integration.graph_helpers import (  # noqa: F401 (fixtures are used by name)
    APP,
    MAILBOX,
    SECRET_ENV,
    graph,
    graph_server,
    idp,
    secret_env,
)


def customer_mail(i: int) -> bytes:
    msg = EmailMessage()
    msg["From"] = f"客户{i} <customer{i}@kehu.example.cn>"
    msg["To"] = MAILBOX
    msg["Subject"] = f"订单 {i} 无法付款"
    msg["Message-ID"] = f"<graph-order-{i}-{random.getrandbits(32)}@kehu.example.cn>"
    msg.set_content(f"您好，订单 {i} 付款时一直提示错误，请帮忙看看。")
    return bytes(msg)


def graph_section(idp, graph) -> str:
    return "\n".join(
        [
            "[[graph]]",
            'name = "support"',
            f'mailbox = "{MAILBOX}"',
            f'tenant = "{idp.tenant}"',
            f'client_id = "{APP}"',
            f'client_secret_env = "{SECRET_ENV}"',
            f'authority = "{idp.authority}"',
            f'oauth_ca_file = "{idp.ca_file}"',
            f'api_url = "{graph.base}"',
            f'ca_file = "{graph.ca_file}"',
            "poll_interval = 0.2",
            "batch_size = 20",
        ]
    )


def acks_delivered(var: Path) -> Counter:
    """Message-IDs of the acknowledgements in the outgoing Maildir (no SMTP server configured)."""
    found: Counter = Counter()
    for path in (var / "outgoing" / "new").glob("*"):
        message_id = email.message_from_bytes(path.read_bytes())["Message-ID"]
        if message_id.startswith("<ack."):
            found[message_id] += 1
    return found


@pytest.mark.slow
def test_kill_9_during_a_graph_backlog_loses_and_doubles_nothing(tmp_path, idp, graph):
    n = 300
    db_url = f"sqlite:///{tmp_path / 'intake.db'}"
    var = tmp_path / "var"
    config = write_config(tmp_path / "intake.toml", db_url=db_url, var=var, extra=graph_section(idp, graph) + "\n")
    daemon = DaemonProcess(config, tmp_path)  # the environment, the client secret's variable with it, as the test has it
    daemon.cli("init")
    db = Db(db_url)
    for i in range(n):
        graph.deliver(MAILBOX, customer_mail(i))
    rng = random.Random(20261206)
    kills, at_kill = 0, []
    try:
        while kills < 5 and db.tickets() < n:
            progress = db.tickets()
            daemon.start()
            if kills == 2:  # once while it starts
                time.sleep(rng.uniform(0.2, 1.0))
            else:  # otherwise at a random point of the backlog
                wait_until(lambda progress=progress: db.tickets() != progress, 60, interval=0.05, what="the daemon at work")
                time.sleep(rng.uniform(0.0, 0.5))
            daemon.kill9()
            kills += 1
            at_kill.append(db.tickets())
        assert any(0 < tickets < n for tickets in at_kill), f"no kill hit the backlog: {at_kill}"
        daemon.start()
        wait_until(lambda: not graph.in_folder(MAILBOX, "inbox") and db.tickets() == n, 120, interval=0.2, what=f"{n} tickets, the inbox empty")
        wait_until(lambda: sum(acks_delivered(var).values()) >= n, 60, interval=0.2, what="every acknowledgement written")
        assert daemon.terminate() == 0
    finally:
        daemon.close()

    assert len(graph.in_folder(MAILBOX, "Processed")) == n  # nothing deleted, nothing left behind
    subjects = [row[0] for row in db.rows("select subject from tickets")]
    assert len(subjects) == len(set(subjects)) == n  # every message exactly one ticket
    assert db.scalar("select count(*) from source_items where source = 'graph:support/inbox'") == n
    queued = {f"<{row[0]}>" for row in db.rows("select message_id from outbox where kind='ack'")}
    delivered = acks_delivered(var)
    assert set(delivered) == queued and len(queued) == n  # every acknowledgement out, none invented; a repeat keeps its Message-ID
    db.close()
