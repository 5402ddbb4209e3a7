"""The database: engine and sessions, the tables, the Alembic migrations, and the fast
statements every message runs; SQLite's writers taking turns."""

# The execution option of sessions that only read (db.make_read_sessions); SQLite honours it
# (sqlite.py). Here, so that reading it does not load SQLite into a PostgreSQL process.
READ_ONLY = "intake_read_only"
