"""How long a /metrics and a /healthz scrape take as the database grows: the gauges are
read queries at scrape time, so their cost is what a Prometheus scraping every 15 s adds.

    .venv/bin/python bench/metrics_scrape.py [--rows 10000 300000] [--postgres URL]

Fills a fresh database with N outbox mails (1 % pending) and N archive jobs (1 %
pending), serves intake/ops on a free loopback port and times 30 scrapes of each page
over HTTP; prints the medians. Latest figures: bench/metrics_scrape.md.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import insert  # noqa: E402

from intake.config import from_dict  # noqa: E402
from intake.context import build_context  # noqa: E402
from intake.ops.server import ops_thread  # noqa: E402
from intake.store.db import make_engine, upgrade  # noqa: E402
from intake.store.models import OutboxMail  # noqa: E402


def fill(ctx, rows: int) -> None:
    from archive.models import ArchiveJob

    start = datetime.now(UTC) - timedelta(days=30)
    with ctx.sessions() as session, session.begin():
        for first in range(0, rows, 20_000):
            batch = range(first, min(rows, first + 20_000))
            session.execute(
                insert(OutboxMail.__table__),
                [
                    {
                        "kind": "ack",
                        "message_id": f"<bench.{i}@example.com>",
                        "mail_from": "support@example.com",
                        "rcpt_to": f"c{i % 5000}@example.cn",
                        "raw": b"x",
                        "status": "pending" if i % 100 == 0 else "sent",
                        "attempts": 1,
                        "next_attempt_at": start,
                        "created_at": start + timedelta(seconds=i),
                    }
                    for i in batch
                ],
            )
            session.execute(
                insert(ArchiveJob.__table__),
                [
                    {
                        "ticket_id": i,
                        "reason": "opened",
                        "status": "pending" if i % 100 == 0 else "done",
                        "attempts": 0,
                        "next_attempt_at": start,
                        "created_at": start,
                    }
                    for i in batch
                ],
            )


def median_ms(url: str, times: int = 30) -> float:
    samples = []
    for _ in range(times):
        began = time.perf_counter()
        with urllib.request.urlopen(url, timeout=30) as response:
            response.read()
        samples.append((time.perf_counter() - began) * 1000)
    return statistics.median(samples)


def measure(url: str, rows: int, var: Path) -> tuple[float, float]:
    config = from_dict({"database": {"url": url}, "paths": {"var": str(var)}})
    upgrade(make_engine(url))
    ctx = build_context(config)
    fill(ctx, rows)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    stop, ready = threading.Event(), threading.Event()
    thread = ops_thread(ctx, f"127.0.0.1:{port}", stop, ready)
    thread.start()
    ready.wait(15)
    try:
        base = f"http://127.0.0.1:{port}"
        median_ms(base + "/metrics", 3)  # warm the caches
        return median_ms(base + "/metrics"), median_ms(base + "/healthz")
    finally:
        stop.set()
        thread.join(10)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 300_000])
    parser.add_argument("--postgres", help="admin URL of a PostgreSQL server (a database per size is created and dropped)")
    args = parser.parse_args()
    print("| database | outbox rows | archive jobs | /metrics median ms | /healthz median ms |")
    print("|---|---|---|---|---|")
    for rows in args.rows:
        with tempfile.TemporaryDirectory() as tmp:
            m, h = measure(f"sqlite:///{tmp}/intake.db", rows, Path(tmp) / "var")
            print(f"| SQLite | {rows:,} | {rows:,} | {m:.1f} | {h:.1f} |", flush=True)
        if args.postgres:
            import psycopg

            name = f"intake_bench_metrics_{rows}"
            with psycopg.connect(args.postgres, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
                admin.execute(f'CREATE DATABASE "{name}"')
            try:
                with tempfile.TemporaryDirectory() as tmp:
                    base = args.postgres.rsplit("/", 1)[0]
                    m, h = measure(f"postgresql+psycopg://{base.split('://', 1)[1]}/{name}", rows, Path(tmp) / "var")
                    print(f"| PostgreSQL | {rows:,} | {rows:,} | {m:.1f} | {h:.1f} |", flush=True)
            finally:
                with psycopg.connect(args.postgres, autocommit=True) as admin:
                    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
