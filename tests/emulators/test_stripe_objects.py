"""Objects the Stripe emulator returns carry every field the SDK's resource class declares for the
pinned API version; fields a type declares as never null are never null."""

from __future__ import annotations

import types
import typing
from collections.abc import Callable, Mapping
from typing import Any

import pytest
import stripe

from simulator.emulators.stripe import StripeEmulator
from simulator.emulators.stripe.objects import shaped

pytestmark = pytest.mark.integration

StripeFactory = Callable[..., stripe.StripeClient]


def declared(resource: type) -> dict[str, bool]:
    """Field name -> may it be null, straight from the SDK class annotations (ClassVars excluded)."""
    fields = {}
    for name, annotation in vars(resource)["__annotations__"].items():
        if typing.get_origin(annotation) is typing.ClassVar:
            continue
        origin = typing.get_origin(annotation)
        union = origin is typing.Union or origin is types.UnionType
        fields[name] = union and type(None) in typing.get_args(annotation)
    return fields


def assert_carries_declared_fields(obj: Mapping[str, Any] | stripe.StripeObject, resource: type) -> None:
    if isinstance(obj, stripe.StripeObject):
        obj = obj.to_dict()
    fields = declared(resource)
    # `deleted` is declared, but documented as present on deleted objects only.
    expected = set(fields) - {"deleted"}
    assert set(obj) == expected, f"{resource.__name__}: missing {expected - set(obj)}, extra {set(obj) - expected}"
    null_but_required = [name for name, nullable in fields.items() if not nullable and obj.get(name) is None]
    assert null_but_required == [], f"{resource.__name__} fields declared non-null are null"


@pytest.fixture
def paid(stripe_client: StripeFactory) -> stripe.PaymentIntent:
    client = stripe_client()
    customer = client.v1.customers.create(params={"email": "donor@example.org"})
    return client.v1.payment_intents.create(
        params={
            "amount": 2500,
            "currency": "usd",
            "customer": customer.id,
            "payment_method": "pm_card_visa",
            "allowed_payment_method_types": ["card"],
            "setup_future_usage": "off_session",
            "confirm": True,
        }
    )


def test_payment_intent(paid: stripe.PaymentIntent, stripe_client: StripeFactory) -> None:
    assert_carries_declared_fields(paid, stripe.PaymentIntent)
    assert_carries_declared_fields(stripe_client().v1.payment_intents.retrieve(paid.id), stripe.PaymentIntent)
    assert paid.allowed_payment_method_types == ["card"] and paid.payment_method_types == ["card"]


def test_customer(paid: stripe.PaymentIntent, stripe_client: StripeFactory) -> None:
    customer = stripe_client().v1.customers.retrieve(str(paid.customer))
    assert_carries_declared_fields(customer, stripe.Customer)
    assert "deleted" not in customer.to_dict()


def test_payment_method(paid: stripe.PaymentIntent, stripe_client: StripeFactory) -> None:
    method = stripe_client().v1.payment_methods.retrieve(str(paid.payment_method))
    assert_carries_declared_fields(method, stripe.PaymentMethod)
    assert method.card is not None
    assert_carries_declared_fields(method.card, stripe.PaymentMethod.Card)


def test_charge(paid: stripe.PaymentIntent, stripe_client: StripeFactory) -> None:
    charge = stripe_client().v1.charges.retrieve(str(paid.latest_charge))
    assert_carries_declared_fields(charge, stripe.Charge)
    assert_carries_declared_fields(charge.outcome, stripe.Charge.Outcome)  # type: ignore[arg-type]


def test_refund_and_its_event(stripe_emu: StripeEmulator, paid: stripe.PaymentIntent) -> None:
    stripe_emu.refund(str(paid.latest_charge))

    [refund] = stripe_emu.refunds_for(paid.id)
    assert_carries_declared_fields(refund, stripe.Refund)
    event = stripe.Event.construct_from(stripe_emu.events[-1], "sk_test_x")
    assert event.type == "charge.refunded" and isinstance(event.data.object, stripe.Charge)


def test_dispute_and_its_event(stripe_emu: StripeEmulator, paid: stripe.PaymentIntent) -> None:
    dispute = stripe_emu.dispute(str(paid.latest_charge))

    assert_carries_declared_fields(dispute, stripe.Dispute)
    assert_carries_declared_fields(dispute["evidence_details"], stripe.Dispute.EvidenceDetails)
    event = stripe.Event.construct_from(stripe_emu.events[-1], "sk_test_x")
    assert isinstance(event.data.object, stripe.Dispute) and event.data.object.id == dispute["id"]


def test_event(stripe_emu: StripeEmulator, paid: stripe.PaymentIntent) -> None:
    for raw in stripe_emu.events:
        assert_carries_declared_fields(raw, stripe.Event)
        assert_carries_declared_fields(raw["request"], stripe.Event.Request)
    succeeded = next(e for e in stripe_emu.events if e["type"] == "payment_intent.succeeded")
    assert_carries_declared_fields(succeeded["data"]["object"], stripe.PaymentIntent)


def test_the_emulator_cannot_invent_a_field() -> None:
    with pytest.raises(ValueError, match="payment_intent_colour"):
        shaped(stripe.PaymentIntent, {"id": "pi_1", "payment_intent_colour": "blue"})
