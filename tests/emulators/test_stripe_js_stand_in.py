"""What the form's Stripe.js stand-in relies on in the Stripe emulator: PaymentMethods created from a card's
details with a publishable key (docs.stripe.com/api/payment_methods/create, docs.stripe.com/keys), the
PaymentIntent read with its client secret, and the stand-in's files under /v3/."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import requests
import stripe

from simulator.emulators.stripe import StripeControl, StripeEmulator
from tests.support.payment_element import PUBLISHABLE_KEY_HEADERS, charge_card, post_card

pytestmark = pytest.mark.integration

StripeFactory = Callable[..., stripe.StripeClient]
PUBLISHABLE = PUBLISHABLE_KEY_HEADERS


def test_a_publishable_key_creates_a_card_payment_method_that_a_secret_key_charges(
    stripe_emu: StripeEmulator, stripe_client: StripeFactory
) -> None:
    # Given the card details the Payment Element's frame posts with the publishable key
    created = post_card(stripe_emu.url)

    # Then it is a card PaymentMethod, shaped as the SDK's PaymentMethod, without the number
    assert created.status_code == 200, created.text
    pm = stripe.PaymentMethod.construct_from(created.json(), "sk_test_x")
    assert pm.type == "card" and pm.card is not None and pm.card.last4 == "4242" and pm.card.exp_year == 2034
    assert pm.billing_details.name == "Ada Lovelace" and "4242424242424242" not in created.text

    # And our server's charge (PaymentIntentCreateParams with allowed_payment_method_types=[card]) takes it
    intent = charge_card(stripe_client(), pm.id)
    assert intent.status == "succeeded" and intent.payment_method == pm.id


def test_card_numbers_are_checked_as_stripe_does(stripe_emu: StripeEmulator) -> None:
    def refused(**changes: str) -> dict[str, str]:
        answer = post_card(stripe_emu.url, **changes)
        assert answer.status_code == 402, answer.text
        return dict(answer.json()["error"])

    # docs.stripe.com/error-codes: a number failing the Luhn check, a past year, a bad security code
    assert refused(**{"card[number]": "4242424242424241"})["code"] == "incorrect_number"
    assert refused(**{"card[exp_year]": "2001"})["code"] == "invalid_expiry_year"
    assert refused(**{"card[exp_month]": "13"})["code"] == "invalid_expiry_month"
    assert refused(**{"card[cvc]": "1x"})["code"] == "invalid_cvc"
    # A real (non-test) number in test mode (docs.stripe.com/declines/codes: test_mode_live_card)
    assert refused(**{"card[number]": "4000056655665564"})["decline_code"] == "test_mode_live_card"


def test_a_test_token_makes_the_same_payment_method_with_a_secret_key(stripe_client: StripeFactory) -> None:
    # docs.stripe.com/testing: tok_visa stands for 4242 4242 4242 4242 (what make smoke sends to Stripe)
    pm = stripe_client().v1.payment_methods.create(params={"type": "card", "card": {"token": "tok_visa"}})
    assert pm.type == "card" and pm.card is not None and pm.card.last4 == "4242"


def test_a_publishable_key_may_do_only_what_stripe_js_does(
    stripe_emu: StripeEmulator, stripe_client: StripeFactory
) -> None:
    intent = stripe_client().v1.payment_intents.create(
        params={
            "amount": 2500,
            "currency": "usd",
            "payment_method": "pm_card_authenticationRequired",
            "confirm": True,
            "allowed_payment_method_types": ["card"],
        }
    )
    assert intent.status == "requires_action" and intent.client_secret
    url = f"{stripe_emu.url}/v1/payment_intents/{intent.id}"

    # Read with the client secret: yes; without it, or any other call: no
    with_secret = requests.get(url, params={"client_secret": intent.client_secret}, headers=PUBLISHABLE, timeout=5)
    assert with_secret.status_code == 200 and with_secret.json()["status"] == "requires_action"
    without = requests.get(url, headers=PUBLISHABLE, timeout=5)
    assert without.status_code == 400 and without.json()["error"]["param"] == "client_secret"
    charge = requests.post(f"{stripe_emu.url}/v1/payment_intents", data={"amount": "1"}, headers=PUBLISHABLE, timeout=5)
    assert charge.status_code == 401 and "publishable API key" in charge.json()["error"]["message"]

    # The stand-in's 3-D Secure challenge completes it through the emulator's authenticate route
    StripeControl(stripe_emu.url).authenticate(intent.id, "succeed")
    after = requests.get(url, params={"client_secret": intent.client_secret}, headers=PUBLISHABLE, timeout=5)
    assert after.json()["status"] == "succeeded"


@pytest.mark.parametrize(
    ("path", "content_type", "marker"),
    [
        ("/v3/", "text/javascript", "window.Stripe = Stripe"),
        ("/v3/elements/payment", "text/html", 'autocomplete="cc-number"'),
        ("/v3/authorize", "text/html", "Complete authentication"),
    ],
)
def test_the_stripe_js_stand_in_is_served_under_v3(
    stripe_emu: StripeEmulator, path: str, content_type: str, marker: str
) -> None:
    answer = requests.get(f"{stripe_emu.url}{path}", timeout=5)
    assert answer.status_code == 200 and answer.headers["Content-Type"].startswith(content_type)
    assert marker in answer.text
