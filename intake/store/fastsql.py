"""How the pipeline writes, and the statements every message runs, on the driver's own cursor.

One way of writing for everything an item does (issue 16): a new row the session
holds as an object is written by `insert_new`, a change to one by `update_row` (both
one statement, at once), and rows only ever appended (events, outbox mail, messages,
archive jobs, source refs) by `add_row`, which writes them table by table at the
commit. The ORM's unit of work writes nothing on an item's path
(tests/integration/test_one_write_path.py); the ORM stays for reading and for the
console and command line.

SQLAlchemy's execution machinery (execution context, parameter and result objects,
events) costs 30-50 µs a statement on this machine, where SQLite itself needs 2-3 µs;
a new ticket runs about fifteen statements, so that machinery was a third of the
pipeline's CPU. The hot statements are therefore compiled once per dialect by
SQLAlchemy itself (the same SQL text, and the same type conversions through each
type's own bind and result processors) and run on the cursor of the session's
connection, inside the session's transaction and savepoints. Other reads go
through the session as ever.

Driver errors are raised as SQLAlchemy's own exceptions (IntegrityError,
OperationalError, ...), so callers handle them as before.

Rows that are only ever appended (events, outbox mail, messages, archive jobs, source
refs) wait in the session (`add_row`) and are written table by table, one executemany
each, when the transaction commits: a group of ten messages writes its events in one
statement, not ten, and on PostgreSQL all its tables in one round trip (a pipeline). A
prepared statement on a table with rows waiting writes that table's rows first, and any query through the session writes them all first, so no
lookup misses what an earlier item of the group did. A lookup that an item makes on
such a table (the copy of this email, the acknowledgements to this sender, when they
were not looked up for its whole group: intake/pipeline/stages.py GroupLookups) would
write the group's rows an item at a time: it leaves them waiting (`sees_waiting=False`)
and looks at them itself (`waiting`).
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Collection, Sequence
from typing import Any

from sqlalchemy import Connection, Table, bindparam, event, insert, update
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.sql import TableClause
from sqlalchemy.sql.util import find_tables

# Statements run by this module in this process (the pipeline benchmark reports them).
statements_run = 0


# The session's connection, kept from one statement to the next: Session.connection()
# costs about as much as running one of these statements. Forgotten whenever a
# transaction or savepoint begins or ends, so that the first statement after asks the
# session again, which then emits the BEGIN or the SAVEPOINT (it does so lazily: a
# savepoint in which only these statements ran would otherwise never have begun).
_CONNECTION = "fastsql_connection"
# What callers learn about rows within a transaction and keep true as they write
# (transaction_memo), forgotten at the same boundaries, so a rollback leaves nothing in it.
_MEMOS = "fastsql_memos"


@event.listens_for(Session, "after_transaction_create")
@event.listens_for(Session, "after_transaction_end")
def _forget_transaction_state(session: Session, transaction) -> None:
    session.info.pop(_CONNECTION, None)
    session.info.pop(_MEMOS, None)


def transaction_memo(session: Session, name: str) -> dict:
    """A dict named `name` that lives as long as the session's current transaction or
    savepoint: what its caller read once and keeps true through its own writes, instead
    of asking the database again (intake/tickets/records.py). Forgotten whenever a
    transaction or savepoint begins or ends."""
    return session.info.setdefault(_MEMOS, {}).setdefault(name, {})


def memo_if_any(session: Session, name: str) -> dict | None:
    """The transaction's memo `name` if something made it in this transaction, else None."""
    return session.info.get(_MEMOS, {}).get(name)


def _connection(session: Session) -> Connection:
    connection = session.info.get(_CONNECTION)
    if connection is None:
        connection = session.info[_CONNECTION] = session.connection()  # begins the transaction or savepoint
    return connection


def _driver(connection: Connection):
    driver_connection = connection.connection.driver_connection
    assert driver_connection is not None, "the session's connection is open"  # None only once closed
    return driver_connection


def _as_sqlalchemy_error(connection: Connection, exc: Any, sql: str, params, cursor=None) -> StatementError:
    """The driver's error as SQLAlchemy raises it (IntegrityError, OperationalError, ...),
    the connection invalidated if the error says it is lost."""
    dialect = connection.dialect
    invalidated = dialect.is_disconnect(exc, connection.connection.dbapi_connection, cursor)
    if invalidated:
        connection.invalidate(exc)
    return DBAPIError.instance(sql, params, exc, dialect.loaded_dbapi.Error, connection_invalidated=invalidated, dialect=dialect)


class _Compiled:
    """One statement's SQL text and conversions for one dialect."""

    def __init__(self, statement, dialect, column_keys: Sequence[str] | None):
        compiled = statement.compile(dialect=dialect, column_keys=column_keys, for_executemany=True)
        if compiled.escaped_bind_names:
            raise ValueError(f"parameter names that need escaping are not supported here: {compiled.escaped_bind_names}")
        self.sql = compiled.string
        if "POSTCOMPILE" in self.sql:  # an IN of a Python list: give it bindparams of its own
            raise ValueError(f"expanding parameters are not supported here: {self.sql}")
        self.names = list(compiled.positiontup) if compiled.positional else None
        # values the statement carries itself (a LIMIT, literals)
        self.fixed = {name: bind.effective_value for bind, name in compiled.bind_names.items() if not bind.required}
        # the tables it reads or writes: rows waiting for one of them are written first
        self.tables = frozenset(find_tables(statement, include_crud=True))
        self.processors: dict[str, Callable[[Any], Any]] = {}
        for bind, name in compiled.bind_names.items():
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if processor is not None:
                self.processors[name] = processor
        if self.names is not None:
            self.plan = [(name, self.processors.get(name), name not in self.fixed, self.fixed.get(name)) for name in self.names]
        columns = list(statement.exported_columns)  # a SELECT's columns, or an INSERT/UPDATE's RETURNING
        # a named tuple class made at run time from the statement's columns: mypy knows
        # only `type[tuple]` of it, which has no _make
        self.row_type: Any = namedtuple("Row", [c.key for c in columns], rename=True) if columns else None
        self.results: list[Callable[[Any], Any] | None] | None = [c.type.dialect_impl(dialect).result_processor(dialect, None) for c in columns]
        if not any(self.results):
            self.results = None

    def params(self, values: dict) -> Any:
        if self.names is not None:  # positional (SQLite): in the order of the SQL text
            return tuple(
                [  # a list first: cheaper than a generator for tuple()
                    (values[name] if required else values.get(name, default))
                    if process is None
                    else process(values[name] if required else values.get(name, default))
                    for name, process, required, default in self.plan
                ]
            )
        values = {**self.fixed, **values} if self.fixed else dict(values)
        for name, process in self.processors.items():
            if name in values:
                values[name] = process(values[name])
        return values

    def row(self, raw: tuple | None):
        if raw is None:
            return None
        if self.results is not None:
            raw = tuple(value if process is None else process(value) for process, value in zip(self.results, raw))
        return self.row_type._make(raw)


class Prepared:
    """A Core statement (built once, at import) run on the session's connection.
    `column_keys` names the columns of an INSERT whose values are given. With
    `sees_waiting=False` the rows waiting for its tables are not written first: the
    caller looks at them itself (`waiting`)."""

    def __init__(self, statement, column_keys: Sequence[str] | None = None, *, sees_waiting: bool = True):
        self.statement = statement
        self.column_keys = list(column_keys) if column_keys is not None else None
        self.sees_waiting = sees_waiting
        self._by_dialect: dict[str, _Compiled] = {}

    def _compiled(self, dialect) -> _Compiled:
        compiled = self._by_dialect.get(dialect.name)
        if compiled is None:
            compiled = self._by_dialect[dialect.name] = _Compiled(self.statement, dialect, self.column_keys)
        return compiled

    def _run(self, session: Session, values, many: bool):
        global statements_run
        connection = _connection(session)
        dialect = connection.dialect
        compiled = self._compiled(dialect)
        waiting = session.info.get(_ROWS)
        if waiting and self.sees_waiting and not compiled.tables.isdisjoint(waiting):
            write_rows(session, compiled.tables)
        params = [compiled.params(v) for v in values] if many else compiled.params(values)
        cursor = _driver(connection).cursor()
        statements_run += 1
        try:
            if many:
                cursor.executemany(compiled.sql, params)
            else:
                cursor.execute(compiled.sql, params)
        except dialect.loaded_dbapi.Error as exc:
            cursor.close()
            raise _as_sqlalchemy_error(connection, exc, compiled.sql, params, cursor) from exc
        return compiled, cursor

    def first(self, session: Session, values: dict):
        """The first row (a named tuple), or None."""
        compiled, cursor = self._run(session, values, many=False)
        try:
            return compiled.row(cursor.fetchone())
        finally:
            cursor.close()

    def scalar(self, session: Session, values: dict):
        row = self.first(session, values)
        return row[0] if row is not None else None

    def all(self, session: Session, values: dict) -> list:
        compiled, cursor = self._run(session, values, many=False)
        try:
            return [compiled.row(raw) for raw in cursor.fetchall()]
        finally:
            cursor.close()

    def execute(self, session: Session, values: dict) -> int:
        """Run it; the number of rows it changed."""
        _, cursor = self._run(session, values, many=False)
        changed = cursor.rowcount
        cursor.close()
        return changed

    def run(self, session: Session, values: dict) -> None:
        """Run it and ask nothing of its outcome (in a pipeline, nothing to wait for)."""
        _, cursor = self._run(session, values, many=False)
        cursor.close()

    def executemany(self, session: Session, rows: list[dict]) -> None:
        _, cursor = self._run(session, rows, many=True)
        cursor.close()


# Appended rows: waiting in the session until the commit or a statement on their table.
_ROWS = "intake_rows"


def add_row(session: Session, table: Table, row: dict) -> None:
    """Queue an INSERT into `table`, written with the others by `write_rows`: before
    the transaction commits or anything reads the table (a rollback drops it)."""
    session.info.setdefault(_ROWS, {}).setdefault(table, []).append(row)


def waiting(session: Session, table: Table) -> list[dict]:
    """The rows waiting for `table` (not to be changed)."""
    return session.info.get(_ROWS, {}).get(table, [])


def write_rows(session: Session, tables: Collection[TableClause] | None = None) -> None:
    """Write the rows waiting for `tables` (default: all), a table at a time in the
    order queued: ids keep the order in which things happened. Tables are independent
    here (a row that needs another's id waits only for a row already written)."""
    waiting = session.info.get(_ROWS)
    if not waiting:
        return
    if tables is None:
        del session.info[_ROWS]
        chosen = waiting
    else:
        chosen = {table: waiting.pop(table) for table in tables if table in waiting}
        if not waiting:
            del session.info[_ROWS]
    connection = _connection(session)
    if len(chosen) == 1 or not _has_pipelines(connection):
        _write(session, chosen)
        return
    # PostgreSQL: every table's rows in one round trip. Each executemany rides the open
    # pipeline, where alone it would wait for the server's answer to its own Sync (a
    # group's commit writes five or six tables: bench/imap_backlog.md). An error in any
    # of them is raised as the pipeline ends, as SQLAlchemy's exception, as ever.
    try:
        with _driver(connection).pipeline():
            _write(session, chosen)
    except connection.dialect.loaded_dbapi.Error as exc:
        names = ", ".join(table.name for table in chosen)
        raise _as_sqlalchemy_error(connection, exc, f"INSERT of the rows waiting for {names}", None) from exc


def _has_pipelines(connection: Connection) -> bool:
    """psycopg 3 on a libpq that has pipeline mode (14 or later; psycopg's binary wheel has it)."""
    if connection.dialect.driver != "psycopg":
        return False
    import psycopg

    return psycopg.Pipeline.is_supported()


def _write(session: Session, chosen: dict) -> None:
    for table, rows in chosen.items():
        # one executemany per run of rows with the same columns, in the order queued
        run: list[dict] = []
        for row in rows:
            if run and row.keys() != run[0].keys():
                insert_rows(session, table, run)
                run = []
            run.append(row)
        insert_rows(session, table, run)


def drop_rows(session: Session) -> None:
    session.info.pop(_ROWS, None)


@event.listens_for(Session, "before_commit")
def _write_before_commit(session: Session) -> None:
    write_rows(session)


@event.listens_for(Session, "do_orm_execute")
def _write_before_a_query(state) -> None:
    """A query through the session (session.execute, get, a lazy load) sees every waiting
    row: an ORM statement may reach tables its text does not name (a join along a
    relationship, an eager load), so all are written. Rare on the hot path, where the
    lookups are prepared statements. (`session.connection().execute` bypasses this: not
    used where rows wait.)"""
    if state.session.info.get(_ROWS):
        write_rows(state.session)


@event.listens_for(Session, "after_transaction_end")
def _drop_at_the_end(session: Session, transaction) -> None:
    """The outermost transaction ended: after a commit nothing waits (before_commit wrote
    it), after a rollback what waited goes with it. A savepoint's end changes nothing:
    the pipeline writes what waits before it begins one and drops an item's own rows
    when the item's savepoint rolls back (intake/pipeline/runner.py)."""
    if transaction.parent is None:
        drop_rows(session)


_INSERTS: dict[tuple[Table, tuple[str, ...], bool], tuple[Prepared, list]] = {}


def insert_rows(session: Session, table: Table, rows: list[dict]) -> None:
    """INSERT rows that all have the same keys; columns they leave out get their
    Python-side default (as SQLAlchemy would give them)."""
    prepared, defaults = _insert(table, tuple(rows[0]), returning_id=False)
    if defaults:
        rows = [{**row, **{key: default() for key, default in defaults}} for row in rows]
    if len(rows) == 1:
        prepared.run(session, rows[0])
    else:
        prepared.executemany(session, rows)


def insert_returning_id(session: Session, table: Table, row: dict) -> int:
    """INSERT one row and give its new id."""
    prepared, defaults = _insert(table, tuple(row), returning_id=True)
    if defaults:
        row = {**row, **{key: default() for key, default in defaults}}
    return prepared.scalar(session, row)


def python_default(column) -> Callable[[], Any] | None:
    """What gives the value SQLAlchemy would give a column left out of an INSERT (its
    scalar or Python-side default), or None if it has none (NULL, or the server's)."""
    default = column.default
    if default is None or not (default.is_scalar or default.is_callable):
        return None
    if default.is_scalar:
        value = default.arg
        return lambda: value
    return lambda: default.arg(None)  # SQLAlchemy wraps a callable default to take its context argument


def _insert(table: Table, keys: tuple[str, ...], *, returning_id: bool) -> tuple[Prepared, list]:
    """The INSERT of these columns, built once, and the defaults of the columns left out."""
    found = _INSERTS.get((table, keys, returning_id))
    if found is None:
        defaults = [(column.key, make) for column in table.columns if column.key not in keys and (make := python_default(column)) is not None]
        statement = insert(table).returning(table.c.id) if returning_id else insert(table)
        found = _INSERTS[(table, keys, returning_id)] = (Prepared(statement, [*keys, *(key for key, _ in defaults)]), defaults)
    return found


# -- rows the session holds as objects: written with one statement, never by the unit of work


def insert_new(session: Session, obj):
    """Write a new ORM object with one plain INSERT and attach it to the session as
    if loaded from the database. The unit of work's flush of a ticket and its customer
    was the largest single cost of a new case. Columns left unset get their default
    here, so nothing on the object is expired (which would cost a SELECT). Foreign keys
    are given as ids (ticket_id=...), not through relationships."""
    table = type(obj).__table__
    values = {}
    for column in table.columns:
        if column.key == "id":
            continue
        if column.key in obj.__dict__:
            values[column.key] = obj.__dict__[column.key]
            continue
        make = python_default(column)
        value = make() if make is not None else None
        setattr(obj, column.key, value)  # only what was left unset: the rest is set already
        values[column.key] = value
    obj.id = insert_returning_id(session, table, values)
    make_transient_to_detached(obj)
    session.add(obj)
    return obj


def update_row(session: Session, obj, **values) -> None:
    """Change columns of a row the session holds as an object: one UPDATE by its primary
    key, now, and the object shows the new values as loaded, so the unit of work has
    nothing to write at the commit. Values the object holds already are left out; the
    row must exist (the unit of work raised when it did not, and so does this)."""
    values = {key: value for key, value in values.items() if key not in obj.__dict__ or obj.__dict__[key] != value}
    if not values:
        return
    table = type(obj).__table__
    key = {f"pk_{column.key}": getattr(obj, column.key) for column in table.primary_key}
    if None in key.values():
        raise ValueError(f"update_row: {type(obj).__name__} has no primary key yet (write it with insert_new first)")
    changed = _update(table, tuple(values)).execute(session, {**{f"v_{name}": value for name, value in values.items()}, **key})
    if changed != 1:
        raise LookupError(f"update_row: no {table.name} row {key}")
    for name, value in values.items():
        set_committed_value(obj, name, value)


_UPDATES: dict[tuple[Table, tuple[str, ...]], Prepared] = {}


def _update(table: Table, keys: tuple[str, ...]) -> Prepared:
    """The UPDATE of these columns by primary key, built once."""
    found = _UPDATES.get((table, keys))
    if found is None:
        statement = (
            update(table)
            .where(*[column == bindparam(f"pk_{column.key}", type_=column.type) for column in table.primary_key])
            .values({key: bindparam(f"v_{key}", type_=table.c[key].type) for key in keys})
        )
        found = _UPDATES[(table, keys)] = Prepared(statement)
    return found


def row_id(session: Session, obj) -> int:
    """The database id of an ORM object, flushing it first if it is new (sessions do
    not autoflush)."""
    if obj.id is None:
        session.flush()
    return obj.id
