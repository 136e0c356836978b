"""SNS (alarm state changes) and an EventBridge schedule (growth notices, dispute evidence reminders) →
operator notifications.

The work is donations.notify's; this only tells the two events apart.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel, SnsModel
from aws_lambda_powertools.utilities.typing import LambdaContext

from donations.notify import Notifier
from donations.observability import logger, metrics, tracer
from donations.settings import NotifierSettings
from donations.wiring import Wiring

settings = NotifierSettings.from_env()  # during INIT: a missing variable fails here, naming it


@cache
def wiring() -> Wiring:
    return Wiring(settings)


@cache
def notifier() -> Notifier:
    return Notifier(settings, sns=wiring().client("sns"), sqs=wiring().sqs, table=wiring().table)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, int]:
    if "Records" in event:  # SNS: one alarm state change per record (SNS sends one)
        records = parse(event=event, model=SnsModel).Records
        relayed = [notifier().relay(json.loads(str(record.Sns.Message))) for record in records]
        return {"relayed": sum(1 for n in relayed if n is not None), "dropped": sum(1 for n in relayed if n is None)}
    # The schedule: the run's scheduled time, not the clock (a late invocation judges the same window).
    scheduled = parse(event=event, model=EventBridgeModel).time
    growth = notifier().growth(scheduled)
    return {"growth_notices": len(growth), "evidence_reminders": len(notifier().evidence_reminders(scheduled))}
