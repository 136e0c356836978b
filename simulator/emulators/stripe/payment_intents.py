"""PaymentIntent endpoints that change state: create (optionally confirming), confirm, cancel,
and retrieve (docs.stripe.com/api/payment_intents)."""

from __future__ import annotations

from simulator.emulators.stripe import errors, params
from simulator.emulators.stripe.confirmation import check_confirmable, check_off_session_customer, confirm
from simulator.emulators.stripe.customers import customer_ref
from simulator.emulators.stripe.events import emit
from simulator.emulators.stripe.intent_objects import (
    CANCELABLE,
    CONFIRMABLE,
    EXPANDABLE,
    new_payment_intent,
    off_session,
    payment_method_config,
    pi_or_404,
    render,
    unexpected_state,
)
from simulator.emulators.stripe.objects import Json
from simulator.emulators.stripe.payment_methods import check_usable, materialize
from simulator.emulators.stripe.state import Ctx, StripeState


def create(state: StripeState, ctx: Ctx, p: Json, _: str | None) -> Json:
    currency = params.currency(p)
    amount = params.amount(p, currency)
    params.metadata(p)
    customer = customer_ref(state, params.text(p, "customer"))
    expand = params.expand(p, EXPANDABLE)
    config = payment_method_config(p)
    pm_ref = params.text(p, "payment_method")
    if pm_ref is not None:
        check_usable(state, pm_ref, customer, None)
    if params.flag(p, "confirm"):
        check_confirmable(state, pm_ref, config, params.text(p, "return_url"), off_session(p))
        check_off_session_customer(customer, off_session(p))
    elif "error_on_requires_action" in p or "off_session" in p:
        # Both are documented as usable only with confirm=true.
        param = "error_on_requires_action" if "error_on_requires_action" in p else "off_session"
        raise errors.invalid(f"You can only pass `{param}` when `confirm=true`.", param=param)
    pi = new_payment_intent(state, ctx, p, amount, currency, customer, config)
    if pm_ref is not None:
        pi["payment_method"] = materialize(state, ctx, pm_ref)
        pi["status"] = "requires_confirmation"
    if params.flag(p, "confirm"):
        confirm(state, ctx, pi, off_session(p), params.flag(p, "error_on_requires_action"))
    return render(state, pi, expand)


def retrieve(state: StripeState, ctx: Ctx, p: Json, pi_id: str | None) -> Json:
    expand = params.expand(p, EXPANDABLE)
    pi = pi_or_404(state, pi_id)
    secret = params.text(p, "client_secret")
    if secret is not None and secret != pi["client_secret"]:
        raise errors.invalid(
            "The client_secret provided does not match the client_secret associated with the PaymentIntent.",
            param="client_secret",
        )
    return render(state, pi, expand)


def confirm_endpoint(state: StripeState, ctx: Ctx, p: Json, pi_id: str | None) -> Json:
    pi = pi_or_404(state, pi_id)
    if pi["status"] not in CONFIRMABLE:
        raise unexpected_state(state, pi, "confirm", CONFIRMABLE)
    expand = params.expand(p, EXPANDABLE)
    off = off_session(p)
    pm_ref = params.text(p, "payment_method")
    if pm_ref is not None:
        check_usable(state, pm_ref, pi["customer"], pi["id"])
    changes_types = "allowed_payment_method_types" in p or "excluded_payment_method_types" in p
    config = payment_method_config(p) if changes_types else pi
    check_confirmable(state, pm_ref or pi["payment_method"], config, params.text(p, "return_url"), off)
    check_off_session_customer(pi["customer"], off)
    receipt_email = params.email(p, "receipt_email")
    if changes_types:
        pi.update(config)
    if pm_ref is not None:
        pi["payment_method"] = materialize(state, ctx, pm_ref)
    if "setup_future_usage" in p:
        pi["setup_future_usage"] = params.text(p, "setup_future_usage")
    pi["receipt_email"] = receipt_email or pi["receipt_email"]
    confirm(state, ctx, pi, off, params.flag(p, "error_on_requires_action"))
    return render(state, pi, expand)


def cancel(state: StripeState, ctx: Ctx, p: Json, pi_id: str | None) -> Json:
    pi = pi_or_404(state, pi_id)
    expand = params.expand(p, EXPANDABLE)
    if pi["status"] not in CANCELABLE:
        raise unexpected_state(state, pi, "cancel", CANCELABLE)
    pi.update(
        status="canceled",
        cancellation_reason=params.text(p, "cancellation_reason"),
        canceled_at=ctx.now,
        next_action=None,
    )
    emit(state, ctx, "payment_intent.canceled", pi)
    return render(state, pi, expand)
