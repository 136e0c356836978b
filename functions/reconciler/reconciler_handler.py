"""EventBridge schedule → finish donations left half-done by a crash or an outage (donations.reconcile)."""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from aws_lambda_powertools.utilities.typing import LambdaContext

from donations import deadline
from donations.observability import logger, metrics, tracer
from donations.reconcile import ReconcilePolicy, reconcile
from donations.settings import ReconcilerSettings
from donations.wiring import Wiring

# Stripe calls end this long before the function times out (donations.deadline), and no new
# donation is started within twice that: it would not have the time to finish. The next run continues.
RESERVE_MILLIS = 15_000


settings = ReconcilerSettings.from_env()  # during INIT: a missing variable fails here, naming it
policy = ReconcilePolicy.from_settings(settings)


@cache
def wiring() -> Wiring:
    return Wiring(settings)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, int]:
    deps = wiring()
    with deadline.budget(context, RESERVE_MILLIS / 1000):
        summary = reconcile(
            # The scheduled time, not the clock: a late or retried invocation judges ages as of its schedule.
            now=parse(event=event, model=EventBridgeModel).time,
            store=deps.store,
            payments=deps.payments,
            publisher=deps.publisher,
            policy=policy,
            out_of_time=lambda: context.get_remaining_time_in_millis() < 2 * RESERVE_MILLIS,
        )
    return summary.as_dict()
