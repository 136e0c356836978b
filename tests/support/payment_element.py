"""What Stripe.js's Payment Element posts to create a card PaymentMethod (docs.stripe.com/api/payment_methods/create),
with a publishable key, for the tests of the Stripe emulator and of the API that charges it."""

from __future__ import annotations

import requests
import stripe

PUBLISHABLE_KEY_HEADERS = {"Authorization": "Bearer pk_test_form"}


def card_details(number: str = "4242424242424242", **changes: str) -> dict[str, str]:
    """The form body for a card (Stripe's test numbers: docs.stripe.com/testing)."""
    return {
        "type": "card",
        "card[number]": number,
        "card[exp_month]": "12",
        "card[exp_year]": "34",
        "card[cvc]": "123",
        "billing_details[name]": "Ada Lovelace",
        **changes,
    }


def post_card(stripe_url: str, number: str = "4242424242424242", **changes: str) -> requests.Response:
    return requests.post(
        f"{stripe_url}/v1/payment_methods",
        data=card_details(number, **changes),
        headers=PUBLISHABLE_KEY_HEADERS,
        timeout=5,
    )


def charge_card(client: stripe.StripeClient, payment_method: str) -> stripe.PaymentIntent:
    """What our server's charge asks of Stripe for such a PaymentMethod (PaymentIntentCreateParams with
    allowed_payment_method_types=[card], confirmed at once)."""
    return client.v1.payment_intents.create(
        params={
            "amount": 2500,
            "currency": "usd",
            "payment_method": payment_method,
            "confirm": True,
            "allowed_payment_method_types": ["card"],
        }
    )
