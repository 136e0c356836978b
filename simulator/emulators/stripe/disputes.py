"""Disputes (chargebacks and inquiries) of a succeeded charge, with the money they move.

A cardholder's dispute (docs.stripe.com/disputes, evidence due within days) starts from the emulator's
Dashboard trigger or, as at Stripe, from a published dispute test card whose charge "succeeds, only to be
disputed" (docs.stripe.com/testing, "Disputes": 4000000000000259 fraudulent, 4000000000002685 product not
received, 4000000000001976 inquiry). A chargeback takes the disputed amount and the dispute fee from the
balance at once: ``charge.dispute.created`` then ``charge.dispute.funds_withdrawn``, the Dispute's
``balance_transactions`` holding that withdrawal ("zero, one, or two balance transactions that show funds
withdrawn and reinstated", ``stripe.Dispute.balance_transactions``; the fee in ``fee`` and ``fee_details``
of ``stripe.BalanceTransaction``). Won, ``charge.dispute.closed`` then ``charge.dispute.funds_reinstated``
("occurs when funds are reinstated to your account after a dispute is closed") with a second balance
transaction giving the amount back; the fee is not returned (docs.stripe.com/disputes/how-disputes-work:
"the dispute fee is non-refundable" in most countries). Lost: ``charge.dispute.closed`` only. An inquiry
(``warning_needs_response``) moves no money and ends ``warning_closed``.
"""

from __future__ import annotations

import stripe

from simulator.emulators.stripe.charges import adjustable
from simulator.emulators.stripe.events import emit
from simulator.emulators.stripe.objects import Json, copy_json, new_id, shaped
from simulator.emulators.stripe.state import Ctx, StripeState

DISPUTE_EVIDENCE_DAYS = 7
# Stripe's dispute fee for a US account, in the charge's minor units here (docs.stripe.com/disputes: $15).
DISPUTE_FEE = 1500
_CLOSING = {"chargeback": ("won", "lost"), "inquiry": ("warning_closed", "won", "lost")}


def dispute(state: StripeState, ctx: Ctx, charge_id: str, reason: str = "fraudulent", *, inquiry: bool = False) -> Json:
    """The cardholder disputes a succeeded charge; emits ``charge.dispute.created`` (and, for a
    chargeback, ``charge.dispute.funds_withdrawn``) and returns the Dispute."""
    charge = adjustable(state, charge_id)
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
            "is_charge_refundable": inquiry,
            "livemode": False,
            "metadata": {},
            "payment_intent": charge["payment_intent"],
            "reason": reason,
            "status": "warning_needs_response" if inquiry else "needs_response",
        },
    )
    state.disputes.append(record)
    charge["disputed"] = True
    emit(state, ctx, "charge.dispute.created", record, automatic=True)
    if not inquiry:
        record["balance_transactions"].append(_balance_transaction(ctx, record, -record["amount"], DISPUTE_FEE))
        emit(state, ctx, "charge.dispute.funds_withdrawn", record, automatic=True)
    return copy_json(record)


def close_dispute(state: StripeState, ctx: Ctx, dispute_id: str, status: str) -> Json:
    """The card network decides: a chargeback ends ``won`` or ``lost``, an inquiry ``warning_closed`` (or as
    the chargeback it became); emits ``charge.dispute.closed`` ("occurs when a dispute is closed and the
    dispute status changes to lost, warning_closed, or won") and, when won after funds were withdrawn,
    ``charge.dispute.funds_reinstated``. Returns the Dispute."""
    record = next((d for d in state.disputes if d["id"] == dispute_id), None)
    if record is None:
        raise KeyError(f"No such dispute: '{dispute_id}'")
    kind = "inquiry" if record["status"].startswith("warning_") else "chargeback"
    if record["status"] in ("won", "lost", "warning_closed"):
        raise ValueError(f"Dispute {dispute_id} is already closed ({record['status']}).")
    if status not in _CLOSING[kind]:
        raise ValueError(f"A {kind} closes {' or '.join(repr(s) for s in _CLOSING[kind])}, not {status!r}")
    record["status"] = status
    record["evidence_details"]["past_due"] = False
    emit(state, ctx, "charge.dispute.closed", record, automatic=True)
    if status == "won" and record["balance_transactions"]:
        record["balance_transactions"].append(_balance_transaction(ctx, record, record["amount"], 0))
        emit(state, ctx, "charge.dispute.funds_reinstated", record, automatic=True)
    return copy_json(record)


def _balance_transaction(ctx: Ctx, record: Json, amount: int, fee: int) -> Json:
    fee_details = [
        shaped(
            stripe.BalanceTransaction.FeeDetail,
            {"amount": fee, "currency": record["currency"], "description": "Dispute fee", "type": "stripe_fee"},
        )
    ]
    return shaped(
        stripe.BalanceTransaction,
        {
            "id": new_id("txn"),
            "object": "balance_transaction",
            "amount": amount,
            "available_on": ctx.now,
            "balance_type": "payments",
            "created": ctx.now,
            "currency": record["currency"],
            "description": f"Chargeback {'reversal ' if amount > 0 else ''}for {record['charge']}",
            "fee": fee,
            "fee_details": fee_details if fee else [],
            "net": amount - fee,
            "reporting_category": "dispute" if amount < 0 else "dispute_reversal",
            "source": record["id"],
            "status": "available",
            "type": "adjustment",
        },
    )
