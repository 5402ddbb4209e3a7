"""Write the sample customer messages in examples/ (run: python examples/make_examples.py).

The .eml files are committed too; this script shows exactly how their bytes were made
(which charset label over which bytes), and makes them again byte for byte. Try them
with `intake ingest examples/*.eml`.
"""
from __future__ import annotations

import base64
import quopri
from pathlib import Path

HERE = Path(__file__).resolve().parent
SUPPORT = "Acme Support <support@acme-support.cn>"


def word(text: str, charset: str, codec: str | None = None) -> str:
    """An RFC 2047 encoded word, its bytes made with `codec` (default: the charset)."""
    return f"=?{charset}?B?{base64.b64encode(text.encode(codec or charset)).decode()}?="


def message(headers: list[tuple[str, str]], body: bytes) -> bytes:
    head = "".join(f"{name}: {value}\r\n" for name, value in headers)
    return head.encode("ascii") + b"\r\n" + body


def b64(data: bytes) -> bytes:
    return base64.encodebytes(data).replace(b"\n", b"\r\n")


def qp(data: bytes) -> bytes:
    return quopri.encodestring(data).replace(b"\n", b"\r\n")


COMPLAINT_ZH = """客服您好：

我是上海华腾贸易有限公司的采购主管张喆。我司于11月18日下单的20台激光打印机（订单号 HT-20261118-007）
今天到货后发现其中3台外壳破损，1台无法开机。这已经是本季度第二次出现类似问题，严重影响我们的正常办公。

请贵公司在两个工作日内安排换货，并给出书面说明。如有疑问请致电 13812345678。

张喆
上海华腾贸易有限公司 采购部
"""

FAULT_ZH_HANT = """您好：

本公司（香港恒達電子有限公司）於貴司採購的 NAS 儲存伺服器（序號 HK-NAS-88231）自昨晚 23:00 起無法登入管理介面，
多部電腦亦無法存取共用資料夾，影響全公司出貨單據處理，情況緊急。

已嘗試重新開機兩次，問題仍然存在。請盡快派技術人員到場處理。
聯絡人：陳大文，電話 +852 9876 5432（另附內地手機 13912345678）。

陳大文
香港恒達電子有限公司 資訊部
"""

INQUIRY_EN = """Hello,

We are a logistics company in Shenzhen (Pearl River Freight Co., Ltd.) with about 120 staff.
Could you tell us whether your helpdesk plan includes on-site support in Guangdong, and what the
price per seat is for a two-year contract?

We would also like to know whether invoices can be issued in RMB.

Best regards,
Emily Zhou
Purchasing, Pearl River Freight Co., Ltd.
Tel: +86 755 8123 4567
"""

REQUEST_HTML = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><style>body{font-family:'Microsoft YaHei';font-size:14px}</style></head>
<body>
<div>您好，</div>
<p>我们是<b>杭州青禾软件有限公司</b>。因业务扩展，下个月有 <b>15 名</b>新员工入职，需要为他们开通客服系统账号，
并希望增加一个“批量导入用户”的功能，详细名单见<a href="https://example.cn/forms/accounts">开通申请表</a>。</p>
<p>另外，希望报表能按部门导出为 Excel。</p>
<p>谢谢！<br>王芳<br>行政部 0571-8888 1234 / 13712345678</p>
<script>console.log('tracking')</script>
</body></html>
"""

REPLY_ZH = """您好，换货的事情还没有人联系我们。损坏的3台打印机已经拍照留存，
请尽快安排上门取件，我们明天全天都有人在。

张喆 13812345678

在 2026年11月23日 10:16，Acme 客服中心 <support@acme-support.cn> 写道：
> 张喆 您好：
> 我们已收到您的来信，工单已创建，我们将在 24 小时内回复您。
"""

OUT_OF_OFFICE = """您好，我目前休假中，11月30日返回办公室，期间邮件无法及时回复。
紧急事务请联系同事李娜 13612345678。

I am on leave until 30 November with limited access to e-mail.
For urgent matters please contact Li Na, +86 136 1234 5678.
"""


def examples() -> dict[str, bytes]:
    """File name -> exact bytes of each sample message."""
    return {
        "01-complaint-gbk.eml": message(
            [
                ("From", f"{word('张喆', 'gb2312', 'gb18030')} <zhangwei@huateng-trade.cn>"),
                ("To", SUPPORT),
                ("Subject", word("投诉：打印机到货破损，要求换货", "gb2312", "gb18030")),
                ("Date", "Mon, 23 Nov 2026 10:15:02 +0800"),
                ("Message-ID", "<20261123101502.4F2A@huateng-trade.cn>"),
                ("MIME-Version", "1.0"),
                ("Content-Type", 'text/plain; charset="gb2312"'),  # declared gb2312; 喆 exists only in GBK
                ("Content-Transfer-Encoding", "base64"),
                ("X-Mailer", "Foxmail 7.2.25.228[cn]"),
            ],
            b64(COMPLAINT_ZH.encode("gb18030")),
        ),
        "02-fault-big5.eml": message(
            [
                ("From", f"{word('陳大文', 'big5', 'big5hkscs')} <david.chan@hangtat-elec.com.hk>"),
                ("To", SUPPORT),
                ("Subject", word("緊急：NAS 伺服器無法登入", "big5", "big5hkscs")),
                ("Date", "Mon, 23 Nov 2026 09:02:41 +0800"),
                ("Message-ID", "<8823.1763859761@hangtat-elec.com.hk>"),
                ("MIME-Version", "1.0"),
                ("Content-Type", "text/plain; charset=big5"),
                ("Content-Transfer-Encoding", "quoted-printable"),
            ],
            qp(FAULT_ZH_HANT.encode("big5hkscs")),
        ),
        "03-inquiry-en.eml": message(
            [
                ("From", "Emily Zhou <emily.zhou@pearlriver-freight.com>"),
                ("To", SUPPORT),
                ("Subject", "Question about on-site support and pricing"),
                ("Date", "Mon, 23 Nov 2026 11:40:19 +0800"),
                ("Message-ID", "<CAB7x9Qm2026112311401900@mail.pearlriver-freight.com>"),
                ("MIME-Version", "1.0"),
                ("Content-Type", "text/plain; charset=us-ascii"),
                ("Content-Transfer-Encoding", "7bit"),
            ],
            INQUIRY_EN.replace("\n", "\r\n").encode("ascii"),
        ),
        "04-request-html.eml": message(
            [
                ("From", f"{word('王芳', 'utf-8')} <wangfang@qinghe-soft.cn>"),
                ("To", SUPPORT),
                ("Subject", word("需求：新员工账号开通及批量导入功能", "utf-8")),
                ("Date", "Mon, 23 Nov 2026 14:05:55 +0800"),
                ("Message-ID", "<tencent_5B1C2D3E4F@qq.com>"),
                ("MIME-Version", "1.0"),
                ("Content-Type", "text/html; charset=utf-8"),
                ("Content-Transfer-Encoding", "base64"),
            ],
            b64(REQUEST_HTML.encode("utf-8")),
        ),
        "05-reply-to-ack.eml": message(
            [
                ("From", f"{word('张喆', 'gb2312', 'gb18030')} <zhangwei@huateng-trade.cn>"),
                ("To", SUPPORT),
                ("Subject", word("回复：投诉：打印机到货破损，要求换货", "gb2312", "gb18030")),
                ("Date", "Tue, 24 Nov 2026 09:30:11 +0800"),
                ("Message-ID", "<20261124093011.7C11@huateng-trade.cn>"),
                # The acknowledgement's id is the daemon's own; References also carries the
                # customer's first message (01), as mail clients do.
                ("In-Reply-To", "<ack.20261123101502.4F2A@acme-support.cn>"),
                ("References", "<20261123101502.4F2A@huateng-trade.cn>\r\n <ack.20261123101502.4F2A@acme-support.cn>"),
                ("MIME-Version", "1.0"),
                ("Content-Type", "text/plain; charset=GBK"),
                ("Content-Transfer-Encoding", "base64"),
            ],
            b64(REPLY_ZH.encode("gb18030")),
        ),
        "06-out-of-office.eml": message(
            [
                ("From", f"{word('李明', 'utf-8')} <liming@huateng-trade.cn>"),
                ("To", SUPPORT),
                ("Subject", word("自动回复：您的工单已创建", "utf-8")),
                ("Date", "Mon, 23 Nov 2026 10:16:05 +0800"),
                ("Message-ID", "<autoreply.20261123101605@huateng-trade.cn>"),
                ("Auto-Submitted", "auto-replied"),
                ("X-Auto-Response-Suppress", "All"),
                ("MIME-Version", "1.0"),
                ("Content-Type", "text/plain; charset=utf-8"),
                ("Content-Transfer-Encoding", "base64"),
            ],
            b64(OUT_OF_OFFICE.encode("utf-8")),
        ),
    }


def main() -> None:
    for name, data in examples().items():
        (HERE / name).write_bytes(data)
        print(f"wrote {name} ({len(data)} bytes)")


if __name__ == "__main__":
    main()
