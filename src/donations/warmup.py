"""The warm-up (POST /warmup): the donation form wakes the charge function while the donor types.

The first donor after a quiet hour lands on a cold execution environment: INIT, then a donation
that also fetches the Stripe key from Parameter Store and opens the first connection to each
service. A form that sends one warm-up when the donor starts filling it in (docs/warm-up.md) moves
all of that into the seconds the donor spends typing: API Gateway invokes the function, Lambda runs
INIT, and the warm-up fetches the key and opens the connections the donation then reuses (HTTP
keep-alive: no new TCP and TLS handshake on the donor's path):

* Stripe: the key, then one read on the client the charge uses (StripePayments.open_connection);
* DynamoDB: a read of no donation (DonationStore.open_connection); three of the attack mode at once,
  one per call the card-testing checks make side by side (Wiring.connection_openers);
* SQS: one GetQueueAttributes (FollowUpPublisher.open_connection).

It writes nothing, charges nothing and reads no donor's data, so anyone may call it any number of
times; what bounds it is what bounds the API (the route's method throttle, WAF's per-address rule).
The connections are opened side by side, so the environment is free for the donation sooner, and a
failure is logged, never answered: the form does not wait for the warm-up or read its answer.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor

from donations.observability import logger

Opener = Callable[[], object]


def warm_up(openers: Mapping[str, Opener]) -> dict[str, float]:
    """Run every opener side by side; returns the milliseconds each that succeeded took."""
    started = {name: time.perf_counter() for name in openers}
    pending = {
        name: _openers.submit(contextvars.copy_context().run, _timed, opener, started[name])
        for name, opener in openers.items()
    }
    took: dict[str, float] = {}
    failed: list[str] = []
    for name, future in pending.items():
        try:
            took[name] = future.result()
        except Exception:
            failed.append(name)
            logger.warning("Warm-up: connection not opened", extra={"connection": name}, exc_info=True)
    logger.info("Warmed up", extra={"took_ms": {name: round(ms, 1) for name, ms in took.items()}, "failed": failed})
    return took


def _timed(opener: Opener, started: float) -> float:
    opener()
    return (time.perf_counter() - started) * 1000


# One worker per connection the charge function opens (Stripe, SQS, DynamoDB: one for the donation, three
# for the card-testing checks), so they are opened side by side.
_openers = ThreadPoolExecutor(max_workers=6, thread_name_prefix="warm-up")
