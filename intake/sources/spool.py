"""The form spool: a folder of `*.json` submissions (intake/inbound/form.py format), from our
web endpoint or dropped by other systems.

Layout: `<spool>/*.json` waiting, `<spool>/tmp/` for files being written (never read),
`<spool>/done/` taken, `<spool>/rejected/` refused with `<name>.reason.txt` beside each
(also temp files a crashed writer left in tmp/ for over an hour).
Other systems must write into tmp/ and rename into the spool (as write_spool_file does);
a file copied in directly is only taken once it has not changed for `settle_seconds`.
"""

from __future__ import annotations

import json
import secrets
import time
from datetime import UTC, datetime
from pathlib import Path

from intake.files import move, write_atomic
from intake.sources.base import Sink
from intake.sources.folder import FolderSource, Places

STALE_TMP_SECONDS = 3600.0  # no honest writer takes an hour between creating and renaming a temp file


class SpoolSource(FolderSource):
    channel = "form"

    def __init__(self, path: Path, sink: Sink, *, name: str = "spool", **options) -> None:
        self.root = Path(path)
        super().__init__(name, sink, [self.root], **options)

    def prepare(self) -> None:
        for sub in ("tmp", "done", "rejected"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self.sweep_tmp()

    def sweep_tmp(self, max_age: float = STALE_TMP_SECONDS) -> int:
        """Move temp files a crash left half-written (never renamed, so never answered or
        taken) out of tmp/ into rejected/, with a reason; returns how many."""
        moved = 0
        now = time.time()
        for path in sorted((self.root / "tmp").iterdir()):
            try:
                if not path.is_file() or now - path.stat().st_mtime < max_age:
                    continue
            except FileNotFoundError:
                continue
            rejected = self.root / "rejected" / path.name.lstrip(".")
            write_atomic(
                rejected.with_name(rejected.name + ".reason.txt"),
                b"an unfinished write left in tmp/ (the writer crashed); it was never a submission\n",
            )
            move(path, rejected)
            moved += 1
        return moved

    def wanted(self, name: str) -> bool:
        return name.endswith(".json") and super().wanted(name)

    def places(self, path: Path) -> Places:
        return Places(
            done=self.root / "done" / path.name,
            rejected=self.root / "rejected" / path.name,
            reason=self.root / "rejected" / f"{path.name}.reason.txt",
        )


def spool_name(now: datetime | None = None) -> str:
    """Sortable and unique: UTC time to the microsecond, then 64 random bits."""
    now = now or datetime.now(UTC)
    return f"{now.strftime('%Y%m%dT%H%M%S.%fZ')}-{secrets.token_hex(8)}.json"


def write_spool_file(spool_dir: Path, data: dict) -> Path:
    """Write one submission atomically: temp file in spool/tmp, fsync, rename into the spool, fsync the folder."""
    return write_spool_file_bytes(spool_dir, data)[0]


def write_spool_file_bytes(spool_dir: Path, data: dict) -> tuple[Path, bytes]:
    """write_spool_file, also returning the bytes written (the web endpoint hands them to the sink)."""
    spool_dir = Path(spool_dir)
    path = spool_dir / spool_name()
    body = json.dumps(data, ensure_ascii=False, indent=1).encode("utf-8")
    write_atomic(path, body, tmp_dir=spool_dir / "tmp")
    return path, body
