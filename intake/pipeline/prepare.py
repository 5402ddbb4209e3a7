"""Before the transaction: bytes → parsed message and the rules' verdict. Pure: no
database, no session; what it needs of the context is the limits and the classifier.

This is the work whose cost grows with the input, so it runs before the item takes the
write turn, and with a backlog in the pipeline's worker processes (intake/pipeline/pool.py),
which import nothing of the database. What it learns travels back as a `Prepared`.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from typing import Any

from intake.pipeline.case import Case, Quarantine


@dataclass(frozen=True)
class Prepared:
    """What prepare learned of one item: plain, picklable data (no bytes: the caller has them)."""

    parsed: Any = None  # intake.inbound.message.ParsedMessage, or None when it could not be read
    form: dict | None = None
    unready: Quarantine | None = None  # why the item cannot be taken as it is
    classification: Any = None  # classify.Classification, or None (the classify stage tries again)

    def case(self, raw: bytes, ref) -> Case:
        """The item as the transaction's stages take it: parsed and classified already."""
        return Case(
            raw=raw,
            ref=ref,
            parsed=self.parsed,
            unready=self.unready,
            form=dict(self.form or {}),
            classification=self.classification,
            prepared=self.classification,
        )


def prepare(case: Case, ctx) -> None:
    """Parse and classify `case` in place. What parsing raises is kept on the case and
    raised again by the parse stage inside the transaction, and handled there as ever.
    Every parsed item is classified, since whether it opens a ticket is known only inside."""
    try:
        parse_bytes(case, ctx)
    except Exception as exc:
        case.unready = exc
        return
    try:
        case.classification = case.prepared = classified(case, ctx)
    except Exception:  # a bug: met again in the classify stage, if this item opens a ticket
        case.classification = None


def prepared(raw: bytes, ref, ctx) -> Prepared:
    """prepare as a worker process runs it: the outcome as data. A surprise in parsing
    (a bug, not a bad message) becomes the quarantine reason the transaction would have
    given it, since an arbitrary exception may not survive the trip between processes."""
    case = Case(raw=raw, ref=ref)
    prepare(case, ctx)
    unready = case.unready
    if unready is not None and not isinstance(unready, Quarantine):
        formatted = "".join(traceback.format_exception(unready, limit=4))
        unready = Quarantine(f"internal error: {type(unready).__name__}: {unready}\n{formatted}")
    return Prepared(case.parsed, case.form, unready, case.prepared)


def classified(case: Case, ctx):
    """Type, urgency and departments from the keyword rules: text in, verdict out."""
    return ctx.classifier().classify(case.parsed.subject, case.parsed.new_text)


def parse_bytes(case: Case, ctx) -> None:
    """Raw bytes → ParsedMessage (and a form's fields); what cannot be read at all is quarantined."""
    from intake.inbound.message import UnparseableMessage, parse_message

    limit = ctx.config.limits.max_message_bytes
    if len(case.raw) > limit:
        raise Quarantine(f"{len(case.raw)} bytes exceeds limits.max_message_bytes ({limit})")
    try:
        if case.channel == "form":
            from intake.inbound.form import parse_submission, submission_fields

            case.parsed = parse_submission(case.raw)
            case.form = submission_fields(case.raw)
        else:
            case.parsed = parse_message(case.raw, max_attachment_bytes=ctx.config.limits.max_attachment_bytes)
    except UnparseableMessage as exc:
        raise Quarantine(f"unparseable: {exc.reason}") from None
