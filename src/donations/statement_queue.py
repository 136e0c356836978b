"""The receipt queue carries two kinds of message: a donation's receipt and a donor's year-end statement.

Both are mail through the same SendGrid key and the same concurrency cap (the send-receipt function's
MaximumConcurrency, which keeps us within SendGrid's rate limits), so statements ride the receipt
queue, its redrive policy, DLQ and alarms rather than a function and queue of their own. A record is
routed by its body's ``type``; anything else goes to the receipt step, which parks what it cannot read.
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.parser.models import SqsRecordModel
from pydantic import Json

from donations.consumer import StepConsumer
from donations.renewal_queue import MessageConsumer
from donations.settings import SendReceiptSettings
from donations.statements import STATEMENT_TYPE, StatementMailer, StatementMessage, StatementStore, send_statement


class StatementRecord(SqsRecordModel):
    body: Json[StatementMessage]


def statement_consumer(
    store: StatementStore, mailer: StatementMailer, *, sqs_client: Any, settings: SendReceiptSettings
) -> MessageConsumer[StatementMessage]:
    def send(message: StatementMessage, _sqs_message_id: str) -> None:
        send_statement(
            message,
            store=store,
            mailer=mailer,
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


class ReceiptQueueConsumer:
    """Routes each record of the receipt queue to the receipt step or the statement sender."""

    def __init__(self, receipts: StepConsumer, statements: MessageConsumer[StatementMessage]) -> None:
        self.receipts = receipts
        self.statements = statements
        self.settings = receipts.settings
        self.sqs_client = receipts.sqs_client

    def handle(self, record: SQSRecord) -> None:
        if _is_statement(record.body):
            self.statements.handle(record)
        else:
            self.receipts.handle(record)


def _is_statement(body: str) -> bool:
    try:
        parsed = json.loads(body)
    except ValueError:
        return False
    return isinstance(parsed, dict) and parsed.get("type") == STATEMENT_TYPE
