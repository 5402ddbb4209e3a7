"""The one error a broken rules or staff file raises: it names the file, the line and the problem."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path


class RulesError(Exception):
    """A rules or staff file that cannot be used.

    The message reads like ``config/rules.toml line 42: rule 'complaint-zh': weight
    must be a number, got 'high'``; `path`, `line` and `key` hold the parts.
    """

    def __init__(self, path: Path | str, line: int | None, problem: str, key: str | None = None) -> None:
        self.path, self.line, self.problem, self.key = str(path), line, problem, key
        where = f"{self.path} line {line}" if line else self.path
        super().__init__(f"{where}: {problem}")


class SourceLines:
    """Finds the line of a table or key in a TOML text, so that errors found after
    parsing (tomllib keeps no positions) can still name a line."""

    _HEADER = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()
        # (line number, header name, is array-of-tables) for every header
        self.headers: list[tuple[int, str, bool]] = []
        for number, line in enumerate(self.lines, 1):
            m = self._HEADER.match(line)
            if m:
                self.headers.append((number, m.group(1).replace(" ", ""), line.lstrip().startswith("[[")))

    def table(self, name: str, index: int | None = None) -> int | None:
        """Line of `[name]`, or of the index-th `[[name]]` (0-based)."""
        found = [n for n, h, array in self.headers if h == name and (index is None) != array]
        if index is None:
            return found[0] if found else None
        return found[index] if index < len(found) else None

    def key(self, table_line: int | None, key: str) -> int | None:
        """Line of `key = ...` inside the table starting at table_line (None: top level)."""
        start = table_line or 0
        end = next((n for n, _, _ in self.headers if n > start), len(self.lines) + 1) - 1
        pattern = re.compile(rf"^\s*(\"{re.escape(key)}\"|'{re.escape(key)}'|{re.escape(key)})\s*=")
        for number in range(start + 1, end + 1):
            if pattern.match(self.lines[number - 1]):
                return number
        return table_line


def read_toml(path: Path) -> tuple[dict, SourceLines]:
    """Parse a TOML file; a syntax error becomes a RulesError naming its line."""
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except OSError as exc:
        raise RulesError(path, None, f"cannot read: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise RulesError(path, None, f"not UTF-8: {exc.reason} at byte {exc.start}") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"\(at line (\d+), column (\d+)\)", str(exc))
        problem = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc))
        line = int(m.group(1)) if m else None
        raise RulesError(path, line, f"TOML syntax error: {problem}" + (f" (column {m.group(2)})" if m else "")) from exc
    return data, SourceLines(text)


def describe(value: object) -> str:
    """A value as it would be quoted in an error message."""
    return repr(value) if isinstance(value, str) else f"{type(value).__name__} {value!r}"
