"""Fixtures shared by the unit tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from classify import Classifier

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def shipped_rules() -> Classifier:
    """The shipped rules (config/rules.toml) and the lexicon they name, loaded once."""
    return Classifier.from_file(ROOT / "config" / "rules.toml")
