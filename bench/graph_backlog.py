"""Benchmark: a backlog in a Microsoft Graph mailbox taken by the Graph source (delta round,
$value per message, pipeline, move per message), against the loopback Graph API of
tests/servers/graph_api.py with a round-trip time added to every answer (the real service
is tens of milliseconds away; on loopback the pipeline alone would be measured).

    .venv/bin/python bench/graph_backlog.py [--messages 300] [--rtt-ms 40] [--runs 3] [--concurrency 1 4]

Each run: a fresh SQLite database, the backlog delivered, one `run_once` of the source in
this process (pipeline in-process), timed from the first request to the last move. Runs
alternate between the concurrency settings (requests in flight per mailbox). Prints each
run and the medians; the latest figures are kept in bench/graph_backlog.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from intake.config import from_dict  # noqa: E402
from intake.context import build_context  # noqa: E402
from intake.pipeline.runner import Pipeline  # noqa: E402
from intake.sources.graph import GraphSource, graph_account  # noqa: E402
from intake.store.db import make_engine, upgrade  # noqa: E402
from tests.fixtures.mail.build import corpus  # noqa: E402
from tests.servers.graph_api import GraphApi, idp_authorizer  # noqa: E402
from tests.servers.oauth_idp import IdentityProvider  # noqa: E402

MAILBOX = "support@contoso.com"
SECRET_ENV, SECRET = "INTAKE_BENCH_GRAPH_SECRET", "bench-secret"


def one_run(root: Path, idp, graph, n: int, concurrency: int) -> float:
    """Messages per second of one backlog of `n` taken with `concurrency` requests in flight."""
    with graph.lock:
        graph.mailboxes.clear()
    graph.add_mailbox(MAILBOX)
    backlog = [raw.replace(b"li.wei@example.cn", f"customer{i}@example.cn".encode()) for i, raw in enumerate(corpus(n))]
    for raw in backlog:
        graph.deliver(MAILBOX, raw)
    run = Path(tempfile.mkdtemp(dir=root))
    config = from_dict(
        {
            "database": {"url": f"sqlite:///{run / 'intake.db'}"},
            "paths": {"var": str(run / "var")},
            "pipeline": {"processes": 0},
            "archive": {"enabled": False},
            "limits": {"acks_per_sender_per_hour": 1000},
            "graph": [
                {
                    "name": "support",
                    "mailbox": MAILBOX,
                    "tenant": idp.tenant,
                    "client_id": "bench-app",
                    "client_secret_env": SECRET_ENV,
                    "authority": idp.authority,
                    "oauth_ca_file": idp.ca_file,
                    "api_url": graph.base,
                    "ca_file": graph.ca_file,
                }
            ],
        }
    )
    upgrade(make_engine(config.database.url))
    ctx = build_context(config)
    account = graph_account(config.graph[0], config.var)
    account.concurrency = concurrency
    source = GraphSource(account, "inbox", Pipeline(ctx), threading.Event())
    source.client.tokens.token()  # the token first: its acquisition is not the backlog's
    started = time.perf_counter()
    taken = source.run_once()
    seconds = time.perf_counter() - started
    assert taken == n and not graph.in_folder(MAILBOX, "inbox"), f"took {taken} of {n}"
    return n / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--rtt-ms", type=float, default=40.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4])
    args = parser.parse_args()
    os.environ[SECRET_ENV] = SECRET
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "idp").mkdir()
        idp = IdentityProvider(root / "idp").start()
        idp.add_app("bench-app", secret=SECRET, mailboxes={MAILBOX})
        (root / "graph").mkdir()
        graph = GraphApi(root / "graph", idp_authorizer(idp)).start()
        graph.latency = args.rtt_ms / 1000
        rates: dict[int, list[float]] = {c: [] for c in args.concurrency}
        try:
            for i in range(args.runs):
                for c in args.concurrency:
                    rate = one_run(root, idp, graph, args.messages, c)
                    rates[c].append(rate)
                    print(f"run {i + 1}: concurrency {c}: {rate:.1f} messages/s", flush=True)
        finally:
            graph.stop()
            idp.stop()
    print(f"{args.messages} messages, {args.rtt_ms:g} ms added to every answer, {args.runs} runs, load {os.getloadavg()[0]:.1f}")
    base = statistics.median(rates[args.concurrency[0]])
    for c, values in rates.items():
        median = statistics.median(values)
        print(f"concurrency {c}: median {median:.1f} messages/s (ratio {median / base:.2f})")


if __name__ == "__main__":
    main()
