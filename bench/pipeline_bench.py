"""Benchmark: the pipeline alone, in-process: the mixed backlog of bench/imap_backlog.py
taken through `Pipeline.take_many` in groups (as the IMAP source does) or one
`Pipeline.take` per message, on a fresh database. No IMAP, no SMTP: mail is only queued.

    .venv/bin/python bench/pipeline_bench.py [--messages 1500] [--group 10] [--db URL] [--no-archive]

Prints messages/second, CPU milliseconds a message (steadier than wall time on a shared
machine) and SQL statements a message; the latest figures are in bench/imap_backlog.md.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import event, text  # noqa: E402

from bench.imap_backlog import mixed_backlog  # noqa: E402
from bench.machine import machine_speed_ms  # noqa: E402
from intake.config import from_dict  # noqa: E402
from intake.context import build_context  # noqa: E402
from intake.pipeline.runner import Pipeline  # noqa: E402
from intake.sources.base import SourceRef  # noqa: E402
from intake.store import fastsql  # noqa: E402
from intake.store.db import make_engine, upgrade  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1500)
    parser.add_argument("--group", type=int, default=10, help="messages a transaction (1: Pipeline.take each)")
    parser.add_argument("--db", help="database URL of an empty database (default: a fresh SQLite file)")
    parser.add_argument("--no-archive", action="store_true")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="intake-pipeline-bench-"))
    url = args.db or f"sqlite:///{work / 'intake.db'}"
    config = from_dict(
        {
            "database": {"url": url},
            "paths": {"var": str(work)},
            "limits": {"acks_per_sender_per_hour": 1000},
            "archive": {"enabled": not args.no_archive},
        }
    )
    upgrade(make_engine(url))
    ctx = build_context(config)
    pipeline = Pipeline(ctx)
    messages = mixed_backlog(args.messages)
    statements = [0]
    event.listen(ctx.sessions.kw["bind"], "before_cursor_execute", lambda *a: statements.__setitem__(0, statements[0] + 1))
    logging.disable(logging.WARNING)

    speed = machine_speed_ms()
    direct_before = fastsql.statements_run
    wall, cpu = time.perf_counter(), time.process_time()
    for start in range(0, len(messages), args.group):
        items = [(raw, SourceRef("bench", f"m{i}")) for i, raw in enumerate(messages[start : start + args.group], start)]
        if args.group == 1:
            pipeline.take(*items[0])
        else:
            pipeline.take_many(items)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu

    n = len(messages)
    with ctx.sessions() as session:
        tickets = session.execute(text("select count(*) from tickets")).scalar()
        mails = dict(session.execute(text("select kind, count(*) from outbox group by kind")).all())
    print(f"database:     {url.split(':')[0]}, {'archive jobs on' if not args.no_archive else 'archive off'}, group {args.group}")
    print(f"result:       {n} messages -> {tickets} tickets, mail queued {mails}")
    print(f"throughput:   {n / wall:.0f} messages/s")
    print(f"CPU:          {cpu / n * 1000:.2f} ms a message")
    print(f"machine:      reference loop {speed:.0f} ms (bench/machine.py; lower is faster)")
    run_direct = fastsql.statements_run - direct_before
    print(
        f"SQL:          {(statements[0] + run_direct) / n:.1f} statements a message ({run_direct / n:.1f} on the driver's cursor, intake/store/fastsql.py)"
    )


if __name__ == "__main__":
    main()
