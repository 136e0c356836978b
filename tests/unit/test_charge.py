"""The charge's decisions (donations.charge.submit_donation) against in-memory ports."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from donations.charge import submit_donation
from donations.errors import (
    CardDeclined,
    ChargeIndeterminate,
    IdempotencyKeyReused,
    InvalidDonation,
    RequestInProgress,
    ServiceUnavailable,
    WeakIdempotencyKey,
)
from donations.identifiers import legacy_donation_id
from donations.models import DonationStatus, Step
from donations.ports import ChargeOutcome, ChargeState, IntentSnapshot
from tests.support.keys import IDENTIFIERS, a_key, donation_id_for
from tests.unit.conftest import BODY, Request

KEY = a_key("key-1")

pytestmark = pytest.mark.unit


def submit(store, payments, publisher, key=KEY, legacy_ids=False, **changes):
    return submit_donation(
        Request.model_validate({**BODY, **changes}),
        key,
        "corr-1",
        store=store,
        payments=payments,
        publisher=publisher,
        lease_seconds=10,
        identifiers=IDENTIFIERS,
        legacy_ids=legacy_ids,
    )


def declined() -> CardDeclined:
    return CardDeclined("Your card has insufficient funds.", code="card_declined", decline_code="insufficient_funds")


def test_a_new_donation_is_charged_once_recorded_and_its_follow_ups_published(store, payments, publisher):
    # When a donor submits a donation
    answer = submit(store, payments, publisher)

    # Then it is charged, recorded as succeeded, and both follow-ups are queued
    donation_id = donation_id_for("key-1")
    assert (answer.status_code, answer.body) == (201, {"donation_id": donation_id, "status": "succeeded"})
    record = store.require(donation_id)
    assert record.status is DonationStatus.SUCCEEDED and record.followups_published
    assert record.charging_until is None and record.unsettled_since is None
    assert payments.charged() == 1
    assert publisher.steps_for(donation_id) == [Step.TOKENIZE, Step.SEND_RECEIPT]


def test_a_resubmission_is_answered_from_the_record_without_a_second_charge(store, payments, publisher):
    first = submit(store, payments, publisher)

    again = submit(store, payments, publisher)

    assert again == first
    assert payments.charged() == 1
    assert len(publisher.published) == 2  # published once


def test_the_same_key_with_another_body_is_refused(store, payments, publisher):
    submit(store, payments, publisher)

    with pytest.raises(IdempotencyKeyReused):
        submit(store, payments, publisher, amount=9900)
    assert payments.charged() == 1


def test_a_resubmission_while_the_first_request_charges_is_told_to_retry(store, payments, publisher):
    # Given a request that holds the donation (it is charging right now)
    store.create_pending(donation_id_for("key-1"), Request.model_validate(BODY), "corr-0", lease_seconds=30)

    # When the donor submits again, Then nothing reaches Stripe a second time
    with pytest.raises(RequestInProgress):
        submit(store, payments, publisher)
    assert payments.charged() == 0


def test_a_decline_is_recorded_and_answered_402_also_on_resubmission(store, payments, publisher):
    payments.charges.append(declined())

    answer = submit(store, payments, publisher)
    again = submit(store, payments, publisher)

    assert answer.status_code == again.status_code == 402
    assert answer.body["error"]["decline_code"] == "insufficient_funds"
    record = store.require(donation_id_for("key-1"))
    assert (record.status, record.decline_code) == (DonationStatus.DECLINED, "insufficient_funds")
    assert payments.charged() == 1 and publisher.published == []


def test_an_invalid_donation_fails_the_record_and_is_not_charged_again(store, payments, publisher):
    payments.charges.append(InvalidDonation("The amount is too small.", code="amount_too_small"))

    with pytest.raises(InvalidDonation):
        submit(store, payments, publisher)
    with pytest.raises(InvalidDonation, match="new Idempotency-Key"):
        submit(store, payments, publisher)

    record = store.require(donation_id_for("key-1"))
    assert (record.status, record.failure_reason) == (DonationStatus.FAILED, "amount_too_small")
    assert payments.charged() == 1


def test_a_503_leaves_the_donation_pending_and_the_retry_resumes_it(store, payments, publisher):
    # Given Stripe unavailable for the first request
    payments.charges.append(ServiceUnavailable("Stripe is down."))
    with pytest.raises(ServiceUnavailable):
        submit(store, payments, publisher)
    record = store.require(donation_id_for("key-1"))
    assert record.status is DonationStatus.PENDING and record.charging_until is None  # the lease is given back

    # When the donor retries with the same key, Then the same donation is charged under the same attempt
    answer = submit(store, payments, publisher)

    assert answer.status_code == 201
    assert payments.calls == [("charge", f"{record.donation_id}#0"), ("charge", f"{record.donation_id}#0")]


def test_a_stored_server_error_moves_to_a_new_attempt_only_once_stripe_shows_nothing_was_charged(
    store, payments, publisher
):
    donation_id = donation_id_for("key-1")
    # Given Stripe stored a server error under the first attempt's key
    payments.charges.append(ChargeIndeterminate("Stripe failed."))
    with pytest.raises(ChargeIndeterminate):
        submit(store, payments, publisher)
    assert store.require(donation_id).charge_attempt_spent

    # When the donor retries at once, Then they are told when to retry, and nothing is charged
    with pytest.raises(ServiceUnavailable) as wait:
        submit(store, payments, publisher)
    assert 0 < wait.value.retry_after_seconds <= ChargeIndeterminate.retry_after_seconds
    assert payments.charged() == 1

    # When they retry after the attempt settled and Stripe lists no PaymentIntent for it
    settled = datetime.now(UTC) - timedelta(seconds=ChargeIndeterminate.retry_after_seconds + 1)
    store.change(donation_id, charge_attempt_started_at=settled.isoformat().replace("+00:00", "Z"))
    answer = submit(store, payments, publisher)

    # Then a new attempt (a new Stripe idempotency key) charges it
    assert answer.status_code == 201
    assert payments.calls[-1] == ("charge", f"{donation_id}#1")
    assert store.require(donation_id).charge_attempt == 1


def test_a_stored_server_error_whose_payment_succeeded_is_answered_without_charging_again(store, payments, publisher):
    donation_id = donation_id_for("key-1")
    payments.charges.append(ChargeIndeterminate("Stripe failed."))
    with pytest.raises(ChargeIndeterminate):
        submit(store, payments, publisher)
    # Given Stripe's list shows the spent attempt's PaymentIntent succeeded after all
    payments.attempts[(donation_id, 0)] = IntentSnapshot("pi_found", "succeeded", "pm_found")

    answer = submit(store, payments, publisher)

    assert answer.status_code == 201
    assert payments.charged() == 1
    record = store.require(donation_id)
    assert (record.payment_intent_id, record.charge_attempt) == ("pi_found", 0)


def test_a_spent_attempt_that_could_still_be_confirmed_is_canceled_before_a_new_one(store, payments, publisher):
    donation_id = donation_id_for("key-1")
    payments.charges.append(ChargeIndeterminate("Stripe failed."))
    with pytest.raises(ChargeIndeterminate):
        submit(store, payments, publisher)
    payments.attempts[(donation_id, 0)] = IntentSnapshot("pi_open", "requires_confirmation", None)

    submit(store, payments, publisher)

    assert ("cancel", "pi_open") in payments.calls
    assert payments.calls[-1] == ("charge", f"{donation_id}#1")


def test_3d_secure_is_answered_202_with_the_client_secret_and_nothing_published(store, payments, publisher):
    payments.charges.append(ChargeOutcome(ChargeState.REQUIRES_ACTION, "pi_3ds", None, "pi_3ds_secret"))

    answer = submit(store, payments, publisher)

    assert answer.status_code == 202
    assert answer.body["status"] == "requires_action" and answer.body["client_secret"] == "pi_3ds_secret"
    assert store.require(donation_id_for("key-1")).status is DonationStatus.REQUIRES_ACTION
    assert publisher.published == []


def test_a_failed_publish_still_answers_201_and_leaves_the_donation_to_the_reconciler(store, payments, publisher):
    # Given SQS unavailable right after the charge
    publisher.failures.append(ConnectionError("SQS unreachable"))

    answer = submit(store, payments, publisher)

    # Then the donor hears 201; the record says unpublished, keeps its place in the reconciler's
    # index, and the publish lease is given back
    assert answer.status_code == 201
    record = store.require(donation_id_for("key-1"))
    assert record.status is DonationStatus.SUCCEEDED and not record.followups_published
    assert record.unsettled_since is not None and record.followups_claim_until is None


def test_a_charge_the_webhook_recorded_first_is_not_published_twice(store, payments, publisher):
    donation_id = donation_id_for("key-1")

    class WebhookFirst:
        """Stripe's webhook records the charge (and publishes) while the charge request waits on Stripe."""

        def __getattr__(self, name):
            return getattr(payments, name)

        def charge(self, donation):
            outcome = payments.charge(donation)
            charged = store.mark_charged(donation_id, outcome.payment_intent_id, outcome.payment_method_id)
            publisher.publish(charged, "webhook")
            store.mark_followups_published(donation_id)
            return outcome

    answer = submit(store, WebhookFirst(), publisher)

    assert answer.status_code == 201
    assert publisher.steps_for(donation_id) == [Step.TOKENIZE, Step.SEND_RECEIPT]  # once, by the webhook


# -- keyed ids --------------------------------------------------------------------------------------


def test_a_weak_idempotency_key_is_refused_before_anything_is_read_written_or_charged(store, payments, publisher):
    with pytest.raises(WeakIdempotencyKey):
        submit(store, payments, publisher, key="demo-1")

    assert store.records == {}
    assert payments.charged() == 0 and publisher.published == []


def test_a_donation_recorded_under_its_old_unkeyed_id_is_resumed_by_its_retry(store, payments, publisher):
    # Given a donation recorded before ids were keyed, left pending (its Stripe call failed with a 503)
    legacy_id = legacy_donation_id(KEY)
    store.create_pending(legacy_id, Request.model_validate(BODY), "corr-0", lease_seconds=30)
    store.release_charging(legacy_id)

    # When the donor retries with the same key after the upgrade
    answer = submit(store, payments, publisher, legacy_ids=True)

    # Then the old record is charged, once, and no second donation appears
    assert answer.body == {"donation_id": legacy_id, "status": "succeeded"}
    assert list(store.records) == [legacy_id]
    assert payments.charged() == 1


def test_without_the_legacy_lookup_a_key_names_only_its_keyed_donation(store, payments, publisher):
    store.create_pending(legacy_donation_id(KEY), Request.model_validate(BODY), "corr-0", lease_seconds=30)

    answer = submit(store, payments, publisher, legacy_ids=False)

    assert answer.body["donation_id"] == donation_id_for("key-1") != legacy_donation_id(KEY)
