"""The form spool source on a real folder: taken at start, watched while running, moved to done/
or rejected/ with a reason, never deleted, sink failures retried."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from intake.inbound.form import now_iso
from intake.pipeline.runner import Pipeline
from intake.sources.base import Result, SourceRef
from intake.sources.spool import SpoolSource, write_spool_file
from intake.store.models import OutboxMail, QuarantineItem, SourceItem, Ticket


class FlakySink:
    """The real pipeline behind a switch that makes it fail like a database that is down."""

    def __init__(self, pipeline: Pipeline, fail_times: int = 0) -> None:
        self.pipeline = pipeline
        self.fail_times = fail_times
        self.reports: list[tuple[str, int | None, str | None]] = []

    def take(self, raw: bytes, ref: SourceRef) -> Result:
        if self.fail_times:
            self.fail_times -= 1
            raise RuntimeError("database is down")
        return self.pipeline.take(raw, ref)

    def report(self, source: str, *, backlog: int | None = None, error: str | None = None) -> None:
        self.reports.append((source, backlog, error))
        self.pipeline.report(source, backlog=backlog, error=error)


@pytest.fixture
def ctx(make_ctx, tmp_path):
    return make_ctx(f"sqlite:///{tmp_path / 'intake.db'}")


@pytest.fixture
def sink(ctx) -> FlakySink:
    return FlakySink(Pipeline(ctx))


def source_items(ctx) -> list[SourceItem]:
    with ctx.sessions() as s:
        return list(s.scalars(select(SourceItem).order_by(SourceItem.id)))


def tickets(ctx) -> list[Ticket]:
    with ctx.sessions() as s:
        found = list(s.scalars(select(Ticket).order_by(Ticket.id)))
        for t in found:
            _ = (t.customer, t.messages)  # load while the session is open
        return found


def submission(n: int = 1, **extra) -> dict:
    return {"name": "李娜", "email": f"li.na{n}@kehu.example.cn", "message": f"第{n}个问题：系统登录很慢。", "submitted_at": now_iso(), **extra}


def age(path: Path, seconds: float = 10) -> None:
    """Make a file look as if it was written `seconds` ago (settled)."""
    t = time.time() - seconds
    os.utime(path, (t, t))


def files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_file()) if folder.exists() else []


def wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


@pytest.fixture
def spool(tmp_path) -> Path:
    folder = tmp_path / "spool"
    folder.mkdir()
    return folder


def test_write_spool_file_is_atomic_and_sortable(spool):
    """write_spool_file leaves one whole JSON file in the spool and nothing in tmp/."""
    paths = [write_spool_file(spool, submission(n)) for n in range(3)]
    assert files(spool) == sorted(p.name for p in paths) == [p.name for p in paths]
    assert files(spool / "tmp") == []
    assert json.loads(paths[0].read_text("utf-8"))["name"] == "李娜"


def test_files_dropped_while_stopped_are_taken_at_start_and_stop_is_prompt(spool, ctx, sink):
    """Submissions written while the daemon was down become tickets when it starts; stop returns within a second."""
    written = [write_spool_file(spool, submission(n)) for n in range(3)]
    other = spool / "crm-export-0001.json"  # another system's file, same format, extra fields
    other.write_text(json.dumps(submission(9, crm_id="A-17", phone="13912345678", company="某某贸易"), ensure_ascii=False), "utf-8")
    for p in [*written, other]:
        age(p)
    source = SpoolSource(spool, sink, rescan_seconds=60)
    stop = threading.Event()
    runner = threading.Thread(target=source.run_forever, args=(stop,))
    runner.start()
    try:
        wait_for(lambda: len(files(spool / "done")) == 4)
    finally:
        stop.set()
        started = time.monotonic()
        runner.join(timeout=5)
    assert not runner.is_alive() and time.monotonic() - started < 1.5
    assert files(spool) == [] and files(spool / "done") == sorted(p.name for p in [*written, other])
    items = source_items(ctx)
    assert [(i.source, i.key.split("#")[0], i.outcome) for i in items] == [("spool", p.name, "opened") for p in [*written, other]]
    found = tickets(ctx)
    assert len(found) == 4 and {t.channel for t in found} == {"form"}
    crm = next(t for t in found if t.customer.email == "li.na9@kehu.example.cn")
    assert crm.customer.phone == "13912345678" and crm.customer.company == "某某贸易" and crm.customer.name == "李娜"
    with ctx.sessions() as s:
        assert sorted(o.rcpt_to for o in s.scalars(select(OutboxMail).where(OutboxMail.kind == "ack"))) == sorted(
            f"li.na{n}@kehu.example.cn" for n in (0, 1, 2, 9)
        )
    assert ("spool", 0, None) in sink.reports


def test_file_dropped_while_running_is_taken_after_settling(spool, ctx, sink):
    """The watchdog wakes the loop: a new file is taken within seconds, not at the next rescan."""
    source = SpoolSource(spool, sink, rescan_seconds=600, settle_seconds=0.3)
    stop = threading.Event()
    runner = threading.Thread(target=source.run_forever, args=(stop,))
    runner.start()
    try:
        time.sleep(0.3)
        path = write_spool_file(spool, submission())
        wait_for(lambda: files(spool / "done") == [path.name], timeout=5)
    finally:
        stop.set()
        runner.join(timeout=5)
    assert len(tickets(ctx)) == 1


def test_fresh_file_waits_until_it_stops_changing(spool, ctx, sink):
    """The watcher leaves a file copied in without tmp/+rename alone until settled (it may be
    half written); `run --once` (run_once) takes what is there."""
    path = spool / "half.json"
    path.write_text('{"name": "王', "utf-8")
    source = SpoolSource(spool, sink, settle_seconds=3, rescan_seconds=0.2)
    stop = threading.Event()
    runner = threading.Thread(target=source.run_forever, args=(stop,))
    runner.start()
    try:
        time.sleep(1.0)  # several rescans while the file is fresh
        assert source_items(ctx) == [] and path.exists()
        path.write_text(json.dumps(submission(), ensure_ascii=False), "utf-8")  # the writer finishes
        wait_for(lambda: files(spool / "done") == ["half.json"], timeout=8)
    finally:
        stop.set()
        runner.join(timeout=5)
    assert len(tickets(ctx)) == 1
    fresh = write_spool_file(spool, submission(2))
    assert source.run_once() == 1 and files(spool / "done") == sorted(["half.json", fresh.name])


def test_invalid_files_go_to_rejected_with_a_reason_and_nothing_is_deleted(spool, ctx, sink):
    """Not JSON, or fields missing: quarantined by the pipeline, moved unchanged to rejected/
    with <name>.reason.txt naming the problem."""
    broken = spool / "broken.json"
    broken.write_bytes(b"{this is not json")
    missing = spool / "missing.json"
    missing.write_text(json.dumps({"name": "", "message": "", "email": "nope"}), "utf-8")
    good = write_spool_file(spool, submission())
    for p in (broken, missing, good):
        age(p)
    originals = {p.name: p.read_bytes() for p in (broken, missing, good)}
    assert SpoolSource(spool, sink).run_once() == 3
    rejected = spool / "rejected"
    assert files(rejected) == ["broken.json", "broken.json.reason.txt", "missing.json", "missing.json.reason.txt"]
    assert "not UTF-8 JSON" in (rejected / "broken.json.reason.txt").read_text("utf-8")
    reason = (rejected / "missing.json.reason.txt").read_text("utf-8")
    assert "name:" in reason and "message:" in reason and "email:" in reason
    assert files(spool / "done") == [good.name]
    for name, data in originals.items():
        place = spool / ("done" if name == good.name else "rejected") / name
        assert place.read_bytes() == data
    with ctx.sessions() as s:  # the pipeline kept them too, for `intake quarantine retry`
        assert sorted((q.key.split("#")[0], q.raw) for q in s.scalars(select(QuarantineItem))) == sorted(
            (n, originals[n]) for n in ("broken.json", "missing.json")
        )
    assert len(tickets(ctx)) == 1


def test_stale_temp_files_from_a_crashed_writer_are_moved_aside_not_deleted(spool, sink):
    (spool / "tmp").mkdir()
    stale = spool / "tmp" / ".20261123T010203.000000Z-00.json.123.456.tmp"
    stale.write_bytes(b'{"name": "half')
    age(stale, 7200)
    fresh = spool / "tmp" / "being-written.json"
    fresh.write_bytes(b'{"name": "in progress')
    SpoolSource(spool, sink).prepare()
    assert files(spool / "tmp") == ["being-written.json"]
    kept = spool / "rejected" / "20261123T010203.000000Z-00.json.123.456.tmp"
    assert kept.read_bytes() == b'{"name": "half' and "crashed" in kept.with_name(kept.name + ".reason.txt").read_text()


def test_temp_dot_and_other_files_are_ignored(spool, ctx, sink):
    (spool / "tmp").mkdir()
    for p in (spool / "tmp" / "x.json", spool / ".partial.json", spool / "notes.txt"):
        p.write_text(json.dumps(submission()), "utf-8")
        age(p)
    assert SpoolSource(spool, sink).run_once() == 0 and source_items(ctx) == []
    assert files(spool / "tmp") == ["x.json"] and files(spool) == [".partial.json", "notes.txt"]


def test_sink_failure_keeps_the_file_for_the_next_scan(spool, ctx, sink):
    """The database down: the file stays, the error is reported, the next scan takes it."""
    path = write_spool_file(spool, submission())
    age(path)
    sink.fail_times = 1
    source = SpoolSource(spool, sink)
    assert source.run_once() == 0 and path.exists()
    assert sink.reports[-1][0] == "spool" and "database is down" in sink.reports[-1][2]
    assert source.run_once() == 1 and files(spool / "done") == [path.name] and len(tickets(ctx)) == 1


def test_a_same_named_file_in_done_is_never_replaced(spool, sink):
    (spool / "done").mkdir()
    (spool / "done" / "same.json").write_text("earlier", "utf-8")
    (spool / "same.json").write_text(json.dumps(submission(), ensure_ascii=False), "utf-8")
    age(spool / "same.json")
    assert SpoolSource(spool, sink).run_once() == 1
    assert files(spool / "done") == ["same.json", "same.json.1"]
    assert (spool / "done" / "same.json").read_text("utf-8") == "earlier"


def test_a_file_offered_again_after_a_crash_is_one_ticket(spool, ctx, sink):
    """Crash after the commit, before the move: the file is offered again at start and answered duplicate."""
    path = write_spool_file(spool, submission())
    age(path)
    first = sink.take(path.read_bytes(), SourceRef("spool", path.name, "form"))  # ... and then the crash
    assert first.outcome == "opened" and path.exists()
    source = SpoolSource(spool, sink)
    assert source.run_once() == 1 and files(spool / "done") == [path.name]
    assert [t.ref for t in tickets(ctx)] == [first.ticket]


def test_two_takers_of_one_file_get_one_ticket(spool, make_ctx, db_url):
    """The web endpoint and the watcher reaching for the same file (two source objects, one
    process; and the same on PostgreSQL): one goes first, the others get the same ticket
    as duplicate, and the file is moved once."""
    ctx = make_ctx(db_url)
    pipeline = Pipeline(ctx)
    path = write_spool_file(spool, submission())
    raw = path.read_bytes()
    results: list[Result | None] = []
    threads = [threading.Thread(target=lambda: results.append(SpoolSource(spool, pipeline).take_file(path, raw))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.outcome for r in results) == ["duplicate", "duplicate", "duplicate", "opened"]
    assert len({r.ticket for r in results}) == 1
    assert files(spool / "done") == [path.name] and files(spool) == []
    assert len(tickets(ctx)) == 1


def test_a_file_name_used_again_for_another_submission_is_a_new_item(ctx, tmp_path):
    """Another system reusing "submission.json": the second file is its own ticket, not a duplicate."""
    import json

    from intake.pipeline.runner import Pipeline
    from intake.sources.spool import SpoolSource

    spool = tmp_path / "reuse"
    source = SpoolSource(spool, Pipeline(ctx))
    source.prepare()
    first = {"name": "Alice", "email": "alice@example.org", "message": "My order 1001 never arrived."}
    second = {"name": "Bob", "email": "bob@example.org", "message": "Please send an invoice for order 2002."}
    for submission in (first, second):
        (spool / "submission.json").write_text(json.dumps(submission), encoding="utf-8")
        assert source.run_once() == 1
    assert len(tickets(ctx)) == 2
