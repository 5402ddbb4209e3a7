"""What the pipeline and the workers share: config, database, templates, rules, staff, clock."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from intake.config import Config
from intake.outgoing.templates import Templates
from intake.store.db import make_engine, make_read_sessions, make_sessions
from intake.tickets.records import ref_pattern

log = logging.getLogger("intake.context")


def system_clock() -> datetime:
    return datetime.now(UTC)


@dataclass
class Context:
    config: Config
    sessions: sessionmaker[Session]
    templates: Templates
    rules: Any = None  # classify.Classifier; replaced whole on hot reload
    staff_directory: Any = None  # classify.StaffDirectory, or None when no staff file
    now: Callable[[], datetime] = system_clock
    wake_outbox: threading.Event = field(default_factory=threading.Event)
    read_sessions: sessionmaker[Session] = field(kw_only=True)  # reads only: no write lock (intake/store/sqlite.py)

    def __post_init__(self) -> None:
        self.ref_pattern = ref_pattern(self.config.tickets.ref_prefix)

    def classifier(self):
        return self.rules

    def staff(self):
        return self.staff_directory

    def departments_for(self, type_: str, fallback: list[str]) -> list[str]:
        routing = getattr(self.rules, "departments_for", None)
        return routing(type_) if routing else fallback


def build_context(config: Config, *, now: Callable[[], datetime] = system_clock) -> Context:
    """Load everything once, at start-up: a broken rules or staff file stops the boot."""
    from classify import Classifier, load_staff

    engine = make_engine(config.database.url)
    templates = Templates(config.template_dirs)
    templates.check()
    return Context(
        config=config,
        sessions=make_sessions(engine),
        read_sessions=make_read_sessions(engine),
        templates=templates,
        rules=Classifier.from_file(config.rules_file),
        staff_directory=load_staff(config.staff_file),
        now=now,
    )


def watch_rules(ctx: Context):
    """Edits to the rules file take effect without a restart; a broken file is refused
    and the rules in force stay. Returns the watcher (to stop), or None."""
    try:
        from classify import RulesWatcher
    except ImportError:
        return None

    def reloaded(classifier) -> None:
        ctx.rules = classifier
        log.info("rules reloaded from %s", ctx.config.rules_file)

    def refused(error) -> None:
        log.error("rules not reloaded, the previous rules stay in force: %s", error)

    watcher = RulesWatcher(ctx.config.rules_file, reloaded, refused)
    watcher.start()
    return watcher
