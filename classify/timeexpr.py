r"""Deadlines and time pressure in a customer's words, Chinese and English.

"今天下午4点前", "下班前", "明早开会要用", "一小时内", "by 5pm today", "before noon",
"within 2 hours" say the case must be done today: urgency urgent by the labelling guide
(../shared/LABELS.md). "本周五前", "下周一", "月底前", "by Friday", "before Monday",
"end of the month" give it days: important.

Text is matched as classify.normalize leaves it (NFKC, case-folded, simplified Chinese).
Every pattern is a plain alternation with bounded gaps (no unbounded `\s*` next to an
optional part, which backtracks quadratically on a long run of spaces), so the cost is linear in the text
(a message of a megabyte is no slower per character than a line; see tests/hostile).
A bare "今天" or "today" is no deadline ("今天收到货" is when the goods came); a deadline
needs a marker: a time of day with 前/之前, "by", "before", "within", "must ... today".
A few patterns carry a veto: words just before the match (a routine "每天", a past "上次",
"yesterday", a question about opening hours "open") or just after it ("吗", "?") that make
it no deadline; each is checked on a window of at most _REACH characters, so it keeps the
cost linear.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import ahocorasick

TODAY = "today"  # must be done today (or within hours, or first thing tomorrow)
WAITING = "waiting"  # people are waiting on it now: patients queuing, a truck at the gate
DAYS = "days"  # a deadline within days
HURRY = "hurry"  # a bare 急: the writer is in a hurry, which says nothing of when (rules `hurry`)
KINDS = (TODAY, WAITING, DAYS, HURRY)

_S = r"\s{0,2}"  # gaps are bounded: see the module's docstring
_W = r"\s{1,3}"
_HOURS = r"(?:1[0-2]|[1-9]|十[一二]?|[一二两三四五六七八九半])"  # up to 12: "24小时内" is a promise in days
_NUM = r"(?:\d{1,2}|[一二两三四五六七八九十半])"
_CLOCK_ZH = rf"(?:{_NUM}{_S}[点:时](?:{_S}(?:\d{{1,2}}|半|[一二三四五]十?){_S}分?)?)"
_WEEKDAY_ZH = r"(?:周|星期|礼拜)[一二三四五六日天]"
_DAY_EN = r"(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday|mon|tue|tues|wed|thu|thur|thurs|fri)"
_CLOCK_EN = r"(?:\d{1,2}(?::\d{2})?\s{0,2}(?:am|pm|a\.m\.|p\.m\.|o'clock)|\d{1,2}:\d{2}|noon|midday|midnight)"
_CLAUSE_ZH = r"[^,.!?;。、\n]"  # within one clause (normalised text: full-width ，？！ are ASCII)
_REACH = 16  # how far a veto looks before or after its match


@dataclass(frozen=True)
class Veto:
    """What makes a match of a pattern no deadline: `before` ends just before the match
    (searched in the _REACH characters before it), `after` starts just after it."""

    before: str | None = None
    after: str | None = None
    compiled: tuple[re.Pattern[str] | None, re.Pattern[str] | None] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        before = re.compile(rf"(?:{self.before})\Z") if self.before else None
        after = re.compile(self.after) if self.after else None
        object.__setattr__(self, "compiled", (before, after))

    def rejects(self, text: str, start: int, end: int) -> bool:
        before, after = self.compiled
        if before is not None and before.search(text[max(0, start - _REACH) : start]):
            return True
        return after is not None and after.match(text, end, end + _REACH) is not None


# a routine ("每天上午10点开门") or a past day ("上次", "昨天") before a time or a count
_ZH_ROUTINE_OR_PAST = rf"(?:每天|每日|天天|每周|每逢|每次|平时|平常|平日|通常|一般|往常|经常|上次|昨天|昨日|昨晚|前天|琴日|寻日|那天|上周|上星期|上礼拜){_CLAUSE_ZH}{{0,8}}"
_ZH_QUESTION = rf"{_CLAUSE_ZH}{{0,3}}?(?:吗|\?)"  # "上午8点开诊吗?" asks about opening hours
# a question about opening hours ("are you open today 4pm?"), a time in the past ("since today 9am")
_EN_OPENING_OR_PAST = r"\b(?:open|opens|opening|hours|since|earlier)\b[^.!?\n]{0,12}"
_EN_ROUTINE_OR_PAST = r"\b(?:every|each|usual|usually|normally|regular|daily|yesterday's|yesterday|last)\b[^.!?\n]{0,12}"

# (kind, trigger words, pattern[, veto]). A pattern runs only on a text holding one of its trigger
# words: a substring test in C skips most patterns for most messages, which keeps
# classification above 10,000 messages per CPU second (the patterns alone cost 2.5 times
# the keyword matching).
_PATTERNS: tuple[tuple[str, tuple[str, ...], str] | tuple[str, tuple[str, ...], str, Veto], ...] = (
    # -- Chinese: today ---------------------------------------------------------------
    (
        TODAY,
        ("今", "当天"),
        rf"(?:今天|今日|今早|今晚|今夜|当天){_S}(?:上午|中午|下午|晚上|早上)?{_S}{_CLOCK_ZH}?{_S}(?:之前|以前|前|内|之内|为止|截止)",
    ),
    (TODAY, ("今天", "今日", "当天"), r"(?:今天|今日|当天)\s{0,2}(?:必须|一定要|就要|得|务必|要用|要交|要发|要到|要上线|要完成|要处理)"),
    (TODAY, ("必须", "一定要", "务必", "最晚", "最迟"), r"(?:必须|一定要|务必|最晚|最迟)\s{0,2}(?:在)?\s{0,2}(?:今天|今日|今晚|当天)"),
    (TODAY, ("点前", "点之前", "点以前", "点半", "时前", "分前", "分之前", ":"), rf"{_CLOCK_ZH}{_S}(?:之前|以前|前)"),
    (TODAY, ("前",), r"(?:下班|午饭|午休|中午|天黑|关门|打烊|收市|开门|开业|开诊|上课|开课|开会|开播|发车|发货|截单)\s{0,2}(?:之前|以前|前)"),
    (TODAY, ("小时", "钟头"), rf"(?<!\d){_HOURS}{_S}(?:个)?{_S}(?:小时|钟头){_S}(?:之内|以内|内)"),
    (TODAY, ("小时", "钟头"), r"(?:几|半)\s{0,2}(?:个)?\s{0,2}(?:小时|钟头)\s{0,2}(?:之内|以内|内)"),
    (
        TODAY,
        ("明早", "明天", "明儿"),
        r"(?:明早|明天一早|明天早上|明天上午|明儿一早)\s{0,2}.{0,6}?(?:要用|开会|开庭|上线|汇报|检查|审计|验收|之前|以前|前|就要)",
    ),
    # needed or happening today, said with 要: "今天下午要打的疫苗", "今晚要发的货"
    (
        TODAY,
        ("今天", "今日", "今晚", "今早"),
        r"(?:今天|今日|今晚|今早)(?:上午|中午|下午|晚上)?\s{0,2}(?:就|还|必须|一定)?\s{0,2}要(?:用|打|交|发|出|上|开|到|送|做|办|给|考|签|演)",
    ),
    (TODAY, ("马上", "立刻", "立即"), r"(?:马上|立刻|立即)\s{0,2}(?:就要|要用|要交|开始|开会|上课)"),
    # a bare 急 ending the message or a line, after a space or punctuation ("。急", " 急", "急!"): now.
    # Never inside a word: 急诊, 紧急联系人, 着急 ("不急", "不着急" are no bare 急, and cancel time in [time])
    (HURRY, ("急",), r"(?<![^\s,.!?;:。、~])急(?=[!.。~]{0,4}[ \t]{0,3}(?:\n|\Z))"),
    # minutes away: "5分钟后上课", "还有几分钟就开课", "再等半小时就要走"
    (TODAY, ("分钟", "分鐘"), rf"(?<!\d)(?:\d{{1,2}}|[一二两三四五六七八九十几半]{{1,2}}){_S}(?:个)?{_S}分钟{_S}(?:后|以后|之后|内|之内|就)"),
    (TODAY, ("还有", "再等"), r"(?:还有|再等)\s{0,2}(?:\d{1,2}|[一二两三四五六七八九十几半])\s{0,2}(?:个)?\s{0,2}(?:分钟|小时|钟头)"),
    # time running out: "还剩3分钟!!" (writer-w: an exam being sat); minutes only, and not what a screen or a
    # battery shows ("进度条显示还剩5分钟", "播放到还剩3分钟的时候卡住", "课时还剩10个小时")
    (
        TODAY,
        ("剩",),
        r"(?:还剩|只剩|仅剩|就剩)\s{0,2}(?:不到)?\s{0,2}(?:\d{1,2}|[一二两三四五六七八九十几])\s{0,2}分钟(?!的时候|时|就)",
        Veto(before=rf"(?:显示|进度|播放|视频|充|电池|电量|提醒|提示|设置|倒计时|{_ZH_ROUTINE_OR_PAST}){_CLAUSE_ZH}{{0,6}}"),
    ),
    # hours in Cantonese, 个钟 or 粒钟: "三個鐘後", "仲有兩個鐘", "兩個鐘內" ("搞咗三個鐘後" is past, "每日兩個鐘" routine)
    (
        TODAY,
        ("个钟", "粒钟"),
        rf"(?<!\d){_HOURS}{_S}[个粒]{_S}(?:半{_S})?钟(?!头){_S}(?:后|之后|以后|内|之内|以内|就)"
        rf"|(?:仲有|还有|再过|再等|只剩|剩返|剩下|不够|唔够|不到|唔到)\s{{0,2}}{_HOURS}{_S}[个粒]{_S}(?:半{_S})?钟(?!头)",
        Veto(before=rf"(?:咗|了|过|{_ZH_ROUTINE_OR_PAST}){_CLAUSE_ZH}{{0,2}}"),
    ),
    # a time today with what happens then: "两点的直播课", "快递四点来收", "下午3点开考"
    (
        TODAY,
        ("点", "时", ":"),
        rf"(?:今天|今日|今早|今晚|上午|中午|下午|晚上|早上|待会|等下)?{_S}{_CLOCK_ZH}{_S}(?:就|要|准时)?{_S}"
        r"(?:来收|来取|来拿|开始|开课|上课|开考|考试|截止|开会|开门|开业|开诊|出门诊|门诊|接诊|坐诊|开播|直播|发车|上线|出成绩|的课|的直播|的会|的考试|"
        r"就到|就来|要到|要来|到齐|集合|起飞|出发|登机|关门|提货|揽收|来揽收|来提货|装车|装柜|到厂|来厂|到场|验货|验厂|剪彩|开张|离馆|离场|离厂)",
        Veto(before=_ZH_ROUTINE_OR_PAST, after=_ZH_QUESTION),
    ),
    # tomorrow morning is as good as today: "明天上午八点考试", "明早的单子"
    (TODAY, ("明早", "明天", "明日", "聽日", "听日", "听朝"), r"(?:明早|明天一早|明天一大早|明天早上|明天上午|明日上午|听日朝早|听朝一早|听朝)"),
    # something happens today, said with 要/是/有: "今天下午第一节是数学期中考", "今天下午要给供应商付货款"
    (
        TODAY,
        ("今天", "今日", "今晚"),
        r"(?:今天|今日|今晚)(?:上午|中午|下午|晚上)?[^,.!?;。!?;\n]{0,10}?(?:要|就要|还要|得|有|是)[^,.!?;。!?;\n]{0,6}?"
        r"(?:考试|期中考|期末考|考|开会|面试|开庭|手术|体检|航班|起飞|登机|出发|集合|截止|付款|付|发工资|发薪|报税|申报|到期|上线|开业|验收|审计|提货|揽收|交货|发货)",
    ),
    # an appointment or a departure at a time today: "今天下午2点的心内科号", "今晚8点的航班"
    (
        TODAY,
        ("今天", "今日", "今晚", "今早"),
        rf"(?:今天|今日|今晚|今早)(?:上午|中午|下午|晚上)?{_S}{_CLOCK_ZH}{_S}的[^,.!?;。!?;\n]{{0,6}}?(?:号|航班|飞机|车|船|票|预约|手术|检查|面试|课|考试|会)",
    ),
    (TODAY, ("明天", "明日"), r"(?:明天|明日)\s{0,2}(?:开张|开业|开线|开考|考试|上线|开课|正式)"),
    # someone waiting now, named: "在等配件" or "排队等了20分钟" is no one waiting on us today
    (
        WAITING,
        ("排", "等着", "在等", "等紧", "干等", "围着", "围在", "堵在"),
        r"(?:病人|患者|病号|顾客|客人|客户们|学生|家长|老师|司机|货车|车队|工人|大家|所有人|一屋子人|好多人|很多人|几十个人|上百人)"
        r"(?:都|全|已经|还)?(?:在)?[^,.!?;,。!?;\n]{0,6}?(?:排着队|排队|排长队|等着|在等|干等|围着|围在|堵在|等紧)",
    ),
    # people standing idle where they work: "六十几个工人站在那里等" (writer-v); not "在那里等了两个小时" (past),
    # a question ("客户们可以在那边等吗?") or a routine
    (
        WAITING,
        ("里等", "儿等", "边等", "地等"),
        r"(?:病人|患者|顾客|客人|学生|考生|司机|工人|员工|大家|所有人)[^,.!?;,。!?;\n]{0,6}?(?:那里等|那儿等|那边等|原地等)(?![了咗过])",
        Veto(before=_ZH_ROUTINE_OR_PAST, after=_ZH_QUESTION),
    ),
    # a number of people waiting: "外面排了二十多个人在等", "还坐着三十几个人", "十几个客人拎住券等紧"
    (
        WAITING,
        ("排", "等", "坐着", "站着", "围"),
        r"(?:排了|坐着|站着|围着|还有|已经有)\s{0,2}(?:\d{1,3}|[一二两三四五六七八九十几百]{1,3})\s{0,2}多?\s{0,2}(?:个|位|名)?\s{0,2}"
        r"(?:人|病人|患者|客人|顾客|学生|老师|家长|司机|工人)",
    ),
    # "十几个客人在等", "30多人等着" ("每天都有30多人等着" is a routine)
    (
        WAITING,
        ("在等", "等着", "等紧", "干等"),
        r"(?:\d{1,3}|[一二两三四五六七八九十几百]{1,3})\s{0,2}多?\s{0,2}(?:个|位|名)?\s{0,2}(?:人|病人|患者|客人|顾客|学生|老师|家长|司机|工人|买家)"
        r"[^,.!?;,。!?;\n]{0,8}?(?:在等|等着|等紧|干等)",
        Veto(before=_ZH_ROUTINE_OR_PAST),
    ),
    # waiting now for minutes or hours: "现在人在一楼大堂等了四十多分钟", "已经在门口等20分钟", "等咗兩個鐘"
    # ("等了三天" is a complaint about days; "现在要等20分钟" says how slow, no one is waiting)
    (
        WAITING,
        ("等了", "等咗", "分钟", "小时", "钟头", "个钟"),
        r"(?:现在|已经|还在)[^,.!?;,。!?;\n]{0,10}?(?<![要得需])等(?:了|咗)?\s{0,2}(?:\d{1,3}|[一二两三四五六七八九十几半]{1,3})\s{0,2}多?\s{0,2}"
        r"(?:(?:个)?\s{0,2}(?:分钟|小时|钟头)|个\s{0,2}(?:半\s{0,2})?钟)",
    ),
    # -- Chinese: days ----------------------------------------------------------------
    (DAYS, ("周", "星期", "礼拜"), rf"(?:本|这|下|下个){_S}{_WEEKDAY_ZH}{_S}(?:之前|以前|前|截止|要用|开会|上线)?"),
    (DAYS, ("周", "星期", "礼拜"), rf"{_WEEKDAY_ZH}{_S}(?:之前|以前|前|截止)"),
    # a weekday with what happens then: "周四开质量分析会要用" ("上周四" is past, and so is
    # what has not happened since: "周三的订单还没发货", "周一到现在都没到货")
    (
        DAYS,
        ("周", "星期", "礼拜"),
        rf"(?<!上)(?<!上个){_WEEKDAY_ZH}[^,.!?;,。!?;\n没未]{{0,8}}?(?:要用|要交|开会|截止|到期|检查|审核|验收|上线|考试|开业|开张|投标|招标|开标|交货|发货|出货|交付|评审|演示|展会|"
        r"发布|开学|到货|上课|比赛|答辩|评估|年检|审计|开庭|签约|结账|关账|报税|申报)",
    ),
    (
        DAYS,
        ("周", "星期", "礼拜"),
        r"(?:本周|这周|这个星期|这星期|本星期|今个星期|这礼拜|下周|下个星期|下星期|下礼拜)\s{0,2}(?:内|之内|之前|以前|前|结束前)?",
    ),
    (DAYS, ("月底", "月末", "季末"), r"(?:月底|月末|季末)\s{0,2}(?:之前|以前|前|结账|关账|截止)?"),
    (DAYS, ("年底", "年末"), r"(?:年底|年末)\s{0,2}(?:之前|以前|前|截止)"),
    (DAYS, ("工作日", "天内", "天之内", "天以内"), rf"{_NUM}{_S}(?:个)?{_S}(?:工作日|天){_S}(?:之内|以内|内)"),
    (DAYS, ("明天", "明日", "后天"), r"(?:明天|明日|后天)\s{0,2}(?:之前|以前|前|要用|要交|截止|上线|开会|必须)"),
    (DAYS, ("截止", "期限", "deadline"), r"(?:截止日期|截止时间|最后期限|deadline)"),
    # -- English: today ---------------------------------------------------------------
    (
        TODAY,
        ("by", "before", "until", "till", "no later"),
        rf"\b(?:by|before|until|till|no later than){_W}(?:{_CLOCK_EN}|today|tonight|this (?:morning|afternoon|evening)|"
        r"the end of (?:the |today's |the working |the business )?day|end of (?:the )?day|eod|cob|close of business|lunch(?:time)?|"
        r"(?:our |the )?(?:shift|store|shop|clinic|office) (?:opens|closes|change)|first thing tomorrow|tomorrow morning)\b"
        r"(?!\s{0,2}(?:tomorrow|on |next |this (?:week|month)))",
    ),
    # hours up to 12: "within 24/48 hours" is a promise about days, not today
    (
        TODAY,
        ("hour", " hr"),
        r"\b(?:within|in the next|in next|in)\s{1,3}(?:an|one|two|three|four|five|six|a few|a couple of|[1-9]|1[0-2])\s{1,3}(?:hours?|hrs?)\b",
    ),
    (TODAY, ("today", "tonight"), r"\b(?:today|tonight)\s{1,3}(?:by|before|at)\b"),
    (
        TODAY,
        ("today", "tonight", "this morning", "this afternoon"),
        r"\b(?:must|need(?:s|ed)? to|has to|have to|got to|needs? (?:it|this|them)|required)\b[^.!?\n]{0,40}?\b(?:today|tonight|this (?:morning|afternoon))\b",
    ),
    (
        TODAY,
        ("tomorrow",),
        r"\b(?:first thing tomorrow|tomorrow morning|tomorrow at \d|(?:at|for) \d{1,2}(?::\d{2})?\s{0,2}(?:am|a\.m\.)? tomorrow)\b",
    ),
    # a time today with what happens then: "convenes at 14:00 today", "coming at 3pm today"
    (TODAY, ("today",), rf"\b(?:at|from){_W}{_CLOCK_EN}{_W}today\b|\btoday{_W}at{_W}{_CLOCK_EN}"),
    # a clock time right after today: "closes today 4 PM", "today 4pm" ("are you open today 10am?" asks)
    (TODAY, ("today", "tonight"), rf"\b(?:today|tonight){_W}{_CLOCK_EN}", Veto(before=_EN_OPENING_OR_PAST)),
    # something leaves or starts at a time today: "the 2pm trucks", "courier collects at 3"
    (
        TODAY,
        (
            "truck",
            "collection",
            "pickup",
            "pick-up",
            "courier",
            "delivery",
            "shipment",
            "flight",
            "train",
            "meeting",
            "class",
            "lesson",
            "exam",
            "appointment",
            "session",
            "deadline",
            "cut-off",
            "cutoff",
            "patient",
            "client",
            "surgery",
            "operation",
            "procedure",
            "consult",
            "clinic",
            "interview",
            "call",
            "demo",
            "webinar",
            "inspection",
            "visit",
            "shift",
            "briefing",
        ),
        rf"\b{_CLOCK_EN}{_W}(?:truck|trucks|collection|pickup|pick-up|courier|delivery|shipment|flight|train|meeting|class|lesson|exam|"
        r"appointment|appointments|session|deadline|cut-?off|patient|patients|client|clients|surgery|operation|procedure|consult|consultation|"
        r"clinic|interview|call|demo|webinar|inspection|visit|shift|briefing)\b"
        r"(?!\s{0,2}(?:tomorrow|yesterday|last|on |next |this (?:week|month)|every|each))",
        Veto(before=_EN_ROUTINE_OR_PAST),
    ),
    (
        TODAY,
        ("collect", "arriv", "leav", "depart", "start", "begin", "due", "come", "coming"),
        rf"\b(?:collects?|collecting|arrives?|arriving|leaves|leaving|departs?|departing|starts?|starting|begins?|comes?|coming|due back)"
        # a bare number is an hour only where the clause ends or goes on with a verb:
        # "collects at 3." / "comes at 3 to fix it", never "start at 9 per user" or "at 9.99"
        rf"{_W}at{_W}(?:{_CLOCK_EN}|(?:1[0-2]|[1-9])(?![.,:]\d)(?=\s{{0,2}}(?:$|[.,;!?)]|and\b|to\b|but\b|so\b)))"
        rf"(?!\s{{0,2}}(?:today|tomorrow|on |next |this (?:week|month)|every|each))",
    ),
    # "in 10 minutes", "starts in 20 mins"; not "booked in 15 min slots" (a routine), "fixed it in 40 min" (past),
    # "let me in 5 min before closing" (the in is the verb's), 'the app said "ready in 10 mins"' (a quoted display)
    (
        TODAY,
        ("minute", " min"),
        r"\b(?:in|within)\s{1,3}(?:a few|few|a couple of|\d{1,2}|five|ten|fifteen|twenty|thirty|forty)\s{1,3}(?:minutes?|mins?)\b"
        r"(?!\s{0,2}(?:slots?|intervals?|increments?|blocks?|cycles?|windows?|sessions?|before|after|early|earlier|late|later|ago|past)\b)",
        Veto(
            before=r"\b(?:fixed|done|solved|resolved|sorted|finished|answered|replied|responded|arrived|came|took|completed|delivered)\b[^.!?\n]{0,10}",
            after=r"[.!]?[\"”'’」』]",
        ),
    ),
    (TODAY, ("due", "cut", "deadline"), rf"\b(?:due|cut-?off|deadline is){_W}(?:at|by){_W}{_CLOCK_EN}"),
    # time running out: "50 min left", "only 10 minutes left" (writer-w: an exam being sat)
    (
        TODAY,
        ("left", "remaining", "to go"),
        r"\b(?:\d{1,2}|a few|few|ten|fifteen|twenty|thirty|forty|fifty)\s{1,3}(?:minutes?|mins?)\s{1,3}(?:of\s{1,3}(?:the\s{1,3})?(?:exam|test|class)\s{1,3})?"
        r"(?:left|remaining|to go)\b(?!\s{0,2}(?:on|of|in|to|when)\b)",
        # not what a screen or a battery shows ("freezes with 5 minutes left", "shows 20 minutes left on a full charge")
        Veto(
            before=r"\b(?:with|show|shows|showing|display|displays|says|when|warning|video|battery|charge|upload|plan|timer|there are)\b[^.!?\n]{0,12}"
        ),
    ),
    (TODAY, ("due",), rf"\bdue{_W}(?:(?:at|by){_W})?(?:{_CLOCK_EN}{_W})?today\b|\bdue{_W}{_CLOCK_EN}"),
    (
        WAITING,
        ("waiting", "queu", "standing around", "lined up"),
        r"\b(?:is|are|were|been|keep|kept|sitting|left)\s{1,3}(?:waiting|queuing|queueing|standing around|lined up)\b",
    ),
    # a number of people waiting: "now got like 20 people standing there", "a dozen patients waiting"
    (
        WAITING,
        ("people", "patients", "customers", "guests", "students", "parents", "drivers", "passengers", "workers", "shoppers"),
        r"\b(?:\d{1,3}|a dozen|dozens of|twenty|thirty|forty|fifty|a few|several|many|lots of|loads of)\s{1,3}"
        r"(?:people|patients|customers|guests|students|parents|drivers|passengers|workers|shoppers)\s{1,3}(?:are\s{1,3}|now\s{1,3})?"
        r"(?:standing|waiting|queuing|queueing|sitting|lined up|in (?:the )?(?:queue|line))\b",
    ),
    # vehicles waiting, with or without a count: "3 trucks outside waiting to load", "vehicles waiting"
    # ("the drivers waiting room" is a place, "every morning trucks ... waiting" a routine)
    (
        WAITING,
        ("trucks", "lorries", "vans", "vehicles", "drivers", "couriers"),
        r"\b(?:trucks|lorries|vans|vehicles|drivers|couriers)\s{1,3}"
        r"(?:(?:are|now|still|already|all|outside|here|there|out front|in the yard|at the (?:gate|dock|door|depot|site))\s{1,3}){0,2}"
        r"(?:sitting\s{1,3}|standing\s{1,3})?(?:waiting|queuing|queueing|lined up|idling)\b"
        r"(?!\s{1,3}(?:room|rooms|area|areas|list|lounge|time|times|bay|bays|zone))",
        Veto(before=_EN_ROUTINE_OR_PAST + r"|\b(?:often|sometimes|always)\b[^.!?\n]{0,12}"),
    ),
    # -- English: days ----------------------------------------------------------------
    (DAYS, ("by", "before", "until", "till", "no later"), rf"\b(?:by|before|until|till|no later than){_W}(?:this |next |the )?{_DAY_EN}\b"),
    (DAYS, ("this", "next"), rf"\b(?:is|on|for|until) (?:this|next) {_DAY_EN}\b"),
    # a weekday of this week or the next is days away whatever the verb: "before term starts next Monday"
    (DAYS, ("this", "next", "coming"), rf"\b(?:this coming|next|this) {_DAY_EN}\b"),
    (
        DAYS,
        ("tomorrow",),
        r"\b(?:for|due|ready|needed|need (?:it|this|them)|needs? to (?:be|go)[a-z ]{0,12}?)\s{1,3}tomorrow\b",
    ),
    (DAYS, ("tomorrow",), r"\bby (?:the )?end of (?:the )?day tomorrow\b"),
    # a clock time with tomorrow, no "at": "tomorrow 10 AM", "10am tomorrow" ("are you open tomorrow 10am?" asks)
    (DAYS, ("tomorrow",), rf"\btomorrow{_W}{_CLOCK_EN}|\b{_CLOCK_EN}{_W}tomorrow\b", Veto(before=_EN_OPENING_OR_PAST)),
    (
        DAYS,
        ("by", "before", "until", "till"),
        r"\b(?:by|before|until|till) (?:the )?(?:end of (?:the |this )?(?:week|month|quarter)|weekend|month-end|month end|tomorrow)\b",
    ),
    (
        DAYS,
        ("week", "month", "quarter", "days"),
        r"\b(?:this week|next week|month-end|month end|end of (?:the )?month|quarter-end|within (?:a few|two|three|\d{1,2}) (?:business |working )?days)\b",
    ),
    (DAYS, ("deadline", "due date", "closing date", "cut"), r"\b(?:deadline|due date|closing date|cut-?off)\b"),
)

_COMPILED = tuple((kind, triggers, re.compile(pattern), veto[0] if veto else None) for kind, triggers, pattern, *veto in _PATTERNS)


def _trigger_automaton() -> ahocorasick.Automaton:
    """One Aho–Corasick automaton over every trigger word, each mapped to the indexes of the
    patterns it lets run: one scan of the text finds the patterns worth running (a substring
    test per trigger and pattern was half the cost of classifying a message)."""
    owners: dict[str, set[int]] = {}
    for index, (_, triggers, _, _) in enumerate(_COMPILED):
        for trigger in triggers:
            owners.setdefault(trigger, set()).add(index)
    automaton = ahocorasick.Automaton()
    for trigger, indexes in owners.items():
        automaton.add_word(trigger, frozenset(indexes))
    automaton.make_automaton()
    return automaton


_TRIGGERS = _trigger_automaton()


@dataclass(frozen=True)
class Deadline:
    text: str  # as found in the normalised text
    start: int
    end: int
    kind: str  # TODAY, WAITING or DAYS


def find_deadlines(text: str) -> list[Deadline]:
    """Every time expression found, in text order; of two that overlap the one starting
    first is kept (at the same start, the one listed first), so "今天下午4点前" is one deadline."""
    triggered: set[int] = set()
    for _, indexes in _TRIGGERS.iter(text):
        triggered |= indexes
    candidates = sorted(
        (m.start(), rank, m.end(), kind, m.group(0))
        for rank in sorted(triggered)
        for kind, _, pattern, veto in (_COMPILED[rank],)
        for m in pattern.finditer(text)
        if m.end() > m.start() and (veto is None or not veto.rejects(text, m.start(), m.end()))
    )
    found: list[Deadline] = []
    covered = 0  # the end of the last kept expression: one sweep, linear after the sort
    for start, _, end, kind, matched in candidates:
        if start >= covered:
            found.append(Deadline(matched.strip(), start, end, kind))
            covered = end
    return found
