"""Charges, and the refunds and disputes that happen to them after a payment.

Refunds come from the Refunds API (``POST /v1/refunds``) or, as an emulator trigger, the Dashboard
(docs.stripe.com/refunds); either emits ``refund.created`` and ``charge.refunded``. A cardholder's
dispute is in emulator.stripe.disputes. A refund of the published card 4000000000005126 fails later
(docs.stripe.com/testing, "Refunds": "the refund's status begins as succeeded, some time later it transitions
to failed and sends a refund.failed event"); here it fails at once, after the events of its success.
"""

from __future__ import annotations

import stripe

from simulator.emulators.stripe import errors, params
from simulator.emulators.stripe.cards import CardProfile
from simulator.emulators.stripe.events import emit
from simulator.emulators.stripe.objects import Json, copy_json, new_id, shaped
from simulator.emulators.stripe.state import Ctx, StripeState


def new_charge(state: StripeState, ctx: Ctx, pi: Json, failure: CardProfile | None) -> Json:
    """The Charge behind one payment attempt of ``pi`` (failed when ``failure`` is a decline)."""
    pm = state.payment_methods[pi["payment_method"]]
    ok = failure is None
    charge = shaped(
        stripe.Charge,
        {
            "id": new_id("ch"),
            "object": "charge",
            "amount": pi["amount"],
            "amount_captured": pi["amount"] if ok else 0,
            "amount_refunded": 0,
            "billing_details": copy_json(pm["billing_details"]),
            "captured": ok,
            "created": ctx.now,
            "currency": pi["currency"],
            "customer": pi["customer"],
            "description": pi["description"],
            "disputed": False,
            "failure_code": failure.code if failure is not None else None,
            "failure_message": failure.message if failure is not None else None,
            "livemode": False,
            "metadata": dict(pi["metadata"]),
            "outcome": _outcome(failure),
            "paid": ok,
            "payment_intent": pi["id"],
            "payment_method": pm["id"],
            "payment_method_details": {"type": "card", "card": _card_details(pm["card"])},
            "receipt_email": pi["receipt_email"],
            "refunded": False,
            "status": "succeeded" if ok else "failed",
        },
    )
    state.charges[charge["id"]] = charge
    return charge


def _card_details(card: Json) -> Json:
    copied = {k: card[k] for k in ("brand", "country", "exp_month", "exp_year", "fingerprint", "funding", "last4")}
    return shaped(stripe.Charge.PaymentMethodDetails.Card, {**copied, "checks": copy_json(card["checks"])})


def _outcome(failure: CardProfile | None) -> Json:
    if failure is None:
        values: Json = {
            "network_status": "approved_by_network",
            "risk_level": "normal",
            "seller_message": "Payment complete.",
            "type": "authorized",
        }
    else:
        values = {
            "network_status": "declined_by_network",
            "reason": failure.decline_code,
            "risk_level": "normal",
            "seller_message": "The bank did not return any further details with this decline.",
            "type": "issuer_declined",
        }
    return shaped(stripe.Charge.Outcome, values)


def retrieve(state: StripeState, ctx: Ctx, p: Json, charge_id: str | None) -> Json:
    params.expand(p, set())
    charge = state.charges.get(charge_id or "")
    if charge is None:
        raise errors.no_such("charge", charge_id or "", "id")
    return copy_json(charge)


def refund(state: StripeState, ctx: Ctx, charge_id: str, amount: int | None = None) -> Json:
    """Refund a succeeded charge as the Dashboard does (in full unless ``amount``); emits ``refund.created``
    and ``charge.refunded`` and returns the Charge."""
    charge = adjustable(state, charge_id)
    try:
        new_refund(state, ctx, charge, amount, {}, None)
    except errors.StripeApiError as refused:
        raise ValueError(refused.error["message"]) from None
    return copy_json(charge)


def create_refund(state: StripeState, ctx: Ctx, p: Json, _: str | None) -> Json:
    """``POST /v1/refunds`` (stripe.params.RefundCreateParams): a refund of a charge, named by itself or by
    its PaymentIntent, in full or of ``amount``."""
    params.expand(p, set())
    charge = _refundable_charge(state, p)
    amount = params.integer(p, "amount")
    if amount is not None and amount < 1:
        raise errors.invalid(
            "This value must be greater than or equal to 1.", param="amount", code="parameter_invalid_integer"
        )
    return copy_json(new_refund(state, ctx, charge, amount, params.metadata(p), params.text(p, "reason")))


def _refundable_charge(state: StripeState, p: Json) -> Json:
    charge_id, pi_id = params.text(p, "charge"), params.text(p, "payment_intent")
    if charge_id and pi_id:
        raise errors.exclusive("charge", "payment_intent")
    if pi_id:
        pi = state.payment_intents.get(pi_id)
        if pi is None:
            raise errors.no_such("payment_intent", pi_id, "payment_intent", status=400)
        charge_id = pi.get("latest_charge")
        if not charge_id or state.charges[charge_id]["status"] != "succeeded":
            raise errors.invalid(
                f"This PaymentIntent ({pi_id}) does not have a successful charge to refund.",
                param="payment_intent",
                code="charge_not_refundable",
            )
    if not charge_id:
        raise errors.invalid(
            "One of the following params should be provided for this request: charge or payment_intent."
        )
    charge = state.charges.get(charge_id)
    if charge is None:
        raise errors.no_such("charge", charge_id, "charge", status=400)
    return charge


def new_refund(
    state: StripeState, ctx: Ctx, charge: Json, amount: int | None, metadata: Json, reason: str | None
) -> Json:
    """Refund ``amount`` (default: what is left) of a succeeded charge. Refused as the API refuses it
    (docs.stripe.com/error-codes: ``charge_already_refunded``, ``charge_disputed``, ``amount_too_large``
    "the specified amount is greater than the maximum amount allowed"). A card refund succeeds at once
    (docs.stripe.com/refunds); it emits ``refund.created`` and ``charge.refunded``, whose Charge carries
    the new ``amount_refunded`` ("occurs whenever a charge is refunded, including partial refunds")."""
    left = charge["amount"] - charge["amount_refunded"]
    if charge["refunded"] or left <= 0:
        raise errors.invalid(f"Charge {charge['id']} has already been refunded.", code="charge_already_refunded")
    if charge["disputed"]:
        raise errors.invalid(
            f"Charge {charge['id']} has been charged back; cannot issue a refund.", code="charge_disputed"
        )
    amount = left if amount is None else amount
    if amount > left:
        raise errors.invalid(
            f"Refund amount ({amount}) is greater than unrefunded amount on charge ({left})",
            param="amount",
            code="amount_too_large",
        )
    record = shaped(
        stripe.Refund,
        {
            "id": new_id("re"),
            "object": "refund",
            "amount": amount,
            "charge": charge["id"],
            "created": ctx.now,
            "currency": charge["currency"],
            "metadata": metadata,
            "payment_intent": charge["payment_intent"],
            "payment_method": charge["payment_method"],
            "reason": reason,
            "status": "succeeded",
        },
    )
    state.refunds.append(record)
    charge["amount_refunded"] += amount
    charge["refunded"] = charge["amount_refunded"] >= charge["amount"]
    emit(state, ctx, "refund.created", record)
    emit(state, ctx, "charge.refunded", charge)
    answered = copy_json(record)  # the refund as it was made: it fails "some time later"
    if state.pm_usage[charge["payment_method"]].card.refund_fails:
        _fail_refund(state, ctx, charge, record)
    return answered


def _fail_refund(state: StripeState, ctx: Ctx, charge: Json, refund: Json) -> None:
    """The bank refuses the money back (``stripe.Refund.failure_reason``, e.g. ``expired_or_canceled_card``):
    the refund's status becomes ``failed`` and its amount returns to the balance, so the Charge no longer counts
    it (``amount_refunded``). Stripe sends ``refund.updated`` and ``refund.failed`` (docs.stripe.com/refunds,
    "Failed refunds")."""
    refund.update(status="failed", failure_reason="expired_or_canceled_card")
    charge["amount_refunded"] -= refund["amount"]
    charge["refunded"] = False
    emit(state, ctx, "refund.updated", refund, automatic=True)
    emit(state, ctx, "refund.failed", refund, automatic=True)


def adjustable(state: StripeState, charge_id: str) -> Json:
    charge = state.charges.get(charge_id)
    if charge is None:
        raise KeyError(f"No such charge: '{charge_id}'")
    if charge["status"] != "succeeded":
        raise ValueError(f"Charge {charge_id} has status {charge['status']}, not succeeded")
    return charge
