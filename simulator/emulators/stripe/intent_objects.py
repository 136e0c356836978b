"""PaymentIntent objects: building one from create parameters, rendering, and lookups."""

from __future__ import annotations

import stripe

from simulator.emulators.stripe import errors, params
from simulator.emulators.stripe.events import emit
from simulator.emulators.stripe.objects import Json, copy_json, new_id, rand, shaped
from simulator.emulators.stripe.state import Ctx, StripeState

EXPANDABLE = {"payment_method", "customer", "latest_charge"}
# The payment method types this emulated account has enabled (the Dashboard's settings): cards only.
ENABLED_TYPES = ("card",)
CANCELABLE = ("requires_payment_method", "requires_capture", "requires_confirmation", "requires_action")
CONFIRMABLE = ("requires_payment_method", "requires_confirmation")


def payment_method_config(p: Json) -> Json:
    """The PaymentIntent fields that say which payment methods it takes.

    Endive: ``allowed_payment_method_types`` keeps the compatible subset of the listed types and is
    mutually exclusive with ``excluded_payment_method_types``, ``automatic_payment_methods`` and
    ``payment_method_configuration`` (docs.stripe.com/changelog/dahlia/2026-07-29/
    allowed-payment-method-types-parameter). Without it, dynamic payment methods apply:
    ``automatic_payment_methods`` is enabled by default, redirects allowed
    (docs.stripe.com/payments/payment-methods/dynamic-payment-methods).
    """
    allowed = p.get("allowed_payment_method_types")
    if allowed is not None:
        for other in ("excluded_payment_method_types", "automatic_payment_methods", "payment_method_configuration"):
            if other in p:
                raise errors.exclusive("allowed_payment_method_types", other)
        return {
            "allowed_payment_method_types": list(allowed),
            "automatic_payment_methods": None,
            "excluded_payment_method_types": None,
            "payment_method_types": [t for t in ENABLED_TYPES if t in allowed],
        }
    excluded = list(p.get("excluded_payment_method_types", [])) or None
    requested = p.get("automatic_payment_methods", {"enabled": "true"})
    automatic = None
    if requested["enabled"] == "true":
        redirects = requested.get("allow_redirects", "always")
        automatic = shaped(
            stripe.PaymentIntent.AutomaticPaymentMethods, {"allow_redirects": redirects, "enabled": True}
        )
    return {
        "allowed_payment_method_types": None,
        "automatic_payment_methods": automatic,
        "excluded_payment_method_types": excluded,
        "payment_method_types": [t for t in ENABLED_TYPES if t not in (excluded or [])],
    }


def new_payment_intent(
    state: StripeState, ctx: Ctx, p: Json, amount: int, currency: str, customer: str | None, config: Json
) -> Json:
    """A new intent from create parameters; ``config`` is ``payment_method_config(p)``."""
    pi_id = new_id("pi")
    pi = shaped(
        stripe.PaymentIntent,
        {
            **config,
            "id": pi_id,
            "object": "payment_intent",
            "amount": amount,
            "amount_capturable": 0,
            "amount_received": 0,
            "capture_method": "automatic_async",
            "client_secret": f"{pi_id}_secret_{rand(25)}",
            "confirmation_method": "automatic",
            "created": ctx.now,
            "currency": currency,
            "customer": customer,
            "description": params.text(p, "description"),
            "livemode": False,
            "metadata": params.metadata(p),
            "payment_method_options": {},
            "receipt_email": params.email(p, "receipt_email"),
            "setup_future_usage": params.text(p, "setup_future_usage"),
            "statement_descriptor": params.text(p, "statement_descriptor"),
            "statement_descriptor_suffix": params.text(p, "statement_descriptor_suffix"),
            "status": "requires_payment_method",
        },
    )
    state.payment_intents[pi_id] = pi
    state.searchable_from[pi_id] = state.clock.now() + state.search_lag_ms / 1000
    state.payment_intents_created += 1
    emit(state, ctx, "payment_intent.created", pi)
    return pi


def off_session(p: Json) -> bool:
    """``off_session`` is ``true`` or, in this version, the kind of off-session payment."""
    return p.get("off_session") in ("true", "one_off", "recurring")


def pi_or_404(state: StripeState, pi_id: str | None) -> Json:
    pi = state.payment_intents.get(pi_id or "")
    if pi is None:
        raise errors.no_such("payment_intent", pi_id or "", "intent")
    return pi


def unexpected_state(state: StripeState, pi: Json, action: str, allowed: tuple[str, ...]) -> errors.StripeApiError:
    err = errors.invalid(
        f"You cannot {action} this PaymentIntent because it has a status of {pi['status']}. Only a "
        f"PaymentIntent with one of the following statuses may be {action}ed: {', '.join(allowed)}.",
        code="payment_intent_unexpected_state",
    )
    err.error["payment_intent"] = render(state, pi, [])
    return err


def render(state: StripeState, pi: Json, expand: list[str]) -> Json:
    out = copy_json(pi)
    if "payment_method" in expand and out["payment_method"]:
        out["payment_method"] = copy_json(state.payment_methods[out["payment_method"]])
    if "customer" in expand and out["customer"]:
        out["customer"] = copy_json(state.customers[out["customer"]])
    if "latest_charge" in expand and out["latest_charge"]:
        out["latest_charge"] = copy_json(state.charges[out["latest_charge"]])
    return out
