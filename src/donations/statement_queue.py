"""The receipt queue carries two kinds of message: a donation's receipt and a donor's year-end statement.

Both are mail through the same SendGrid key and the same concurrency cap (the send-receipt function's
MaximumConcurrency, which keeps us within SendGrid's rate limits), so statements ride the receipt
queue, its redrive policy, DLQ and alarms rather than a function and queue of their own. A record is
routed by its body's ``type``; anything else goes to the receipt step, which parks what it cannot read.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.utilities.parser.models import SqsRecordModel
from pydantic import Json

from donations.conditional import ConditionFailed
from donations.consumer import StepConsumer
from donations.errors import PermanentStepFailure, RetryableStepFailure
from donations.identifiers import legacy_donor_key
from donations.models import Donation
from donations.observability import MetricUnit, logger, metrics
from donations.queue_routing import RoutedConsumer
from donations.renewal_queue import MessageConsumer
from donations.settings import SendReceiptSettings
from donations.statements import (
    SENT,
    STATEMENT_TYPE,
    StatementMailer,
    StatementMessage,
    StatementStore,
    statement_of,
    theirs,
)


class StatementRecord(SqsRecordModel):
    body: Json[StatementMessage]


def statement_consumer(
    store: StatementStore,
    current_mailer: Callable[[], StatementMailer],
    *,
    sqs_client: Any,
    settings: SendReceiptSettings,
) -> MessageConsumer[StatementMessage]:
    """``current_mailer`` is asked for each statement, as the receipt step asks for its mailer, so that a
    rotated SendGrid key (donations.secrets reads it again after its cache age) reaches statements too."""

    def send(message: StatementMessage, _sqs_message_id: str) -> None:
        send_statement(
            message,
            store=store,
            mailer=current_mailer(),
            time_zone=settings.receipt_time_zone,
            lease_seconds=settings.receipt_claim_seconds,
        )

    return MessageConsumer(
        "send_statement",
        StatementRecord,
        send,
        sqs_client=sqs_client,
        settings=settings,
        dlq_url=settings.receipt_dlq_url,
    )


class ReceiptQueueConsumer(RoutedConsumer):
    """Routes each record of the receipt queue to the receipt step or the statement sender."""

    def __init__(self, receipts: StepConsumer, statements: MessageConsumer[StatementMessage]) -> None:
        super().__init__(receipts, {STATEMENT_TYPE: statements})


def _donations(store: StatementStore, message: StatementMessage) -> list[Donation]:
    """The donor's donations: those the message names, if it names any, and still theirs (not erased since).
    Without ids: those the donor index finds under their key and under their address's legacy key."""
    if message.donation_ids is not None:
        return theirs(message.donor_key, store.donations(message.donation_ids))
    found = store.donations_of(message.donor_key)
    legacy = {legacy_donor_key(d.email) for d in found if d.email} - {message.donor_key}
    return theirs(message.donor_key, found + [d for key in sorted(legacy) for d in store.donations_of(key)])


def send_statement(
    message: StatementMessage,
    *,
    store: StatementStore,
    mailer: StatementMailer,
    time_zone: str,
    lease_seconds: int,
) -> bool:
    """Claim, send, mark: a duplicate message finds the statement claimed or sent and sends nothing.
    True if this call sent it."""
    logger.thread_safe_append_keys(statement_year=message.year, donor_key=message.donor_key)
    if not store.claim(message.donor_key, message.year, lease_seconds):
        marker = store.marker(message.donor_key, message.year)
        if marker is not None and marker.get("status") == SENT:
            metrics.add_metric(name="DuplicateDeliveries", unit=MetricUnit.Count, value=1)
            logger.info("Statement already sent; duplicate acknowledged")
            return False
        raise RetryableStepFailure("send_statement:claimed_by_another_consumer")
    try:
        statement = statement_of(message.donor_key, message.year, _donations(store, message), time_zone)
        message_id = mailer.send_statement(statement) if statement is not None else None
    except (RetryableStepFailure, PermanentStepFailure):
        store.release(message.donor_key, message.year)  # the retry (or a redrive) need not wait for the lease
        raise
    if statement is None or message_id is None:
        store.release(message.donor_key, message.year)
        logger.info("No gift left to state for this donor and year (refunded or erased); nothing sent")
        return False
    try:
        store.mark_sent(statement, message_id)
    except ConditionFailed:
        logger.warning("Statement sent after the claim expired", extra={"sendgrid_message_id": message_id})
        return True
    metrics.add_metric(name="StatementsSent", unit=MetricUnit.Count, value=1)
    logger.info("Statement sent", extra={"sendgrid_message_id": message_id, "gifts": len(statement.gifts)})
    return True
