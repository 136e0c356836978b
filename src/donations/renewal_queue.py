"""The renewal queue's consumer: parse, renew, retry with backoff, or park in the renewal DLQ.

Like the follow-up steps' consumer (donations.consumer), with the pledge and period as the message's
identity: a retryable failure comes back after a backoff and reaches the DLQ through the queue's
RedrivePolicy after its last receive; one that can never succeed is parked at once with its reason.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.parser.models import SqsRecordModel
from pydantic import Json, ValidationError

from donations.consumer import backoff_seconds, queue_url_from_arn
from donations.errors import classify
from donations.models import Donation
from donations.observability import MetricUnit, logger, metrics
from donations.pledges import RenewalMessage
from donations.settings import RenewSettings

Renew = Callable[[RenewalMessage, str], Donation | None]


class RenewalRecord(SqsRecordModel):
    body: Json[RenewalMessage]


class RenewalConsumer:
    def __init__(self, renew: Renew, *, sqs_client: Any, settings: RenewSettings) -> None:
        self._renew = renew
        self.sqs_client = sqs_client
        self.settings = settings

    def handle(self, record: SQSRecord) -> None:
        receive_count = int(record.attributes.approximate_receive_count or 1)
        logger.thread_safe_clear_keys()
        logger.thread_safe_append_keys(step="renew", message_id=record.message_id, receive_count=receive_count)
        try:
            message = parse(event=record.raw_event, model=RenewalRecord).body
        except (ValidationError, ValueError) as error:
            self._park(record, f"renew:malformed_message:{type(error).__name__}")
            return
        try:
            self._renew(message, record.message_id)
        except Exception as error:
            verdict = classify(error)
            if not verdict.retryable:
                self._park(record, verdict.reason)
                return
            self._retry_later(record, receive_count, verdict.reason)
            raise

    def _retry_later(self, record: SQSRecord, receive_count: int, reason: str) -> None:
        metrics.add_metric(name="StepRetries", unit=MetricUnit.Count, value=1)
        if receive_count >= self.settings.max_receive_count:
            logger.error("Renewal failed on its last attempt; moving to the DLQ", extra={"reason": reason})
            delay = 0  # the next receive moves it to the DLQ (redrive): now, not after the visibility timeout
        else:
            delay = backoff_seconds(
                receive_count, base=self.settings.backoff_base_seconds, cap=self.settings.backoff_cap_seconds
            )
            logger.warning("Renewal failed; retrying later", extra={"reason": reason, "retry_in_seconds": delay})
        self.sqs_client.change_message_visibility(
            QueueUrl=queue_url_from_arn(self.sqs_client, record.event_source_arn),
            ReceiptHandle=record.receipt_handle,
            VisibilityTimeout=delay,
        )

    def _park(self, record: SQSRecord, reason: str) -> None:
        logger.error("Renewal failed permanently; parked in the DLQ", extra={"reason": reason})
        metrics.add_metric(name="PermanentFailures", unit=MetricUnit.Count, value=1)
        original = record.raw_event.get("messageAttributes") or {}
        attributes = {
            # The source's own (type, pledge_id, period): operators see what was parked without its body.
            **{name: str(value["stringValue"]) for name, value in original.items() if value.get("stringValue")},
            "failure_reason": reason[:256],
            "failed_step": "renew",
            "parked_at": datetime.now(UTC).isoformat(),
        }
        typed = {name: {"DataType": "String", "StringValue": value} for name, value in attributes.items()}
        self.sqs_client.send_message(
            QueueUrl=self.settings.renewal_dlq_url, MessageBody=record.body, MessageAttributes=typed
        )
