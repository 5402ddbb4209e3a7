"""Hostile shapes of issue 13 through the case PDF render, at 10 KB, 100 KB and 1 MB.

Run: .venv/bin/python bench/hostile_archive_bench.py [--runs 3] [--sizes 10000,100000,1000000] [--shapes ...]
Prints a Markdown table (copy it into bench/hostile_archive_bench.md).

Each render runs in a fresh process (forkserver, one task a process, one at a time) the way
the archive worker's render processes run it: stylesheet and fonts loaded first, then
archive.safe_render.render_with_fallback with the worker's time limit and memory limit.
Per case: median wall time of the render over the runs, the rendition it came out as, the
PDF's size and pages, and the peak RSS of the render process (fonts included, ~75 MB).
The case is the sample case (archive.sample) with its thread replaced by one customer
message of the given shape and size (bigmail: a thread of two mails of that size, rendered
as version 2, the first mail embedded by version 1).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import multiprocessing
import random
import re
import resource
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.machine import machine_speed_ms  # noqa: E402

AT = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def _fill(unit: str, n: int) -> str:
    return unit * max(1, n // len(unit.encode()))


def shape_html(name: str, n: int) -> str:
    if name == "colspan":  # the 300-byte finding, repeated
        return "<table>" + _fill("<tr><td colspan=100000>单元格 cell</td><td colspan=1000000>x</td></tr>", n) + "</table>"
    if name == "wide":  # many columns, then many rows
        cells = min(500, n // 2 // 24)
        head = "<tr>" + "<td colspan=20>宽</td>" * cells + "</tr>"
        return "<table>" + head + _fill("<tr><td>行 row</td></tr>", n - len(head)) + "</table>"
    if name == "nesting":  # the 2 KB finding (200 nested divs), repeated
        return _fill("<div>" * 200 + "深层 deep" + "</div>" * 200, n)
    if name == "word":  # one unbroken run: a pasted base64 blob
        return "<p>" + base64.b64encode(random.Random(n).randbytes(n * 3 // 4)).decode() + "</p>"
    if name == "table":  # an ordinary, legitimate table
        return "<table>" + _fill("<tr><td>甲</td><td>乙 cell</td></tr>", n) + "</table>"
    raise ValueError(name)


def _eml(n: int, subject: str, seed: int) -> bytes:
    msg = EmailMessage()
    msg["From"] = "张伟 <zhang.wei@kehu.example.cn>"
    msg["To"] = "support@example.com"
    msg["Subject"] = subject
    msg["Message-ID"] = f"<bench-{seed}@kehu.example.cn>"
    msg.set_content("请看附件日志。", charset="utf-8")
    msg.add_attachment(random.Random(seed).randbytes(n * 3 // 4), maintype="application", subtype="octet-stream", filename="日志.bin")
    return bytes(msg)


def make_case(shape: str, n: int):
    """(record, earlier, version) of a shape at n bytes."""
    from archive.record import RawOriginal, ThreadMessage
    from archive.sample import sample_case

    base = sample_case()
    if shape == "bigmail":
        mails = [_eml(n, "设备日志", 1), _eml(n, "Re: 设备日志", 2)]
        messages = [ThreadMessage("in", AT + timedelta(hours=i), "张伟 <zhang.wei@kehu.example.cn>", "设备日志", "请看附件日志。") for i in range(2)]
        originals = [RawOriginal(f"{base.ticket_ref}-{i + 1}-in.eml", m) for i, m in enumerate(mails)]
        earlier = {hashlib.sha256(mails[0]).hexdigest(): "v1 · bench_v1.pdf"}
        return replace(base, messages=messages, raw_originals=originals), earlier, 2
    if shape == "text":
        text = _fill("打印机卡纸问题 paper jam again, see log 2026-11-22 10:00:01 ERROR feed.\n", n)
        html = None
    elif shape == "spaces":  # preserved white space: runs of spaces, then of newlines
        text = "开始 start" + " " * (n // 2) + "中间 middle" + "\n" * (n // 2) + "结束 end"
        html = None
    else:
        html = shape_html(shape, n)
        text = re.sub(r"<[^>]+>", " ", html)  # roughly what the parser's text rendition holds
    message = ThreadMessage("in", AT, "客户 <kehu@example.cn>", "hostile shape", text, html=html)
    return replace(base, messages=[message]), {}, 1


def _warm() -> None:
    from archive.render import _stylesheet
    from archive.safe_render import limit_memory

    limit_memory()  # as the worker's render processes
    _stylesheet()


def render_once(shape: str, n: int) -> dict:
    """In a fresh render process: build the case, render it as the worker does, measure."""
    import pypdf

    from archive.safe_render import render_with_fallback

    record, earlier, version = make_case(shape, n)
    started = time.perf_counter()
    rendered = render_with_fallback(record, version=version, earlier=earlier)
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "rendition": rendered.rendition,
        "note": rendered.note or "",
        "bytes": len(rendered.pdf),
        "pages": len(pypdf.PdfReader(io.BytesIO(rendered.pdf)).pages),
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def measure(shape: str, n: int, runs: int) -> dict:
    ctx = multiprocessing.get_context("forkserver")
    results = []
    for _ in range(runs):
        with ProcessPoolExecutor(1, mp_context=ctx, initializer=_warm) as pool:
            results.append(pool.submit(render_once, shape, n).result())
    return {
        "seconds": statistics.median(r["seconds"] for r in results),
        "rss_mb": statistics.median(r["rss_mb"] for r in results),
        "bytes": statistics.median(r["bytes"] for r in results),
        "pages": results[-1]["pages"],
        "rendition": "/".join(sorted({r["rendition"] for r in results})),
        "note": results[-1]["note"],
    }


def _size(n: int) -> str:
    return f"{n // 1_000_000} MB" if n >= 1_000_000 else f"{n // 1000} KB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--shapes", default="colspan,wide,nesting,word,table,text,spaces,bigmail")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"machine: reference loop {machine_speed_ms():.0f} ms; {args.runs} runs a case, medians\n")
    print("| shape | size | render s | rendition | PDF | pages | peak RSS MB |")
    print("|---|---|---:|---|---:|---:|---:|")
    ratios = {}
    for shape in args.shapes.split(","):
        by_size = {}
        for n in sizes:
            m = measure(shape, n, args.runs)
            by_size[n] = m["seconds"]
            rendition = m["rendition"] + (f" ({m['note'][:40]})" if m["note"] else "")
            print(
                f"| {shape} | {_size(n)} | {m['seconds']:.2f} | {rendition} | {m['bytes'] / 1024:.0f} KB | {m['pages']} | {m['rss_mb']:.0f} |",
                flush=True,
            )
        if 10_000 in by_size and 100_000 in by_size:
            ratios[shape] = by_size[100_000] / by_size[10_000]
    if ratios:
        print("\n| shape | time 100 KB : 10 KB |")
        print("|---|---:|")
        for shape, ratio in ratios.items():
            print(f"| {shape} | {ratio:.1f} |")


if __name__ == "__main__":
    main()
