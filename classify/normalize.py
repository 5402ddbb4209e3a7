"""Text normalisation before matching: NFKC, case-folding, traditional → simplified Chinese.

The traditional → simplified step uses OpenCC's own character table
(TSCharacters.txt from opencc-python-reimplemented) as a one-to-one `str.translate`
map: the phrase-level converter is about a hundred times slower, and a keyword
list only needs characters (投訴 → 投诉, 緊急 → 紧急). Quoted lines (">") are
dropped here too, so an earlier reply never counts even if the caller forgot to
strip it.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache
from pathlib import Path


@lru_cache(maxsize=1)
def t2s_table() -> dict[int, str]:
    """Traditional → simplified character map, built once from OpenCC's dictionary."""
    import opencc

    path = Path(opencc.__file__).parent / "dictionary" / "TSCharacters.txt"
    table: dict[int, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        source, _, targets = line.partition("\t")
        if len(source) == 1 and targets:
            # The first candidate is OpenCC's preferred simplified form.
            table[ord(source)] = targets.split()[0]
    return table


def normalize(text: str) -> str:
    """NFKC (full-width → half-width), case-fold, traditional → simplified."""
    return unicodedata.normalize("NFKC", text).casefold().translate(t2s_table())


def drop_quoted(text: str) -> str:
    """The text without quoted lines: those starting with '>' (after indentation)."""
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith((">", "＞")))
