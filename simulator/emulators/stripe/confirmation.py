"""What confirming a PaymentIntent does: the outcomes of Stripe's test cards.

docs.stripe.com/testing: ``pm_card_visa`` succeeds, the declined cards fail with their decline
codes (HTTP 402, saved under the idempotency key like any executed request), 3-D Secure cards need
the customer's action (``requires_action``), or fail with ``authentication_required`` when the
payment is off-session or ``error_on_requires_action`` is set (docs.stripe.com/declines/codes).
"""

from __future__ import annotations

import contextlib

from simulator.emulators.stripe import errors
from simulator.emulators.stripe.cards import AUTHENTICATION_REQUIRED, CardProfile
from simulator.emulators.stripe.charges import new_charge
from simulator.emulators.stripe.disputes import dispute
from simulator.emulators.stripe.events import emit
from simulator.emulators.stripe.intent_objects import render
from simulator.emulators.stripe.objects import Json, copy_json, new_id
from simulator.emulators.stripe.payment_methods import attach
from simulator.emulators.stripe.state import Ctx, StripeState

RETURN_URL_MESSAGE = (
    "A `return_url` must be specified because this Payment Intent is configured to automatically accept "
    "the payment methods enabled in the Dashboard, some of which may require a full page redirect to "
    "succeed. If you do not want to accept redirect-based payment methods, set "
    "`automatic_payment_methods[enabled]` to `true` and `automatic_payment_methods[allow_redirects]` "
    "to `never` when creating Setup Intents and Payment Intents."
)
AUTH_FAILURE_MESSAGE = (
    "The provided PaymentMethod has failed authentication. You can provide payment_method_data or a new "
    "PaymentMethod to attempt to fulfill this PaymentIntent again."
)


def check_confirmable(state: StripeState, pm_ref: str | None, pi: Json, return_url: str | None, off: bool) -> None:
    """Refusals before anything happens (validation: never saved under the idempotency key)."""
    if pm_ref is None:
        raise errors.invalid(
            "You cannot confirm this PaymentIntent because it's missing a payment method. You can either "
            "update the PaymentIntent with a payment method and then confirm it again, or confirm it "
            "again directly with a payment method.",
            param="payment_method",
        )
    if "card" not in pi["payment_method_types"]:
        raise errors.invalid(
            "The provided PaymentMethod's type (card) is not one of this PaymentIntent's payment method "
            f"types ({', '.join(pi['payment_method_types']) or 'none'}).",
            param="payment_method",
        )
    # Redirect-capable automatic payment methods need somewhere to send the customer back to
    # (docs.stripe.com/api/payment_intents/confirm#confirm_payment_intent-return_url); a card-only
    # intent (allowed_payment_method_types=[card]) or allow_redirects=never does not.
    automatic = pi["automatic_payment_methods"]
    redirects = automatic is not None and automatic["allow_redirects"] != "never"
    if state.require_return_url and redirects and return_url is None and not off:
        raise errors.invalid(RETURN_URL_MESSAGE, param="return_url")


def check_off_session_customer(customer: str | None, off: bool) -> None:
    """An off-session payment charges a saved card: the Customer it is saved to and the PaymentMethod
    (docs.stripe.com/payments/cards/charging-saved-cards: "specify both the ID of the Customer and the
    ID of the previously saved ... PaymentMethod"). The wording of this refusal is ours."""
    if off and customer is None:
        raise errors.invalid(
            "An off-session payment charges a saved PaymentMethod: pass the `customer` it is attached to.",
            param="customer",
        )


def confirm(state: StripeState, ctx: Ctx, pi: Json, off: bool, error_on_requires_action: bool) -> None:
    usage = state.pm_usage[pi["payment_method"]]
    usage.used_by.add(pi["id"])
    if pi["customer"] is None and pi["setup_future_usage"] is None:
        usage.consumed = True
    card = usage.card
    outcome = _off_session_outcome(card, usage.set_up) if off else card.outcome
    if outcome == "authenticate" and (off or error_on_requires_action):
        decline(state, ctx, pi, AUTHENTICATION_REQUIRED)
    elif outcome == "decline":
        decline(state, ctx, pi, card)
    elif outcome == "authenticate":
        require_action(state, ctx, pi)
    else:
        succeed(state, ctx, pi)


def _off_session_outcome(card: CardProfile, set_up: bool) -> str:
    """How a saved card behaves charged with the customer away (cards.CardProfile.off_session)."""
    if card.off_session == "succeed_once_set_up":
        return "succeed" if set_up else "authenticate"
    return card.off_session or card.outcome


def succeed(state: StripeState, ctx: Ctx, pi: Json) -> None:
    charge = new_charge(state, ctx, pi, None)
    pi.update(
        status="succeeded",
        amount_received=pi["amount"],
        latest_charge=charge["id"],
        last_payment_error=None,
        next_action=None,
    )
    pm = state.payment_methods[pi["payment_method"]]
    if pi["setup_future_usage"]:
        state.pm_usage[pm["id"]].set_up = True
    if pi["setup_future_usage"] and pi["customer"] and pm["customer"] is None:
        # Stripe attaches the card to the customer once a setup_future_usage payment succeeds.
        attach(state, ctx, pm, pi["customer"], source="setup_future_usage")
    emit(state, ctx, "payment_intent.succeeded", pi)
    card = state.pm_usage[pm["id"]].card
    if card.dispute is not None:
        dispute(state, ctx, charge["id"], card.dispute, inquiry=card.dispute_inquiry)


def authenticated(state: StripeState, ctx: Ctx, pi: Json) -> None:
    """The donor passed 3-D Secure: the payment goes ahead, unless the card declines all the same
    (4000008260003178: insufficient funds "even after being successfully authenticated", docs.stripe.com/testing)."""
    card = state.pm_usage[pi["payment_method"]].card
    if card.code is None:
        succeed(state, ctx, pi)
        return
    # Nobody called the API here: the intent and its event say it failed.
    with contextlib.suppress(errors.StripeApiError):
        decline(state, ctx, pi, card)


def decline(state: StripeState, ctx: Ctx, pi: Json, card: CardProfile) -> None:
    assert card.code is not None and card.message is not None
    pm_id = pi["payment_method"]
    charge = new_charge(state, ctx, pi, card)
    error = errors.StripeApiError(
        402, "card_error", card.message, code=card.code, decline_code=card.decline_code, param=card.param, executed=True
    )
    error.error.update(charge=charge["id"], payment_method=copy_json(state.payment_methods[pm_id]))
    pi.update(
        status="requires_payment_method",
        last_payment_error={**copy_json(error.error), "payment_method_type": "card"},
        latest_charge=charge["id"],
        payment_method=None,  # Stripe detaches the failed method from the intent
        next_action=None,
    )
    emit(state, ctx, "payment_intent.payment_failed", pi)
    error.error["payment_intent"] = render(state, pi, [])
    raise error


def require_action(state: StripeState, ctx: Ctx, pi: Json) -> None:
    source = new_id("src")
    pi.update(
        status="requires_action",
        next_action={
            "type": "use_stripe_sdk",
            "use_stripe_sdk": {
                "type": "three_d_secure_redirect",
                "source": source,
                "stripe_js": f"https://hooks.stripe.com/redirect/authenticate/{source}"
                f"?client_secret={pi['client_secret']}",
            },
        },
    )
    emit(state, ctx, "payment_intent.requires_action", pi)


def fail_authentication(state: StripeState, ctx: Ctx, pi: Json) -> None:
    pi.update(
        status="requires_payment_method",
        last_payment_error={
            "type": "invalid_request_error",
            "code": "payment_intent_authentication_failure",
            "doc_url": errors.doc_url("payment_intent_authentication_failure"),
            "message": AUTH_FAILURE_MESSAGE,
            "payment_method": copy_json(state.payment_methods[pi["payment_method"]]),
            "payment_method_type": "card",
        },
        payment_method=None,
        next_action=None,
    )
    emit(state, ctx, "payment_intent.payment_failed", pi)
