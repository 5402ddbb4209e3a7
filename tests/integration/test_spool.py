"""The form spool source on a real folder: taken at start, watched while running, moved to done/
or rejected/ with a reason, never deleted, sink failures retried."""
from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest

from intake.forms import now_iso, parse_submission
from intake.message import UnparseableMessage
from intake.sources.base import Result, SourceRef
from intake.sources.spool import SpoolSource, write_spool_file


class RecordingSink:
    """Stands in for the pipeline: parses like it, answers duplicate for a ref seen before."""

    def __init__(self, fail_times: int = 0) -> None:
        self.taken: list[tuple[bytes, SourceRef]] = []
        self.tickets: dict[tuple[str, str], str] = {}
        self.reports: list[tuple[str, int | None, str | None]] = []
        self.fail_times = fail_times
        self.lock = threading.Lock()

    def take(self, raw: bytes, ref: SourceRef) -> Result:
        with self.lock:
            if self.fail_times:
                self.fail_times -= 1
                raise RuntimeError("database is down")
            self.taken.append((raw, ref))
            if (ref.source, ref.key) in self.tickets:
                return Result("duplicate", self.tickets[(ref.source, ref.key)])
            try:
                parse_submission(raw)
            except UnparseableMessage as exc:
                return Result("quarantined", reason=exc.reason)
            ticket = f"T-{len(self.tickets) + 1}"
            self.tickets[(ref.source, ref.key)] = ticket
            return Result("opened", ticket)

    def report(self, source: str, *, backlog: int | None = None, error: str | None = None) -> None:
        self.reports.append((source, backlog, error))


def submission(n: int = 1, **extra) -> dict:
    return {"name": "李娜", "email": f"li.na{n}@kehu.example.cn", "message": f"第{n}个问题：系统登录很慢。",
            "submitted_at": now_iso(), **extra}


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


def test_files_dropped_while_stopped_are_taken_at_start_and_stop_is_prompt(spool):
    """Submissions written while the daemon was down are taken when it starts; stop returns within a second."""
    written = [write_spool_file(spool, submission(n)) for n in range(3)]
    other = spool / "crm-export-0001.json"  # another system's file, same format, extra fields
    other.write_text(json.dumps(submission(9, crm_id="A-17"), ensure_ascii=False), "utf-8")
    for p in [*written, other]:
        age(p)
    sink = RecordingSink()
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
    assert [ref for _, ref in sink.taken] == [SourceRef("spool", p.name, "form") for p in [*written, other]]
    assert ("spool", 0, None) in sink.reports


def test_file_dropped_while_running_is_taken_after_settling(spool):
    """The watchdog wakes the loop: a new file is taken within seconds, not at the next rescan."""
    sink = RecordingSink()
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
    assert len(sink.taken) == 1


def test_fresh_file_waits_until_it_stops_changing(spool):
    """A file copied in without tmp/+rename is left alone until settled (it may be half written)."""
    path = spool / "half.json"
    path.write_text('{"name": "王', "utf-8")
    sink = RecordingSink()
    source = SpoolSource(spool, sink, settle_seconds=5)
    assert source.run_once() == 0 and sink.taken == [] and path.exists()
    path.write_text(json.dumps(submission(), ensure_ascii=False), "utf-8")
    age(path)
    assert source.run_once() == 1 and files(spool / "done") == ["half.json"]


def test_invalid_files_go_to_rejected_with_a_reason_and_nothing_is_deleted(spool):
    """Not JSON, or fields missing: moved unchanged to rejected/ with <name>.reason.txt naming the problem."""
    broken = spool / "broken.json"
    broken.write_bytes(b"{this is not json")
    missing = spool / "missing.json"
    missing.write_text(json.dumps({"name": "", "message": "", "email": "nope"}), "utf-8")
    good = write_spool_file(spool, submission())
    for p in (broken, missing, good):
        age(p)
    originals = {p.name: p.read_bytes() for p in (broken, missing, good)}
    sink = RecordingSink()
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


def test_temp_dot_and_other_files_are_ignored(spool):
    (spool / "tmp").mkdir()
    for p in (spool / "tmp" / "x.json", spool / ".partial.json", spool / "notes.txt"):
        p.write_text(json.dumps(submission()), "utf-8")
        age(p)
    sink = RecordingSink()
    assert SpoolSource(spool, sink).run_once() == 0 and sink.taken == []
    assert files(spool / "tmp") == ["x.json"] and files(spool) == [".partial.json", "notes.txt"]


def test_sink_failure_keeps_the_file_for_the_next_scan(spool):
    """The database down: the file stays, the error is reported, the next scan takes it."""
    path = write_spool_file(spool, submission())
    age(path)
    sink = RecordingSink(fail_times=1)
    source = SpoolSource(spool, sink)
    assert source.run_once() == 0 and path.exists()
    assert sink.reports[-1][0] == "spool" and "database is down" in sink.reports[-1][2]
    assert source.run_once() == 1 and files(spool / "done") == [path.name]


def test_a_same_named_file_in_done_is_never_replaced(spool):
    (spool / "done").mkdir()
    (spool / "done" / "same.json").write_text("earlier", "utf-8")
    (spool / "same.json").write_text(json.dumps(submission(), ensure_ascii=False), "utf-8")
    age(spool / "same.json")
    assert SpoolSource(spool, RecordingSink()).run_once() == 1
    assert files(spool / "done") == ["same.json", "same.json.1"]
    assert (spool / "done" / "same.json").read_text("utf-8") == "earlier"


def test_two_takers_of_one_file_get_one_ticket(spool):
    """The web endpoint and the watcher reaching for the same file: one goes first, the
    other gets the same ticket (duplicate) and the file is moved once."""
    path = write_spool_file(spool, submission())
    raw = path.read_bytes()
    sink = RecordingSink()
    results: list[Result | None] = []
    threads = [threading.Thread(target=lambda: results.append(SpoolSource(spool, sink).take_file(path, raw))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.outcome for r in results) == ["duplicate", "duplicate", "duplicate", "opened"]
    assert {r.ticket for r in results} == {"T-1"}
    assert files(spool / "done") == [path.name] and files(spool) == []
