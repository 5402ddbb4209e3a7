"""The form submission format: validation (every field, both languages) and parsing into a ParsedMessage."""

from __future__ import annotations

import base64
import json

import pytest

from intake.inbound.form import (
    content_matches_extension,
    detect_language,
    parse_submission,
    safe_filename,
    submission_fields,
    validate_submission,
)
from intake.inbound.message import UnparseableMessage

PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n"


def valid(**changes) -> dict:
    data = {
        "name": "张伟",
        "email": "Zhang.Wei@Kehu.example.cn",
        "phone": "138 1234 5678",
        "company": "某某科技有限公司",
        "subject": "打印机故障",
        "message": "三楼的打印机从今天早上开始无法打印，整个部门都受影响。",
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v is not ...}


def attachment(name: str, data: bytes, ctype: str = "application/octet-stream") -> dict:
    return {"filename": name, "content_type": ctype, "data_base64": base64.b64encode(data).decode()}


def raw(data: dict) -> bytes:
    return json.dumps(data, ensure_ascii=False).encode("utf-8")


def test_valid_submission_has_no_errors():
    assert validate_submission(valid()) == {}
    assert validate_submission(valid(email=..., phone="+86 (21) 6123-4567")) == {}
    assert validate_submission(valid(phone=..., extra_field="kept", type="fault")) == {}


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": ...}, "name"),
        ({"message": ""}, "message"),
        ({"message": "x" * 20_001}, "message"),
        ({"email": "not-an-address"}, "email"),
        ({"email": "a@b"}, "email"),
        ({"email": "two@@example.com"}, "email"),
        ({"phone": "12345"}, "phone"),
        ({"phone": "call me maybe"}, "phone"),
        ({"type": "spam"}, "type"),
        ({"lang": "fr"}, "lang"),
        ({"subject": "s" * 301}, "subject"),
        ({"company": 42}, "company"),
        ({"attachments": "nope"}, "attachments"),
        ({"attachments": [{"filename": "a.pdf", "data_base64": "***"}]}, "attachments"),
    ],
)
def test_each_invalid_field_is_named(changes, field):
    """Each kind of bad field value gives an error on exactly that field."""
    errors = validate_submission(valid(**changes))
    assert list(errors) == [field], errors


def test_no_contact_at_all_marks_email_and_phone():
    errors = validate_submission(valid(email="", phone=""))
    assert set(errors) == {"email", "phone"}
    assert "电话" in errors["email"]


def test_every_error_reported_at_once_in_the_submitters_language():
    zh = validate_submission({"name": "", "email": "坏地址", "message": "", "type": "其他", "subject": "请帮忙"})
    assert set(zh) == {"name", "email", "message", "type"}
    assert zh["name"] == "请填写此项。" and "邮箱" in zh["email"]
    en = validate_submission({"name": "", "email": "bad", "message": "", "lang": "en"})
    assert en["name"] == "Please fill in this field." and "email" in en["email"]
    assert validate_submission({"name": "", "message": "", "email": "x@example.com", "lang": "zh"})["name"] == "请填写此项。"


def test_not_an_object_is_one_error():
    assert list(validate_submission(["a"])) == ["_"]


def test_file_limits_apply_only_when_given():
    """The web endpoint passes its limits; the spool accepts other systems' files without them."""
    big = valid(attachments=[attachment("big.pdf", PDF + b"0" * 2000)])
    assert validate_submission(big) == {}
    assert "big.pdf" in validate_submission(big, max_file_bytes=1000)["attachments"]
    exe = valid(attachments=[attachment("setup.exe", b"MZ\x90\x00")])
    assert "setup.exe" in validate_submission(exe, allowed_extensions=["pdf"])["attachments"]
    disguised = valid(attachments=[attachment("invoice.pdf", b"MZ\x90\x00 not a pdf")])
    assert "invoice.pdf" in validate_submission(disguised, allowed_extensions=[".pdf"])["attachments"]
    assert validate_submission(valid(attachments=[attachment("r.pdf", PDF)]), allowed_extensions=[".pdf"]) == {}


def test_content_sniffing_by_extension():
    assert content_matches_extension(PDF, "pdf")
    assert content_matches_extension(b"\x89PNG\r\n\x1a\n....", "png")
    assert content_matches_extension("日志 log line\n".encode("gb18030"), "txt")
    assert not content_matches_extension(b"\x00\x01binary", "txt")
    assert not content_matches_extension(b"PK\x03\x04", "pdf")
    assert not content_matches_extension(b"anything", "exe")


def test_language_detected_from_text_unless_given():
    assert detect_language("打印机坏了 HP LaserJet 1020") == "zh"
    assert detect_language("The printer is broken") == "en"
    assert parse_submission(raw(valid())).language == "zh"
    assert parse_submission(raw(valid(message="Printer broken since 9am", subject="", name="Ann"))).language == "en"
    assert parse_submission(raw(valid(lang="en"))).language == "en"


def test_parse_gives_the_pipeline_a_parsed_message():
    data = valid(attachments=[attachment("../../报告.pdf", PDF, "application/pdf")], submitted_at="2026-11-23T03:15:00.000Z")
    msg = parse_submission(raw(data))
    assert msg.from_addr == "zhang.wei@kehu.example.cn" and msg.from_name == "张伟"
    assert msg.text == msg.new_text == data["message"] and msg.subject == "打印机故障"
    assert msg.date.isoformat() == "2026-11-23T03:15:00+00:00"
    [a] = msg.attachments
    assert (a.filename, a.content_type, a.size, a.data, a.truncated) == ("报告.pdf", "application/pdf", len(PDF), PDF, False)
    assert msg.message_id.startswith("form-") and msg.in_reply_to == [] and msg.defects == []


def test_phone_only_submission_has_empty_from_and_subject_from_first_line():
    msg = parse_submission(raw(valid(email=..., subject=..., message="网络中断\n从昨天开始")))
    assert msg.from_addr == "" and msg.subject == "网络中断"


def test_same_bytes_same_message_id_new_submission_new_id():
    one = raw(valid(submitted_at="2026-11-23T03:15:00.000Z"))
    two = raw(valid(submitted_at="2026-11-23T03:15:02.000Z"))
    assert parse_submission(one).message_id == parse_submission(one).message_id
    assert parse_submission(one).message_id != parse_submission(two).message_id


def test_unparseable_reason_lists_every_field_error():
    with pytest.raises(UnparseableMessage) as caught:
        parse_submission(raw({"name": "", "email": "bad", "message": ""}))
    for field in ("name:", "email:", "message:"):
        assert field in caught.value.reason
    with pytest.raises(UnparseableMessage, match="not UTF-8 JSON"):
        parse_submission(b"{not json")
    with pytest.raises(UnparseableMessage, match="not a JSON object"):
        parse_submission(b"[1, 2]")


def test_submission_fields_keep_extras_without_attachment_data():
    fields = submission_fields(raw(valid(type="Fault", crm_id="A-17", attachments=[attachment("a.pdf", PDF)])))
    assert fields["name"] == "张伟" and fields["phone"] == "138 1234 5678" and fields["company"] == "某某科技有限公司"
    assert fields["type"] == "fault" and fields["crm_id"] == "A-17" and fields["lang"] == "zh"
    assert fields["email"] == "zhang.wei@kehu.example.cn"
    assert fields["attachments"] == [{"filename": "a.pdf", "content_type": "application/octet-stream"}]


def test_attachment_names_lose_their_paths():
    assert safe_filename("../../etc/passwd") == "passwd"
    assert safe_filename("C:\\Users\\x\\报告.docx") == "报告.docx"
    assert safe_filename("..") == "attachment.bin"
