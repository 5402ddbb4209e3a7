"""Database engine and sessions: SQLite (WAL) by default, PostgreSQL by URL.

Every table is declared on `Base`; `intake init` creates or upgrades the schema
through Alembic (intake/migrations), never through `create_all`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import ClassVar

from sqlalchemy import Table, create_engine
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from intake.store import READ_ONLY


class Base(DeclarativeBase):
    # Every model here is declared with __tablename__, so it is mapped to a Table
    # (SQLAlchemy types it as the wider FromClause, which may be a subquery or a join).
    __table__: ClassVar[Table]


def make_engine(url: str) -> Engine:
    """One engine per process. SQLite gets WAL, full durability (a committed ticket
    must survive a power cut: the source lets go of the message right after the
    commit) and writers that take turns (intake/store/sqlite.py)."""
    if url.startswith("sqlite"):
        from intake.store.sqlite import make_sqlite_engine

        return make_sqlite_engine(url)
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)


def make_read_sessions(engine: Engine) -> sessionmaker[Session]:
    """Sessions for reading only: on SQLite a snapshot that takes no write lock, so a
    long export or verify never holds up the daemon. Writing through them is an error."""
    return sessionmaker(engine.execution_options(**{READ_ONLY: True}), expire_on_commit=False, autoflush=False)


def make_sessions(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False, autoflush=False)


@contextmanager
def transaction(sessions: sessionmaker[Session]) -> Iterator[Session]:
    """A session whose work commits on success and rolls back on any error."""
    with sessions() as session:
        with session.begin():
            yield session


def upgrade(engine: Engine) -> list[str]:
    """Create or upgrade the schema to the newest Alembic revision; returns the
    revisions applied (empty when already current)."""
    from alembic import command
    from alembic.config import Config as AlembicConfig
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    script = ScriptDirectory.from_config(cfg)
    with engine.begin() as connection:
        current = set(MigrationContext.configure(connection).get_current_heads())
    pending = [
        rev.revision
        for rev in reversed(list(script.walk_revisions()))
        if rev.revision not in current and not _is_ancestor(script, rev.revision, current)
    ]
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "heads")
    return pending


def _is_ancestor(script, revision: str, heads: set[str]) -> bool:
    for head in heads:
        if any(r.revision == revision for r in script.iterate_revisions(head, "base")):
            return True
    return False
