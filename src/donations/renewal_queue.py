"""Consumers of messages keyed by something other than one donation: renewals, year-end statements.

Like the follow-up steps' consumer (donations.consumer), with the message's own identity (a pledge and
period, a donor and year): a retryable failure comes back after a backoff and reaches the DLQ through
the queue's RedrivePolicy after its last receive; one that can never succeed is parked at once with
its reason.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar, cast

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.parser.models import SqsRecordModel
from pydantic import BaseModel, Json, ValidationError

from donations.consumer import backoff_seconds, queue_url_from_arn
from donations.errors import classify
from donations.models import Donation
from donations.observability import MetricUnit, logger, metrics
from donations.pledges import RenewalMessage
from donations.settings import ConsumerSettings, RenewSettings

Message = TypeVar("Message", bound=BaseModel)
Renew = Callable[[RenewalMessage, str], Donation | None]


class RenewalRecord(SqsRecordModel):
    body: Json[RenewalMessage]


class MessageConsumer(Generic[Message]):
    """Parse a record as ``record_model``, run ``run(message, sqs_message_id)``; retry or park as above."""

    def __init__(
        self,
        step: str,
        record_model: type[SqsRecordModel],
        run: Callable[[Message, str], object],
        *,
        sqs_client: Any,
        settings: ConsumerSettings,
        dlq_url: str,
    ) -> None:
        self._step = step
        self._record_model = record_model
        self._run = run
        self.sqs_client = sqs_client
        self.settings = settings
        self._dlq_url = dlq_url

    def handle(self, record: SQSRecord) -> None:
        receive_count = int(record.attributes.approximate_receive_count or 1)
        logger.thread_safe_clear_keys()
        logger.thread_safe_append_keys(step=self._step, message_id=record.message_id, receive_count=receive_count)
        try:
            message = cast(Message, parse(event=record.raw_event, model=self._record_model).body)
        except (ValidationError, ValueError) as error:
            self._park(record, f"{self._step}:malformed_message:{type(error).__name__}")
            return
        try:
            self._run(message, record.message_id)
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
            logger.error("Failed on its last attempt; moving to the DLQ", extra={"reason": reason})
            delay = 0  # the next receive moves it to the DLQ (redrive): now, not after the visibility timeout
        else:
            delay = backoff_seconds(
                receive_count, base=self.settings.backoff_base_seconds, cap=self.settings.backoff_cap_seconds
            )
            logger.warning("Failed; retrying later", extra={"reason": reason, "retry_in_seconds": delay})
        self.sqs_client.change_message_visibility(
            QueueUrl=queue_url_from_arn(self.sqs_client, record.event_source_arn),
            ReceiptHandle=record.receipt_handle,
            VisibilityTimeout=delay,
        )

    def _park(self, record: SQSRecord, reason: str) -> None:
        logger.error("Failed permanently; parked in the DLQ", extra={"reason": reason})
        metrics.add_metric(name="PermanentFailures", unit=MetricUnit.Count, value=1)
        original = record.raw_event.get("messageAttributes") or {}
        attributes = {
            # The source's own (type, pledge_id, period): operators see what was parked without its body.
            **{name: str(value["stringValue"]) for name, value in original.items() if value.get("stringValue")},
            "failure_reason": reason[:256],
            "failed_step": self._step,
            "parked_at": datetime.now(UTC).isoformat(),
        }
        typed = {name: {"DataType": "String", "StringValue": value} for name, value in attributes.items()}
        self.sqs_client.send_message(QueueUrl=self._dlq_url, MessageBody=record.body, MessageAttributes=typed)


class RenewalConsumer(MessageConsumer[RenewalMessage]):
    def __init__(self, renew: Renew, *, sqs_client: Any, settings: RenewSettings) -> None:
        super().__init__(
            "renew", RenewalRecord, renew, sqs_client=sqs_client, settings=settings, dlq_url=settings.renewal_dlq_url
        )
