"""What every queue consumer does around its step: parse, correlate, retry with backoff, or park."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import random
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Protocol

from aws_lambda_powertools.utilities.batch import (
    AsyncBatchProcessor,
    EventType,
    async_process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.parser.models import SqsRecordModel
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import Json, ValidationError

from donations import deadline
from donations.errors import PermanentStepFailure, classify
from donations.models import FollowUpMessage, Step
from donations.observability import MetricUnit, logger, metrics, tracer
from donations.ports import ParkedMessage, Store
from donations.settings import ConsumerSettings
from donations.store import ConditionFailed

StepFunction = Callable[[FollowUpMessage], None]


class FollowUpRecord(SqsRecordModel):
    body: Json[FollowUpMessage]


def backoff_seconds(receive_count: int, *, base: int, cap: int, rng: random.Random | None = None) -> int:
    """Exponential backoff with jitter from the receive count, capped: an outage does not burn all receives.

    Jitter keeps a batch of failures from coming back as one burst; the floor is half the step.
    """
    ceiling = min(cap, base * 2 ** max(0, receive_count - 1))
    return int((rng or random).uniform(ceiling / 2, ceiling))


class StepConsumer:
    """Runs one step for each SQS record; failures are classified once, here."""

    def __init__(
        self,
        step: Step,
        run: StepFunction,
        *,
        store: Store,
        sqs_client: Any,
        settings: ConsumerSettings,
        dlq_url: str,
    ) -> None:
        self.step = step
        self._run = run
        self._store = store
        self.sqs_client = sqs_client
        self.settings = settings
        self._dlq_url = dlq_url

    def handle(self, record: SQSRecord) -> None:
        """One record, in a thread of its own (the batch's records run side by side): log keys are per thread."""
        receive_count = int(record.attributes.approximate_receive_count or 1)
        logger.thread_safe_clear_keys()  # the pool's threads are reused: no keys from an earlier record
        logger.thread_safe_append_keys(
            correlation_id=_string_attributes(record).get("correlation_id") or record.message_id,
            step=self.step.value,
            message_id=record.message_id,
            receive_count=receive_count,
        )
        try:
            message = parse(event=record.raw_event, model=FollowUpRecord).body
            if message.type is not self.step:
                raise PermanentStepFailure(f"{self.step.value}:wrong_queue:{message.type.value}")
        except (ValidationError, ValueError) as error:
            self._park(record, None, f"{self.step.value}:malformed_message:{type(error).__name__}")
            return
        except PermanentStepFailure as failure:
            self._park(record, None, failure.reason)
            return
        logger.thread_safe_append_keys(donation_id=message.donation_id)
        try:
            self._run(message)
        except Exception as error:
            verdict = classify(error)
            if not verdict.retryable:
                self._park(record, message.donation_id, verdict.reason)
                return
            self._retry_later(record, message.donation_id, receive_count, verdict.reason)
            raise

    def _retry_later(self, record: SQSRecord, donation_id: str, receive_count: int, reason: str) -> None:
        metrics.add_metric(name="StepRetries", unit=MetricUnit.Count, value=1)
        if receive_count >= self.settings.max_receive_count:
            # The next receive moves it to the DLQ (redrive); make that happen now rather than after
            # the queue's visibility timeout, and say so on the donation.
            logger.error("Step failed on its last attempt; moving to the DLQ", extra={"reason": reason})
            parked = _parked(record, record.body, _string_attributes(record), receive_count, permanent=False)
            self._record_failure(donation_id, f"{reason}:retries_exhausted", parked)
            self._change_visibility(record, 0)
            return
        delay = backoff_seconds(
            receive_count, base=self.settings.backoff_base_seconds, cap=self.settings.backoff_cap_seconds
        )
        logger.warning("Step failed; retrying later", extra={"reason": reason, "retry_in_seconds": delay})
        self._note_retry(donation_id, reason, receive_count)
        self._change_visibility(record, delay)

    def _note_retry(self, donation_id: str, reason: str, receive_count: int) -> None:
        """Operators see a step that keeps failing (and why) before anything reaches a DLQ."""
        if reason.endswith(_CONTENTION):
            return  # another consumer is sending it right now: nothing is wrong
        try:
            self._store.record_step_retry(donation_id, self.step, reason, receive_count)
        except ConditionFailed:
            logger.info("Step already done or donation missing; retry not recorded")

    def _change_visibility(self, record: SQSRecord, seconds: int) -> None:
        self.sqs_client.change_message_visibility(
            QueueUrl=queue_url_from_arn(self.sqs_client, record.event_source_arn),
            ReceiptHandle=record.receipt_handle,
            VisibilityTimeout=seconds,
        )

    def _park(self, record: SQSRecord, donation_id: str | None, reason: str) -> None:
        """Send a message that can never succeed to the DLQ at once, with its reason, and mark the donation."""
        logger.error("Step failed permanently; parked in the DLQ", extra={"reason": reason})
        metrics.add_metric(name="PermanentFailures", unit=MetricUnit.Count, value=1)
        attributes = {
            **_string_attributes(record),
            "failure_reason": reason[:256],
            "failed_step": self.step.value,
            "parked_at": datetime.now(UTC).isoformat(),
        }
        if donation_id:
            receive_count = int(record.attributes.approximate_receive_count or 1)
            self._record_failure(
                donation_id, reason, _parked(record, record.body, attributes, receive_count, permanent=True)
            )
        typed = {name: {"DataType": "String", "StringValue": value} for name, value in attributes.items()}
        self.sqs_client.send_message(QueueUrl=self._dlq_url, MessageBody=record.body, MessageAttributes=typed)

    def _record_failure(self, donation_id: str, reason: str, parked: ParkedMessage) -> None:
        try:
            self._store.record_step_failure(donation_id, self.step, reason, parked=parked)
        except ConditionFailed:
            logger.info("Step already done or donation missing; failure not recorded")


_CONTENTION = ":claimed_by_another_consumer"


def _parked(
    record: SQSRecord, body: str, attributes: dict[str, str], attempts: int, *, permanent: bool
) -> ParkedMessage:
    # The source message's id: a parked copy gets a new one, but operators find it by donation id.
    return ParkedMessage(record.message_id, body, attributes, attempts, permanent)


def _string_attributes(record: SQSRecord) -> dict[str, str]:
    raw = record.raw_event.get("messageAttributes") or {}
    return {name: str(value["stringValue"]) for name, value in raw.items() if value.get("stringValue") is not None}


@lru_cache(maxsize=8)
def _queue_url(sqs: Any, arn: str) -> str:
    _, _, _, _, account, name = arn.split(":")
    return str(sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"])


def queue_url_from_arn(sqs: Any, arn: str) -> str:
    return _queue_url(sqs, arn)


# Lambda's SQS event source sends at most 10 records per batch with our BatchSize (template.yaml).
MAX_RECORDS_AT_ONCE = 10
_record_workers = ThreadPoolExecutor(max_workers=MAX_RECORDS_AT_ONCE, thread_name_prefix="record")


def sqs_batch_processor() -> AsyncBatchProcessor:
    # Report every failed id even when all fail: raising would make Lambda count an error for an outage.
    return AsyncBatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


class RecordConsumer(Protocol):
    """What a queue's Lambda entry point runs for each record (StepConsumer; donations.renewal_queue)."""

    @property
    def settings(self) -> ConsumerSettings: ...

    def handle(self, record: SQSRecord) -> None: ...


def sqs_lambda_handler(consumer: Callable[[], RecordConsumer]) -> Callable[[dict[str, Any], LambdaContext], Any]:
    """The Lambda entry point of a queue consumer: Powertools' partial batch response around one step.

    The records of a batch are handled side by side (Powertools' async processor, each record in a
    worker thread): each one mostly waits on DynamoDB and a provider, so a batch takes about as
    long as its slowest record rather than the sum of all, which is what Lambda bills and what
    bounds how fast a backlog drains. Records are independent; two for the same donation are kept
    apart by the step's own conditional writes, as they are across concurrent invocations.
    ``consumer`` builds the step's consumer on first use (once per cold start, after the settings).
    """
    processor = sqs_batch_processor()

    @tracer.capture_method
    async def record_handler(record: SQSRecord) -> None:
        handle = functools.partial(contextvars.copy_context().run, consumer().handle, record)
        await asyncio.get_running_loop().run_in_executor(_record_workers, handle)

    @logger.inject_lambda_context(clear_state=True)
    @tracer.capture_lambda_handler
    @metrics.log_metrics
    def lambda_handler(event: dict[str, Any], context: LambdaContext) -> Any:
        settings = consumer().settings  # built here, once, before the records' threads start
        # Every record's provider calls end in time for its failure to be reported (donations.deadline).
        with deadline.budget(context, settings.deadline_reserve_seconds):
            return async_process_partial_response(
                event=event, record_handler=record_handler, processor=processor, context=context
            )

    return lambda_handler
