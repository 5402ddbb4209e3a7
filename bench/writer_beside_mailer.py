"""Benchmark: what the mailer costs the pipeline's writing when both share one interpreter.

Why the pipeline's worker process writes the backlog (intake/pipeline/pool.py) rather than
the daemon's own process, which reads IMAP and runs the mailer: this measures the
writing of a prepared backlog (parsed and classified beforehand, so only the
transaction's stages are timed) in-process, alone and with the real OutboxWorker
delivering the same run's mail to the local Maildir from a thread of the same process,
as it would if the daemon wrote. Rounds alternate, on a fresh database each run.

    .venv/bin/python bench/writer_beside_mailer.py [--messages 1500] [--rounds 3] [--db sqlite,postgres]

Prints messages written per second (median and each round), the ratio, and the CPU
seconds of the writing thread and of the mailer's. The latest figures are in
bench/writer_beside_mailer.md.
"""

from __future__ import annotations

import argparse
import logging
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
from intake.outgoing.mailer import OutboxWorker  # noqa: E402
from intake.pipeline.runner import COMMIT_GROUP, Pipeline  # noqa: E402
from intake.sources.base import SourceRef  # noqa: E402
from intake.store.db import make_engine, upgrade  # noqa: E402


@contextmanager
def database(kind: str):
    if kind == "postgres":
        with private_postgres_db() as url:
            yield url
    else:
        with tempfile.TemporaryDirectory(prefix="intake-writer-bench-") as folder:
            yield f"sqlite:///{folder}/intake.db"


def one_run(kind: str, messages: list[bytes], with_mailer: bool) -> tuple[float, float, float, int]:
    """(messages written a second, the writer's CPU s, the mailer's CPU s, mail sent)."""
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
        ctx = build_context(config)
        pipeline = Pipeline(ctx)
        groups = [
            [pipeline.prepared(raw, SourceRef("bench", f"m{i}")) for i, raw in enumerate(messages[start : start + COMMIT_GROUP], start)]
            for start in range(0, len(messages), COMMIT_GROUP)
        ]
        stop, mailer_cpu, sent = threading.Event(), [0.0], [0]
        mailer = OutboxWorker(ctx)

        def send() -> None:
            started = time.thread_time()
            while not stop.is_set():
                sent[0] += mailer.run_once(stop)[0]
                ctx.wake_outbox.wait(0.5)
                ctx.wake_outbox.clear()
            mailer_cpu[0] = time.thread_time() - started

        thread = threading.Thread(target=send, name="outbox")
        if with_mailer:
            thread.start()
        wall, cpu = time.perf_counter(), time.thread_time()
        for group in groups:
            pipeline.take_prepared(group)
        wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
        stop.set()
        ctx.wake_outbox.set()
        if with_mailer:
            thread.join()
        mailer.close()
        ctx.sessions.kw["bind"].dispose()
        return len(messages) / wall, cpu, mailer_cpu[0], sent[0]


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
    print("| database | writing | msg/s, median | each round | writer CPU s | mailer CPU s | mail sent meanwhile |")
    print("|---|---|---|---|---|---|---|")
    for kind in args.db.split(","):
        runs: dict[bool, list[tuple[float, float, float, int]]] = {False: [], True: []}
        for round_ in range(args.rounds):
            for with_mailer in (False, True) if round_ % 2 == 0 else (True, False):
                runs[with_mailer].append(one_run(kind, messages, with_mailer))
        for with_mailer, label in ((False, "alone"), (True, "beside the mailer")):
            rates = [r[0] for r in runs[with_mailer]]
            print(
                f"| {kind} | {label} | **{statistics.median(rates):.0f}** | {', '.join(f'{r:.0f}' for r in rates)} "
                f"| {statistics.median(r[1] for r in runs[with_mailer]):.2f} | {statistics.median(r[2] for r in runs[with_mailer]):.2f} "
                f"| {statistics.median(r[3] for r in runs[with_mailer]):.0f} |"
            )
        ratio = statistics.median(r[0] for r in runs[True]) / statistics.median(r[0] for r in runs[False])
        print(f"| {kind} | ratio beside / alone | **{ratio:.2f}** | | | | |")


if __name__ == "__main__":
    main()
