"""Follow-up messages: small, versioned, ids only; the consumers read the Donations table."""

from __future__ import annotations

import contextvars
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from donations.models import Donation, FollowUpMessage, Step
from donations.settings import Settings


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
    def __init__(self, sqs_client: Any, settings: Settings) -> None:
        self._sqs = sqs_client
        self._queue_urls = {Step.TOKENIZE: settings.tokenize_queue_url, Step.SEND_RECEIPT: settings.receipt_queue_url}

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

    def _send(self, message: FollowUpMessage) -> None:
        self._sqs.send_message(
            QueueUrl=self._queue_urls[message.type],
            MessageBody=message.model_dump_json(),
            MessageAttributes=message_attributes(message),
        )


# boto3 clients are thread-safe; two workers cover the most messages one donation publishes.
_senders = ThreadPoolExecutor(max_workers=2, thread_name_prefix="follow-up-send")
