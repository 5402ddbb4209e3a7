"""The database: engine and sessions, the tables, the Alembic migrations, and the fast
statements every message runs; SQLite's writers taking turns."""
