"""Queue depths, age of the oldest message, and DLQ contents, read without consuming anything."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from donations.redaction import mask_email
from donations_ops.aws import Clients
from donations_ops.stack_resources import Queue, Stack

Message = dict[str, Any]

PEEK_VISIBILITY_SECONDS = 10
"""How long a peeked message stays hidden if we crash before handing it back (we reset it to 0 at once)."""
PEEK_LIMIT = 100
AGE_METRIC_WINDOW = timedelta(minutes=5)
_EMPTY_RECEIVES = 2
"""Short polling samples a subset of SQS servers: one empty answer does not prove the queue is empty."""
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")


def redact(text: str | None) -> str | None:
    """Mask anything shaped like an email: reasons are not supposed to hold one, but never print a donor's."""
    return _EMAIL.sub(lambda match: mask_email(match.group()), text) if text else text


# --------------------------------------------------------------------------- peeking


@contextmanager
def peeked(sqs: Any, queue_url: str, *, limit: int = PEEK_LIMIT) -> Iterator[list[Message]]:
    """Receive up to ``limit`` visible messages and hand them all back (visibility 0) on exit.

    Each look counts as a receive (ApproximateReceiveCount + 1): harmless on a DLQ, which has no
    RedrivePolicy, but on a source queue it brings a message closer to maxReceiveCount and hides
    it from the consumers for the moment of the look.
    """
    seen: dict[str, Message] = {}
    try:
        _receive_into(sqs, queue_url, seen, limit)
        yield list(seen.values())
    finally:
        release(sqs, queue_url, [m["ReceiptHandle"] for m in seen.values()])


def _receive_into(sqs: Any, queue_url: str, seen: dict[str, Message], limit: int) -> None:
    empty = 0
    for _ in range(limit // 10 + 1 + _EMPTY_RECEIVES):  # bounded whatever SQS answers
        if len(seen) >= limit or empty >= _EMPTY_RECEIVES:
            return
        batch = receive(sqs, queue_url, min(10, limit - len(seen)), PEEK_VISIBILITY_SECONDS)
        empty = 0 if batch else empty + 1
        for message in batch:
            seen.setdefault(message["MessageId"], message)


def receive(sqs: Any, queue_url: str, count: int, visibility_timeout: int) -> list[Message]:
    response = sqs.receive_message(
        QueueUrl=queue_url,
        MaxNumberOfMessages=count,
        VisibilityTimeout=visibility_timeout,
        WaitTimeSeconds=0,
        MessageSystemAttributeNames=["All"],
        MessageAttributeNames=["All"],
    )
    return list(response.get("Messages", []))


def release(sqs: Any, queue_url: str, receipt_handles: list[str]) -> None:
    """Make received messages visible again at once."""
    for start in range(0, len(receipt_handles), 10):
        chunk = receipt_handles[start : start + 10]
        entries = [{"Id": str(i), "ReceiptHandle": h, "VisibilityTimeout": 0} for i, h in enumerate(chunk)]
        # A failed entry (handle expired) is visible again anyway after the peek's short timeout.
        sqs.change_message_visibility_batch(QueueUrl=queue_url, Entries=entries)


# --------------------------------------------------------------------------- depths and age


@dataclass(frozen=True)
class QueueDepth:
    logical_id: str
    name: str
    role: str
    """"source" or "dlq"."""
    visible: int
    in_flight: int
    delayed: int
    oldest_age_seconds: float | None
    age_source: str
    """"cloudwatch", "peek", "peek (sample of N)", "empty" or why it is unknown."""
    dlq_of: str | None = None

    @property
    def total(self) -> int:
        return self.visible + self.in_flight + self.delayed


def queue_depths(clients: Clients, stack: Stack, *, peek_sources: bool = False) -> list[QueueDepth]:
    """Each source queue followed by its DLQ."""
    rows: list[QueueDepth] = []
    for source, dlq in stack.pairs():
        rows.append(queue_depth(clients, source, role="source", peek=peek_sources))
        if dlq is not None:
            rows.append(queue_depth(clients, dlq, role="dlq", peek=True, dlq_of=source.logical_id))
    return rows


def queue_depth(clients: Clients, queue: Queue, *, role: str, peek: bool, dlq_of: str | None = None) -> QueueDepth:
    sqs = clients("sqs")
    visible, in_flight, delayed = queue_counts(sqs, queue.url)
    if visible + in_flight + delayed == 0:
        # CloudWatch's Maximum over the last minutes still holds the age of messages gone since:
        # an empty queue has no oldest message (an age shown for it would be the age of a message already gone).
        return QueueDepth(queue.logical_id, queue.name, role, 0, 0, 0, None, "empty", dlq_of)
    age, source = oldest_age_from_cloudwatch(clients("cloudwatch"), queue.name), "cloudwatch"
    if age is None:
        age, source = _age_without_metric(sqs, queue, visible, peek)
    return QueueDepth(queue.logical_id, queue.name, role, visible, in_flight, delayed, age, source, dlq_of)


def queue_counts(sqs: Any, queue_url: str) -> tuple[int, int, int]:
    """(visible, in flight, delayed): SQS's approximate counts, read without receiving anything."""
    names = [
        "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesNotVisible",
        "ApproximateNumberOfMessagesDelayed",
    ]
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=names)["Attributes"]
    visible, in_flight, delayed = (int(attributes.get(name, 0)) for name in names)
    return visible, in_flight, delayed


def oldest_age_from_cloudwatch(cloudwatch: Any, queue_name: str, now: datetime | None = None) -> float | None:
    """SQS's ApproximateAgeOfOldestMessage, Maximum over the last 5 minutes; None when CloudWatch has none.

    SQS has no API for the age; only active queues report the metric, and moto reports none.
    """
    end = now or datetime.now(UTC)
    try:
        response = cloudwatch.get_metric_statistics(
            Namespace="AWS/SQS",
            MetricName="ApproximateAgeOfOldestMessage",
            Dimensions=[{"Name": "QueueName", "Value": queue_name}],
            StartTime=end - AGE_METRIC_WINDOW,
            # A minute ahead: the API truncates times to seconds, so "now" would drop a point from this second.
            EndTime=end + timedelta(minutes=1),
            Period=60,
            Statistics=["Maximum"],
        )
    except ClientError:
        return None  # no cloudwatch:GetMetricStatistics permission: fall back to peeking
    points = [float(p["Maximum"]) for p in response.get("Datapoints", []) if "Maximum" in p]
    return max(points) if points else None


def _age_without_metric(sqs: Any, queue: Queue, visible: int, peek: bool) -> tuple[float | None, str]:
    if visible == 0:
        return None, "empty"
    if not peek:
        return None, "no metric (--peek-sources)"
    with peeked(sqs, queue.url) as messages:
        sent = [_sent_at(m) for m in messages]
    ages = [(datetime.now(UTC) - at).total_seconds() for at in sent if at is not None]
    if not ages:
        return None, "no metric, none visible"
    # Only the messages we saw: with more in the queue the true oldest may be older.
    label = "peek" if len(messages) >= visible else f"peek (sample of {len(messages)})"
    return max(0.0, max(ages)), label


def _sent_at(message: Message) -> datetime | None:
    stamp = message.get("Attributes", {}).get("SentTimestamp")
    return datetime.fromtimestamp(int(stamp) / 1000, UTC) if stamp else None


# --------------------------------------------------------------------------- DLQ contents


@dataclass(frozen=True)
class DlqMessage:
    message_id: str
    donation_id: str | None
    type: str | None
    failed_step: str | None
    failure_reason: str | None
    reason_source: str | None
    """"message" (parked by a consumer with its reason), "record" (the Donations table), or None."""
    receive_count: int
    """Receives before this look (SQS counts the look itself as one more)."""
    sent_at: datetime | None
    parked_at: str | None
    correlation_id: str | None


def list_dlq(clients: Clients, stack: Stack, dlq: Queue, *, limit: int = PEEK_LIMIT) -> list[DlqMessage]:
    """The DLQ's visible messages with why each failed, left in the queue."""
    with peeked(clients("sqs"), dlq.url, limit=limit) as messages:
        described = [describe_message(m) for m in messages]
    table = stack.donations_table
    if table is not None:
        described = [_with_record_reason(clients("dynamodb"), table, m) for m in described]
    return sorted(described, key=lambda m: (m.sent_at or datetime.min.replace(tzinfo=UTC), m.message_id))


def string_attributes(message: Message) -> dict[str, str]:
    raw = message.get("MessageAttributes") or {}
    return {name: str(value["StringValue"]) for name, value in raw.items() if "StringValue" in value}


def describe_message(message: Message) -> DlqMessage:
    attributes = string_attributes(message)
    body = _json_body(message.get("Body", ""))
    reason = attributes.get("failure_reason")
    return DlqMessage(
        message_id=message["MessageId"],
        donation_id=attributes.get("donation_id") or _text(body.get("donation_id")),
        type=attributes.get("type") or _text(body.get("type")),
        failed_step=attributes.get("failed_step"),
        failure_reason=redact(reason),
        reason_source="message" if reason else None,
        receive_count=max(0, int(message.get("Attributes", {}).get("ApproximateReceiveCount", 1)) - 1),
        sent_at=_sent_at(message),
        parked_at=attributes.get("parked_at"),
        correlation_id=attributes.get("correlation_id"),
    )


def _json_body(body: str) -> dict[str, Any]:
    try:
        parsed = json.loads(body)
    except ValueError:
        return {}  # a malformed message is parked as it came
    return parsed if isinstance(parsed, dict) else {}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _with_record_reason(dynamodb: Any, table: str, message: DlqMessage) -> DlqMessage:
    """Messages SQS moved after maxReceiveCount carry no reason: the donation record has it."""
    if message.failure_reason or not message.donation_id:
        return message
    record = donation_failure(dynamodb, table, message.donation_id)
    if record is None:
        return message
    step, reason = record
    if not (step or reason):
        return message
    failed_step = message.failed_step or step
    return replace(message, failed_step=failed_step, failure_reason=redact(reason), reason_source="record")


def donation_failure(dynamodb: Any, table: str, donation_id: str) -> tuple[str | None, str | None] | None:
    """(failed_step, failure_reason) from the Donations table; only those two attributes are read (no email)."""
    item = dynamodb.get_item(
        TableName=table,
        Key={"donation_id": {"S": donation_id}},
        ProjectionExpression="#step, #reason",
        ExpressionAttributeNames={"#step": "failed_step", "#reason": "failure_reason"},
    ).get("Item")
    if item is None:
        return None
    return item.get("failed_step", {}).get("S"), item.get("failure_reason", {}).get("S")
