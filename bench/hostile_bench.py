"""Hostile shapes of issue 13 section 1 through parsing and classification, at 10 KB, 100 KB and 1 MB.

Run: .venv/bin/python bench/hostile_bench.py [--runs 5] [--sizes 10000,100000,1000000] [--shapes ...]
Prints a Markdown table (copy it into bench/hostile_bench.md).

Each message goes through intake.pipeline.stages.prepare in this process, as the pipeline runs
it before an item's transaction: parse_message (headers, MIME, HTML to text, the quote
stripper) and the classifier, on the rules the daemon ships with. Per message: the
median CPU time (time.process_time) over the runs, so that other people's work on this
shared machine counts as little as it can, and the time at 100 KB over the time at
10 KB (10 for linear work, 100 for quadratic). Targets of the issue: that ratio at most
about 15, and no message over 1 s. The case PDF render of such shapes is measured by
bench/hostile_archive_bench.py (archive/, in its own processes with their limits).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.machine import machine_speed_ms  # noqa: E402


def _fill(unit: str, n: int) -> str:
    """`unit` repeated to about n bytes of UTF-8."""
    return unit * max(1, n // len(unit.encode()))


def _mail(body: str, content_type: str = "text/plain; charset=utf-8", headers: str = "") -> bytes:
    return (
        f"From: 张伟 <zhang.wei@kehu.example.cn>\r\nTo: support@example.com\r\nSubject: 订单问题 order problem\r\n"
        f"Date: Mon, 23 Nov 2026 10:15:00 +0800\r\nMessage-ID: <bench@kehu.example.cn>\r\n"
        f"Content-Type: {content_type}\r\n{headers}\r\n{body}\r\n"
    ).encode()


# name -> (what it is, raw message of about n bytes)
SHAPES = {
    "negation": ("body 'not urgent urgent ' repeated (a negated keyword)", lambda n: _mail(_fill("not urgent urgent ", n))),
    "negation-zh": ("body '不紧急，紧急紧急' repeated", lambda n: _mail(_fill("不紧急，紧急紧急", n))),
    "anchored": ("body 'how ' repeated ('^how' counts only at a sentence's start)", lambda n: _mail(_fill("how ", n))),
    "html-attr": ("HTML-only, '<a b=\"' repeated", lambda n: _mail("<p>请尽快处理。</p>" + _fill('<a b="', n), "text/html; charset=utf-8")),
    "html-lists": ("HTML-only, '<ol><li>x' nested", lambda n: _mail("<p>请尽快处理。</p>" + _fill("<ol><li>x", n), "text/html; charset=utf-8")),
    "html-divs": (
        "HTML-only, 200 nested divs repeated",
        lambda n: _mail(_fill("<div>" * 200 + "深层 deep" + "</div>" * 200, n), "text/html; charset=utf-8"),
    ),
    "html-colspan": (
        "HTML-only, '<td colspan=100000>' rows",
        lambda n: _mail("<table>" + _fill("<tr><td colspan=100000>单元格 cell</td></tr>", n) + "</table>", "text/html; charset=utf-8"),
    ),
    "param": ("Content-Type parameter x=\" then ';' repeated", lambda n: _mail("请尽快处理订单。", 'text/plain; charset=utf-8; x="' + ";" * n)),
    "param-multipart": (
        "multipart Content-Type parameter x=\" then ';' (read while parsing)",
        lambda n: _mail(
            "--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n请尽快处理订单。\r\n--b--", 'multipart/mixed; boundary="b"; x="' + ";" * n
        ),
    ),
    "parts": (
        "multipart/mixed of tiny text parts",
        lambda n: _mail(_fill("--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n订单 x\r\n", n) + "--b--", 'multipart/mixed; boundary="b"'),
    ),
    "headers": (
        "header lines 'X-A: =?utf-8?b?5L2g5aW9?=' repeated",
        lambda n: _mail("请尽快处理订单。", headers=_fill("X-A: =?utf-8?b?5L2g5aW9?=\r\n", n)),
    ),
    "indented": ("plain text, lines indented by 96 spaces (the quote stripper's line patterns)", lambda n: _mail(_fill(" " * 96 + "1. 订单 x\n", n))),
    "indented-wrote": (
        "lines indented by 96 spaces that end like an attribution (the quote stripper's attribution patterns)",
        lambda n: _mail(_fill(" " * 96 + "On Monday John Smith wrote am the thing\n", n)),
    ),
    "trailing-rules": ("'Hello' then rule lines '***' (the quote stripper's signature trim)", lambda n: _mail("Hello\n" + _fill("***\n", n))),
    "ordinary": (
        "an ordinary Chinese and English complaint, repeated (the baseline)",
        lambda n: _mail(
            _fill(
                "你好，我们的系统从今天早上开始无法登录，所有员工都受影响，请尽快处理。"
                "The login page hangs since this morning, please fix it urgently.\n",
                n,
            )
        ),
    ),
}


def make_context(folder: Path):
    """A real context on a SQLite file: prepare reads its limits and classifier."""
    from intake.config import from_dict
    from intake.context import build_context
    from intake.store.db import make_engine, upgrade

    config = from_dict({"database": {"url": f"sqlite:///{folder / 'intake.db'}"}, "paths": {"var": str(folder / "var")}})
    upgrade(make_engine(config.database.url))
    return build_context(config)


def prepare_once(ctx, raw: bytes) -> tuple[float, object]:
    from intake.pipeline.case import Case
    from intake.pipeline.stages import prepare
    from intake.sources.base import SourceRef

    case = Case(raw=raw, ref=SourceRef("bench", "k", "email"))
    started = time.process_time()
    prepare(case, ctx)
    if case.classification is None and case.parsed is not None:  # code that classified inside the transaction
        case.classification = ctx.classifier().classify(case.parsed.subject, case.parsed.new_text)
    return time.process_time() - started, case


def _size(n: int) -> str:
    return f"{n // 1_000_000} MB" if n >= 1_000_000 else f"{n // 1000} KB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--shapes", default=",".join(SHAPES))
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory() as folder:
        ctx = make_context(Path(folder))
        prepare_once(ctx, SHAPES["ordinary"][1](1000))  # imports and caches warm
        print(f"machine: reference loop {machine_speed_ms():.0f} ms; {args.runs} runs a message, medians of CPU time\n")
        print("| shape | " + " | ".join(_size(n) for n in sizes) + " | 100 KB : 10 KB | outcome at the largest |")
        print("|---|" + "---:|" * len(sizes) + "---:|---|")
        worst = 0.0
        for shape in args.shapes.split(","):
            _, make = SHAPES[shape]
            times, case = {}, None
            for n in sizes:
                raw = make(n)
                runs = []
                for _ in range(args.runs):
                    seconds, case = prepare_once(ctx, raw)
                    runs.append(seconds)
                times[n] = statistics.median(runs)
                worst = max(worst, times[n])
            ratio = times[100_000] / times[10_000] if 10_000 in times and 100_000 in times and times[10_000] else float("nan")
            if case.unready is not None:
                outcome = f"quarantine: {case.unready}"[:60]
            else:
                c = case.classification
                outcome = f"{c.type}/{c.urgency}, text {len(case.parsed.text):,} chars, {len(case.parsed.defects)} defects"
            print(f"| {shape} | " + " | ".join(f"{times[n] * 1000:,.1f} ms" for n in sizes) + f" | {ratio:.1f} | {outcome} |", flush=True)
        print(f"\nslowest message: {worst * 1000:,.0f} ms; reference loop now {machine_speed_ms():.0f} ms")
        print("\n| shape | what |\n|---|---|")
        for shape in args.shapes.split(","):
            print(f"| {shape} | {SHAPES[shape][0]} |")


if __name__ == "__main__":
    main()
