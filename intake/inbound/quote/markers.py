"""What a mail client writes above the message it quotes, line by line.

Attribution lines ("On … wrote:", "在 …写道："), "-----Original Message-----" lines,
header blocks (From/Sent/To/Subject in the languages our staff and customers write),
separator rules, and signature lines. Each test looks at one line (and a few after
it); where the quote starts is decided in intake.inbound.quote.split.

Label lists follow what the clients print (Outlook, Foxmail, Alibaba Mail, QQ/Exmail,
NetEase, web.de/GMX, Apple Mail, Gmail, Thunderbird), cross-checked against the
language tables of mail-parser-reply (MIT). The Nordic, Central European, Turkish, Greek,
Vietnamese, Indonesian, Thai, Arabic and Hebrew words are those Outlook, Gmail, Apple Mail and
Thunderbird print in those languages (issue 14 follow-up: misses of the third-party splits).
"""

from __future__ import annotations

import re
import unicodedata

# ---- header blocks -----------------------------------------------------------------

# label (NFKC, lower case, spaces removed) → role. A block needs a "from" and a
# "sent" or "subject" line among consecutive header lines.
_LABELS = {
    "from": (
        "from",
        "发件人",
        "寄件者",
        "寄件人",
        "發件人",
        "von",
        "de",
        "da",
        "van",
        "от",
        "差出人",
        "送信者",
        "보낸사람",
        "afzender",
        "fra",
        "från",
        "lähettäjä",
        "od",
        "feladó",
        "kimden",
        "από",
        "từ",
        "dari",
        "จาก",
        "من",
        "מאת",
    ),
    "sent": (
        "sent",
        "date",
        "发送时间",
        "时间",
        "日期",
        "发件时间",
        "寄件日期",
        "傳送時間",
        "發送時間",
        "gesendet",
        "datum",
        "envoyé",
        "envoye",
        "enviado",
        "enviada",
        "enviadoem",
        "enviadaem",
        "fecha",
        "data",
        "inviato",
        "verzonden",
        "отправлено",
        "дата",
        "送信日時",
        "日付",
        "보낸날짜",
        "날짜",
        "sendt",
        "dato",
        "skickat",
        "lähetetty",
        "päivämäärä",
        "odesláno",
        "wysłano",
        "elküldve",
        "dátum",
        "gönderildi",
        "gönderilme",
        "tarih",
        "στάλθηκε",
        "ημερομηνία",
        "đãgửi",
        "ngày",
        "dikirim",
        "tanggal",
        "ส่ง",
        "วันที่",
        "أرسلت",
        "أرسل",
        "تاريخ",
        "التاريخ",
        "تاريخالإرسال",
        "נשלח",
        "תאריך",
    ),
    "to": (
        "to",
        "收件人",
        "收件者",
        "an",
        "à",
        "a",
        "para",
        "aan",
        "кому",
        "宛先",
        "받는사람",
        "til",
        "till",
        "vastaanottaja",
        "komu",
        "do",
        "címzett",
        "kime",
        "προς",
        "đến",
        "tới",
        "kepada",
        "ถึง",
        "إلى",
        "אל",
    ),
    "cc": ("cc", "抄送", "副本", "kopie", "copie", "копия", "참조", "bcc", "kopi", "kopia", "dw", "másolat", "bilgi", "κοιν", "עותק", "نسخة"),
    "subject": (
        "subject",
        "主题",
        "主旨",
        "betreff",
        "objet",
        "asunto",
        "assunto",
        "oggetto",
        "onderwerp",
        "тема",
        "件名",
        "제목",
        "emne",
        "ämne",
        "aihe",
        "předmět",
        "temat",
        "tárgy",
        "konu",
        "θέμα",
        "chủđề",
        "tiêuđề",
        "perihal",
        "subjek",
        "เรื่อง",
        "الموضوع",
        "נושא",
    ),
    "other": ("reply-to", "importance", "priority", "attachments", "附件", "重要性", "organization"),
}
_ROLE = {label: role for role, labels in _LABELS.items() for label in labels}
_LEAD = re.compile(r"[\s>*|]*")
_LABEL = re.compile(r"([^:\n]{1,24}?)[\s*]*:")


def header_role(line: str) -> str | None:
    """'from', 'sent', 'to', 'cc', 'subject' or 'other' for a header line of a quoted mail."""
    # The leading quote marks and indentation are skipped in one pass and only the next 64
    # characters are read: the label pattern run over a line's indentation backtracked
    # through every split of it (1 MB of text indented by 200 spaces: 5.3 s).
    start = _LEAD.match(line).end()  # type: ignore[union-attr]  # matches the empty string at worst
    m = _LABEL.match(unicodedata.normalize("NFKC", line[start : start + 64]))
    if m is None:
        return None
    label = re.sub(r"[\s*]+", "", m.group(1)).lower()
    return _ROLE.get(label)


def header_block(lines: list[str], start: int) -> int:
    """The length of the header block that starts at `start` (0: none).

    Consecutive header lines (one unlabelled wrapped line allowed after a labelled
    one), with a From line and a Sent/Date or Subject line among them."""
    roles: set[str] = set()
    i = start
    while i < len(lines) and i < start + 12:
        role = header_role(lines[i]) if len(lines[i]) < 400 else None
        if role is None:
            if i > start and lines[i].strip() and i + 1 < len(lines) and header_role(lines[i + 1]) and not _ATTRIBUTION.match(lines[i].lstrip()):
                i += 1  # a long To: line wrapped onto the next
                continue
            break
        roles.add(role)
        i += 1
    if header_role(lines[start]) is None or "from" not in roles or not roles & {"sent", "subject"}:
        return 0
    return i - start


# ---- separators and attribution lines ----------------------------------------------------

_ORIGINAL = (
    r"original(?:\s+message)?|forwarded\s+message|reply\s+message|message\s+d['’]origine|message\s+transféré|ursprüngliche\s+nachricht"
    r"|weitergeleitete\s+nachricht|mensaje\s+original|mensagem\s+original|messaggio\s+originale|oorspronkelijk\s+bericht"
    r"|doorgestuurd\s+bericht|исходное\s+сообщение|пересылаемое\s+сообщение|原始邮件|原始郵件|原始信息|原始訊息|邮件原件|郵件原件|原邮件|转发邮件|转发的邮件"
    r"|轉寄郵件|回复邮件|元のメッセージ|転送メッセージ|원본\s*메시지|전달된\s*메시지"
    r"|oprindelig\s+(?:meddelelse|besked)|opprinnelig\s+melding|ursprungligt\s+meddelande|alkuperäinen\s+viesti|původní\s+zpráva"
    r"|oryginalna\s+wiadomość|wiadomość\s+oryginalna|eredeti\s+üzenet|orijinal\s+mesaj|özgün\s+ileti|αρχικό\s+μήνυμα|tin\s+nhắn\s+gốc"
    r"|thư\s+gốc|pesan\s+asli|ข้อความต้นฉบับ|الرسالة\s+الأصلية|ההודעה\s+המקורית|הודעה\s+מקורית"
    r"|videresendt\s+(?:meddelelse|besked|melding)|vidarebefordrat\s+meddelande|välitetty\s+viesti|přeposlaná\s+zpráva"
    r"|przekazana\s+wiadomość|továbbított\s+üzenet|iletilen\s+mesaj|προωθημένο\s+μήνυμα|thư\s+chuyển\s+tiếp|pesan\s+terusan"
)
# "-----Original Message-----", "------------------ 原始邮件 ------------------"
_ORIGINAL_LINE = re.compile(rf"^\s*+[-_=—]{{2,}}+\s*+(?:{_ORIGINAL})\s*[-_=—]{{2,}}\s*$", re.IGNORECASE)
# a rule of dashes, underscores or equals signs, alone or glued to text before it ("阿里邮箱-------")
_RULE = re.compile(r"^.{0,40}?[-_=—]{5,}\s*$")
_RULE_ENDS = ("-", "_", "=", "—")
_UNDERSCORES = re.compile(r"^\s*_{10,}\s*$")  # Outlook's rule above its header block

_WROTE = (
    r"(?:wrote|schrieb|a\s+écrit|escribió|escreveu|ha\s+scritto|schreef|написал\(?а?\)?|писал|写道|寫道|書きました|작성"
    r"|skrev|kirjoitti|napsal(?:\(a\)|a)?|napisał(?:\(a\)|a)?|írta|yazdı|έγραψε|đã\s+viết|menulis|a\s+scris|เขียน(?:ว่า)?|كتب|כתב(?:ה)?)"
)
# the words that open an attribution with its date ("On …", "Am …", "Den …" (sv/da/no), "Dne …" (cs), "W dniu …" (pl),
# "Vào …" (vi), "Pada …" (id), "Στις …" (el), "เมื่อ …" (th), "في …" (ar), "בתאריך …" (he))
_ON = r"(?:on|am|le|el|em|il|op|den|dne|w\s+dniu|vào|pada|στις|เมื่อ|في|בתאריך)"
# The patterns below that start with `^\s*` are matched against `line.lstrip()`: an unbounded
# `\s*` before a bounded `.{m,n}` backtracks through every split of a long indent (1 MB of
# indented "… wrote am …" lines took 4.5 s; tests/hostile/test_dos_quote.py).
_ATTRIBUTION = re.compile(
    rf"""^\s*(?:
        {_ON}\s.{{4,200}}\s{_WROTE}(?:\s.{{0,80}})?\s*[:：]\s*$                             # On Mon …, X wrote:  / Am … schrieb X:
      | 在\s?[^写寫]{{4,200}}(?:写道|寫道)\s*[:：]?\s*$                                   # 在 2026年11月20日 …… 写道：
      | .{{2,200}}(?:于|於)\s?[^于於]{{4,80}}(?:写道|寫道)\s*[:：]?\s*$                     # 张三 <z@x.cn> 于2026年11月20日周五 10:00写道：
      | (?=.*\d).{{4,200}}\s{_WROTE}\s*[:：]\s*$                                           # 23.11.2026 10:00, X написал:
      | .{{0,200}}(?:님이\s*작성|さんは書きました|のメッセージ)\s*[:：]?\s*$
    )""",
    re.IGNORECASE | re.VERBOSE,
)
# Matched from the first character that is not a space (a pattern opening with '\s*' before a bounded
# '.{m,n}' backtracks through every split of a line's indentation).
_ATTRIBUTION_NO_INDENT = re.compile(
    rf"""(?:
        -{{2,8}}\s?{_ON}\s.{{4,200}}\s{_WROTE}\s?-{{2,8}}\s*$                           # Zoho: ---- On … X wrote ----
      | (?=.{{0,200}}@)\S.{{1,199}}\s{_WROTE}\s+{_ON}\s(?=.{{0,100}}\d).{{4,120}}[:：]\s*$  # X <x@y> schrieb am So., 23. Juni 2024, 21:08:
    )""",
    re.IGNORECASE | re.VERBOSE,
)
_INDENT = re.compile(r"\s*")


def _attribution(line: str) -> bool:
    """One line that is a whole attribution, in any of the languages above."""
    return bool(_ATTRIBUTION.match(line.lstrip()) or _ATTRIBUTION_NO_INDENT.match(line, _INDENT.match(line).end()))  # type: ignore[union-attr]


# "On Mon, 20 Nov 2026, Li Wei <li@example.com>" + next line "wrote:" (Gmail wraps long ones), or any
# line with a date or time wrapped before "… написал:"
_ATTRIBUTION_START = re.compile(rf"^\s*(?:{_ON}|在)\s.{{4,200}}$", re.IGNORECASE)
# "X <x@y> schrieb am So., 23." + "Juni 2024, 21:08:" (the name first, the date wrapped)
_NAME_FIRST_START = re.compile(rf"^(?=.{{0,200}}@).{{2,200}}\s{_WROTE}\s+{_ON}\s.{{0,120}}$", re.IGNORECASE)
_DATED_START = re.compile(r"^(?=.*(?:\d{1,4}[-./年]\d{1,2}|\d{1,2}:\d{2})).{4,200}$")
# an attribution wrapped over two or three lines ("Am So., 1. Jan. 2023 um 17:22 Uhr schrieb John Doe <" + "noreply@github.com>:")
_ATTRIBUTION_JOINED = re.compile(
    rf"^\s*(?:{_ON}\s.{{4,300}}\s{_WROTE}(?:\s.{{0,120}})?\s*[:：]|在\s?[^写寫]{{4,300}}(?:写道|寫道)\s*[:：]?"
    rf"|.{{2,300}}(?:于|於)\s?[^于於]{{4,120}}(?:写道|寫道)\s*[:：]?|(?=.{{0,300}}@).{{2,300}}\s{_WROTE}\s+{_ON}\s(?=.{{0,200}}\d).{{4,200}}[:：])\s*$",
    re.IGNORECASE,
)
# Apple Mail's and others' forward line
_FORWARDED = re.compile(
    r"^\s*(?:begin\s+forwarded\s+message|début\s+du\s+message\s+réexpédié|anfang\s+der\s+weitergeleiteten\s+nachricht"
    r"|inizio\s+messaggio\s+inoltrato|comienzo\s+del\s+mensaje\s+reenviado|以下为转发的邮件|转发的邮件)\s*[:：]\s*$",
    re.IGNORECASE,
)
_WROTE_LINE = re.compile(rf"^\s*.{{0,100}}{_WROTE}\s*[:：]?\s*$", re.IGNORECASE)
# any attribution: a date or time and an address, ending in a colon ("2026年11月23日(月) 10:00 Support <s@x>:")
_ADDRESS_COLON = re.compile(r"^(?=.*\d)(?=.*@).{6,300}[:：]\s*$")
# Gmail's attribution in languages where it has no verb: a date, a name and the address in angle
# brackets, then a colon ("ср, 30 апр. 2025 г. в 15:19, John Doe <doe@example.com>:")
_DATED_NAME_ADDRESS = re.compile(r"^(?=.{0,60}\d)[^<>\n]{6,200}<[^<>\s@]{1,64}@[^<>\s]{1,255}>\s?[:：]\s*$")

# a line that could end an attribution holds one of these: the cheap test before the costly ones
_WROTE_WORDS = (
    "wrote",
    "schrieb",
    "écrit",
    "escribió",
    "escreveu",
    "scritto",
    "schreef",
    "писал",
    "写道",
    "寫道",
    "書きました",
    "작성",
    "のメッセージ",
    "skrev",
    "kirjoitti",
    "napsal",
    "napisał",
    "írta",
    "yazdı",
    "έγραψε",
    "viết",
    "menulis",
    "scris",
    "เขียน",
    "كتب",
    "כתב",
)


def _wrote(line: str) -> bool:
    low = line.lower()
    return any(word in low for word in _WROTE_WORDS)


QUOTED = re.compile(r"^\s*>")
_WRAP_WIDTH = 76  # Gmail for Android wraps quoted lines near here and leaves the continuation without '>'


def wraps_quoted_line(lines: list[str], i: int) -> bool:
    """Line i continues the '>' line above it, wrapped by a client that drops the '>' (Android's
    Gmail): it sits between two '>' lines with no blank line, and its first word would not have
    fitted on the long quoted line above. An interleaved answer has a blank line or a short
    quoted line above it."""
    if not 0 < i < len(lines) - 1 or not lines[i].strip() or QUOTED.match(lines[i]):
        return False
    above, below = lines[i - 1], lines[i + 1]
    if not QUOTED.match(above) or not QUOTED.match(below):
        return False
    quoted_text = above.lstrip().lstrip(">").strip()
    first_word = lines[i].split(None, 1)[0]
    return len(quoted_text) >= _WRAP_WIDTH - 20 and len(quoted_text) + 1 + len(first_word) > _WRAP_WIDTH


MAX_SCAN_LINES = 3000  # a quote marker further down is not looked for (hostile or huge text stays whole)


def quote_start(lines: list[str], i: int) -> int:
    """How many lines from `i` on open a quoted earlier message (0: line i opens none)."""
    line = lines[i]
    if len(line) > 300 or QUOTED.match(line) or not line.strip():
        return 0
    if line.rstrip().endswith(_RULE_ENDS) and (_ORIGINAL_LINE.match(line) or _UNDERSCORES.match(line)):
        return 1
    wrote = _wrote(line)
    if (wrote and _attribution(line)) or _FORWARDED.match(line):
        return 1
    if (
        i + 1 < len(lines)
        and _wrote(lines[i + 1])
        and _WROTE_LINE.match(lines[i + 1].lstrip())
        and (_ATTRIBUTION_START.match(line.lstrip()) or (_DATED_START.match(line) and lines[i + 1].rstrip().endswith((":", "："))))
    ):
        return 2
    for extra in (1, 2) if _may_open_attribution(line) else ():
        if (
            i + extra < len(lines)
            and any(_wrote(lines[j]) for j in range(i, i + extra + 1))
            and all(lines[j].strip() and not (j > i and _ATTRIBUTION_START.match(lines[j].lstrip())) for j in range(i, i + extra + 1))
        ):
            if _ATTRIBUTION_JOINED.match(" ".join(lines[j].strip() for j in range(i, i + extra + 1))):
                return extra + 1
    if _ADDRESS_COLON.match(line) and (_next_is_quoted(lines, i) or _DATED_NAME_ADDRESS.match(line)):
        return 1
    if line.rstrip().endswith(_RULE_ENDS) and _RULE.match(line) and header_block(lines, _skip_blank(lines, i + 1)):
        return 1
    if header_block(lines, i):
        return 1
    return 0


def _may_open_attribution(line: str) -> bool:
    return bool(_ATTRIBUTION_START.match(line.lstrip())) or "于" in line or "於" in line or bool(_wrote(line) and _NAME_FIRST_START.match(line))


def _skip_blank(lines: list[str], i: int) -> int:
    while i < len(lines) - 1 and not lines[i].strip():
        i += 1
    return min(i, len(lines) - 1)


def _next_is_quoted(lines: list[str], i: int) -> bool:
    j = i + 1
    if j < len(lines) and not lines[j].strip():
        j += 1
    return j < len(lines) and bool(QUOTED.match(lines[j]))


def is_rule(line: str) -> bool:
    """A separator line (dashes, underscores, '* * *'), possibly glued to text before it."""
    stripped = line.strip()
    return bool((stripped.endswith(_RULE_ENDS) and (_RULE.match(line) or _ORIGINAL_LINE.match(line))) or stripped in ("* * *", "***"))


def is_attribution(line: str) -> bool:
    """An attribution line of any language: 'On … X wrote:', 'X <a@b> 2026-11-23 10:00:'."""
    return bool((_wrote(line) and _attribution(line)) or _ADDRESS_COLON.match(line))


# ---- signatures ------------------------------------------------------------------------

_SIG_DASHES = re.compile(r"^--\s?$")
_MOBILE_SIG = re.compile(
    r"""^\s*(?:
        sent\s+from\s+my\s+\S.{0,40}
      | sent\s+from\s+(?:mail|outlook|yahoo|samsung|huawei|xiaomi|the\s+\S+\s+app)\b.{0,40}
      | (?:get|download)\s+outlook\s+for\s+\S.{0,60}
      | (?:télécharger|obtenir)\s+outlook\s+pour\s+\S.{0,60} | (?:descargar|obtener|baixe|baixar)\s+o?\s?outlook\s+para\s+\S.{0,60}
      | gesendet\s+von\s+outlook\s+für\s+\S.{0,60} | outlook\s+für\s+(?:ios|android)\s+herunterladen\S{0,60}
      | gesendet\s+(?:von|mit)\s+(?:meinem|der|mobile).{0,40}
      | envoyé\s+de\s+mon\s+\S.{0,30} | enviado\s+desde\s+mi\s+\S.{0,30} | inviato\s+da\s+\S.{0,30}
      | (?:发自|發自|来自|來自)(?:我的)?\s?(?:iphone|ipad|android|samsung|华为|華為|小米|荣耀|oppo|vivo|企业微信|企業微信
          |\S{0,12}(?:邮箱|郵箱|手机|手機|设备|設備|客户端|大师|大師|邮件|郵件))\S{0,12}
      | 从我的.{1,40}发送[。.]?
    )\s*$""",
    re.IGNORECASE | re.VERBOSE,
)
MAX_SIGNATURE_LINES = 15


def is_signature_start(line: str) -> bool:
    return bool(_SIG_DASHES.match(line) or _MOBILE_SIG.match(line))
