"""The IMAP source against a real private Dovecot: exactly once, IDLE, reconnects, TLS."""

from __future__ import annotations

import threading
import time

import pytest

from intake.pipeline.runner import groups_of
from intake.sources.base import Result, SourceRef
from intake.sources.imap import ImapAccount, ImapSource
from tests.servers import DovecotServer


class RecordingSink:
    """A pipeline stand-in: keeps what it was given; can fail like a database that is down."""

    def __init__(self, fail_on_take: int | None = None):
        self.takes: list[tuple[bytes, SourceRef]] = []
        self.reports: list[dict] = []
        self.fail_on_take = fail_on_take  # 1-based number of the batch whose take raises, once
        self._calls = 0
        self._cond = threading.Condition()

    def take_many(self, items: list[tuple[bytes, SourceRef]], committed=None) -> list[Result]:
        """In groups, each all or nothing, like the pipeline's one transaction a group."""
        with self._cond:
            self._calls += 1
            if self._calls == self.fail_on_take:
                raise RuntimeError("database is down")
        results: list[Result] = []
        for group in groups_of(items):
            with self._cond:
                self.takes.extend(group)
                self._cond.notify_all()
                taken = [Result("opened", ticket=f"T-{len(self.takes) - len(group) + i + 1}") for i in range(len(group))]
            results.extend(taken)
            if committed is not None and committed(group, taken) is False:
                break
        return results

    def report(self, source: str, *, backlog: int | None = None, error: str | None = None) -> None:
        with self._cond:
            self.reports.append({"source": source, "backlog": backlog, "error": error})
            self._cond.notify_all()

    def wait(self, predicate, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(predicate, timeout)

    @property
    def raws(self) -> list[bytes]:
        return [raw for raw, _ in self.takes]

    @property
    def errors(self) -> list[str]:
        return [r["error"] for r in self.reports if r["error"]]


def message(n: int | str, body: str = "请帮忙查看订单") -> bytes:
    return (
        f"From: Kehu {n} <kehu{n}@example.com>\r\nTo: support@example.com\r\n"
        f"Subject: order {n}\r\nMessage-ID: <m{n}.{time.time_ns()}@example.com>\r\n"
        f"Content-Type: text/plain; charset=utf-8\r\n\r\n{body} {n}\r\n"
    ).encode()


def account(dovecot: DovecotServer, security: str = "plain", **overrides) -> ImapAccount:
    values = dict(
        name="support",
        host=dovecot.host,
        port=dovecot.tls_port if security == "tls" else dovecot.port,
        security=security,
        username="support",
        password="secret",
        mailboxes=["INBOX"],
        ca_file=dovecot.ca_file,
        connect_timeout=5,
    )
    values.update(overrides)
    return ImapAccount(**values)


@pytest.fixture
def stop():
    return threading.Event()


def start_forever(source: ImapSource) -> threading.Thread:
    thread = threading.Thread(target=source.run_forever, daemon=True)
    thread.start()
    return thread


def stop_after_each_take(sink: RecordingSink, stop: threading.Event) -> None:
    """The sink sets `stop` once each take_many has returned: a stop asked mid-backlog."""
    take_many = sink.take_many

    def take_then_stop(items, committed=None):
        results = take_many(items, committed)
        stop.set()
        return results

    sink.take_many = take_then_stop


def wait_until_idle(sink: RecordingSink, timeout: float = 5) -> None:
    """After the first successful pass the source enters IDLE a moment later."""
    assert sink.wait(lambda: any(r["error"] is None for r in sink.reports), timeout)
    time.sleep(0.3)


def test_takes_every_message_then_moves_it_to_processed(dovecot: DovecotServer, stop):
    """run_once takes each waiting message once, in UID order, with key UIDVALIDITY:UID, and moves it."""
    raws = [message(i) for i in range(5)]
    dovecot.append_many("support", "INBOX", raws)
    uids = dovecot.list_uids("support", "INBOX")
    uidvalidity = dovecot.uidvalidity("support", "INBOX")
    sink = RecordingSink()
    source = ImapSource(account(dovecot), "INBOX", sink, stop)
    try:
        assert source.run_once() == 5
        assert source.run_once() == 0
    finally:
        source.close()
    assert sink.raws == raws
    assert [ref.key for _, ref in sink.takes] == [f"{uidvalidity}:{uid}" for uid in uids]
    assert {(ref.source, ref.channel) for _, ref in sink.takes} == {("imap:support/INBOX", "email")}
    assert dovecot.list_uids("support", "INBOX") == []
    assert [m["raw"] for m in dovecot.fetch_all("support", "Processed")] == raws
    assert sink.reports[-1] == {"source": "imap:support/INBOX", "backlog": 0, "error": None}


def test_message_already_seen_by_another_client_is_taken_and_seen_unchanged(dovecot: DovecotServer, stop):
    """\\Seen is not a criterion: a read message is taken; PEEK leaves an unread one unread."""
    read, unread = message("read"), message("unread")
    dovecot.append("support", "INBOX", read, flags=(b"\\Seen",))
    dovecot.append("support", "INBOX", unread)
    sink = RecordingSink()
    source = ImapSource(account(dovecot), "INBOX", sink, stop)
    try:
        assert source.run_once() == 2
    finally:
        source.close()
    assert sink.raws == [read, unread]
    flags = {m["raw"]: m["flags"] for m in dovecot.fetch_all("support", "Processed")}
    assert b"\\Seen" in flags[read]
    assert b"\\Seen" not in flags[unread]


def test_flag_mode_flags_and_never_deletes(dovecot: DovecotServer, stop):
    """on_done="flag": messages stay in the mailbox with $IntakeDone and are not offered again."""
    dovecot.append_many("support", "INBOX", [message(i) for i in range(3)])
    sink = RecordingSink()
    source = ImapSource(account(dovecot, on_done="flag"), "INBOX", sink, stop)
    try:
        assert source.run_once() == 3
        assert source.run_once() == 0
        dovecot.append("support", "INBOX", message("later"))
        assert source.run_once() == 1
    finally:
        source.close()
    kept = dovecot.fetch_all("support", "INBOX")
    assert len(kept) == 4
    assert all(b"$IntakeDone" in m["flags"] and b"\\Deleted" not in m["flags"] for m in kept)
    assert dovecot.fetch_all("support", "Processed") == []
    assert len(sink.takes) == 4


def test_sink_failure_moves_only_what_was_committed(dovecot: DovecotServer, stop):
    """Batches of two; the sink raises on the 2nd batch: 1-2 are moved, 3-5 stay and are taken on the next pass."""
    raws = [message(i) for i in range(5)]
    dovecot.append_many("support", "INBOX", raws)
    sink = RecordingSink(fail_on_take=2)
    source = ImapSource(account(dovecot, batch_size=2), "INBOX", sink, stop)
    try:
        assert source.run_once() == 2
        assert [m["raw"] for m in dovecot.fetch_all("support", "Processed")] == raws[:2]
        assert [m["raw"] for m in dovecot.fetch_all("support", "INBOX")] == raws[2:]
        assert sink.errors and "database is down" in sink.errors[-1]
        assert source.run_once() == 3
    finally:
        source.close()
    assert sink.raws == raws
    assert len({ref.key for _, ref in sink.takes}) == 5
    assert dovecot.list_uids("support", "INBOX") == []
    assert sink.reports[-1]["error"] is None and sink.reports[-1]["backlog"] == 0


def test_uidvalidity_change_offers_messages_again_under_new_keys(dovecot: DovecotServer, stop, monkeypatch):
    """Committed but not moved (crash), then UIDVALIDITY changes: the same bytes come again with new keys."""
    raws = [message(i) for i in range(3)]
    dovecot.append_many("support", "INBOX", raws)
    sink = RecordingSink()

    def crash(self, client, uids):
        raise ConnectionResetError("killed between commit and move")

    with monkeypatch.context() as m:
        m.setattr(ImapSource, "_let_go", crash)
        first = ImapSource(account(dovecot), "INBOX", sink, stop)
        first.run_once()
        first.close()
    assert sink.raws == raws
    old_keys = [ref.key for _, ref in sink.takes]

    new_validity = dovecot.reset_uidvalidity("support", "INBOX")
    second = ImapSource(account(dovecot), "INBOX", sink, stop)
    try:
        assert second.run_once() == 3
    finally:
        second.close()
    again = sink.takes[3:]
    assert [raw for raw, _ in again] == raws
    new_keys = [ref.key for _, ref in again]
    assert all(key.startswith(f"{new_validity}:") for key in new_keys)
    assert not set(new_keys) & set(old_keys)
    assert dovecot.list_uids("support", "INBOX") == []


def test_batches_take_everything_in_order(dovecot: DovecotServer, stop):
    """With batch_size=3, ten messages go through in four batches, all moved, in order."""
    raws = [message(i) for i in range(10)]
    dovecot.append_many("support", "INBOX", raws)
    sink = RecordingSink()
    source = ImapSource(account(dovecot, batch_size=3), "INBOX", sink, stop)
    try:
        assert source.run_once() == 10
    finally:
        source.close()
    assert sink.raws == raws
    assert [m["raw"] for m in dovecot.fetch_all("support", "Processed")] == raws


def _count_size_fetches(monkeypatch) -> list[int]:
    """How many UIDs each RFC822.SIZE FETCH of the source asks for, in order."""
    from imapclient import IMAPClient

    asked: list[int] = []
    fetch = IMAPClient.fetch

    def counted(self, messages, data, *args, **kwargs):
        if "RFC822.SIZE" in data:
            asked.append(len(messages))
        return fetch(self, messages, data, *args, **kwargs)

    monkeypatch.setattr(IMAPClient, "fetch", counted)
    return asked


def test_sizes_are_asked_a_window_at_a_time_and_batches_run_across_windows(dovecot: DovecotServer, stop, monkeypatch):
    """The answer to one size FETCH is held at once: its length is bounded (SIZES_AT_ONCE),
    not the backlog's (8,000 waiting mails were megabytes of the daemon's peak memory);
    batches still fill across the windows, and the sizes are asked no further ahead than
    the batch in hand needs."""
    import intake.sources.imap as imap

    monkeypatch.setattr(imap, "SIZES_AT_ONCE", 4)
    asked = _count_size_fetches(monkeypatch)
    raws = [message(i) for i in range(10)]
    dovecot.append_many("support", "INBOX", raws)
    sink = RecordingSink()
    batches: list[int] = []
    take_many = sink.take_many

    def take(items, committed=None):
        batches.append(len(items))
        assert sum(asked) == min(-(-sum(batches) // 4) * 4, 10), "sizes asked a window ahead of the batch in hand"
        return take_many(items, committed)

    sink.take_many = take
    source = ImapSource(account(dovecot, batch_size=3), "INBOX", sink, stop)
    try:
        assert source.run_once() == 10
    finally:
        source.close()
    assert asked == [4, 4, 2] and batches == [3, 3, 3, 1]
    assert sink.raws == raws and [m["raw"] for m in dovecot.fetch_all("support", "Processed")] == raws


def test_bodies_held_at_once_stay_within_the_bound(dovecot: DovecotServer, stop, monkeypatch):
    """A body FETCH asks for no more mail than HELD_AT_ONCE bytes: what the daemon holds
    before the pipeline takes it follows the bound, not the batch size. (A message larger
    than the bound goes alone: test_imap_helpers.)"""
    from imapclient import IMAPClient

    import intake.sources.imap as imap

    raws = [message(i, body="请帮忙查看订单。" * 120) for i in range(6)]  # about 3 KB each
    monkeypatch.setattr(imap, "HELD_AT_ONCE", 2 * len(raws[0]) + 100)
    held: list[int] = []
    fetch = IMAPClient.fetch

    def counted(self, messages, data, *args, **kwargs):
        answer = fetch(self, messages, data, *args, **kwargs)
        if "BODY.PEEK[]" in data:
            held.append(sum(len(item[b"BODY[]"]) for item in answer.values()))
        return answer

    monkeypatch.setattr(IMAPClient, "fetch", counted)
    dovecot.append_many("support", "INBOX", raws)
    sink = RecordingSink()
    source = ImapSource(account(dovecot, batch_size=500), "INBOX", sink, stop)
    try:
        assert source.run_once() == 6
    finally:
        source.close()
    assert len(held) == 3 and all(size <= imap.HELD_AT_ONCE for size in held)
    assert sink.raws == raws


def test_a_message_expunged_before_its_size_is_asked_counts_as_gone_not_waiting(dovecot: DovecotServer, stop, monkeypatch):
    """Another client expunges a waiting message between the SEARCH and the size FETCH:
    nothing else is skipped, and the backlog reported at a stop leaves it out. (A guard on
    the count of what is left: the batch that asks for it finds it gone.)"""
    from imapclient import IMAPClient

    raws = [message(i) for i in range(5)]
    dovecot.append_many("support", "INBOX", raws)
    [_, second, *_] = dovecot.list_uids("support", "INBOX")
    fetch = IMAPClient.fetch
    expunged: list[int] = []

    def expunge_first(self, messages, data, *args, **kwargs):
        if "RFC822.SIZE" in data and not expunged:
            other = dovecot.client("support")
            other.select_folder("INBOX")
            other.delete_messages([second])
            other.expunge()
            other.logout()
            expunged.append(second)
        return fetch(self, messages, data, *args, **kwargs)

    monkeypatch.setattr(IMAPClient, "fetch", expunge_first)
    sink = RecordingSink()
    stop_after_each_take(sink, stop)
    source = ImapSource(account(dovecot, batch_size=2), "INBOX", sink, stop)
    try:
        assert source.run_once() == 1  # the first batch: the first message, and the second gone
    finally:
        source.close()
    assert expunged == [second] and sink.raws == raws[:1]
    assert [m["raw"] for m in dovecot.fetch_all("support", "INBOX")] == raws[2:]
    assert sink.reports[-1] == {"source": "imap:support/INBOX", "backlog": 3, "error": None}


def test_without_move_uid_expunge_removes_only_our_messages(dovecot: DovecotServer, stop):
    """No MOVE: COPY + \\Deleted + UID EXPUNGE of our UIDs; another client's \\Deleted message survives."""
    theirs = message("theirs")
    dovecot.append("support", "INBOX", theirs, flags=(b"\\Deleted", b"$IntakeDone"))
    raws = [message(i) for i in range(3)]
    dovecot.append_many("support", "INBOX", raws)
    sink = RecordingSink()
    source = ImapSource(account(dovecot), "INBOX", sink, stop)
    try:
        source._connected()
        source._can_move = False  # as on a server without RFC 6851
        assert source.run_once() == 3
    finally:
        source.close()
    assert [m["raw"] for m in dovecot.fetch_all("support", "INBOX")] == [theirs]
    assert [m["raw"] for m in dovecot.fetch_all("support", "Processed")] == raws


def test_without_move_or_uidplus_copies_and_flags_never_expunges(dovecot: DovecotServer, stop):
    """No MOVE, no UIDPLUS: copy to Processed and flag $IntakeDone; nothing is expunged or offered twice."""
    raws = [message(i) for i in range(2)]
    dovecot.append_many("support", "INBOX", raws)
    sink = RecordingSink()
    source = ImapSource(account(dovecot), "INBOX", sink, stop)
    try:
        source._connected()
        source._can_move = source._can_uidplus = False
        assert source.run_once() == 2
        assert source.run_once() == 0
    finally:
        source.close()
    inbox = dovecot.fetch_all("support", "INBOX")
    assert [m["raw"] for m in inbox] == raws
    assert all(b"$IntakeDone" in m["flags"] and b"\\Deleted" not in m["flags"] for m in inbox)
    assert [m["raw"] for m in dovecot.fetch_all("support", "Processed")] == raws


@pytest.mark.parametrize("security", ["tls", "starttls"])
def test_tls_and_starttls_connect_with_the_test_ca(dovecot: DovecotServer, stop, security: str):
    """Both TLS flavours verify the server against the test CA and take mail."""
    dovecot.append("support", "INBOX", message(security))
    sink = RecordingSink()
    source = ImapSource(account(dovecot, security), "INBOX", sink, stop)
    try:
        assert source.run_once() == 1
    finally:
        source.close()
    assert sink.errors == []


def test_tls_without_the_ca_is_refused_and_reported(dovecot: DovecotServer, stop):
    """Without the test CA the self-signed certificate fails verification; the error is reported, not raised."""
    dovecot.append("support", "INBOX", message("unverified"))
    sink = RecordingSink()
    source = ImapSource(account(dovecot, "tls", ca_file=None), "INBOX", sink, stop)
    assert source.run_once() == 0
    assert sink.takes == []
    assert "CERTIFICATE_VERIFY_FAILED" in sink.errors[-1]


def test_idle_takes_a_new_message_within_about_a_second(dovecot: DovecotServer, stop):
    """While run_forever idles, an appended message is taken within ~1 s and moved."""
    sink = RecordingSink()
    source = ImapSource(account(dovecot), "INBOX", sink, stop)
    thread = start_forever(source)
    try:
        wait_until_idle(sink)
        raw = message("pushed")
        t0 = time.monotonic()
        dovecot.append("support", "INBOX", raw)
        assert sink.wait(lambda: len(sink.takes) == 1, timeout=5)
        latency = time.monotonic() - t0
        assert sink.raws == [raw]
        assert latency < 1.5, f"took {latency:.2f}s"
        assert _eventually(lambda: dovecot.list_uids("support", "INBOX") == [])
    finally:
        stop.set()
        thread.join(5)
    assert not thread.is_alive()


def test_mail_arriving_while_the_source_works_is_never_left_waiting(dovecot: DovecotServer, stop):
    """Appends racing with searches, moves and IDLE: each of 60 messages is taken once, within
    seconds of the last append (a missed EXISTS would leave one waiting for idle_timeout)."""
    sink = RecordingSink()
    source = ImapSource(account(dovecot, idle_timeout=120, batch_size=7), "INBOX", sink, stop)
    thread = start_forever(source)
    raws = [message(i) for i in range(60)]
    try:
        wait_until_idle(sink)
        with dovecot.client("support") as writer:
            for i, raw in enumerate(raws):
                writer.append("INBOX", raw)
                time.sleep(0.002 * (i % 7))
        assert sink.wait(lambda: len(sink.takes) == 60, timeout=5), f"{len(sink.takes)} of 60 taken"
        assert sink.raws == raws  # in arrival (UID) order
        assert len({ref.key for _, ref in sink.takes}) == 60
        assert _eventually(lambda: dovecot.list_uids("support", "INBOX") == [])
    finally:
        stop.set()
        thread.join(5)
    assert not thread.is_alive()


def test_polling_without_idle_takes_new_mail_each_interval(dovecot: DovecotServer, stop):
    """idle=False: the source polls every poll_interval and takes what arrived."""
    sink = RecordingSink()
    source = ImapSource(account(dovecot, idle=False, poll_interval=0.3), "INBOX", sink, stop)
    thread = start_forever(source)
    try:
        wait_until_idle(sink)
        for i in range(2):
            dovecot.append("support", "INBOX", message(f"polled {i}"))
            assert sink.wait(lambda i=i: len(sink.takes) == i + 1, timeout=3)
    finally:
        stop.set()
        thread.join(5)
    assert not thread.is_alive()
    assert dovecot.list_uids("support", "INBOX") == []


def test_kick_during_idle_reconnects_and_loses_nothing(dovecot: DovecotServer, stop):
    """The connection is dropped during IDLE: the error is reported, the source reconnects, and
    everything that arrived meanwhile is taken exactly once."""
    sink = RecordingSink()
    source = ImapSource(account(dovecot), "INBOX", sink, stop)
    thread = start_forever(source)
    try:
        wait_until_idle(sink)
        dovecot.kick("support")
        raws = [message(i) for i in range(3)]
        dovecot.append_many("support", "INBOX", raws)
        assert sink.wait(lambda: len(sink.takes) == 3, timeout=10), sink.reports
        assert sink.errors, "the drop was not noticed"
        more = message("after reconnect")
        dovecot.append("support", "INBOX", more)
        assert sink.wait(lambda: len(sink.takes) == 4, timeout=5)
        assert sink.raws == raws + [more]
        assert _eventually(lambda: dovecot.list_uids("support", "INBOX") == [])
    finally:
        stop.set()
        thread.join(5)
    assert not thread.is_alive()


def test_server_restart_during_idle_reconnects(dovecot: DovecotServer, stop):
    """Dovecot goes down during IDLE and comes back: the source reconnects with backoff and takes new mail."""
    sink = RecordingSink()
    source = ImapSource(account(dovecot), "INBOX", sink, stop)
    thread = start_forever(source)
    try:
        wait_until_idle(sink)
        dovecot.stop()
        assert sink.wait(lambda: len(sink.errors) >= 1, timeout=5)
        time.sleep(1.5)  # at least one reconnect attempt fails while it is down
        dovecot.start()
        raw = message("back")
        dovecot.append("support", "INBOX", raw)
        assert sink.wait(lambda: len(sink.takes) == 1, timeout=10), sink.reports
        assert sink.raws == [raw]
        assert len(sink.errors) >= 2
    finally:
        stop.set()
        thread.join(5)
    assert not thread.is_alive()


def test_run_once_after_a_server_restart_reconnects_at_once(dovecot: DovecotServer, stop):
    """A connection kept between two run_once calls died with the server: the next call
    reconnects and takes the mail, without reporting an error."""
    sink = RecordingSink()
    source = ImapSource(account(dovecot), "INBOX", sink, stop)
    try:
        assert source.run_once() == 0
        dovecot.stop()
        dovecot.start()
        dovecot.append("support", "INBOX", message("after restart"))
        assert source.run_once() == 1
    finally:
        source.close()
    assert sink.errors == []


def test_stop_during_a_batch_finishes_the_batch_in_hand_and_moves_only_taken_ones(dovecot: DovecotServer, stop):
    """Batches of two; stop is set while the 1st batch is being taken: 2 are taken and moved, 3 stay for next time."""
    raws = [message(i) for i in range(5)]
    dovecot.append_many("support", "INBOX", raws)
    sink = RecordingSink()
    stop_after_each_take(sink, stop)
    source = ImapSource(account(dovecot, batch_size=2), "INBOX", sink, stop)
    try:
        assert source.run_once() == 2
    finally:
        source.close()
    assert [m["raw"] for m in dovecot.fetch_all("support", "Processed")] == raws[:2]
    assert [m["raw"] for m in dovecot.fetch_all("support", "INBOX")] == raws[2:]
    assert sink.reports[-1] == {"source": "imap:support/INBOX", "backlog": 3, "error": None}


def test_stop_ends_run_forever_within_two_seconds(dovecot: DovecotServer, stop):
    """Setting stop while the source idles ends run_forever in under 2 s and logs out."""
    sink = RecordingSink()
    source = ImapSource(account(dovecot), "INBOX", sink, stop)
    thread = start_forever(source)
    wait_until_idle(sink)
    t0 = time.monotonic()
    stop.set()
    thread.join(5)
    assert not thread.is_alive()
    assert time.monotonic() - t0 < 2
    assert source._client is None


def test_wrong_password_is_reported_with_backoff_not_a_crash(dovecot: DovecotServer, stop):
    """A refused login is reported (password masked) and retried after growing delays; stop still ends it."""
    sink = RecordingSink()
    source = ImapSource(account(dovecot, password="wrong-pw"), "INBOX", sink, stop)
    thread = start_forever(source)
    try:
        time.sleep(2.6)  # attempts at 0 s, after ~1 s, after ~2 s more
        assert thread.is_alive()
        errors = list(sink.errors)
        assert 2 <= len(errors) <= 3, errors
        assert all("uthentication" in e for e in errors)
        assert not any("wrong-pw" in e for e in errors)
        assert sink.takes == []
        assert source.backoff.failures == len(errors)
    finally:
        t0 = time.monotonic()
        stop.set()
        thread.join(5)
    assert not thread.is_alive() and time.monotonic() - t0 < 1


def _eventually(check, timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()
