"""Web-form submissions per second through HTTP to ticket, and response times at that rate.

Starts the real daemon (`intake run --listen`) in a subprocess on a fresh SQLite
database (or --db URL), then posts JSON submissions (the DESIGN.md format) from N
concurrent clients. A 201 answer means: spooled with fsync, taken by the pipeline,
ticket committed with its acknowledgement in the outbox. At the end every ticket and
every queued acknowledgement is counted in the database.

    .venv/bin/python bench/forms_bench.py                 # 1, 4 and 16 clients, 600 submissions each
    .venv/bin/python bench/forms_bench.py --clients 8 --count 2000 --attachment-kb 200
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session

from intake.store.models import OutboxMail, Ticket

REPO = Path(__file__).resolve().parents[1]
INTAKE = Path(sys.executable).with_name("intake")

MESSAGES = [
    "三楼的打印机从今天早上开始无法打印，整个部门都受影响，请尽快处理。",
    "我们想咨询一下贵公司的年度维护合同价格，以及是否包含现场服务。",
    "The VPN drops every ten minutes since yesterday's update; the sales team cannot work.",
    "對於上週的服務非常不滿意，工程師遲到兩個小時，問題至今沒有解決。",
    "建议在客户端增加批量导出功能，方便我们每月对账。",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_daemon(workdir: Path, db_url: str | None) -> tuple[subprocess.Popen, str, str]:
    var = workdir / "var"
    url = db_url or f"sqlite:///{var / 'intake.db'}"
    config = workdir / "intake.toml"
    config.write_text(
        f'[database]\nurl = "{url}"\n\n[paths]\nvar = "{var}"\n\n'
        f'[maildir]\npath = "{var / "drop"}"\n\n[spool]\npath = "{var / "spool"}"\n\n'
        '[web]\nrate_limit_per_minute = 1000000\ncsrf_secret = "bench"\n\n[limits]\nform_acks_per_hour = 1000000\n\n[log]\nlevel = "WARNING"\n',
        "utf-8",
    )
    subprocess.run([str(INTAKE), "--config", str(config), "init"], check=True, cwd=REPO, capture_output=True)
    port = free_port()
    log = open(workdir / "daemon.log", "wb")
    proc = subprocess.Popen(
        [str(INTAKE), "--config", str(config), "run", "--listen", f"127.0.0.1:{port}"], cwd=REPO, stdout=log, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                return proc, base, url
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"daemon did not start; see {workdir / 'daemon.log'}")
        time.sleep(0.1)


def submission(i: int, attachment: bytes | None) -> dict:
    data = {
        "name": f"客户{i}",
        "email": f"kehu{i}@bench.example.cn",
        "phone": f"138{i:08d}",
        "company": "某某科技有限公司",
        "subject": f"问题 {i}",
        "message": f"{MESSAGES[i % len(MESSAGES)]}（编号 {i}）",
    }
    if attachment is not None:
        data["attachments"] = [{"filename": f"log{i}.txt", "content_type": "text/plain", "data_base64": base64.b64encode(attachment).decode()}]
    return data


def run_load(base: str, clients: int, count: int, first: int, attachment: bytes | None) -> tuple[float, list[float], list[int]]:
    """`count` submissions spread over `clients` threads; returns (seconds, latencies, status codes)."""
    latencies: list[float] = []
    codes: list[int] = []
    lock = threading.Lock()
    numbers = iter(range(first, first + count))

    def worker() -> None:
        with httpx.Client(base_url=base, timeout=60) as client:
            while True:
                with lock:
                    i = next(numbers, None)
                if i is None:
                    return
                body = json.dumps(submission(i, attachment), ensure_ascii=False).encode()
                started = time.perf_counter()
                r = client.post("/submit", content=body, headers={"content-type": "application/json"})
                elapsed = time.perf_counter() - started
                with lock:
                    latencies.append(elapsed)
                    codes.append(r.status_code)

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - started, latencies, codes


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, nargs="*", default=[1, 4, 16])
    parser.add_argument("--count", type=int, default=600, help="submissions per run")
    parser.add_argument("--attachment-kb", type=int, default=0, help="attach a text file of this size to each")
    parser.add_argument("--db", help="database URL (default: a fresh SQLite file)")
    parser.add_argument(
        "--postgres",
        metavar="ADMIN_URL",
        nargs="?",
        const="postgresql+psycopg://postgres@127.0.0.1:5432/test",
        help="run on a fresh PostgreSQL database created (and dropped) through this server",
    )
    args = parser.parse_args()
    attachment = (
        (b"2026-11-23 09:00:01 ERROR connection timed out\n" * (args.attachment_kb * 1024 // 46 + 1))[: args.attachment_kb * 1024]
        if args.attachment_kb
        else None
    )

    if args.postgres:
        with fresh_postgres(args.postgres) as url:
            args.db = url
            bench(args, attachment)
    else:
        bench(args, attachment)


@contextmanager
def fresh_postgres(admin_url: str) -> Iterator[str]:
    name = f"forms_bench_{secrets.token_hex(4)}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    try:
        yield admin_url.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.dispose()


def bench(args: argparse.Namespace, attachment: bytes | None) -> None:
    with tempfile.TemporaryDirectory(prefix="forms-bench-") as tmp:
        proc, base, url = start_daemon(Path(tmp), args.db)
        try:
            run_load(base, 2, 40, 10_000_000, attachment)  # warm-up: imports, first connections
            rows = []
            first = 0
            for clients in args.clients:
                seconds, latencies, codes = run_load(base, clients, args.count, first, attachment)
                first += args.count
                bad = [c for c in codes if c != 201]
                rows.append(
                    (clients, args.count / seconds, statistics.median(latencies) * 1000, pct(latencies, 95) * 1000, max(latencies) * 1000, len(bad))
                )
            rss_kb = int(next(line.split()[1] for line in open(f"/proc/{proc.pid}/status") if line.startswith("VmHWM")))
        finally:
            proc.terminate()
            proc.wait(timeout=60)
        engine = create_engine(url)
        with Session(engine) as session:
            tickets = session.scalar(select(func.count()).select_from(Ticket).where(Ticket.channel == "form"))
            acks = session.scalar(select(func.count()).select_from(OutboxMail).where(OutboxMail.kind == "ack"))
        engine.dispose()
        spool_done = len(list((Path(tmp) / "var" / "spool" / "done").glob("*.json")))

    total = 40 + sum(args.count for _ in args.clients)
    print(
        f"machine: {os.cpu_count()} CPUs; database: {'SQLite (WAL, synchronous=FULL)' if not args.db else args.db.split(':')[0]}; "
        f"attachment: {args.attachment_kb} KB"
    )
    print("| clients | submissions/s | p50 ms | p95 ms | max ms | non-201 |")
    print("|---:|---:|---:|---:|---:|---:|")
    for clients, rate, p50, p95, worst, bad in rows:
        print(f"| {clients} | {rate:.0f} | {p50:.1f} | {p95:.1f} | {worst:.1f} | {bad} |")
    print(
        f"\nsubmitted {total}; form tickets in the database {tickets}; acknowledgements queued {acks}; "
        f"spool files in done/ {spool_done}; daemon peak RSS {rss_kb / 1024:.0f} MB"
    )


if __name__ == "__main__":
    main()
