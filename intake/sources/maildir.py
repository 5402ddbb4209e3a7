"""Maildir drop folder source: messages an MTA delivers (or a person copies) into new/ or cur/.

Maildir rules: a deliverer writes into tmp/ and renames into new/, so tmp/ is never
read; a mail client may have moved a message to cur/ and added flags (":2,S"), so both
are taken, and the ref key is the unique part of the name before the ":" (the same
message in new/ and later in cur/ is one item).

Processed messages go into the `.Processed` sub-maildir (Maildir++), in its cur/ with
the Seen flag, so a person can still open them with a mail client pointed at the drop
folder. Messages the pipeline quarantined go into `.Rejected/cur/`, with
`.Rejected/<name>.reason.txt` beside that folder's cur/ (outside tmp/new/cur, so mail
clients do not list the reason as a message). Nothing is deleted.
"""

from __future__ import annotations

from pathlib import Path

from intake.sources.base import Sink
from intake.sources.folder import FolderSource, Places

SUBDIRS = ("tmp", "new", "cur")


def unique_part(filename: str) -> str:
    """The name without its info suffix: "1700000000.M1P2.host:2,S" -> "1700000000.M1P2.host"."""
    return filename.split(":", 1)[0]


def seen_name(filename: str) -> str:
    """The name as it lives in cur/ with the S (seen) flag added to whatever flags it had."""
    base, _, info = filename.partition(":")
    flags = info[2:] if info.startswith("2,") else ""
    return f"{base}:2,{''.join(sorted(set(flags) | {'S'}))}"


class MaildirSource(FolderSource):
    channel = "email"

    def __init__(self, path: Path, sink: Sink, *, name: str = "drop", **options) -> None:
        self.root = Path(path)
        super().__init__(f"maildir:{name}", sink, [self.root / "new", self.root / "cur"], **options)

    def prepare(self) -> None:
        for folder in ("", ".Processed", ".Rejected"):
            for sub in SUBDIRS:
                (self.root / folder / sub).mkdir(parents=True, exist_ok=True)
        for folder in (".Processed", ".Rejected"):  # the Maildir++ marker of a sub-folder
            (self.root / folder / "maildirfolder").touch(exist_ok=True)

    def key(self, path: Path) -> str:
        return unique_part(path.name)

    def places(self, path: Path) -> Places:
        rejected = self.root / ".Rejected"
        return Places(
            done=self.root / ".Processed" / "cur" / seen_name(path.name),
            rejected=rejected / "cur" / path.name,
            reason=rejected / f"{unique_part(path.name)}.reason.txt",
        )
