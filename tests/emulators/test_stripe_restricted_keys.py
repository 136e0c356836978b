"""Restricted keys in the Stripe emulator: what Stripe documents (docs.stripe.com/keys/restricted-api-keys)
and what the SDK makes of it (a 403 invalid request error is ``stripe.PermissionError``)."""

from __future__ import annotations

import pytest
import stripe

from simulator.emulators.stripe import StripeEmulator
from simulator.emulators.stripe.restricted import ROUTE_PERMISSIONS
from simulator.emulators.stripe.routes import ROUTES
from tests.emulators.conftest import StripeFactory

pytestmark = pytest.mark.integration

VISA = {"amount": 500, "currency": "usd", "payment_method": "pm_card_visa", "confirm": True}
VISA |= {"allowed_payment_method_types": ["card"]}


def test_every_route_says_what_permission_it_needs() -> None:
    assert set(ROUTE_PERMISSIONS) == set(ROUTES)


def test_a_key_without_the_write_permission_is_refused_and_nothing_happens(
    stripe_emu: StripeEmulator, stripe_client: StripeFactory
) -> None:
    # Given a restricted key that may only read PaymentIntents
    stripe_emu.restrict("rk_test_reader", {"PaymentIntents": "Read"})
    client = stripe_client(key="rk_test_reader")

    # When it creates a PaymentIntent, then Stripe's 403 names the permission, and nothing was created
    with pytest.raises(stripe.PermissionError, match="rak_payment_intent_write") as refused:
        client.v1.payment_intents.create(params=VISA)  # type: ignore[arg-type]
    assert refused.value.http_status == 403
    assert "rk_test_reader" not in str(refused.value)  # the key is masked
    assert stripe_emu.state()["payment_intents"] == []
    # ...while reading is allowed
    assert client.v1.payment_intents.list(params={"limit": 1}).data == []


def test_an_expansion_needs_a_permission_on_the_expanded_object(
    stripe_emu: StripeEmulator, stripe_client: StripeFactory
) -> None:
    # Given a key that may write PaymentIntents but not read Charges
    stripe_emu.restrict("rk_test_no_charges", {"PaymentIntents": "Write"})
    client = stripe_client(key="rk_test_no_charges")

    # Then the charge cannot be expanded on the answer; without the expansion the payment goes through
    with pytest.raises(stripe.PermissionError, match="rak_charge_read"):
        client.v1.payment_intents.create(params={**VISA, "expand": ["latest_charge"]})  # type: ignore[arg-type]
    assert client.v1.payment_intents.create(params=VISA).status == "succeeded"  # type: ignore[arg-type]


def test_an_unknown_restricted_key_is_not_authenticated(stripe_client: StripeFactory) -> None:
    with pytest.raises(stripe.AuthenticationError):
        stripe_client(key="rk_test_never_made").v1.customers.list()
