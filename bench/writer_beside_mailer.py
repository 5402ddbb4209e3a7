"""Benchmark: what the mailer costs the pipeline's writing, in another process or in the same one.

Why the pipeline's worker process writes the backlog (intake/pipeline/pool.py) rather than
the daemon's own process, which reads IMAP and runs the mailer: this measures the
writing of a prepared backlog (parsed and classified beforehand, so only the
transaction's stages are timed) in-process, alone, with the real OutboxWorker delivering
the same run's mail to the local Maildir from another process (as the daemon runs it
beside the worker today; on SQLite the two share the turn lock, as there), and with it in
a thread of the same process (as it would be if the daemon wrote). The modes rotate from
round to round, on a fresh database each run, after a warm-up run.

    .venv/bin/python bench/writer_beside_mailer.py [--messages 1500] [--rounds 3] [--db sqlite,postgres]

Prints messages written per second (median and each round), the ratios, the CPU seconds
of the writing thread and of the mailer's, and the mails sent while the writing was
timed. The latest figures are in bench/writer_beside_mailer.md.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import multiprocessing.process
import statistics
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.imap_backlog import mixed_backlog  # noqa: E402
from bench.machine import machine_speed_ms  # noqa: E402
from bench.peer_runs import private_postgres_db  # noqa: E402
from intake.config import from_dict  # noqa: E402
from intake.context import build_context  # noqa: E402
from intake.outgoing.mailer import OutboxWorker, transport_for  # noqa: E402
from intake.pipeline.runner import COMMIT_GROUP, Pipeline  # noqa: E402
from intake.sources.base import SourceRef  # noqa: E402
from intake.store.db import make_engine, upgrade  # noqa: E402
from intake.store.sqlite import database_path  # noqa: E402
from intake.store.turns import adopt_turns, share_turns  # noqa: E402


@contextmanager
def database(kind: str):
    if kind == "postgres":
        with private_postgres_db() as url:
            yield url
    else:
        with tempfile.TemporaryDirectory(prefix="intake-writer-bench-") as folder:
            yield f"sqlite:///{folder}/intake.db"


ALONE, OTHER_PROCESS, SAME_PROCESS = MODES = ("alone", "mailer in another process", "mailer in the same process")


class Counted:
    """The mailer's way out, counting the mails it sends (a shared counter: any process)."""

    def __init__(self, transport, count):
        self.transport, self.count = transport, count
        self.health_name, self.send_seconds = transport.health_name, transport.send_seconds

    def send(self, mail_from: str, rcpt_to: str, raw: bytes) -> None:
        self.transport.send(mail_from, rcpt_to, raw)
        with self.count.get_lock():
            self.count.value += 1

    def flush(self) -> None:
        self.transport.flush()

    def close(self) -> None:
        self.transport.close()


def mail_until_stopped(ctx, stop, wake, count, cpu, ready) -> None:
    """The daemon's mailer loop: send what is due, wait to be woken (after each group written)."""
    mailer = OutboxWorker(ctx, Counted(transport_for(ctx.config), count))
    ready.set()
    started = time.thread_time()
    while not stop.is_set():
        mailer.run_once(stop)
        wake.wait(0.5)
        wake.clear()
    cpu.value = time.thread_time() - started
    mailer.close()


def mailer_process(config, turns, stop, wake, count, cpu, ready) -> None:
    """As the daemon's process is beside the pipeline's worker: its writers take turns with
    the worker's at SQLite's write lock (intake/store/turns.py)."""
    logging.disable(logging.WARNING)
    adopt_turns(turns)
    mail_until_stopped(build_context(config), stop, wake, count, cpu, ready)


def one_run(kind: str, messages: list[bytes], mode: str) -> tuple[float, float, float, int]:
    """(messages written a second, the writer's CPU s, the mailer's CPU s, mail sent while writing)."""
    mp = multiprocessing.get_context("spawn")
    with database(kind) as url, tempfile.TemporaryDirectory(prefix="intake-writer-var-") as var:
        config = from_dict(
            {
                "database": {"url": url},
                "paths": {"var": var},
                "limits": {"acks_per_sender_per_hour": 1000},
                "archive": {"enabled": False},
            }
        )
        upgrade(make_engine(url))
        # the database's lock made shareable (in place) before anyone writes beside the mailer
        turns = share_turns(database_path(url)) if kind == "sqlite" and mode == OTHER_PROCESS else {}
        ctx = build_context(config)
        pipeline = Pipeline(ctx)
        groups = [
            [pipeline.prepared(raw, SourceRef("bench", f"m{i}")) for i, raw in enumerate(messages[start : start + COMMIT_GROUP], start)]
            for start in range(0, len(messages), COMMIT_GROUP)
        ]
        stop, wake, ready = mp.Event(), mp.Event(), mp.Event()
        count, cpu = mp.Value("q", 0), mp.Value("d", 0.0)
        mailer: threading.Thread | multiprocessing.process.BaseProcess | None = None
        if mode == OTHER_PROCESS:
            mailer = mp.Process(target=mailer_process, args=(config, turns, stop, wake, count, cpu, ready))
        elif mode == SAME_PROCESS:
            mailer = threading.Thread(target=mail_until_stopped, args=(ctx, stop, wake, count, cpu, ready), name="outbox")
        try:
            if mailer is not None:
                mailer.start()
                if not ready.wait(120):  # a process imports and loads the rules first
                    raise RuntimeError("the mailer did not start")
            wall, writer_cpu = time.perf_counter(), time.thread_time()
            for group in groups:
                pipeline.take_prepared(group)
                wake.set()  # as the pipeline wakes the mailer after each group (ctx.wake_outbox)
            wall, writer_cpu = time.perf_counter() - wall, time.thread_time() - writer_cpu
            sent = count.value
        finally:  # the mailer stops before its database goes
            stop.set()
            wake.set()
            if mailer is not None and mailer.is_alive():
                mailer.join(60)
            ctx.sessions.kw["bind"].dispose()
        return len(messages) / wall, writer_cpu, cpu.value, sent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--db", default="sqlite,postgres")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    messages = mixed_backlog(args.messages)
    print(f"machine: reference loop {machine_speed_ms():.0f} ms (bench/machine.py; lower is faster)")
    print(f"{args.messages} messages prepared beforehand; the writing timed, in groups of {COMMIT_GROUP}; {args.rounds} alternating rounds\n")
    print("| database | writing | msg/s, median | each round | writer CPU s | mailer CPU s | mail sent while writing |")
    print("|---|---|---|---|---|---|---|")
    for kind in args.db.split(","):
        one_run(kind, messages[:50], ALONE)  # warm-up: imports, caches, the first database
        runs: dict[str, list[tuple[float, float, float, int]]] = {mode: [] for mode in MODES}
        for round_ in range(args.rounds):
            shift = round_ % len(MODES)
            for mode in MODES[shift:] + MODES[:shift]:  # each mode first in turn
                runs[mode].append(one_run(kind, messages, mode))
        name = {"sqlite": "SQLite", "postgres": "PostgreSQL"}.get(kind, kind)
        for mode in MODES:
            rates = [r[0] for r in runs[mode]]
            print(
                f"| {name} | {mode} | **{statistics.median(rates):.0f}** | {', '.join(f'{r:.0f}' for r in rates)} "
                f"| {statistics.median(r[1] for r in runs[mode]):.2f} | {statistics.median(r[2] for r in runs[mode]):.2f} "
                f"| {statistics.median(r[3] for r in runs[mode]):.0f} |"
            )
        median = {mode: statistics.median(r[0] for r in runs[mode]) for mode in MODES}
        print(f"| {name} | ratio: same process / another process | **{median[SAME_PROCESS] / median[OTHER_PROCESS]:.2f}** | | | | |")
        print(f"| {name} | ratio: another process / alone | {median[OTHER_PROCESS] / median[ALONE]:.2f} | | | | |")


if __name__ == "__main__":
    main()
