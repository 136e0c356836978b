"""Monthly renewals: the schedule finds due pledges, the consumer charges each period exactly once.

Exactly once, by construction rather than by luck:
- one period of one pledge has one donation (``renewal_donation_id``) and one Stripe idempotency key
  (``renewal_key``): a duplicate message, a replayed schedule or two consumers at once reach the
  same record and the same PaymentIntent;
- the pledge moves to its next period only in the write that records this one
  (``PledgeStore.advance``, conditional on the period), after the donation says charged: a crash
  anywhere before it leaves the pledge due, and the next delivery finishes the period;
- a delivery that finds the period's donation already begun (a crash between Stripe's answer and the
  record, possibly longer ago than Stripe keeps idempotency keys) first asks Stripe for the
  PaymentIntent that attempt created (``find_attempt``, a consistent list read) before charging.

Each renewal is a donation of its own, so its receipt goes out through the receipt queue unchanged,
and the reconciler publishes its follow-ups if the consumer died before it did.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any, Protocol

from donations.errors import CardDeclined, PermanentStepFailure
from donations.followups import publish_follow_ups
from donations.models import Donation, DonationStatus, StepStatus, utc_now
from donations.observability import MetricUnit, logger, metrics
from donations.payments import recorded_decline
from donations.pledges import (
    Pledge,
    PledgeState,
    PledgeStore,
    RenewalMessage,
    due_days,
    renewal_donation_id,
)
from donations.ports import ChargeOutcome, ChargeState, IntentSnapshot, Publisher
from donations.store import ConditionFailed, DonationStore

# SendMessageBatch takes at most 10 entries.
_SEND_BATCH = 10

# What an operator can do about each way a renewal fails (the pledge's ``last_failure``).
_NEXT_STEP = {
    "authentication_required": "the bank wants the donor to authenticate this renewal; ask the donor to finish "
    "it on-session or to give another card",
    "insufficient_funds": "the card has insufficient funds; contact the donor or try again later",
    "expired_card": "the saved card has expired; ask the donor for a new card",
}
_DEFAULT_NEXT_STEP = "the card was declined; ask the donor to update the card"


class RenewalCharges(Protocol):
    """What a renewal needs from Stripe (donations.payments.StripePayments)."""

    def charge_saved_card(self, donation: Donation, customer_id: str, idempotency_key: str) -> ChargeOutcome: ...

    def find_attempt(self, donation: Donation) -> IntentSnapshot | None: ...


def renewal_key(pledge_id: str, period: str) -> str:
    """Stripe's idempotency key of one pledge's one period."""
    return f"pledge-{pledge_id}-{period}"


def schedule_renewals(pledges: PledgeStore, sqs: Any, queue_url: str, now: datetime) -> int:
    """One message per due pledge and period on the renewal queue; the number sent.

    Reads the due index's partitions from the look-back window to ``now``'s day (queries, no scan). A
    pledge queued for its period by a recent run is left alone (``PledgeStore.mark_queued``), so a slow
    drain or an outage does not pile up a message per run; after REQUEUE_AFTER it is sent again (a
    duplicate, which the consumer takes in its stride). A send that fails raises, so the run is reported;
    the pledges it marked are sent again after REQUEUE_AFTER.
    """
    due = [message for day in due_days(now.date()) for message in pledges.due_on(day)]
    messages = [message for message in due if pledges.mark_queued(message, now)]
    for start in range(0, len(messages), _SEND_BATCH):
        entries = [
            {
                "Id": str(index),
                "MessageBody": message.model_dump_json(),
                "MessageAttributes": {
                    "type": {"DataType": "String", "StringValue": "renew"},
                    "pledge_id": {"DataType": "String", "StringValue": message.pledge_id},
                    "period": {"DataType": "String", "StringValue": message.period},
                },
            }
            for index, message in enumerate(messages[start : start + _SEND_BATCH])
        ]
        failed = sqs.send_message_batch(QueueUrl=queue_url, Entries=entries).get("Failed", [])
        if failed:
            raise RuntimeError(f"{len(failed)} renewal message(s) not sent: {failed[0].get('Code')}")
    metrics.add_metric(name="RenewalsScheduled", unit=MetricUnit.Count, value=len(messages))
    logger.info("Renewals scheduled", extra={"renewals": len(messages)})
    return len(messages)


def renewal_donation(pledge: Pledge, correlation_id: str) -> Donation:
    """The donation of the pledge's current period: pending, on the pledge's saved card, linked to it."""
    stamp = utc_now()
    donation_id = renewal_donation_id(pledge.pledge_id, pledge.period)
    return Donation(
        donation_id=donation_id,
        status=DonationStatus.PENDING,
        amount=pledge.amount,
        currency=pledge.currency,
        email=pledge.email,
        email_masked=pledge.email_masked,
        name=pledge.name,
        payment_method=pledge.payment_method_id,
        save_card=False,
        metadata={"pledge_id": pledge.pledge_id, "renewal_period": pledge.period},
        request_hash=hashlib.sha256(f"renewal:{pledge.pledge_id}:{pledge.period}".encode()).hexdigest(),
        correlation_id=correlation_id,
        created_at=stamp,
        updated_at=stamp,
        # In the reconciler's index until charged and published, like every donation.
        unsettled_since=stamp,
        card_status=StepStatus.NOT_REQUESTED,
        charge_attempt_started_at=stamp,
        donor_key=pledge.donor_key,
        created_day=stamp[:10],
    )


def renew(
    message: RenewalMessage,
    *,
    pledges: PledgeStore,
    store: DonationStore,
    charges: RenewalCharges,
    publisher: Publisher,
    correlation_id: str = "",
) -> Donation | None:
    """Charge one pledge's one period, record it, move the pledge on. Safe to run any number of times.

    Returns the period's donation, or None when there was nothing to do (a duplicate, a pledge no
    longer active). Raises PermanentStepFailure for a message that can never succeed, and a
    retryable error when Stripe or AWS could not answer (the message comes back).
    """
    pledge = pledges.get(message.pledge_id)
    if pledge is None:
        raise PermanentStepFailure("renew:pledge_not_found")
    logger.thread_safe_append_keys(pledge_id=pledge.pledge_id, period=message.period, donor=pledge.email_masked)
    if not _due(pledge, message):
        metrics.add_metric(name="DuplicateDeliveries", unit=MetricUnit.Count, value=1)
        logger.info("Renewal already done, failed or not wanted; message acknowledged", extra={"state": pledge.state})
        return None
    planned = renewal_donation(pledge, correlation_id)
    donation = store.create_renewal(planned)
    if donation.status is DonationStatus.PENDING:
        donation = _charge(donation, pledge, store, charges, first_try=donation is planned)
    if donation.status is DonationStatus.SUCCEEDED:
        publish_follow_ups(donation, store, publisher, correlation_id)
        _advance(pledges, pledge, donation)
        return donation
    _record_failure(pledges, pledge, donation)
    return donation


def _due(pledge: Pledge, message: RenewalMessage) -> bool:
    if pledge.state is PledgeState.ACTIVE and pledge.period == message.period:
        return True
    if message.period > pledge.period and pledge.state is PledgeState.ACTIVE:
        # The schedule only sends a pledge's current period: a later one is not ours to charge.
        raise PermanentStepFailure("renew:period_not_due")
    return False


def _charge(
    donation: Donation, pledge: Pledge, store: DonationStore, charges: RenewalCharges, *, first_try: bool
) -> Donation:
    if not first_try:
        # A delivery before this one began this period: did its charge reach Stripe?
        found = charges.find_attempt(donation)
        if found is not None and found.status == "succeeded":
            return store.mark_charged(donation.donation_id, found.id, found.payment_method_id)
        if found is not None and found.decline_code:
            return _declined(store, donation, recorded_decline(found.decline_code), found.id)
    try:
        outcome = charges.charge_saved_card(donation, pledge.customer_id, renewal_key(pledge.pledge_id, pledge.period))
    except CardDeclined as declined:
        return _declined(store, donation, declined, declined.payment_intent_id)
    if outcome.state is ChargeState.REQUIRES_ACTION:
        return store.mark_requires_action(donation.donation_id, outcome.payment_intent_id)
    return store.mark_charged(
        donation.donation_id,
        outcome.payment_intent_id,
        outcome.payment_method_id,
        card=(outcome.card_brand, outcome.card_last4),
    )


def _declined(
    store: DonationStore, donation: Donation, declined: CardDeclined, payment_intent_id: str | None
) -> Donation:
    metrics.add_metric(name="RenewalsDeclined", unit=MetricUnit.Count, value=1)
    logger.warning("Renewal declined", extra={"decline_code": declined.decline_code})
    try:
        return store.mark_declined(donation.donation_id, declined.decline_code or "card_declined", payment_intent_id)
    except ConditionFailed:
        return _current(store, donation)  # another delivery recorded it first


def _advance(pledges: PledgeStore, pledge: Pledge, donation: Donation) -> None:
    try:
        pledges.advance(pledge, donation.donation_id)
    except ConditionFailed:
        logger.info("Pledge already moved on by another delivery")
        return
    metrics.add_metric(name="RenewalsCharged", unit=MetricUnit.Count, value=1)
    logger.info("Renewal charged", extra={"donation_id": donation.donation_id})


def failure_reason(donation: Donation) -> str:
    """What happened to a renewal that was not charged, and what an operator can do about it."""
    if donation.status is DonationStatus.REQUIRES_ACTION:
        code = "authentication_required"
    else:
        code = donation.decline_code or donation.failure_reason or donation.status.value
    return f"{code}: {_NEXT_STEP.get(code, _DEFAULT_NEXT_STEP)} (donation {donation.donation_id})"


def _record_failure(pledges: PledgeStore, pledge: Pledge, donation: Donation) -> None:
    reason = failure_reason(donation)
    try:
        pledges.record_failure(pledge, donation.donation_id, reason)
    except ConditionFailed:
        logger.info("Pledge failure already recorded by another delivery")
        return
    metrics.add_metric(name="PledgesNeedingAttention", unit=MetricUnit.Count, value=1)
    logger.warning("Pledge needs attention", extra={"reason": reason})


def _current(store: DonationStore, donation: Donation) -> Donation:
    current = store.get(donation.donation_id)
    if current is None:
        raise PermanentStepFailure("renew:donation_vanished")
    return current
