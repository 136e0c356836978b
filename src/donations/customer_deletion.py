"""The tokenize function's side of an erased donor's Stripe Customer (donations.customer_erasure): delete it
at Stripe, then stamp ``customer_deleted_at`` on the donations naming it."""

from __future__ import annotations

from typing import Any, Protocol

from aws_lambda_powertools.utilities.parser.models import SqsRecordModel
from boto3.dynamodb.conditions import Attr
from botocore.exceptions import ClientError
from pydantic import Json

from donations.conditional import condition_failed
from donations.customer_erasure import DELETE_CUSTOMER_TYPE, CustomerDeletion
from donations.models import utc_now
from donations.observability import logger
from donations.renewal_queue import MessageConsumer
from donations.settings import TokenizeSettings


class CustomerDeletionRecord(SqsRecordModel):
    body: Json[CustomerDeletion]


class CustomerDeleter(Protocol):
    def delete_customer(self, customer_id: str) -> bool:
        """Delete it; False if Stripe has no such Customer (deleted already). Raises StepFailures."""
        ...


def delete_customer(message: CustomerDeletion, *, payments: CustomerDeleter, donations: Any) -> None:
    """Delete the Customer at Stripe, then stamp the donations naming it (``donations``: the boto3 Table)."""
    logger.thread_safe_append_keys(customer_id=message.customer_id)
    deleted_now = payments.delete_customer(message.customer_id)
    logger.info("Stripe Customer deleted" if deleted_now else "Stripe Customer was deleted already")
    stamp = utc_now()
    for donation_id in message.donation_ids:
        try:
            donations.update_item(
                Key={"donation_id": donation_id},
                UpdateExpression="SET customer_deleted_at = if_not_exists(customer_deleted_at, :now), "
                "updated_at = :now",
                ConditionExpression=Attr("customer_id").eq(message.customer_id),
                ExpressionAttributeValues={":now": stamp},
            )
        except ClientError as error:
            if not condition_failed(error):
                raise
            logger.warning("Donation does not name this Customer; not stamped", extra={"donation_id": donation_id})


def customer_deletion_consumer(
    payments: CustomerDeleter, donations: Any, *, sqs_client: Any, settings: TokenizeSettings
) -> MessageConsumer[CustomerDeletion]:
    """The tokenize queue's consumer of deletion messages: retried with backoff, parked in its DLQ."""
    return MessageConsumer(
        DELETE_CUSTOMER_TYPE,
        CustomerDeletionRecord,
        lambda message, _sqs_message_id: delete_customer(message, payments=payments, donations=donations),
        sqs_client=sqs_client,
        settings=settings,
        dlq_url=settings.tokenize_dlq_url,
    )
