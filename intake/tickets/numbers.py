"""Named counters: ticket references a day (t:261123) and customer numbers (customer).

A number is taken with one UPDATE ... RETURNING. Its row lock (PostgreSQL) or the write
lock (SQLite) holds until the transaction ends, so concurrent openers queue and numbers
have no gaps: a transaction rolled back takes its numbers back with it.

A group taken at once (intake/pipeline/stages.py look_up_group) opens up to one ticket an
item and makes a customer for each sender not known yet: two such UPDATEs an item, a
round trip each on PostgreSQL (11% of the pipeline worker's time, py-spy). So it takes
as many numbers as it may need in one statement at its start (`reserve`), draws them
item by item, and gives back before its commit what it did not use. Nobody else can
take one of these numbers meanwhile: the rows stay locked until the commit.

The reservation belongs to the outermost transaction. A number drawn inside a savepoint
that then rolled back would be neither used nor given back, a gap: so a savepoint may
not begin while numbers are reserved (the group taken at once has none; its items are
taken again one by one, in savepoints, only after its transaction rolled back).
"""

from __future__ import annotations

from sqlalchemy import bindparam, case, event, insert, select, update
from sqlalchemy.orm import Session, SessionTransaction

from intake.store.fastsql import Prepared
from intake.store.models import Counter

_COUNTERS = Counter.__table__
_TAKE = Prepared(update(_COUNTERS).where(_COUNTERS.c.name == bindparam("counter")).values(last=_COUNTERS.c.last + 1).returning(_COUNTERS.c.last))
# counter name -> [the next number reserved, the last number reserved], in session.info
# for as long as the outermost transaction lasts
_RESERVED = "reserved_numbers"


def next_number(session: Session, name: str) -> int:
    """The next value of a named counter: one reserved in this transaction, or taken in
    one statement. A race on a counter's first row surfaces as an IntegrityError and the
    pipeline runs again."""
    reserved = session.info.get(_RESERVED)
    if reserved is not None and name in reserved:
        drawn, last = reserved[name]
        if drawn <= last:
            reserved[name][0] = drawn + 1
            return drawn
    taken = _TAKE.scalar(session, {"counter": name})
    if taken is None:
        session.execute(insert(_COUNTERS), {"name": name, "last": 1})
        taken = 1
    return taken


def reserve(session: Session, wanted: dict[str, int]) -> None:
    """Take up to `wanted[name]` numbers of each counter in one statement, for
    next_number to draw from until the transaction commits (a counter without its row
    yet, the first ticket of a day, is left to next_number)."""
    wanted = {name: n for name, n in wanted.items() if n > 0}
    if not wanted:
        return
    reserved = session.info.setdefault(_RESERVED, {})
    for name, last in session.execute(_moved(wanted).returning(_COUNTERS.c.name, _COUNTERS.c.last)):
        reserved[name] = [last - wanted[name] + 1, last]


def _moved(amounts: dict[str, int]):
    """The UPDATE that adds `amounts[name]` to each counter (a negative amount gives back)."""
    return update(_COUNTERS).where(_COUNTERS.c.name.in_(_in_order(amounts))).values(last=_COUNTERS.c.last + case(amounts, value=_COUNTERS.c.name))


def _in_order(names):
    """The counters' rows locked in the order of their names, as next_number takes them
    one by one (customer before t:...): two transactions taking them in opposite orders
    would deadlock on them."""
    return select(_COUNTERS.c.name).where(_COUNTERS.c.name.in_(names)).order_by(_COUNTERS.c.name).with_for_update().scalar_subquery()


@event.listens_for(Session, "before_commit")
def _give_back_the_unused(session: Session) -> None:
    """What a transaction reserved and did not draw goes back before its commit, in one
    statement: its rows are still locked, so the counter is where the next number continues."""
    unused = {name: drawn - last - 1 for name, (drawn, last) in session.info.get(_RESERVED, {}).items() if drawn <= last}
    if unused:
        session.execute(_moved(unused))


@event.listens_for(Session, "after_transaction_create")
def _no_savepoint_while_reserved(session: Session, transaction: SessionTransaction) -> None:
    if transaction.nested and session.info.get(_RESERVED):
        raise RuntimeError("a savepoint began while ticket and customer numbers were reserved: a number drawn in it could be lost")


@event.listens_for(Session, "after_transaction_end")
def _forget_at_the_end(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # committed (given back before) or rolled back (with the rest)
        session.info.pop(_RESERVED, None)
