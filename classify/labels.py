"""The labels a case gets: its type and its urgency, in the order rules and reports list them."""

TYPES = ("inquiry", "complaint", "fault", "request", "suggestion")
URGENCIES = ("urgent", "important", "normal")
