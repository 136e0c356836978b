"""SQS → email the donation receipt through SendGrid, once per donation."""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.batch import process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from donations.consumer import StepConsumer, sqs_batch_processor
from donations.models import Step
from donations.observability import logger, metrics, tracer
from donations.settings import get_settings
from donations.steps import send_receipt
from donations.wiring import Wiring

processor = sqs_batch_processor()


@cache
def consumer() -> StepConsumer:
    wiring = Wiring(get_settings())
    return StepConsumer(
        Step.SEND_RECEIPT,
        lambda message: send_receipt(
            message, store=wiring.store, mailer=wiring.mailer, lease_seconds=wiring.settings.receipt_claim_seconds
        ),
        store=wiring.store,
        sqs_client=wiring.sqs,
        settings=wiring.settings,
        dlq_url=wiring.settings.receipt_dlq_url,
    )


@tracer.capture_method
def record_handler(record: SQSRecord) -> None:
    consumer().handle(record)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
