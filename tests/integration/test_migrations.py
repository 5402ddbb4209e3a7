"""The Alembic migrations build exactly the schema the models declare, on SQLite and PostgreSQL."""

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

import archive.models  # noqa: F401  (registers the archive's tables)
import intake.ops.alerts  # noqa: F401  (source_alerts)
import intake.staffmail.models  # noqa: F401
import intake.store.models  # noqa: F401
import intake.web.console.models  # noqa: F401  (the console's users, audit, failed sign-ins)
from intake.store.db import Base, make_engine, upgrade


def test_migrations_match_the_models(db_url):
    engine = make_engine(db_url)
    assert upgrade(engine)  # from nothing to the newest revision
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []
    assert upgrade(engine) == []  # and a second init changes nothing
