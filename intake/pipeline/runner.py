"""The pipeline: every item from every source runs PIPELINE (intake/pipeline/builtin.py)
in one transaction:

    prepare (parse, classify the text; no transaction), then in the transaction:
    parse → dedupe → loop_check → thread → staff_reply → ignore_autoreply → survey_answer
    → classify → route → store → schedule → acknowledge → notify → to_archive

The work whose cost grows with the input (parsing, classifying) is done in prepare,
before the transaction (on SQLite, before the item's turn at the write lock); the
stages of the same name inside take its result.

The source ref is stored in the same transaction as the ticket, so a crash at any
point neither loses nor doubles a ticket. One bad item never stops the daemon: a
failure rolls back and the item goes to the quarantine with its bytes and the reason.

A source with a backlog hands over a batch (`take_many`), taken in groups: one
transaction and one durable commit a group; a group with a failing item runs again
with each item in its own savepoint, so that item rolls back alone. The source lets
go of each group once committed.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections import namedtuple
from collections.abc import Callable, Sequence

from sqlalchemy import bindparam, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from intake.context import Context
from intake.pipeline.builtin import PIPELINE
from intake.pipeline.case import Case, Quarantine, Stop
from intake.pipeline.stages import look_up_group, prepare
from intake.sources.base import Result, SourceRef
from intake.store.db import transaction
from intake.store.fastsql import Prepared, add_row, drop_rows, insert_new, update_row, write_rows
from intake.store.models import QuarantineItem, SourceItem, SourceState

log = logging.getLogger("intake.pipeline.runner")

# a unique key hit by a concurrent taker (another thread or daemon took the same
# message a moment earlier): run again, and the stages will answer "duplicate"
RACE_RETRIES = 3

# Messages taken in one transaction: one durable commit for the group instead of one
# per message, while a group still commits (and its acknowledgements leave) within a
# fraction of a second, and a kill -9 costs at most a group's work.
COMMIT_GROUP = 10

Items = Sequence[tuple[bytes, SourceRef]]
Committed = Callable[[Items, list[Result]], "bool | None"]


def groups_of(items: Items, size: int = COMMIT_GROUP) -> list[Items]:
    return [items[start : start + size] for start in range(0, len(items), size)]


# Looked up and written once per item: plain statements, built once (intake/pipeline/stages.py).
_SOURCE_ITEMS = SourceItem.__table__
_PRIOR_TAKE = Prepared(
    select(_SOURCE_ITEMS.c.outcome, _SOURCE_ITEMS.c.ticket_ref, _SOURCE_ITEMS.c.reason).where(
        _SOURCE_ITEMS.c.source == bindparam("source"), _SOURCE_ITEMS.c.key == bindparam("key")
    )
)


_Taken = namedtuple("_Taken", "outcome ticket_ref reason")


def _taken_before(session: Session, refs: Sequence[SourceRef]) -> dict[tuple[str, str], _Taken]:
    """The refs of a group already taken, in one statement for the group."""
    c = _SOURCE_ITEMS.c
    wanted = {(ref.source, ref.key) for ref in refs}
    rows = session.execute(
        select(c.source, c.key, c.outcome, c.ticket_ref, c.reason).where(c.source.in_({s for s, _ in wanted}), c.key.in_({k for _, k in wanted}))
    )
    return {(row.source, row.key): _Taken(row.outcome, row.ticket_ref, row.reason) for row in rows if (row.source, row.key) in wanted}


class Pipeline:
    """The Sink every source feeds."""

    def __init__(self, ctx: Context, *, metrics: bool = True):
        self.ctx = ctx
        # Each outcome counted in /metrics (intake/ops), where this process serves them; a
        # worker process's pipeline counts none (the daemon counts what comes back from it)
        # and does not load the metrics library.
        self._record_take: Callable[[str, str, str, float], None] | None = None
        if metrics:
            from intake.ops.metrics import record_take

            self._record_take = record_take

    def take(self, raw: bytes, ref: SourceRef, *, quarantine_id: int | None = None) -> Result:
        started = time.perf_counter()
        return self._take_one(self.prepared(raw, ref), quarantine_id, started)  # prepared before the write lock

    def _take_one(self, prepared: Case, quarantine_id: int | None = None, started: float | None = None) -> Result:
        """One item in its own transaction; tried again (not parsed again) if a concurrent taker won a race."""
        started = time.perf_counter() if started is None else started
        raw, ref = prepared.raw, prepared.ref
        for attempt in range(RACE_RETRIES + 1):
            try:
                result = self._run(prepared.again() if attempt else prepared, quarantine_id)
                break
            except IntegrityError as exc:
                if attempt == RACE_RETRIES:  # not a race after all: a constraint this item breaks
                    result = self._quarantine(raw, ref, f"database constraint: {exc.orig}", quarantine_id)
                    break
                log.info("concurrent take of %s %s; running again", ref.source, ref.key)
            except OperationalError:
                raise  # the database itself: the source keeps the item and offers it again
            except Exception as exc:  # a bug or a surprise in a stage: never lose the item
                log.exception("failed on %s %s", ref.source, ref.key)
                result = self._quarantine(raw, ref, f"internal error: {type(exc).__name__}: {exc}\n{traceback.format_exc(limit=4)}", quarantine_id)
                break
        self.ctx.wake_outbox.set()
        self._record(ref, result, time.perf_counter() - started)
        return result

    def take_many(self, items: Sequence[tuple[bytes, SourceRef]], committed: Committed | None = None) -> list[Result]:
        """Take a batch (an IMAP fetch) in groups of COMMIT_GROUP, one transaction and one
        commit a group. After each group's commit `committed(group, results)` lets the
        source let go of it; when it returns False the rest is left (stop) and the
        results returned are those of the groups taken."""
        results: list[Result] = []
        for group in groups_of(items):
            taken = self._take_group(group)
            results.extend(taken)
            if committed is not None and committed(group, taken) is False:
                break
        return results

    def _take_group(self, items: Sequence[tuple[bytes, SourceRef]]) -> list[Result]:
        """One group in one transaction: one commit instead of one per item. Usually every
        item goes through at once. When an item fails (it cannot be parsed, a stage
        raises), the group runs with each item in its own savepoint: the failing one
        rolls back alone and its quarantine row joins the group. If that transaction
        itself fails (a concurrent taker's unique key, a deadlock between daemons) it
        rolls back whole and the items are taken one by one, each in its own transaction."""
        return self.take_prepared([self.prepared(raw, ref) for raw, ref in items])  # prepared before the write lock

    def take_prepared(self, prepared: list[Case]) -> list[Result]:
        """A group whose items are prepared already (`prepared`), in one transaction as above."""
        if len(prepared) <= 1:
            return [self._take_one(case) for case in prepared]
        cases = prepared
        try:
            taken = None
            if not any(case.unready for case in cases):
                taken = self._group_at_once(cases)
                if taken is None:  # rolled back: again, with no state of the failed try
                    cases = [case.again() for case in prepared]
            if taken is None:  # an item fails: each in its own savepoint, the others commit
                taken = []
                with transaction(self.ctx.sessions) as session:
                    for case in cases:
                        started = time.perf_counter()
                        taken.append((case.ref, self._take_in(session, case), time.perf_counter() - started))
        except (IntegrityError, OperationalError) as exc:
            log.info("batch of %d rolled back (%s); taking the items one by one", len(prepared), type(exc.orig).__name__)
            return [self._take_one(case.again()) for case in prepared]
        self.ctx.wake_outbox.set()
        for ref, result, elapsed in taken:
            self._record(ref, result, elapsed)
        return [result for _, result, _ in taken]

    def _group_at_once(self, cases: list[Case]) -> list[tuple[SourceRef, Result, float]] | None:
        """The usual group, where every item parsed: all in the one transaction without
        a savepoint each (two statements and the ORM's bookkeeping an item). If any item
        fails, the whole group rolls back and None says to take it again item by item."""
        taken = []
        try:
            with transaction(self.ctx.sessions) as session:
                earlier = _taken_before(session, [case.ref for case in cases])  # one lookup for the group
                if not any(case.channel == "form" for case in cases):
                    look_up_group(session, cases, self.ctx)  # and the stages' lookups, once for the group
                for case in cases:
                    started = time.perf_counter()
                    taken.append((case.ref, self._stages(session, case, None, earlier), time.perf_counter() - started))
        except (IntegrityError, OperationalError):
            raise  # the batch's business, as with savepoints: the items one by one
        except Exception as exc:
            log.info("group of %d rolled back (%s: %s); taking it again with a savepoint an item", len(cases), type(exc).__name__, exc)
            return None
        return taken

    def prepared(self, raw: bytes, ref: SourceRef) -> Case:
        """The item parsed and classified (stages.prepare): the work done before the write lock."""
        case = Case(raw=raw, ref=ref)
        prepare(case, self.ctx)
        return case

    def _take_in(self, session: Session, case: Case) -> Result:
        """One item of a batch, in a savepoint of the batch's transaction."""
        raw, ref = case.raw, case.ref
        write_rows(session)  # nothing of an earlier item may wait inside this item's savepoint
        try:
            with session.begin_nested():
                result = self._stages(session, case, None)
                write_rows(session)  # inside the savepoint: a later item's failure drops only its own rows
                return result
        except Quarantine as q:
            reason = q.reason
        except (IntegrityError, OperationalError):
            raise  # the batch's business: roll it back, take the items one by one
        except Exception as exc:
            log.exception("failed on %s %s", ref.source, ref.key)
            reason = f"internal error: {type(exc).__name__}: {exc}\n{traceback.format_exc(limit=4)}"
        # Rows written as plain inserts (intake.store.fastsql.insert_new) are unknown to the
        # savepoint's rollback, and so are the values update_row gave the objects: forget
        # every object, so none of the item's stays. The earlier items' rows and changes
        # were written before their savepoints were released.
        session.expunge_all()
        drop_rows(session)
        with session.begin_nested():
            return self._quarantine_in(session, raw, ref, reason, None)

    def _record(self, ref: SourceRef, result: Result, elapsed: float) -> None:
        if self._record_take is not None:
            self._record_take(ref.source, ref.channel, result.outcome, elapsed)
        log.info(
            "%s %s %s → %s%s (%.0f ms)",
            ref.channel,
            ref.source,
            ref.key,
            result.outcome,
            f" {result.ticket}" if result.ticket else "",
            elapsed * 1000,
        )

    def _run(self, case: Case, quarantine_id: int | None) -> Result:
        try:
            with transaction(self.ctx.sessions) as session:
                return self._stages(session, case, quarantine_id)
        except Quarantine as q:  # rolled back: nothing of the item stays but its quarantine row
            return self._quarantine(case.raw, case.ref, q.reason, quarantine_id)

    def _stages(self, session: Session, case: Case, quarantine_id: int | None, earlier: dict | None = None) -> Result:
        """The item's work inside the caller's transaction (or savepoint). `earlier`: the
        group's refs already taken (_taken_before), kept up to date here, instead of a
        lookup an item."""
        ref = case.ref
        if earlier is None:
            prior = _PRIOR_TAKE.first(session, {"source": ref.source, "key": ref.key})
        else:
            prior = earlier.get((ref.source, ref.key))
        if prior is not None:
            return Result("duplicate", prior.ticket_ref, f"already taken from {ref.source} as {prior.outcome}")
        try:
            for stage in PIPELINE:
                stage(case, session, self.ctx)
            result = Result("opened" if case.opened else "appended", case.ticket.ref, "reopened" if case.reopened else None)
        except Stop as stop:
            result = Result(stop.outcome, stop.ticket, stop.reason)
        add_row(
            session,
            _SOURCE_ITEMS,
            {
                "source": ref.source,
                "key": ref.key,
                "outcome": result.outcome,
                "ticket_ref": result.ticket,
                "reason": result.reason,
                "at": self.ctx.now(),
            },
        )
        if earlier is not None:  # the same ref again later in the group is a duplicate of this one
            earlier[(ref.source, ref.key)] = _Taken(result.outcome, result.ticket, result.reason)
        if quarantine_id is not None:
            _release(session, quarantine_id, result.ticket, self.ctx)
        return result

    def quarantine(self, raw: bytes, ref: SourceRef, reason: str) -> Result:
        """Hold an item that cannot be taken, with its bytes and the reason."""
        return self._quarantine(raw, ref, reason, None)

    def _quarantine(self, raw: bytes, ref: SourceRef, reason: str, quarantine_id: int | None) -> Result:
        with transaction(self.ctx.sessions) as session:
            return self._quarantine_in(session, raw, ref, reason, quarantine_id)

    def _quarantine_in(self, session: Session, raw: bytes, ref: SourceRef, reason: str, quarantine_id: int | None) -> Result:
        now = self.ctx.now()
        if quarantine_id is not None:
            item = session.get(QuarantineItem, quarantine_id)
            assert item is not None, "a retry: retry_quarantined found the item held"
            update_row(session, item, reason=reason, retried_at=now, retries=item.retries + 1)
        else:
            prior = _PRIOR_TAKE.first(session, {"source": ref.source, "key": ref.key})
            if prior is not None:  # quarantined before, offered again after a crash
                return Result(prior.outcome, prior.ticket_ref, prior.reason)
            item = insert_new(session, QuarantineItem(source=ref.source, key=ref.key, channel=ref.channel, raw=raw, reason=reason, created_at=now))
            add_row(
                session,
                _SOURCE_ITEMS,
                {"source": ref.source, "key": ref.key, "outcome": "quarantined", "ticket_ref": None, "reason": reason, "at": now},
            )
        log.warning("quarantined %s %s as #%s: %s", ref.source, ref.key, item.id, reason.splitlines()[0])
        return Result("quarantined", None, f"#{item.id}: {reason.splitlines()[0]}")

    def report(self, source: str, *, backlog: int | None = None, error: str | None = None) -> None:
        with transaction(self.ctx.sessions) as session:
            state = session.get(SourceState, source) or SourceState(source=source, errors=0)
            now = self.ctx.now()
            if error is None:
                state.last_success_at, state.backlog = now, backlog
            else:
                state.last_error, state.last_error_at, state.errors = error[:2000], now, (state.errors or 0) + 1
            session.merge(state)

    def retry_quarantined(self, item_id: int | None = None) -> list[tuple[int, Result]]:
        """Process held items again (after a fix); each keeps its id and history."""
        with self.ctx.sessions() as session:
            query = select(QuarantineItem.id).where(QuarantineItem.status == "held").order_by(QuarantineItem.id)
            if item_id is not None:
                query = select(QuarantineItem.id).where(QuarantineItem.id == item_id)
            ids = list(session.scalars(query))
        results = []
        for qid in ids:
            with self.ctx.sessions() as session:
                item = session.get(QuarantineItem, qid)
                if item is None or item.status != "held":
                    raise LookupError(f"no held quarantine item #{qid}")
                raw, ref = item.raw, SourceRef(f"quarantine:{item.source}", f"{item.id}/{item.retries + 1}", item.channel)
            results.append((qid, self.take(raw, ref, quarantine_id=qid)))
        return results


def _release(session: Session, quarantine_id: int, ticket_ref: str | None, ctx: Context) -> None:
    item = session.get(QuarantineItem, quarantine_id)
    assert item is not None, "a retry: retry_quarantined found the item held"
    update_row(session, item, status="released", ticket_ref=ticket_ref, retried_at=ctx.now(), retries=item.retries + 1)
