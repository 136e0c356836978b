"""SendGrid's documented errors, end to end through send_receipt: park what retrying cannot fix, alert
at once when our key is refused, back off from rate limits and outages."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from donations.models import Step, StepStatus
from donations_ops.parked import verdict
from simulator.local.alarms import AlarmEvaluator
from simulator.local.metrics import emf_metric_data, put_metric
from tests.support.keys import a_key
from tests.support.world import DONATION

pytestmark = pytest.mark.integration

MAIL_SEND = "POST /v3/mail/send"


def _donate(world: Any, key: str) -> str:
    answer = world.post({**DONATION, "save_card": False}, key=a_key(key))
    assert answer.status == 201, answer.body
    return str(answer.body["donation_id"])


def _parked_reason(world: Any, donation_id: str) -> str:
    [parked] = world.queued("receipt_dlq")
    assert json.loads(parked["Body"])["donation_id"] == donation_id
    return str(parked["MessageAttributes"]["failure_reason"]["StringValue"])


def _auth_failure_metrics(output: str) -> list[dict[str, Any]]:
    """The EMF documents carrying ProviderAuthFailures that the functions printed."""
    lines = [line for line in output.splitlines() if line.startswith("{") and '"ProviderAuthFailures"' in line]
    return [json.loads(line) for line in lines]


def test_an_unverified_sender_parks_the_receipt_after_one_attempt(world, capsys):
    # SendGrid: 403 "The from address does not match a verified Sender Identity" (field "from"). Nothing
    # but an operator verifying the sender can fix it, so it is not retried.
    world.sendgrid.unverify_sender(world.settings.receipt_from_email)
    donation_id = _donate(world, "key-unverified-sender")
    capsys.readouterr()

    receives = world.deliver_until_dead_lettered("receipt")

    assert receives == 1
    assert world.sendgrid.requests[MAIL_SEND] == 1
    assert world.visibility_changes("receipt") == []  # no backoff: parked at once
    assert _parked_reason(world, donation_id) == "send_receipt:sendgrid:sender_not_verified"
    record = world.record(donation_id)
    assert record.failed_step is Step.SEND_RECEIPT and record.receipt_status is StepStatus.FAILED
    assert record.failure_reason == "send_receipt:sendgrid:sender_not_verified"
    assert world.sendgrid.outbox_for(donation_id) == []
    assert _auth_failure_metrics(capsys.readouterr().out) == []  # the key is fine; the DLQ alarm covers it


@pytest.mark.parametrize(
    ("refuse", "reason"),
    [
        ("revoke_key", "send_receipt:sendgrid:unauthorized"),  # 401
        ("remove_mail_send_scope", "send_receipt:sendgrid:forbidden"),  # 403 access forbidden
    ],
)
def test_a_refused_api_key_parks_at_once_and_raises_the_alarm(world, capsys, refuse, reason):
    getattr(world.sendgrid, refuse)(world.pipeline.providers.sendgrid_api_key)
    donation_id = _donate(world, f"key-{refuse}")
    capsys.readouterr()

    receives = world.deliver_until_dead_lettered("receipt")

    assert receives == 1
    assert world.sendgrid.requests[MAIL_SEND] == 1
    assert world.visibility_changes("receipt") == []
    assert _parked_reason(world, donation_id) == reason
    assert world.record(donation_id).failure_reason == reason
    [document] = _auth_failure_metrics(capsys.readouterr().out)
    assert document["ProviderAuthFailures"] == [1.0]
    assert document["provider"] == "sendgrid"

    # What the stack does with that line: CloudWatch Logs extracts the metric (for the send_receipt
    # function's service) and the template's alarm on it is evaluated: it fires on the first refusal.
    cloudwatch = world.pipeline.clients("cloudwatch")
    for namespace, name, value, dimensions, unit in emf_metric_data(document, "send_receipt"):
        put_metric(cloudwatch, namespace, name, value, dimensions, unit)
    alarm_name = world.pipeline.stack.alarms["SendGridAuthFailureAlarm"]
    evaluator = AlarmEvaluator(cloudwatch, world.pipeline.clients("sns"), alarm_prefix=alarm_name)
    cloudwatch.set_alarm_state(AlarmName=alarm_name, StateValue="OK", StateReason="before the test")
    transitions = evaluator.evaluate(datetime.now(UTC))
    assert [(t.alarm_name, t.new_state) for t in transitions] == [(alarm_name, "ALARM")]
    cloudwatch.set_alarm_state(AlarmName=alarm_name, StateValue="OK", StateReason="test done")


def test_after_the_key_is_fixed_a_redrive_sends_the_parked_receipt(world):
    world.sendgrid.revoke_key(world.pipeline.providers.sendgrid_api_key)
    donation_id = _donate(world, "key-redrive-after-rotation")
    world.drain()
    [parked] = world.queued("receipt_dlq")

    world.sendgrid.reset()  # the operator rotated the secret: SendGrid accepts our key again
    world.clear_queue("receipt_dlq")
    world.send("receipt", parked["Body"], parked["MessageAttributes"])  # what `donations-ops redrive` does
    world.drain()

    record = world.record(donation_id)
    assert record.receipt_status is StepStatus.DONE and record.failed_step is None
    assert len(world.sendgrid.outbox_for(donation_id)) == 1


def test_an_account_out_of_credits_parks_the_receipt_without_blaming_the_key(world, capsys):
    # SendGrid's "4XX API Errors" support article: 401 "Maximum credits exceeded" is the account's plan,
    # not the key. The receipt waits in the DLQ with its own reason; nobody is told to rotate a key.
    world.sendgrid.exhaust_credits()
    donation_id = _donate(world, "key-credits-exceeded")
    capsys.readouterr()

    receives = world.deliver_until_dead_lettered("receipt")

    assert receives == 1
    assert _parked_reason(world, donation_id) == "send_receipt:sendgrid:credits_exceeded"
    record = world.record(donation_id)
    assert record.failure_reason == "send_receipt:sendgrid:credits_exceeded"
    assert _auth_failure_metrics(capsys.readouterr().out) == []
    advice = verdict(record, Step.SEND_RECEIPT, parked_reason=None)
    assert not advice.redrive and advice.hint is not None
    assert "out of credits" in advice.hint and "rotate" not in advice.hint

    # When credits are back (plan upgraded, or the daily reset), the operator's redrive sends it.
    world.sendgrid.restore_credits()
    [parked] = world.queued("receipt_dlq")
    world.clear_queue("receipt_dlq")
    world.send("receipt", parked["Body"], parked["MessageAttributes"])
    world.drain()

    assert world.record(donation_id).receipt_status is StepStatus.DONE
    assert len(world.sendgrid.outbox_for(donation_id)) == 1


@pytest.mark.parametrize(
    "fault",
    [{"kind": "rate_limit", "times": 1}, {"kind": "http_error", "status": 503, "times": 1}],
    ids=["429", "503"],
)
def test_rate_limits_and_outages_are_retried_with_backoff(world, capsys, fault):
    donation_id = _donate(world, f"key-{fault['kind']}")
    world.sendgrid.faults.add(**fault)
    capsys.readouterr()

    first = world.deliver("receipt")

    assert first.failed_ids == [first.messages[0]["MessageId"]]  # back to the queue, not parked
    [backoff] = world.visibility_changes("receipt")
    assert world.settings.backoff_base_seconds / 2 <= backoff <= world.settings.backoff_base_seconds
    assert world.queued("receipt_dlq") == []
    assert world.record(donation_id).receipt_status is StepStatus.PENDING  # the claim was released

    world.expire_backoffs()
    world.drain()

    assert world.sendgrid.requests[MAIL_SEND] == 2
    assert len(world.sendgrid.outbox_for(donation_id)) == 1
    assert world.record(donation_id).receipt_status is StepStatus.DONE
    assert _auth_failure_metrics(capsys.readouterr().out) == []
