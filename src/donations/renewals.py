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
from typing import Literal, Protocol

from donations.dunning import AUTHENTICATION_REQUIRED, Next, after_decline
from donations.errors import CardDeclined, PermanentStepFailure
from donations.followups import publish_follow_ups
from donations.models import Donation, DonationStatus, FollowUpMessage, Step, StepStatus, utc_now
from donations.observability import MetricUnit, logger, metrics
from donations.payments import recorded_decline
from donations.pledges import (
    FailedTry,
    Pledge,
    PledgeState,
    PledgeStore,
    RenewalMessage,
    dunning_notice_key,
    renewal_donation_id,
    renewal_identity,
)
from donations.ports import ChargeOutcome, ChargeState, IntentSnapshot, Publisher
from donations.store import ConditionFailed, DonationStore

# What an operator can do about each way a renewal fails (the pledge's ``last_failure``).
_LOST = "the card was reported lost or stolen, or blocked: the donor must give a new card"
_NEXT_STEP = {
    "authentication_required": "the bank wants the donor to authenticate this renewal; they were emailed a link "
    "to finish it on-session (or ask them for another card)",
    "insufficient_funds": "the card has insufficient funds; the donor can give another card",
    "expired_card": "the saved card has expired; ask the donor for a new card",
    "do_not_honor": "the bank refuses this card; the donor must call the bank or give a new card",
    "lost_card": _LOST,
    "stolen_card": _LOST,
    "pickup_card": _LOST,
    "fraudulent": _LOST,
}
_DEFAULT_NEXT_STEP = "the card was declined; ask the donor to update the card"


class Notices(Protocol):
    """Where the donor's emails are asked for (the receipt queue: donations.followups.FollowUpPublisher)."""

    def send(self, message: FollowUpMessage) -> None: ...


class RenewalCharges(Protocol):
    """What a renewal needs from Stripe (donations.payments.StripePayments)."""

    def charge_saved_card(self, donation: Donation, customer_id: str, idempotency_key: str) -> ChargeOutcome: ...

    def find_attempt(self, donation: Donation) -> IntentSnapshot | None: ...


def renewal_key(pledge_id: str, period: str, renewal_try: int = 1) -> str:
    """Stripe's idempotency key of one try of one pledge's one period."""
    return f"pledge-{pledge_id}-{period}" + (f"-try{renewal_try}" if renewal_try > 1 else "")


def renewal_donation(pledge: Pledge, correlation_id: str) -> Donation:
    """The donation of the pledge's current period and try: pending, on the pledge's saved card, linked to it."""
    stamp = utc_now()
    donation_id = renewal_donation_id(pledge.pledge_id, pledge.period, pledge.renewal_try)
    retry = {"renewal_try": str(pledge.renewal_try)} if pledge.renewal_try > 1 else {}
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
        metadata={"pledge_id": pledge.pledge_id, "renewal_period": pledge.period, **retry},
        request_hash=hashlib.sha256(
            renewal_identity(pledge.pledge_id, pledge.period, pledge.renewal_try).encode()
        ).hexdigest(),
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
    notices: Notices | None = None,
) -> Donation | None:
    """Charge one try of one pledge's one period, record it, move the pledge on (or into dunning).
    Safe to run any number of times.

    Returns the try's donation, or None when there was nothing to do (a duplicate, a pledge no
    longer active). Raises PermanentStepFailure for a message that can never succeed, and a
    retryable error when Stripe or AWS could not answer (the message comes back).
    """
    pledge = pledges.get(message.pledge_id)
    if pledge is None:
        raise PermanentStepFailure("renew:pledge_not_found")
    logger.thread_safe_append_keys(
        pledge_id=pledge.pledge_id, period=message.period, renewal_try=message.renewal_try, donor=pledge.email_masked
    )
    if not _due(pledge, message):
        metrics.add_metric(name="DuplicateDeliveries", unit=MetricUnit.Count, value=1)
        logger.info("Renewal already done, failed or not wanted; message acknowledged", extra={"state": pledge.state})
        return None
    planned = renewal_donation(pledge, correlation_id)
    donation = store.create_renewal(planned)
    issuer_code: str | None = None
    if donation.status is DonationStatus.PENDING:
        donation, issuer_code = _charge(donation, pledge, store, charges, first_delivery=donation is planned)
    elif donation.status is DonationStatus.DECLINED:
        # An earlier delivery recorded the decline and died before the pledge: the issuer's own code
        # (the donation keeps the donor-safe one) decides what follows.
        found = charges.find_attempt(donation)
        issuer_code = found.issuer_decline_code if found is not None else None
    if donation.status is DonationStatus.SUCCEEDED:
        publish_follow_ups(donation, store, publisher, correlation_id)
        _advance(pledges, pledge, donation)
        return donation
    if donation.status is DonationStatus.REQUIRES_ACTION and notices is not None:
        # Before the pledge records the failure, so a crash in between is made good by the next delivery;
        # the email goes once whatever the number of these messages (donations.pledge_manage).
        notices.send(authentication_notice(pledge, donation, correlation_id))
    _record_failure(pledges, pledge, donation, issuer_code, notices, correlation_id)
    return donation


def authentication_notice(pledge: Pledge, donation: Donation, correlation_id: str) -> FollowUpMessage:
    """The message that has the send-receipt function email the donor a link to authenticate this renewal."""
    return _pledge_email(pledge, donation, correlation_id, "authenticate", donation.donation_id)


def dunning_notice(pledge: Pledge, donation: Donation, correlation_id: str) -> FollowUpMessage:
    """The message that has the send-receipt function tell the donor about this failed try (the pledge
    records what to say: donations.pledge_manage.send_dunning_notice), once per ``<period>#<try>``."""
    return _pledge_email(pledge, donation, correlation_id, "dunning", dunning_notice_key(pledge))


def _pledge_email(
    pledge: Pledge, donation: Donation, correlation_id: str, mail: Literal["authenticate", "dunning"], request_id: str
) -> FollowUpMessage:
    return FollowUpMessage(
        type=Step.SEND_RECEIPT,
        donation_id=donation.donation_id,
        correlation_id=correlation_id,
        mail=mail,
        pledge_id=pledge.pledge_id,
        request_id=request_id,
    )


def _due(pledge: Pledge, message: RenewalMessage) -> bool:
    if pledge.state is not PledgeState.ACTIVE:
        return False
    if (pledge.period, pledge.renewal_try) == (message.period, message.renewal_try):
        return True
    if (message.period, message.renewal_try) > (pledge.period, pledge.renewal_try):
        # The schedule only sends a pledge's current period and try: a later one is not ours to charge.
        raise PermanentStepFailure("renew:period_not_due")
    return False


def _charge(
    donation: Donation, pledge: Pledge, store: DonationStore, charges: RenewalCharges, *, first_delivery: bool
) -> tuple[Donation, str | None]:
    """The try's donation after charging it (or finding what an earlier delivery's charge did), and the
    issuer's decline code if it was declined."""
    if not first_delivery:
        # A delivery before this one began this try: did its charge reach Stripe?
        found = charges.find_attempt(donation)
        if found is not None and found.status == "succeeded":
            return store.mark_charged(donation.donation_id, found.id, found.payment_method_id), None
        if found is not None and found.decline_code:
            declined = recorded_decline(found.decline_code)
            return _declined(store, donation, declined, found.id), found.issuer_decline_code
    key = renewal_key(pledge.pledge_id, pledge.period, pledge.renewal_try)
    try:
        outcome = charges.charge_saved_card(donation, pledge.customer_id, key)
    except CardDeclined as declined:
        return _declined(store, donation, declined, declined.payment_intent_id), declined.issuer_decline_code
    if outcome.state is ChargeState.REQUIRES_ACTION:
        return store.mark_requires_action(donation.donation_id, outcome.payment_intent_id), None
    charged = store.mark_charged(
        donation.donation_id,
        outcome.payment_intent_id,
        outcome.payment_method_id,
        card=(outcome.card_brand, outcome.card_last4),
    )
    return charged, None


def _declined(
    store: DonationStore, donation: Donation, declined: CardDeclined, payment_intent_id: str | None
) -> Donation:
    metrics.add_metric(name="RenewalsDeclined", unit=MetricUnit.Count, value=1)
    _score(declined=True)
    logger.warning("Renewal declined", extra={"decline_code": declined.decline_code})
    if declined.decline_code == AUTHENTICATION_REQUIRED and payment_intent_id:
        # Not a decline the donor cannot mend: the bank wants them to authenticate this very PaymentIntent
        # on-session (docs.stripe.com/payments/cards/charging-saved-cards, "authentication_required"). It
        # waits for them, as a 3-D Secure gift does (the emailed link's page finishes it).
        try:
            return store.mark_requires_action(donation.donation_id, payment_intent_id)
        except ConditionFailed:
            return _current(store, donation)
    try:
        return store.mark_declined(donation.donation_id, declined.decline_code or "card_declined", payment_intent_id)
    except ConditionFailed:
        return _current(store, donation)  # another delivery recorded it first


# The renewal failure-rate alarm's metric (template.yaml, RenewalFailureRateAlarm): one metric, so one
# alarm metric on the bill, that is both a rate and a volume. Each declined try adds 1 and each charge
# takes 0.25 away, so a day's sum passes 5 only when more than about one try in five is declined
# (declines > charges / 4) and at least 6 were: a rate above normal, never one unlucky donor.
_SCORE_DECLINED = 1.0
_SCORE_CHARGED = -0.25


def _score(*, declined: bool) -> None:
    metrics.add_metric(
        name="RenewalFailureScore", unit=MetricUnit.Count, value=_SCORE_DECLINED if declined else _SCORE_CHARGED
    )


def _advance(pledges: PledgeStore, pledge: Pledge, donation: Donation) -> None:
    try:
        pledges.advance(pledge, donation.donation_id)
    except ConditionFailed:
        logger.info("Pledge already moved on by another delivery")
        return
    metrics.add_metric(name="RenewalsCharged", unit=MetricUnit.Count, value=1)
    _score(declined=False)
    logger.info("Renewal charged", extra={"donation_id": donation.donation_id})


def failure_code(donation: Donation) -> str:
    if donation.status is DonationStatus.REQUIRES_ACTION:
        return AUTHENTICATION_REQUIRED
    return donation.decline_code or donation.failure_reason or donation.status.value


def failure_reason(donation: Donation, code: str | None = None, outcome: str | None = None) -> str:
    """What happened to a renewal that was not charged, and what an operator can do about it."""
    code = code or failure_code(donation)
    told = f"{code}: {outcome}; " if outcome else f"{code}: "
    return f"{told}{_NEXT_STEP.get(code, _DEFAULT_NEXT_STEP)} (donation {donation.donation_id})"


def _record_failure(
    pledges: PledgeStore,
    pledge: Pledge,
    donation: Donation,
    issuer_code: str | None,
    notices: Notices | None,
    correlation_id: str,
) -> None:
    donor_code = failure_code(donation)
    code = issuer_code or donor_code
    verdict = after_decline(code, pledge.renewal_try, pledge.next_charge_on, pledge.due_on or pledge.next_charge_on)
    failed = FailedTry(donation.donation_id, donor_code, failure_reason(donation, code, verdict.why))
    if verdict.next in (Next.RETRY, Next.LAPSE) and notices is not None:
        # Queued before the pledge records the notice, as the authentication email is: a crash in between is
        # made good by the next delivery, and the sender waits until the pledge says what to tell.
        notices.send(dunning_notice(pledge, donation, correlation_id))
    try:
        if verdict.next is Next.RETRY and verdict.retry_on is not None:
            pledges.schedule_retry(pledge, failed, verdict.retry_on)
        elif verdict.next is Next.LAPSE:
            pledges.lapse(pledge, failed)
        else:
            pledges.await_donor(pledge, donation.donation_id, failure_reason(donation))
    except ConditionFailed:
        logger.info("Pledge failure already recorded by another delivery")
        return
    metrics.add_metric(name=_FAILURE_METRICS[verdict.next], unit=MetricUnit.Count, value=1)
    logger.warning("Renewal try failed", extra={"next": verdict.next.value, "reason": failed.reason})


_FAILURE_METRICS = {
    Next.RETRY: "RenewalRetriesScheduled",
    Next.LAPSE: "PledgesLapsed",
    Next.ASK_DONOR: "PledgesNeedingAttention",
}


def _current(store: DonationStore, donation: Donation) -> Donation:
    current = store.get(donation.donation_id)
    if current is None:
        raise PermanentStepFailure("renew:donation_vanished")
    return current
