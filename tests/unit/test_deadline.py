"""Time budgets (donations.deadline): provider calls end while the invocation can still answer."""

import itertools
from dataclasses import dataclass

import pytest

from donations import deadline

pytestmark = pytest.mark.unit


@dataclass
class Context:
    remaining_ms: int

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def test_outside_an_invocation_nothing_is_bounded():
    assert deadline.remaining() is None
    assert deadline.attempt_timeout(8.0) == 8.0
    assert deadline.retries_that_fit(2, itertools.repeat(0.5)) == 2


def test_an_attempt_gets_the_configured_timeout_or_what_is_left_before_the_reserve():
    with deadline.budget(Context(10_000), reserve_seconds=3):
        assert deadline.attempt_timeout(5.0) == 5.0
        assert 6.5 < deadline.attempt_timeout(8.0) <= 7.0
    assert deadline.remaining() is None  # the budget ends with its block


def test_no_attempt_starts_when_too_little_is_left():
    with deadline.budget(Context(3_200), reserve_seconds=3), pytest.raises(deadline.OutOfTime):
        deadline.attempt_timeout(8.0)


def test_retries_count_only_when_their_sleep_and_a_short_attempt_still_fit():
    # SDK sleeps before retries 1, 2, 3: 0.5, 1, 2 s; each attempt needs at least 0.5 s.
    def sleeps():
        return iter([0.5, 1.0, 2.0])

    with deadline.budget(Context(20_000), reserve_seconds=3):
        assert deadline.retries_that_fit(2, sleeps()) == 2
    with deadline.budget(Context(5_000), reserve_seconds=3):  # 2 s: 0.5 + (0.5 + 0.5) fits, + (1 + 0.5) does not
        assert deadline.retries_that_fit(2, sleeps()) == 1
    with deadline.budget(Context(4_000), reserve_seconds=3):
        assert deadline.retries_that_fit(2, sleeps()) == 0


def test_worker_threads_of_a_batch_see_the_deadline_through_a_copied_context():
    import contextvars
    from concurrent.futures import ThreadPoolExecutor

    with deadline.budget(Context(10_000), reserve_seconds=3), ThreadPoolExecutor(1) as pool:
        seen = pool.submit(contextvars.copy_context().run, deadline.remaining).result()
    assert seen is not None and 6.5 < seen <= 7.0
