"""A tally of the generated hostile requests, printed at the end of a run (see tests/conftest.py)."""

from __future__ import annotations

from collections import Counter

TALLY: Counter[str] = Counter()


def count(status: int) -> None:
    """Record one generated hostile request and whether its answer was a server error."""
    TALLY["requests"] += 1
    if status >= 500:
        TALLY["answers >= 500"] += 1
