"""EventBridge schedules -> one message per due pledge and period on the renewal queue (no table scan);
in January, the year-end statements run (its rule's constant input names it)."""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from aws_lambda_powertools.utilities.typing import LambdaContext

from donations.observability import logger, metrics, tracer
from donations.renewal_schedule import schedule_renewals
from donations.settings import ScheduleRenewalsSettings
from donations.statement_schedule import StatementsRunEvent, scheduled_statements
from donations.wiring import Wiring

settings = ScheduleRenewalsSettings.from_env()  # during INIT: a missing variable fails here, naming it


@cache
def wiring() -> Wiring:
    return Wiring(settings)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if StatementsRunEvent.names(event):
        run = StatementsRunEvent.model_validate(event)
        return scheduled_statements(run, wiring().statements, wiring().sqs, settings, context)
    # The day of the run as EventBridge scheduled it, not the clock: a late or retried run sends the same days.
    scheduled = parse(event=event, model=EventBridgeModel).time
    sent = schedule_renewals(wiring().pledges, wiring().sqs, settings.renewal_queue_url, scheduled)
    return {"renewals_scheduled": sent}
