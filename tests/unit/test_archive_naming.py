"""Archive file names: customer + date + type + ticket + version, safe for any customer name."""

from __future__ import annotations

import unicodedata
from datetime import date
from pathlib import PurePosixPath

import pytest

from archive.naming import MAX_NAME_BYTES, archive_path, parse_name

DAY = date(2026, 11, 22)


def name_of(customer: str, **kw) -> PurePosixPath:
    args = dict(date=DAY, type_label="投诉", ticket_ref="261122-0007", version=1, final=False)
    args.update(kw)
    return archive_path(customer, **args)


def test_plain_name_has_year_month_folders_and_all_fields():
    """The seeds' naming: customer, date, type; plus ticket and version."""
    assert name_of("某科技有限公司") == PurePosixPath("2026/11/某科技有限公司_2026-11-22_投诉_261122-0007_v1.pdf")
    assert name_of("某科技有限公司", version=3, final=True).name.endswith("_261122-0007_v3-final.pdf")
    assert name_of("ACME Ltd", type_label="complaint").name == "ACME-Ltd_2026-11-22_complaint_261122-0007_v1.pdf"


@pytest.mark.parametrize(
    "customer",
    [
        "../../etc/passwd",
        "a/b\\c",
        "..",
        ".",
        "...hidden",
        ".bashrc",
        "a\x00b",
        "a\nb\rc\td",
        'con<>:"|?*',
        "CON",
        "NUL",
        "\u202eevil\u200b",
        "   ",
        "",
        "a_b_c",
        "x" * 300,
        "某" * 300,
        "😀" * 100,
        "e\u0301" * 120,
    ],
)
def test_any_customer_name_gives_one_safe_component(customer):
    """Separators, .., controls, NUL, bidi/zero-width, reserved characters, huge names: one safe name."""
    path = name_of(customer)
    assert path.parts[:2] == ("2026", "11") and len(path.parts) == 3
    name = path.name
    assert len(name.encode("utf-8")) <= MAX_NAME_BYTES <= 255
    assert not name.startswith((".", "-")) and name not in (".", "..")
    assert not any(c in name for c in '/\\<>:"|?*\x00') and "\u202e" not in name and "\u200b" not in name
    assert all(unicodedata.category(c)[0] != "C" for c in name)
    fields = parse_name(path)
    assert fields is not None, name
    assert (fields["ticket_ref"], fields["version"], fields["date"], fields["type"]) == ("261122-0007", 1, DAY, "投诉")
    assert "_" not in fields["customer"]  # "_" only separates fields


def test_truncation_keeps_ref_and_suffix_and_whole_characters():
    """A 300-character Chinese name is cut on a character boundary; ref, version and final survive."""
    path = name_of("深" * 300, version=12, final=True)
    assert path.name.endswith("_2026-11-22_投诉_261122-0007_v12-final.pdf")
    path.name.encode("utf-8").decode("utf-8")  # valid UTF-8: no character cut in half
    assert len(path.name.encode("utf-8")) <= MAX_NAME_BYTES
    assert parse_name(path)["customer"] == "深" * parse_name(path)["customer"].count("深")


def test_names_are_unique_per_ticket_and_version():
    """Two cases of the same customer, day and type differ by ticket; versions differ by suffix."""
    names = {
        name_of("同名公司", ticket_ref=f"261122-000{i}", version=v, final=f) for i in range(1, 4) for v, f in ((1, False), (2, False), (2, True))
    }
    assert len(names) == 9
    # different long names that share a 200-byte prefix still differ by their ticket
    assert name_of("长" * 300 + "甲", ticket_ref="261122-0001") != name_of("长" * 300 + "乙", ticket_ref="261122-0002")


def test_nfc_normalisation_gives_the_same_name_for_the_same_customer():
    """'é' typed as one code point or as e + combining accent names the same file."""
    assert name_of("Caf\u00e9") == name_of("Cafe\u0301")


def test_bad_ticket_ref_or_version_is_refused():
    """The ref is part of the path: it must be plain; versions start at 1."""
    for ref in ("../x", "a/b", "", "x" * 60, "a_b"):
        with pytest.raises(ValueError):
            name_of("A", ticket_ref=ref)
    with pytest.raises(ValueError):
        name_of("A", version=0)


def test_hostile_type_label_is_cleaned_too():
    """A configured type label with separators cannot escape the folder."""
    path = name_of("A", type_label="../投诉/x")
    assert len(path.parts) == 3 and parse_name(path)["type"] == "投诉-x"


def test_parse_name_rejects_foreign_files():
    assert parse_name("2026/11/notes.txt") is None
    assert parse_name("MANIFEST.jsonl") is None
