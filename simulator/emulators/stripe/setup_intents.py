"""SetupIntents: save a card for later payments with the customer present (docs.stripe.com/api/setup_intents;
docs.stripe.com/payments/save-and-reuse, "Save payment details for future payments").

Create (``customer``, ``usage``, ``allowed_payment_method_types``, ``metadata``...), retrieve (with its
``client_secret`` when the key is publishable, as Stripe.js does), and confirm (``payment_method``; Stripe.js's
``confirmCardSetup`` posts it with the publishable key and the client secret). Confirming with a test card
(docs.stripe.com/testing, "Authentication and setup"):

* a card that needs 3-D Secure (``4000002500003155``, ``4000002760003184``, ``4000003800000446``,
  ``4000008260003178``, ``4000000000003220``) answers ``requires_action``; the customer's challenge
  (``StripeActions.authenticate``) then succeeds or fails it (``setup_intent_authentication_failure``);
* ``4000000000000341`` sets up ("attaching this card to a Customer object succeeds"); its charges fail later;
* a declined card (``4000000000000002``...) fails with its card error (402), the SetupIntent back in
  ``requires_payment_method`` with ``last_setup_error``;
* any other card succeeds.

Success attaches the PaymentMethod to the SetupIntent's Customer and, with ``usage=off_session`` (the
default), sets the card up: off-session payments on a card that needs it (``4000002500003155``) then
succeed (cards.CardProfile.off_session). Events: ``setup_intent.created``, ``.requires_action``,
``.succeeded``, ``.setup_failed`` (docs.stripe.com/api/events/types). It renders as a PaymentIntent does
(``intent_objects.render``: its payment_method and customer expanded on request).
"""

from __future__ import annotations

import stripe

from simulator.emulators.stripe import errors, params
from simulator.emulators.stripe.customers import customer_ref
from simulator.emulators.stripe.events import emit
from simulator.emulators.stripe.intent_objects import payment_method_config, render
from simulator.emulators.stripe.objects import Json, copy_json, new_id, rand, shaped
from simulator.emulators.stripe.payment_methods import attach, check_usable, materialize
from simulator.emulators.stripe.state import Ctx, StripeState

EXPANDABLE = {"payment_method", "customer"}
CONFIRMABLE = ("requires_payment_method", "requires_confirmation")
_USAGES = ("off_session", "on_session")
AUTH_FAILURE_MESSAGE = "The latest attempt to set up the payment method has failed because authentication failed."


def create(state: StripeState, ctx: Ctx, p: Json, _: str | None) -> Json:
    customer = customer_ref(state, params.text(p, "customer"))
    expand = params.expand(p, EXPANDABLE)
    usage = params.text(p, "usage") or "off_session"
    if usage not in _USAGES:
        raise errors.invalid(f"Invalid usage: must be one of {', '.join(_USAGES)}", param="usage")
    config = payment_method_config(p)
    pm_ref = params.text(p, "payment_method")
    if pm_ref is not None:
        check_usable(state, pm_ref, customer, None)
    seti_id = new_id("seti")
    seti = shaped(
        stripe.SetupIntent,
        {
            **config,
            "id": seti_id,
            "object": "setup_intent",
            "client_secret": f"{seti_id}_secret_{rand(25)}",
            "created": ctx.now,
            "customer": customer,
            "description": params.text(p, "description"),
            "livemode": False,
            "metadata": params.metadata(p),
            "payment_method_options": {},
            "status": "requires_payment_method",
            "usage": usage,
        },
    )
    state.setup_intents[seti_id] = seti
    emit(state, ctx, "setup_intent.created", seti)
    if pm_ref is not None:
        seti.update(payment_method=materialize(state, ctx, pm_ref), status="requires_confirmation")
    if params.flag(p, "confirm"):
        _confirm(state, ctx, seti)
    return render(state, seti, expand)


def retrieve(state: StripeState, ctx: Ctx, p: Json, seti_id: str | None) -> Json:
    expand = params.expand(p, EXPANDABLE)
    seti = seti_or_404(state, seti_id)
    _check_secret(seti, p)
    return render(state, seti, expand)


def confirm_endpoint(state: StripeState, ctx: Ctx, p: Json, seti_id: str | None) -> Json:
    seti = seti_or_404(state, seti_id)
    _check_secret(seti, p)
    expand = params.expand(p, EXPANDABLE)
    if seti["status"] not in CONFIRMABLE:
        raise errors.invalid(
            f"You cannot confirm this SetupIntent because it has a status of {seti['status']}. Only a SetupIntent "
            f"with one of the following statuses may be confirmed: {', '.join(CONFIRMABLE)}.",
            code="setup_intent_unexpected_state",
        )
    pm_ref = params.text(p, "payment_method")
    if pm_ref is None and seti["payment_method"] is None:
        raise errors.invalid(
            "You cannot confirm this SetupIntent because it's missing a payment method.", param="payment_method"
        )
    if pm_ref is not None:
        check_usable(state, pm_ref, seti["customer"], None)
        seti["payment_method"] = materialize(state, ctx, pm_ref)
    _confirm(state, ctx, seti)
    return render(state, seti, expand)


def _confirm(state: StripeState, ctx: Ctx, seti: Json) -> None:
    card = state.pm_usage[seti["payment_method"]].card
    outcome = card.setup_outcome or card.outcome
    if outcome == "authenticate":
        source = new_id("src")
        seti.update(
            status="requires_action",
            next_action={
                "type": "use_stripe_sdk",
                "use_stripe_sdk": {"type": "three_d_secure_redirect", "source": source},
            },
        )
        emit(state, ctx, "setup_intent.requires_action", seti)
    elif outcome == "decline":
        assert card.code is not None and card.message is not None
        error = errors.StripeApiError(
            402, "card_error", card.message, code=card.code, decline_code=card.decline_code, param=card.param,
            executed=True,
        )  # fmt: skip
        error.error["payment_method"] = copy_json(state.payment_methods[seti["payment_method"]])
        _failed(state, ctx, seti, {**copy_json(error.error), "payment_method_type": "card"})
        error.error["setup_intent"] = render(state, seti, [])
        raise error
    else:
        set_up(state, ctx, seti)


def set_up(state: StripeState, ctx: Ctx, seti: Json) -> None:
    """The card is set up: attached to the SetupIntent's Customer, and ready for off-session payments."""
    pm = state.payment_methods[seti["payment_method"]]
    if seti["usage"] == "off_session":
        state.pm_usage[pm["id"]].set_up = True
    if seti["customer"] is not None and pm["customer"] is None:
        attach(state, ctx, pm, seti["customer"], source="setup_intent")
    seti.update(status="succeeded", next_action=None, last_setup_error=None)
    emit(state, ctx, "setup_intent.succeeded", seti)


def fail_authentication(state: StripeState, ctx: Ctx, seti: Json) -> None:
    _failed(
        state,
        ctx,
        seti,
        {
            "type": "invalid_request_error",
            "code": "setup_intent_authentication_failure",
            "doc_url": errors.doc_url("setup_intent_authentication_failure"),
            "message": AUTH_FAILURE_MESSAGE,
            "payment_method": copy_json(state.payment_methods[seti["payment_method"]]),
            "payment_method_type": "card",
        },
    )


def _failed(state: StripeState, ctx: Ctx, seti: Json, last_error: Json) -> None:
    seti.update(status="requires_payment_method", last_setup_error=last_error, payment_method=None, next_action=None)
    emit(state, ctx, "setup_intent.setup_failed", seti)


def _check_secret(seti: Json, p: Json) -> None:
    secret = params.text(p, "client_secret")
    if secret is not None and secret != seti["client_secret"]:
        raise errors.invalid(
            "The client_secret provided does not match the client_secret associated with the SetupIntent.",
            param="client_secret",
        )


def seti_or_404(state: StripeState, seti_id: str | None) -> Json:
    seti = state.setup_intents.get(seti_id or "")
    if seti is None:
        raise errors.no_such("setup_intent", seti_id or "", "intent")
    return seti
