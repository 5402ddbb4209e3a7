"""The routing table: type → departments, the lead first; urgent cases flagged to the head."""

from __future__ import annotations

from pathlib import Path

from classify import Classifier, load_staff

ROOT = Path(__file__).resolve().parents[2]


def test_default_routing_table_follows_the_service_manual():
    """投诉→售后部, 需求→产品部, 故障→售后部+技术部 (售后牵头), 咨询/建议→客服部."""
    clf = Classifier.from_file(ROOT / "config" / "rules.toml")
    assert clf.departments_for("complaint") == ["after_sales"]
    assert clf.departments_for("request") == ["product"]
    assert clf.departments_for("fault") == ["after_sales", "tech"]
    assert clf.departments_for("inquiry") == ["general"]
    assert clf.departments_for("suggestion") == ["general"]


def test_every_routed_department_exists_and_has_a_head():
    """Each department the rules route to is defined in staff.toml with a head to notify of 加急 cases."""
    clf = Classifier.from_file(ROOT / "config" / "rules.toml")
    staff = load_staff(ROOT / "config" / "staff.toml")
    for departments in clf.ruleset.routing.values():
        for name in departments:
            assert name in staff.departments
            head = staff.head(name)
            assert head is not None and name in head.head_of


def test_urgent_classification_is_flagged_and_names_lead_department():
    """An urgent complaint is flagged 加急 and led by after-sales; a normal one is not flagged."""
    clf = Classifier.from_file(ROOT / "config" / "rules.toml")
    urgent = clf.classify("投诉", "你们发错货导致我们生产线停工,今天必须解决")
    assert (urgent.type, urgent.urgency, urgent.flagged, urgent.departments[0]) == ("complaint", "urgent", True, "after_sales")
    calm = clf.classify("一点建议", "说明书字太小,建议出大字版")
    assert (calm.type, calm.flagged, calm.departments) == ("suggestion", False, ["general"])


def test_routing_in_a_custom_file(tmp_path: Path):
    """A team can route types elsewhere; a type missing from the table routes nowhere."""
    path = tmp_path / "rules.toml"
    path.write_text('[routing]\ncomplaint = ["quality", "after_sales"]\n')
    clf = Classifier.from_file(path)
    assert clf.departments_for("complaint") == ["quality", "after_sales"]
    assert clf.classify("", "").departments == []


def test_explanation_names_departments_for_people():
    """With the staff directory's labels, explanations say 售后部 / After-sales, the lead first."""
    clf = Classifier.from_file(ROOT / "config" / "rules.toml")
    staff = load_staff(ROOT / "config" / "staff.toml")
    r = clf.classify("系统瘫痪", "所有用户都无法登录")
    assert "部门:售后部(after_sales)、技术部(tech),售后部(after_sales)牵头" in r.explain("zh", staff.labels("zh"))
    assert "departments: After-sales (after_sales), Technical support (tech); lead: After-sales (after_sales)" in r.explain("en", staff.labels())
