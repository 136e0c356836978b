"""The notifier's decisions (donations.notify), in memory: what to drop, what a page says, a page without counts."""

from __future__ import annotations

import json
from typing import Any

import pytest

from donations.notify import Notifier, compose, describe, is_startup, step_of_alarm
from donations.settings import NotifierSettings

pytestmark = pytest.mark.unit

SETTINGS = NotifierSettings(
    donations_table="t",
    operator_topic_arn="arn:aws:sns:us-east-1:1:operators",
    alarm_name_prefix="prod-",
    tokenize_queue_url="q/t",
    receipt_queue_url="q/r",
    tokenize_dlq_url="q/td",
    receipt_dlq_url="q/rd",
    runbook_url="https://example.org/RUNBOOK.md",
)
ALARM = {
    "AlarmName": "prod-receipt-dlq-not-empty",
    "AlarmDescription": "Receipts are parked in the receipt DLQ. First: donations-ops --stack-name prod dlq list "
    "receipt | Runbook: RUNBOOK.md#receipt-dlq-not-empty",
    "OldStateValue": "OK",
    "NewStateValue": "ALARM",
    "NewStateReason": "Threshold Crossed",
    "StateChangeTime": "2026-11-30T03:00:00.000+0000",
}


class Sns:
    def __init__(self) -> None:
        self.published: list[dict[str, Any]] = []

    def publish(self, **arguments: Any) -> None:
        self.published.append(arguments)


class Broken:
    """DynamoDB or SQS unreachable."""

    def __getattr__(self, name: str) -> Any:
        raise ConnectionError("unreachable")


def test_only_the_start_up_change_is_dropped():
    assert is_startup({**ALARM, "OldStateValue": "INSUFFICIENT_DATA", "NewStateValue": "OK"})
    assert not is_startup({**ALARM, "OldStateValue": "ALARM", "NewStateValue": "OK"})  # a clearing is news
    assert not is_startup({**ALARM, "OldStateValue": "INSUFFICIENT_DATA", "NewStateValue": "ALARM"})


def test_the_description_gives_the_cause_the_first_command_and_the_runbook_section():
    cause, first, section = describe(ALARM, "prod-")
    assert (cause, first, section) == (
        "Receipts are parked in the receipt DLQ.",
        "donations-ops --stack-name prod dlq list receipt",
        "receipt-dlq-not-empty",
    )
    assert step_of_alarm(section).value == "send_receipt"
    assert step_of_alarm("charge-errors") is None


def test_a_page_goes_out_even_when_the_counts_cannot_be_read():
    sns = Sns()
    notifier = Notifier(SETTINGS, sns=sns, sqs=Broken(), table=Broken())

    sent = notifier.relay(ALARM)

    assert sent is not None and "(Counts unavailable: ConnectionError)" in sent.text
    assert "Runbook: https://example.org/RUNBOOK.md#receipt-dlq-not-empty" in sent.text
    [published] = sns.published
    assert published["TopicArn"] == SETTINGS.operator_topic_arn and published["MessageStructure"] == "json"
    message = json.loads(published["Message"])
    assert (
        message["default"] == sent.text and json.loads(message["sqs"])["Notifier"]["section"] == "receipt-dlq-not-empty"
    )


def test_subjects_fit_sns_limits():
    long = {**ALARM, "AlarmDescription": "Überlastung " * 30, "AlarmName": "prod-charge-errors"}
    subject = compose(long, None, SETTINGS).subject
    assert len(subject) <= 100 and subject.isascii() and "\n" not in subject
