"""Microsoft Graph as a source: a mailbox read with delta queries, each message's MIME taken
into the pipeline and moved to the processed folder after its commit, exactly once. Against
the loopback Graph API (tests/servers/graph_api.py says what it stands in for), with tokens
from the loopback identity provider standing in for Entra ID's token endpoint."""

from __future__ import annotations

import json
import threading
import time

import pytest

from intake.pipeline.runner import Pipeline
from intake.store.models import SourceState
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
    source_keys,
    subjects,
)


def test_new_mail_becomes_tickets_once_and_is_moved(tmp_path, idp, graph):
    ctx = context(tmp_path, [account(idp, graph)])
    ids = [graph.deliver(MAILBOX, mail(f"order {i}")) for i in range(3)]
    source = source_for(ctx)

    assert source.run_once() == 3
    assert subjects(ctx) == ["order 0", "order 1", "order 2"]
    assert source_keys(ctx) == sorted(ids)  # the message id is stored with its ticket
    assert graph.in_folder(MAILBOX, "inbox") == []
    assert len(graph.in_folder(MAILBOX, "Processed")) == 3  # moved, never deleted

    assert source.run_once() == 0  # the next round: nothing new
    graph.deliver(MAILBOX, mail("order 3"))
    assert source.run_once() == 1
    assert subjects(ctx) == ["order 0", "order 1", "order 2", "order 3"]
    with ctx.sessions() as session:
        state = session.get(SourceState, "graph:support/inbox")
        assert state.last_success_at is not None and state.last_error is None and state.backlog == 0


def test_paged_backlog_is_taken_in_order_with_replies_after_what_they_answer(tmp_path, idp, graph):
    """More messages than one delta page (maxpagesize) and one batch."""
    ctx = context(tmp_path, [account(idp, graph, batch_size=7)])
    for i in range(25):
        graph.deliver(MAILBOX, mail(f"backlog {i:02}"))
    assert source_for(ctx).run_once() == 25
    assert subjects(ctx) == [f"backlog {i:02}" for i in range(25)]
    assert graph.in_folder(MAILBOX, "inbox") == []


def test_delta_link_kept_across_a_restart_and_a_forgotten_one_starts_afresh(tmp_path, idp, graph):
    ctx = context(tmp_path, [account(idp, graph)])
    graph.deliver(MAILBOX, mail("before restart"))
    assert source_for(ctx).run_once() == 1
    link_files = list((tmp_path / "var" / "graph").glob("*.delta.json"))
    assert len(link_files) == 1 and oct(link_files[0].stat().st_mode & 0o777) == "0o600"

    graph.deliver(MAILBOX, mail("while down"))
    graph.requests.clear()
    restarted = source_for(ctx)  # a new process: nothing but the file remembers the round
    assert restarted.run_once() == 1
    deltas = [q for m, p, q, _ in graph.requests if p.endswith("/messages/delta")]
    assert deltas and all("$deltatoken=" in q for q in deltas)  # no full round after the restart
    assert subjects(ctx) == ["before restart", "while down"]

    graph.expire_delta_tokens()  # Exchange dropped the sync state: 410
    graph.deliver(MAILBOX, mail("after expiry"))
    assert restarted.run_once() == 1
    assert subjects(ctx) == ["after expiry", "before restart", "while down"]
    assert graph.count("GET", "/messages/delta", 410) == 1


def test_a_delta_link_of_an_earlier_api_url_starts_a_full_round(tmp_path, idp, graph, caplog):
    """api_url changed (another cloud, a proxy): the saved link's host is no longer ours, and
    the client would refuse it round after round."""
    ctx = context(tmp_path, [account(idp, graph)])
    graph.deliver(MAILBOX, mail("before the change"))
    assert source_for(ctx).run_once() == 1
    [link_file] = (tmp_path / "var" / "graph").glob("*.delta.json")
    saved = json.loads(link_file.read_text())
    saved["delta_link"] = saved["delta_link"].replace(graph.base, "https://graph.microsoft.us/v1.0")  # as the old api_url gave it
    link_file.write_text(json.dumps(saved))

    graph.deliver(MAILBOX, mail("after the change"))
    graph.requests.clear()
    assert source_for(ctx).run_once() == 1
    assert subjects(ctx) == ["after the change", "before the change"]
    assert "not under api_url" in caplog.text
    assert [q for m, p, q, _ in graph.requests if p.endswith("/messages/delta")] == ["$select=id,receivedDateTime"]  # a full round
    assert graph.base in json.loads(link_file.read_text())["delta_link"]  # the new round's link kept
    with ctx.sessions() as session:
        assert session.get(SourceState, "graph:support/inbox").last_error is None


def test_throttling_is_waited_out_as_retry_after_asks(tmp_path, idp, graph):
    ctx = context(tmp_path, [account(idp, graph)])
    graph.deliver(MAILBOX, mail("throttled"))
    graph.throttle(2, retry_after=1.0, path_part="/$value")
    source = source_for(ctx)
    started = time.monotonic()
    assert source.run_once() == 1
    assert time.monotonic() - started >= 2.0  # twice Retry-After: 1
    assert graph.count("GET", "/$value", 429) == 2 and source.client.throttled == 2
    assert subjects(ctx) == ["throttled"]
    with ctx.sessions() as session:
        assert session.get(SourceState, "graph:support/inbox").last_error is None  # throttling is no failure


def test_throttled_beyond_the_retries_reports_and_loses_nothing(tmp_path, idp, graph):
    ctx = context(tmp_path, [account(idp, graph)])
    graph.deliver(MAILBOX, mail("stuck a while"))
    source = source_for(ctx)
    source.client.max_retries = 1
    graph.throttle(3, retry_after=0.1, path_part="/messages/delta")
    assert source.run_once() == 0
    with ctx.sessions() as session:
        assert "429 ApplicationThrottled" in session.get(SourceState, "graph:support/inbox").last_error
    assert source.run_once() == 1 and subjects(ctx) == ["stuck a while"]


def test_an_expired_token_is_renewed_once_on_401(tmp_path, idp, graph):
    ctx = context(tmp_path, [account(idp, graph)])
    source = source_for(ctx)
    assert source.run_once() == 0
    assert idp.issued("client_credentials") == 1
    idp.expire_all(MAILBOX)  # the token dies early: msal still thinks it good for an hour
    graph.deliver(MAILBOX, mail("after expiry"))
    assert source.run_once() == 1
    assert graph.count("GET", "", 401) == 1  # one refusal, then the renewed token
    assert idp.issued("client_credentials") == 2
    assert subjects(ctx) == ["after expiry"]


def test_a_revoked_app_turns_the_source_red_naming_the_reason(tmp_path, idp, graph):
    from intake.ops.health import health

    ctx = context(tmp_path, [account(idp, graph)])
    source = source_for(ctx)
    source.run_once()
    idp.revoke_app("graph-app")
    graph.deliver(MAILBOX, mail("stuck"))
    assert source.run_once() == 0
    _, body = health(ctx.sessions, ctx.now, ctx.config.var)
    assert body["failing"] == ["graph:support/inbox"]
    error = body["sources"]["graph:support/inbox"]["last_error"]
    assert "invalid_client" in error and "app-secret" not in error
    assert len(graph.in_folder(MAILBOX, "inbox")) == 1  # waits, untouched


class WatchingSink:
    """The pipeline, with a look at the world each time it says a group is committed."""

    def __init__(self, pipeline, graph, ctx, fail_after_commit: bool = False):
        self.pipeline, self.graph, self.ctx, self.fail_after_commit = pipeline, graph, ctx, fail_after_commit
        self.seen: list[tuple[int, int]] = []

    def report(self, *args, **kwargs):
        return self.pipeline.report(*args, **kwargs)

    def take_many(self, items, committed=None):
        def watched(group, results):
            # committed: the tickets are in the database, the messages still in the inbox
            self.seen.append((len(source_keys(self.ctx)), len(self.graph.in_folder(MAILBOX, "inbox"))))
            if self.fail_after_commit:
                raise ConnectionError("the daemon died between the commit and the move")
            return committed(group, results)

        return self.pipeline.take_many(items, watched)


def test_messages_are_moved_only_after_their_commit_and_a_crash_between_doubles_nothing(tmp_path, idp, graph):
    ctx = context(tmp_path, [account(idp, graph)])
    for i in range(3):
        graph.deliver(MAILBOX, mail(f"commit {i}"))

    crashing = WatchingSink(Pipeline(ctx), graph, ctx, fail_after_commit=True)
    assert source_for(ctx, sink=crashing).run_once() == 0
    assert crashing.seen == [(3, 3)]  # committed, none moved
    assert len(graph.in_folder(MAILBOX, "inbox")) == 3 and subjects(ctx) == ["commit 0", "commit 1", "commit 2"]

    watching = WatchingSink(Pipeline(ctx), graph, ctx)
    assert source_for(ctx, sink=watching).run_once() == 3  # offered again, answered duplicate, moved
    assert watching.seen == [(3, 3)]
    assert subjects(ctx) == ["commit 0", "commit 1", "commit 2"]
    assert graph.in_folder(MAILBOX, "inbox") == [] and len(graph.in_folder(MAILBOX, "Processed")) == 3


def test_run_forever_takes_new_mail_and_stops_promptly(tmp_path, idp, graph):
    ctx = context(tmp_path, [account(idp, graph)])
    stop = threading.Event()
    source = source_for(ctx, stop=stop)
    thread = threading.Thread(target=source.run_forever, daemon=True)
    thread.start()
    try:
        graph.deliver(MAILBOX, mail("polled"))
        deadline = time.monotonic() + 10
        while subjects(ctx) != ["polled"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert subjects(ctx) == ["polled"]
    finally:
        stop.set()
        thread.join(5)
    assert not thread.is_alive()


def test_a_link_to_another_host_is_never_followed_with_our_token(graph):
    from intake.msgraph.client import GraphClient, GraphError

    class Tokens:
        label, asked = "graph:test", 0

        def token(self) -> str:
            self.asked += 1
            return "at-test"

        renew = token

    tokens = Tokens()
    client = GraphClient(graph.base, tokens, ca_file=graph.ca_file)
    with pytest.raises(GraphError, match="link to another host"):
        client.get_json("https://graph.example.net/v1.0/users/x/mailFolders/inbox/messages/delta?$skiptoken=1")
    with pytest.raises(GraphError, match="link to another host"):
        client.get_json(graph.base.replace("https://", "http://") + "/users/x/mailFolders")  # same host, not TLS
    assert tokens.asked == 0 and graph.requests == []


def test_retry_after_in_seconds_or_as_a_date():
    from datetime import UTC, datetime, timedelta
    from email.utils import format_datetime

    import requests

    from intake.msgraph.client import MAX_RETRY_WAIT, retry_after

    def answer(value: str | None) -> requests.Response:
        response = requests.Response()
        response.status_code = 429
        if value is not None:
            response.headers["Retry-After"] = value
        return response

    assert retry_after(answer("7"), 0) == 7.0
    assert retry_after(answer("86400"), 0) == MAX_RETRY_WAIT
    assert 25 <= retry_after(answer(format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)), 0) <= 30
    assert [retry_after(answer(None), n) for n in (0, 1, 2, 10)] == [1.0, 2.0, 4.0, 60.0]  # none given: 1, 2, 4 ... s


def held(ctx) -> list:
    from sqlalchemy import select

    from intake.store.models import QuarantineItem

    with ctx.sessions() as session:
        return [(q.source, q.key, json.loads(q.raw), q.reason) for q in session.scalars(select(QuarantineItem).order_by(QuarantineItem.id))]


def red(ctx) -> str | None:
    from intake.ops.alerts import is_failing

    with ctx.sessions() as session:
        state = session.get(SourceState, "graph:support/inbox")
        return state.last_error if is_failing(state) else None


def test_a_message_graph_will_not_serve_holds_up_nothing_and_is_quarantined_after_5_tries(tmp_path, idp, graph):
    """The oldest message answers 500 for its MIME every time: the newer ones are taken at
    once; after 5 passes it is held in quarantine (what Graph says of it) and blocks nothing."""
    ctx = context(tmp_path, [account(idp, graph)])
    poison = graph.deliver(MAILBOX, mail("cannot be read", sender="zhao.lei@kehu.cn"))
    for i in range(2):
        graph.deliver(MAILBOX, mail(f"newer {i}"))
    graph.fail(poison, "$value", 500, "ErrorInternalServerError")
    source = source_for(ctx)

    assert source.run_once() == 2  # the others of the round are taken
    assert subjects(ctx) == ["newer 0", "newer 1"]
    assert "ErrorInternalServerError" in red(ctx) and "try 1 of 5" in red(ctx)
    for _ in range(3):
        assert source.run_once() == 0 and held(ctx) == []
    assert source.run_once() == 0  # the 5th failure: held
    [(where, key, properties, reason)] = held(ctx)
    assert (where, key) == ("graph:support/inbox", poison + "#unfetched")
    assert properties["subject"] == "cannot be read" and properties["from"]["emailAddress"]["address"] == "zhao.lei@kehu.cn"
    assert "500 ErrorInternalServerError" in reason and "not the mail" in reason
    assert graph.in_folder(MAILBOX, "inbox") != []  # still in the mailbox: nothing deleted

    graph.deliver(MAILBOX, mail("after it"))
    fetches = graph.count("GET", "/$value")
    assert source.run_once() == 1 and subjects(ctx) == ["after it", "newer 0", "newer 1"]
    assert graph.count("GET", "/$value") == fetches + 1  # the held one is not asked for again
    assert red(ctx) is None and len(held(ctx)) == 1

    graph.fail(poison, "$value", 0, "")  # Graph serves it again; moved out and back, it is taken as itself
    graph.move(MAILBOX, poison, "archive")
    graph.move(MAILBOX, poison, "inbox")
    assert source.run_once() == 1 and "cannot be read" in subjects(ctx)


def test_a_message_whose_move_is_refused_is_left_with_its_ticket_after_5_tries(tmp_path, idp, graph):
    ctx = context(tmp_path, [account(idp, graph)])
    stuck = graph.deliver(MAILBOX, mail("cannot be moved"))
    graph.deliver(MAILBOX, mail("moves fine"))
    graph.fail(stuck, "move", 403, "ErrorAccessDenied")
    source = source_for(ctx)

    assert source.run_once() == 1 and subjects(ctx) == ["cannot be moved", "moves fine"]  # committed, one moved
    assert "ErrorAccessDenied" in red(ctx)
    for _ in range(3):
        assert source.run_once() == 0
    assert source.run_once() == 1  # let go of: still in the inbox, with its ticket
    assert graph.in_folder(MAILBOX, "inbox") and subjects(ctx) == ["cannot be moved", "moves fine"]  # never twice
    moves = graph.count("POST", "/move")
    graph.deliver(MAILBOX, mail("after it"))
    assert source.run_once() == 1 and graph.count("POST", "/move") == moves + 1 and red(ctx) is None


def test_a_shut_way_counts_against_no_message(tmp_path, idp, graph):
    """502 on every fetch (a gateway down, not a bad message): nothing is quarantined however long it lasts."""
    ctx = context(tmp_path, [account(idp, graph)])
    waiting = graph.deliver(MAILBOX, mail("waits for the gateway"))
    graph.fail(waiting, "$value", 502, "BadGateway")
    source = source_for(ctx)
    for _ in range(6):
        assert source.run_once() == 0
    assert held(ctx) == [] and "502" in red(ctx)
    graph.fail(waiting, "$value", 0, "")
    assert source.run_once() == 1 and subjects(ctx) == ["waits for the gateway"]


def test_a_delta_item_without_an_id_is_held_at_once_and_the_rest_taken(tmp_path, idp, graph):
    ctx = context(tmp_path, [account(idp, graph)])
    graph.idless.append({"@odata.type": "#microsoft.graph.message", "receivedDateTime": "2026-01-02T03:04:05Z"})
    graph.deliver(MAILBOX, mail("fine"))
    source = source_for(ctx)
    assert source.run_once() == 1 and subjects(ctx) == ["fine"]
    [(_, key, item, reason)] = held(ctx)
    assert key.startswith("no-id:") and item["receivedDateTime"] == "2026-01-02T03:04:05Z" and "without an id" in reason
    assert source.run_once() == 0 and len(held(ctx)) == 1  # listed again, held once
