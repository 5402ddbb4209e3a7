"""Scoring a message against the rules: type, urgency, departments and why."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from classify.lexicon import Reading, terms
from classify.matcher import Hit, Matcher
from classify.normalize import drop_quoted, normalize
from classify.rules import TARGETS, TIME_TARGETS, TYPES, URGENCIES, RuleSet, load_rules
from classify.timeexpr import find_deadlines
from classify.urgency_model import UrgencyModel, signals

LABELS_ZH = {
    "inquiry": "咨询",
    "complaint": "投诉",
    "fault": "故障",
    "request": "需求",
    "suggestion": "建议",
    "urgent": "紧急",
    "important": "重要",
    "normal": "一般",
}
_FIELD_ZH = {"subject": "主题", "body": "正文"}
_KEYS = {"type": [f"type:{t}" for t in TYPES], "urgency": [f"urgency:{u}" for u in URGENCIES]}


@dataclass
class Match:
    """One keyword found in one field. `weight` is what it adds to its target's
    score (subject multiplier included); a negated match adds nothing."""

    rule: str
    keyword: str
    field: str  # "subject" | "body"
    target: str  # "type:complaint" | "urgency:urgent" ...
    weight: float
    negated: bool = False
    negated_by: str | None = None


@dataclass
class Classification:
    type: str
    urgency: str
    departments: list[str]
    flagged: bool
    matches: list[Match]
    scores: dict[str, float]
    # how each axis was decided: {"type": {"how": "score"|"no_match"|"tie"|"wording", "score": 4.0,
    # "runner_up": "request", "runner_up_score": 2.0, "tied": [...], "fallback": "inquiry"}, "urgency": {...}};
    # urgency's "how" may also be "type", "no_rush", "urgent_wins", or "learned" (the learned
    # urgency decided; "rules_decision" holds what the rules alone decided and how)
    decision: dict[str, dict] = field(default_factory=dict)

    def reason(self, axis: str, lang: str = "en") -> str:
        """One phrase saying how the type or urgency was decided."""
        return _reason(self.decision.get(axis, {}), lang.lower().startswith("zh"))

    def explain(self, lang: str = "en", labels: dict[str, str] | None = None) -> str:
        """Readable lines: the decision, then which keyword in which field moved which score.
        `labels` names departments for people, e.g. StaffDirectory.labels("zh") → {"after_sales": "售后部"}."""
        zh = lang.lower().startswith("zh")
        name = (lambda d: f"{labels[d]}({d})" if zh else f"{labels[d]} ({d})") if labels else (lambda d: d)
        depts = [name(d) if not labels or d in labels else d for d in self.departments]
        label = (lambda v: f"{LABELS_ZH.get(v, v)}({v})") if zh else (lambda v: v)
        lines = []
        if zh:
            lines.append(f"类型:{label(self.type)} — {self.reason('type', lang)}")
            lines.append(f"紧急程度:{label(self.urgency)} — {self.reason('urgency', lang)}")
            lines.append(f"部门:{'、'.join(depts) or '无'}" + (f",{depts[0]}牵头" if len(depts) > 1 else ""))
            if self.flagged:
                lines.append("加急:是,须通知部门负责人")
        else:
            lines.append(f"type: {self.type} — {self.reason('type', lang)}")
            lines.append(f"urgency: {self.urgency} — {self.reason('urgency', lang)}")
            lines.append(f"departments: {', '.join(depts) or 'none'}" + (f"; lead: {depts[0]}" if len(depts) > 1 else ""))
            if self.flagged:
                lines.append("flagged: 加急 (urgent; notify the department head)")
        hurry = self.decision.get("hurry")
        if hurry:
            words = "、".join(hurry["words"]) if zh else ", ".join(hurry["words"])
            lines.append(
                f"  催促的字眼({words})只算重要:期限“{hurry['deadline']}”在几天后,不是今天"
                if zh
                else f"  words of hurry ({words}) count as important: the deadline '{hurry['deadline']}' is days away, not today"
            )
        for m in self.matches:
            axis, value = m.target.split(":", 1)
            if zh:
                where = f"{_FIELD_ZH.get(m.field, m.field)}中的“{m.keyword}”"
                if m.negated:
                    lines.append(f"  {where}被“{m.negated_by}”否定,不计入{label(value)}(规则 {m.rule})")
                else:
                    lines.append(f"  {where} → {label(value)} +{m.weight:g}(规则 {m.rule})")
            else:
                where = f"'{m.keyword}' in {m.field}"
                if m.negated:
                    lines.append(f"  {where} cancelled by '{m.negated_by}', no {axis} {value} (rule {m.rule})")
                else:
                    lines.append(f"  {where} → {axis} {value} +{m.weight:g} (rule {m.rule})")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        # what asdict gives, written out: asdict's generic deep copy was a measurable
        # share of each new ticket's cost (it is stored on every ticket)
        return {
            "type": self.type,
            "urgency": self.urgency,
            "departments": list(self.departments),
            "flagged": self.flagged,
            "matches": [dict(m.__dict__) for m in self.matches],
            "scores": dict(self.scores),
            "decision": {axis: _copied(d) for axis, d in self.decision.items()},
        }


def _copied(d: dict) -> dict:
    """A decision's dict with its lists and dicts copied (the learned urgency's holds the
    rules' own decision)."""
    return {k: list(v) if isinstance(v, list) else _copied(v) if isinstance(v, dict) else v for k, v in d.items()}


def _reason(d: dict, zh: bool) -> str:
    """One phrase saying how a decision (Classification.decision[axis]) was made."""
    if d.get("how") == "no_match":
        return "未匹配关键词,取默认值" if zh else "no keyword matched: the default"
    if d.get("how") == "type":
        return f"{LABELS_ZH.get(d['type'], d['type'])}的紧急程度固定" if zh else f"fixed for a {d['type']}"
    if d.get("how") == "no_rush":
        return f"客户说“{d['phrase']}”,一般" if zh else f"the customer says '{d['phrase']}': normal"
    if d.get("how") == "urgent_wins":
        text = f"紧急得分 {d['score']:g} ≥ {d['threshold']:g},紧急优先" if zh else f"urgent score {d['score']:g} ≥ {d['threshold']:g}: urgent first"
        if d.get("runner_up"):
            text += f"(重要 {d['runner_up_score']:g})" if zh else f" (important {d['runner_up_score']:g})"
        return text
    if d.get("how") == "wording":
        return _wording_reason(d, zh)
    if d.get("how") == "learned":
        return _learned_reason(d, zh)
    if d.get("how") == "tie":
        tied = ", ".join(d.get("tied", []))
        if d.get("chosen") != d.get("fallback"):
            return f"{tied} 同分 {d['score']:g},按平局顺序" if zh else f"tie between {tied} at {d['score']:g}: first in the tie order"
        return f"{tied} 同分 {d['score']:g},取默认值" if zh else f"tie between {tied} at {d['score']:g}: the default"
    text = f"得分 {d.get('score', 0):g}" if zh else f"score {d.get('score', 0):g}"
    if d.get("runner_up"):
        text += f",其次 {d['runner_up']} {d['runner_up_score']:g}" if zh else f", next {d['runner_up']} {d['runner_up_score']:g}"
    return text


def _wording_reason(d: dict, zh: bool) -> str:
    """How the keywords and the learned wording decided together, in one phrase."""
    quoted = ("、".join(f"“{t}”" for t in d["terms"]) if zh else ", ".join(f"'{t}'" for t in d["terms"])) if d.get("terms") else ""
    label = (lambda v: LABELS_ZH.get(v, v)) if zh else (lambda v: v)
    wording = f"{label(d['wording'])} {d['wording_probability']:.0%}"
    if d.get("keywords") is None:
        if zh:
            return f"未匹配关键词;学到的措辞:{wording}" + (f"({quoted})" if quoted else "")
        return f"no keyword matched; the learned wording: {wording}" + (f" ({quoted})" if quoted else "")
    if d["keywords"] == d["chosen"]:
        if d["wording"] == d["chosen"]:
            return (
                f"关键词得分 {d['keywords_score']:g},学到的措辞相同({wording})"
                if zh
                else f"score {d['keywords_score']:g}; the learned wording agrees ({wording})"
            )
        return (
            f"关键词得分 {d['keywords_score']:g},胜过学到的措辞({wording})"
            if zh
            else f"score {d['keywords_score']:g}, over the learned wording ({wording})"
        )
    if d["wording"] != d["chosen"]:  # neither side's first choice: the second of both
        chosen = f"{label(d['chosen'])} {d['probability']:.0%}"
        if zh:
            return f"关键词倾向{label(d['keywords'])}(得分 {d['keywords_score']:g}),学到的措辞倾向{wording};两者合计{chosen}(得分 {d['score']:g})最高"
        return f"keywords lean to {d['keywords']} (score {d['keywords_score']:g}), the learned wording to {wording}; together {chosen} (score {d['score']:g}) is highest"
    if zh:
        return f"关键词倾向{label(d['keywords'])}(得分 {d['keywords_score']:g}),学到的措辞更有力:{wording}" + (f"({quoted})" if quoted else "")
    return f"keywords lean to {d['keywords']} (score {d['keywords_score']:g}); the learned wording outweighs them: {wording}" + (
        f" ({quoted})" if quoted else ""
    )


def _learned_reason(d: dict, zh: bool) -> str:
    """How the learned urgency decided, beside what the rules alone said and why."""
    label = (lambda v: LABELS_ZH.get(v, v)) if zh else (lambda v: v)
    chosen = f"{label(d['chosen'])} {d['probability']:.0%}"
    if d.get("tipped"):
        chosen += ",由 urgent_lean 倾向紧急" if zh else ", tipped by urgent_lean"
    quoted = ("、".join(f"“{t}”" for t in d["terms"]) if zh else ", ".join(f"'{t}'" for t in d["terms"])) if d.get("terms") else ""
    rules = _reason(d.get("rules_decision", {}), zh)
    if d["rules"] == d["chosen"]:
        return f"学到的紧急程度:{chosen},与规则相同({rules})" if zh else f"the learned urgency: {chosen}, as the rules say ({rules})"
    if zh:
        return f"学到的紧急程度:{chosen}" + (f"({quoted})" if quoted else "") + f";仅按规则为{label(d['rules'])}({rules})"
    return f"the learned urgency: {chosen}" + (f" ({quoted})" if quoted else "") + f"; the rules alone: {d['rules']} ({rules})"


def _longest_per_axis(hits: list[Hit], rules) -> list[Hit]:
    """Drop a hit lying inside a longer hit on the same axis (type or urgency):
    '离线模式' (offline mode, a request) is not also '离线' (offline, a fault), but
    '瘫痪' still counts for urgency inside '系统瘫痪' counted for the type."""
    if len(hits) < 2:
        return hits  # nothing to lie inside anything: most fields of most messages
    inside: set[int] = set()
    by_axis: dict[str, list[int]] = {}
    for i, h in enumerate(hits):
        by_axis.setdefault(rules[h.rule].target.split(":", 1)[0], []).append(i)
    for indexes in by_axis.values():
        # by start, longest first: every earlier hit starts at or before this one
        indexes.sort(key=lambda i: (hits[i].start, -hits[i].end))
        far_end, far_start = -1, -1  # furthest end so far, and the first start reaching it
        for i in indexes:
            h = hits[i]
            if far_end > h.end or (far_end == h.end and far_start < h.start):
                inside.add(i)
            if h.end > far_end:
                far_end, far_start = h.end, h.start
    return [h for i, h in enumerate(hits) if i not in inside]


# a deadline tomorrow or tonight means work today (normalised text: 聽日 is 听日)
_TOMORROW = ("tomorrow", "tonight", "明天", "明日", "明早", "明晚", "听日", "今晚")


class Classifier:
    """A loaded rule set, ready to classify; replaced whole on hot reload."""

    def __init__(self, ruleset: RuleSet) -> None:
        self.ruleset = ruleset
        self.matcher = Matcher(ruleset)

    @classmethod
    def from_file(cls, rules_path: Path) -> Classifier:
        """Load and validate a rules file; raises RulesError."""
        return cls(load_rules(Path(rules_path)))

    def departments_for(self, type_: str) -> list[str]:
        """The routing table: departments for a type, the lead first."""
        return list(self.ruleset.routing.get(type_, []))

    def classify(self, subject: str, body: str) -> Classification:
        rules = self.ruleset.rules
        scores = {target: 0.0 for target in TARGETS}
        matches: list[Match] = []
        texts = (("subject", normalize(subject or "")), ("body", normalize(drop_quoted(body or ""))))
        for field_name, normalized in texts:
            text, hits, negations = self.matcher.scan(normalized)
            hits = _longest_per_axis(hits, rules)
            counted: set[tuple[int, str]] = set()  # each keyword counts once per field
            for hit in hits:
                rule = rules[hit.rule]
                if field_name not in rule.fields or (hit.rule, hit.keyword) in counted:
                    continue
                negated_by = self.matcher.negated_by(text, hit, negations)
                weight = rule.weight * (rule.subject_weight if field_name == "subject" else 1.0)
                if negated_by is None:
                    counted.add((hit.rule, hit.keyword))
                    scores[rule.target] += weight
                elif any(m.rule == rule.name and m.keyword == hit.keyword and m.field == field_name for m in matches):
                    continue  # report a cancelled keyword once
                matches.append(Match(rule.name, hit.keyword, field_name, rule.target, weight, negated_by is not None, negated_by))
            if self.ruleset.time_weights:
                self._time_pressure(field_name, normalized, scores, matches)

        decision: dict[str, dict] = {}
        self._hurry_before_days(texts, scores, matches, decision)
        rs = self.ruleset
        wording = None  # what the learned wording says of the message, when there is one
        learned = rs.lexicon.urgency if rs.lexicon is not None and rs.learned_urgency else None
        message_terms: set[str] = set()
        if rs.lexicon is not None and ((rs.lexicon_weight > 0 and rs.lexicon_axes) or learned is not None):
            message_terms = terms(texts[0][1] + "\n" + texts[1][1])
            # weight 0 leaves the keywords alone
            wording = rs.lexicon.read(message_terms, rs.lexicon_axes) if rs.lexicon_weight > 0 and rs.lexicon_axes else None
        if wording is not None and "type" in rs.lexicon_axes and rs.lexicon_weight > 0:
            type_ = self._weigh("type", TYPES, scores, wording["type"], rs.default_type, rs.type_tie_order, decision)
        else:
            type_ = self._decide("type", TYPES, scores, rs.default_type, rs.type_tie_order, decision)
        calm = self._no_rush(texts, scores, matches)
        if type_ in rs.urgency_of_type:
            urgency = rs.urgency_of_type[type_]
            decision["urgency"] = {"how": "type", "type": type_}
        elif calm is not None:
            urgency = "normal"
            decision["urgency"] = {"how": "no_rush", "phrase": calm}
        elif rs.urgent_wins_at and scores["urgency:urgent"] >= rs.urgent_wins_at and scores["urgency:urgent"] >= scores["urgency:normal"]:
            # enough said for urgent: it wins over the important words of the same message
            # (LABELS.md: calling an urgent case anything else is the costly error)
            urgency = "urgent"
            decision["urgency"] = {"how": "urgent_wins", "score": scores["urgency:urgent"], "threshold": rs.urgent_wins_at}
            if scores["urgency:important"] > 0:
                decision["urgency"].update(runner_up="important", runner_up_score=scores["urgency:important"])
        elif wording is not None and "urgency" in rs.lexicon_axes and rs.lexicon_weight > 0:
            urgency = self._weigh("urgency", URGENCIES, scores, wording["urgency"], rs.urgency_fallback(type_), rs.urgency_tie_order, decision)
        else:
            urgency = self._decide("urgency", URGENCIES, scores, rs.urgency_fallback(type_), rs.urgency_tie_order, decision)
        if learned is not None and decision["urgency"]["how"] not in ("type", "no_rush"):
            # the lexicon's list of the message's known terms is the model's (it covers the lexicon)
            reading = next(iter(wording.values())) if wording else None
            urgency = self._learned_urgency(learned, reading, message_terms, scores, urgency, type_, decision)
        if decision.get("urgency", {}).get("how") in ("type", "no_rush"):
            decision.pop("hurry", None)  # the type or the customer's calm decided: the hurry did not matter
        return Classification(
            type=type_,
            urgency=urgency,
            departments=self.departments_for(type_),
            flagged=urgency == "urgent",
            matches=matches,
            scores={k: round(v, 6) if v else 0.0 for k, v in scores.items()},  # most are 0: no round() for them
            decision=decision,
        )

    def _no_rush(self, texts, scores: dict[str, float], matches: list[Match]) -> str | None:
        """The first [no_rush] phrase of the message ("不着急", "no rush"), or None. The customer
        is believed over every urgency keyword of the message ("加急配送怎么收费?不着急" is
        normal): the urgent and important matches are shown as cancelled by the phrase.
        A phrase inside one of [no_rush] exceptions ("能不急吗") does not count."""
        rs = self.ruleset
        pattern = rs.no_rush_pattern
        if pattern is None:
            return None
        phrase = None
        for _, text in texts:
            for exception in rs.no_rush_exceptions:
                if exception in text:
                    text = text.replace(exception, " ")
            found = pattern.search(text)
            if found is not None:
                phrase = found.group(0)
                break
        if phrase is None:
            return None
        for m in matches:
            if m.target in ("urgency:urgent", "urgency:important") and not m.negated:
                m.negated, m.negated_by = True, phrase
                scores[m.target] -= m.weight
        return phrase

    def _hurry_before_days(self, texts, scores: dict[str, float], matches: list[Match], decision: dict) -> None:
        """LABELS.md says both: 紧急 / ASAP said outright is urgent, and a deadline within days
        is important. When a message's only urgent evidence is words of hurry (rules with
        hurry = true, a bare 急: "急!", "ASAP", "越快越好") and it names a deadline days away
        (time:days, rules with days = true) but nothing today, tomorrow or tonight and nobody
        waiting, the deadline says when: the hurry counts for important."""
        hurry, days = self.ruleset.hurry_rules, self.ruleset.days_rules
        urgent = [m for m in matches if m.target == "urgency:urgent" and not m.negated]
        if not urgent or not all(m.rule in hurry for m in urgent):
            return
        if any(word in text for _, text in texts for word in _TOMORROW):
            return  # due tomorrow or tonight: work today
        # (a deadline today or people waiting are urgent evidence of their own: not all hurry)
        deadline = next((m.keyword for m in matches if m.rule in days and not m.negated), None)
        if deadline is None:
            return
        for m in urgent:
            m.target = "urgency:important"
            scores["urgency:urgent"] -= m.weight
            scores["urgency:important"] += m.weight
        decision["hurry"] = {"words": list(dict.fromkeys(m.keyword for m in urgent)), "deadline": deadline}

    def _time_pressure(self, field_name: str, text: str, scores: dict[str, float], matches: list[Match]) -> None:
        """Deadlines and people waiting ([time] of the rules): the first of each kind in
        the field counts, unless the customer says there is no rush in that field."""
        rs = self.ruleset
        counted: set[str] = set()
        negated_by = next((phrase for phrase in rs.time_negations if phrase in text), None)
        for deadline in find_deadlines(text):
            weight = rs.time_weights.get(deadline.kind, 0.0)
            if not weight or deadline.kind in counted:
                continue
            counted.add(deadline.kind)
            target = TIME_TARGETS[deadline.kind]
            weight *= rs.subject_weight if field_name == "subject" else 1.0
            if negated_by is None:
                scores[target] += weight
            matches.append(Match(f"time:{deadline.kind}", deadline.text, field_name, target, weight, negated_by is not None, negated_by))

    def _weigh(
        self,
        axis: str,
        values: tuple[str, ...],
        scores: dict[str, float],
        reading: Reading,
        fallback: str,
        tie_order: tuple[str, ...],
        decision: dict,
    ) -> str:
        """The keyword scores and the learned wording together: each value's score scaled
        to the top score (1 for the keywords' winner, 0 when no keyword matched) plus the
        lexicon's weight times the wording's probability of it. The keywords decide when
        they are clear; the wording when they are silent, tied or close."""
        weight = self.ruleset.lexicon_weight
        keyword_scores = [scores[key] for key in _KEYS[axis]]
        top = max(keyword_scores)
        if not reading.found:  # the wording knows no word of the message: the keywords alone (and the tie order, the default)
            return self._decide(axis, values, scores, fallback, tie_order, decision)
        scale = 1 / top if top > 0 else 0.0
        combined = [score * scale + weight * p for score, p in zip(keyword_scores, reading.probabilities, strict=True)]
        best = max(combined)
        chosen = values[combined.index(best)]
        if combined.count(best) > 1:
            tied = [v for v, c in zip(values, combined, strict=True) if c == best]
            chosen = next((v for v in tie_order if v in tied), tied[0])
        lexicon = self.ruleset.lexicon
        keywords_best = values[keyword_scores.index(top)] if top > 0 else None
        decision[axis] = {
            "how": "wording",
            "score": scores[f"{axis}:{chosen}"],
            "keywords": keywords_best,
            "keywords_score": top,
            "chosen": chosen,
            "probability": round(reading.probability(chosen), 3),
            # the terms that decided, where the wording decided (cheaper than for every message)
            "terms": list(reading.terms) if reading.best == chosen and keywords_best != chosen else [],
            "wording": reading.best,
            "wording_probability": round(reading.probability(reading.best), 3),
            "trained_on": lexicon.trained_on if lexicon is not None else 0,
        }
        return chosen

    def _learned_urgency(
        self,
        learned: UrgencyModel,
        wording: Reading | None,
        message_terms: set[str],
        scores: dict[str, float],
        rules_urgency: str,
        type_: str,
        decision: dict,
    ) -> str:
        """The lexicon's learned urgency decides, the rules' scores and call among its evidence
        (classify/urgency_model.py). The decision keeps the rules' own call beside it, and the
        terms that favoured the chosen urgency most where the two differ. Where the lexicon
        was read, its list of the message's terms and its sum serve (the model covers it)."""
        rules_decision = decision["urgency"]
        evidence = signals(scores, rules_urgency, rules_decision["how"], type_)
        if wording is not None:
            reading = learned.read(wording.found, evidence, self.ruleset.urgent_lean, wording.learned_sum)
        else:
            reading = learned.read(learned.known(message_terms), evidence, self.ruleset.urgent_lean)
        lexicon = self.ruleset.lexicon
        decision["urgency"] = {
            "how": "learned",
            "chosen": reading.best,
            "probability": round(reading.probability(reading.best), 3),  # the evidence's, without the lean
            "tipped": reading.tipped,
            "rules": rules_urgency,
            "rules_decision": rules_decision,
            "terms": list(learned.strongest(reading)) if reading.best != rules_urgency else [],
            "trained_on": lexicon.trained_on if lexicon is not None else 0,
        }
        return reading.best

    @staticmethod
    def _decide(
        axis: str, values: tuple[str, ...], scores: dict[str, float], fallback: str, tie_order: tuple[str, ...], decision: dict[str, dict]
    ) -> str:
        """Highest score wins; nothing matched gives the fallback; a tie at the top
        gives the first tied value in tie_order, else the fallback."""
        ranked = sorted(((scores[f"{axis}:{v}"], v) for v in values), key=lambda sv: -sv[0])
        best = ranked[0][0]
        if best <= 0:
            decision[axis] = {"how": "no_match", "fallback": fallback}
            return fallback
        tied = [v for s, v in ranked if s == best]
        if len(tied) > 1:
            chosen = next((v for v in tie_order if v in tied), fallback)
            decision[axis] = {"how": "tie", "score": best, "tied": sorted(tied), "fallback": fallback, "chosen": chosen}
            return chosen
        decision[axis] = {"how": "score", "score": best}
        if ranked[1][0] > 0:
            decision[axis].update(runner_up=ranked[1][1], runner_up_score=ranked[1][0])
        return ranked[0][1]
