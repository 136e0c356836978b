"""Crash recovery: the scheduled reconciler finishes what the charge function left half-done, and charges nothing.

Crash points are injected by wrapping the ports the charge handler passes to submit_donation:
A, between Stripe's confirmation and ``mark_charged``; B, between ``mark_charged`` and the publish.
Time is moved by giving each reconciler run its scheduled time, as EventBridge does.
"""

import json
from datetime import UTC, datetime, timedelta

import pytest
from botocore.exceptions import EndpointConnectionError

from donations.models import DonationStatus, StepStatus
from tests.support.keys import a_key
from tests.support.world import DONATION as SAMPLE
from tests.support.world import Crash, CrashOn

pytestmark = pytest.mark.integration

DONATION = {**SAMPLE, "save_card": True}


def _in(seconds: float) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)


def _past_grace(world, extra: float = 0) -> datetime:
    return _in(world.settings.reconcile_grace_seconds + 5 + extra)


def _only_donation(world) -> str:
    [donation_id] = world.donation_ids()
    return donation_id


def _assert_completed_once(world, donation_id: str) -> None:
    """Charged once, recorded, card saved, one receipt, nothing left in any queue."""
    record = world.record(donation_id)
    assert record.status is DonationStatus.SUCCEEDED
    assert record.followups_published is True
    assert record.unsettled_since is None
    assert record.card_status is StepStatus.DONE
    assert world.stripe.payment_method(record.payment_method_id)["customer"] == record.customer_id
    assert record.receipt_status is StepStatus.DONE
    assert len(world.sendgrid.outbox_for(donation_id)) == 1
    assert world.stripe.charges_for(donation_id) == 1
    assert world.stripe.payment_intents_created == 1
    for queue in ("tokenize", "receipt", "tokenize_dlq", "receipt_dlq"):
        assert world.queued(queue) == [], queue


def _crash_before_recording(world) -> None:
    with world.charge_ports(store=lambda store: CrashOn(store, "mark_charged")), pytest.raises(Crash):
        world.post(DONATION, key=a_key("key-crash-a"))


def _answer_lost_every_time(world) -> None:
    # Stripe charged, then every answer (and the SDK's retries') was lost: the donor saw a 503.
    world.stripe.faults.add("reset", phase="after", path_prefix="/v1/payment_intents")
    assert world.post(DONATION, key=a_key("key-crash-a")).status == 503
    world.stripe.faults.clear()


@pytest.mark.parametrize("crash", [_crash_before_recording, _answer_lost_every_time], ids=["crash", "answer-lost"])
def test_crash_a_charged_but_still_pending_is_recorded_and_completed(world, crash):
    # Given Stripe charged the donation but the record still says pending (crash point A)
    crash(world)
    donation_id = _only_donation(world)
    assert world.record(donation_id).status is DonationStatus.PENDING
    assert world.stripe.charges_for(donation_id) == 1
    assert world.queued("receipt") == []

    # When the reconciler runs after the grace period
    summary = world.reconcile(now=_past_grace(world))

    # Then Stripe's truth is recorded, the follow-ups run, and nothing was charged again
    assert summary == {"charged": 1}
    record = world.record(donation_id)
    assert record.payment_intent_id == world.stripe.intents_for(donation_id)[0]["id"]
    world.drain()
    _assert_completed_once(world, donation_id)


def _killed_while_publishing(world) -> None:
    # A killed process runs no clean-up either: its publish claim (a lease) stays on the record.
    with (
        world.charge_ports(
            publisher=lambda publisher: CrashOn(publisher, "publish"),
            store=lambda store: CrashOn(store, "release_followups_claim"),  # the finally dies too
        ),
        pytest.raises(Crash),  # the function died: API Gateway answers 502, not 201
    ):
        world.post(DONATION, key=a_key("key-crash-b"))


def _sqs_down(world) -> None:
    failure = EndpointConnectionError(endpoint_url="https://sqs.us-east-1.amazonaws.com")
    with world.charge_ports(publisher=lambda publisher: CrashOn(publisher, "publish", error=failure)):
        # SQS failing is caught: the donor, who was charged, hears so
        assert world.post(DONATION, key=a_key("key-crash-b")).status == 201


@pytest.mark.parametrize("crash", [_killed_while_publishing, _sqs_down], ids=["crash", "sqs-down"])
def test_crash_b_charged_but_unpublished_gets_its_follow_ups(world, crash):
    # Given the record says succeeded but the follow-ups never reached SQS (crash point B)
    crash(world)
    donation_id = _only_donation(world)
    record = world.record(donation_id)
    assert (record.status, record.followups_published) == (DonationStatus.SUCCEEDED, False)
    assert world.queued("tokenize") == world.queued("receipt") == []

    # When the reconciler runs after the grace period
    summary = world.reconcile(now=_past_grace(world))

    # Then the follow-ups are published once and the card is saved and one receipt sent
    assert summary == {"published": 1}
    assert len(world.queued("tokenize")) == len(world.queued("receipt")) == 1
    world.drain()
    _assert_completed_once(world, donation_id)


def test_published_but_not_flagged_is_published_again_and_the_duplicates_are_harmless(world):
    # Given the messages went out but the function died before writing followups_published
    # (and before giving its publish claim back)
    with (
        world.charge_ports(store=lambda store: CrashOn(store, "mark_followups_published", "release_followups_claim")),
        pytest.raises(Crash),
    ):
        world.post(DONATION, key=a_key("key-crash-flag"))
    donation_id = _only_donation(world)
    assert len(world.queued("receipt")) == 1

    # When the reconciler publishes again (it cannot know the first publish got through)
    assert world.reconcile(now=_past_grace(world)) == {"published": 1}
    assert len(world.queued("receipt")) == len(world.queued("tokenize")) == 2

    # Then the consumers acknowledge the duplicates: one customer, one attach, one receipt
    world.drain()
    _assert_completed_once(world, donation_id)
    assert len(world.stripe.customers) == 1
    assert world.stripe.attach_count(world.record(donation_id).payment_method_id) == 1


def test_running_the_reconciler_again_publishes_nothing_more(world):
    _crash_before_recording(world)
    donation_id = _only_donation(world)

    first = world.reconcile(now=_past_grace(world))
    second = world.reconcile(now=_past_grace(world, extra=300))  # the next scheduled run
    world.drain()
    third = world.reconcile(now=_past_grace(world, extra=600))

    assert (first, second, third) == ({"charged": 1}, {}, {})
    _assert_completed_once(world, donation_id)


def test_nothing_is_touched_before_the_grace_period(world):
    _crash_before_recording(world)
    donation_id = _only_donation(world)
    stripe_requests = world.stripe_requests()

    summary = world.reconcile(now=_in(world.settings.reconcile_grace_seconds - 30))

    assert summary == {}
    assert world.record(donation_id).status is DonationStatus.PENDING
    assert _requests_besides_the_sweep(world) == stripe_requests  # not even a search about it
    assert world.queued("receipt") == []
    # and once the grace period is over, it is completed
    assert world.reconcile(now=_past_grace(world)) == {"charged": 1}


def test_a_charge_that_never_reached_stripe_is_failed_after_the_idempotency_window_and_never_charged(world):
    # Given Stripe was down: the donor saw 503 and the record stays pending, uncharged
    world.stripe.faults.add("http_error", status=503, path_prefix="/v1/payment_intents")
    assert world.post(DONATION, key=a_key("key-never-charged")).status == 503
    world.stripe.faults.clear()
    donation_id = _only_donation(world)

    # When the reconciler runs within Stripe's idempotency window, it only looks (search may lag,
    # and the donor's retry with the same key may still charge it)
    assert world.reconcile(now=_past_grace(world)) == {"waiting": 1}
    assert world.record(donation_id).status is DonationStatus.PENDING

    # Then after the window it is closed as failed, and nothing was charged by anyone
    window = world.settings.stripe_idempotency_window_seconds
    assert world.reconcile(now=_in(window + 60)) == {"failed": 1}
    record = world.record(donation_id)
    assert (record.status, record.failure_reason) == (DonationStatus.FAILED, "reconcile:not_charged")
    assert record.unsettled_since is None
    assert world.stripe.payment_intents_created == 0
    assert world.stripe.charges_for(donation_id) == 0
    assert world.queued("receipt") == []
    # and a late resubmission with the same key is told to start again, not charged
    assert world.post(DONATION, key=a_key("key-never-charged")).status == 400
    assert world.stripe.payment_intents_created == 0


def test_a_decline_stripe_recorded_before_the_crash_is_recorded_as_declined(world):
    declined = {**DONATION, "payment_method": "pm_card_chargeDeclinedInsufficientFunds"}
    with world.charge_ports(store=lambda store: CrashOn(store, "mark_declined")), pytest.raises(Crash):
        world.post(declined, key=a_key("key-crash-declined"))
    donation_id = _only_donation(world)

    assert world.reconcile(now=_past_grace(world)) == {"declined": 1}

    record = world.record(donation_id)
    assert (record.status, record.decline_code) == (DonationStatus.DECLINED, "insufficient_funds")
    assert world.stripe.charges_for(donation_id) == 0
    assert world.queued("receipt") == []


def test_3d_secure_finished_after_the_donor_left_is_completed(world):
    # Given a donation waiting for 3-D Secure, which the donor then completed (no webhook came)
    answer = world.post({**DONATION, "payment_method": "pm_card_authenticationRequired"}, key=a_key("key-3ds"))
    assert answer.status == 202
    donation_id = answer.body["donation_id"]
    world.stripe.authenticate(world.record(donation_id).payment_intent_id, "succeed")

    # When the reconciler runs
    assert world.reconcile(now=_past_grace(world)) == {"charged": 1}

    # Then the donation is completed like any other
    world.drain()
    _assert_completed_once(world, donation_id)


@pytest.mark.parametrize(
    ("authentication", "reason"), [(None, "authentication_abandoned"), ("fail", "authentication_failed")]
)
def test_3d_secure_never_finished_is_canceled_at_stripe_after_the_action_timeout(world, authentication, reason):
    answer = world.post({**DONATION, "payment_method": "pm_card_authenticationRequired"}, key=a_key("key-3ds-left"))
    donation_id = answer.body["donation_id"]
    payment_intent_id = world.record(donation_id).payment_intent_id
    if authentication:
        world.stripe.authenticate(payment_intent_id, authentication)

    # Within the action timeout the donor may still finish: the reconciler waits
    assert world.reconcile(now=_past_grace(world)) == {"waiting": 1}
    assert world.stripe.payment_intent(payment_intent_id)["status"] != "canceled"

    # After it, the PaymentIntent is canceled first, so a late authentication cannot take the money
    timeout = world.settings.reconcile_action_timeout_seconds
    assert world.reconcile(now=_in(timeout + 60)) == {"canceled": 1}
    record = world.record(donation_id)
    assert (record.status, record.failure_reason) == (DonationStatus.CANCELED, reason)
    assert world.stripe.payment_intent(payment_intent_id)["status"] == "canceled"
    with pytest.raises(ValueError, match="not requires_action"):
        world.stripe.authenticate(payment_intent_id, "succeed")
    assert world.stripe.charges_for(donation_id) == 0
    assert world.queued("receipt") == []


def test_stripe_failing_during_a_run_counts_a_failure_and_the_next_run_completes(world, capsys):
    _crash_before_recording(world)
    donation_id = _only_donation(world)
    world.stripe.faults.add("http_error", status=500, path_prefix="/v1/payment_intents/search")
    capsys.readouterr()

    # The donation, and the sweep's two stretches (both searches too)
    assert world.reconcile(now=_past_grace(world)) == {"error": 3}
    assert _emitted_metrics(capsys.readouterr().out) == {"ReconcileFailures": 3}
    assert world.record(donation_id).status is DonationStatus.PENDING

    world.stripe.faults.clear()
    assert world.reconcile(now=_past_grace(world, extra=300)) == {"charged": 1}
    assert _emitted_metrics(capsys.readouterr().out) == {"ReconciledDonations": 1}
    world.drain()
    _assert_completed_once(world, donation_id)


def test_a_donation_older_than_the_max_age_is_reported_not_retried(world, capsys):
    _crash_before_recording(world)
    donation_id = _only_donation(world)
    stripe_requests = world.stripe_requests()
    capsys.readouterr()

    summary = world.reconcile(now=_in(world.settings.reconcile_max_age_seconds + 3600))

    assert summary == {"stale": 1}
    assert _emitted_metrics(capsys.readouterr().out)["ReconcileFailures"] == 1
    assert world.record(donation_id).status is DonationStatus.PENDING
    assert _requests_besides_the_sweep(world) == stripe_requests


def _requests_besides_the_sweep(world) -> int:
    """Stripe requests, less the sweep's two searches of each run (donations.reconcile._sweep)."""
    searches = [r for r in world.stripe.received if r.path == "/v1/payment_intents/search" and "status" in str(r.form)]
    return world.stripe_requests() - len(searches)


def test_settled_donations_leave_the_sparse_index(world, capsys):
    # A completed donation and a declined one are not read by later runs at all.
    assert world.post(DONATION, key=a_key("key-ok")).status == 201
    declined = {**DONATION, "payment_method": "pm_card_chargeDeclined"}
    assert world.post(declined, key=a_key("key-declined")).status == 402
    world.drain()

    for donation_id in world.donation_ids():
        assert world.record(donation_id).unsettled_since is None
    capsys.readouterr()
    assert world.reconcile(now=_past_grace(world)) == {}
    # A run with nothing to do sends no metric data: a quiet month costs no custom-metric hours.
    assert _emitted_metrics(capsys.readouterr().out) == {}


def _emitted_metrics(stdout: str) -> dict[str, float]:
    """The reconciler's EMF metrics (CloudWatch embedded metric format) printed during the run."""
    values: dict[str, float] = {}
    for line in stdout.splitlines():
        if not line.startswith("{") or '"_aws"' not in line:
            continue
        blob = json.loads(line)
        for directive in blob["_aws"]["CloudWatchMetrics"]:
            for metric in directive["Metrics"]:
                if metric["Name"] in ("ReconciledDonations", "ReconcileFailures"):
                    value = blob[metric["Name"]]
                    values[metric["Name"]] = value[0] if isinstance(value, list) else value
    return values
