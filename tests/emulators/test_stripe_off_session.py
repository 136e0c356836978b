"""Saved cards charged off-session, as Stripe's test cards behave (docs.stripe.com/testing, "Authentication
and setup"), through the real SDK: what monthly renewals (donations.renewals) rely on."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import stripe

from simulator.emulators.stripe import StripeControl, StripeEmulator

pytestmark = pytest.mark.integration

StripeFactory = Callable[..., stripe.StripeClient]


def _saved(client: stripe.StripeClient, test_card: str) -> tuple[str, str]:
    """(Customer, PaymentMethod): the test card attached to a new Customer, as the tokenize step saves it."""
    customer = client.v1.customers.create(params={"email": "ada@example.org"})
    method = client.v1.payment_methods.attach(test_card, params={"customer": customer.id})
    return customer.id, method.id


def _off_session(client: stripe.StripeClient, customer: str | None, method: str) -> stripe.PaymentIntent:
    params = stripe.params.PaymentIntentCreateParams(
        amount=2500,
        currency="usd",
        payment_method=method,
        allowed_payment_method_types=["card"],
        off_session=True,
        confirm=True,
    )
    if customer is not None:
        params["customer"] = customer
    return client.v1.payment_intents.create(params=params)


@pytest.mark.parametrize(
    "test_card",
    [
        "pm_card_visa",
        # 4000003800000446: off-session payments succeed as if the card had been set up.
        "pm_card_authenticationRequiredSetupForOffSession",
    ],
)
def test_a_saved_card_is_charged_off_session(stripe_client: StripeFactory, test_card: str) -> None:
    client = stripe_client()
    customer, method = _saved(client, test_card)

    intent = _off_session(client, customer, method)

    assert (intent.status, intent.customer, intent.payment_method) == ("succeeded", customer, method)


@pytest.mark.parametrize(
    ("test_card", "code", "decline_code"),
    [
        # 4000002760003184: always needs authentication; off-session that is the decline authentication_required.
        ("pm_card_authenticationRequired", "authentication_required", "authentication_required"),
        # 4000002500003155 never set up by a payment: it still needs authentication.
        ("pm_card_authenticationRequiredOnSetup", "authentication_required", "authentication_required"),
        # 4000000000000341: attaches, then every charge fails.
        ("pm_card_chargeCustomerFail", "card_declined", "generic_decline"),
        # 4000008260003178: off-session payments are declined for insufficient funds.
        ("pm_card_authenticationRequiredChargeDeclinedInsufficientFunds", "card_declined", "insufficient_funds"),
    ],
)
def test_saved_cards_that_fail_off_session_raise_their_card_error(
    stripe_client: StripeFactory, test_card: str, code: str, decline_code: str
) -> None:
    client = stripe_client()
    customer, method = _saved(client, test_card)

    with pytest.raises(stripe.CardError) as caught:
        _off_session(client, customer, method)

    assert (caught.value.code, caught.value.error.decline_code) == (code, decline_code)
    intent = caught.value.error.payment_intent
    assert intent is not None and intent.status == "requires_payment_method"


def test_a_card_set_up_on_session_is_then_charged_off_session_without_authentication(
    stripe_emu: StripeEmulator, stripe_client: StripeFactory
) -> None:
    # Given 4000002500003155 paid on-session with setup_future_usage, authenticated by the donor
    client = stripe_client()
    customer = client.v1.customers.create(params={"email": "ada@example.org"})
    first = client.v1.payment_intents.create(
        params={
            "amount": 2500,
            "currency": "usd",
            "customer": customer.id,
            "payment_method": "pm_card_authenticationRequiredOnSetup",
            "allowed_payment_method_types": ["card"],
            "setup_future_usage": "off_session",
            "confirm": True,
        }
    )
    assert first.status == "requires_action"
    StripeControl(stripe_emu.url).authenticate(first.id, "succeed")
    method = client.v1.payment_intents.retrieve(first.id).payment_method
    assert isinstance(method, str)

    # When the saved card is charged off-session
    renewal = _off_session(client, customer.id, method)

    # Then it needs no authentication
    assert renewal.status == "succeeded"


def test_off_session_without_a_customer_is_refused_before_anything_is_charged(
    stripe_emu: StripeEmulator, stripe_client: StripeFactory
) -> None:
    client = stripe_client()

    with pytest.raises(stripe.InvalidRequestError) as caught:
        _off_session(client, None, "pm_card_visa")

    assert caught.value.param == "customer"
    assert stripe_emu.payment_intents_created == 0


def test_the_insufficient_funds_card_declines_even_after_the_donor_authenticates(
    stripe_emu: StripeEmulator, stripe_client: StripeFactory
) -> None:
    # Given 4000008260003178 paid on-session: it asks for authentication first
    client = stripe_client()
    pi = client.v1.payment_intents.create(
        params={
            "amount": 2500,
            "currency": "usd",
            "payment_method": "pm_card_authenticationRequiredChargeDeclinedInsufficientFunds",
            "allowed_payment_method_types": ["card"],
            "confirm": True,
        }
    )
    assert pi.status == "requires_action"

    # When the donor authenticates
    StripeControl(stripe_emu.url).authenticate(pi.id, "succeed")

    # Then the payment is declined for insufficient funds all the same
    after = client.v1.payment_intents.retrieve(pi.id)
    assert after.status == "requires_payment_method"
    assert after.last_payment_error is not None and after.last_payment_error.decline_code == "insufficient_funds"
    assert [e["type"] for e in stripe_emu.events][-1] == "payment_intent.payment_failed"
