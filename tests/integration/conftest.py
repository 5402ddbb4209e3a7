"""A real intake Context on a fresh database: SQLite file or PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from intake.config import from_dict
from intake.context import build_context
from intake.pipeline.runner import Pipeline
from intake.store.db import make_engine, upgrade

# The shipped departments and nobody in them: tests that count the mail one case sends use
# it, as with the shipped staff a colleague on shift is notified only in office hours.
NOBODY_ON_DUTY = Path(__file__).parents[1] / "fixtures" / "staff" / "nobody.toml"


class Clock:
    """A controllable clock: tests move time instead of sleeping."""

    def __init__(self, start: datetime | None = None):
        self.at = start or datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.at

    def advance(self, **delta) -> None:
        from datetime import timedelta

        self.at += timedelta(**delta)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'intake.db'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def make_ctx(tmp_path):
    """make_ctx(db_url, **config sections) → a Context on an upgraded database."""

    def make(db_url: str, clock: Clock | None = None, **sections):
        data = {
            "database": {"url": db_url},
            "paths": {"var": str(tmp_path / "var")},
            "maildir": {"path": str(tmp_path / "var" / "drop")},
            "spool": {"path": str(tmp_path / "var" / "spool")},
        }
        for key, value in sections.items():
            data.setdefault(key, {}).update(value) if isinstance(value, dict) else data.__setitem__(key, value)
        config = from_dict(data)
        upgrade(make_engine(config.database.url))
        return build_context(config, **({"now": clock} if clock else {}))

    return make


@pytest.fixture
def ctx(make_ctx, db_url):
    return make_ctx(db_url)


@pytest.fixture
def pipeline(ctx) -> Pipeline:
    return Pipeline(ctx)


@pytest.fixture
def clock() -> Clock:
    return Clock()


FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
