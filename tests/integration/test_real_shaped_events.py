"""The real handlers fed the events AWS sends, as ``sam local generate-event`` renders them.

API Gateway's aws-proxy event with lowercase header names (as HTTP/2 clients and API Gateway pass them),
a base64 body (``isBase64Encoded: true``) and multiValueHeaders; SQS records carrying our follow-up
messages; EventBridge's scheduled event for the reconciler. Only what must be ours is changed.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import EndpointConnectionError

from donations.models import DonationStatus, StepStatus
from simulator.emulators.stripe import encode_event, sign_payload
from tests.support.keys import a_key
from tests.support.sam_events import invoke, sam_event, sqs_record_with, with_lowercase_headers
from tests.support.world import DONATION, CrashOn

pytestmark = pytest.mark.integration


def _api_event(method: str, resource: str, path: str, body: str | None, headers: dict[str, str]) -> dict[str, Any]:
    # SAM's --path is given without its leading slash (it renders "/" + path).
    event = sam_event("apigateway", "aws-proxy", method=method, resource=resource, path=path[1:], body=body or "")
    assert (event["path"], event["resource"]) == (path, resource)
    assert event["isBase64Encoded"] is True  # SAM renders API Gateway's binary-safe form of the body
    if body is None:  # a GET: API Gateway passes no body at all
        event["body"], event["isBase64Encoded"] = None, False
    event["pathParameters"] = None  # SAM's sample is a {proxy+} route; ours are not
    return with_lowercase_headers(event, headers)


def _answer(result: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    return int(result["statusCode"]), json.loads(result["body"])


def test_post_donations_from_an_aws_proxy_event_charges_once(world):
    body = json.dumps({**DONATION, "save_card": False})
    event = _api_event(
        "POST",
        "/donations",
        "/donations",
        body,
        {"Content-Type": "application/json", "Idempotency-Key": a_key("sam-1")},
    )
    assert base64.b64decode(event["body"]).decode() == body
    assert "idempotency-key" in event["multiValueHeaders"] and "Idempotency-Key" not in event["headers"]

    status, answer = _answer(invoke(world.pipeline, "ChargeFunction", event))

    assert (status, answer["status"]) == (201, "succeeded"), answer
    donation_id = answer["donation_id"]
    assert world.record(donation_id).status is DonationStatus.SUCCEEDED
    # API Gateway retrying the same request (same key, same body) replays the answer; Stripe charged once.
    assert _answer(invoke(world.pipeline, "ChargeFunction", event)) == (201, answer)
    assert world.stripe.charges_for(donation_id) == 1
    assert len(world.stripe.intents_for(donation_id)) == 1


def test_get_donation_from_an_aws_proxy_event(world):
    donation_id = world.post(DONATION, key=a_key("sam-get")).body["donation_id"]
    event = _api_event("GET", "/donations/{donation_id}", f"/donations/{donation_id}", None, {"Accept": "*/*"})
    event["pathParameters"] = {"donation_id": donation_id}

    status, view = _answer(invoke(world.pipeline, "ChargeFunction", event))

    assert status == 200, view
    assert (view["donation_id"], view["status"], view["amount"], view["currency"]) == (
        donation_id,
        "succeeded",
        DONATION["amount"],
        DONATION["currency"],
    )


def test_stripe_webhook_from_an_aws_proxy_event_completes_a_3d_secure_donation(world):
    answer = world.post({**DONATION, "payment_method": "pm_card_authenticationRequired"}, key=a_key("sam-3ds"))
    assert answer.status == 202, answer.body
    donation_id = answer.body["donation_id"]
    intent_id = world.record(donation_id).payment_intent_id
    world.stripe.authenticate(intent_id, "succeed")
    payload = encode_event(world.stripe_event("payment_intent.succeeded", intent_id)).decode()
    signature = sign_payload(payload.encode(), world.pipeline.providers.stripe_webhook_secret)
    event = _api_event(
        "POST",
        "/webhooks/stripe",
        "/webhooks/stripe",
        payload,
        {"Content-Type": "application/json; charset=utf-8", "Stripe-Signature": signature, "User-Agent": "Stripe/1.0"},
    )

    status, body = _answer(invoke(world.pipeline, "StripeWebhookFunction", event))

    assert status == 200, body
    assert world.record(donation_id).status is DonationStatus.SUCCEEDED
    assert [json.loads(m["Body"])["donation_id"] for m in world.queued("receipt")] == [donation_id]


def _sqs_event(world, queue: str, message: dict[str, Any]) -> dict[str, Any]:
    arn = world.sqs.get_queue_attributes(QueueUrl=world.queue_url(queue), AttributeNames=["QueueArn"])
    _, _, _, region, account, name = arn["Attributes"]["QueueArn"].split(":")
    event = sam_event("sqs", "receive-message", queue_name=name, account_id=account, region=region)
    [record] = event["Records"]
    assert record["eventSourceARN"] == arn["Attributes"]["QueueArn"]
    sqs_record_with(record, message["Body"], message["MessageAttributes"])
    return event


def test_follow_up_messages_in_sqs_records_save_the_card_and_send_the_receipt(world):
    donation_id = world.post(DONATION, key=a_key("sam-sqs")).body["donation_id"]  # save_card: both follow-ups
    [tokenize] = world.queued("tokenize")
    [receipt] = world.queued("receipt")
    world.clear_queue("tokenize")
    world.clear_queue("receipt")

    tokenized = invoke(world.pipeline, "TokenizeFunction", _sqs_event(world, "tokenize", tokenize))
    sent = invoke(world.pipeline, "SendReceiptFunction", _sqs_event(world, "receipt", receipt))

    assert tokenized == sent == {"batchItemFailures": []}
    record = world.record(donation_id)
    assert record.card_status is StepStatus.DONE and record.customer_id
    assert world.stripe.payment_method(record.payment_method_id)["customer"] == record.customer_id
    assert record.receipt_status is StepStatus.DONE
    [mail] = world.sendgrid.outbox_for(donation_id)
    assert mail["message_id"] == record.receipt_message_id


def test_the_reconciler_from_a_scheduled_event_publishes_what_a_crash_left_unpublished(world):
    sqs_down = EndpointConnectionError(endpoint_url="https://sqs.us-east-1.amazonaws.com")
    with world.charge_ports(publisher=lambda publisher: CrashOn(publisher, "publish", error=sqs_down)):
        donation_id = world.post(DONATION, key=a_key("sam-reconcile")).body["donation_id"]
    assert world.record(donation_id).followups_published is False
    stack = world.pipeline.stack
    account = stack.stack_id.split(":")[4]
    event = sam_event("cloudwatch", "scheduled-event", region=stack.region, account_id=account)
    # SAM's sample leaves out "version", which EventBridge sets ("0") in every event (AWS Events
    # Reference, "AWS service event metadata"); the reconciler's EventBridgeModel requires it.
    event.setdefault("version", "0")
    # Ours: the schedule's rule, and the time of this run (after the grace period; SAM's sample says 1970).
    rule = stack.physical_ids.get("ReconcilerFunctionReconcileSchedule", "reconcile-schedule")
    event["resources"] = [f"arn:aws:events:{stack.region}:{account}:rule/{rule}"]
    run_at = datetime.now(UTC) + timedelta(seconds=world.settings.reconcile_grace_seconds + 5)
    event["time"] = run_at.strftime("%Y-%m-%dT%H:%M:%SZ")

    summary = invoke(world.pipeline, "ReconcilerFunction", event)

    assert summary == {"published": 1}
    assert world.record(donation_id).followups_published is True
    assert len(world.queued("tokenize")) == len(world.queued("receipt")) == 1


def test_the_notifier_from_an_sns_event_relays_an_alarm_and_drops_a_start_up_ok(world):
    stack = world.pipeline.stack
    name = stack.alarms["ReceiptDLQAlarm"]
    [alarm] = world.pipeline.clients("cloudwatch").describe_alarms(AlarmNames=[name])["MetricAlarms"]
    change = {"AlarmName": name, "AlarmDescription": alarm["AlarmDescription"], "StateChangeTime": "2026-11-30Z"}

    def notification(old: str, new: str) -> dict[str, Any]:
        event = sam_event("sns", "notification", topic=stack.topics["AlarmTopic"].rsplit(":", 1)[-1])
        # Ours: CloudWatch's JSON as the message (SAM's sample says "example message").
        sns = event["Records"][0]["Sns"]
        sns["Message"] = json.dumps({**change, "OldStateValue": old, "NewStateValue": new})
        # SAM's sample says "EXAMPLE" where SNS sends URLs (the example event of "Using Lambda with Amazon
        # SNS" in the Lambda developer guide); Powertools' SnsModel, which the handler parses with, wants URLs.
        sns["SigningCertUrl"] = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0000.pem"
        sns["UnsubscribeUrl"] = (
            f"https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn={sns['TopicArn']}"
        )
        return event

    assert invoke(world.pipeline, "NotifierFunction", notification("OK", "ALARM")) == {"relayed": 1, "dropped": 0}
    started = notification("INSUFFICIENT_DATA", "OK")
    assert invoke(world.pipeline, "NotifierFunction", started) == {"relayed": 0, "dropped": 1}
