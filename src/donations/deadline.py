"""Time budgets: every provider call ends while the invocation can still answer.

Lambda stops a function at its Timeout. Stopped mid-request, the charge function gives the donor
API Gateway's 502 instead of our 503 with Retry-After, and a consumer reports nothing for its
batch. So each invocation sets a deadline, its remaining time minus a reserve for the writes
and the answer that follow (``budget``), and each provider call is bounded by what is left:
each attempt's timeout, and how many of the SDK's retries can still fit (``retries_that_fit``).
A call that cannot start in time fails at once as a retryable error (``OutOfTime``).

The deadline lives in a context variable, so the worker threads of a batch (which run in a copy
of the handler's context) see it too, and nothing outside an invocation (tests, tools) has one.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Protocol

# Below this, an attempt could not even complete a TLS handshake with a provider: do not start it.
MIN_ATTEMPT_SECONDS = 0.5

_deadline: ContextVar[float | None] = ContextVar("donations_deadline", default=None)


class OutOfTime(TimeoutError):
    """Not enough of the invocation is left to call a provider; the caller answers "retry later"."""


class RemainingTime(Protocol):
    def get_remaining_time_in_millis(self) -> int: ...


@contextmanager
def budget(context: RemainingTime, reserve_seconds: float) -> Iterator[None]:
    """Within this block, provider calls must end ``reserve_seconds`` before the invocation does."""
    ends = time.monotonic() + context.get_remaining_time_in_millis() / 1000 - reserve_seconds
    token = _deadline.set(ends)
    try:
        yield
    finally:
        _deadline.reset(token)


def remaining() -> float | None:
    """Seconds left before the deadline (negative once passed); None outside a budget."""
    ends = _deadline.get()
    return None if ends is None else ends - time.monotonic()


def attempt_timeout(configured: float) -> float:
    """The timeout for one provider attempt starting now: the configured one, or less if time is short.

    Raises OutOfTime when too little is left for an attempt to be worth starting.
    """
    left = remaining()
    if left is None:
        return configured
    if left < MIN_ATTEMPT_SECONDS:
        raise OutOfTime(f"{max(left, 0):.1f} s left in this invocation: too little to call a provider")
    return min(configured, left)


def retries_that_fit(max_retries: int, backoff: Iterator[float]) -> int:
    """How many of the SDK's retries can still start in time, each after its backoff sleep.

    ``backoff`` yields the longest sleep before retry 1, 2, ... (the SDK's own schedule). A retry
    counts if its sleep and an attempt of MIN_ATTEMPT_SECONDS fit after the earlier ones at that
    length: quick failures (a reset, a 500) are retried, and a slow attempt is cut by
    attempt_timeout, after which the next one finds no time and fails at once. The most a call can
    run past the deadline is therefore one backoff sleep, which the reserve must cover.
    """
    left = remaining()
    if left is None:
        return max_retries
    spent = MIN_ATTEMPT_SECONDS
    retries = 0
    while retries < max_retries:
        spent += next(backoff) + MIN_ATTEMPT_SECONDS
        if spent > left:
            break
        retries += 1
    return retries
