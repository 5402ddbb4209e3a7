"""strip_quoted: the new part of a reply, in English and Chinese, without losing what was written."""

from __future__ import annotations

import pytest

from intake.inbound.quote import strip_quoted


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


# ---- issue 14: every client's header block, our own text, HTML containers ---------------------------

from intake.inbound.quote import KnownText, staff_reply_text  # noqa: E402
from intake.inbound.quote.htmlcut import cut_html  # noqa: E402

NOTICE = "李娜，您好：\n\n有一张新工单分配给您。\n\n  工单编号：261123-0001\n  客户：    赵丽（C-000042）\n\n----- 客户来信 -----\n维修人员答应上门却一直没来，请给个说法。\n--------------------\n\n直接回复本邮件即可答复客户：您的回复会以客服中心的名义、署上您的名字转发给客户（引用的原文和签名会被去掉）。"


@pytest.mark.parametrize(
    "block",
    [
        "-----邮件原件-----\n\n发件人: 客服 <s@x.cn>\n发送时间: 2026年11月23日 10:00\n收件人: 李娜\n主题: 回复",
        "From: 客服\nDate: 2026-11-23 10:00\nTo: li.na@example.com\nSubject: Re: x",
        "-" * 66 + "\n发件人：客服 <s@x.cn>\n发送时间：2026年11月23日(星期一) 10:00\n收件人：李娜\n主　题：回复",
        "阿里邮箱" + "-" * 66 + "\n发件人：客服 <s@x.cn>\n日　期：2026年11月23日 10:00\n收件人：李娜\n主　题：回复",
        "Gesendet: Montag, 23. November 2026 um 10:00 Uhr\nVon: Support <s@x.de>\nAn: li@x.de\nBetreff: Ticket",
        "De : Support <s@x.fr>\nEnvoyé : lundi 23 novembre 2026 10:00\nÀ : Li\nObjet : Ticket",
        "De: Support <s@x.es>\nEnviado: lunes, 23 de noviembre de 2026 10:00\nPara: Li\nAsunto: Ticket",
        "De: Support <s@x.br>\nEnviada em: segunda-feira, 23 de novembro de 2026 10:00\nPara: Li\nAssunto: Ticket",
        "Da: Support <s@x.it>\nInviato: lunedì 23 novembre 2026 10:00\nA: Li\nOggetto: Ticket",
        "Van: Support <s@x.nl>\nVerzonden: maandag 23 november 2026 10:00\nAan: Li\nOnderwerp: Ticket",
        "差出人: Support <s@x.jp>\n送信日時: 2026年11月23日 10:00\n宛先: Li\n件名: Ticket",
        "보낸 사람: Support <s@x.kr>\n보낸 날짜: 2026년 11월 23일 월요일 오전 10:00\n받는 사람: Li\n제목: Ticket",
        "От: Support <s@x.ru>\nОтправлено: 23 ноября 2026 г. 10:00\nКому: Li\nТема: Ticket",
        "寄件者: 客服 <s@x.tw>\n寄件日期: 2026年11月23日 上午 10:00\n收件者: 陳大文\n主旨: 回覆",
        "Am 23.11.2026 um 10:00 schrieb Support <s@x.de>:",
        "Le lun. 23 nov. 2026 à 10:00, Support <s@x.fr> a écrit :",
        "El lun, 23 nov 2026 a las 10:00, Support (<s@x.es>) escribió:",
        "2026년 11월 23일 (월) 오전 10:00, Support <s@x.kr>님이 작성:",
    ],
)
def test_header_blocks_and_attributions_of_every_language_cut_the_quote(block):
    """Whatever the client's language, its header block or attribution opens the quote."""
    text = f"好的，已安排。\n\n{block}\n\n> 原文第一行\n原文第二行 the old mail"
    assert strip_quoted(text) == "好的，已安排。"


def test_our_own_text_is_the_quote_whatever_the_marker_looks_like():
    """No marker at all, an unknown client's block, re-wrapped or '>'-quoted: our lines mark the quote."""
    known = KnownText(internal=[NOTICE])
    answer = "赵女士您好：\n\n维修师傅明天上午十点上门。"
    for quote in (
        NOTICE,
        "-----Ursprungligt meddelande-----\nFrån: Support <s@x.se>\nSkickat: den 23 november 2026 10:00\nTill: Li\nÄmne: Ticket\n\n" + NOTICE,
        "\n".join(line[:20] + "\n" + line[20:] if len(line) > 20 else line for line in NOTICE.splitlines()),
        NOTICE.replace("\n", " "),
    ):
        assert staff_reply_text(f"{answer}\n\n{quote}", None, known) == answer, quote[:40]


def test_a_customer_line_quoted_alone_in_the_answer_is_no_cut():
    """One short line of ours on its own (the staff member cites the customer) does not end the answer."""
    known = KnownText(internal=[NOTICE], public=["维修人员答应上门却一直没来，请给个说法。"])
    text = "您提到：\n维修人员答应上门却一直没来，请给个说法。\n对此我们深表歉意，师傅明天上门。"
    assert staff_reply_text(text, None, known) == text


def test_interleaved_answers_below_an_attribution_are_kept():
    """Text above, then answers between quoted lines: all of the staff member's text stays."""
    text = (
        "Please see inline.\n\nOn Mon, Nov 23, 2026 at 10:00 AM Support <s@x.cn> wrote:\n> Which order?\nOrder 4471.\n> Which model?\n"
        "HP LaserJet 1020.\n> Thanks.\n> Support"
    )
    assert staff_reply_text(text, None, KnownText()) == "Please see inline.\n\nOrder 4471.\nHP LaserJet 1020."


def test_staff_only_lines_are_told_from_what_the_customer_has_seen():
    """The safety net's test: notification lines are internal, the customer's own words and our public mail are not."""
    known = KnownText(internal=[NOTICE], public=["维修人员答应上门却一直没来，请给个说法。", "您的工单 261123-0001 已登记。"])
    assert known.is_internal("  工单编号：261123-0001") and known.is_internal("> 直接回复本邮件即可答复客户：您的回复会以客服中心的名义、")
    assert not known.is_internal("维修人员答应上门却一直没来，请给个说法。") and not known.is_internal("好的") and not known.is_internal("您好：")


@pytest.mark.parametrize(
    "container",
    [
        '<div class="gmail_quote">On Mon, X wrote:<blockquote>old</blockquote></div>',
        '<hr><div id="divRplyFwdMsg"><b>From:</b> X<br><b>Sent:</b> Monday</div><div>old</div>',
        '<div style="border:none;border-top:solid #E1E1E1 1.0pt;padding:3.0pt 0cm 0cm 0cm"><p><b>From:</b> X</p></div><p>old</p>',
        '<div class="moz-cite-prefix">On 23/11/2026, X wrote:</div><blockquote type="cite">old</blockquote>',
        '<div class="yahoo_quoted"><div>On Monday, X wrote:</div>old</div>',
        '<div id="isReplyContent"><blockquote>old</blockquote></div>',
        '<div id="AppleOriginalContents">old</div>',
        '<div id="mail-editor-reference-message-container">old</div>',
        '<div id="reply139content"><div>------------------ 原始邮件 ------------------</div>old</div>',
        '<div name="quote"><div>Gesendet: Montag</div>old</div>',
        '<div class="gmail_extra"><br><div class="gmail_quote">old</div></div>',
    ],
)
def test_html_is_cut_at_the_clients_quote_container(container):
    """Everything from the client's quote container on is gone before conversion."""
    html = f"<html><body><div>新的答复\n第二行</div>{container}</body></html>"
    assert "old" not in cut_html(html) and "新的答复" in cut_html(html)
    assert staff_reply_text("", html, KnownText()) == "新的答复第二行"


def test_configured_signature_and_own_address_are_cut():
    """staff.toml's signature text and a bare own address at the end are not relayed."""
    text = "好的，明天上门。\n\n李娜 | 售后部\n电话 010-12345678\n\nli.na@example.com"
    assert (
        staff_reply_text(text, None, KnownText(), signatures=["李娜 | 售后部\n电话 010-12345678"], own_addresses=["li.na@example.com"])
        == "好的，明天上门。"
    )
    assert staff_reply_text("好的\n\n来自企业微信", None, KnownText()) == "好的"


def test_signature_learned_from_earlier_replies():
    """Two earlier replies ending with the same sign-off teach it; one closing line never counts."""
    from intake.inbound.quote import learned_signature

    sign_off = "李娜\n售后部 010-12345678"
    earlier = [
        f"已处理。\n\n{sign_off}\n\n在 2026年11月20日 10:00，客服 <s@x.cn> 写道：\n> 旧",
        f"明天上门。\n{sign_off}",
        "好的\n谢谢！",
        "收到\n谢谢！",
    ]
    assert learned_signature(earlier) == sign_off
    assert learned_signature(earlier[:1] + earlier[2:]) == ""  # seen once; '谢谢！' alone is no signature
    assert staff_reply_text(f"师傅已出发。\n\n{sign_off}", None, KnownText(), signatures=[learned_signature(earlier)]) == "师傅已出发。"


@pytest.mark.parametrize(
    "line",
    [
        "在 " + "于 " * 140,
        "x " + "于 " * 140 + "写道",
        "On " + "a " * 140,
        "-" * 200,
        "2026-11-23 10:00 " + "x " * 100 + "wrote:",
        "From: x\nTo: y",
    ],
)
def test_hostile_lines_cost_time_linear_in_their_number(line):
    """Every customer mail goes through strip_quoted: ten times the lines cost about ten times the CPU, never a hundred."""
    import time

    def cpu(text: str) -> float:
        best = float("inf")
        for _ in range(3):
            start = time.process_time()
            strip_quoted(text)
            best = min(best, time.process_time() - start)
        return max(best, 0.002)

    small, big = cpu("\n".join([line] * 300)), cpu("\n".join([line] * 3000))
    assert big / small < 30, (small, big)


def test_one_label_line_above_a_pasted_quote_is_the_writers_text():
    """'时间：…' alone above our pasted notification is part of the answer; a block of two header lines is the client's."""
    known = KnownText(internal=[NOTICE])
    answer = "维修师傅会上门。\n时间：明天上午十点"
    assert staff_reply_text(f"{answer}\n\n{NOTICE}", None, known) == answer
    assert staff_reply_text(f"{answer}\n\nFrån: Support <s@x.se>\nSkickat: den 23 november 2026\n\n{NOTICE}", None, known) == answer


@pytest.mark.parametrize(
    "shape",
    [
        "Den mån 15 jan. 2025 17:03 skrev Support <\nsupport@example.com>:\n\n{gt}",  # Swedish, wrapped
        "Dne po 15. led. 2025 17:03 Support <s@x.cz>\nnapsal(a):\n\n{gt}",  # Czech, wrapped
        "2026. jan. 5., h 14:32 időpontban Support <s@x.hu> ezt írta:\n{gt}",  # Hungarian
        "On Sep 21, 2016 3:18 PM, Support <s@x.com> wrote:\n{wrapped}",  # Android's Gmail: continuation lines without '>'
    ],
)
def test_staff_reply_in_a_language_without_marker_rules_still_loses_the_attribution_and_wrap_fragments(shape):
    """Above a '>' block of our own text, the one or two lines ending in ':' are the client's attribution;
    a line continuing one of our quoted lines without '>' is quote too."""
    known = KnownText(internal=[NOTICE])
    gt = "\n".join("> " + line for line in NOTICE.splitlines())
    wrapped = "\n".join(("> " + line[:12] + "\n" + line[12:]) if len(line) > 12 else "> " + line for line in NOTICE.splitlines())
    text = "Hej,\n\ntack, vi kommer i morgon.\n\n" + shape.format(gt=gt, wrapped=wrapped)
    assert staff_reply_text(text, None, known) == "Hej,\n\ntack, vi kommer i morgon."


@pytest.mark.parametrize(
    "marker",
    [
        "Ahmet Yılmaz <ahmet@example.com.tr>, 15 Oca 2025 Pzt, 17:03 tarihinde şunu yazdı:",  # Turkish Gmail
        "Στις Δευ 15 Ιαν 2025 στις 5:03 μ.μ., ο/η Νίκος <nikos@example.gr> έγραψε:",  # Greek Gmail
        "Vào Th 2, 15 thg 1, 2025 vào lúc 17:03 Nguyễn Văn A <a@example.vn> đã viết:",  # Vietnamese Gmail
        "Pada tanggal Sen, 15 Jan 2025 pukul 17.03 Budi <budi@example.co.id> menulis:",  # Indonesian Gmail
        "W dniu 15.01.2025 o 17:03, Jan Kowalski <jan@example.pl> napisał:",  # Polish Thunderbird
        "Den man. 15. jan. 2025 kl. 17:03 skrev Ola Nordmann <ola@example.no>:",  # Norwegian Gmail
        "Den 15. jan. 2025 kl. 17.03 skrev Support <s@example.dk>:",  # Danish Apple Mail
        "เมื่อ จ. 15 ม.ค. 2025 เวลา 17:03 สมชาย <somchai@example.co.th> เขียนว่า:",  # Thai Gmail
        "ср, 30 апр. 2025 г. в 15:19, Иван <ivan@example.ru>:",  # Russian Gmail, no verb
        "Anna <anna@example.de> schrieb am So., 23.\nJuni 2024, 21:08:",  # German Gmail, name first, wrapped
        "---- On Wed, 24 Feb 2021 14:02:50 +0530 john@example.com wrote ----",  # Zoho
        "-------- Oprindelig besked --------\nFra: Support <s@example.dk>\nDato: 04.07.2024 17.45 (GMT+01:00)\nTil: kunde@example.dk\nEmne: Sag",
        "Från: Support <s@example.se>\nSkickat: den 15 januari 2025 17:03\nTill: Kund <k@example.se>\nÄmne: Ärende",  # Swedish Outlook
        "Lähettäjä: Tuki <t@example.fi>\nLähetetty: maanantai 15. tammikuuta 2025 17.03\nVastaanottaja: Asiakas\nAihe: Tilaus",  # Finnish
        "Od: Podpora <p@example.cz>\nOdesláno: pondělí 15. ledna 2025 17:03\nKomu: Zákazník\nPředmět: Objednávka",  # Czech Outlook
        "Od: Jan Kowalski <jan@example.pl>\nWysłano: poniedziałek, 15 stycznia 2025 17:03\nDo: Anna\nTemat: Zamówienie",  # Polish Outlook
        "Feladó: Ügyfélszolgálat <u@example.hu>\nElküldve: 2025. január 15. 17:03\nCímzett: Ügyfél\nTárgy: Rendelés",  # Hungarian
        "Kimden: Destek <d@example.com.tr>\nGönderildi: 15 Ocak 2025 Çarşamba 17:03\nKime: Müşteri\nKonu: Sipariş",  # Turkish Outlook
        "Από: Υποστήριξη <y@example.gr>\nΣτάλθηκε: Δευτέρα, 15 Ιανουαρίου 2025 5:03 μμ\nΠρος: Πελάτης\nΘέμα: Παραγγελία",  # Greek
        "Từ: Hỗ trợ <h@example.vn>\nĐã gửi: Thứ Hai, ngày 15 tháng 1 năm 2025 17:03\nĐến: Khách hàng\nChủ đề: Đơn hàng",  # Vietnamese
        "Dari: Dukungan <d@example.co.id>\nDikirim: Senin, 15 Januari 2025 17.03\nKepada: Pelanggan\nPerihal: Pesanan",  # Indonesian
        "จาก: ฝ่ายบริการ <s@example.co.th>\nส่ง: 15 มกราคม 2025 17:03\nถึง: ลูกค้า\nเรื่อง: คำสั่งซื้อ",  # Thai Outlook
        "من: الدعم <support@example.com>\nتاريخ الإرسال: الاثنين، 15 يناير 2025 17:03\nإلى: العميل\nالموضوع: طلب",  # Arabic Outlook
        "מאת: תמיכה <support@example.co.il>\nנשלח: יום שני 15 ינואר 2025 17:03\nאל: לקוח\nנושא: הזמנה",  # Hebrew Outlook
    ],
)
def test_attributions_and_header_blocks_of_more_languages_start_the_quote(marker):
    """Mail quoting something else than our notification: the client's marker alone cuts the quote."""
    text = f"Thanks, the parts arrived.\n\n{marker}\n\nQuoted earlier message line one.\nQuoted line two."
    assert strip_quoted(text) == "Thanks, the parts arrived."


@pytest.mark.parametrize(
    "text",
    [
        "I wrote to support@example.com on 3 May about this:\nthe printer still jams.\nPlease call me.",
        "Our meeting notes, 15.01.2025 17:03:\nthe printer still jams.\nPlease call me.",
        "Den nya skrivaren fungerar.\nTill: alla på kontoret\nVi ses i morgon.",
    ],
)
def test_text_that_only_resembles_a_marker_is_kept(text):
    """A line with a date, an address or one header-like label is not a quote by itself."""
    assert strip_quoted(text) == text


def test_android_wrapped_quote_lines_are_quote_but_a_short_interleaved_answer_is_kept():
    """Android's Gmail continues a long quoted line without '>': that line is quote. A writer's answer
    under a quoted line that its first word would have fitted on stays in the text."""
    wrapped = (
        "Fine.\n\nOn Sep 21, 2016 3:18 PM, Shop <s@example.com> wrote:\n"
        "> Pitchfork occupy vegan pabst hammock. Wayfarers etsy pok pok, kale chips\n"
        "brooklyn four dollar toast street art.\n> Second quoted line."
    )
    assert strip_quoted(wrapped) == "Fine."
    interleaved = (
        "On Sep 21, 2016 3:18 PM, Shop <s@example.com> wrote:\n"
        "> Can you send the signed invoice for order 4471 by Friday?\n"
        "Yes, attached.\n> And the receipt?\nAlso attached."
    )
    assert strip_quoted(interleaved) == "Yes, attached.\nAlso attached."


def test_an_earlier_reply_that_quoted_the_notification_does_not_disarm_the_cut_or_the_safety_net():
    """The staff member's first reply is stored as it came, notification quoted below it. Its
    lines must not count as theirs: before, every notification line then stopped being ours,
    and a second reply quoting it in a way no marker knows was relayed whole (review finding)."""
    first = "#status in_progress\n\nOn Mon, 23 Nov 2026, Li Na wrote:\n" + "\n".join("> " + line for line in NOTICE.splitlines())
    second = "Refund sent, please check.\n\n" + "\n".join("| " + line for line in NOTICE.splitlines())
    alone = KnownText(internal=[NOTICE])
    after_first = KnownText(internal=[NOTICE], theirs=[first])
    assert staff_reply_text(second, None, after_first) == staff_reply_text(second, None, alone)
    left = staff_reply_text(second, None, after_first).splitlines()
    # whatever the cut leaves of the notification, the safety net sees it
    assert left[0] == "Refund sent, please check."
    assert all(after_first.is_internal(line) for line in left[1:] if len(line.strip("| ")) >= 12)
    assert len(left) < len(second.splitlines()) - 4  # cut at the notification, not relayed whole


def test_a_command_line_that_ends_several_replies_is_never_learned_as_a_signature():
    """A member who ends three replies with '#urgency urgent' and the same answer line keeps
    the command and the answer: before, the two lines were learned as her signature and the
    third reply's command and answer were dropped without a word."""
    from intake.inbound.quote import learned_signature

    earlier = [f"工单{n}已看过。\n#type fault\n#urgency urgent\n已转技术部。" for n in range(3)]
    assert learned_signature(earlier) == ""
    signed = [f"好的,第{n}个问题已处理。\n李娜\n售后部 138****0000" for n in range(3)]
    assert learned_signature(signed) == "李娜\n售后部 138****0000"
