"""Case PDFs per second with 1 and 2 worker processes, median file size, and the CJK font choice.

Run: .venv/bin/python bench/archive_bench.py [--n 60] [--fonts]
Writes nothing but a temporary SQLite database and archive folder; prints a Markdown table
(copy it into bench/archive_bench.md).

- render: the typical case (archive.sample: 4 messages, 2 pages, 2 embedded .eml) rendered
  by render_case_pdf in N processes, after each process warmed up (fonts loaded).
- worker: the same through ArchiveWorker end to end (claim, load, render in the pool, store
  atomically, row + chain + audit, manifest) on SQLite.
- --fonts: one process, the same case with each candidate CJK font forced.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from archive.render import render_case_pdf  # noqa: E402
from archive.sample import sample_case  # noqa: E402


def _case(i: int):
    return sample_case(f"261122-{i:04d}", customer=f"深圳市某科技有限公司{i}")


def _render(i: int) -> int:
    return len(render_case_pdf(_case(i), version=1))


def _warm() -> None:
    render_case_pdf(_case(0))


def bench_render(processes: int, n: int) -> tuple[float, list[int]]:
    ctx = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(processes, mp_context=ctx) as pool:
        for f in [pool.submit(_warm) for _ in range(processes * 2)]:
            f.result()
        start = time.perf_counter()
        sizes = list(pool.map(_render, range(1, n + 1)))
        elapsed = time.perf_counter() - start
    return n / elapsed, sizes


def _load(session, ticket_id: int):
    return replace(_case(ticket_id), status="in_progress", closed_on=None)


def bench_worker(processes: int, n: int) -> float:
    from archive.storage import LocalStorage
    from archive.worker import ArchiveWorker, enqueue
    from intake.store.db import make_engine, make_sessions, upgrade

    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{tmp}/bench.db")
        upgrade(engine)
        sessions = make_sessions(engine)
        with ArchiveWorker(sessions, LocalStorage(Path(tmp) / "archive"), _load, processes=processes) as worker:
            with sessions() as s, s.begin():  # warm the pool up on a few jobs first
                for i in range(processes * 2):
                    enqueue(s, 10_000 + i, "opened")
            worker.run_once()
            with sessions() as s, s.begin():
                for i in range(1, n + 1):
                    enqueue(s, i, "opened")
            start = time.perf_counter()
            stats = worker.run_once()
            elapsed = time.perf_counter() - start
        engine.dispose()
        assert stats.written == n, stats
    return n / elapsed


FONT_CANDIDATES = {
    "Intake Sans (Noto Sans CJK SC, split subsets; the choice)": None,
    "Noto Sans CJK SC (system .ttc)": "Noto Sans CJK SC",
    "Noto Serif CJK SC (system .ttc)": "Noto Serif CJK SC",
    "WenQuanYi Micro Hei (fonts-wqy-microhei)": "WenQuanYi Micro Hei",
}


def bench_fonts(rounds: int = 8) -> list[tuple[str, float, int, int]]:
    import subprocess

    import weasyprint

    from archive import render

    html = render.render_case_html(_case(1))
    css, font_config = render._stylesheet()
    out = []
    for name, family in FONT_CANDIDATES.items():
        sheets = [css]
        if family:
            if subprocess.run(["fc-list", family], capture_output=True, text=True).stdout.strip() == "":
                out.append((name + " — not installed", float("nan"), 0, 0))
                continue
            sheets.append(weasyprint.CSS(string=f'* {{ font-family: "{family}" !important }}'))

        def one(sheets: list = sheets) -> bytes:  # bound: this round's stylesheets
            doc = weasyprint.HTML(string=html, base_url=render.TEMPLATE_DIR.as_uri() + "/", url_fetcher=render.make_fetcher())
            return doc.write_pdf(pdf_variant=render.PDF_VARIANT, stylesheets=sheets, font_config=font_config)

        one()
        times = []
        for _ in range(rounds):
            t = time.process_time()  # CPU time: comparable even on a busy machine
            pdf = one()
            times.append(time.process_time() - t)
        pages = len(
            weasyprint.HTML(string=html, base_url=render.TEMPLATE_DIR.as_uri() + "/", url_fetcher=render.make_fetcher())
            .render(stylesheets=sheets, font_config=font_config)
            .pages
        )
        out.append((name, statistics.median(times) * 1000, len(pdf), pages))
    return out


def cpu_per_pdf(rounds: int = 15) -> float:
    """CPU seconds of one render in this process (median): unlike wall-clock rates, not
    distorted by other programs sharing the machine. cores / this = the ceiling in PDFs/s."""
    _warm()
    times = []
    for i in range(rounds):
        t = time.process_time()
        render_case_pdf(_case(i), version=1)
        times.append(time.process_time() - t)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=60, help="PDFs per measurement")
    parser.add_argument("--fonts", action="store_true", help="also compare CJK fonts")
    args = parser.parse_args()

    from weasyprint.text.ffi import harfbuzz_subset

    print(f"HarfBuzz subsetter (libharfbuzz-subset0) in use: {harfbuzz_subset is not None}")
    print(f"CPUs: {multiprocessing.cpu_count()}; load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}\n")
    print("| measurement | processes | PDFs/s | median size |")
    print("|---|---|---|---|")
    rates = {}
    for processes in (1, 2):
        rate, sizes = bench_render(processes, args.n)
        rates[processes] = rate
        print(f"| render_case_pdf in a pool | {processes} | {rate:.1f} | {statistics.median(sizes) / 1024:.0f} KB |")
    for processes in (1, 2):
        print(f"| ArchiveWorker end to end (SQLite) | {processes} | {bench_worker(processes, args.n):.1f} | |")
    print(f"\nratio 2 vs 1 processes (render): {rates[2] / rates[1]:.2f}")
    cpu = cpu_per_pdf()
    print(
        f"CPU per PDF (median, one process): {cpu * 1000:.0f} ms → ceiling {multiprocessing.cpu_count() / cpu:.1f} PDFs/s "
        f"on {multiprocessing.cpu_count()} idle cores"
    )
    if args.fonts:
        print("\n| font | CPU ms per PDF (1 process, median) | size | pages |")
        print("|---|---|---|---|")
        for name, ms, size, pages in bench_fonts():
            print(f"| {name} | {ms:.0f} | {size / 1024:.0f} KB | {pages} |")


if __name__ == "__main__":
    main()
