"""Loading config/rules.toml into plain data, refusing a bad file with its line and problem.

File format (every key is shown in config/rules.toml):

    [defaults]            type, urgency, subject_weight, negation_window,
                          type_tie_order, urgency_tie_order, urgent_wins_at (an urgent
                          score at least this high wins over the important score),
                          [defaults.urgency_by_type] type = urgency (when no urgency keyword decides),
                          [defaults.urgency_of_type] type = urgency (whatever the keywords say)
    [routing]             type = [departments...], the first is the lead
    [negation_sets]       name = [phrases...]
    [time]                today, waiting, days, hurry (weights of the time expressions of
                          classify/timeexpr.py: today, waiting and a bare 急 (hurry) count
                          for urgent, days for important), negation_sets (phrases that cancel them)
    [lexicon]             file (a lexicon learned by `intake rules learn`, relative to this file,
                          else the shipped one of that name;
                          classify/lexicon.py), weight (how much its probabilities count against the
                          rules' scores, each scaled to the top score; default 1), axes (what it
                          decides with the keywords: ["type"] by default, "urgency" too),
                          smoothing (default 1), learned_urgency (true: the
                          lexicon file's learned urgency decides it, classify/urgency_model.py;
                          default false), urgent_lean (added to urgent's score there, 0 to 50;
                          default 2)
    [no_rush]             phrases: a customer saying one of them anywhere in the message
                          ("不着急", "no rush") gets urgency normal, whatever else matched;
                          exceptions: longer phrases that hold one and mean the opposite ("能不急吗")
    [[rules]]             name, target ("type:X" | "urgency:Y"), keywords ('crash*' also
                          matches longer words, '^how' only at a sentence start), weight,
                          fields, subject_weight, negations, negation_sets, note,
                          hurry (urgent words asking for speed: alone they count as important
                          when the message names a deadline days away and nothing today),
                          days (important words naming such a deadline, as [time] days)
"""

from __future__ import annotations

import difflib
import logging
import math
import os
import re
import tomllib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from classify.errors import RulesError, SourceLines, describe, read_toml
from classify.labels import TYPES, URGENCIES
from classify.lexicon import Lexicon, load_lexicon
from classify.normalize import normalize
from classify.urgency_model import MAX_WEIGHT, SECTION_HEADER

log = logging.getLogger("intake.classify.rules")

FIELDS = ("subject", "body")
TARGETS = tuple(f"type:{t}" for t in TYPES) + tuple(f"urgency:{u}" for u in URGENCIES)

_TOP_KEYS = ("defaults", "routing", "negation_sets", "time", "no_rush", "lexicon", "rules")
# Keys of earlier versions, read and not used, so that a team's rules file still loads:
# important_or_normal (raising the rules' normal to important by the wording) gave way to the
# learned urgency (learned_urgency), which does that and more (bench/classify_eval.md).
_RETIRED_LEXICON_KEYS = ("important_or_normal",)
_LEXICON_KEYS = ("file", "weight", "axes", "smoothing", "learned_urgency", "urgent_lean", "note", *_RETIRED_LEXICON_KEYS)
_NO_RUSH_KEYS = ("phrases", "exceptions", "note")
_TIME_KEYS = ("today", "waiting", "days", "hurry", "negation_sets")
# the urgency each kind of time expression (classify/timeexpr.py) counts for
TIME_TARGETS = {"today": "urgency:urgent", "waiting": "urgency:urgent", "days": "urgency:important", "hurry": "urgency:urgent"}
_DEFAULT_KEYS = (
    "type",
    "urgency",
    "subject_weight",
    "negation_window",
    "urgency_by_type",
    "urgency_of_type",
    "type_tie_order",
    "urgency_tie_order",
    "urgent_wins_at",
)
_RULE_KEYS = ("name", "target", "keywords", "weight", "fields", "subject_weight", "negations", "negation_sets", "hurry", "days", "note")


@dataclass(frozen=True)
class Keyword:
    text: str  # as written in the rules file
    pattern: str  # normalised, without the trailing '*'
    prefix: bool  # 'crash*' also matches 'crashes'
    anchored: bool = False  # '^how' matches only where a sentence or clause starts


@dataclass(frozen=True)
class Rule:
    name: str
    target: str  # "type:complaint" or "urgency:urgent"
    keywords: tuple[Keyword, ...]
    weight: float
    fields: tuple[str, ...]
    subject_weight: float  # multiplier for a hit in the subject
    negations: tuple[str, ...]  # phrases as written; inline ones and those of the named sets
    note: str = ""
    line: int | None = None
    hurry: bool = False  # urgent words that ask for speed and say nothing of the situation
    days: bool = False  # important words that name a deadline days away


@dataclass(frozen=True)
class RuleSet:
    path: str
    default_type: str
    default_urgency: str
    urgency_by_type: dict[str, str]
    subject_weight: float
    negation_window: int
    routing: dict[str, list[str]]
    rules: tuple[Rule, ...] = field(default_factory=tuple)
    # A tie at the top goes to the first tied value in this order; empty: to the default.
    type_tie_order: tuple[str, ...] = ()
    urgency_tie_order: tuple[str, ...] = ()
    # [time]: weight per kind of time expression (absent or 0: not counted), and the
    # normalised phrases ("不急", "no rush") that cancel them in the same field
    time_weights: dict[str, float] = field(default_factory=dict)
    time_negations: tuple[str, ...] = ()
    # [no_rush]: normalised phrases that make the whole message normal urgency, and longer
    # phrases holding one of them that do not count ("能不急吗")
    no_rush: tuple[str, ...] = ()
    no_rush_exceptions: tuple[str, ...] = ()
    # [defaults.urgency_of_type]: the urgency of a type whatever its keywords say
    urgency_of_type: dict[str, str] = field(default_factory=dict)
    # [defaults] urgent_wins_at: an urgent score this high wins over a higher important score
    # (missing an urgent case is the costly error); 0: the highest score wins as for the type
    urgent_wins_at: float = 0.0
    # [lexicon]: the learned wording (None: the rules alone) and how much it counts
    lexicon: Lexicon | None = None
    lexicon_weight: float = 1.0
    lexicon_axes: tuple[str, ...] = ("type",)
    # [lexicon] learned_urgency: the lexicon's learned urgency decides (the rules' evidence is
    # part of it), urgent_lean added to urgent's score there
    learned_urgency: bool = False
    urgent_lean: float = 2.0

    def urgency_fallback(self, type_: str) -> str:
        return self.urgency_by_type.get(type_, self.default_urgency)

    @cached_property
    def no_rush_pattern(self) -> re.Pattern[str] | None:
        """[no_rush] phrases as one pattern (the longest first where two start together): one
        search a field instead of a substring test per phrase, a twentieth of the time."""
        return re.compile("|".join(map(re.escape, sorted(self.no_rush, key=len, reverse=True)))) if self.no_rush else None

    @cached_property
    def hurry_rules(self) -> frozenset[str]:
        """Names of the rules with hurry = true, and the bare 急 of [time]."""
        return frozenset([*(r.name for r in self.rules if r.hurry), "time:hurry"])

    @cached_property
    def days_rules(self) -> frozenset[str]:
        """Names of the rules with days = true, and the deadlines in days of [time]."""
        return frozenset([*(r.name for r in self.rules if r.days), "time:days"])


class _Checker:
    """Validation helpers that know where in the file a key sits."""

    def __init__(self, path: Path, lines: SourceLines) -> None:
        self.path, self.lines = path, lines

    def fail(self, line: int | None, problem: str, key: str | None = None) -> RulesError:
        return RulesError(self.path, line, problem, key)

    def known_keys(self, table: dict, allowed: tuple[str, ...], table_line: int | None, where: str) -> None:
        for key in table:
            if key not in allowed:
                hint = difflib.get_close_matches(key, allowed, n=1)
                extra = f" (did you mean '{hint[0]}'?)" if hint else f" (allowed: {', '.join(allowed)})"
                raise self.fail(self.lines.key(table_line, key), f"{where}unknown key '{key}'{extra}", key)

    def table(self, data: dict, key: str, table_line: int | None, where: str = "") -> dict:
        value = data.get(key, {})
        if not isinstance(value, dict):
            raise self.fail(self.lines.key(table_line, key), f"{where}'{key}' must be a table, got {describe(value)}", key)
        return value

    def string(self, value: object, line: int | None, what: str, key: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(line, f"{what} must be a non-empty string, got {describe(value)}", key)
        return value.strip()

    def number(self, value: object, line: int | None, what: str, key: str, *, positive: bool = False) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or abs(value) > 1e9:
            raise self.fail(line, f"{what} must be a number, got {describe(value)}", key)
        if positive and value <= 0:
            raise self.fail(line, f"{what} must be greater than 0, got {value}", key)
        return float(value)

    def strings(self, value: object, line: int | None, what: str, key: str, *, allow_empty: bool = False) -> list[str]:
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            raise self.fail(line, f"{what} must be a list of non-empty strings, got {describe(value)}", key)
        if not value and not allow_empty:
            raise self.fail(line, f"{what} must not be empty", key)
        return [v.strip() for v in value]

    def choice(self, value: object, choices: tuple[str, ...], line: int | None, what: str, key: str) -> str:
        if value not in choices:
            raise self.fail(line, f"{what} must be one of {', '.join(choices)}, got {describe(value)}", key)
        return value


def load_rules(path: Path, *, read_lexicon: bool = True) -> RuleSet:
    """Read and validate a rules file; raises RulesError naming the line and the problem.
    read_lexicon=False leaves the [lexicon] file unread (`intake rules learn` builds a new
    one when the one in force is broken)."""
    path = Path(path)
    data, lines = read_toml(path)
    c = _Checker(path, lines)
    c.known_keys(data, _TOP_KEYS, None, "")

    d_line = lines.table("defaults")
    defaults = c.table(data, "defaults", None)
    c.known_keys(defaults, _DEFAULT_KEYS, d_line, "[defaults]: ")
    default_type = c.choice(defaults.get("type", "inquiry"), TYPES, lines.key(d_line, "type"), "[defaults] type", "type")
    default_urgency = c.choice(defaults.get("urgency", "normal"), URGENCIES, lines.key(d_line, "urgency"), "[defaults] urgency", "urgency")
    subject_weight = c.number(
        defaults.get("subject_weight", 2.0), lines.key(d_line, "subject_weight"), "[defaults] subject_weight", "subject_weight", positive=True
    )
    window = defaults.get("negation_window", 6)
    if isinstance(window, bool) or not isinstance(window, int) or window < 0:
        raise c.fail(
            lines.key(d_line, "negation_window"), f"[defaults] negation_window must be a whole number ≥ 0, got {describe(window)}", "negation_window"
        )
    tie_orders = []
    for key, values in (("type_tie_order", TYPES), ("urgency_tie_order", URGENCIES)):
        line = lines.key(d_line, key)
        order = c.strings(defaults.get(key, []), line, f"[defaults] {key}", key, allow_empty=True)
        for value in order:
            c.choice(value, values, line, f"[defaults] {key} entry", key)
        tie_orders.append(tuple(order))
    urgent_wins_at = 0.0
    if "urgent_wins_at" in defaults:
        urgent_wins_at = c.number(
            defaults["urgent_wins_at"], lines.key(d_line, "urgent_wins_at"), "[defaults] urgent_wins_at", "urgent_wins_at", positive=True
        )
    ubt_line = lines.table("defaults.urgency_by_type") or lines.key(d_line, "urgency_by_type")
    urgency_by_type = c.table(defaults, "urgency_by_type", d_line, "[defaults]: ")
    for type_, urgency in urgency_by_type.items():
        c.choice(type_, TYPES, lines.key(ubt_line, type_), "[defaults.urgency_by_type] key", type_)
        c.choice(urgency, URGENCIES, lines.key(ubt_line, type_), f"[defaults.urgency_by_type] {type_}", type_)

    uot_line = lines.table("defaults.urgency_of_type") or lines.key(d_line, "urgency_of_type")
    urgency_of_type = c.table(defaults, "urgency_of_type", d_line, "[defaults]: ")
    for type_, urgency in urgency_of_type.items():
        c.choice(type_, TYPES, lines.key(uot_line, type_), "[defaults.urgency_of_type] key", type_)
        c.choice(urgency, URGENCIES, lines.key(uot_line, type_), f"[defaults.urgency_of_type] {type_}", type_)

    r_line = lines.table("routing")
    routing_table = c.table(data, "routing", None)
    routing: dict[str, list[str]] = {}
    for type_, departments in routing_table.items():
        line = lines.key(r_line, type_)
        c.choice(type_, TYPES, line, "[routing] key", type_)
        routing[type_] = c.strings(departments, line, f"[routing] {type_}", type_)

    n_line = lines.table("negation_sets")
    negation_sets = c.table(data, "negation_sets", None)
    for name, phrases in negation_sets.items():
        c.strings(phrases, lines.key(n_line, name), f"[negation_sets] {name}", name)

    t_line = lines.table("time")
    time_table = c.table(data, "time", None)
    c.known_keys(time_table, _TIME_KEYS, t_line, "[time]: ")
    time_weights = {kind: c.number(time_table[kind], lines.key(t_line, kind), f"[time] {kind}", kind) for kind in TIME_TARGETS if kind in time_table}
    if "hurry" not in time_table and "today" in time_weights:
        # a rules file from before [time] hurry: its today weight counted the bare 急
        time_weights["hurry"] = time_weights["today"]
    time_negations: list[str] = []
    for set_name in c.strings(
        time_table.get("negation_sets", []), lines.key(t_line, "negation_sets"), "[time] negation_sets", "negation_sets", allow_empty=True
    ):
        if set_name not in negation_sets:
            raise c.fail(lines.key(t_line, "negation_sets"), f"[time]: unknown negation set '{set_name}'", "negation_sets")
        time_negations.extend(normalize(p).strip() for p in negation_sets[set_name])

    nr_line = lines.table("no_rush")
    no_rush_table = c.table(data, "no_rush", None)
    c.known_keys(no_rush_table, _NO_RUSH_KEYS, nr_line, "[no_rush]: ")
    no_rush = [
        normalize(p).strip()
        for p in c.strings(no_rush_table.get("phrases", []), lines.key(nr_line, "phrases"), "[no_rush] phrases", "phrases", allow_empty=True)
    ]
    if any(not p for p in no_rush):
        raise c.fail(lines.key(nr_line, "phrases"), "[no_rush] phrases: an empty phrase would match every message", "phrases")
    no_rush_exceptions = [
        normalize(p).strip()
        for p in c.strings(
            no_rush_table.get("exceptions", []), lines.key(nr_line, "exceptions"), "[no_rush] exceptions", "exceptions", allow_empty=True
        )
    ]
    if any(not p for p in no_rush_exceptions):
        raise c.fail(lines.key(nr_line, "exceptions"), "[no_rush] exceptions: an empty phrase", "exceptions")

    lexicon, lexicon_weight, lexicon_axes, learned_urgency, urgent_lean = _lexicon(c, data, path, read_lexicon)

    raw_rules = data.get("rules", [])
    if not isinstance(raw_rules, list):
        raise c.fail(lines.key(None, "rules"), f"'rules' must be an array of tables ([[rules]]), got {describe(raw_rules)}", "rules")
    rules: list[Rule] = []
    seen: dict[str, int | None] = {}
    for index, raw in enumerate(raw_rules):
        rules.append(_rule(c, raw, index, negation_sets, subject_weight))
        if rules[-1].name in seen:
            raise c.fail(rules[-1].line, f"rule '{rules[-1].name}': the name is already used by the rule at line {seen[rules[-1].name]}", "name")
        seen[rules[-1].name] = rules[-1].line
    type_tie_order, urgency_tie_order = tie_orders
    return RuleSet(
        str(path),
        default_type,
        default_urgency,
        dict(urgency_by_type),
        subject_weight,
        window,
        routing,
        tuple(rules),
        type_tie_order=type_tie_order,
        lexicon=lexicon,
        lexicon_weight=lexicon_weight,
        lexicon_axes=lexicon_axes,
        learned_urgency=learned_urgency,
        urgent_lean=urgent_lean,
        urgency_tie_order=urgency_tie_order,
        time_weights=time_weights,
        time_negations=tuple(dict.fromkeys(time_negations)),
        no_rush=tuple(dict.fromkeys(no_rush)),
        no_rush_exceptions=tuple(dict.fromkeys(no_rush_exceptions)),
        urgency_of_type=dict(urgency_of_type),
        urgent_wins_at=urgent_wins_at,
    )


def _lexicon(c: _Checker, data: dict, path: Path, read: bool = True) -> tuple[Lexicon | None, float, tuple[str, ...], bool, float]:
    """[lexicon]: the learned wording's file, read now (a broken one refuses the rules file)
    unless `read` is false, its weight, the axes it decides with the keywords, whether its
    learned urgency decides and the lean to urgent."""
    line = c.lines.table("lexicon")
    table = c.table(data, "lexicon", None)
    c.known_keys(table, _LEXICON_KEYS, line, "[lexicon]: ")
    if "file" not in table:
        if table:
            raise c.fail(line, "[lexicon]: 'file' is missing (the lexicon written by `intake rules learn`)", "file")
        return None, 0.0, (), False, 2.0
    file = Path(c.string(table["file"], c.lines.key(line, "file"), "[lexicon] file", "file"))
    weight = c.number(table.get("weight", 1.0), c.lines.key(line, "weight"), "[lexicon] weight", "weight")
    smoothing = c.number(table.get("smoothing", 1.0), c.lines.key(line, "smoothing"), "[lexicon] smoothing", "smoothing", positive=True)
    if weight < 0:
        raise c.fail(c.lines.key(line, "weight"), f"[lexicon] weight must not be negative, got {weight:g}", "weight")
    axes_line = c.lines.key(line, "axes")
    axes = c.strings(table.get("axes", ["type"]), axes_line, "[lexicon] axes", "axes", allow_empty=True)
    for axis in axes:
        c.choice(axis, ("type", "urgency"), axes_line, "[lexicon] axes entry", "axes")
    learned_line = c.lines.key(line, "learned_urgency")
    learned_urgency = table.get("learned_urgency", False)
    if not isinstance(learned_urgency, bool):
        raise c.fail(learned_line, f"[lexicon] learned_urgency must be true or false, got {describe(learned_urgency)}", "learned_urgency")
    lean_line = c.lines.key(line, "urgent_lean")
    urgent_lean = c.number(table.get("urgent_lean", 2.0), lean_line, "[lexicon] urgent_lean", "urgent_lean")
    if not 0 <= urgent_lean <= MAX_WEIGHT:
        raise c.fail(lean_line, f"[lexicon] urgent_lean must lie between 0 and {MAX_WEIGHT:g}, got {urgent_lean:g}", "urgent_lean")
    if "urgent_lean" in table and not learned_urgency:
        log.warning("%s line %s: [lexicon] urgent_lean has no effect without learned_urgency = true", path, lean_line)
    for key in _RETIRED_LEXICON_KEYS:
        if key in table:
            log.warning("%s line %s: [lexicon] %s is no longer read: learned_urgency = true replaces it", path, c.lines.key(line, key), key)
    lexicon = load_lexicon(_lexicon_file(file, path), smoothing=smoothing) if read else None
    if learned_urgency and lexicon is not None and lexicon.urgency is None:
        raise c.fail(
            learned_line,
            f"[lexicon] learned_urgency = true, but {lexicon.path} has no learned urgency (its section '{SECTION_HEADER.split(chr(9))[0]}'): "
            "learn the lexicon again with `intake rules learn`, or set it to false",
            "learned_urgency",
        )
    return lexicon, weight, tuple(dict.fromkeys(axes)), learned_urgency, urgent_lean


def _lexicon_name(rules_path: Path) -> Path | None:
    """[lexicon] file as a rules file writes it; None when it names none or is no TOML."""
    try:
        table = tomllib.loads(Path(rules_path).read_text(encoding="utf-8")).get("lexicon", {})
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    file = table.get("file") if isinstance(table, dict) else None
    return Path(file.strip()) if isinstance(file, str) and file.strip() else None


def lexicon_places(rules_path: Path) -> list[Path]:
    """Every place the lexicon a rules file names may be read from: for a relative name,
    beside the rules file and the shipped one; the watcher watches them all (a file created
    beside the rules takes over from the shipped one) and `intake rules learn` writes to none.
    Absolute, symbolic links not followed: a link swapped to another file is a change of
    the link's own path."""
    name = _lexicon_name(rules_path)
    if name is None:
        return []
    if name.is_absolute():
        return [Path(os.path.abspath(name))]
    places = [Path(os.path.abspath(Path(rules_path).parent / name))]
    shipped = _shipped(name)
    return places + [Path(os.path.abspath(shipped))] if shipped is not None else places


def named_lexicon(rules_path: Path) -> Path | None:
    """The lexicon file a rules file names ([lexicon] file), as it would be read: for
    `intake status`. None when the file names none or cannot be read as TOML."""
    name = _lexicon_name(rules_path)
    return _lexicon_file(name, Path(rules_path)).resolve() if name is not None else None


def _lexicon_file(file: Path, rules_path: Path) -> Path:
    """Where [lexicon] file is: as written if absolute; else beside the rules file, or, when
    it is not there, the shipped one of that name (a team that copied only rules.toml to edit
    it keeps the shipped wording, as it keeps the shipped staff file and templates)."""
    if file.is_absolute():
        return file
    beside = rules_path.parent / file
    if beside.exists():
        return beside
    shipped = _shipped(file)
    return shipped if shipped is not None and shipped.exists() else beside


def _shipped(file: Path) -> Path | None:
    """The shipped defaults' file of that name (intake's package intake_defaults), if any."""
    try:
        from importlib.resources import files

        return Path(str(files("intake_defaults") / str(file)))
    except (ModuleNotFoundError, TypeError):  # classify used without intake
        return None


def _rule(c: _Checker, raw: object, index: int, negation_sets: dict, subject_weight: float) -> Rule:
    line = c.lines.table("rules", index)
    if not isinstance(raw, dict):
        raise c.fail(line, f"rules[{index}] must be a table, got {describe(raw)}")

    def at(key: str) -> int | None:
        return c.lines.key(line, key)

    name = c.string(raw.get("name"), at("name") if "name" in raw else line, f"rule #{index + 1}: name", "name")
    where = f"rule '{name}': "
    c.known_keys(raw, _RULE_KEYS, line, where)
    if "target" not in raw:
        raise c.fail(line, f"{where}target is missing (one of {', '.join(TARGETS)})", "target")
    target = raw["target"]
    if target not in TARGETS:
        raise c.fail(at("target"), f"{where}unknown target {describe(target)} (one of {', '.join(TARGETS)})", "target")
    if "keywords" not in raw:
        raise c.fail(line, f"{where}keywords are missing", "keywords")
    keywords = []
    for text in c.strings(raw["keywords"], at("keywords"), f"{where}keywords", "keywords"):
        prefix = text.endswith("*")
        anchored = text.startswith("^")
        pattern = normalize(text.rstrip("*").lstrip("^")).strip()
        if not pattern:
            raise c.fail(at("keywords"), f"{where}keyword {text!r} is empty after normalisation", "keywords")
        keywords.append(Keyword(text, pattern, prefix, anchored))
    weight = c.number(raw.get("weight", 1.0), at("weight"), f"{where}weight", "weight")
    fields = tuple(c.strings(raw.get("fields", list(FIELDS)), at("fields"), f"{where}fields", "fields"))
    for f in fields:
        c.choice(f, FIELDS, at("fields"), f"{where}fields entry", "fields")
    rule_subject_weight = c.number(
        raw.get("subject_weight", subject_weight), at("subject_weight"), f"{where}subject_weight", "subject_weight", positive=True
    )
    negations = c.strings(raw.get("negations", []), at("negations"), f"{where}negations", "negations", allow_empty=True)
    for set_name in c.strings(raw.get("negation_sets", []), at("negation_sets"), f"{where}negation_sets", "negation_sets", allow_empty=True):
        if set_name not in negation_sets:
            known = ", ".join(negation_sets) or "none defined"
            raise c.fail(at("negation_sets"), f"{where}unknown negation set '{set_name}' (known: {known})", "negation_sets")
        negations.extend(negation_sets[set_name])
    note = raw.get("note", "")
    if not isinstance(note, str):
        raise c.fail(at("note"), f"{where}note must be a string, got {describe(note)}", "note")
    flags = {}
    for key, needs in (("hurry", "urgency:urgent"), ("days", "urgency:important")):
        value = raw.get(key, False)
        if not isinstance(value, bool):
            raise c.fail(at(key), f"{where}{key} must be true or false, got {describe(value)}", key)
        if value and target != needs:
            raise c.fail(at(key), f'{where}{key} = true is only for target "{needs}", not {target!r}', key)
        flags[key] = value
    return Rule(name, target, tuple(keywords), weight, fields, rule_subject_weight, tuple(dict.fromkeys(negations)), note, line, **flags)
