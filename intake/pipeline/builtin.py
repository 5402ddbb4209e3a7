"""The stages every item runs, in order: the customer's (intake/pipeline/stages.py) and
the staff mail loop's (intake/staffmail/stages.py). `prepare` runs before them, outside
the transaction (parsing and classifying: the work that grows with the input)."""

from __future__ import annotations

from intake.pipeline.stages import acknowledge, classify, dedupe, ignore_autoreply, loop_check, parse, route, store, thread, to_archive
from intake.staffmail.stages import notify, schedule, staff_reply, survey_answer

PIPELINE = (
    parse,
    dedupe,
    loop_check,
    thread,
    staff_reply,
    ignore_autoreply,
    survey_answer,
    classify,
    route,
    store,
    schedule,
    acknowledge,
    notify,
    to_archive,
)
