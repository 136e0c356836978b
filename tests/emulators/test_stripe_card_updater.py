"""The Stripe emulator's card account updater: the card network updates a saved card in place and Stripe sends
``payment_method.automatically_updated`` ("Occurs whenever a payment method's details are automatically updated by
the network", docs.stripe.com/api/events/types; listed in the pinned SDK's stripe.Event types). The event's object
is the PaymentMethod (stripe.PaymentMethod, same id and Customer) with its new ``card`` (stripe.PaymentMethod.Card:
exp_month, exp_year, last4, brand, fingerprint). Test-only trigger: ``POST /_emulator/payment_methods/{id}/
update_card`` (StripeControl.update_card). Test cards: docs.stripe.com/testing ("Declined payments")."""

from __future__ import annotations

import inspect
from datetime import UTC, datetime

import pytest
import stripe

from simulator.emulators.control import EmulatorControlError
from simulator.emulators.stripe import StripeControl, StripeEmulator
from tests.emulators.conftest import StripeFactory
from tests.emulators.test_stripe_setup_intents import _off_session

pytestmark = pytest.mark.integration

NEW_YEAR = datetime.now(UTC).year + 4


def _saved(client: stripe.StripeClient, test_card: str) -> tuple[str, str]:
    customer = client.v1.customers.create(params={"email": "ada@example.org"}).id
    return customer, client.v1.payment_methods.attach(test_card, params={"customer": customer}).id


def test_the_network_renews_an_expired_card_in_place_and_stripe_sends_the_event(
    stripe_emu: StripeEmulator, stripe_client: StripeFactory
) -> None:
    # Given a saved card declined expired_card off-session (4000000000000069)
    client = stripe_client()
    customer, method = _saved(client, "pm_card_chargeDeclinedExpiredCard")
    with pytest.raises(stripe.CardError) as declined:
        _off_session(client, customer, method)
    assert declined.value.code == "expired_card"

    # When the network gives it a new expiry
    answer = StripeControl(stripe_emu.url).update_card(method, 9, NEW_YEAR)

    # Then the PaymentMethod keeps its id and Customer and has the new expiry, read through the SDK
    updated = client.v1.payment_methods.retrieve(method)
    assert (answer["id"], updated.customer) == (method, customer)
    assert updated.card is not None and (updated.card.exp_month, updated.card.exp_year) == (9, NEW_YEAR)
    assert updated.card.last4 == "0069"
    # ... Stripe sent the event, caused by Stripe itself (no request), its object that PaymentMethod
    sent = [e for e in stripe_emu.events if e["type"] == "payment_method.automatically_updated"]
    assert len(sent) == 1 and '"payment_method.automatically_updated"' in inspect.getsource(stripe.Event)
    event = stripe.Event.construct_from(sent[0], "sk_test_emulator")
    assert event.request is not None and event.request.id is None
    assert isinstance(event.data.object, stripe.PaymentMethod) and event.data.object.id == method
    assert event.data.object.card is not None and event.data.object.card.exp_year == NEW_YEAR
    # ... and the card is charged off-session again
    assert _off_session(client, customer, method).status == "succeeded"


def test_a_reissued_card_gets_the_new_number_s_last4_and_fingerprint(
    stripe_emu: StripeEmulator, stripe_client: StripeFactory
) -> None:
    client = stripe_client()
    customer, method = _saved(client, "pm_card_chargeDeclinedLostCard")
    before = client.v1.payment_methods.retrieve(method).card
    assert before is not None

    StripeControl(stripe_emu.url).update_card(method, 3, NEW_YEAR, "4242424242424242")

    after = client.v1.payment_methods.retrieve(method).card
    assert after is not None and (after.last4, after.exp_month) == ("4242", 3)
    assert after.fingerprint != before.fingerprint
    assert _off_session(client, customer, method).status == "succeeded"


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"exp_month": 13, "exp_year": NEW_YEAR}, 400),
        ({"exp_month": 1, "exp_year": 2001}, 400),
        ({"exp_month": "9", "exp_year": NEW_YEAR}, 400),
        ({"exp_month": 9, "exp_year": NEW_YEAR, "number": "4000000000000000"}, 400),
    ],
)
def test_a_bad_update_is_refused_and_changes_nothing(
    stripe_emu: StripeEmulator, stripe_client: StripeFactory, body: dict[str, object], status: int
) -> None:
    client = stripe_client()
    _, method = _saved(client, "pm_card_visa")
    before = client.v1.payment_methods.retrieve(method).to_dict()
    with pytest.raises(EmulatorControlError) as refused:
        StripeControl(stripe_emu.url).call("POST", f"payment_methods/{method}/update_card", body)
    assert refused.value.status == status
    assert client.v1.payment_methods.retrieve(method).to_dict() == before
    assert "payment_method.automatically_updated" not in [e["type"] for e in stripe_emu.events]


def test_only_a_saved_card_that_exists_is_updated(stripe_emu: StripeEmulator, stripe_client: StripeFactory) -> None:
    control = StripeControl(stripe_emu.url)
    with pytest.raises(EmulatorControlError) as unknown:
        control.update_card("pm_missing", 9, NEW_YEAR)
    assert unknown.value.status == 404
    unsaved = stripe_client().v1.payment_methods.retrieve("pm_card_visa").id  # a fresh card, no Customer
    with pytest.raises(EmulatorControlError) as refused:
        control.update_card(unsaved, 9, NEW_YEAR)
    assert refused.value.status == 400
    assert "payment_method.automatically_updated" not in [e["type"] for e in stripe_emu.events]
