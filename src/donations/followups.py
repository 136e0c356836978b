"""The follow-ups of a charged donation (tokenize, send_receipt): published once, whoever gets there.

The charge, the Stripe webhook and the reconciler may all reach :func:`publish_follow_ups` for one
donation at the same time. A lease on the record (``followups_claim_until``, held for
``FOLLOWUPS_CLAIM_SECONDS``) lets one of them publish: taken with a conditional write
(``Store.claim_followups``), or by the charge in the very write that records the charge
(``Store.mark_charged(claim_followups_seconds=...)``). Published, the donation records
``followups_published`` and leaves the reconciler's index; a failed publish gives the lease back,
and a publisher that died keeps it until it runs out, after which the reconciler takes it.

The messages are small, versioned, ids only: the consumers read the Donations table.
:class:`FollowUpPublisher` is the SQS adapter of the ``Publisher`` port.
"""

from __future__ import annotations

import contextlib
import contextvars
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from donations.models import Donation, FollowUpMessage, Step
from donations.observability import MetricUnit, logger, metrics
from donations.ports import Publisher, Store
from donations.settings import FollowUpQueues

# Longer than one publish (two SendMessage and one UpdateItem, with the SDK's retries) can take;
# shorter than the reconciler's grace period, so a lease a dead publisher left has run out by then.
FOLLOWUPS_CLAIM_SECONDS = 60


def publish_follow_ups(
    donation: Donation,
    store: Store,
    publisher: Publisher,
    correlation_id: str,
    *,
    now: float | None = None,
    claimed: bool = False,
) -> bool:
    """Queue the background steps once the charge is recorded, once across every path that gets here.

    The charge, the Stripe webhook and the reconciler may reach this for one donation at the same
    time: a conditional claim on the record lets one of them publish (the others answer True, the
    messages are on their way). A failure here is logged, not raised: the donor has been charged
    and must hear so. The record keeps ``followups_published = false``, the claim is given back,
    and the reconciler publishes it later. ``now`` (unix seconds, default the clock) judges the
    claim's lease: the reconciler passes its run's scheduled time. ``claimed``: the caller already
    holds the claim (the charge takes it in the write that records the charge).
    """
    if donation.followups_published:
        return True
    published = False
    try:
        claimed = claimed or store.claim_followups(donation.donation_id, FOLLOWUPS_CLAIM_SECONDS, now)
        if not claimed:
            logger.info("Follow-ups already published or being published by another path")
            return True
        publisher.publish(donation, correlation_id)
        store.mark_followups_published(donation.donation_id)
        published = True
    except Exception:
        metrics.add_metric(name="FollowUpPublishFailures", unit=MetricUnit.Count, value=1)
        logger.exception("Follow-up messages not published; the reconciler will retry")
        return False
    finally:
        if claimed and not published:
            # Best effort: if this fails too, the lease runs out by itself.
            with contextlib.suppress(Exception):
                store.release_followups_claim(donation.donation_id)
    return True


# -- the messages and their SQS publisher ---------------------------------------------------------


def follow_up_messages(donation: Donation, correlation_id: str) -> list[FollowUpMessage]:
    steps = [Step.TOKENIZE] if donation.save_card else []
    steps.append(Step.SEND_RECEIPT)
    return [
        FollowUpMessage(type=step, donation_id=donation.donation_id, correlation_id=correlation_id) for step in steps
    ]


def message_attributes(message: FollowUpMessage) -> dict[str, dict[str, str]]:
    """Attributes let operators and tooling read a message's identity without parsing its body."""
    return {
        "type": {"DataType": "String", "StringValue": message.type.value},
        "schema_version": {"DataType": "Number", "StringValue": str(message.schema_version)},
        "donation_id": {"DataType": "String", "StringValue": message.donation_id},
        "correlation_id": {"DataType": "String", "StringValue": message.correlation_id or "-"},
    }


class FollowUpPublisher:
    def __init__(self, sqs_client: Any, queues: FollowUpQueues) -> None:
        self._sqs = sqs_client
        self._queue_urls = {Step.TOKENIZE: queues.tokenize_queue_url, Step.SEND_RECEIPT: queues.receipt_queue_url}

    def publish(self, donation: Donation, correlation_id: str) -> list[FollowUpMessage]:
        """Send the messages side by side (one queue each): the donor waits for the slowest, not the sum.

        Raises if any send failed; the caller then leaves the donation to the reconciler, which
        publishes them all again (the consumers take a duplicate in their stride).
        """
        messages = follow_up_messages(donation, correlation_id)
        if len(messages) == 1:
            self._send(messages[0])
            return messages
        # Each send runs in the caller's context (contextvars), so tracing and attribution follow it.
        for sent in [_senders.submit(contextvars.copy_context().run, self._send, message) for message in messages]:
            sent.result()
        return messages

    def publish_refund_notice(self, donation_id: str, correlation_id: str) -> FollowUpMessage:
        message = FollowUpMessage(
            type=Step.SEND_RECEIPT, donation_id=donation_id, correlation_id=correlation_id, mail="refund_notice"
        )
        self._send(message)
        return message

    def open_connection(self) -> None:
        """Open the connection the next donation's messages reuse (the warm-up, donations.warmup): one
        GetQueueAttributes, which reads the queue's ARN and sends nothing."""
        self._sqs.get_queue_attributes(QueueUrl=self._queue_urls[Step.SEND_RECEIPT], AttributeNames=["QueueArn"])

    def _send(self, message: FollowUpMessage) -> None:
        self._sqs.send_message(
            QueueUrl=self._queue_urls[message.type],
            MessageBody=message.model_dump_json(),
            MessageAttributes=message_attributes(message),
        )


# boto3 clients are thread-safe; two workers cover the most messages one donation publishes.
_senders = ThreadPoolExecutor(max_workers=2, thread_name_prefix="follow-up-send")
