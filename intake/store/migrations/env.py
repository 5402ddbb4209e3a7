"""Alembic environment: `intake init` passes its own connection; the alembic CLI
(alembic -c intake/store/migrations/alembic.ini) reads sqlalchemy.url."""

from alembic import context
from sqlalchemy import engine_from_config, pool

import archive.models  # noqa: F401  (every package's tables register on Base)
import intake.staffmail.models  # noqa: F401
import intake.store.models  # noqa: F401
from intake.store.db import Base

config = context.config
target_metadata = Base.metadata


def run_migrations() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    section = config.get_section(config.config_ini_section)
    if section is None:
        raise RuntimeError(f"no [{config.config_ini_section}] section (with sqlalchemy.url) in {config.config_file_name}")
    engine = engine_from_config(section, prefix="sqlalchemy.", poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()


run_migrations()
