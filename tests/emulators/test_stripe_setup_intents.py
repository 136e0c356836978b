"""SetupIntents in the Stripe emulator, through the real SDK and as Stripe.js's confirmCardSetup calls them: what
the manage page's card update relies on. References: stripe.params.SetupIntentCreateParams / ...ConfirmParams /
...RetrieveParams of the pinned SDK (the parameters), docs.stripe.com/payments/save-and-reuse ("Save payment
details for future payments"), docs.stripe.com/js/setup_intents/confirm_card_setup (the browser's confirm with
the client secret and a publishable key), docs.stripe.com/testing "Authentication and setup" (the test cards)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import requests
import stripe

from simulator.emulators.stripe import StripeControl, StripeEmulator
from tests.support.payment_element import PUBLISHABLE_KEY_HEADERS, post_card

pytestmark = pytest.mark.integration

StripeFactory = Callable[..., stripe.StripeClient]


def _setup_intent(client: stripe.StripeClient, customer: str) -> stripe.SetupIntent:
    # What donations.payments.StripePayments.start_card_setup asks (allowed_payment_method_types: endive has no
    # writable payment_method_types on SetupIntents either).
    params = stripe.params.SetupIntentCreateParams(
        customer=customer, usage="off_session", allowed_payment_method_types=["card"], metadata={"pledge_id": "pl_x"}
    )
    return client.v1.setup_intents.create(params=params)


def _new_setup(client: stripe.StripeClient) -> tuple[str, stripe.SetupIntent]:
    """A donor's Customer, and a SetupIntent for it."""
    customer = client.v1.customers.create(params={"email": "ada@example.org"}).id
    return customer, _setup_intent(client, customer)


def _confirm_in_browser(url: str, seti: stripe.SetupIntent, number: str) -> requests.Response:
    """Stripe.js confirmCardSetup: a PaymentMethod from the card, then the confirm with the client secret."""
    method = post_card(url, number).json()["id"]
    data = {"payment_method": method, "client_secret": seti.client_secret or ""}
    return requests.post(
        f"{url}/v1/setup_intents/{seti.id}/confirm", data=data, headers=PUBLISHABLE_KEY_HEADERS, timeout=5
    )


def _off_session(client: stripe.StripeClient, customer: str, method: str) -> stripe.PaymentIntent:
    return client.v1.payment_intents.create(
        params=stripe.params.PaymentIntentCreateParams(
            amount=2500,
            currency="usd",
            customer=customer,
            payment_method=method,
            allowed_payment_method_types=["card"],
            off_session=True,
            confirm=True,
        )
    )


def test_a_card_confirmed_in_the_browser_is_attached_to_the_customer_and_charged_off_session(
    stripe_emu: StripeEmulator, stripe_client: StripeFactory
) -> None:
    # Given a SetupIntent for a donor's Customer
    client = stripe_client()
    customer, seti = _new_setup(client)
    assert (seti.status, seti.usage, seti.customer) == ("requires_payment_method", "off_session", customer)
    assert seti.client_secret and seti.client_secret.startswith(f"{seti.id}_secret_")

    # When the page confirms it with 4242 4242 4242 4242
    answer = _confirm_in_browser(stripe_emu.url, seti, "4242424242424242")

    # Then it succeeded, the card is the Customer's, and our server reads it so (card expanded)
    assert answer.status_code == 200, answer.text
    done = client.v1.setup_intents.retrieve(seti.id, params={"expand": ["payment_method"]})
    assert done.status == "succeeded" and isinstance(done.payment_method, stripe.PaymentMethod)
    assert done.payment_method.customer == customer and done.payment_method.card is not None
    assert done.payment_method.card.last4 == "4242"
    assert _off_session(client, customer, done.payment_method.id).status == "succeeded"
    assert "setup_intent.succeeded" in [event["type"] for event in stripe_emu.events]


def test_a_card_that_needs_authentication_on_setup_is_then_charged_off_session_without_it(
    stripe_emu: StripeEmulator, stripe_client: StripeFactory
) -> None:
    # Given 4000002500003155 ("requires authentication for one-time payments ... once set up, off-session
    # payments need none"): the confirm asks for the donor's 3-D Secure
    client = stripe_client()
    customer, seti = _new_setup(client)
    answer = _confirm_in_browser(stripe_emu.url, seti, "4000002500003155")
    assert answer.json()["status"] == "requires_action"
    assert client.v1.setup_intents.retrieve(seti.id).payment_method is not None

    # When the donor passes the challenge
    StripeControl(stripe_emu.url).authenticate(seti.id, "succeed")

    # Then the card is set up: charged with the donor away, it needs no authentication
    method = client.v1.setup_intents.retrieve(seti.id).payment_method
    assert isinstance(method, str)
    assert _off_session(client, customer, method).status == "succeeded"


def test_a_failed_challenge_or_a_declined_card_saves_nothing(
    stripe_emu: StripeEmulator, stripe_client: StripeFactory
) -> None:
    client = stripe_client()
    customer = client.v1.customers.create(params={"email": "ada@example.org"}).id
    # A challenge the donor fails: back to requires_payment_method, setup_intent_authentication_failure
    failing = _setup_intent(client, customer)
    _confirm_in_browser(stripe_emu.url, failing, "4000002760003184")
    StripeControl(stripe_emu.url).authenticate(failing.id, "fail")
    after = client.v1.setup_intents.retrieve(failing.id)
    assert after.status == "requires_payment_method" and after.last_setup_error is not None
    assert after.last_setup_error.code == "setup_intent_authentication_failure"
    # A declined card (4000000000000002): its card error, 402
    declined = _setup_intent(client, customer)
    answer = _confirm_in_browser(stripe_emu.url, declined, "4000000000000002")
    assert answer.status_code == 402 and answer.json()["error"]["decline_code"] == "generic_decline"
    # Either way no card was attached to the Customer
    assert not [a for a in stripe_emu.attachments if a["customer"] == customer]


def test_4000000000000341_is_set_up_and_then_fails_to_charge(
    stripe_emu: StripeEmulator, stripe_client: StripeFactory
) -> None:
    # docs.stripe.com/testing: "Attaching this card to a Customer object succeeds, but attempts to charge the
    # customer fail."
    client = stripe_client()
    customer, seti = _new_setup(client)
    assert _confirm_in_browser(stripe_emu.url, seti, "4000000000000341").json()["status"] == "succeeded"
    method = client.v1.setup_intents.retrieve(seti.id).payment_method
    assert isinstance(method, str)
    with pytest.raises(stripe.CardError):
        _off_session(client, customer, method)


def test_the_browser_needs_the_client_secret_and_the_server_may_not_send_one(
    stripe_emu: StripeEmulator, stripe_client: StripeFactory
) -> None:
    client = stripe_client()
    _, seti = _new_setup(client)
    url = f"{stripe_emu.url}/v1/setup_intents/{seti.id}"
    method = post_card(stripe_emu.url).json()["id"]
    # A publishable key without the client secret, or with another one: refused, nothing confirmed
    bare = requests.post(f"{url}/confirm", data={"payment_method": method}, headers=PUBLISHABLE_KEY_HEADERS, timeout=5)
    wrong = requests.post(
        f"{url}/confirm",
        data={"payment_method": method, "client_secret": f"{seti.id}_secret_guessed"},
        headers=PUBLISHABLE_KEY_HEADERS,
        timeout=5,
    )
    assert (bare.status_code, wrong.status_code) == (400, 400)
    assert wrong.json()["error"]["param"] == "client_secret"
    assert client.v1.setup_intents.retrieve(seti.id).status == "requires_payment_method"
    # The server SDK's SetupIntentConfirmParams has no client_secret: a secret key sending one is refused
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.setup_intents.confirm(seti.id, params={"client_secret": seti.client_secret})  # type: ignore[typeddict-unknown-key]
    assert caught.value.code == "parameter_unknown"


def test_setup_intent_parameters_follow_the_pinned_api_version(stripe_client: StripeFactory) -> None:
    client = stripe_client()
    customer = client.v1.customers.create(params={"email": "ada@example.org"}).id
    # endive removed writable payment_method_types from SetupIntents (its changelog's code, not parameter_unknown)
    with pytest.raises(stripe.InvalidRequestError) as removed:
        client.v1.setup_intents.create(params={"customer": customer, "payment_method_types": ["card"]})  # type: ignore[typeddict-unknown-key]
    assert removed.value.code == "payment_method_types_no_longer_supported"
    with pytest.raises(stripe.InvalidRequestError) as usage:
        client.v1.setup_intents.create(params={"customer": customer, "usage": "sometimes"})  # type: ignore[typeddict-item]
    assert usage.value.param == "usage"
    # A card attached to another Customer cannot be set up for this one
    other = client.v1.customers.create(params={"email": "bob@example.org"}).id
    theirs = client.v1.payment_methods.attach("pm_card_visa", params={"customer": other}).id
    seti = _setup_intent(client, customer)
    with pytest.raises(stripe.InvalidRequestError) as foreign:
        client.v1.setup_intents.confirm(seti.id, params={"payment_method": theirs})
    assert foreign.value.param == "payment_method"
