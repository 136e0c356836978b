"""One queue, several kinds of message: each record routed by its body's ``type`` to the consumer of
that kind, anything else to the queue's own step (which parks what it cannot read).

The receipt queue carries statements besides receipts (donations.statement_queue); the tokenize queue
carries the deletion of an erased donor's Stripe Customer besides the cards to save
(donations.customer_erasure): the same function, key, concurrency cap, redrive policy, DLQ and alarms.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Protocol

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from donations.consumer import StepConsumer


class RecordHandler(Protocol):
    def handle(self, record: SQSRecord) -> None: ...


class RoutedConsumer:
    """Routes each record to the consumer its ``type`` names, else to the queue's step."""

    def __init__(self, step: StepConsumer, routes: Mapping[str, RecordHandler]) -> None:
        self.step = step
        self.routes = dict(routes)
        self.settings = step.settings
        self.sqs_client = step.sqs_client

    def handle(self, record: SQSRecord) -> None:
        self.routes.get(message_type(record.body), self.step).handle(record)


def message_type(body: str) -> str:
    """The body's ``type`` if it is a JSON object with one; else empty."""
    try:
        parsed: Any = json.loads(body)
    except ValueError:
        return ""
    kind = parsed.get("type") if isinstance(parsed, dict) else None
    return kind if isinstance(kind, str) else ""
