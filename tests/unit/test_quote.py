"""strip_quoted: the new part of a reply, in English and Chinese, without losing what was written."""
from __future__ import annotations

import pytest

from intake.quote import strip_quoted


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Hi,\n\nThe printer is still broken.\n\nOn Mon, Nov 23, 2026 at 10:15 AM Support <support@acme-support.cn> wrote:\n> Your ticket T-2026-0042 was opened.\n> We will reply within 24 hours.",
            "Hi,\n\nThe printer is still broken.",
        ),
        (
            "Still broken.\n\nOn Mon, Nov 23, 2026 at 10:15 AM Acme Customer Service Centre <support@acme-support.cn>\nwrote:\n> Your ticket was opened.",
            "Still broken.",
        ),
        (
            "Thanks, that fixed it.\n\n-----Original Message-----\nFrom: Support <support@acme-support.cn>\nSent: Monday, November 23, 2026 10:15 AM\nTo: John\nSubject: RE: printer\n\nPlease restart it.",
            "Thanks, that fixed it.",
        ),
        (
            "Please see below.\n\n________________________________\nFrom: Support <support@acme-support.cn>\nSent: Monday, November 23, 2026 10:15\nTo: John Miller\nSubject: Ticket T-2026-0042\n\nOld text",
            "Please see below.",
        ),
        (
            "Yes, order #4471.\n\nFrom: Support <support@acme-support.cn>\nSent: Monday\nTo: me\nSubject: Re: order\n\nWhich order?",
            "Yes, order #4471.",
        ),
        ("Thanks!\n\nJohn\n\nSent from my iPhone", "Thanks!\n\nJohn"),
        ("Thanks!\n\nGet Outlook for Android", "Thanks!"),
        ("Regards,\nJohn\n-- \nJohn Miller\nMiller & Sons Ltd.\n+86 138 1234 5678", "Regards,\nJohn"),
    ],
)
def test_english_quotes_and_signatures_are_removed(text: str, expected: str) -> None:
    """Attributions, Outlook blocks, '>' lines and signatures are cut from English replies."""
    assert strip_quoted(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "您好，问题还没有解决。\n\n在 2026年11月20日 10:00，客服中心 <support@acme-support.cn> 写道：\n> 您的工单 T-2026-0042 已创建。",
            "您好，问题还没有解决。",
        ),
        (
            "好的，谢谢。\n\n李伟 <li.wei@example.cn> 于2026年11月20日周五 10:00写道：\n> 请提供订单号",
            "好的，谢谢。",
        ),
        (
            "已收到，谢谢。\n\n-----原始邮件-----\n发件人: 客服中心 <support@acme-support.cn>\n发送时间: 2026年11月20日 10:00\n收件人: 李伟\n主题: 回复：打印机故障\n\n请重启打印机。",
            "已收到，谢谢。",
        ),
        (
            "订单号是 4471。\n\n发件人: 客服中心 <support@acme-support.cn>\n发送时间: 2026年11月20日 星期五 10:00\n收件人: 李伟 <li.wei@example.cn>\n主题: 回复：订单\n\n请问订单号是多少？",
            "订单号是 4471。",
        ),
        (
            "伺服器還是無法登入。\n\n寄件者: 客服中心 <support@acme-support.cn>\n寄件日期: 2026年11月20日 10:00\n收件者: 陳大文\n主旨: 回覆：伺服器當機\n\n請重新啟動。",
            "伺服器還是無法登入。",
        ),
        ("收到，谢谢！\n\n发自我的iPhone", "收到，谢谢！"),
        ("好的\n\n发自我的华为手机", "好的"),
        ("明天下午可以。\n\n发自网易邮箱大师", "明天下午可以。"),
    ],
)
def test_chinese_quotes_and_signatures_are_removed(text: str, expected: str) -> None:
    """写道 attributions, 原始邮件 separators, 发件人/发送时间 blocks and 发自我的iPhone are cut."""
    assert strip_quoted(text) == expected


def test_bottom_posted_reply_keeps_the_answer() -> None:
    """Quote first, answer after: the answer stays, the quote goes."""
    text = "On Mon, Li wrote:\n> Which order?\n\nOrder #4471, thanks."
    assert strip_quoted(text) == "Order #4471, thanks."


def test_interleaved_answers_stay() -> None:
    """Answers written between quoted lines are kept; the quoted lines go."""
    text = "> Which order?\nOrder #4471.\n> Which model?\nHP LaserJet 1020."
    assert strip_quoted(text) == "Order #4471.\nHP LaserJet 1020."


def test_quote_only_text_is_returned_whole_rather_than_empty() -> None:
    """A message that is all quote (a bare forward) is not turned into nothing."""
    text = "> forwarded complaint\n> from our branch"
    assert strip_quoted(text) == text


@pytest.mark.parametrize(
    "text",
    [
        "我们发自内心地感谢贵公司的支持。\n发自内心的感谢",  # 发自 as an ordinary word
        "From: the Shanghai office\nWe need 20 accounts.",  # a From: line that is no header block
        "Step 1 -- restart\nStep 2 -- log in",  # dashes inside lines
        "The attribution On Monday we wrote: nothing",  # 'wrote:' not at a line's end
    ],
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    """Text that only looks a little like a quote marker is not cut."""
    assert strip_quoted(text) == text


def test_empty_text_stays_empty() -> None:
    """Empty in, empty out."""
    assert strip_quoted("") == ""
    assert strip_quoted("\n \n") == ""
