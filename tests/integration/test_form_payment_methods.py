"""What the donation form sends is what the API charges: PaymentMethods from Stripe's Payment Element.

The form creates the PaymentMethod in the browser (docs.stripe.com/js/payment_methods/create_payment_method_elements,
"finalize payments on the server") and POSTs its id; the charge confirms it on a PaymentIntent that allows
cards only (``allowed_payment_method_types``: the pinned version's PaymentIntentCreateParams has no
``payment_method_types``). Wallets in the Payment Element (Apple Pay, Google Pay, Link's saved cards) give
``card`` PaymentMethods whose ``card.wallet.type`` names the wallet (``stripe.PaymentMethod.Card.Wallet``),
so they need no server change.
"""

from __future__ import annotations

import typing

import pytest
import stripe

from tests.support.keys import a_key
from tests.support.payment_element import post_card
from tests.support.world import DONATION

pytestmark = pytest.mark.integration


def payment_element_method(stripe_url: str, number: str) -> str:
    """A PaymentMethod as the Payment Element creates it: card details posted with a publishable key."""
    answer = post_card(stripe_url, number)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["id"])


def test_the_api_charges_a_payment_method_the_payment_element_created(world):
    # Given a PaymentMethod made in the browser from Stripe's test Visa (docs.stripe.com/testing)
    method = payment_element_method(world.stripe.url, "4242424242424242")

    # When the form posts its id
    answer = world.post({**DONATION, "payment_method": method}, key=a_key("form-card"))

    # Then the donation is charged with that very PaymentMethod, on a card-only PaymentIntent
    assert answer.status == 201, answer.body
    [intent] = world.stripe.intents_for(answer.body["donation_id"])
    assert intent["payment_method"] == method and intent["status"] == "succeeded"
    assert intent["payment_method_types"] == ["card"]


def test_a_card_needing_3d_secure_answers_the_client_secret_stripe_js_finishes_it_with(world):
    method = payment_element_method(world.stripe.url, "4000002760003184")

    answer = world.post({**DONATION, "payment_method": method, "save_card": False}, key=a_key("form-3ds"))

    # stripe.handleNextAction takes its client secret (docs.stripe.com/js/payment_intents/handle_next_action)
    assert answer.status == 202, answer.body
    assert answer.body["status"] == "requires_action" and answer.body["client_secret"].startswith("pi_")


def test_wallets_are_card_payment_methods_in_the_sdk_types():
    # The pinned SDK's PaymentMethod: a wallet payment is a card PaymentMethod with card.wallet set...
    wallet_types = typing.get_args(typing.get_args(typing.get_type_hints(stripe.PaymentMethod.Card.Wallet)["type"])[0])
    assert {"apple_pay", "google_pay", "link"} <= set(wallet_types)
    # ...and the charge's PaymentIntentCreateParams restricts types with allowed_payment_method_types (endive).
    create = stripe.params.PaymentIntentCreateParams
    assert "allowed_payment_method_types" in create.__optional_keys__
    assert "payment_method_types" not in create.__optional_keys__ | create.__required_keys__


def test_a_form_on_another_origin_can_read_retry_after(world):
    # Given the form on its own origin (the stack's AllowedOrigin), another origin than the API, and Stripe down
    form_origin = world.pipeline.allowed_origin
    world.stripe.faults.add("http_error", status=500, path_prefix="/v1/payment_intents", method="POST")
    try:
        answer = world.post(DONATION, key=a_key("form-cors"), headers={"Origin": form_origin})
    finally:
        world.stripe.faults.clear()

    # Then the 503's Retry-After is exposed to its script: a cross-origin fetch sees only the
    # CORS-safelisted response headers, and Retry-After is not one (Fetch standard, "CORS-safelisted
    # response-header name"; developer.mozilla.org/docs/Web/HTTP/Headers/Access-Control-Expose-Headers)
    assert answer.status == 503 and answer.headers["Retry-After"]
    assert answer.headers["Access-Control-Allow-Origin"] == form_origin
    assert "retry-after" in answer.headers.get("Access-Control-Expose-Headers", "").lower().split(",")
