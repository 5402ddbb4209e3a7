"""Benchmark: APPEND -> acknowledgement on an idle daemon, against the IMAP server's own
IDLE notification delay (issue 16: "p50 APPEND -> acknowledgement within 50 ms of the
IMAP server's own IDLE notification delay").

    .venv/bin/python bench/ack_latency.py [--messages 60] [--rounds 3] [--db sqlite postgres]

A private Dovecot (tests/servers/dovecot.py), an aiosmtpd server on loopback and the real
daemon (`intake run` as a subprocess) with a config that sets only where things are: the
database, the var folder, the SMTP server and one [[imap]] account over TLS. Every timer
is the default of an installed daemon (IDLE on, idle_timeout 300 s, the outbox's
back-off, the archive worker rendering each case's PDF); nothing is shortened for the
benchmark. Each round has a database of its own (a fresh SQLite file, or a fresh
PostgreSQL database that is dropped afterwards) and an empty mailbox.

Per round, after two warm-up messages (not counted), N customer mails (Chinese and
English, 1-30 KB, some with an HTML part) are APPENDed to INBOX one at a time over a
connection of the benchmark's own; each is followed by a wait for its acknowledgement
and a random 0.3-1.0 s pause, so that every message finds the daemon idle in IDLE.
A message not acknowledged within --stall-seconds (1.5 s; the others take about 0.55 s)
counts as stalled: the daemon's IDLE missed it. Unaided it would wait for the next news
on its connection (Dovecot's "still here" every 2 minutes, or the re-IDLE after
idle_timeout, 300 s); to keep the run short the benchmark then APPENDs a second,
unmeasured message, whose EXISTS wakes the daemon, and waits for both acknowledgements.
Percentiles count a stalled message as longer than --stall-seconds.

- IDLE delay: a second connection of the benchmark sits in IDLE on INBOX; the time
  from the APPEND's completion (its tagged OK read) to that watcher reading the EXISTS.
- APPEND -> ack: from the APPEND's completion to the SMTP server having the whole DATA
  of the acknowledgement whose In-Reply-To is the message's Message-ID.

For the messages not stalled, the daemon's log (INFO, millisecond timestamps) tells when
the pipeline's worker committed the ticket (and how long its transaction took), when the
IMAP thread had moved the message to Processed and when the mailer recorded the send.
Figures, and what the stalls are, in bench/ack_latency.md.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402

from bench.crash_acks import PG_ADMIN  # noqa: E402
from bench.machine import machine_speed_ms  # noqa: E402
from tests.daemonproc import DaemonProcess, wait_until  # noqa: E402
from tests.servers import DovecotServer, SmtpServer  # noqa: E402

USER, MAILBOX = "support", "INBOX"
WARM_UP = 2  # messages before the measured ones: first imports, first statements, first render

# -- the mail ------------------------------------------------------------------------------

ZH_SUBJECTS = [
    "订单 {n} 无法付款",
    "设备故障，系统无法登录（{n}）",
    "投诉：物流太慢，订单 {n}",
    "需求：希望增加批量导出功能",
    "咨询发票开具流程",
    "建议改进客服响应速度",
]
EN_SUBJECTS = [
    "Order {n}: payment fails",
    "Login broken since this morning ({n})",
    "Complaint about delivery of order {n}",
    "Feature request: bulk export",
    "Question about invoices",
    "Suggestion for the support portal",
]
ZH_PARAS = [
    "您好，我们公司在贵司平台下的订单 {n} 付款时一直提示错误，已经尝试了三次，请帮忙尽快处理。",
    "今天上午开始系统无法登录，影响了我们的核心业务，客服电话一直占线，请尽快安排技术人员联系我。",
    "上次反馈的问题到现在还没有解决，物流信息一周没有更新，我们对这次的服务很不满意。",
    "希望贵司能增加批量导出报表的功能，目前每次只能导出一页，财务部门的同事工作量很大。",
    "请问增值税专用发票怎么开？需要提供哪些资料？开票周期大概多久？联系电话 13812345678。",
    "附件是我们的采购清单和合同扫描件，请核对后回复，谢谢。如有疑问请随时与我联系。",
]
EN_PARAS = [
    "Hello, paying order {n} keeps failing with an error on the last page. We tried three times today; could you check?",
    "Since this morning nobody in our office can log in, which stops our core business. Please have an engineer call us.",
    "The problem we reported last week is still not solved and the tracking has not moved for seven days. We are not happy.",
    "It would help us a lot if the reports could be exported in bulk; today our finance team exports one page at a time.",
    "How do we get a VAT invoice for our last purchase, and which documents do you need from us? Phone +86 138 1234 5678.",
    "Attached are our purchase list and the signed contract; please check them and reply. Thank you for your help.",
]
ZH_NAMES = ["李娜", "王伟", "张敏", "刘洋", "陈静", "杨磊", "赵丽", "黄强"]
EN_NAMES = ["Anna Becker", "John Miller", "Maria Rossi", "Tom Evans", "Sara Lind", "Paul Martin"]


def customer_message(rng: random.Random, tag: str, i: int) -> tuple[bytes, str]:
    """One customer mail of about 1-30 KB (random), Chinese or English; (raw, Message-ID without <>)."""
    zh = rng.random() < 0.5
    target = rng.randint(1_000, 30_000)
    html = rng.random() < 0.3
    charset = "gb18030" if zh and rng.random() < 0.4 else "utf-8"
    message_id = make_msgid(f"{tag}.{i}", "kehu.example.cn")[1:-1]
    paras = ZH_PARAS if zh else EN_PARAS

    def build(n_paras: int) -> bytes:
        msg = EmailMessage()
        name = rng_names[i % len(rng_names)]
        msg["From"] = f"{name} <customer-{tag}-{i}@kehu.example.cn>"
        msg["To"] = "support@example.com"
        msg["Subject"] = subject
        msg["Date"] = format_datetime(datetime.now().astimezone())
        msg["Message-ID"] = f"<{message_id}>"
        body = "\n\n".join(paras[(i + k) % len(paras)].format(n=i) for k in range(n_paras))
        msg.set_content(body, charset=charset)
        if html:
            msg.add_alternative(
                "<html><body>" + "".join(f"<p>{p}</p>" for p in body.split("\n\n")) + "</body></html>", subtype="html", charset="utf-8"
            )
        return bytes(msg)

    rng_names = ZH_NAMES if zh else EN_NAMES
    subject = rng.choice(ZH_SUBJECTS if zh else EN_SUBJECTS).format(n=i)
    one = len(build(1))
    per_para = max(1, len(build(4)) - len(build(3)))
    raw = build(max(1, 1 + (target - one) // per_para))
    return raw, message_id


# -- the measuring ends ----------------------------------------------------------------------


class IdleWatcher(threading.Thread):
    """A connection of our own in IDLE on the mailbox: when each EXISTS was read (time.time())."""

    def __init__(self, dovecot: DovecotServer):
        super().__init__(name="idle-watcher", daemon=True)
        self.client = dovecot.client(USER, security="tls")
        self.client.select_folder(MAILBOX, readonly=True)
        self.client.idle()
        self.exists: list[float] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            for response in self.client.idle_check(timeout=0.5):
                if len(response) > 1 and response[1] == b"EXISTS":
                    self.exists.append(time.time())

    def close(self) -> None:
        self.done.set()
        self.join(5)
        try:
            self.client.idle_done()
            self.client.logout()
        except Exception:
            pass


class Acks:
    """Acknowledgements the SMTP server got: In-Reply-To (the customer's Message-ID) -> the time
    the server had its whole DATA (Received.at, time.time()). Waits on the server's condition."""

    _IN_REPLY_TO = re.compile(rb"^In-Reply-To:\s*<([^>]+)>", re.IGNORECASE | re.MULTILINE)
    _ACK = re.compile(rb"^Message-ID:\s*<ack\.", re.IGNORECASE | re.MULTILINE)

    def __init__(self, smtp: SmtpServer):
        self.smtp, self.seen = smtp, 0
        self.at: dict[str, float] = {}

    def _read(self) -> None:
        new = self.smtp.messages[self.seen :]
        self.seen += len(new)
        for m in new:
            head = m.raw.split(b"\r\n\r\n", 1)[0]
            found = self._IN_REPLY_TO.search(head)
            if found and self._ACK.search(head):
                self.at.setdefault(found.group(1).decode(), m.at)

    def wait(self, message_id: str, timeout: float) -> float:
        deadline = time.monotonic() + timeout
        while True:
            self._read()
            if message_id in self.at:
                return self.at[message_id]
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no acknowledgement of {message_id} within {timeout} s")
            self.smtp.wait_for(self.seen + 1, timeout=left)


# -- the daemon's log: where the time went ---------------------------------------------------------

_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) \S+\s+(\S+) \[([^\]]+)\] (.*)$")
_TAKEN = re.compile(r"^email imap:\S+ \d+:(\d+) → (\w+)(?: \S+)? \((\d+) ms\)")


def log_events(path: Path) -> list[tuple[float, str, str]]:
    """(time.time(), thread, message) of every line of the daemon's log."""
    events = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        m = _LINE.match(line)
        if m:
            at = time.mktime(time.strptime(m.group(1), "%Y-%m-%d %H:%M:%S")) + int(m.group(2)) / 1000
            events.append((at, m.group(4), m.group(5)))
    return events


def phases(events: list[tuple[float, str, str]], sample: dict) -> dict | None:
    """For one measured message, from the log lines after its APPEND: when the worker
    committed it (and how long its transaction took), when the IMAP thread had moved
    it ("took"), when the mailer recorded a send. Times relative to the APPEND's completion.
    The log's clock has 1 ms steps; None if a line is missing."""
    t0, end = sample["appended"], sample["ack"] + 1.0
    committed = took = sent = None
    work_ms = None
    for at, thread, text in events:
        if at < t0 - 0.002 or at > end:
            continue
        if committed is None and thread == "pipeline" and (m := _TAKEN.match(text)):
            committed, work_ms = at, int(m.group(3))
        elif took is None and thread.startswith("imap:") and "took 1 message" in text:
            took = at
        elif sent is None and thread == "outbox" and text.startswith("sent "):
            sent = at
    if committed is None or took is None or sent is None:
        return None
    return {"committed": committed - t0, "work": work_ms / 1000, "moved": took - t0, "sent": sent - t0}


# -- one round ------------------------------------------------------------------------------------------


def config_text(db_url: str, var: Path, dovecot: DovecotServer, smtp: SmtpServer) -> str:
    """Where things are, nothing else: every timer stays at its default."""
    return f"""\
[database]
url = "{db_url}"
[paths]
var = "{var}"
[smtp]
host = "127.0.0.1"
port = {smtp.port}
[[imap]]
name = "{USER}"
host = "127.0.0.1"
port = {dovecot.tls_port}
security = "tls"
ca_file = "{dovecot.ca_file}"
username = "{USER}"
password = "{dovecot.users[USER]}"
"""


def run_round(db_url: str, n: int, dovecot: DovecotServer, smtp: SmtpServer, work: Path, rng: random.Random, tag: str, stall_seconds: float) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    dovecot.reset()
    smtp.clear()
    config = work / "intake.toml"
    config.write_text(config_text(db_url, work / "var", dovecot, smtp), encoding="utf-8")
    daemon = DaemonProcess(config, work, log=work / "daemon.log")
    daemon.cli("init")
    mails = [customer_message(rng, tag, i) for i in range(WARM_UP + n)]
    acks = Acks(smtp)
    samples: list[dict] = []
    load_before = os.getloadavg()
    daemon.start()
    watcher = appender = None
    try:
        wait_until(lambda: b"intake running" in daemon.log.read_bytes(), 120, what="the daemon running")
        appender = dovecot.client(USER, security="tls")
        for raw, message_id in mails[:WARM_UP]:
            appender.append(MAILBOX, raw)
            acks.wait(message_id, 120)
            time.sleep(1.0)
        watcher = IdleWatcher(dovecot)
        watcher.start()
        time.sleep(1.5)  # the daemon is in IDLE (before 818727c it also left it once a second in)
        nudges = iter(customer_message(rng, tag + "nudge", i) for i in range(n))
        for raw, message_id in mails[WARM_UP:]:
            started = time.time()
            appender.append(MAILBOX, raw)
            appended = time.time()
            nudged = None
            try:
                ack = acks.wait(message_id, stall_seconds)
            except TimeoutError:
                # not taken: the daemon's IDLE missed it. Any news on the mailbox wakes it (or,
                # unaided, Dovecot's "still here" every 2 min or the re-IDLE after idle_timeout)
                nudge_raw, nudge_id = next(nudges)
                appender.append(MAILBOX, nudge_raw)
                nudged = time.time()
                ack = acks.wait(message_id, 120)
                acks.wait(nudge_id, 120)
            stalled = nudged is not None and ack >= nudged
            samples.append({"size": len(raw), "started": started, "appended": appended, "ack": ack, "stalled": stalled})
            time.sleep(rng.uniform(0.3, 1.0))
        time.sleep(0.5)
    finally:
        if watcher is not None:
            watcher.close()
        if appender is not None:
            try:
                appender.logout()
            except Exception:
                pass
        if daemon.alive():
            daemon.terminate()
        daemon.close()
    load_after = os.getloadavg()
    # the watcher's first EXISTS after each APPEND began, before the next one began. None: its
    # session synced only after the daemon had moved the message away (then it is told nothing)
    ends = [s["started"] for s in samples[1:]] + [math.inf]
    for s, end in zip(samples, ends):
        s["exists"] = next((t for t in watcher.exists if s["started"] <= t < end), None) if watcher else None
    events = log_events(daemon.log)
    for s in samples:
        s["phases"] = None if s["stalled"] else phases(events, s)
    return {"samples": samples, "load": (load_before[0], load_after[0]), "log": daemon.log, "stall_seconds": stall_seconds}


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile; inf (a stalled message) sorts last."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def median(values: list[float]) -> float:
    return statistics.median(values)  # with inf among the middle two: inf


def summary(r: dict) -> dict:
    samples = r["samples"]
    idle = [s["exists"] - s["appended"] for s in samples if s["exists"] is not None]
    ack = [math.inf if s["stalled"] else s["ack"] - s["appended"] for s in samples]
    taken = [s for s in samples if not s["stalled"]]
    return {
        "idle_p50": median(idle),
        "idle_p90": pct(idle, 0.9),
        "idle_max": max(idle),
        "ack_p50": median(ack),
        "ack_p90": pct(ack, 0.9),
        "ack_max": max(ack),
        "diff": median(ack) - median(idle),
        "stalled": len(samples) - len(taken),
        # the messages the daemon's IDLE did see (taken without a nudge): their time to the ack
        "seen_ack_p50": median([s["ack"] - s["appended"] for s in taken]) if taken else math.nan,
        "unseen": sum(s["exists"] is None for s in samples),
    }


COLUMNS = ["idle_p50", "idle_p90", "idle_max", "ack_p50", "ack_p90", "ack_max", "diff"]


def ms(x: float, stall_seconds: float) -> str:
    return f"> {stall_seconds * 1000:.0f}" if math.isinf(x) else f"{x * 1000:.0f}"


def row(name: str, s: dict, stall_seconds: float, load: str = "") -> str:
    cells = [ms(s[c], stall_seconds) for c in COLUMNS]
    return f"| {name} | {s['unseen']:.0f} | " + " | ".join(cells) + f" | {s['stalled']:.0f} | {ms(s['seen_ack_p50'], stall_seconds)} | {load} |"


def phase_row(name: str, samples: list[dict]) -> str:
    split = [s["phases"] for s in samples if s["phases"] is not None]
    if not split:
        return f"| {name} | 0 | - | - | - | - | - |"
    med = {k: statistics.median(p[k] for p in split) for k in ("committed", "work", "moved", "sent")}
    return (
        f"| {name} | {len(split)} | {med['committed'] * 1000:.0f} | {med['work'] * 1000:.0f} | "
        f"{med['moved'] * 1000:.0f} | {med['sent'] * 1000:.0f} | {statistics.median(s['ack'] - s['appended'] for s in samples if s['phases']) * 1000:.0f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--db", nargs="+", default=["sqlite", "postgres"], choices=["sqlite", "postgres"])
    parser.add_argument(
        "--stall-seconds", type=float, default=1.5, help="no acknowledgement by then: the IDLE missed it (nudged, counted as stalled)"
    )
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--keep", action="store_true", help="keep the work folder (the daemons' logs)")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    commit = (
        subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip() or "? (not a git checkout)"
    )
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "intake", "classify", "archive", "templates"], cwd=ROOT, capture_output=True, text=True
    ).stdout
    started = time.monotonic()
    print(
        f"commit {commit}" + (f" (with {len(dirty.splitlines())} uncommitted change(s) under intake/ classify/ archive/ templates/)" if dirty else "")
    )
    print(
        f"{platform.node()}: {os.cpu_count()} cores, Python {platform.python_version()}, machine speed {machine_speed_ms():.0f} ms (bench/machine.py)"
    )
    print(f"started {datetime.now().astimezone():%Y-%m-%d %H:%M %Z}, load average {os.getloadavg()[0]:.2f}", flush=True)
    results: dict[str, list[dict]] = {}
    work = Path(tempfile.mkdtemp(prefix="intake-ack-latency-"))
    with DovecotServer() as dovecot, SmtpServer() as smtp:
        for db in args.db:
            for k in range(args.rounds):
                tag = f"{db}{k}"
                folder = work / tag
                if db == "sqlite":
                    r = run_round(f"sqlite:///{folder / 'intake.db'}", args.messages, dovecot, smtp, folder, rng, tag, args.stall_seconds)
                else:
                    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
                        name = f"intake_ack_{uuid.uuid4().hex[:8]}"
                        admin.execute(f'CREATE DATABASE "{name}"')
                        try:
                            url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
                            r = run_round(url, args.messages, dovecot, smtp, folder, rng, tag, args.stall_seconds)
                        finally:
                            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                results.setdefault(db, []).append(r)
                s = summary(r)
                print(
                    f"{db} round {k + 1}: IDLE p50 {ms(s['idle_p50'], args.stall_seconds)} ms, APPEND->ack p50 {ms(s['ack_p50'], args.stall_seconds)} ms, "
                    f"{s['stalled']} of {len(r['samples'])} stalled, seen by the daemon's IDLE: ack p50 {ms(s['seen_ack_p50'], args.stall_seconds)} ms; "
                    f"load {r['load'][0]:.2f} -> {r['load'][1]:.2f}",
                    flush=True,
                )
    names = {"sqlite": "SQLite", "postgres": "PostgreSQL"}
    sizes = [s["size"] for rs in results.values() for r in rs for s in r["samples"]]
    print(
        f"\n{args.messages} messages a round, {min(sizes)}-{max(sizes)} bytes (median {statistics.median(sizes):.0f}); "
        f"ms from the APPEND's completion; stalled: no acknowledgement within {args.stall_seconds:.1f} s; "
        f"finished {datetime.now().astimezone():%H:%M %Z} after {(time.monotonic() - started) / 60:.1f} min"
    )
    print(
        "| database, round | no EXISTS seen | IDLE p50 | IDLE p90 | IDLE max | ack p50 | ack p90 | ack max | ack p50 - IDLE p50 | stalled "
        "| ack p50, not stalled | load average before / after |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for db, rounds in results.items():
        sums = [summary(r) for r in rounds]
        for k, (r, s) in enumerate(zip(rounds, sums)):
            print(row(f"{names[db]} {k + 1}", s, args.stall_seconds, f"{r['load'][0]:.2f} / {r['load'][1]:.2f}"))
        print(row(f"**{names[db]}, median of the rounds**", {c: median([s[c] for s in sums]) for c in sums[0]}, args.stall_seconds))
    print("\nthe messages not stalled, from the daemon's log: medians, ms from the APPEND's completion")
    print(
        "| database, round | messages | worker logged the commit | of it the transaction | IMAP thread logged the MOVE | mailer logged sent | ack at the SMTP server |"
    )
    print("|---|---|---|---|---|---|---|")
    for db, rounds in results.items():
        for k, r in enumerate(rounds):
            print(phase_row(f"{names[db]} {k + 1}", r["samples"]))
    appends = [s["appended"] - s["started"] for rs in results.values() for r in rs for s in r["samples"]]
    print(f"APPEND itself: p50 {statistics.median(appends) * 1000:.1f} ms")
    if args.keep:
        print(f"logs kept under {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
