"""Microsoft Graph as the mailer's way out: sendMail with our own MIME (base64, text/plain),
so what leaves is byte for byte what the outbox holds, Message-ID included. Against the
loopback Graph API (tests/servers/graph_api.py says what it stands in for)."""

from __future__ import annotations

import time
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default

import pytest
from sqlalchemy import select

from intake.msgraph.sender import GraphTransport
from intake.outgoing.mailer import OutboxWorker
from intake.outgoing.transport import TransportError
from intake.store.models import OutboxMail, SourceState
from tests.integration.graph_helpers import (  # noqa: F401 (fixtures are used by name)
    MAILBOX,
    account,
    context,
    graph,
    graph_server,
    idp,
    mail,
    secret_env,
    source_for,
)


def outbox_rows(ctx) -> list:
    with ctx.sessions() as session:
        return list(session.execute(select(OutboxMail.kind, OutboxMail.message_id, OutboxMail.raw, OutboxMail.status, OutboxMail.rcpt_to)))


def test_the_acknowledgement_leaves_through_sendmail_as_our_exact_mime(tmp_path, idp, graph):
    ctx = context(tmp_path, [account(idp, graph, send=True)])
    graph.deliver(MAILBOX, mail("printer offline", sender="li.wei@kehu.cn"))
    assert source_for(ctx).run_once() == 1
    worker = OutboxWorker(ctx)
    assert isinstance(worker.transport, GraphTransport)

    assert worker.run_once() == (1, 0)
    [(kind, message_id, raw, status, rcpt)] = outbox_rows(ctx)
    assert (kind, status, rcpt) == ("ack", "sent", "li.wei@kehu.cn")
    [sent] = graph.sent(MAILBOX)
    assert sent == raw  # byte for byte: the base64 carried our MIME untouched
    assert message_from_bytes(sent, policy=default)["Message-ID"] == f"<{message_id}>"
    assert graph.count("POST", "/sendMail", 202) == 1
    with ctx.sessions() as session:
        state = session.get(SourceState, "graph-send:support")
        assert state.last_success_at is not None and state.last_error is None


def test_send_only_account_and_throttled_send_waited_out(tmp_path, idp, graph):
    from intake.pipeline.runner import Pipeline
    from intake.sources.base import SourceRef

    ctx = context(tmp_path, [account(idp, graph, send=True, folders=[])])
    Pipeline(ctx).take(mail("by the drop folder"), SourceRef("maildir:drop", "one"))
    graph.throttle(1, retry_after=0.5, path_part="/sendMail")
    assert OutboxWorker(ctx).run_once() == (1, 0)
    assert graph.count("POST", "/sendMail", 429) == 1 and len(graph.sent(MAILBOX)) == 1
    assert graph.requests and not any("/messages/delta" in p for _, p, _, _ in graph.requests)  # nothing read


def test_a_recipient_not_in_the_headers_is_refused_not_sent_elsewhere(tmp_path, idp, graph):
    from intake.msgraph.sender import graph_transport

    ctx = context(tmp_path, [account(idp, graph, send=True)])
    transport = graph_transport(ctx.config.graph[0], ctx.config.var)
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"], msg["Message-ID"] = "support@example.com", "a@kehu.cn", "x", "<x@example.com>"
    msg.set_content("x")
    with pytest.raises(TransportError) as refused:
        transport.send("support@example.com", "b@kehu.cn", msg.as_bytes())
    assert refused.value.permanent and not refused.value.server
    assert graph.sent(MAILBOX) == []


def test_a_sender_refused_the_mailbox_turns_red_keeps_the_mail_and_recovers(tmp_path, idp, graph):
    from intake.ops.alerts import is_failing
    from intake.pipeline.runner import Pipeline
    from intake.sources.base import SourceRef

    ctx = context(tmp_path, [account(idp, graph, send=True, folders=[])], outbox={"retry_initial_seconds": 0.01})
    worker = OutboxWorker(ctx)
    Pipeline(ctx).take(mail("first"), SourceRef("maildir:drop", "one"))
    assert worker.run_once() == (1, 0)

    idp.withdraw_mailbox("graph-app", MAILBOX)  # Send As taken back: Graph answers 403 ErrorAccessDenied
    Pipeline(ctx).take(mail("second", sender="wang.fang@kehu.cn"), SourceRef("maildir:drop", "two"))
    assert worker.run_once() == (0, 1)
    with ctx.sessions() as session:
        state = session.get(SourceState, "graph-send:support")
        assert is_failing(state) and "403 ErrorAccessDenied" in state.last_error
    assert [r.status for r in outbox_rows(ctx)] == ["sent", "pending"]  # the mail waits, never given up for the login

    idp.grant_mailbox("graph-app", MAILBOX)
    time.sleep(0.05)  # past the retry time
    assert worker.run_once() == (1, 0)
    with ctx.sessions() as session:
        assert not is_failing(session.get(SourceState, "graph-send:support"))
    assert [r.status for r in outbox_rows(ctx)] == ["sent", "sent"]


def test_a_long_throttle_does_not_hold_the_mailer_the_mail_goes_later(tmp_path, idp, graph):
    from intake.ops.alerts import is_failing
    from intake.pipeline.runner import Pipeline
    from intake.sources.base import SourceRef

    ctx = context(tmp_path, [account(idp, graph, send=True, folders=[])], outbox={"retry_initial_seconds": 0.01})
    worker = OutboxWorker(ctx)
    Pipeline(ctx).take(mail("throttled for a minute"), SourceRef("maildir:drop", "one"))
    graph.throttle(1, retry_after=60, path_part="/sendMail")
    started = time.monotonic()
    assert worker.run_once() == (0, 1)
    assert time.monotonic() - started < 10  # not 60 s: the outbox's own retry takes over
    with ctx.sessions() as session:
        state = session.get(SourceState, "graph-send:support")
        assert is_failing(state) and "429 ApplicationThrottled" in state.last_error
    time.sleep(0.05)
    assert worker.run_once() == (1, 0) and len(graph.sent(MAILBOX)) == 1


def test_the_folders_and_the_sender_of_a_mailbox_share_its_limit_of_4_requests_at_once(tmp_path, idp, graph):
    """Exchange counts its 4 requests at once per app and mailbox: two folder sources (each
    fetching 4 at a time) and the sender together stay within it."""
    import threading

    from intake.msgraph.client import MAILBOX_CONCURRENCY
    from intake.msgraph.sender import graph_transport

    graph.add_folder(MAILBOX, "Orders")
    ctx = context(tmp_path, [account(idp, graph, send=True, folders=["inbox", "Orders"])])
    for i in range(12):
        graph.deliver(MAILBOX, mail(f"inbox {i:02}"))
        graph.deliver(MAILBOX, mail(f"orders {i:02}"), folder="Orders")
    inbox, orders = source_for(ctx, folder="inbox"), source_for(ctx, folder="Orders")
    transport = graph_transport(ctx.config.graph[0], ctx.config.var)
    replies = []
    for i in range(6):
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"], msg["Message-ID"] = MAILBOX, "li.wei@kehu.cn", f"reply {i}", f"<reply.{i}@contoso.com>"
        msg.set_content("received")
        replies.append(msg.as_bytes())
    assert inbox.run_once() == 12 and orders.run_once() == 12  # the token and the folder ids found before the part watched
    for i in range(12, 24):
        graph.deliver(MAILBOX, mail(f"inbox {i:02}"))
        graph.deliver(MAILBOX, mail(f"orders {i:02}"), folder="Orders")
    graph.latency, graph.max_in_flight = 0.03, 0  # a round trip to the service: requests overlap
    taken: dict[str, int] = {}
    threads = [
        threading.Thread(target=lambda: taken.__setitem__("inbox", inbox.run_once())),
        threading.Thread(target=lambda: taken.__setitem__("orders", orders.run_once())),
        threading.Thread(target=lambda: [transport.send(MAILBOX, "li.wei@kehu.cn", raw) for raw in replies]),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    inbox.close(), orders.close()

    assert taken == {"inbox": 12, "orders": 12} and len(graph.sent(MAILBOX)) == 6
    assert 1 < graph.max_in_flight <= MAILBOX_CONCURRENCY  # in parallel, but never beyond the mailbox's limit
