"""Hot reload: when the rules file or the lexicon it names ([lexicon] file) changes, load
them; a broken file is refused and the rules in force stay.

The parent directory is watched, not the file: editors and `mv` replace the file
by renaming, which a watch on the file itself would miss. Events are debounced so
an editor's write-then-rename counts once, and a file whose bytes did not change
is not reloaded.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver

from classify.classifier import Classifier
from classify.errors import RulesError
from classify.rules import lexicon_places

log = logging.getLogger("intake.classify.rules")


class RulesWatcher:
    def __init__(
        self,
        rules_path: Path,
        on_reload: Callable[[Classifier], None],
        on_error: Callable[[RulesError], None] | None = None,
        *,
        debounce: float = 0.2,
    ) -> None:
        self.path = Path(os.path.abspath(rules_path))  # as named: a link swapped over it is a change
        self.on_reload, self.on_error, self.debounce = on_reload, on_error, debounce
        self._watched = self._files()  # what a change of reloads the rules: refreshed at each reload
        self._digest = self._read_digest()  # the rules already in force came from these bytes
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()
        self._observer: BaseObserver | None = None  # Observer is the platform's BaseObserver subclass

    def _files(self) -> list[Path]:
        """The rules file and the places of the lexicon it names now (read from the file, so
        that a rules file that starts or stops naming one is followed)."""
        return [self.path, *lexicon_places(self.path)]

    def _paths(self) -> set[Path]:
        """What an event's path is compared with: each watched file as named and, when it is
        a symbolic link, the file it points to (an edit of the target, a swap of the link)."""
        files = self._watched
        return {*files, *(file.resolve() for file in files)}

    def _read_digest(self) -> str | None:
        digest = hashlib.sha256()
        for file in self._watched:
            try:
                digest.update(file.read_bytes())
            except OSError:
                if file == self.path:
                    return None
            digest.update(b"\0")
        return digest.hexdigest()

    def start(self) -> None:
        handler = _Handler(self._paths, self._changed)
        self._observer = Observer()
        # the folders as they are at start (a link's and its target's); a lexicon moved to
        # another folder later is seen at the next change of the rules file
        for folder in sorted({str(file.parent) for file in self._paths()}):
            self._observer.schedule(handler, folder, recursive=False)
        self._observer.daemon = True
        self._observer.start()

    def stop(self) -> None:
        with self._lock:
            if self._timer:
                self._timer.cancel()
        if self._observer:
            self._observer.stop()
            self._observer.join(timeout=5)
            self._observer = None

    def _changed(self) -> None:
        with self._lock:
            if self._timer:
                self._timer.cancel()
            self._timer = threading.Timer(self.debounce, self.reload)
            self._timer.daemon = True
            self._timer.start()

    def reload(self) -> None:
        """Load the file now; called by the watcher, callable by hand (e.g. on SIGHUP)."""
        self._watched = self._files()
        digest = self._read_digest()
        if digest is None or digest == self._digest:
            return
        try:
            classifier = Classifier.from_file(self.path)
        except RulesError as error:
            self._digest = digest  # report a broken file once, not on every event
            log.error("rules not reloaded, the previous rules stay in force: %s", error)
            if self.on_error:
                self.on_error(error)
            return
        self._digest = digest
        log.info("rules reloaded from %s (%d rules)", self.path, len(classifier.ruleset.rules))
        self.on_reload(classifier)


class _Handler(FileSystemEventHandler):
    def __init__(self, files: Callable[[], set[Path]], changed: Callable[[], None]) -> None:
        self.files, self.changed = files, changed

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type not in ("created", "modified", "moved", "closed", "deleted"):
            return
        # str paths, as watched (watchdog gives bytes only for a folder watched as bytes)
        paths = {os.fsdecode(event.src_path), os.fsdecode(getattr(event, "dest_path", "") or "")}
        watched = self.files()
        if any(p and (Path(os.path.abspath(p)) in watched or Path(p).resolve() in watched) for p in paths):
            self.changed()
