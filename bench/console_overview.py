"""What one load of the console's overview costs (it reloads itself every [console] refresh_seconds).

A fresh database with N source items (what the "taken per hour" chart counts), N/10 tickets and
N/10 sent mails spread evenly over the last --days days (90: a quarter's history, of which the
charts' 24 hours are 1/90); the web app with the console (as the daemon builds
it) through Starlette's TestClient, signed in as an operator; 15 loads, medians. Also the parts:
`intake status`'s collect() and the four hourly counts of the charts.

    .venv/bin/python bench/console_overview.py                      # SQLite, 10,000 and 100,000
    .venv/bin/python bench/console_overview.py --pg postgresql+psycopg://postgres@127.0.0.1:5432/test
    .venv/bin/python bench/console_overview.py --without-indexes     # as before migration 0008's two indexes
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import insert  # noqa: E402

from bench.machine import machine_speed_ms  # noqa: E402
from intake.context import build_context  # noqa: E402
from intake.store.db import make_engine, upgrade  # noqa: E402
from intake.store.models import Customer, OutboxMail, SourceItem, Ticket  # noqa: E402
from tests.console.conftest import PASSWORD, console_config, sign_in, web_app  # noqa: E402

LOADS = 15


def fill(ctx, n: int, days: int) -> None:
    now = datetime.now(UTC)
    spread = [now - timedelta(seconds=(i * days * 86400) // n) for i in range(n)]
    with ctx.sessions() as s, s.begin():
        s.execute(
            insert(Customer),
            [{"number": "C000001", "email": "a@example.com", "name": "a", "company": "", "industry": "", "language": "zh", "created_at": now}],
        )
        s.execute(
            insert(SourceItem), [{"source": "imap:support/INBOX", "key": f"1/{i}", "outcome": "opened", "at": at} for i, at in enumerate(spread)]
        )
        tickets = [
            {
                "ref": f"{i:06d}-0001",
                "customer_id": 1,
                "subject": "",
                "channel": "email",
                "type": "inquiry",
                "urgency": "normal",
                "status": "new",
                "created_at": at,
            }
            for i, at in enumerate(spread[::10])
        ]
        s.execute(insert(Ticket), [{**t, "classification": {}, "updated_at": t["created_at"]} for t in tickets])
        s.execute(
            insert(OutboxMail),
            [
                {
                    "kind": "ack",
                    "message_id": f"<{i}@b>",
                    "mail_from": "s@example.com",
                    "rcpt_to": "a@example.com",
                    "raw": b"x",
                    "status": "sent",
                    "sent_at": at,
                    "created_at": at,
                }
                for i, at in enumerate(spread[::10])
            ],
        )


def median_ms(fn, times: int = LOADS) -> float:
    samples = []
    for _ in range(times):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def run(url: str, n: int, folder: Path, days: int, without_indexes: bool) -> dict:
    from starlette.testclient import TestClient

    from intake.ops.status import collect
    from intake.web.console import charts
    from intake.web.console.auth import add_user

    config = console_config(folder)
    config = config.model_copy(update={"database": config.database.model_copy(update={"url": url})})
    engine = make_engine(url)
    upgrade(engine)
    if without_indexes:
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP INDEX ix_source_items_at")
            conn.exec_driver_sql("DROP INDEX ix_outbox_sent_at")
    ctx = build_context(config)
    fill(ctx, n, days)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("ANALYZE")  # the statistics autovacuum would have gathered after a bulk load
    add_user(ctx.sessions, "ops", PASSWORD, ["operator"])
    with TestClient(web_app(ctx), follow_redirects=False) as client:
        assert sign_in(client, "ops").status_code == 303
        assert client.get("/console/overview").status_code == 200
        page = median_ms(lambda: client.get("/console/overview"))

    def chart_counts():
        with ctx.read_sessions() as s:
            charts.last_24_hours(s, datetime.now(UTC))

    return {"page": page, "collect": median_ms(lambda: collect(ctx)), "charts": median_ms(chart_counts)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--days", type=int, default=90, help="the history the rows are spread over")
    parser.add_argument("--without-indexes", action="store_true", help="drop the two indexes the charts use (as before migration 0008 had them)")
    parser.add_argument("--pg", default="", help="a PostgreSQL admin URL: each size also runs in a new database there")
    args = parser.parse_args()
    print(
        f"machine: {machine_speed_ms():.0f} ms for the reference loop; history {args.days} days; indexes {'dropped' if args.without_indexes else 'kept'}"
    )
    print("| database | source items | page median ms | collect() ms | chart counts ms |")
    print("|---|---|---|---|---|")
    for n in (int(x) for x in args.sizes.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            r = run(f"sqlite:///{Path(tmp) / 'bench.db'}", n, Path(tmp), args.days, args.without_indexes)
            print(f"| SQLite | {n:,} | {r['page']:.1f} | {r['collect']:.1f} | {r['charts']:.1f} |", flush=True)
        if args.pg:
            import psycopg

            name = f"intake_bench_{uuid.uuid4().hex[:8]}"
            admin_url = args.pg.replace("postgresql+psycopg://", "postgresql://")
            with psycopg.connect(admin_url, autocommit=True) as admin:
                admin.execute(f'CREATE DATABASE "{name}"')
            try:
                with tempfile.TemporaryDirectory() as tmp:
                    r = run(args.pg.rsplit("/", 1)[0] + "/" + name, n, Path(tmp), args.days, args.without_indexes)
                    print(f"| PostgreSQL | {n:,} | {r['page']:.1f} | {r['collect']:.1f} | {r['charts']:.1f} |", flush=True)
            finally:
                with psycopg.connect(admin_url, autocommit=True) as admin:
                    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
