"""The shared core of the folder sources (Maildir drop folder, form spool): scan, watch, take, move.

At start every ready file is taken (files that arrived while the daemon was down);
then watchdog events wake the loop, and a periodic rescan catches what inotify missed.
Each file goes to `sink.take(raw, ref)`; only after that returned (the ticket is
committed) is the file moved, atomically, to its done place, or to its rejected place
with a reason file beside it. Nothing is ever deleted. A sink failure leaves the file
where it is, to be offered again at the next scan.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver

from intake.files import move, write_atomic
from intake.sources.base import Result, Sink, SourceRef

log = logging.getLogger("intake.sources.folder")


@dataclass(frozen=True)
class Places:
    """Where a taken file goes: its done path, its rejected path, and the reason file's path."""

    done: Path
    rejected: Path
    reason: Path


class _Claims:
    """Files being taken in this process, by path: the web endpoint and the watcher
    may both reach for the same spool file; the second waits for the first."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._busy: set[str] = set()

    def acquire(self, key: str) -> None:
        with self._cond:
            while key in self._busy:
                self._cond.wait()
            self._busy.add(key)

    def release(self, key: str) -> None:
        with self._cond:
            self._busy.discard(key)
            self._cond.notify_all()


_CLAIMS = _Claims()
REPORT_EVERY = 10.0  # one per process, shared by every source instance on any folder


class FolderSource:
    """A watched folder whose files become tickets. Subclasses say which files are
    candidates, what their ref key is and where they go when done."""

    channel = "email"

    def __init__(
        self,
        name: str,
        sink: Sink,
        watch_dirs: list[Path],
        *,
        settle_seconds: float = 1.0,
        rescan_seconds: float = 30.0,
        max_bytes: int = 50_000_000,
    ) -> None:
        self.name = name
        self.sink = sink
        self.watch_dirs = watch_dirs
        self.lease = None  # set by the daemon on PostgreSQL (intake/sources/lease.py)
        # A file younger than this may still be being written by someone who did not
        # use tmp/ + rename (a person copying with cp); it is taken a moment later.
        self.settle_seconds = settle_seconds
        self.rescan_seconds = rescan_seconds
        self.max_bytes = max_bytes
        self._last_report: tuple[int, str | None] | None = None
        self._last_report_at = 0.0

    # -- what subclasses decide -------------------------------------------------

    def candidates(self) -> Iterator[Path]:
        """Every file that may be an item (not temp files); subclasses narrow it."""
        for folder in self.watch_dirs:
            try:
                entries = list(os.scandir(folder))
            except FileNotFoundError:
                continue
            for entry in entries:
                if not self.wanted(entry.name) or not entry.is_file(follow_symlinks=False):
                    continue
                yield Path(entry.path)

    def key(self, path: Path) -> str:
        return path.name

    def ref(self, path: Path, data: bytes) -> SourceRef:
        """The item's identity: its name and its content, so a name used again for other
        bytes (another system reusing "submission.json") is a new item, not a duplicate."""
        digest = hashlib.sha256(data).hexdigest()[:16]
        return SourceRef(source=self.name, key=f"{self.key(path)}#{digest}", channel=self.channel)

    def wanted(self, name: str) -> bool:
        """Whether a file of this name in a watched folder may be an item (temp files are not)."""
        return not name.startswith(".")

    def places(self, path: Path) -> Places:
        raise NotImplementedError

    def prepare(self) -> None:
        """Create the folders this source needs."""
        for folder in self.watch_dirs:
            folder.mkdir(parents=True, exist_ok=True)

    # -- scanning ---------------------------------------------------------------

    def pending(self, now: float | None = None, *, settle: bool = True) -> tuple[list[Path], float | None]:
        """Ready files in arrival order, and when the next not-yet-settled one will be ready."""
        now = time.time() if now is None else now
        ready: list[tuple[float, str, Path]] = []
        next_ready: float | None = None
        for path in self.candidates():
            try:
                mtime = path.stat().st_mtime
            except FileNotFoundError:
                continue
            if settle and now - mtime < self.settle_seconds:
                at = mtime + self.settle_seconds
                next_ready = at if next_ready is None else min(next_ready, at)
                continue
            ready.append((mtime, path.name, path))
        ready.sort()
        return [p for _, _, p in ready], next_ready

    def run_once(self) -> int:
        """Take every file there once (`intake run --once`, `intake ingest`-like: the caller
        says the files are complete, so no settling); returns how many were taken."""
        taken, _ = self._scan(settle=False)
        return taken

    def _scan(self, *, settle: bool = True) -> tuple[int, float | None]:
        if self.lease is not None and not self.lease.acquire():
            return 0, None  # a folder shared by several daemons is scanned by the lease holder
        files, next_ready = self.pending(settle=settle)
        taken = 0
        error: str | None = None
        for path in files:
            try:
                if self.take_file(path) is not None:
                    taken += 1
            except Exception as exc:  # the sink failed (database down): keep the file, try later
                error = f"{path.name}: {exc}"
                log.exception("%s: could not take %s; it stays for the next scan", self.name, path.name)
                break
        self._report(len(files) - taken, error)
        return taken, next_ready

    def _report(self, backlog: int, error: str | None) -> None:
        """Record the scan for `intake status`: at once when something changed, else at most
        every REPORT_EVERY seconds (a busy folder must not add a database write per event)."""
        now = time.monotonic()
        changed = (backlog, error) != self._last_report
        if not changed and now - self._last_report_at < REPORT_EVERY:
            return
        try:
            self.sink.report(self.name, backlog=backlog, error=error)
            self._last_report, self._last_report_at = (backlog, error), now
        except Exception:  # reporting is best effort; the files matter
            log.exception("%s: could not record the scan", self.name)

    # -- taking one file --------------------------------------------------------

    def take_file(self, path: Path, raw: bytes | None = None) -> Result | None:
        """Offer one file to the sink, then move it. Returns None when the file was
        already gone and no `raw` was given. With `raw` (the web endpoint, which wrote
        the file), a file that another thread took first is offered again so the
        pipeline answers `duplicate` with the ticket reference."""
        claim = str(path.absolute())
        _CLAIMS.acquire(claim)
        try:
            try:
                size = path.stat().st_size
                if size > self.max_bytes:
                    reason = f"file of {size} bytes exceeds the limit of {self.max_bytes}"
                    self._reject(path, reason)
                    return Result("quarantined", reason=reason)
                data = path.read_bytes()
            except FileNotFoundError:
                if raw is None:
                    return None
                return self.sink.take(raw, self.ref(path, raw))
            result = self.sink.take(data, self.ref(path, data))
            if result.outcome == "quarantined":
                self._reject(path, result.reason or "quarantined by the pipeline")
            else:
                move(path, self.places(path).done)
            log.info("%s: %s -> %s %s", self.name, path.name, result.outcome, result.ticket or "")
            return result
        finally:
            _CLAIMS.release(claim)

    def _reject(self, path: Path, reason: str) -> None:
        places = self.places(path)
        # The reason first: a crash between the two leaves the file to be offered again.
        places.reason.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(places.reason, (reason.rstrip() + "\n").encode("utf-8"))
        move(path, places.rejected)
        log.warning("%s: %s rejected: %s", self.name, path.name, reason)

    # -- watching ---------------------------------------------------------------

    def run_forever(self, stop: threading.Event) -> None:
        """Take what is there, then watch until `stop` is set (returns within about a second)."""
        self.prepare()
        wake = threading.Event()
        observer = self._start_observer(wake)
        try:
            next_scan = 0.0
            while not stop.is_set():
                now = time.monotonic()
                if wake.is_set() or now >= next_scan:
                    wake.clear()
                    try:
                        _, next_ready = self._scan()
                    except Exception as exc:  # a file-system error must not end the source for good
                        log.exception("%s: scan failed; trying again", self.name)
                        self._report(-1, f"scan failed: {exc}")
                        next_ready = time.time() + 5
                    next_scan = time.monotonic() + self.rescan_seconds
                    if next_ready is not None:  # a file still settling: look again when it is ready
                        next_scan = min(next_scan, time.monotonic() + max(0.05, next_ready - time.time()))
                # Short waits so that `stop` is honoured promptly.
                wake.wait(timeout=min(0.5, max(0.0, next_scan - time.monotonic())))
        finally:
            if observer is not None:
                observer.stop()
                observer.join(timeout=2)

    def _start_observer(self, wake: threading.Event) -> BaseObserver | None:  # Observer is the platform's BaseObserver subclass
        handler = _Wake(wake, self)
        observer = Observer()
        try:
            for folder in self.watch_dirs:
                observer.schedule(handler, str(folder), recursive=False)
            observer.daemon = True
            observer.start()
        except OSError:  # inotify limits reached: the periodic rescan still works
            log.exception("%s: cannot watch %s; relying on the rescan every %ss", self.name, self.watch_dirs, self.rescan_seconds)
            return None
        return observer


class _Wake(FileSystemEventHandler):
    """Wakes the loop when a possible item appears in a watched folder; our own moves
    out of it (to done/) and temp files do not wake it."""

    def __init__(self, wake: threading.Event, source: FolderSource) -> None:
        self.wake = wake
        self.source = source
        self.folders = {os.path.abspath(d) for d in source.watch_dirs}

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.is_directory or event.event_type not in ("created", "moved", "closed", "modified"):
            return
        path = os.fsdecode(event.dest_path if event.event_type == "moved" else event.src_path)
        folder, name = os.path.split(os.path.abspath(path))
        if folder in self.folders and self.source.wanted(name):
            self.wake.set()
