"""The pipeline in a worker process (intake/pipeline/pool.py) on a real database, and
SQLite's turn lock shared between processes (intake/store/sqlite.py)."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time

import pytest
from sqlalchemy import select

from intake.pipeline.pool import IN_FLIGHT, PipelinePool
from intake.pipeline.runner import COMMIT_GROUP, Pipeline
from intake.pipeline.worker import take_group
from intake.sources.base import Result, SourceRef
from intake.store.models import OutboxMail, QuarantineItem, SourceItem, Ticket
from tests.integration.test_pipeline import mail
from tests.integration.worker_probe import take_and_name_libraries

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
    return take_group(group)


def worker_pid(group):
    return [Result("opened", None, str(os.getpid()))] * len(group)


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


def test_the_work_really_runs_in_another_process(ctx, pool):
    pids = {int(r.reason) for r in pool(work=worker_pid).take_many(batch(3))}
    assert len(pids) == 1 and os.getpid() not in pids


def test_the_worker_loads_no_library_it_does_not_use_and_the_daemon_counts_its_outcomes(ctx, pool):
    """Each library is megabytes in every process that loads it: the worker leaves the
    metrics library to the daemon, which serves /metrics, and SQLite to SQLite databases.
    (That the daemon counts what the worker took was so before: here a guard, as the
    worker's own counts no longer exist.)"""
    from intake.ops.metrics import TAKEN

    counted = TAKEN.labels(source="imap:support/INBOX", outcome="opened")
    before = counted._value.get()
    results = pool(work=take_and_name_libraries).take_many(batch(3))
    assert [r.outcome for r in results] == ["opened"] * 3
    sqlite = ctx.config.database.url.startswith("sqlite")
    assert {r.reason for r in results} == {"sqlite3 intake.store.turns" if sqlite else ""}
    assert counted._value.get() == before + 3  # counted in the daemon, for /metrics


def test_stop_after_a_group_finishes_what_was_handed_over_and_leaves_the_rest(ctx, pool):
    pipeline_pool = pool()
    seen = []
    results = pipeline_pool.take_many(batch((IN_FLIGHT + 3) * COMMIT_GROUP), lambda group, _: seen.append(len(group)) or False)
    # the first group asked to stop; the groups already handed over are finished and reported
    assert len(results) == sum(seen) and COMMIT_GROUP <= sum(seen) <= IN_FLIGHT * COMMIT_GROUP
    with ctx.sessions() as s:
        assert len(s.scalars(select(SourceItem)).all()) == sum(seen)


def test_a_worker_that_dies_costs_nothing_and_the_message_that_kills_it_is_quarantined(ctx, pool):
    pipeline_pool = pool(work=take_or_die)
    items = batch(4 * COMMIT_GROUP, killer_at=3)
    results = pipeline_pool.take_many(items)
    assert [r.outcome for r in results] == ["opened"] * 3 + ["quarantined"] + ["opened"] * (len(items) - 4)
    assert "died on this message twice" in results[3].reason
    # still in arrival order: the group in flight behind the one the worker died on was
    # taken again before any later group went to the new worker
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


# -- the turn lock across processes ----------------------------------------------------


def _hold_turn(path: str, turns, got, release) -> None:
    from intake.store.turns import adopt_turns, lock_for

    adopt_turns(turns)
    lock = lock_for(path)
    lock.acquire()
    got.set()
    release.wait(60)
    lock.release()


def _wait_turn(path: str, turns, waiting) -> None:
    from intake.store.turns import adopt_turns, lock_for

    adopt_turns(turns)
    lock = lock_for(path)
    waiting.set()
    lock.acquire()
    lock.release()


@pytest.fixture
def turn_lock(tmp_path):
    from intake.store.turns import lock_for, share_turns

    path = str(tmp_path / "turns.db")
    lock = lock_for(path)
    return path, lock, share_turns(path)


def test_the_turn_lock_is_shared_with_a_worker_process(turn_lock):
    path, lock, turns = turn_lock
    mp = multiprocessing.get_context("spawn")
    got, release = mp.Event(), mp.Event()
    child = mp.Process(target=_hold_turn, args=(path, turns, got, release))
    child.start()
    try:
        assert got.wait(30)
        taken = threading.Event()
        waiter = threading.Thread(target=lambda: (lock.acquire(), taken.set(), lock.release()))
        waiter.start()
        assert not taken.wait(0.5)  # the worker holds the turn
        release.set()
        assert taken.wait(10)
        waiter.join()
    finally:
        release.set()
        child.join(10)


def test_a_worker_killed_holding_the_turn_or_waiting_for_it_is_passed_over(turn_lock):
    path, lock, turns = turn_lock
    mp = multiprocessing.get_context("spawn")
    got, release, waiting = mp.Event(), mp.Event(), mp.Event()
    holder = mp.Process(target=_hold_turn, args=(path, turns, got, release))
    holder.start()
    assert got.wait(30)
    queued = mp.Process(target=_wait_turn, args=(path, turns, waiting))  # takes a ticket behind the holder
    queued.start()
    assert waiting.wait(30)
    time.sleep(0.3)
    os.kill(queued.pid, signal.SIGKILL)
    os.kill(holder.pid, signal.SIGKILL)
    holder.join(10), queued.join(10)
    started = time.monotonic()
    lock.acquire()  # behind a dead holder and a dead waiter
    lock.release()
    assert time.monotonic() - started < 10


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


def _hold_guard(path: str, turns, got) -> None:
    from intake.store.turns import adopt_turns, lock_for

    adopt_turns(turns)
    guard = lock_for(path)._turns._guard
    guard.__enter__()  # and die in there, as a kill -9 at the wrong microsecond would
    got.set()
    time.sleep(60)


def test_a_worker_killed_while_changing_the_turn_state_blocks_nobody(turn_lock):
    path, lock, turns = turn_lock
    mp = multiprocessing.get_context("spawn")
    got = mp.Event()
    child = mp.Process(target=_hold_guard, args=(path, turns, got))
    child.start()
    assert got.wait(30)
    os.kill(child.pid, signal.SIGKILL)
    child.join(10)
    done = threading.Event()
    threading.Thread(target=lambda: (lock.acquire(), lock.release(), done.set()), daemon=True).start()
    assert done.wait(10)


def test_more_writers_than_slots_all_get_their_turn_one_at_a_time(turn_lock):
    path, lock, _ = turn_lock
    writers, rounds = 48, 20  # more threads than the lock has slots (a busy web server's pool)
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
        pids = {r.reason for r in pipeline_pool.take_many(batch(2, start=20))}
        assert len(pids) == 1 and str(os.getpid()) not in pids  # a worker again
    finally:
        pipeline_pool.close()
