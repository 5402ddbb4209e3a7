"""The pipeline's worker processes (intake/pipeline/pool.py) on a real database: they
parse and classify, the daemon's process writes; and SQLite's turn lock for its threads."""

from __future__ import annotations

import os
import threading
import time

import pytest
from sqlalchemy import select

from intake.pipeline.case import Quarantine
from intake.pipeline.pool import IN_FLIGHT, PipelinePool
from intake.pipeline.prepare import Prepared
from intake.pipeline.runner import COMMIT_GROUP, Pipeline
from intake.pipeline.worker import prepare_group
from intake.sources.base import Result, SourceRef
from intake.store.models import OutboxMail, QuarantineItem, SourceItem, Ticket
from tests.integration.test_pipeline import mail

KILLER = b"X-Test-Kill-Worker: yes"


def batch(n: int, start: int = 0, killer_at: int | None = None) -> list[tuple[bytes, SourceRef]]:
    items = []
    for i in range(start, start + n):
        raw = mail(f"第 {i} 个问题:系统无法登录", subject=f"问题 {i}", sender=f"kehu{i}@kehu.example.cn")
        if i == killer_at:
            raw = KILLER + b"\r\n" + raw
        items.append((raw, SourceRef("imap:support/INBOX", f"7:{i}")))
    return items


def take_or_die(group):
    """A worker's work that dies (as a crash in a C library would) on a marked message."""
    if any(raw.startswith(KILLER) for raw, _ in group):
        os._exit(70)
    return prepare_group(group)


def worker_pid(group):
    """A worker's work that says which process prepared each item (as a quarantine reason)."""
    return [Prepared(unready=Quarantine(f"pid {os.getpid()}"))] * len(group)


def prepare_slowly(group):
    """A worker's work that takes its time over every second group's first item."""
    if int(group[0][1].key.split(":")[1]) % (2 * COMMIT_GROUP) == 0:
        time.sleep(0.3)
    return prepare_group(group)


def pid_of(result: Result) -> int | None:
    return int(result.reason.split("pid ")[1]) if result.outcome == "quarantined" else None


@pytest.fixture
def pool(ctx):
    pools: list[PipelinePool] = []

    def make(**kw) -> PipelinePool:
        p = PipelinePool(ctx, Pipeline(ctx), 1, **kw)
        p.start()
        pools.append(p)
        return p

    yield make
    for p in pools:
        p.close()


def test_a_batch_is_taken_in_a_worker_process_in_groups_each_let_go_of_after_its_commit(ctx, pool):
    pipeline_pool = pool()
    seen: list[list[str]] = []

    def committed(group, results):
        with ctx.sessions() as s:  # already committed when the source hears of it
            keys = {k for k in s.scalars(select(SourceItem.key))}
        assert {ref.key for _, ref in group} <= keys
        seen.append([ref.key for _, ref in group])
        return True

    items = batch(2 * COMMIT_GROUP + 5)
    results = pipeline_pool.take_many(items, committed)
    assert [r.outcome for r in results] == ["opened"] * len(items)
    assert [k for group in seen for k in group] == [ref.key for _, ref in items]  # in order, each group once
    assert [len(g) for g in seen] == [COMMIT_GROUP, COMMIT_GROUP, 5]
    with ctx.sessions() as s:
        assert s.scalar(select(Ticket.ref).where(Ticket.subject == "问题 0")) == results[0].ticket
        refs = [s.scalar(select(Ticket.ref).where(Ticket.subject == f"问题 {i}")) for i in range(len(items))]
        assert refs == sorted(refs) and len(set(refs)) == len(items)  # opened in arrival order
        assert len(s.scalars(select(OutboxMail).where(OutboxMail.kind == "ack")).all()) == len(items)


def test_the_items_are_prepared_in_another_process_and_written_in_this_one(ctx, pool):
    pids = {pid_of(r) for r in pool(work=worker_pid).take_many(batch(3))}
    assert len(pids) == 1 and os.getpid() not in pids
    with ctx.sessions() as s:  # the worker's verdict, written here
        assert [q.reason for q in s.scalars(select(QuarantineItem))] == [f"pid {pids.pop()}"] * 3


def test_with_two_workers_a_group_finished_first_still_waits_for_the_one_before(ctx):
    pipeline_pool = PipelinePool(ctx, Pipeline(ctx), 2, work=prepare_slowly)
    pipeline_pool.start()
    try:
        seen: list[str] = []
        items = batch(6 * COMMIT_GROUP)
        results = pipeline_pool.take_many(items, lambda group, _: seen.extend(ref.key for _, ref in group))
    finally:
        pipeline_pool.close()
    assert seen == [ref.key for _, ref in items]
    refs = [r.ticket for r in results]
    assert [r.outcome for r in results] == ["opened"] * len(items) and refs == sorted(refs)


def test_a_worker_imports_nothing_of_the_database(ctx):
    import subprocess
    import sys

    code = "import sys, intake.pipeline.worker; print(sorted(m for m in ('sqlalchemy', 'psycopg', 'jinja2', 'imapclient') if m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "[]"


def test_stop_after_a_group_writes_nothing_more(ctx, pool):
    pipeline_pool = pool()
    seen = []
    results = pipeline_pool.take_many(batch((IN_FLIGHT + 3) * COMMIT_GROUP), lambda group, _: seen.append(len(group)) or False)
    # the first group asked to stop; the groups in flight were only prepared: none is written
    assert seen == [COMMIT_GROUP] and len(results) == COMMIT_GROUP
    with ctx.sessions() as s:
        assert len(s.scalars(select(SourceItem)).all()) == COMMIT_GROUP


def test_a_worker_that_dies_costs_nothing_and_the_message_that_kills_it_is_quarantined(ctx, pool):
    pipeline_pool = pool(work=take_or_die)
    items = batch(4 * COMMIT_GROUP, killer_at=3)
    results = pipeline_pool.take_many(items)
    assert [r.outcome for r in results] == ["opened"] * 3 + ["quarantined"] + ["opened"] * (len(items) - 4)
    assert "died on this message twice" in results[3].reason
    # still in arrival order: the daemon writes the groups in order, wherever they were prepared
    refs = [r.ticket for r in results if r.outcome == "opened"]
    assert refs == sorted(refs)
    with ctx.sessions() as s:
        [held] = s.scalars(select(QuarantineItem)).all()
        assert held.raw == items[3][0] and held.key == "7:3" and "worker process died" in held.reason
        assert len(s.scalars(select(Ticket)).all()) == len(items) - 1
    # and a new worker goes on with the next batch
    assert [r.outcome for r in pipeline_pool.take_many(batch(3, start=100))] == ["opened"] * 3


def test_before_start_and_after_close_the_daemon_takes_the_batch_itself(ctx):
    pipeline_pool = PipelinePool(ctx, Pipeline(ctx), 1, work=worker_pid)
    results = pipeline_pool.take_many(batch(2))
    assert [(r.outcome, r.reason) for r in results] == [("opened", None)] * 2  # taken here, not by worker_pid


def test_when_no_new_worker_starts_the_group_is_taken_here_and_nothing_is_quarantined(ctx, pool):
    pipeline_pool = pool(work=take_or_die)
    pipeline_pool._started_pool = lambda: None  # as when a worker cannot start (no memory, hung import)
    items = batch(COMMIT_GROUP, killer_at=2)
    results = pipeline_pool.take_many(items)
    # the killer only kills take_or_die in a worker: here it is a good message like the rest
    assert [r.outcome for r in results] == ["opened"] * len(items)
    with ctx.sessions() as s:
        assert s.scalars(select(QuarantineItem)).all() == []
    assert [r.outcome for r in pipeline_pool.take_many(batch(2, start=50))] == ["opened"] * 2  # and so on


def test_a_message_that_kills_the_worker_is_not_blamed_on_another_threads_messages(ctx, pool):
    pipeline_pool = pool(work=take_or_die)
    outcomes: dict[str, list[str]] = {}

    def take(name: str, items) -> None:
        outcomes[name] = [r.outcome for r in pipeline_pool.take_many(items)]

    # two mailboxes' batches at once: while one thread's group dies and is tried item by
    # item, the other thread's groups must not share the worker with the item on trial
    threads = [
        threading.Thread(target=take, args=("poisoned", batch(3 * COMMIT_GROUP, killer_at=15))),
        threading.Thread(target=take, args=("clean", batch(6 * COMMIT_GROUP, start=1000))),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert outcomes["clean"] == ["opened"] * 6 * COMMIT_GROUP
    assert outcomes["poisoned"] == ["opened"] * 15 + ["quarantined"] + ["opened"] * (3 * COMMIT_GROUP - 16)
    with ctx.sessions() as s:
        assert [q.key for q in s.scalars(select(QuarantineItem))] == ["7:15"]


def test_many_writer_threads_all_get_their_turn_one_at_a_time(tmp_path):
    from intake.store.turns import lock_for

    lock = lock_for(str(tmp_path / "turns.db"))
    writers, rounds = 48, 20  # a busy web server's pool beside the pipeline and the mailer
    inside, overlaps, turns_taken = [0], [], []

    def write() -> None:
        for _ in range(rounds):
            lock.acquire()
            inside[0] += 1
            if inside[0] != 1:
                overlaps.append(inside[0])
            time.sleep(0.0001)
            inside[0] -= 1
            turns_taken.append(1)
            lock.release()

    threads = [threading.Thread(target=write, daemon=True) for _ in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(turns_taken) == writers * rounds and overlaps == []


def test_workers_that_did_not_start_are_started_again_after_a_while(ctx):
    pipeline_pool = PipelinePool(ctx, Pipeline(ctx), 1, work=worker_pid)

    def does_not_start():
        pipeline_pool._retry_at = time.monotonic() + 0.5  # as a failed start sets it (RESTART_BACKOFF)
        return None

    pipeline_pool._started_pool = does_not_start
    try:
        pipeline_pool.start()
        assert [r.reason for r in pipeline_pool.take_many(batch(2))] == [None, None]  # taken here meanwhile
        del pipeline_pool._started_pool  # the machine has memory again
        assert [r.reason for r in pipeline_pool.take_many(batch(2, start=10))] == [None, None]  # not yet
        time.sleep(0.6)
        pids = {pid_of(r) for r in pipeline_pool.take_many(batch(2, start=20))}
        assert len(pids) == 1 and None not in pids and os.getpid() not in pids  # a worker again
    finally:
        pipeline_pool.close()
