"""Charset decoding: labels aliased to supersets, wrong labels caught, RFC 2047 words repaired."""

from __future__ import annotations

import base64

import pytest

from intake.inbound.charsets import decode_bytes, decode_header, normalize_charset
from tests.fixtures.mail.build import EN, JA, LATIN, ZH_BIG5, ZH_GBK, encoded_word


@pytest.mark.parametrize(
    ("label", "codec"),
    [
        ("gb2312", "gb18030"),
        ("GBK", "gb18030"),
        ("x-gbk", "gb18030"),
        ("cp936", "gb18030"),
        ('"GB2312"', "gb18030"),
        ("big5", "big5hkscs"),
        ("Big5-HKSCS", "big5hkscs"),
        ("ks_c_5601-1987", "cp949"),
        ("iso-8859-1", "cp1252"),
        ("UTF-8", "utf-8"),
        ("ISO-2022-JP", "iso2022_jp_ext"),
        ("x-no-such-charset", None),
        ("", None),
        (None, None),
    ],
)
def test_labels_map_to_the_codec_we_decode_with(label: str | None, codec: str | None) -> None:
    """Each customer charset label resolves to its superset codec; unknown labels to None."""
    assert normalize_charset(label) == codec


def test_gb2312_label_over_gb18030_only_characters_decodes_exactly() -> None:
    """GBK/GB18030-only characters (镕, 䶮) under a gb2312 label come out right, with no defect."""
    with pytest.raises(UnicodeEncodeError):
        ZH_GBK.encode("gb2312")  # the fixture really needs more than GB2312
    assert decode_bytes(ZH_GBK.encode("gb18030"), "gb2312") == (ZH_GBK, None)


def test_big5_label_over_hkscs_characters_decodes_exactly() -> None:
    """HKSCS characters (嘅 啲 㗎) under a plain big5 label come out right."""
    with pytest.raises(UnicodeEncodeError):
        ZH_BIG5.encode("big5")
    assert decode_bytes(ZH_BIG5.encode("big5hkscs"), "big5") == (ZH_BIG5, None)


def test_latin1_label_decodes_windows_1252_punctuation() -> None:
    """iso-8859-1 mail written on Windows carries €, curly quotes and dashes (cp1252 bytes)."""
    text = "“Quoted” – 5 € – Zoë"
    assert decode_bytes(text.encode("cp1252"), "iso-8859-1") == (text, None)


def test_true_latin1_c1_bytes_still_decode() -> None:
    """Bytes that cp1252 leaves undefined decode as Latin-1 rather than failing."""
    text, defect = decode_bytes(b"caf\xe9 \x81", "iso-8859-1")
    assert text == "café \x81"
    assert defect is None


def test_iso_2022_jp_decodes() -> None:
    """ISO-2022-JP (7-bit escapes), including half-width katakana, decodes exactly."""
    assert decode_bytes(JA.encode("iso2022_jp_ext"), "ISO-2022-JP") == (JA, None)


@pytest.mark.parametrize(
    ("text", "actual", "declared", "guessed"),
    [
        (ZH_GBK, "gb18030", "utf-8", "gb18030"),
        (ZH_GBK, "utf-8", "gb2312", "utf-8"),
        (ZH_GBK, "gb18030", "iso-8859-1", "gb18030"),
        (ZH_BIG5, "big5hkscs", "gb2312", "big5hkscs"),
        (ZH_BIG5, "big5hkscs", "utf-8", "big5hkscs"),
    ],
)
def test_wrong_label_is_detected_and_the_right_charset_used(text: str, actual: str, declared: str, guessed: str) -> None:
    """Bytes in one charset under another's label decode right, with a defect naming both."""
    decoded, defect = decode_bytes(text.encode(actual), declared)
    assert decoded == text
    assert defect is not None and declared in defect and guessed in defect


@pytest.mark.parametrize(
    ("text", "codec"),
    [(ZH_GBK, "gb18030"), (ZH_BIG5, "big5hkscs"), (ZH_GBK, "utf-8"), ("Café crème – 5 €", "cp1252")],
)
def test_undeclared_bytes_are_guessed(text: str, codec: str) -> None:
    """Bytes with no charset label are decoded by the fallback order utf-8, gb18030, big5hkscs, cp1252."""
    decoded, defect = decode_bytes(text.encode(codec), None)
    assert decoded == text
    assert defect is not None and codec in defect


def test_plain_ascii_needs_no_guess() -> None:
    """ASCII under any ASCII-compatible or missing label decodes without a defect."""
    assert decode_bytes(EN.encode(), None) == (EN, None)
    assert decode_bytes(EN.encode(), "gb2312") == (EN, None)


def test_unknown_label_falls_back_and_says_so() -> None:
    """An unknown charset label is reported and the bytes still decode."""
    text, defect = decode_bytes(LATIN.encode("utf-8"), "x-klingon")
    assert text == LATIN
    assert defect is not None and "x-klingon" in defect


def test_hopeless_bytes_decode_with_replacements_and_a_defect() -> None:
    """Bytes valid in no candidate charset still give text, never an exception."""
    text, defect = decode_bytes(b"\xff\xfe\xff\x80 ok", "utf-8")
    assert text.endswith(" ok")
    assert defect is not None


def test_encoded_words_split_mid_character_are_joined_before_decoding() -> None:
    """A GBK character cut across two adjacent encoded words comes out whole."""
    data = "关于订单的投诉".encode("gbk")
    first, second = base64.b64encode(data[:5]).decode(), base64.b64encode(data[5:]).decode()
    assert decode_header(f"=?gb2312?B?{first}?=\r\n =?gb2312?B?{second}?=") == ("关于订单的投诉", [])


def test_encoded_words_without_spaces_around_them_decode() -> None:
    """Encoded words glued to text and to each other (missing spaces) still decode."""
    word1, word2 = encoded_word("投诉", "gb2312"), encoded_word("订单", "GB2312", "gbk", "Q")
    assert decode_header(f"Re:{word1}{word2}#4471") == ("Re:投诉订单#4471", [])


def test_encoded_word_with_wrong_charset_label_is_repaired() -> None:
    """An encoded word labelled utf-8 over GBK bytes decodes as GBK, noted as a defect."""
    text, defects = decode_header(encoded_word("打印机故障", "utf-8", "gbk"))
    assert text == "打印机故障"
    assert defects and "gb18030" in defects[0]


def test_encoded_word_missing_padding_and_terminator_decodes() -> None:
    """Base64 without '=' padding and a word missing its closing '?=' are tolerated."""
    payload = base64.b64encode("关于".encode()).decode().rstrip("=")
    assert decode_header(f"=?utf-8?B?{payload}?=")[0] == "关于"
    assert decode_header(f"Subject =?utf-8?B?{payload}")[0] == "Subject 关于"


def test_space_between_encoded_words_is_dropped_but_kept_around_text() -> None:
    """RFC 2047: white space between two encoded words is not text; around plain words it is."""
    a, b = encoded_word("Hello", "utf-8", encoding="Q"), encoded_word("World", "utf-8", encoding="Q")
    assert decode_header(f"{a} {b}")[0] == "HelloWorld"
    assert decode_header(f"{a} and {b}")[0] == "Hello and World"


def test_raw_8bit_header_bytes_are_guessed() -> None:
    """Undeclared 8-bit header bytes (as the email package keeps them) decode by guess."""
    value = "投诉：打印机".encode("gbk").decode("ascii", "surrogateescape")
    assert decode_header(value)[0] == "投诉：打印机"
