"""Routine mail the default rules must not call urgent, and outages a calm phrase must not
calm: the probes a review of session 8's urgency families found firing the wrong way (each
was urgent, or normal, with those rules before the over-general keywords were taken out)."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize(
    "body",
    [
        "发票丢了该怎么办？",
        "你好，有人吗？想咨询一下会员卡怎么续费",
        "Do you offer same-day delivery to Pudong?",
        "我今日收到货，想问下保修期",
        "What day is today in your system timezone?",
        "My course starts tomorrow, is there a reading list?",
        "服务区域包括哪些城市",
        "我现在在用你们的基础版",
        "Do all requests need an API key?",
        "Can your dashboard track outbreak data? Just exploring.",
        "I placed an order an hour ago, can I add one more item?",
        "日前收到贵司来函，请问是否需要回复",
        "请问本月账单什么时候出？",
        "We are at the planning stage for next year",
        "Thanks so much for the great service!!!",
        "Please help me update my billing address",
    ],
)
def test_routine_mail_is_not_urgent(shipped_rules, body):
    assert shipped_rules.classify("", body).urgency != "urgent"


@pytest.mark.parametrize(
    "body",
    [
        "Our whole site is down and customers cannot pay. I have already wasted plenty of time on hold.",
        "nothing is broken physically, but the server won't boot and all production is stopped, urgent!",
        "这个型号紧急停机，请派人",
    ],
)
def test_an_outage_is_not_calmed_by_a_phrase_beside_it(shipped_rules, body):
    assert shipped_rules.classify("", body).urgency == "urgent"
