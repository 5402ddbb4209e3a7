"""Where a case PDF is stored: `YYYY/MM/<customer>_<YYYY-MM-DD>_<type>_<ticket>_v<N>[-final].pdf`.

The seeds name archives "customer + date + type"; the ticket ref makes the name unique
and the version suffix keeps every version (`_v1`, `_v2`, ... and `_v3-final` for the
version written at close). Example:
`2026/11/某科技有限公司_2026-11-22_投诉_261122-0007_v3-final.pdf`.

Safe for any customer name: NFC-normalised; control and format characters dropped;
path separators, Windows-reserved characters (<>:"|?*) and whitespace become "-", and
"_" too, so "_" only ever separates the four fields; leading/trailing dots and dashes
are stripped (no hidden files, no "." or ".."); a name left empty becomes "customer".
The whole file name is kept within MAX_NAME_BYTES of UTF-8 (file systems count bytes,
255 at most; the margin leaves room for the storage's temporary names) by cutting the
customer part on a character boundary: the date, type, ticket ref and version suffix
are never cut. Windows device names (CON, NUL, ...) cannot occur, since a name never
ends right after the customer part.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date
from pathlib import PurePosixPath

MAX_NAME_BYTES = 200
_UNSAFE = re.compile(r'[\s/\\<>:"|?*_]+')
_DASHES = re.compile(r"-{2,}")
_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,40}$")
_NAME = re.compile(
    r"^(?P<customer>.+)_(?P<date>\d{4}-\d{2}-\d{2})_(?P<type>[^_]+)_(?P<ref>[A-Za-z0-9-]+)"
    r"_v(?P<version>\d+)(?P<final>-final)?\.pdf$"
)


def clean_component(text: str, fallback: str) -> str:
    """One safe file-name component (no separators, controls, leading dots)."""
    text = unicodedata.normalize("NFC", text)
    # Cc control, Cf format (bidi overrides, zero-width), Cs/Co/Cn surrogates, private, unassigned
    text = "".join(c for c in text if unicodedata.category(c) not in ("Cc", "Cf", "Cs", "Co", "Cn"))
    text = _UNSAFE.sub("-", text)
    text = _DASHES.sub("-", text).strip(".- ")
    return text or fallback


def _cut_to_bytes(text: str, limit: int) -> str:
    encoded = text.encode("utf-8")
    if len(encoded) <= limit:
        return text
    # errors="ignore" drops a character cut in the middle of its UTF-8 bytes
    return encoded[:limit].decode("utf-8", errors="ignore").rstrip(".- ")


def archive_path(
    customer: str, date: date, type_label: str, ticket_ref: str, version: int, final: bool, *, max_name_bytes: int = MAX_NAME_BYTES
) -> PurePosixPath:
    """The relative path of one version of a case PDF in the archive."""
    if not _REF.match(ticket_ref):
        raise ValueError(f"ticket ref must be letters, digits and dashes: {ticket_ref!r}")
    if version < 1:
        raise ValueError(f"version starts at 1, not {version}")
    kind = _cut_to_bytes(clean_component(type_label, "case"), 40)
    suffix = f"_{date.isoformat()}_{kind}_{ticket_ref}_v{version}{'-final' if final else ''}.pdf"
    budget = max_name_bytes - len(suffix.encode("utf-8"))
    name = _cut_to_bytes(clean_component(customer, "customer"), budget) or "customer"
    return PurePosixPath(f"{date.year:04d}", f"{date.month:02d}", name + suffix)


def parse_name(path: PurePosixPath | str) -> dict | None:
    """The fields of an archive file name (customer as cleaned), or None if it is not one."""
    m = _NAME.match(PurePosixPath(path).name)
    if not m:
        return None
    return {
        "customer": m["customer"],
        "date": date.fromisoformat(m["date"]),
        "type": m["type"],
        "ticket_ref": m["ref"],
        "version": int(m["version"]),
        "final": bool(m["final"]),
    }


# a file being written has this name until it is whole (archive/storage.py); never an archive path
TEMP_PREFIX = ".tmp-"


def check_relative(path: PurePosixPath | str) -> PurePosixPath:
    """A relative path inside the archive, or ValueError: no absolute paths, no '..', no temp names."""
    p = PurePosixPath(path)
    if p.is_absolute() or not p.parts or any(part in ("", ".", "..") for part in p.parts):
        raise ValueError(f"not a relative archive path: {str(path)!r}")
    if any("\x00" in part or "\\" in part for part in p.parts) or p.name.startswith(TEMP_PREFIX):
        raise ValueError(f"not a valid archive path: {str(path)!r}")
    return p
