"""Pure logic of the web form and folder sources: CSRF tokens, rate limiter, language choice,
phone masking, Maildir names, spool file names."""

from __future__ import annotations

import re

from intake.sources.maildir import seen_name, unique_part
from intake.sources.spool import spool_name
from intake.vocabulary import mask_phone
from intake.web.security import RateLimiter, csrf_token, csrf_valid
from intake.web.texts import choose_language, describe_kinds

SECRET = b"s" * 32


def test_csrf_token_is_bound_to_nonce_secret_and_age():
    token = csrf_token(SECRET, "nonce-a", now=1_000_000)
    assert csrf_valid(SECRET, "nonce-a", token, now=1_000_060)
    assert not csrf_valid(SECRET, "nonce-b", token, now=1_000_060)  # another browser's cookie
    assert not csrf_valid(b"t" * 32, "nonce-a", token, now=1_000_060)  # another server's secret
    assert not csrf_valid(SECRET, "nonce-a", token, now=1_000_000 + 5 * 3600)  # expired
    assert not csrf_valid(SECRET, "nonce-a", token, now=999_000)  # from the future
    assert not csrf_valid(SECRET, None, token) and not csrf_valid(SECRET, "nonce-a", None)
    assert not csrf_valid(SECRET, "nonce-a", "1000000." + "0" * 64, now=1_000_060)
    assert not csrf_valid(SECRET, "nonce-a", "garbage", now=1_000_060)


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_rate_limiter_refuses_over_limit_and_says_how_long_to_wait():
    clock = FakeClock()
    limiter = RateLimiter(3, clock=clock)
    assert [limiter.hit("ip:a", "email:x") for _ in range(3)] == [0, 0, 0]
    clock.t += 10
    assert limiter.hit("ip:a") == 50  # the first event leaves the window in 50 s
    assert limiter.hit("ip:b", "email:x") == 50  # the same address from elsewhere
    assert limiter.hit("ip:b") == 0  # other keys are not affected
    clock.t += 50
    assert limiter.hit("ip:a") == 0


def test_refused_attempts_do_not_extend_the_wait():
    clock = FakeClock()
    limiter = RateLimiter(1, clock=clock)
    assert limiter.hit("ip:a") == 0
    for _ in range(5):
        clock.t += 10
        limiter.hit("ip:a")
    clock.t += 10
    assert limiter.hit("ip:a") == 0


def test_rate_limit_zero_is_off():
    limiter = RateLimiter(0)
    assert all(limiter.hit("ip:a") == 0 for _ in range(100))


def test_language_from_query_then_accept_language_then_default():
    assert choose_language("en", "zh-CN,zh;q=0.9") == "en"
    assert choose_language(None, "zh-CN,zh;q=0.9,en;q=0.8") == "zh"
    assert choose_language(None, "fr-FR, en;q=0.8, zh;q=0.5") == "en"
    assert choose_language(None, "zh-TW;q=0.9, en;q=0.95") == "en"
    assert choose_language("xx", None, default="en") == "en"
    assert choose_language(None, None) == "zh"


def test_phone_masked_in_the_middle():
    assert mask_phone("13812345678") == "138****5678"
    assert mask_phone("+86 138-1234-5678") == "+86 138-****-5678"
    assert mask_phone("1234567") == "1****67"  # a 7-digit number shows 3 of its digits, not all 7


def test_maildir_names():
    assert unique_part("1700000000.M1P2.host:2,S") == "1700000000.M1P2.host"
    assert seen_name("1700000000.M1P2.host") == "1700000000.M1P2.host:2,S"
    assert seen_name("1700000000.M1P2.host:2,FR") == "1700000000.M1P2.host:2,FRS"


def test_spool_names_sort_by_time_and_are_unique():
    names = [spool_name() for _ in range(200)]
    assert len(set(names)) == 200
    assert all(re.fullmatch(r"\d{8}T\d{6}\.\d{6}Z-[0-9a-f]{16}\.json", n) for n in names)
    assert sorted(names, key=lambda n: n[:22]) == names


def test_accepted_types_named_for_people():
    assert describe_kinds(("jpg", "pdf", "zip"), "zh") == "图片、PDF和 ZIP 压缩包"
    assert describe_kinds(("pdf", "txt", "dwg"), "en") == "PDF, text files and DWG"
