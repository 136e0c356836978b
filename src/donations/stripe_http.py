"""Stripe's HTTP transport (the SDK's RequestsClient), kept inside the invocation's time budget.

Both bounds go through the SDK's documented extension points, nothing private: RequestsClient
accepts a ``session`` (requests' Session, whose ``request`` we bound per attempt), and every
HTTPClient's ``request_with_retries`` takes the number of retries (which we cap to what fits).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from itertools import count
from typing import Any

import requests
import stripe

from donations import deadline


class _BoundedSession(requests.Session):
    """Each request's timeout is cut to what is left of the invocation's budget (donations.deadline)."""

    def __init__(self, attempt_seconds: float) -> None:
        super().__init__()
        self._attempt_seconds = attempt_seconds

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        # OutOfTime is not a requests error: the SDK reports it as an APIConnectionError it does not retry.
        kwargs["timeout"] = deadline.attempt_timeout(self._attempt_seconds)
        return super().request(method, url, *args, **kwargs)


def _sdk_backoff() -> Iterator[float]:
    """The longest sleep stripe-python takes before retry 1, 2, ... (HTTPClient._sleep_time_seconds:
    exponential from INITIAL_DELAY, capped at MAX_DELAY, jitter only shortens it)."""
    for retry in count(1):
        delay = min(stripe.HTTPClient.INITIAL_DELAY * 2 ** (retry - 1), stripe.HTTPClient.MAX_DELAY)
        yield max(stripe.HTTPClient.INITIAL_DELAY, delay)


class BudgetedRequestsClient(stripe.RequestsClient):
    """stripe.RequestsClient whose attempts and retries end before the invocation's deadline."""

    def __init__(self, attempt_seconds: float) -> None:
        self._bounded_session = _BoundedSession(attempt_seconds)
        super().__init__(timeout=attempt_seconds, session=self._bounded_session)

    def close(self) -> None:
        # The SDK's close() only closes the session of the thread calling it, and only once that thread
        # made a request; ours is one session for every thread. It stays usable: requests opens new pools.
        self._bounded_session.close()

    def request_with_retries(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        post_data: Any = None,
        max_network_retries: int | None = None,
        *,
        _usage: list[str] | None = None,
    ) -> tuple[str, int, Mapping[str, str]]:
        retries = deadline.retries_that_fit(max_network_retries or 0, _sdk_backoff())
        return super().request_with_retries(method, url, headers, post_data, retries, _usage=_usage)
