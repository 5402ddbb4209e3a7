"""A case PDF that always comes out: the full rendition within limits, else the plain one.

archive.sanitize bounds what is known to be costly in customer HTML; this bounds the rest.
A render gets RENDER_SECONDS (SIGALRM in the render process, raised again every second in
case something swallows it) and the render processes RENDER_ADDRESS_SPACE of memory
(RLIMIT_AS: a render that runs out fails instead of the machine swapping; Python raises
MemoryError, pango and glib abort the process, which the worker then retries plain). If the full rendition fails,
for any reason (RecursionError, the time limit, MemoryError, a weasyprint bug), the plain
rendition is rendered: the record table, every message as shortened text, the attachment
list, the originals embedded. The result says which one, and why, for the archive row.
"""

from __future__ import annotations

import logging
import resource
import signal
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from archive.record import CaseRecord

log = logging.getLogger("intake.archive.render")

RENDER_SECONDS = 120  # the 1 MB shapes of bench/hostile_archive_bench.md take at most 8 s
RENDER_ADDRESS_SPACE = 2 * 1024**3  # a render process maps ~300 MB before its first case


class RenderTimeout(BaseException):
    """The render ran out of time. A BaseException, so no `except Exception` on the way swallows it."""


@contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    """Raise RenderTimeout in this thread after `seconds`. Only the main thread gets signals:
    elsewhere (a render inside the daemon, `workers = 0`) it does nothing."""
    if not seconds or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expired(signum, frame):
        raise RenderTimeout(f"rendering took longer than {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds, 1.0)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def limit_memory(max_bytes: int = RENDER_ADDRESS_SPACE) -> None:
    """Cap this process's address space (for a render process only, never the daemon)."""
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        max_bytes = min(max_bytes, hard)
    resource.setrlimit(resource.RLIMIT_AS, (max_bytes, hard))


@dataclass(frozen=True)
class Rendered:
    pdf: bytes
    rendition: str  # "full" or "plain"
    note: str | None = None  # why plain


def render_with_fallback(
    record: CaseRecord,
    *,
    lang: str = "zh",
    version: int | None = None,
    final: bool = False,
    earlier: Mapping[str, str] | None = None,
    plain_reason: str | None = None,
    seconds: float | None = RENDER_SECONDS,
) -> Rendered:
    """The full rendition, or, if it fails (or `plain_reason` is given), the plain one."""
    from archive.render import render_case_pdf

    if plain_reason is None:
        try:
            with time_limit(seconds):
                return Rendered(render_case_pdf(record, lang=lang, version=version, final=final, earlier=earlier), "full")
        except (Exception, RenderTimeout) as error:
            plain_reason = f"{type(error).__name__}: {error}"[:500]
            log.warning("case %s v%s: full rendition failed (%s); rendering the plain one", record.ticket_ref, version, plain_reason)
    try:
        with time_limit(seconds):
            pdf = render_case_pdf(record, lang=lang, version=version, final=final, earlier=earlier, plain_reason=plain_reason)
    except RenderTimeout as error:  # an ordinary failure to the caller: the job is retried
        raise RuntimeError(f"plain rendition: {error}") from None
    return Rendered(pdf, "plain", plain_reason)
