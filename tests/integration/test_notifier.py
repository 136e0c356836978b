"""The notifier between the alarms and the operators: alarm topic → notifier function → operator topic,
as deployed from template.yaml (in moto), with the template's real alarms."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from donations.models import Step
from simulator.local.alarms import Transition, notification
from tests.support.keys import a_key
from tests.support.world import DONATION

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def operator_inbox(pipeline: Any) -> str:
    """An SQS queue subscribed to the operator topic: what operators' integrations receive."""
    sqs, sns = pipeline.clients("sqs"), pipeline.clients("sns")
    url = sqs.create_queue(QueueName="donations-test-operator-inbox-notifier")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    topic = pipeline.stack.topics["OperatorTopic"]
    # Once: other modules take this inbox too (SNS returns the same subscription for the same endpoint; moto
    # adds another, and each page would then arrive twice).
    subscribed = sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
    if not any(subscription["Endpoint"] == arn for subscription in subscribed):
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
    return str(url)


def received(pipeline: Any, inbox: str) -> list[dict[str, Any]]:
    """(subject, the machine-readable document) of each notification the operators got, oldest first."""
    sqs, found = pipeline.clients("sqs"), []
    for _ in range(10):
        batch = sqs.receive_message(QueueUrl=inbox, MaxNumberOfMessages=10).get("Messages", [])
        if not batch:
            break
        for message in batch:
            envelope = json.loads(message["Body"])
            found.append({"subject": envelope.get("Subject"), **json.loads(envelope["Message"])})
            sqs.delete_message(QueueUrl=inbox, ReceiptHandle=message["ReceiptHandle"])
    return found


def alarm_changes(pipeline: Any, logical_id: str, old: str, new: str) -> None:
    """CloudWatch publishing one state change of a template alarm to its AlarmActions/OKActions topic."""
    cloudwatch, sns = pipeline.clients("cloudwatch"), pipeline.clients("sns")
    [alarm] = cloudwatch.describe_alarms(AlarmNames=[pipeline.stack.alarms[logical_id]])["MetricAlarms"]
    message = notification(
        alarm, Transition(alarm["AlarmName"], old, new, "Threshold Crossed"), datetime.now(UTC), "us-east-1"
    )
    actions = alarm["AlarmActions"] if new == "ALARM" else alarm["OKActions"]
    for topic in actions:
        sns.publish(TopicArn=topic, Subject=f"{new}: {alarm['AlarmName']}", Message=json.dumps(message))


def test_start_up_oks_notify_nobody_and_a_failing_step_is_named_with_its_counts(world, pipeline, operator_inbox):
    received(pipeline, operator_inbox)
    # Given two receipts retrying through a SendGrid outage (nothing parked yet)
    ids = [
        world.post({**DONATION, "save_card": False}, key=a_key(f"key-notify-{n}")).body["donation_id"] for n in range(2)
    ]
    world.sendgrid.faults.add("http_error", status=503)
    world.deliver("receipt")

    # When every alarm starts (INSUFFICIENT_DATA -> OK), then the receipt step's alarm fires
    for logical_id in pipeline.stack.alarms:
        alarm_changes(pipeline, logical_id, "INSUFFICIENT_DATA", "OK")
    alarm_changes(pipeline, "ReceiptStepFailingAlarm", "OK", "ALARM")
    results = pipeline.deliver_sns()

    # Then the start-up changes reached nobody, and the one page says which step, how many and where to read
    relayed = [lid for lid in pipeline.stack.alarms if not lid.startswith("Notifier")]  # those notify directly
    assert sum(1 for r in results if r == {"relayed": 0, "dropped": 1}) == len(relayed)
    # (pages another test's alarm left in the shared stack's topic are not this test's to count)
    pages = received(pipeline, operator_inbox)
    assert not [p["subject"] for p in pages if not p["subject"].startswith("ALARM: ")]
    [page] = [p for p in pages if p["AlarmName"] == pipeline.stack.alarms["ReceiptStepFailingAlarm"]]
    assert page["subject"] == "ALARM: receipt-step-failing: 2 retrying, 0 parked, DLQ 0"
    notifier = page["Notifier"]
    assert (notifier["section"], notifier["runbook"]) == ("receipt-step-failing", "RUNBOOK.md#receipt-step-failing")
    assert notifier["first_command"] == "donations-ops --stack-name donations-test dlq list receipt"
    context = notifier["context"]
    assert (context["step"], context["donations_retrying"], context["donations_parked"]) == ("send_receipt", 2, 0)
    assert (context["dlq_messages"], context["queue_messages"]) == (0, 2)
    assert context["top_reasons"] == [["send_receipt:sendgrid:http_503", 2]]
    assert page["AlarmName"] == pipeline.stack.alarms["ReceiptStepFailingAlarm"]  # CloudWatch's fields stay
    assert all(world.record(d).attention_step is Step.SEND_RECEIPT for d in ids)


def test_a_parked_poison_message_is_paged_with_its_reason_and_the_clearing_too(world, pipeline, operator_inbox):
    received(pipeline, operator_inbox)
    world.sendgrid.reject_recipient("blocked.example")
    world.post({**DONATION, "email": "x@blocked.example"}, key=a_key("key-notify-poison"))
    world.drain()

    alarm_changes(pipeline, "ReceiptDLQAlarm", "OK", "ALARM")
    alarm_changes(pipeline, "ReceiptDLQAlarm", "ALARM", "OK")
    pipeline.deliver_sns()

    fired, cleared = received(pipeline, operator_inbox)
    assert fired["subject"] == "ALARM: receipt-dlq-not-empty: 0 retrying, 1 parked, DLQ 1"
    context = fired["Notifier"]["context"]
    assert context["parked_permanent"] == 1
    assert context["top_reasons"][0][0].startswith("send_receipt:sendgrid:http_400")
    assert "blocked.example" not in json.dumps(fired)
    assert cleared["subject"].startswith("OK: receipt-dlq-not-empty: cleared; ")


def test_growth_is_noticed_once_per_window_and_not_right_after_the_page(world, pipeline, operator_inbox):
    received(pipeline, operator_inbox)
    notifier = pipeline.handler("NotifierFunction").notifier()
    now = datetime.now(UTC)
    world.sendgrid.faults.add("http_error", status=503)
    first = world.post({**DONATION, "save_card": False}, key=a_key("key-growth-0")).body["donation_id"]
    world.deliver("receipt")

    # Trouble that began within the window was just paged by its alarm: no notice
    assert notifier.growth(now) == []
    # Once it is older than the window, new donations failing since are news
    world.wiring.store._table.update_item(
        Key={"donation_id": first},
        UpdateExpression="SET attention_since = :old",
        ExpressionAttributeValues={":old": (now - timedelta(hours=1)).isoformat().replace("+00:00", "Z")},
    )
    world.expire_backoffs()
    for n in range(1, 4):
        world.post({**DONATION, "save_card": False}, key=a_key(f"key-growth-{n}"))
    world.deliver("receipt")

    [notice] = notifier.growth(now + timedelta(seconds=1))
    assert notice.subject.startswith("GROWING: receipt-step-failing: +3 in 15 min; 4 retrying")
    assert "3 more donation(s) in trouble in the last 15 minutes" in notice.text
    [sent] = received(pipeline, operator_inbox)
    assert sent["Notifier"]["kind"] == "growth" and sent["Notifier"]["new_in_window"] == 3
