"""Benchmark: intake against its peer and against the machine's serial floor, side by
side in one run, on one generated mailbox in a private Dovecot on loopback.

    .venv/bin/python bench/peer_bench.py [--messages 2000] [--rounds 3] [--commit REV] [--keep] [--write]

Each round runs, in turn (the order rotates from round to round), each on the same
messages freshly loaded into the INBOX:
  intake/SQLite      intake's daemon (`intake run`, its own process) on a fresh SQLite
                     file, acknowledgements into a local Maildir, until every ack is sent;
  intake/PostgreSQL  the same on a database created for the run on 127.0.0.1:5432;
  django-helpdesk    its `get_email` command (SQLite, a Queue reading the INBOX over IMAP,
                     acks to files), installed by this script into a throwaway venv;
  serial floor       IMAP fetch + standard-library parse + one durable SQLite commit a
                     message, serially, in this process (bench/peer_runs.py).
Prints medians and min-max of messages/s, the ratios, and the intake daemon's peak RSS
with its workers. `--write` puts the figures into bench/peer_bench.md. Needs Dovecot and
PostgreSQL (scripts/test installs them).
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import shutil
import statistics
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.machine import machine_speed_ms  # noqa: E402
from bench.peer_helpdesk import Helpdesk  # noqa: E402
from bench.peer_runs import (  # noqa: E402
    USER,
    describe_checkout,
    export_commit,
    fsync_ms,
    inbox_count,
    load_mailbox,
    mixed_backlog,
    private_postgres_db,
    run_floor,
    run_intake,
)
from tests.servers import DovecotServer  # noqa: E402

SQLITE, POSTGRES, PEER, FLOOR = "intake, SQLite", "intake, PostgreSQL", "django-helpdesk get_email", "serial floor"
MD = ROOT / "bench" / "peer_bench.md"
START, END = "<!-- figures: written by bench/peer_bench.py --write -->", "<!-- end of figures -->"


class Results:
    """Per variant, one entry a run: messages/s (the headline: first ticket to last ack,
    or the whole run for the floor), messages/s including start-up, and notes. `rate`
    is kept by round, so that a failed run leaves the others' ratios paired right."""

    def __init__(self) -> None:
        self.round = 0
        self.rate: dict[str, dict[int, float]] = {}
        self.rate_with_start: dict[str, list[float]] = {}
        self.rss: dict[str, list[float]] = {}  # intake: peak MB of the daemon with its workers
        self.tickets_alone: dict[str, list[float]] = {}  # intake: first to last ticket
        self.ack_lag: dict[str, list[float]] = {}  # intake: last ack after last ticket, s
        self.problems: list[str] = []

    def add(self, name: str, n: int, seconds: float, seconds_with_start: float) -> None:
        self.rate.setdefault(name, {})[self.round] = n / seconds
        self.rate_with_start.setdefault(name, []).append(n / seconds_with_start)

    def check(self, what: str, got: int, expected: int) -> None:
        if got != expected:
            self.problems.append(f"{what}: {got}, expected {expected}")


def one_run(
    name: str, n: int, dovecot: DovecotServer, backlog: list[bytes], helpdesk: Helpdesk, code: Path | None, work: Path, results: Results
) -> None:
    load_mailbox(dovecot, backlog)
    if name in (SQLITE, POSTGRES):
        if name == SQLITE:
            run = run_intake(f"sqlite:///{work / 'intake.db'}", dovecot, n, work, code)
        else:
            with private_postgres_db() as url:
                run = run_intake(url, dovecot, n, work, code)
        results.add(name, n, run.from_first_ticket, run.from_start)
        results.rss.setdefault(name, []).append(run.peak_rss_mb)
        results.check(f"{name}: tickets", run.tickets, n)
        results.check(f"{name}: acknowledgements sent", run.acks, n)
        results.check(f"{name}: left in the INBOX", inbox_count(dovecot), 0)
        results.tickets_alone.setdefault(name, []).append(n / run.tickets_seconds)
        results.ack_lag.setdefault(name, []).append(run.ack_lag)
        detail = f"tickets alone {n / run.tickets_seconds:.0f} msg/s, last ack {run.ack_lag:.1f} s after the last ticket; {run.peak_rss_mb:.0f} MB peak RSS"
    elif name == PEER:
        run = helpdesk.run(work)
        results.add(name, n, run.from_first_ticket, run.seconds)
        results.check(f"{name}: tickets", run.tickets, n)
        results.check(f"{name}: acknowledgements", run.acks, n)
        results.check(f"{name}: left in the INBOX", inbox_count(dovecot), 0)
        detail = f"{run.tickets} tickets, {run.acks} acks"
    else:
        seconds, stored = run_floor(dovecot, work)
        results.add(name, n, seconds, seconds)
        results.check(f"{name}: rows", stored, n)
        detail = f"{stored} rows"
    print(f"  {name:28} {results.rate[name][results.round]:7.0f} msg/s   ({detail})", flush=True)


def spread(values) -> str:
    values = list(values.values()) if isinstance(values, dict) else values
    if not values:
        return "n/a"
    return f"{statistics.median(values):.0f} ({min(values):.0f}-{max(values):.0f})"


def ratio(results: Results, top: str, bottom: str) -> str:
    """The ratio of the medians, and the range of the same round's ratios."""
    if top not in results.rate or bottom not in results.rate:
        return "n/a (not measured)"
    a, b = results.rate[top], results.rate[bottom]
    rounds = [a[r] / b[r] for r in a if r in b]
    paired = f" (rounds {min(rounds):.1f}-{max(rounds):.1f}x)" if rounds else ""
    return f"{statistics.median(a.values()) / statistics.median(b.values()):.1f}x{paired}"


def machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")), "?")
    return f"{os.cpu_count()} cores ({model}), Python {platform.python_version()}, shared with other work"


class Machine:
    """How busy this shared machine is right now: its CPU speed, its disk's fsync time,
    the load average, and the CPU time stolen by the hypervisor so far."""

    def __init__(self, folder: Path):
        self.loop_ms, (self.append_ms, self.file_ms), self.load = machine_speed_ms(), fsync_ms(folder), os.getloadavg()[0]
        self.steal = int(Path("/proc/stat").read_text().split("\n", 1)[0].split()[8]) / os.sysconf("SC_CLK_TCK")


def report(
    args, results: Results, measured: str, backlog_mb: float, peer_version: str, peer_error: str, before: Machine, after: Machine
) -> list[str]:
    n = args.messages
    lines = [
        f"- mailbox: {n} mixed customer mails, Chinese and English ({backlog_mb:.1f} MB), reloaded before every run; {args.rounds} rounds",
        f"- intake: {measured}",
        "- peer: " + (f"django-helpdesk {peer_version.replace(' ', ', Django ')}" if peer_version else f"django-helpdesk NOT MEASURED: {peer_error}"),
        "",
        "| run | msg/s, median (min-max) | each round | incl. start-up, median (min-max) |",
        "|---|---|---|---|",
    ]
    for name in (SQLITE, POSTGRES, PEER, FLOOR):
        if name in results.rate:
            each = ", ".join(f"{results.rate[name][r]:.0f}" if r in results.rate[name] else "failed" for r in range(args.rounds))
            lines.append(f"| {name} | **{spread(results.rate[name])}** | {each} | {spread(results.rate_with_start[name])} |")
    lines += [
        "",
        f"- intake/peer, SQLite: **{ratio(results, SQLITE, PEER)}** (target >= 10x)",
        f"- intake/peer, PostgreSQL: **{ratio(results, POSTGRES, PEER)}** (target >= 8x)",
        f"- intake/floor, SQLite: **{ratio(results, SQLITE, FLOOR)}**; PostgreSQL: {ratio(results, POSTGRES, FLOOR)} (target >= 1x)",
        *(
            f"- {name}, tickets alone (first to last ticket): {spread(results.tickets_alone[name])} msg/s; "
            f"the last acknowledgement {min(results.ack_lag[name]):.1f}-{max(results.ack_lag[name]):.1f} s after the last ticket"
            for name in (SQLITE, POSTGRES)
            if name in results.tickets_alone
        ),
        "- intake daemon's peak RSS with its workers (sum over the process tree, sampled), MB: "
        + "; ".join(f"{name.removeprefix('intake, ')} {spread(mb)}" for name, mb in results.rss.items())
        + " (target < 200 MB)",
        f"- machine: {machine()}; before / after the runs: reference loop (bench/machine.py) {before.loop_ms:.0f} / {after.loop_ms:.0f} ms, "
        f"append+fsync {before.append_ms:.1f} / {after.append_ms:.1f} ms, new file the Maildir way {before.file_ms:.1f} / {after.file_ms:.1f} ms, "
        f"load average {before.load:.1f} / {after.load:.1f}; "
        f"{after.steal - before.steal:.0f} s stolen by the hypervisor",
    ]
    lines += [f"- CHECK FAILED: {p}" for p in results.problems] or ["- every run: every message ticketed and acknowledged, the INBOX emptied"]
    return lines


def write_md(lines: list[str], command: str) -> None:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    block = "\n".join([START, f"Run {when}: `{command}`", "", *lines, END])
    text = MD.read_text() if MD.exists() else f"# intake against django-helpdesk and the serial floor\n\n{START}\n{END}\n"
    head, rest = text.split(START, 1)
    MD.write_text(head + block + rest.split(END, 1)[1])
    print(f"written to {MD.relative_to(ROOT)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--write", action="store_true", help="put the figures into bench/peer_bench.md")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder (venv, databases, logs) instead of removing it")
    parser.add_argument("--commit", help="measure intake as of this commit (exported into the temp folder), not the working tree")
    args = parser.parse_args()
    command = shlex.join([os.path.relpath(sys.executable, ROOT), "bench/peer_bench.py", *sys.argv[1:]])

    work = Path(tempfile.mkdtemp(prefix="intake-peer-"))
    backlog = mixed_backlog(args.messages)
    results = Results()
    code = work / "code" if args.commit else None
    measured = export_commit(args.commit, code) if args.commit else describe_checkout()
    with DovecotServer() as dovecot:
        helpdesk = Helpdesk(work / "helpdesk", {"host": dovecot.host, "port": dovecot.port, "user": USER, "password": dovecot.users[USER]})
        print(f"installing django-helpdesk into a throwaway venv under {helpdesk.work} ...", flush=True)
        peer_error = helpdesk.install()
        if peer_error:
            print(f"django-helpdesk could not be installed; its figures are left out: {peer_error}", flush=True)
        variants = [SQLITE, POSTGRES, *([] if peer_error else [PEER]), FLOOR]
        before = Machine(work)
        for results.round in range(args.rounds):
            r = results.round
            print(f"round {r + 1} of {args.rounds}", flush=True)
            for i in range(len(variants)):
                name = variants[(r + i) % len(variants)]
                try:
                    one_run(name, args.messages, dovecot, backlog, helpdesk, code, work / f"r{r}-{i}", results)
                except Exception as e:  # noqa: BLE001 - one failed run must not lose the others' figures
                    print(f"  {name:28} FAILED: {e}", flush=True)
                    results.problems.append(f"{name}, round {r + 1}: {str(e)[:300]}")
        after = Machine(work)
    lines = report(args, results, measured, sum(map(len, backlog)) / 1e6, helpdesk.version, peer_error, before, after)
    print("\n".join(lines))
    if args.write:
        write_md(lines, command)
    if args.keep:
        print(f"kept: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
