"""One module per job: a run takes frozen settings and hooks (never the operator), does the work
and returns the report. Operators import their run lazily, inside ``execute``."""
