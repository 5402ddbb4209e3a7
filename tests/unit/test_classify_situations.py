"""Rules that generalise (issue 15): urgent first, situations, traps. Pure logic, no servers."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from classify import Classifier
from classify.errors import RulesError
from classify.rules import load_rules

SMALL_RULES = """
[defaults]
type = "inquiry"
urgency = "normal"
{extra}

[[rules]]
name = "stopped"
target = "urgency:urgent"
weight = 3
keywords = ["line stopped"]

[[rules]]
name = "weak-important"
target = "urgency:important"
weight = 1.5
keywords = ["payroll", "again", "still"]

[[rules]]
name = "calm"
target = "urgency:normal"
weight = 4
keywords = ["minor"]
"""


def small(tmp_path: Path, extra: str = "") -> Classifier:
    path = tmp_path / "rules.toml"
    path.write_text(SMALL_RULES.format(extra=extra), encoding="utf-8")
    return Classifier.from_file(path)


def test_an_urgent_score_at_the_threshold_wins_over_more_important_words(tmp_path):
    text = "Line stopped again, still nothing, payroll run waiting"
    assert small(tmp_path).classify("", text).urgency == "important"  # 4.5 against 3: the highest score
    result = small(tmp_path, "urgent_wins_at = 3").classify("", text)
    assert result.urgency == "urgent" and result.decision["urgency"]["how"] == "urgent_wins"
    assert "urgent first" in result.explain() and "紧急优先" in result.explain("zh")
    # below the threshold, or outweighed by calm words, the scores decide as before
    assert small(tmp_path, "urgent_wins_at = 4").classify("", text).urgency == "important"
    assert small(tmp_path, "urgent_wins_at = 3").classify("", "line stopped, minor").urgency == "normal"


def test_urgent_wins_at_is_validated(tmp_path):
    path = tmp_path / "rules.toml"
    path.write_text(SMALL_RULES.format(extra='urgent_wins_at = "soon"'), encoding="utf-8")
    with pytest.raises(RulesError, match="urgent_wins_at must be a number") as info:
        load_rules(path)
    assert info.value.line == 5
    path.write_text(SMALL_RULES.format(extra="urgent_wins_at = 0"), encoding="utf-8")
    with pytest.raises(RulesError, match="urgent_wins_at must be greater than 0"):
        load_rules(path)


@pytest.mark.parametrize(
    "subject, body, type_, urgency",
    [
        # keyword traps of LABELS.md: the word names a topic, not this case
        ("X100停产了吗", "请问X100控制器是不是停产了?还有备件吗?", "inquiry", "normal"),
        ("", "你们的SC-300停产以后还能买到配件吗?替代型号是哪个?", "inquiry", "normal"),
        ("停产", "我们车间因为你们的控制器故障已经停产两个小时了!", "fault", "urgent"),
        ("", "加急的话多少钱?", "inquiry", "normal"),
        ("投诉表", "你们网站上的投诉表单太长了,建议简化一下,只留必填项。", "suggestion", "normal"),
        ("投诉", "我要投诉你们的安装师傅,迟到两个小时还态度恶劣。", "complaint", "important"),
    ],
)
def test_keyword_traps(shipped_rules, subject, body, type_, urgency):
    result = shipped_rules.classify(subject, body)
    assert (result.type, result.urgency) == (type_, urgency), result.explain()


@pytest.mark.parametrize(
    "subject, body, urgency",
    [
        # urgency from the situation, with no urgent word (LABELS.md: implied urgency)
        ("Sparks from the panel", "There were sparks and a burning smell from the control panel you installed. We've cut the power.", "urgent"),
        ("燃气表", "昨天晚上阀门关了,按了复位键也打不开,家里没法做饭烧水。", "urgent"),
        ("", "排队机打不出号了,现在一楼大堂等了四十多分钟的人越来越多。", "urgent"),
        ("Queue ticket machine", "the ticket machine cannot print, now got like 20 people standing there", "urgent"),
        ("冷藏柜", "冷藏柜温度还在往上走,里面有今天下午要打的疫苗。", "urgent"),
        ("Portal won't accept PDFs", "Every PDF gets 'file type not supported'. Our filing is due 5pm today.", "urgent"),
        # the work stands still now, or an exam is being sat: no deadline is named, the situation is one (writer-u, -v, -w)
        ("又登不上", "一直提示网络异常 早上八点到现在 车间扫菲全部停掉了 六十几个工人站在那里等", "urgent"),
        ("Submit button dead", "the submit button does not work for several students, mid-exam", "urgent"),
        ("岗亭", "收费软件一打开就闪退 现在车出不去 排队排到马路上了", "urgent"),
        # a shop that cannot take money at its rush, a cold room warming (writer-aa)
        ("", "剛剛12點整,POS跳出一個視窗然後就什麼都不能結帳了,現在中午外面排了一堆人", "urgent"),
        ("Card machine", "Since lunchtime the terminal is declining every card, Visa, Amex, Apple Pay, all of them.", "urgent"),
        ("Walk-in freezer", "The walk-in freezer said -18 this morning, now -8 and the temperature is rising.", "urgent"),
        # locked out at night, an alarm that will not stop, a break-in under way (writer-af)
        ("锁打不开", "租客现在在门口进不去,密码输了提示错误,现在晚上11点40。", "urgent"),
        ("Alarm", "The alarm is sounding and the code does not reset it, the whole street is looking.", "urgent"),
        ("画面离线", "值班员看到有人在撬卷闸,我们已经报警,这家店的画面全部离线。", "urgent"),
        # a store opening today or tomorrow is urgent, next week important
        ("", "今天新店开业,打印机不能用,客人都进来了。", "urgent"),
        ("", "明天新店开业,收银机还没装。", "urgent"),
        ("", "新店开业在下周三,收银机还没到,麻烦安排一下。", "important"),
        # an answer needed before a visitor leaves today
        ("操作日誌", "稽核委員目前在館,要求調閱操作日誌。委員下午四時離館,盼能於此前回覆。", "urgent"),
        # the customer says nothing much is at stake
        ("标签机", "打出来的条码右边一半是白的,现在先用另外一台打,没什么影响,就是想问问要换多少钱。", "normal"),
        # a how-to about the payroll module is a routine question; wages not paid are not
        ("夜班补贴怎么设置", "请问工资模块里面夜班补贴要在哪里设置?", "normal"),
        # an injury told afterwards, or a topic word, is not urgent
        ("孩子受伤", "孩子上课摔伤了膝盖,老师没有通知家长,对你们的管理很失望。", "important"),
        ("Vaccine fridge prices", "What does the 200-litre vaccine fridge cost, and is delivery included?", "normal"),
        ("Dangerous goods", "Can lithium batteries go in your standard cargo service? What paperwork is involved?", "normal"),
    ],
)
def test_urgency_from_situations(shipped_rules, subject, body, urgency):
    assert shipped_rules.classify(subject, body).urgency == urgency, shipped_rules.classify(subject, body).explain()


@pytest.mark.parametrize(
    "subject, body",
    [
        # the review's probes of session 10's situation words: scope words, amounts of time a screen shows,
        # a time someone leaves, a place to wait, a past wait, something solved beside a new problem
        ("", "我们全厂有200多人,请问考勤机最多支持多少人?"),
        ("", "The invoice is now at our accounting department; what are your payment terms?"),
        ("", "During the exam, can students use a calculator? Asking for next term."),
        ("", "课时还剩10个小时,请问可以延期到明年吗?"),
        ("", "How do I set a warning when there are 10 minutes left?"),
        ("", "请问你们的工程师一般几点离开?我们下午5点离开办公室。"),
        ("", "请问有没有休息区?客户们可以在那边等吗?"),
        ("", "上个月司机在那里等了两个小时才提到货,希望以后能改善一下。"),
        ("", "培训视频每次播放到还剩3分钟的时候就卡住了"),
        ("", "The video always freezes with 5 minutes left."),
        # the second review's probes: payments, rush hours and temperatures asked about or past
        ("", "Do you accept every card brand?"),
        ("", "门口排了一个新的取号机,怎么设置?"),
        ("", "现在是高峰期吗?你们客服几点下班"),
        ("", "温度在升高的时候风扇会自动加速吗?"),
        ("", "mid-service report: is there one?"),
        ("", "昨天正是饭点的时候打印机不出单,后来自己好了,想问问原因。"),
        # the third review's probes: a product's name, a question, a past event
        ("", "Is there a discount for the intruder alarm bundle?"),
        ("", "I can't get in touch with your sales rep, could someone call me back about the quote?"),
        ("", "If a user is locked out after failed logins, how do they reset?"),
        ("", "视频自动播放停不下来,怎么关?"),
        ("", "the auditors arrived last Tuesday and everything went fine"),
        ("", "上周警报一直响的问题已经解决了,谢谢。"),
    ],
)
def test_situation_words_in_calm_messages_are_not_urgent(shipped_rules, subject, body):
    rules_alone = Classifier(replace(shipped_rules.ruleset, learned_urgency=False)).classify(subject, body)
    assert rules_alone.urgency != "urgent", rules_alone.explain()
    result = shipped_rules.classify(subject, body)
    if body in LEARNED_URGENCY_COSTS:  # known, and checked so that a change of it is seen
        assert result.urgency == "urgent" and result.decision["urgency"]["how"] == "learned", result.explain()
    else:
        assert result.urgency != "urgent", result.explain()


# Calm messages the learned urgency calls urgent where the rules alone did not: its urgent_lean
# tips a close call to urgent (the costly error is the other way; bench/classify_eval.md).
LEARNED_URGENCY_COSTS = {"If a user is locked out after failed logins, how do they reset?"}


@pytest.mark.parametrize(
    "subject, body, type_, urgency",
    [
        # a Cantonese call for a repair is no suggestion; an earlier problem solved does not calm a new one
        ("", "你哋快啲派人嚟整返部收銀機就好啦,依家啲客排晒隊等緊!", "fault", "urgent"),
        ("", "點解唔派人嚟?你哋話今朝十點到,而家十二點都未見人,成個廠停咗等你哋!", "complaint", "urgent"),
        ("", "上次的问题已经解决了。仓库下午3点要装柜,标签打印机打不出来。", "fault", "urgent"),
        ("", "Thanks, the login issue got solved. But the label printer died and the truck collects at 3pm.", "fault", "urgent"),
    ],
)
def test_a_repair_asked_for_in_cantonese_or_beside_a_solved_problem_stays_urgent(shipped_rules, subject, body, type_, urgency):
    result = shipped_rules.classify(subject, body)
    assert (result.type, result.urgency) == (type_, urgency), result.explain()


@pytest.mark.parametrize(
    "subject, body, type_",
    [
        ("Wrong goods", "You sent 20 boxes of M gloves instead of L. Please collect them and send the right ones.", "complaint"),
        # the same mistake again is a complaint; (with "麻烦重开一张" beside an invoice title the learned wording
        # says request since session 10's weight 1.5: most labelled invoice-title reissues are requests)
        ("发票抬头", "发票抬头又写错了,上次就说过了,以后仔细点。", "complaint"),
        ("送货单", "送货单上的地址又写错了,上次就说过了。麻烦重开一张,以后仔细点。", "complaint"),
        ("兼容", "你们的读卡器能用在Windows 11上吗?", "inquiry"),  # a device named in a question is no fault
        ("", "建议APP首页加一个一键冻结卡片的按钮,现在要点好几层菜单才能找到。", "suggestion"),
        ("Name correction", "Her name is printed without the middle name. Kindly correct the same and send the revised ticket.", "request"),
        ("积分", "会员小程序里上个月的积分没到账,购物记录里有,积分那一栏显示0。", "fault"),
        # "no idea" proposes nothing; a Cantonese wish ("會好啲") is a suggestion; deactivating a pass is a change to their own setup
        ("Equations as raw code", "Every equation in the exam shows as raw LaTeX. I have no idea whether to cancel.", "fault"),
        ("", "你哋啲教學影片全部都係普通話,如果可以出多啲粵語版會好啲,其他書店都會覺得有用。", "suggestion"),
        ("Pass", "Could you deactivate pass no. 0014-2287 please? He left our employment this morning.", "request"),
    ],
)
def test_type_from_families(shipped_rules, subject, body, type_):
    assert shipped_rules.classify(subject, body).type == type_, shipped_rules.classify(subject, body).explain()


@pytest.mark.parametrize(
    "subject, body",
    [
        ("Pricing", "Hi, your website says plans start at 9 per user, is that right?"),
        ("Pricing", "Your seats are priced starting at 5 dollars a month?"),
        ("Loan", "The loan begins at 10 percent interest, can you confirm?"),
        ("Plans", "The basic plan, starting at 9.99 a month, does it include invoices?"),
        ("Seats", "We are flooded with orders this month, could you add 5 more user seats?"),
        ("Newsletters", "Please stop flooding my inbox with newsletters."),
        ("Upgrade", "Our sales exploded, we would like to upgrade the plan."),
        ("Billing", "You charge by the minute, is that right?"),
    ],
)
def test_figures_of_speech_and_prices_are_not_urgent(shipped_rules, subject, body):
    """A number after 'start at' is a price unless the clause ends there; 'flooded with orders',
    'sales exploded', 'by the minute' are not water, a blast or harm growing (a review found
    each of these called urgent)."""
    assert shipped_rules.classify(subject, body).urgency != "urgent"


@pytest.mark.parametrize(
    "subject, body",
    [
        ("Courier", "The courier collects at 3. Please have the labels ready, the boxes are not packed."),
        ("Repair", "Your technician comes at 3 to fix it and we still have no replacement part."),
        ("Kitchen", "The pipe burst and water is flooding the kitchen."),
    ],
)
def test_the_same_words_meant_literally_stay_urgent(shipped_rules, subject, body):
    assert shipped_rules.classify(subject, body).urgency == "urgent"
