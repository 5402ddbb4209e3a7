"""A realistic Chinese case as plain data, for the tests, the benchmark and demos.

Modelled on the seeds' record table (C202405001: the printer that keeps jamming): a
complaint by email, our acknowledgement, a technician's visit, the customer's rating.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from email.message import EmailMessage
from email.utils import format_datetime

from archive.record import AttachmentInfo, CaseRecord, RawOriginal, ThreadMessage

CST = timezone(timedelta(hours=8), "CST")


def _eml(sender: str, to: str, subject: str, text: str, at: datetime, msgid: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = format_datetime(at)
    msg["Message-ID"] = msgid
    msg.set_content(text, charset="utf-8")
    return msg.as_bytes()


def sample_case(ticket_ref: str = "261122-0007", *, customer: str = "深圳市某科技有限公司", day: date = date(2026, 11, 22)) -> CaseRecord:
    """A closed complaint with four messages, two attachments and its originals: two A4 pages."""
    t0 = datetime(day.year, day.month, day.day, 9, 14, tzinfo=CST)
    first = (
        "您好：\n\n"
        "我司于今年 10 月采购的 12 台激光打印机（型号 LP-3300）近两周频繁卡纸，平均每天每台卡纸 5 次以上，"
        "财务部月底结账需要大量打印凭证，目前已严重影响办公效率。我们已按说明书清理过进纸通道并更换了纸张，"
        "问题依旧。\n\n"
        "请贵司尽快安排工程师上门检测，并给出书面解决方案。如确属产品质量问题，希望更换设备。\n\n"
        "附件是卡纸时的照片和故障日志。\n\n"
        "张伟\n行政部经理\n深圳市某科技有限公司\n电话：138-1234-5678"
    )
    ack = (
        f"张先生您好：\n\n我们已收到您的来信，工单号 {ticket_ref}。您的问题已按“投诉 / 紧急”登记，"
        "并转交售后部处理，售后专员会在 2 小时内与您联系。\n\n如需补充资料，请直接回复本邮件，"
        "并保留主题中的工单号。\n\n客户服务中心"
    )
    visit = (
        "张先生您好：\n\n工程师王强已于今天下午上门检测，确认 12 台中有 9 台的硒鼓组件批次存在定位偏差，"
        "导致进纸角度异常。处理措施如下：\n"
        "1. 已为 9 台设备免费更换硒鼓组件，现场测试连续打印 500 页无卡纸；\n"
        "2. 另外 3 台设备检测正常，已做清洁保养；\n"
        "3. 全部 12 台设备延长保修 3 个月。\n\n"
        "请您在使用一周后告知我们是否仍有卡纸情况。\n\n售后部 李娜"
    )
    thanks = "李经理：\n\n换件后一周内没有再出现卡纸，财务部已顺利完成月底结账。感谢贵司的快速响应，工程师也很专业。满意度打 5 分。\n\n张伟"
    messages = [
        ThreadMessage(
            "in",
            t0,
            "张伟 <zhang.wei@example.cn>",
            f"打印机频繁卡纸，影响办公 [{ticket_ref}]",
            first,
            attachments=[AttachmentInfo("卡纸照片.jpg", "image/jpeg", 482_113), AttachmentInfo("error-log.txt", "text/plain", 6_204)],
        ),
        ThreadMessage("out", t0 + timedelta(minutes=1), "客户服务中心 <support@example.com>", f"[{ticket_ref}] 我们已收到您的来信", ack),
        ThreadMessage("out", t0 + timedelta(days=1, hours=7), "李娜 <li.na@example.com>", f"Re: 打印机频繁卡纸，影响办公 [{ticket_ref}]", visit),
        ThreadMessage("in", t0 + timedelta(days=8, hours=1), "张伟 <zhang.wei@example.cn>", f"Re: 打印机频繁卡纸，影响办公 [{ticket_ref}]", thanks),
    ]
    originals = [
        RawOriginal(
            f"{ticket_ref}-1-in.eml", _eml(messages[0].sender, "support@example.com", messages[0].subject, first, t0, "<a1b2c3@mail.example.cn>")
        ),
        RawOriginal(
            f"{ticket_ref}-4-in.eml",
            _eml(messages[3].sender, "support@example.com", messages[3].subject, thanks, messages[3].at, "<d4e5f6@mail.example.cn>"),
        ),
    ]
    return CaseRecord(
        ticket_ref=ticket_ref,
        customer_number="C202611001",
        customer_name="张伟",
        company=customer,
        industry="IT",
        email="zhang.wei@example.cn",
        phone="13812345678",
        date_opened=day,
        channel="email",
        type="complaint",
        urgency="urgent",
        department="售后部",
        description="采购的 12 台激光打印机（LP-3300）近两周频繁卡纸，每台每天 5 次以上，影响财务部月底结账；客户要求上门检测并提供书面解决方案。",
        handler="李娜",
        status="closed",
        expected_completion=day + timedelta(days=2),
        actual_completion=day + timedelta(days=1),
        closed_on=day + timedelta(days=8),
        outcome="为 9 台设备免费更换硒鼓组件，3 台清洁保养，全部延保 3 个月；客户确认一周内无卡纸。",
        satisfaction=5,
        follow_up_plan="12 月 15 日电话回访设备运行情况。",
        notes="客户为 VIP 客户，需优先处理。",
        flagged=True,
        classification=[
            "类型 投诉：正文命中关键词“频繁”“影响办公效率”“更换设备”（投诉 +3）",
            "紧急程度 紧急：正文命中“严重影响”“尽快”（紧急 +2），客户为 VIP",
            "分派：投诉 → 售后部；紧急 → 抄送部门负责人（加急）",
        ],
        messages=messages,
        raw_originals=originals,
    )
