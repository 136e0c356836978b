"""POST /webhooks/stripe through the real handler, moto and the Stripe emulator's events.

Most tests take the event the emulator recorded (``world.stripe.events``) and deliver it signed
like Stripe signs (``world.deliver_stripe_event``); the last ones let the emulator deliver it
itself, over HTTP, with its duplicates and retries.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import stripe

from donations.followups import publish_follow_ups
from donations.models import DonationStatus, StepStatus
from donations.payments import STRIPE_API_VERSION
from donations.webhooks import HANDLED_EVENT_TYPES
from simulator.local.alarms import AlarmEvaluator
from simulator.local.metrics import emf_metric_data, put_metric
from tests.support.keys import a_key
from tests.support.world import DONATION as SAMPLE

pytestmark = pytest.mark.integration

DONATION = {**SAMPLE, "payment_method": "pm_card_authenticationRequired"}
CARD = {**DONATION, "payment_method": "pm_card_visa"}


def _three_d_secure(world, key: str = "key-3ds", **changes: Any) -> tuple[str, str]:
    """A donation waiting for 3-D Secure: (donation id, PaymentIntent id)."""
    answer = world.post({**DONATION, **changes}, key=a_key(key))
    assert answer.status == 202, answer.body
    donation_id = answer.body["donation_id"]
    return donation_id, world.record(donation_id).payment_intent_id


def _charged(world, key: str = "key-card") -> tuple[str, str]:
    """A donation charged at once, its follow-ups done: (donation id, Stripe charge id)."""
    donation_id = world.post(CARD, key=a_key(key)).body["donation_id"]
    world.drain()
    [intent] = world.stripe.intents_for(donation_id)
    return donation_id, intent["latest_charge"]


def _queued(world) -> dict[str, list[str]]:
    return {
        name: [json.loads(m["Body"])["donation_id"] for m in world.queued(name)] for name in ("tokenize", "receipt")
    }


def _metrics(output: str) -> dict[str, float]:
    """Metric name -> value from the EMF lines Powertools printed."""
    found: dict[str, float] = {}
    for line in output.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            for _, name, value, _, _ in emf_metric_data(json.loads(line), None):
                found[name] = found.get(name, 0) + value
    return found


# -- 3-D Secure completed --------------------------------------------------------------------------


def test_a_3d_secure_donation_completes_when_stripe_reports_the_payment(world):
    donation_id, intent_id = _three_d_secure(world)
    assert _queued(world) == {"tokenize": [], "receipt": []}

    # The donor authenticates in the browser; Stripe then sends payment_intent.succeeded.
    world.stripe.authenticate(intent_id, "succeed")
    event = world.stripe_event("payment_intent.succeeded", intent_id)
    answer = world.deliver_stripe_event(event)

    assert answer.status == 200
    assert answer.body == {"event_id": event["id"], "outcome": "succeeded"}
    record = world.record(donation_id)
    assert record.status is DonationStatus.SUCCEEDED
    assert record.payment_intent_id == intent_id
    assert record.payment_method_id == world.stripe.payment_intent(intent_id)["payment_method"]
    assert record.followups_published
    assert _queued(world) == {"tokenize": [donation_id], "receipt": [donation_id]}

    world.drain()
    assert world.record(donation_id).card_status is StepStatus.DONE
    assert len(world.sendgrid.outbox_for(donation_id)) == 1
    view = world.get(f"/donations/{donation_id}").body
    assert (view["status"], view["card_saved"], view["receipt_sent"]) == ("succeeded", True, True)


def test_the_same_event_delivered_twice_has_one_effect(world):
    donation_id, intent_id = _three_d_secure(world)
    world.stripe.authenticate(intent_id, "succeed")
    event = world.stripe_event("payment_intent.succeeded", intent_id)

    first, second = world.deliver_stripe_event(event), world.deliver_stripe_event(event)

    assert first.status == second.status == 200
    assert _queued(world) == {"tokenize": [donation_id], "receipt": [donation_id]}
    world.drain()
    # Stripe retries for days: a delivery after everything ran changes nothing either.
    assert world.deliver_stripe_event(event).status == 200
    world.drain()
    assert len(world.sendgrid.outbox_for(donation_id)) == 1
    assert world.stripe.attach_count(world.record(donation_id).payment_method_id) == 1


def test_the_event_after_another_path_recorded_the_charge_adds_no_follow_ups(world):
    # The event for a card charged at once comes while (or after) the charge itself publishes.
    donation_id = world.post({**CARD, "save_card": False}, key=a_key("key-card-race")).body["donation_id"]
    [intent] = world.stripe.intents_for(donation_id)
    answer = world.deliver_stripe_event(world.stripe_event("payment_intent.succeeded", intent["id"]))

    assert answer.status == 200
    assert _queued(world) == {"tokenize": [], "receipt": [donation_id]}


def test_a_race_with_a_path_still_publishing_yields_one_set_of_follow_ups(world):
    donation_id, intent_id = _three_d_secure(world, save_card=False)
    world.stripe.authenticate(intent_id, "succeed")
    store, publisher = world.wiring.store, world.wiring.publisher
    # Another path (the reconciler, or the charge replaying) recorded the charge and is publishing.
    donation = store.mark_charged(donation_id, intent_id, None)
    assert store.claim_followups(donation_id, lease_seconds=60)

    answer = world.deliver_stripe_event(world.stripe_event("payment_intent.succeeded", intent_id))

    assert answer.status == 200
    assert _queued(world) == {"tokenize": [], "receipt": []}  # the webhook left it to the claim holder
    publisher.publish(donation, donation.correlation_id)
    store.mark_followups_published(donation_id)
    # ...and a path arriving after it finished publishes nothing either.
    assert publish_follow_ups(world.record(donation_id), store, publisher, "late") is True
    assert _queued(world) == {"tokenize": [], "receipt": [donation_id]}


# -- failures --------------------------------------------------------------------------------------


def test_failed_authentication_fails_the_donation_with_the_reason_and_queues_nothing(world):
    donation_id, intent_id = _three_d_secure(world)
    world.stripe.authenticate(intent_id, "fail")

    answer = world.deliver_stripe_event(world.stripe_event("payment_intent.payment_failed", intent_id))

    assert (answer.status, answer.body["outcome"]) == (200, "failed")
    record = world.record(donation_id)
    assert record.status is DonationStatus.FAILED
    assert record.failure_reason == "payment_intent_authentication_failure"
    assert _queued(world) == {"tokenize": [], "receipt": []}
    assert world.get(f"/donations/{donation_id}").body["status"] == "failed"


def test_a_decline_reported_after_the_charge_recorded_it_stays_a_decline(world):
    answer = world.post({**CARD, "payment_method": "pm_card_chargeDeclinedInsufficientFunds"}, key=a_key("key-decline"))
    assert answer.status == 402
    [donation_id] = world.donation_ids()
    [intent] = world.stripe.intents_for(donation_id)

    answer = world.deliver_stripe_event(world.stripe_event("payment_intent.payment_failed", intent["id"]))

    assert (answer.status, answer.body["outcome"]) == (200, "already_final")
    record = world.record(donation_id)
    assert (record.status, record.decline_code) == (DonationStatus.DECLINED, "insufficient_funds")


def test_a_canceled_payment_intent_cancels_the_donation(world):
    donation_id, intent_id = _three_d_secure(world)
    client = stripe.StripeClient("sk_test_webhooks", base_addresses={"api": world.stripe.url})
    client.v1.payment_intents.cancel(intent_id, params={"cancellation_reason": "abandoned"})

    answer = world.deliver_stripe_event(world.stripe_event("payment_intent.canceled", intent_id))

    assert answer.status == 200
    record = world.record(donation_id)
    assert (record.status, record.failure_reason) == (DonationStatus.CANCELED, "abandoned")
    assert _queued(world) == {"tokenize": [], "receipt": []}


# -- refusals and replays --------------------------------------------------------------------------


def _refusals(world, event: dict[str, Any]) -> dict[str, Any]:
    return {
        "wrong secret": world.deliver_stripe_event(event, secret="whsec_someone_else"),
        "no header": world.deliver_stripe_event(event, signed=False),
        "stale timestamp": world.deliver_stripe_event(event, timestamp=int(time.time()) - 301),
        # Signed as sent, then changed on the way (here: the amount).
        "tampered body": world.deliver_stripe_event(
            event, body=json.dumps(event, indent=2).replace('"amount": 2500', '"amount": 1').encode()
        ),
    }


def test_unsigned_mis_signed_stale_or_tampered_events_are_refused_without_effect(world, capsys):
    donation_id, intent_id = _three_d_secure(world)
    world.stripe.authenticate(intent_id, "succeed")
    event = world.stripe_event("payment_intent.succeeded", intent_id)
    before = world.record(donation_id)
    capsys.readouterr()

    answers = _refusals(world, event)

    assert {why: (a.status, a.body["error"]["code"]) for why, a in answers.items()} == {
        why: (400, "invalid_signature") for why in answers
    }
    assert world.record(donation_id) == before
    assert _queued(world) == {"tokenize": [], "receipt": []}
    assert world.webhook_event_records() == []
    assert _metrics(capsys.readouterr().out)["WebhookSignatureFailures"] == len(answers)


def test_a_replayed_event_with_a_fresh_valid_signature_is_recognised_by_its_id(world):
    donation_id, intent_id = _three_d_secure(world)
    world.stripe.authenticate(intent_id, "succeed")
    event = world.stripe_event("payment_intent.succeeded", intent_id)
    assert world.deliver_stripe_event(event, timestamp=int(time.time()) - 60).status == 200
    after_first = world.record(donation_id)
    queued = _queued(world)
    records = world.webhook_event_records()

    replay = world.deliver_stripe_event(event)  # signed again, now

    assert replay.status == 200
    assert world.record(donation_id) == after_first  # not even updated_at moved
    assert _queued(world) == queued == {"tokenize": [donation_id], "receipt": [donation_id]}
    assert world.webhook_event_records() == records and len(records) == 1


def test_an_unknown_event_type_is_acknowledged_and_ignored(world):
    event = {
        "id": "evt_unknown_type",
        "object": "event",
        "type": "customer.subscription.created",
        "api_version": STRIPE_API_VERSION,  # the endpoint's, as install-webhook sets it
        "created": int(time.time()),
        "data": {"object": {"id": "sub_123", "object": "subscription"}},
    }
    answer = world.deliver_stripe_event(event)

    assert (answer.status, answer.body) == (200, {"event_id": "evt_unknown_type", "outcome": "ignored"})
    assert world.webhook_event_records() == []
    assert world.donation_count() == 0


def test_an_event_for_a_payment_intent_that_is_not_a_donation_is_ignored(world):
    donation_id, intent_id = _three_d_secure(world)
    world.stripe.authenticate(intent_id, "succeed")
    event = world.stripe_event("payment_intent.succeeded", intent_id)
    event["data"]["object"]["metadata"] = {}  # e.g. an invoice payment on the same Stripe account

    answer = world.deliver_stripe_event(event)

    assert (answer.status, answer.body["outcome"]) == (200, "ignored")
    assert world.record(donation_id).status is DonationStatus.REQUIRES_ACTION


# -- out of order ----------------------------------------------------------------------------------


def test_success_before_the_donation_is_recorded_is_retried_by_stripe_and_then_completes(world):
    donation_id, intent_id = _three_d_secure(world, save_card=False)
    world.stripe.authenticate(intent_id, "succeed")
    event = world.stripe_event("payment_intent.succeeded", intent_id)
    table = world.wiring.store._table
    item = table.get_item(Key={"donation_id": donation_id})["Item"]
    table.delete_item(Key={"donation_id": donation_id})  # our write is not there (yet)

    early = world.deliver_stripe_event(event)

    # A retryable answer, and no record of the event id: Stripe's retry will be applied.
    assert (early.status, early.body["error"]["code"]) == (409, "donation_not_recorded_yet")
    assert world.webhook_event_records() == []
    assert _queued(world) == {"tokenize": [], "receipt": []}

    table.put_item(Item=item)
    retry = world.deliver_stripe_event(event)

    assert (retry.status, retry.body["outcome"]) == (200, "succeeded")
    world.drain()
    assert world.record(donation_id).status is DonationStatus.SUCCEEDED
    assert len(world.sendgrid.outbox_for(donation_id)) == 1


def test_an_event_still_unmatched_after_an_hour_is_not_ours_and_is_acknowledged(world, capsys):
    donation_id, intent_id = _three_d_secure(world)
    world.stripe.authenticate(intent_id, "succeed")
    event = {**world.stripe_event("payment_intent.succeeded", intent_id), "created": int(time.time()) - 2 * 3600}
    world.wiring.store._table.delete_item(Key={"donation_id": donation_id})
    capsys.readouterr()

    answer = world.deliver_stripe_event(event)

    assert (answer.status, answer.body["outcome"]) == (200, "ignored")
    assert _metrics(capsys.readouterr().out)["WebhookEventsUnmatched"] == 1


# -- refunds and disputes --------------------------------------------------------------------------


def test_a_refund_is_recorded_on_the_donation(world):
    donation_id, charge_id = _charged(world, key="key-refund")
    world.stripe.refund(charge_id)

    answer = world.deliver_stripe_event(world.stripe_event("charge.refunded", charge_id))

    assert (answer.status, answer.body["outcome"]) == (200, "refund_recorded")
    record = world.record(donation_id)
    assert record.amount_refunded == 2500
    assert record.refunded_at and record.refunded_at.endswith("Z")
    assert record.status is DonationStatus.SUCCEEDED  # it was charged; the refund is recorded beside it


def test_a_dispute_is_recorded_raises_the_metric_and_the_alarm(world, capsys):
    donation_id, charge_id = _charged(world, key="key-dispute")
    dispute = world.stripe.dispute(charge_id)
    capsys.readouterr()

    answer = world.deliver_stripe_event(world.stripe_event("charge.dispute.created", dispute["id"]))

    assert (answer.status, answer.body["outcome"]) == (200, "dispute_recorded")
    record = world.record(donation_id)
    assert (record.dispute_id, record.dispute_reason, record.dispute_status) == (
        dispute["id"],
        "fraudulent",
        "needs_response",
    )
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"DisputesOpened"' in line]
    assert [document["DisputesOpened"] for document in emf] == [[1.0]]

    # What the local stack does with that line: CloudWatch Logs turns EMF into a metric (attributed
    # to the emitting function's service), and the template's DisputeAlarm is evaluated.
    cloudwatch = world.pipeline.clients("cloudwatch")
    for namespace, name, value, dimensions, unit in emf_metric_data(emf[0], "stripe_webhook"):
        put_metric(cloudwatch, namespace, name, value, dimensions, unit)
    alarm_name = world.pipeline.stack.alarms["DisputeAlarm"]
    evaluator = AlarmEvaluator(cloudwatch, world.pipeline.clients("sns"), alarm_prefix=alarm_name)
    transitions = evaluator.evaluate(datetime.now(UTC))
    assert [(t.alarm_name, t.new_state) for t in transitions] == [(alarm_name, "ALARM")]
    cloudwatch.set_alarm_state(AlarmName=alarm_name, StateValue="OK", StateReason="test done")


# -- the emulator delivers -------------------------------------------------------------------------


class _Forwarder(ThreadingHTTPServer):
    """Stands in for API Gateway in front of the webhook route: HTTP in, the pipeline's answer out."""

    daemon_threads = True

    def __init__(self, world: Any) -> None:
        self.world = world
        super().__init__(("127.0.0.1", 0), _Forward)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/webhooks/stripe"


class _Forward(BaseHTTPRequestHandler):
    server: _Forwarder

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        answer = self.server.world.pipeline.call_api("POST", self.path, body=body, headers=dict(self.headers.items()))
        payload = answer.text.encode()
        self.send_response(answer.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@pytest.fixture
def delivering(world) -> Iterator[Any]:
    """The emulator posts its events to the webhook route (via a loopback HTTP server) while the test runs."""
    server = _Forwarder(world)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    world.stripe.configure_webhooks(
        server.url,
        world.pipeline.providers.stripe_webhook_secret,
        enabled_events=HANDLED_EVENT_TYPES,
        retry_schedule=[0.2] * 5,
    )
    try:
        yield world
    finally:
        world.stripe.configure_webhooks(None)
        server.shutdown()
        server.server_close()


def _outcomes(world) -> list[Any]:
    return [(d["type"], d["status"]) for d in world.stripe.webhook_deliveries]


def test_the_emulator_delivers_the_success_twice_and_the_donation_completes_once(delivering):
    world = delivering
    donation_id, intent_id = _three_d_secure(world, key="key-emulated")
    world.stripe.set_webhook_mode(duplicates=1)

    world.stripe.authenticate(intent_id, "succeed")
    world.stripe.wait_for_deliveries(2, timeout=10, delivered_only=True)

    assert _outcomes(world) == [("payment_intent.succeeded", 200)] * 2
    world.drain()
    assert world.record(donation_id).status is DonationStatus.SUCCEEDED
    assert world.record(donation_id).card_status is StepStatus.DONE
    assert len(world.sendgrid.outbox_for(donation_id)) == 1


def test_the_emulator_retries_an_early_event_until_the_donation_is_recorded(delivering):
    world = delivering
    donation_id, intent_id = _three_d_secure(world, key="key-emulated-early", save_card=False)
    table = world.wiring.store._table
    item = table.get_item(Key={"donation_id": donation_id})["Item"]
    table.delete_item(Key={"donation_id": donation_id})

    world.stripe.authenticate(intent_id, "succeed")
    world.stripe.wait_for_deliveries(1, timeout=10)
    table.put_item(Item=item)
    world.stripe.wait_for_deliveries(1, timeout=10, delivered_only=True)

    statuses = [status for _, status in _outcomes(world)]
    assert statuses[0] == 409 and statuses[-1] == 200
    world.drain()
    assert world.record(donation_id).status is DonationStatus.SUCCEEDED
    assert len(world.sendgrid.outbox_for(donation_id)) == 1


def test_a_body_larger_than_any_stripe_event_is_refused_with_413_before_the_signature_check(world, capsys):
    # Given a donation awaiting Stripe's event, and an event padded past the webhook's limit
    # (StripeWebhookSettings.webhook_max_body_bytes), validly signed so only its size is at fault
    donation_id, intent_id = _three_d_secure(world, key="key-webhook-oversized")
    world.stripe.authenticate(intent_id, "succeed")
    event = world.stripe_event("payment_intent.succeeded", intent_id)
    limit = world.settings.webhook_max_body_bytes
    padded = {**event, "padding": "x" * limit}
    before = world.record(donation_id)
    capsys.readouterr()

    # When it is delivered
    answer = world.deliver_stripe_event(padded)

    # Then it is refused as too large, and nothing was applied, recorded or counted as a bad signature
    assert (answer.status, answer.body["error"]["code"]) == (413, "payload_too_large")
    assert world.record(donation_id) == before
    assert world.webhook_event_records() == []
    assert "WebhookSignatureFailures" not in _metrics(capsys.readouterr().out)
    # ... while the same event at its real size is applied
    assert world.deliver_stripe_event(event).status == 200
