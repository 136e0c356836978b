"""Stripe's stored server errors: a key that Stripe answered with a saved 500 is never replayed for an answer.

Stripe saves a request's result under its idempotency key once the endpoint began executing, 500s
included, and replays it for 24 h (docs.stripe.com/api/idempotent_requests); such answers carry
``Stripe-Should-Retry: false`` and the SDK does not retry them. The emulator's ``stored_error`` fault
is that: ``phase="before"`` Stripe did nothing, ``phase="after"`` it acted and still answered 500.
"""

import pytest
import stripe

from donations.models import DonationStatus, StepStatus
from donations.payments import attempt_key
from tests.support.keys import a_key, donation_id_for
from tests.support.world import DONATION

pytestmark = pytest.mark.integration

CREATE = {"path_prefix": "/v1/payment_intents", "method": "POST"}


def _stored_500(world, phase, **where):
    world.stripe.faults.add("stored_error", status=500, phase=phase, times=1, **(where or CREATE))


def test_a_stored_500_before_stripe_acted_ends_in_one_charge_under_a_new_attempt(world):
    # Given Stripe stored a 500 under the charge's key without creating anything
    _stored_500(world, "before")
    first = world.post(DONATION, key=a_key("key-stored-before"))
    assert first.status == 503 and int(first.headers["Retry-After"]) == 30
    [donation_id] = world.donation_ids()
    record = world.record(donation_id)
    assert (record.status, record.charge_attempt, record.charge_attempt_spent) == (DonationStatus.PENDING, 0, True)

    # When the donor retries at once: Stripe has nothing for that attempt, but it is too recent to be sure
    creates = world.stripe.requests.get("POST /v1/payment_intents", 0)
    early = world.post(DONATION, key=a_key("key-stored-before"))
    assert early.status == 503 and 0 < int(early.headers["Retry-After"]) <= 30
    assert world.stripe.requests.get("POST /v1/payment_intents", 0) == creates  # the spent key is not replayed

    # And once the attempt is old enough: a new attempt, a new key, one charge
    world.age_charge_attempt(donation_id, 31)
    answer = world.post(DONATION, key=a_key("key-stored-before"))
    assert answer.status == 201 and answer.body["donation_id"] == donation_id
    [intent] = world.stripe.intents_for(donation_id)
    assert intent["metadata"]["charge_attempt"] == "1" and intent["status"] == "succeeded"
    assert world.stripe.charges_for(donation_id) == 1
    assert world.record(donation_id).charge_attempt == 1

    # Then a further retry is answered from the record, without Stripe
    requests = world.stripe_requests()
    assert world.post(DONATION, key=a_key("key-stored-before")).status == 201
    assert world.stripe_requests() == requests


def test_a_stored_500_after_stripe_charged_is_found_and_never_charged_again(world):
    # Given Stripe charged, then stored and answered a 500 (the SDK does not retry it)
    _stored_500(world, "after")
    assert world.post(DONATION, key=a_key("key-stored-after")).status == 503
    [donation_id] = world.donation_ids()
    assert world.stripe.charges_for(donation_id) == 1

    # When the donor retries, even at once: Stripe's list shows the attempt's PaymentIntent succeeded
    answer = world.post(DONATION, key=a_key("key-stored-after"))

    # Then the donation is recorded as charged, once, and its follow-ups run
    assert answer.status == 201
    assert world.stripe.payment_intents_created == 1 and world.stripe.charges_for(donation_id) == 1
    world.drain()
    record = world.record(donation_id)
    assert record.status is DonationStatus.SUCCEEDED and record.charge_attempt == 0
    assert record.receipt_status is StepStatus.DONE and len(world.sendgrid.outbox_for(donation_id)) == 1


def test_a_spent_attempts_unconfirmed_intent_is_canceled_before_a_new_attempt(world):
    # Given the spent attempt left a PaymentIntent that was created but never confirmed
    _stored_500(world, "before")
    assert world.post(DONATION, key=a_key("key-stored-left")).status == 503
    [donation_id] = world.donation_ids()
    client = stripe.StripeClient("sk_test_local_emulator", base_addresses={"api": world.stripe.url})
    leftover = client.v1.payment_intents.create(
        params={
            "amount": DONATION["amount"],
            "currency": DONATION["currency"],
            "payment_method": "pm_card_visa",
            "metadata": {"donation_id": donation_id, "charge_attempt": "0"},
        }
    )
    world.age_charge_attempt(donation_id, 31)

    # When the donor retries
    assert world.post(DONATION, key=a_key("key-stored-left")).status == 201

    # Then the leftover can never be confirmed, and exactly one payment succeeded
    assert world.stripe.payment_intent(leftover.id)["status"] == "canceled"
    statuses = sorted(intent["status"] for intent in world.stripe.intents_for(donation_id))
    assert statuses == ["canceled", "succeeded"]
    assert world.stripe.charges_for(donation_id) == 1


def test_a_spent_attempt_declined_is_the_donors_answer(world):
    _stored_500(world, "after")
    declined = {**DONATION, "payment_method": "pm_card_chargeDeclined"}
    assert world.post(declined, key=a_key("key-stored-declined")).status == 503

    answer = world.post(declined, key=a_key("key-stored-declined"))

    assert answer.status == 402 and answer.body["error"]["code"] == "card_declined"
    [donation_id] = world.donation_ids()
    assert world.record(donation_id).status is DonationStatus.DECLINED
    assert world.stripe.payment_intents_created == 1


def test_the_reconciler_finds_a_charge_behind_a_stored_500_when_the_donor_never_retries(world):
    from tests.integration.test_reconciler import _past_grace

    _stored_500(world, "after")
    assert world.post(DONATION, key=a_key("key-stored-gone")).status == 503
    [donation_id] = world.donation_ids()

    assert world.reconcile(now=_past_grace(world)) == {"charged": 1}
    world.drain()
    assert world.record(donation_id).receipt_status is StepStatus.DONE
    assert world.stripe.charges_for(donation_id) == 1


@pytest.mark.parametrize(
    ("where", "phase"),
    [
        ({"path_prefix": "/v1/customers", "method": "POST"}, "before"),
        ({"path_prefix": "/v1/customers", "method": "POST"}, "after"),
        ({"path_prefix": "/v1/payment_methods", "method": "POST"}, "after"),
    ],
    ids=["customer-before", "customer-after", "attach-after"],
)
def test_tokenize_moves_past_a_stored_500_without_a_second_customer(world, where, phase):
    # Given the charge went through, and Stripe stores a 500 for one of the tokenize step's calls
    donation_id = world.post({**DONATION, "save_card": True}, key=a_key(f"key-tokenize-{phase}")).body["donation_id"]
    _stored_500(world, phase, **where)

    # When the step is delivered, fails, and is delivered again after its backoff
    assert world.deliver("tokenize").failed_ids
    assert world.record(donation_id).card_attempt == 1
    world.expire_backoffs()
    assert world.deliver("tokenize").failed_ids == []

    # Then the card is saved once, on one Customer, in far fewer receives than a 24 h replay would burn
    record = world.record(donation_id)
    assert record.card_status is StepStatus.DONE
    customers = [c for c in world.stripe.customers if c["metadata"].get("donation_id") == donation_id]
    assert [c["id"] for c in customers] == [record.customer_id]
    assert world.stripe.payment_method(record.payment_method_id)["customer"] == record.customer_id


def test_a_charge_in_flight_across_a_release_that_changed_its_parameters_is_charged_once(world):
    # Given the previous release charged attempt 0 with other parameters (here: no expand), and the
    # answer was lost. Stripe refuses that key with any other parameters, for 24 h
    # (docs.stripe.com/api/idempotent_requests: "compares incoming parameters to those of the original request").
    donation_id = donation_id_for("key-across-a-release")
    client = stripe.StripeClient("sk_test_local_emulator", base_addresses={"api": world.stripe.url})
    client.v1.payment_intents.create(
        params={
            "amount": DONATION["amount"],
            "currency": DONATION["currency"],
            "payment_method": "pm_card_visa",
            "confirm": True,
            "allowed_payment_method_types": ["card"],
            "metadata": {"donation_id": donation_id, "charge_attempt": "0"},
        },
        options={"idempotency_key": attempt_key(donation_id, "charge", 0)},
    )
    assert world.stripe.charges_for(donation_id) == 1

    # When the donor retries under the new release: the key is spent (not a 422 that would send the
    # donor to a new Idempotency-Key, and a second charge)
    first = world.post(DONATION, key=a_key("key-across-a-release"))
    assert first.status == 503 and "Retry-After" in first.headers
    assert world.record(donation_id).charge_attempt_spent

    # Then the next retry finds what the spent key did: charged, once
    answer = world.post(DONATION, key=a_key("key-across-a-release"))
    assert answer.status == 201 and answer.body["donation_id"] == donation_id
    assert world.stripe.payment_intents_created == 1 and world.stripe.charges_for(donation_id) == 1
    assert world.record(donation_id).status is DonationStatus.SUCCEEDED
