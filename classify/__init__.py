"""Keyword classification, routing and assignment of cases.

`Classifier.from_file(path).classify(subject, body)` gives a `Classification`
(type, urgency, departments, 加急 flag and the keyword matches that decided it);
`RulesWatcher` reloads the rules when the file changes; `load_staff` and
`choose_assignee` pick the person in the department who takes the case.
"""

from classify.assign import choose_assignee
from classify.classifier import Classification, Classifier, Match
from classify.errors import RulesError
from classify.rules import FIELDS, TARGETS, TYPES, URGENCIES, RuleSet, load_rules
from classify.staff import Department, Shift, StaffDirectory, StaffMember, load_staff, parse_shift
from classify.watcher import RulesWatcher

__all__ = [
    "Classification",
    "Classifier",
    "Match",
    "RulesError",
    "RuleSet",
    "load_rules",
    "RulesWatcher",
    "FIELDS",
    "TARGETS",
    "TYPES",
    "URGENCIES",
    "choose_assignee",
    "Department",
    "Shift",
    "StaffDirectory",
    "StaffMember",
    "load_staff",
    "parse_shift",
]
