"""Benchmark: a backlog of mixed messages in a private Dovecot → all ticketed and
acknowledged by the real daemon process; then the latency from IMAP APPEND to the
acknowledgement arriving at the SMTP server while the daemon idles (IMAP IDLE).

    .venv/bin/python bench/imap_backlog.py [--messages 2000] [--latency-samples 100] [--db URL] [--attachment-kb KB]

Prints messages/second, the daemon's peak RSS (alone and with its workers), and latency p50/p95; the latest
figures are kept in bench/imap_backlog.md. Needs Dovecot (scripts/test installs it).
"""

from __future__ import annotations

import argparse
import email
import email.policy
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.machine import machine_speed_ms  # noqa: E402
from tests.daemonproc import DaemonProcess, Db, wait_until, write_config  # noqa: E402
from tests.fixtures.mail.build import corpus  # noqa: E402
from tests.servers import AckCounter, DovecotServer, SmtpServer  # noqa: E402


def mixed_backlog(n: int, attachment_kb: int = 0) -> list[bytes]:
    """Every language, charset and attachment kind of the parser's fixtures, each
    message with its own Message-ID and its own sender (as a real backlog has); with
    `attachment_kb`, each with a file of that size attached as well."""
    backlog = [raw.replace(b"li.wei@example.cn", f"customer{i}@example.cn".encode()) for i, raw in enumerate(corpus(n))]
    return [with_attachment(raw, attachment_kb, i) for i, raw in enumerate(backlog)] if attachment_kb else backlog


def with_attachment(raw: bytes, kb: int, seed: int) -> bytes:
    """The message with a scan of `kb` KB attached: the fixtures average under a kilobyte,
    where a support mailbox carries photos and scanned documents (random bytes: as
    incompressible as those). Written with CRLF line ends, as mail travels."""
    message = email.message_from_bytes(raw, policy=email.policy.SMTP)
    message.add_attachment(random.Random(seed).randbytes(kb * 1024), maintype="application", subtype="pdf", filename=f"scan-{seed}.pdf")
    return message.as_bytes()


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def descendants(pid: int) -> list[int]:
    """The daemon's worker processes (the pipeline's, the archive's and their forkserver)."""
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").iterdir():
            children = (task / "children").read_text().split()
            found += [int(c) for c in children]
            todo += [int(c) for c in children]
    return found


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    """User + system CPU seconds of each live process (from /proc/PID/stat)."""
    tick = os.sysconf("SC_CLK_TCK")
    found = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        found[pid] = (int(fields[11]) + int(fields[12])) / tick
    return found


class CpuAccount:
    """CPU seconds each party spent between `start()` and `stop()`: the daemon, its
    worker processes, Dovecot (master and children) and this benchmark process (its
    aiosmtpd server thread and its polling). Shows where a 2-core machine's time went."""

    def __init__(self, daemon_pid: int, dovecot_pid: int, *, postgresql: bool = False):
        self.parties = {
            "daemon": lambda: [daemon_pid],
            "its workers": lambda: descendants(daemon_pid),
            "Dovecot": lambda: [dovecot_pid, *descendants(dovecot_pid)],
            "benchmark + SMTP server": lambda: [os.getpid()],
        }
        if postgresql:  # the server's processes: its share of the two cores is part of the cost
            self.parties["PostgreSQL"] = postgres_pids

    def _snapshot(self) -> dict[str, dict[int, float]]:
        return {name: cpu_seconds(pids()) for name, pids in self.parties.items()}

    def start(self) -> None:
        self.before, self.started, self.steal_before = self._snapshot(), time.monotonic(), steal_seconds()

    def stop(self) -> None:
        after, self.wall = self._snapshot(), time.monotonic() - self.started
        self.steal = steal_seconds() - self.steal_before
        self.spent = {name: sum(cpu - self.before[name].get(pid, 0.0) for pid, cpu in after[name].items()) for name in after}

    def report(self) -> str:
        total = sum(self.spent.values())
        parts = ", ".join(f"{name} {s:.1f}" for name, s in self.spent.items())
        return f"{parts}; {total:.1f} s in {self.wall:.1f} s wall ({total / self.wall:.2f} cores busy); stolen by the hypervisor {self.steal:.1f} s"


def postgres_pids() -> list[int]:
    """Every PostgreSQL process on the machine (backends and helpers; other clusters too, idle here)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    found.append(int(entry.name))
            except OSError:
                continue  # gone meanwhile
    return found


def steal_seconds() -> float:
    """CPU time the virtual machine's cores waited for the host (/proc/stat "steal"):
    a run with much of it measured a slower machine."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    return int(fields[8]) / os.sysconf("SC_CLK_TCK")


def peak_rss_with_workers_mb(pid: int) -> float:
    """The sum of each process's own peak: an upper bound of the peak of the whole."""
    return sum(peak_rss_mb(p) for p in [pid, *descendants(pid)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--latency-samples", type=int, default=100)
    parser.add_argument("--db", help="database URL (default: a fresh SQLite file)")
    parser.add_argument("--no-archive", action="store_true", help="leave case PDFs out (the email core alone)")
    parser.add_argument("--processes", type=int, help="[pipeline] processes (default: the daemon's default)")
    parser.add_argument("--log-level", default="WARNING", help="the daemon's log level (its log is work/daemon.log)")
    parser.add_argument("--attachment-kb", type=int, default=0, help="attach a file of this many KB to every message (default: none)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="intake-bench-"))
    db_url = args.db or f"sqlite:///{work / 'intake.db'}"
    with DovecotServer() as dovecot, SmtpServer() as smtp:
        config = write_config(
            work / "intake.toml",
            db_url=db_url,
            var=work / "var",
            dovecot=dovecot,
            smtp=smtp,
            extra=f'[log]\nlevel = "{args.log_level}"\n'
            + ("[archive]\nenabled = false\n" if args.no_archive else "")
            + (f"[pipeline]\nprocesses = {args.processes}\n" if args.processes is not None else ""),
        )
        daemon = DaemonProcess(config, work)
        daemon.cli("init")
        db = Db(db_url)

        speed_before = machine_speed_ms()
        backlog = mixed_backlog(args.messages, args.attachment_kb)
        print(f"appending {len(backlog)} messages ({sum(map(len, backlog)) / 1e6:.1f} MB) ...", flush=True)
        dovecot.append_many("support", "INBOX", backlog)

        try:
            started = time.monotonic()
            daemon.start()
            wait_until(lambda: db.tickets() > 0, 60, interval=0.01, what="first ticket")
            first = time.monotonic()
            cpu = CpuAccount(daemon.proc.pid, dovecot.pid, postgresql=db_url.startswith("postgresql"))
            cpu.start()
            acks = AckCounter(smtp)
            wait_until(lambda: db.tickets() >= args.messages, 1800, interval=0.05, what="all tickets")
            ticketed = time.monotonic()
            wait_until(lambda: acks() >= args.messages, 1800, interval=0.05, what="all acknowledgements")
            done = time.monotonic()
            cpu.stop()
            tickets = db.tickets()
            rss, rss_all = peak_rss_mb(daemon.proc.pid), peak_rss_with_workers_mb(daemon.proc.pid)

            latencies = []
            for i in range(args.latency_samples):
                before = acks()
                raw = corpus(1, seed=1000 + i)[0].replace(b"li.wei@example.cn", f"idle{i}@example.cn".encode())
                t0 = time.monotonic()
                dovecot.append("support", "INBOX", raw)
                wait_until(lambda before=before: acks() > before, 30, interval=0.002, what="acknowledgement")
                latencies.append(time.monotonic() - t0)
            rss, rss_all = max(rss, peak_rss_mb(daemon.proc.pid)), max(rss_all, peak_rss_with_workers_mb(daemon.proc.pid))
            daemon.terminate()
        finally:
            daemon.close()  # killed if a wait above failed: no daemon is left running
            db.close()

    n = args.messages
    q = statistics.quantiles(latencies, n=20)
    print(f"database:              {db_url.split(':')[0]}")
    print(f"backlog:               {n} messages -> {tickets} tickets, {n} acknowledgements received")
    print(f"throughput:            {n / (done - first):.0f} messages/s (first ticket to last acknowledgement)")
    print(f"tickets alone:         {n / (ticketed - first):.0f} messages/s (the last acknowledgement {done - ticketed:.1f} s after the last ticket)")
    print(f"including start-up:    {n / (done - started):.0f} messages/s ({done - started:.1f} s)")
    print(f"CPU seconds, backlog:  {cpu.report()}")
    print(
        f"machine speed:         reference loop {speed_before:.0f} ms before, {machine_speed_ms():.0f} ms after "
        "(lower is faster; 250 ms on 2026-12-06 at 04:52, a quiet hour)"
    )
    print(f"daemon peak RSS:       {rss:.0f} MB; {rss_all:.0f} MB with its worker processes (the sum of each one's peak)")
    print(f"APPEND -> ack (IDLE):  p50 {statistics.median(latencies) * 1000:.0f} ms, p95 {q[18] * 1000:.0f} ms over {len(latencies)} messages")


if __name__ == "__main__":
    main()
