"""An operator's refund (``donations-ops refund``): planned against the record, made once through Stripe's
Refunds API, recorded on the donation with the donor's notice queued, the same way the webhook records one.

Once per request. The request is written on the donation (``operator_log``: ``refund_requested`` with its
Stripe idempotency key) before Stripe is called, and marked done (``refund``, with the Refund's id) or
refused (``refund_refused``) after. A retry of a request that never came back reuses its key, so Stripe
replays the refund it made rather than making a second one (Stripe keeps a key's result for 24 hours:
docs.stripe.com/api/idempotent_requests). A retry of a request that did come back (same amount and
reason, within those 24 hours) is answered from the record, and Stripe is not called; ``again`` makes
another refund of the same amount on purpose.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

import stripe

from donations import refunds
from donations.currencies import currency
from donations.followups import FollowUpPublisher
from donations.models import Donation, DonationStatus, utc_now
from donations.settings import FollowUpQueues
from donations.store import DonationStore
from donations_ops import operator_store
from donations_ops.stack_resources import OpsError

REASONS = ("requested_by_customer", "duplicate", "fraudulent")
"""stripe.params.RefundCreateParams ``reason`` of the pinned API version."""
ANSWERED_FOR = timedelta(hours=24)
REQUESTED, DONE, REFUSED = "refund_requested", "refund", "refund_refused"


@dataclass(frozen=True)
class RefundPlan:
    donation: Donation
    amount: int
    reason: str
    key: str
    retry: bool
    """The key of an earlier request that never came back: Stripe replays what it did."""

    @property
    def remaining_after(self) -> int:
        return self.donation.amount - self.donation.amount_refunded - self.amount


@dataclass(frozen=True)
class RefundDone:
    donation_id: str
    refund_id: str
    amount: int
    currency: str
    amount_refunded: int
    """The sum refunded so far, as Stripe's Charge says it after this refund."""
    net_amount: int
    already: bool = False
    """The same request was made before: answered from the record, Stripe not called."""


def minor_units(text: str, code: str) -> int:
    """``"10.00"`` usd → 1000: an amount as operators write it, in the currency's major units."""
    unit = currency(code)
    try:
        value = Decimal(text).scaleb(unit.decimals)
    except InvalidOperation:
        raise OpsError(f"not an amount: {text!r} (write it as shown, e.g. 10.00)") from None
    if value != value.to_integral_value() or value <= 0:
        raise OpsError(f"not an amount of {code.upper()}: {text!r}")
    return int(value)


def plan(donation: Donation, amount: int | None, reason: str, *, again: bool = False) -> RefundPlan | RefundDone:
    """What this request does: a new refund, the retry of one that never came back, or (RefundDone) nothing."""
    _refundable(donation)
    left = donation.amount - donation.amount_refunded
    wanted = left if amount is None else amount
    open_request = _unanswered(donation)
    if open_request is not None:
        if (int(open_request["amount"]), open_request["reason"]) != (wanted, reason):
            raise OpsError(
                f"an earlier refund of {open_request['amount']} (minor units) was sent to Stripe and never came "
                f"back: run the same command again to finish it before asking for another"
            )
        return RefundPlan(donation, wanted, reason, open_request["key"], retry=True)
    answered = _answered(donation, wanted, reason)
    if answered is not None and not again:
        return answered
    if wanted > left:
        raise OpsError(f"{donation.donation_id}: only {left} (minor units) is left to refund, not {wanted}")
    key = f"donations-ops-refund-{donation.donation_id}-{secrets.token_hex(8)}"
    return RefundPlan(donation, wanted, reason, key, retry=False)


def _refundable(donation: Donation) -> None:
    if donation.status is not DonationStatus.SUCCEEDED or not donation.payment_intent_id:
        raise OpsError(f"{donation.donation_id} was not charged ({donation.status.value}): nothing to refund")
    if donation.dispute_id is not None:
        # Stripe refuses it (charge_disputed): the dispute returns the money, or the charity wins it.
        raise OpsError(f"{donation.donation_id} is disputed ({donation.dispute_status}): see donations-ops disputes")
    if donation.amount_refunded >= donation.amount:
        raise OpsError(f"{donation.donation_id} is refunded in full already")


def _unanswered(donation: Donation) -> dict[str, str] | None:
    closed = {entry.get("key") for entry in donation.operator_log if entry.get("action") in (DONE, REFUSED)}
    pending = [e for e in donation.operator_log if e.get("action") == REQUESTED and e.get("key") not in closed]
    return pending[-1] if pending else None


def _answered(donation: Donation, amount: int, reason: str) -> RefundDone | None:
    since = (datetime.now(UTC) - ANSWERED_FOR).isoformat()
    for entry in reversed(donation.operator_log):
        same = entry.get("action") == DONE and (int(entry.get("amount", 0)), entry.get("reason")) == (amount, reason)
        if same and entry.get("at", "") >= since:
            return _done(donation, entry["refund_id"], amount, already=True)
    return None


def _done(donation: Donation, refund_id: str, amount: int, *, already: bool = False) -> RefundDone:
    return RefundDone(
        donation.donation_id,
        refund_id,
        amount,
        donation.currency,
        donation.amount_refunded,
        donation.net_amount,
        already,
    )


@dataclass(frozen=True)
class RefundPorts:
    table: Any
    stripe: stripe.StripeClient
    publisher: FollowUpPublisher


def publisher_for(sqs: Any, tokenize_queue_url: str, receipt_queue_url: str) -> FollowUpPublisher:
    queues = FollowUpQueues.model_construct(tokenize_queue_url=tokenize_queue_url, receipt_queue_url=receipt_queue_url)
    return FollowUpPublisher(sqs, queues)


def make_refund(ports: RefundPorts, refund: RefundPlan, note: str) -> RefundDone:
    """Request, call Stripe under the request's key, record: see the module's docstring."""
    donation = refund.donation
    if not refund.retry:
        entry = {"key": refund.key, "amount": str(refund.amount), "reason": refund.reason}
        operator_store.append_log(ports.table, donation, REQUESTED, note, **entry)
    try:
        made = ports.stripe.v1.refunds.create(
            params={
                "payment_intent": str(donation.payment_intent_id),
                "amount": refund.amount,
                "reason": refund.reason,
                "metadata": {"donation_id": donation.donation_id, "requested_by": "donations-ops"},
            },
            options={"idempotency_key": refund.key},
        )
    except stripe.InvalidRequestError as refused:
        _note(ports.table, donation.donation_id, REFUSED, key=refund.key, code=str(refused.code or ""))
        raise OpsError(f"Stripe refused the refund: {refused.user_message or refused}") from None
    except stripe.StripeError as lost:
        # No answer (a timeout, a reset, a 5xx): Stripe may have refunded. The request stays open on the
        # record, so the same command sends the same key and Stripe answers with what it did.
        raise OpsError(
            f"Stripe did not answer ({type(lost).__name__}); run the same command again: it refunds once"
        ) from None
    charge = ports.stripe.v1.charges.retrieve(str(made.charge))
    store = DonationStore(ports.table, _no_new_donations)
    refunds.record_refunded_total(
        store.require(donation.donation_id),
        int(charge.amount_refunded),
        utc_now(),
        store=store,
        publisher=ports.publisher,
    )
    done = {"key": refund.key, "refund_id": made.id, "amount": str(refund.amount), "reason": refund.reason}
    _note(ports.table, donation.donation_id, DONE, **done)
    return _done(store.require(donation.donation_id), made.id, refund.amount)


def _note(table: Any, donation_id: str, action: str, **details: str) -> None:
    """Append to the log of the record as it is now (the refund itself changed it since it was read)."""
    for _ in range(3):
        try:
            operator_store.append_log(table, operator_store.require(table, donation_id), action, "", **details)
            return
        except operator_store.RecordChanged:
            continue  # a consumer wrote meanwhile (the notice's claim): read again
    raise OpsError(f"{donation_id}: the refund was made, but noting it on the record failed; run the command again")


def _no_new_donations(email: str) -> str:
    raise AssertionError("donations-ops never creates donations")
