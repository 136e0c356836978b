"""PaymentMethods: test-card ids, retrieve, attach, and Stripe's reuse rules.

docs.stripe.com/payments/save-during-payment and docs.stripe.com/api/payment_methods/attach: a
PaymentMethod used in a payment without a Customer and without ``setup_future_usage`` is spent: it
can be neither attached nor used again. With ``customer`` + ``setup_future_usage`` Stripe attaches
it to that Customer once the payment succeeds. An attached method is usable only with its Customer.
"""

from __future__ import annotations

import time

import stripe

from simulator.emulators.stripe import errors, params
from simulator.emulators.stripe.cards import MAGIC_CARDS, CardProfile
from simulator.emulators.stripe.customers import customer_ref
from simulator.emulators.stripe.events import emit
from simulator.emulators.stripe.objects import Json, copy_json, new_id, shaped
from simulator.emulators.stripe.state import Ctx, PmUsage, StripeState

REUSED_PM_MESSAGE = (
    "The provided PaymentMethod was previously used with a PaymentIntent without Customer attachment, "
    "shared with a connected account without Customer attachment, or was detached from a Customer. "
    "It may not be used again. To use a PaymentMethod multiple times, you must attach it to a Customer first."
)
UNATTACHABLE_PM_MESSAGE = (
    "This PaymentMethod was previously used without being attached to a Customer or was detached "
    "from a Customer, and may not be used again."
)


def check_usable(state: StripeState, pm_ref: str, customer: str | None, pi_id: str | None) -> None:
    """May this PaymentMethod pay for ``pi_id`` (None: a new intent) of ``customer``?"""
    if pm_ref in MAGIC_CARDS:
        return
    pm = state.payment_methods.get(pm_ref)
    if pm is None:
        raise errors.no_such("PaymentMethod", pm_ref, "payment_method", status=400)
    owner = pm["customer"]
    if owner is not None and customer != owner:
        raise errors.invalid(
            f"The provided PaymentMethod is attached to Customer '{owner}'. To use it, pass that "
            "Customer's ID as `customer`.",
            param="payment_method",
        )
    if owner is None and state.pm_usage[pm_ref].used_by - {pi_id}:
        raise errors.invalid(REUSED_PM_MESSAGE, param="payment_method")


def materialize(state: StripeState, ctx: Ctx, pm_ref: str) -> str:
    """Each use of a test id (``pm_card_visa``) makes a fresh concrete PaymentMethod, as Stripe does."""
    card = MAGIC_CARDS.get(pm_ref)
    if card is None:
        return pm_ref
    pm = shaped(
        stripe.PaymentMethod,
        {
            "id": new_id("pm"),
            "object": "payment_method",
            "allow_redisplay": "unspecified",
            "billing_details": shaped(stripe.PaymentMethod.BillingDetails, {}),
            "card": _card(card, ctx),
            "created": ctx.now,
            "livemode": False,
            "metadata": {},
            "type": "card",
        },
    )
    state.payment_methods[pm["id"]] = pm
    state.pm_usage[pm["id"]] = PmUsage(card)
    return str(pm["id"])


def _card(card: CardProfile, ctx: Ctx) -> Json:
    return shaped(
        stripe.PaymentMethod.Card,
        {
            "brand": card.brand,
            "checks": shaped(stripe.PaymentMethod.Card.Checks, {"cvc_check": "pass"}),
            "country": card.country,
            "display_brand": card.brand,
            "exp_month": 12,
            "exp_year": _year(ctx.now) + 1,
            "fingerprint": card.fingerprint,
            "funding": card.funding,
            "last4": card.last4,
            "networks": shaped(stripe.PaymentMethod.Card.Networks, {"available": [card.brand]}),
        },
    )


def _year(unix: int) -> int:
    return time.gmtime(unix).tm_year


def retrieve(state: StripeState, ctx: Ctx, p: Json, pm_ref: str | None) -> Json:
    assert pm_ref is not None
    expand = params.expand(p, {"customer"})
    if pm_ref not in MAGIC_CARDS and pm_ref not in state.payment_methods:
        raise errors.no_such("PaymentMethod", pm_ref, "payment_method")
    return render(state, state.payment_methods[materialize(state, ctx, pm_ref)], expand)


def attach_endpoint(state: StripeState, ctx: Ctx, p: Json, pm_ref: str | None) -> Json:
    assert pm_ref is not None
    expand = params.expand(p, {"customer"})
    customer_id = params.text(p, "customer")
    if customer_id is None:  # the SDK types allow customer_account instead; this account has no Accounts
        raise errors.missing("customer")
    customer = customer_ref(state, customer_id)
    assert customer is not None
    if pm_ref not in MAGIC_CARDS and pm_ref not in state.payment_methods:
        raise errors.no_such("PaymentMethod", pm_ref, "payment_method")
    pm = state.payment_methods.get(pm_ref)
    if pm is not None and pm["customer"] not in (None, customer):
        raise errors.invalid("The payment method you provided has already been attached to a customer.")
    if pm is not None and pm["customer"] is None and state.pm_usage[pm_ref].consumed:
        raise errors.invalid(UNATTACHABLE_PM_MESSAGE)
    pm = pm or state.payment_methods[materialize(state, ctx, pm_ref)]
    attach(state, ctx, pm, customer, source="api")
    return render(state, pm, expand)


def attach(state: StripeState, ctx: Ctx, pm: Json, customer: str, *, source: str) -> None:
    """Attach (again attaching to the same Customer is a no-op that still answers with the method)."""
    already = pm["customer"] == customer
    pm["customer"] = customer
    state.attachments.append(
        {
            "payment_method": pm["id"],
            "customer": customer,
            "source": source,
            "already_attached": already,
            "created": ctx.now,
        }
    )
    if not already:
        emit(state, ctx, "payment_method.attached", pm)


def render(state: StripeState, pm: Json, expand: list[str]) -> Json:
    out = copy_json(pm)
    if "customer" in expand and out["customer"]:
        out["customer"] = copy_json(state.customers[out["customer"]])
    return out
