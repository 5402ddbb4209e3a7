"""Pure logic of the staff mail loop: reply tokens, command parsing, score parsing,
working-hours arithmetic, phone masking."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from intake.staffmail import commands
from intake.staffmail.survey import parse_score
from intake.staffmail.token import mac, make_address, parse_address, verify
from intake.staffmail.workhours import add_working_hours, parse_hours
from intake.vocabulary import mask_phone

KEY = b"k" * 32
TODAY = date(2026, 11, 23)


def lookup(word: str):
    return {"li.na": "li.na", "李娜": "li.na", "sun.yue@example.com": "sun.yue"}.get(word.lower() if word.isascii() else word)


# ---- tokens ---------------------------------------------------------------------


def test_token_address_round_trips_and_verifies():
    """support+REF.MAC@domain parses back to the ref and verifies with the key."""
    address = make_address(KEY, "CS-261123-0007", "support@example.com", 20)
    assert address.startswith("support+CS-261123-0007.") and address.endswith("@example.com")
    token = parse_address(address, "support@example.com")
    assert token.ref.upper() == "CS-261123-0007" and verify(KEY, token, "CS-261123-0007", 20)


def test_token_survives_lower_casing_by_a_mail_system():
    """Some servers lower-case local parts: the MAC is over the upper-cased ref."""
    token = parse_address(make_address(KEY, "CS-261123-0007", "support@example.com", 20).lower(), "SUPPORT@example.com")
    assert verify(KEY, token, "CS-261123-0007", 20)


@pytest.mark.parametrize(
    "address",
    [
        "support@example.com",
        "support+261123-0007@example.com",
        "other+261123-0007.abcdef@example.com",
        "support+261123-0007.abcdef@evil.example",
        "support+261123-0007.zzzz@example.com",
    ],
)
def test_addresses_that_are_not_tokens(address):
    """Plain address, no MAC, another local part, another domain, non-hex MAC."""
    assert parse_address(address, "support@example.com") is None


def test_wrong_key_other_ticket_and_short_mac_fail():
    """A MAC made with another key, for another ticket, or cut short never verifies."""
    good = parse_address(make_address(KEY, "261123-0007", "support@example.com", 20), "support@example.com")
    assert not verify(b"x" * 32, good, "261123-0007", 20)
    assert not verify(KEY, good, "261123-0008", 20)
    short = parse_address(f"support+261123-0007.{mac(KEY, '261123-0007', 20)[:12]}@example.com", "support@example.com")
    assert not verify(KEY, short, "261123-0007", 20)


# ---- commands -------------------------------------------------------------------


def test_commands_at_the_top_in_both_languages_then_the_body():
    """Leading blank lines skipped; fullwidth ＃ and ： accepted; the rest is the body."""
    parsed = commands.parse(
        "\n#status resolved\n＃转派：李娜\n#预计 2026/11/30\n#类型 投诉\n#紧急程度 紧急\n#跟进 2026年12月1日 回访\n\n您好，已处理。\n#not a command here",
        staff_lookup=lookup,
        today=TODAY,
    )
    assert parsed.errors == []
    assert [(c.name, c.value, c.text) for c in parsed.commands] == [
        ("status", "resolved", ""),
        ("assign", "li.na", ""),
        ("eta", "2026-11-30", ""),
        ("type", "complaint", ""),
        ("urgency", "urgent", ""),
        ("followup", "2026-12-01", "回访"),
    ]
    assert parsed.body == "您好，已处理。\n#not a command here" and not parsed.internal


def test_note_makes_the_reply_internal():
    parsed = commands.parse("#备注 大客户\n内部说明", staff_lookup=lookup, today=TODAY)
    assert parsed.internal and parsed.commands[0].text == "大客户" and parsed.body == "内部说明"


@pytest.mark.parametrize(
    "line, fragment",
    [
        ("#bogus", "unknown command"),
        ("#status", "#status needs one of"),
        ("#status closed", "staff cannot set"),
        ("#assign", "needs a staff id"),
        ("#assign ghost", "no staff member"),
        ("#eta 2026-02-30", "#eta needs a date"),
        ("#eta 2026-11-22", "in the past"),
        ("#type 表扬", "#type needs one of"),
        ("#urgency 很急", "#urgency needs one of"),
        ("#followup 2026-12-01", "what to follow up"),
        ("#followup soon call", "needs a date"),
    ],
)
def test_malformed_commands_are_errors(line, fragment):
    parsed = commands.parse(line + "\nbody", staff_lookup=lookup, today=TODAY)
    assert len(parsed.errors) == 1 and fragment in parsed.errors[0] and parsed.commands == []


def test_numbered_lines_and_hashtags_in_the_text_are_not_commands():
    """'#1' is not a command name; an unknown '#word' line inside the text is text (issue 14)."""
    assert commands.parse("#1 restart", staff_lookup=lookup, today=TODAY).commands == []
    parsed = commands.parse("您好，\n\n已为您处理。\n#售后服务 #品质保证\n谢谢", staff_lookup=lookup, today=TODAY)
    assert parsed.commands == [] and parsed.errors == [] and parsed.body == "您好，\n\n已为您处理。\n#售后服务 #品质保证\n谢谢"


def test_commands_anywhere_in_the_new_text_are_taken_out_of_the_body():
    """After a greeting, between paragraphs: each command line is carried out and never relayed (issue 14)."""
    parsed = commands.parse("Hello\n#status resolved", staff_lookup=lookup, today=TODAY)
    assert [c.value for c in parsed.commands] == ["resolved"] and parsed.body == ""  # a greeting alone is no answer
    parsed = commands.parse(
        "Hi Zhao,\n\nThe engineer comes tomorrow.\n\n#eta 2026-11-30\n#类型 投诉\n\nBest regards", staff_lookup=lookup, today=TODAY
    )
    assert [c.name for c in parsed.commands] == ["eta", "type"] and parsed.errors == []
    assert parsed.body == "Hi Zhao,\n\nThe engineer comes tomorrow.\n\nBest regards"
    # a typo beside a real command, or right after the greeting, is an error, not text for the customer
    assert commands.parse("Text.\n#status resolved\n#stauts x", staff_lookup=lookup, today=TODAY).errors
    assert commands.parse("Hi,\n#stauts resolved\nText.", staff_lookup=lookup, today=TODAY).errors


# ---- scores ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, score",
    [
        ("5", 5),
        ("  4  \n\nthanks", 4),
        ("５", 5),
        ("3分", 3),
        ("评分：2", 2),
        ("Score: 1", 1),
        ("4/5", 4),
        ("5 stars!", 5),
        ("五", 5),
        ("两分", 2),
        ("\n\n1.", 1),
    ],
)
def test_scores(text, score):
    assert parse_score(text) == score


@pytest.mark.parametrize("text", ["6", "0", "10", "still broken", "5 but the printer is still broken", "", "我给4分，但是还有问题"])
def test_not_scores(text):
    assert parse_score(text) is None


# ---- working hours ----------------------------------------------------------------


def test_working_hours_skip_nights_weekends_and_holidays():
    shifts = parse_hours("mon-fri 09:00-18:00")
    friday_17 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)  # Fri 17:00 Shanghai
    # 1 h Friday, Saturday and Sunday off, Monday 30 Nov a holiday, 3 h Tuesday → Tue 12:00
    due = add_working_hours(friday_17, 4, shifts=shifts, holidays={date(2026, 11, 30)}, tz="Asia/Shanghai")
    assert due == datetime(2026, 12, 1, 4, 0, tzinfo=UTC)


def test_working_hours_start_outside_hours_and_overnight_shift():
    sunday_night = datetime(2026, 11, 29, 15, 0, tzinfo=UTC)  # Sun 23:00 Shanghai
    assert add_working_hours(sunday_night, 2, shifts=parse_hours("mon-fri 09:00-18:00"), holidays=set(), tz="Asia/Shanghai") == datetime(
        2026, 11, 30, 3, 0, tzinfo=UTC
    )  # Mon 11:00
    night = parse_hours("mon-fri 22:00-06:00")
    monday_23 = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)
    assert add_working_hours(monday_23, 3, shifts=night, holidays=set(), tz="Asia/Shanghai") == datetime(
        2026, 11, 23, 18, 0, tzinfo=UTC
    )  # Tue 02:00, across midnight


def test_bad_working_hours_are_refused():
    with pytest.raises(ValueError):
        parse_hours("weekdays 9-6")


@pytest.mark.parametrize(
    "phone, shown",
    [
        ("13812345678", "138****5678"),
        ("+86 138-1234-5678", "+86 138-****-5678"),
        ("010-6552-1234", "010-****-1234"),
        ("1234567", "1****67"),
        (None, ""),
    ],
)
def test_phone_masked_middle_digits(phone, shown):
    assert mask_phone(phone) == shown


# ---- config ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "section, value, key",
    [
        ("staff_mail", {"secret": "short"}, "staff_mail.secret"),
        ("staff_mail", {"secret_env": "INTAKE_TEST_NO_SUCH_VARIABLE"}, "staff_mail.secret_env"),
        ("staff_mail", {"reply_secret": "x" * 20}, "staff_mail.reply_secret"),
        ("sla", {"type_hours": {"praise": {"urgent": 1}}}, "sla.type_hours"),
        ("sla", {"type_hours": {"complaint": {"asap": 1}}}, "sla.type_hours"),
        ("sla", {"working_hours": "weekdays 9-6"}, "sla.working_hours"),
        ("sla", {"holidays": ["1 Oct"]}, "sla.holidays"),
        ("sla", {"remind_before_hours": {"urgent": -1}}, "sla.remind_before_hours"),
        ("survey", {"close_at": 6}, "survey.close_at"),
        ("survey", {"timeout_days": 0}, "survey.timeout_days"),
    ],
)
def test_bad_staff_mail_config_names_the_key(section, value, key):
    from intake.config import ConfigError, from_dict

    with pytest.raises(ConfigError) as err:
        from_dict({section: value})
    assert key in str(err.value)


def test_secret_is_masked():
    from intake.config import from_dict, masked

    assert masked(from_dict({"staff_mail": {"secret": "s" * 32}}))["staff_mail"]["secret"] == "***"


def test_key_file_is_made_once_and_kept(tmp_path):
    """No configured secret: one random key in paths.var, the same on every load."""
    from intake.config import from_dict
    from intake.staffmail.token import load_key

    cfg = from_dict({"paths": {"var": str(tmp_path)}})
    first = load_key(cfg)
    assert len(first) == 64 and load_key(cfg) == first
    assert (tmp_path / "reply-token.key").stat().st_mode & 0o777 == 0o600


# ---- Authentication-Results --------------------------------------------------------

from intake.staffmail.auth import authenticated  # noqa: E402

MX = "mx.example.com"


@pytest.mark.parametrize(
    "headers, ok",
    [
        ([f"{MX}; dmarc=pass header.from=example.com"], True),
        ([f"{MX}; dkim=pass header.d=example.com header.s=s1; spf=fail"], True),
        ([f"{MX}; spf=pass smtp.mailfrom=li.na@example.com"], True),
        ([f"{MX}; dkim=pass header.d=mail.example.com"], False),  # a subdomain does not vouch for its parent
        ([f"{MX}; dkim=pass header.d=evil.example; spf=pass smtp.mailfrom=x@evil.example"], False),
        ([f"{MX}; dmarc=fail header.from=example.com; dkim=fail header.d=example.com"], False),
        (["mx.evil.example; dmarc=pass header.from=example.com"], False),  # not our server
        ([], False),
    ],
)
def test_authentication_results_only_from_our_server_and_aligned(headers, ok):
    assert authenticated(headers, MX, "li.na@example.com")[0] is ok


def test_parent_domain_signature_covers_a_subdomain_sender():
    assert authenticated([f"{MX}; dkim=pass header.d=example.com"], MX, "li.na@cs.example.com")[0]
