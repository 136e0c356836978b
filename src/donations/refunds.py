"""Money moving back after the gift: refunds and disputes, recorded on the donation and told to the donor.

Refunds start in two places, the operators' ``donations-ops refund`` (Stripe's Refunds API) and the
Stripe Dashboard; both end in Stripe's ``charge.refunded`` event, which "occurs whenever a charge is
refunded, including partial refunds" and carries the Charge with ``amount_refunded``, the sum refunded
so far (docs.stripe.com/api/events/types; ``stripe.Charge.amount_refunded`` of the pinned SDK). So the
record keeps that sum, never a list to add up: a duplicate event sets the same sum again, an older one
arriving late is refused by the store (sums only grow), and nothing is counted twice.

The donor hears about each new sum once: every time the sum grows, a ``refund_notice`` message goes on
the receipt queue, and the send-receipt function sends a corrected receipt (the amount refunded and what
remains a gift; a refund notice when nothing remains) for the sum the record holds, under a claim that
succeeds only while that sum is more than the donor was last told (donations.steps.send_refund_notice).
Two refunds close together may reach the donor as one notice stating their total.

A refund can succeed, then fail (the bank refuses the money back: ``refund.failed``, or ``refund.updated``
with status ``failed``; docs.stripe.com/refunds, "Failed refunds"): its amount comes off the refunded sum,
once per refund, and the gift is whole again. The donor is not written to: the money never left, and what
the charity tells the donor depends on how it returns the money (docs: refunds-and-disputes, failed refunds).

Disputes (chargebacks) are recorded from ``charge.dispute.created``, ``.updated``, ``.closed``,
``.funds_withdrawn`` and ``.funds_reinstated`` (statuses of ``stripe.Dispute.status``): the status moves
only towards closed, so an open status arriving after the closing one changes nothing, and the money the
dispute moved (its balance transactions, which only accumulate, and their fee) is taken from the event with
the most. Operators hear of a dispute's opening and of its end once each, from the created and closed events.
A disputed gift of a monthly pledge stops the pledge.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from donations.models import Donation, refund_state
from donations.observability import MetricUnit, logger, metrics
from donations.pledges import pledge_of
from donations.ports import DisputeFacts, PledgeStopper, Publisher, RefundFailure, Store
from donations.store import ConditionFailed


def record_refunded_total(
    donation: Donation, amount_refunded: int, refunded_at: str, *, store: Store, publisher: Publisher
) -> bool:
    """Record Stripe's refunded sum and queue the donor's notice; False if an older sum than the record's.

    The notice message is sent again for the same sum (a redelivered event, or the CLI then the event):
    the consumer's claim sends one notice per sum. A failed send raises: the event is answered with an
    error and Stripe delivers it again.
    """
    state = refund_state(donation.amount, amount_refunded)
    try:
        recorded = store.record_refund(donation.donation_id, amount_refunded, refunded_at, state)
    except ConditionFailed:
        logger.info(
            "An older refunded total than the record's; not applied", extra={"amount_refunded": amount_refunded}
        )
        return False
    if amount_refunded > 0:
        publisher.publish_refund_notice(donation.donation_id, donation.correlation_id)
    logger.info(
        "Refund recorded",
        extra={"amount_refunded": amount_refunded, "refund_state": str(recorded.refund_state or "")},
    )
    return True


def record_refund_failure(donation: Donation, failure: RefundFailure, *, store: Store) -> bool:
    """Take a failed refund off the record's refunded sum; False if it was taken off before (a duplicate)."""
    recorded = store.record_refund_failure(donation.donation_id, failure)
    if recorded is None:
        logger.info("Refund failure already recorded", extra={"refund_id": failure.refund_id})
        return False
    # An operator returns the money another way (docs: refunds-and-disputes); donations-ops shows it.
    logger.warning(
        "Refund failed; the refunded sum is back to what Stripe still refunds",
        extra={
            "refund_id": failure.refund_id,
            "amount": failure.amount,
            "failure_reason": failure.reason,
            "amount_refunded": recorded.amount_refunded,
        },
    )
    return True


def dispute_facts(dispute: dict[str, Any], event_created: int) -> DisputeFacts:
    """The parts of a Stripe Dispute (``stripe.Dispute`` of the pinned API version) the record keeps. Its
    balance transactions come whole in the event (``List[BalanceTransaction]``, not expandable); their
    ``fee`` is Stripe's dispute fee (a reinstatement may give it back as a negative fee)."""
    due_by = (dispute.get("evidence_details") or {}).get("due_by")
    moved = [bt for bt in dispute.get("balance_transactions") or [] if isinstance(bt, dict)]
    return DisputeFacts(
        dispute_id=str(dispute["id"]),
        reason=str(dispute.get("reason") or "unknown"),
        status=str(dispute.get("status") or "unknown"),
        amount=int(dispute.get("amount") or 0),
        opened_at=iso(int(dispute.get("created") or event_created)),
        changed_at=iso(event_created),
        evidence_due_by=iso(int(due_by)) if due_by else None,
        balance_transactions=len(moved),
        fee=sum(int(bt.get("fee") or 0) for bt in moved),
        fee_currency=str(moved[0]["currency"]) if moved else None,
    )


@dataclass(frozen=True)
class DisputeApplied:
    recorded: bool
    """False: an open status arriving after the dispute closed (events out of order); nothing changed."""
    pledge_stopped: str | None = None
    """The monthly pledges this event stopped (comma separated): the disputed gift's, and for a fraudulent
    dispute the donor's others on the same card."""


def record_dispute(
    donation: Donation, facts: DisputeFacts, *, store: Store, pledges: PledgeStopper | None, event_type: str
) -> DisputeApplied:
    """Record the dispute's state; stop the donation's pledge (a renewal names it in its metadata).

    Counted by the event's type, whether or not it changed the record: the created and closed events come
    once each (the webhook applies an event id once), and a closed event that arrives after the
    funds_reinstated one (which already says won) must still tell operators how it ended."""
    _count_dispute(facts, event_type)
    try:
        store.record_dispute(donation.donation_id, facts)
    except ConditionFailed:
        logger.info("An older state of the dispute than the record's; not applied", extra={"status": facts.status})
        return DisputeApplied(recorded=False)
    stopped = _stop_pledge(donation, facts, pledges)
    logger.warning(
        "Dispute recorded",
        extra={
            "dispute_id": facts.dispute_id,
            "reason": facts.reason,
            "status": facts.status,
            "evidence_due_by": facts.evidence_due_by,
            "dispute_fee": facts.fee,
            "pledge_stopped": stopped,
        },
    )
    return DisputeApplied(recorded=True, pledge_stopped=stopped)


def _stop_pledge(donation: Donation, facts: DisputeFacts, pledges: PledgeStopper | None) -> str | None:
    """The donor disputes a monthly gift: charging the card again would only bring another dispute. A renewal
    names its pledge; the gift that started a pledge is its origin (the pledge's id derives from it). A
    ``fraudulent`` dispute (the cardholder says they did not make the payment) also stops the donor's other
    pledges on the same card: each of their charges would be disputed the same way."""
    if pledges is None:
        return None
    pledge_id = pledge_of(donation)
    stopping = [pledge_id] if pledge_id else []
    if facts.reason == "fraudulent" and donation.donor_key and donation.card_brand and donation.card_last4:
        on_card = pledges.pledges_on_card(donation.donor_key, donation.card_brand, donation.card_last4)
        stopping += [other for other in on_card if other != pledge_id]
    stopped = [p for p in stopping if pledges.stop_for_dispute(p, f"dispute:{facts.reason}:{facts.dispute_id}")]
    if stopped:  # none: stopped already (a duplicate event, or the dispute's earlier event)
        metrics.add_metric(name="PledgesStoppedByDispute", unit=MetricUnit.Count, value=len(stopped))
    return ", ".join(stopped) or None


def _count_dispute(facts: DisputeFacts, event_type: str) -> None:
    # DisputeNotices raises the dispute alarm (an operator acts on an opened dispute, and learns how it
    # ended); the others are for the dashboard.
    if event_type == "charge.dispute.closed":
        name = {"won": "DisputesWon", "lost": "DisputesLost"}.get(facts.status, "DisputesClosed")
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)
        metrics.add_metric(name="DisputeNotices", unit=MetricUnit.Count, value=1)
    elif event_type == "charge.dispute.created":
        metrics.add_metric(name="DisputesOpened", unit=MetricUnit.Count, value=1)
        metrics.add_metric(name="DisputeNotices", unit=MetricUnit.Count, value=1)


def iso(unix_seconds: int) -> str:
    return datetime.fromtimestamp(unix_seconds, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
