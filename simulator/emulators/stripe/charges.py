"""Charges, and the refunds and disputes that happen to them after a payment.

Refunds and disputes are emulator-only triggers (no API endpoint here): a refund issued in the
Dashboard (docs.stripe.com/refunds) emits ``charge.refunded``; a cardholder's dispute
(docs.stripe.com/disputes, evidence due within days) emits ``charge.dispute.created``.
"""

from __future__ import annotations

import stripe

from simulator.emulators.stripe import errors, params
from simulator.emulators.stripe.cards import CardProfile
from simulator.emulators.stripe.events import emit
from simulator.emulators.stripe.objects import Json, copy_json, new_id, shaped
from simulator.emulators.stripe.state import Ctx, StripeState

DISPUTE_EVIDENCE_DAYS = 7


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


def refund(state: StripeState, ctx: Ctx, charge_id: str) -> Json:
    """Refund a succeeded charge in full; emits ``charge.refunded`` and returns the Charge."""
    charge = _adjustable(state, charge_id)
    if charge["refunded"]:
        raise ValueError(f"Charge {charge_id} has already been refunded.")
    if charge["disputed"]:
        raise ValueError(f"Charge {charge_id} has been charged back; cannot issue a refund.")
    state.refunds.append(
        shaped(
            stripe.Refund,
            {
                "id": new_id("re"),
                "object": "refund",
                "amount": charge["amount"] - charge["amount_refunded"],
                "charge": charge_id,
                "created": ctx.now,
                "currency": charge["currency"],
                "metadata": {},
                "payment_intent": charge["payment_intent"],
                "payment_method": charge["payment_method"],
                "status": "succeeded",
            },
        )
    )
    charge.update(amount_refunded=charge["amount"], refunded=True)
    emit(state, ctx, "charge.refunded", charge)
    return copy_json(charge)


def dispute(state: StripeState, ctx: Ctx, charge_id: str) -> Json:
    """The cardholder disputes a succeeded charge as fraudulent; emits ``charge.dispute.created``."""
    charge = _adjustable(state, charge_id)
    if charge["disputed"]:
        raise ValueError(f"Charge {charge_id} is already disputed.")
    if charge["refunded"]:
        raise ValueError(f"Charge {charge_id} has been refunded.")
    details = {
        "due_by": ctx.now + DISPUTE_EVIDENCE_DAYS * 86_400,
        "enhanced_eligibility": shaped(stripe.Dispute.EvidenceDetails.EnhancedEligibility, {}),
        "has_evidence": False,
        "past_due": False,
        "submission_count": 0,
        "submission_method": "not_submitted",
    }
    record = shaped(
        stripe.Dispute,
        {
            "id": new_id("dp"),
            "object": "dispute",
            "amount": charge["amount"],
            "balance_transactions": [],
            "charge": charge_id,
            "created": ctx.now,
            "currency": charge["currency"],
            "enhanced_eligibility_types": [],
            "evidence": shaped(stripe.Dispute.Evidence, {}),
            "evidence_details": shaped(stripe.Dispute.EvidenceDetails, details),
            "is_charge_refundable": False,
            "livemode": False,
            "metadata": {},
            "payment_intent": charge["payment_intent"],
            "reason": "fraudulent",
            "status": "needs_response",
        },
    )
    state.disputes.append(record)
    charge["disputed"] = True
    emit(state, ctx, "charge.dispute.created", record, automatic=True)
    return copy_json(record)


def _adjustable(state: StripeState, charge_id: str) -> Json:
    charge = state.charges.get(charge_id)
    if charge is None:
        raise KeyError(f"No such charge: '{charge_id}'")
    if charge["status"] != "succeeded":
        raise ValueError(f"Charge {charge_id} has status {charge['status']}, not succeeded")
    return charge
