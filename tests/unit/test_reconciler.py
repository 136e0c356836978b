"""The reconciler's decisions (donations.reconcile): each settler and each outcome, in memory.

Time moves by the run's ``now`` (as the schedule passes its time), not by waiting.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from donations.models import DonationStatus, Step
from donations.ports import IntentSnapshot
from donations.reconcile import Outcome, ReconcilePolicy, reconcile
from tests.support.keys import a_key, donation_id_for
from tests.unit.conftest import BODY, Request

KEY = a_key("key-1")

pytestmark = pytest.mark.unit

POLICY = ReconcilePolicy(
    grace=timedelta(minutes=2),
    max_age=timedelta(days=7),
    idempotency_window=timedelta(hours=24),
    action_timeout=timedelta(hours=24),
    batch_size=100,
)
LATER = timedelta(minutes=10)  # past the grace period


def pending(store, key=KEY):
    """A donation whose charge function died (or lost Stripe's answer) after it may have charged."""
    return store.create_pending(donation_id_for(key), Request.model_validate(BODY), "corr", lease_seconds=5)


def run(store, payments, publisher, after=LATER):
    summary = reconcile(
        now=datetime.now(UTC) + after, store=store, payments=payments, publisher=publisher, policy=POLICY
    )
    return dict(summary.counts)


def test_a_pending_donation_stripe_charged_is_recorded_and_its_follow_ups_published(store, payments, publisher):
    donation = pending(store)
    payments.searches[donation.donation_id] = [IntentSnapshot("pi_1", "succeeded", "pm_1")]

    assert run(store, payments, publisher) == {Outcome.CHARGED: 1}

    record = store.require(donation.donation_id)
    assert (record.status, record.payment_intent_id, record.followups_published) == (
        DonationStatus.SUCCEEDED,
        "pi_1",
        True,
    )
    assert publisher.steps_for(donation.donation_id) == [Step.TOKENIZE, Step.SEND_RECEIPT]
    assert payments.charged() == 0  # the reconciler never charges


def test_a_pending_donation_awaiting_3d_secure_is_recorded_so(store, payments, publisher):
    donation = pending(store)
    intent = IntentSnapshot("pi_1", "requires_action", None)
    payments.searches[donation.donation_id] = [intent]
    payments.intents["pi_1"] = intent

    # Recorded as awaiting 3-D Secure, then (same run, as a donation awaiting it) left to the donor
    assert run(store, payments, publisher) == {Outcome.REQUIRES_ACTION: 1, Outcome.WAITING: 1}
    assert store.require(donation.donation_id).status is DonationStatus.REQUIRES_ACTION


def test_a_pending_donation_stripe_declined_is_recorded_declined(store, payments, publisher):
    donation = pending(store)
    payments.searches[donation.donation_id] = [IntentSnapshot("pi_1", "requires_payment_method", None, "do_not_honor")]

    assert run(store, payments, publisher) == {Outcome.DECLINED: 1}
    assert store.require(donation.donation_id).decline_code == "do_not_honor"


def test_a_processing_payment_is_waited_for(store, payments, publisher):
    donation = pending(store)
    payments.searches[donation.donation_id] = [IntentSnapshot("pi_1", "processing", None)]

    assert run(store, payments, publisher) == {Outcome.WAITING: 1}
    assert store.require(donation.donation_id).status is DonationStatus.PENDING


def test_nothing_at_stripe_means_never_charged_only_after_the_idempotency_window(store, payments, publisher):
    donation = pending(store)

    # Within Stripe's 24 h window the donor's retry may still charge it (and search may lag): wait
    assert run(store, payments, publisher) == {Outcome.WAITING: 1}
    # After it, nothing found means nothing was charged
    assert run(store, payments, publisher, after=timedelta(hours=25)) == {Outcome.FAILED: 1}
    assert store.require(donation.donation_id).failure_reason == "reconcile:not_charged"


def awaiting_3ds(store, payments, status, **intent):
    donation = pending(store)
    store.mark_requires_action(donation.donation_id, "pi_3ds")
    payments.intents["pi_3ds"] = IntentSnapshot("pi_3ds", status, "pm_1", **intent)
    return donation


def test_3d_secure_finished_after_the_donor_left_is_recorded_and_published(store, payments, publisher):
    donation = awaiting_3ds(store, payments, "succeeded")

    assert run(store, payments, publisher) == {Outcome.CHARGED: 1}
    assert store.require(donation.donation_id).followups_published


def test_3d_secure_failed_is_recorded_canceled_with_the_reason(store, payments, publisher):
    donation = awaiting_3ds(store, payments, "canceled", authentication_failed=True)

    assert run(store, payments, publisher) == {Outcome.CANCELED: 1}
    assert store.require(donation.donation_id).failure_reason == "authentication_failed"


def test_3d_secure_abandoned_is_canceled_at_stripe_only_after_the_action_timeout(store, payments, publisher):
    donation = awaiting_3ds(store, payments, "requires_action")

    assert run(store, payments, publisher) == {Outcome.WAITING: 1}
    assert ("cancel", "pi_3ds") not in payments.calls

    assert run(store, payments, publisher, after=timedelta(hours=25)) == {Outcome.CANCELED: 1}
    assert ("cancel", "pi_3ds") in payments.calls  # canceled first: a late authentication takes no money
    assert store.require(donation.donation_id).failure_reason == "authentication_abandoned"


def test_a_charged_donation_whose_follow_ups_were_lost_is_published(store, payments, publisher):
    donation = pending(store)
    store.mark_charged(donation.donation_id, "pi_1", "pm_1")  # the function died before publishing

    assert run(store, payments, publisher) == {Outcome.PUBLISHED: 1}
    assert publisher.steps_for(donation.donation_id) == [Step.TOKENIZE, Step.SEND_RECEIPT]


def test_a_publish_that_fails_again_is_an_error_for_the_next_run(store, payments, publisher):
    donation = pending(store)
    store.mark_charged(donation.donation_id, "pi_1", "pm_1")
    publisher.failures.append(ConnectionError("SQS unreachable"))

    assert run(store, payments, publisher) == {Outcome.ERROR: 1}
    assert run(store, payments, publisher) == {Outcome.PUBLISHED: 1}


def test_a_stripe_failure_is_an_error_and_the_donation_stays_for_the_next_run(store, payments, publisher):
    donation = pending(store)
    payments.outage = ConnectionError("Stripe unreachable")

    assert run(store, payments, publisher) == {Outcome.ERROR: 3}  # the donation, and the sweep's two stretches
    assert store.require(donation.donation_id).status is DonationStatus.PENDING


def test_a_donation_still_worked_on_is_left_alone(store, payments, publisher):
    pending(store)

    assert run(store, payments, publisher, after=timedelta(seconds=30)) == {}  # within the grace period
    assert _besides_the_sweep(payments.calls) == []


def test_a_donation_older_than_the_max_age_is_reported_not_retried(store, payments, publisher):
    pending(store)

    assert run(store, payments, publisher, after=timedelta(days=8)) == {Outcome.STALE: 1}
    assert _besides_the_sweep(payments.calls) == []


def _besides_the_sweep(calls: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [call for call in calls if call[0] != "succeeded_between"]
