"""Stripe webhooks: verify the signature, then apply each event to its donation, once.

Payments that finish after the donor's request (3-D Secure) are only learnt from Stripe's events.
The rules:

* **Verify before anything else.** ``stripe.Webhook.construct_event`` checks the ``Stripe-Signature``
  HMAC over the raw body and refuses timestamps older than 300 s; a refusal is a 400 with no
  effect, counted in ``WebhookSignatureFailures`` (alarmed: someone is probing the endpoint).
* **In our API version only.** An event of another ``api_version`` (an endpoint set up without
  one gets the account's default) is refused with a 400, counted in ``WebhookApiVersionMismatches``
  (alarmed) and logged: see errors.WebhookApiVersionRefused for why not a 2xx.
* **Once per event id.** Stripe delivers at least once and retries for days. The handler wraps
  :func:`handle_event` in Powertools Idempotency keyed on the event id (see the handler for why),
  so a redelivery, or a replay re-signed with a fresh timestamp, has one effect. Below that, every
  status change is conditional and the other writes set the same values again, so an event seen
  after its record expired (7 days; Stripe stops retrying after 3) moves nothing backwards.
* **Same path as the charge.** A succeeded payment is recorded and its follow-ups published by
  ``settle_money_taken`` (donations.settlement), whose claim lets one of the charge, the webhook
  and the reconciler publish when they race. It is money taken, for any charge attempt of the
  donation and whatever the record said: never ignored (a conflict is counted and pages).
* **Only the current charge fails a donation.** A failure or cancel event moves the donation only if
  its PaymentIntent is the donation's current charge (``CurrentCharge``): the charge cancels a spent
  attempt's PaymentIntent before it charges the next attempt, and that cancel's event may arrive
  before the next attempt's charge is recorded.
* **Refunds and disputes** are recorded by donations.refunds: a refund's sum only grows (a failed refund
  comes off once, by its id) and a dispute's status only moves towards closed, so duplicates and events
  out of order count nothing twice.
* **Fast.** DynamoDB and SQS only; no Stripe call (the event carries what we need).
* **Out of order.** The charge writes the donation before it calls Stripe, so an event naming a
  donation we do not have is either early (a write not visible yet) or not ours (another
  environment on the same Stripe account). For a fresh event we answer 409: Stripe retries it
  (within minutes at first, for up to three days) and the retry finds the record. An event still
  unmatched after an hour is not ours: 200, counted in ``WebhookEventsUnmatched``, logged.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

import stripe
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from donations import refunds
from donations.card_update import card_set_up, card_updated_by_network
from donations.errors import (
    DonationNotRecordedYet,
    InvalidWebhookEvent,
    InvalidWebhookSignature,
    WebhookApiVersionRefused,
)
from donations.models import Donation, DonationStatus
from donations.observability import MetricUnit, logger, metrics
from donations.payments import STRIPE_API_VERSION, donor_safe_decline_code
from donations.ports import (
    CardSetup,
    CurrentCharge,
    PledgeStopper,
    Publisher,
    RefundFailure,
    Store,
    UpdatedCard,
)
from donations.settlement import settle_money_taken
from donations.store import ConditionFailed

SIGNATURE_HEADER = "Stripe-Signature"
SIGNATURE_TOLERANCE_SECONDS = 300
# Idempotency records: a prefix of their own in the shared table, kept longer than Stripe retries (3 days).
EVENT_KEY_PREFIX = "stripe-webhook-event"
EVENT_RECORD_TTL_SECONDS = 7 * 24 * 3600
# Our record is written before Stripe sees the PaymentIntent: unmatched for this long means not ours.
UNRECORDED_RETRY_SECONDS = 3600


class WebhookOutcome(StrEnum):
    SUCCEEDED = "succeeded"  # the donation is charged (now or before) and its follow-ups are on their way
    DECLINED = "declined"
    FAILED = "failed"
    CANCELED = "canceled"
    REFUND_RECORDED = "refund_recorded"
    REFUND_FAILED = "refund_failed"  # a refund that succeeded failed later: its amount is a gift again
    DISPUTE_RECORDED = "dispute_recorded"
    ALREADY_FINAL = "already_final"  # a failure for a donation that already ended (or an older refund)
    CONFLICT = "conflict"  # Stripe took money for a donation recorded as not charged (now recorded), or twice
    SUPERSEDED = "superseded"  # a failure or cancel of a charge attempt the donation has moved past
    IGNORED = "ignored"  # not a donation of ours, or a type we do not handle
    AWAITING_DONOR = "awaiting_donor"  # a renewal's authentication_required: the donor is asked to finish it
    CARD_RECORDED = "card_recorded"  # a pledge's new card, saved by the donor, recorded (or recorded already)
    CARD_UPDATED = "card_updated"  # the card network updated a pledge's saved card: its new details recorded


class StripeEventData(BaseModel):
    model_config = ConfigDict(extra="ignore")

    object: dict[str, Any]


class StripeEvent(BaseModel):
    """The parts of a Stripe event (API version independent) that we read."""

    model_config = ConfigDict(extra="ignore")

    id: str = Field(min_length=1, max_length=255)
    type: str
    created: int
    data: StripeEventData
    api_version: str | None = None
    """The version Stripe rendered the event in: the endpoint's, else the account's default."""


def verify_event(payload: str, signature: str | None, secret: str) -> StripeEvent:
    """The event, if Stripe signed exactly this body within the tolerance; raises otherwise."""
    try:
        stripe.Webhook.construct_event(payload, signature, secret, tolerance=SIGNATURE_TOLERANCE_SECONDS)
    except stripe.SignatureVerificationError as error:
        metrics.add_metric(name="WebhookSignatureFailures", unit=MetricUnit.Count, value=1)
        logger.warning("Webhook refused: bad signature", extra={"reason": error.user_message})
        raise InvalidWebhookSignature(f"The {SIGNATURE_HEADER} header is missing, invalid or too old.") from error
    except ValueError as error:  # signed, but not JSON
        raise InvalidWebhookEvent("The event is not JSON.") from error
    try:
        event = StripeEvent.model_validate_json(payload)
    except ValidationError as error:
        raise InvalidWebhookEvent("The body is not a Stripe event.") from error
    if event.api_version != STRIPE_API_VERSION:
        metrics.add_metric(name="WebhookApiVersionMismatches", unit=MetricUnit.Count, value=1)
        logger.error(
            "Webhook refused: the endpoint sends another API version; run donations-ops stripe install-webhook",
            extra={"event_api_version": event.api_version, "pinned_api_version": STRIPE_API_VERSION},
        )
        raise WebhookApiVersionRefused(
            f"This endpoint handles events of API version {STRIPE_API_VERSION}, not {event.api_version}."
        )
    return event


def handles(event_type: str) -> bool:
    return event_type in _HANDLERS


def handle_event(
    event: StripeEvent,
    *,
    store: Store,
    publisher: Publisher,
    pledges: PledgeStopper | None = None,
    now: float | None = None,
) -> WebhookOutcome:
    """Apply one verified event. Raises DonationNotRecordedYet (409) for an early event."""
    apply = _HANDLERS.get(event.type)
    if apply is None:
        return WebhookOutcome.IGNORED
    logger.append_keys(stripe_event_id=event.id, stripe_event_type=event.type)
    outcome = apply(_Delivery(event, store, publisher, time.time() if now is None else now, pledges))
    logger.info("Stripe event applied", extra={"outcome": outcome.value})
    return outcome


@dataclass(frozen=True)
class _Delivery:
    event: StripeEvent
    store: Store
    publisher: Publisher
    now: float
    pledges: PledgeStopper | None = None

    @property
    def object(self) -> dict[str, Any]:
        return self.event.data.object


# -- payment_intent.* ---------------------------------------------------------------------------


def _payment_succeeded(delivery: _Delivery) -> WebhookOutcome:
    intent = delivery.object
    donation = _donation_for_intent(delivery, intent)
    if donation is None:
        return WebhookOutcome.IGNORED
    # Money taken, under whichever attempt and whatever the record says: recorded and followed up
    # (also when already charged: if the path that charged it died before publishing, this finishes it).
    was_open = donation.status in (DonationStatus.PENDING, DonationStatus.REQUIRES_ACTION)
    donation, conflict = settle_money_taken(
        donation,
        intent["id"],
        _id(intent.get("payment_method")),
        store=delivery.store,
        publisher=delivery.publisher,
        found_by="stripe_webhook",
    )
    if conflict is not None:
        metrics.add_metric(name="WebhookStateConflicts", unit=MetricUnit.Count, value=1)
        return WebhookOutcome.CONFLICT
    if was_open:
        metrics.add_metric(name="DonationsCharged", unit=MetricUnit.Count, value=1)
    pledge_id = donation.metadata.get("pledge_id")
    if (
        pledge_id
        and delivery.pledges is not None
        and delivery.pledges.record_authenticated_renewal(pledge_id, donation.donation_id)
    ):
        # A renewal the donor authenticated through the emailed link, reported here before (or without) the
        # page's return: the pledge moves on all the same (donations.pledge_manage).
        logger.info("Renewal authenticated by the donor; pledge moved on", extra={"pledge_id": pledge_id})
    return WebhookOutcome.SUCCEEDED


def _payment_failed(delivery: _Delivery) -> WebhookOutcome:
    intent = delivery.object
    donation = _donation_for_intent(delivery, intent)
    if donation is None:
        return WebhookOutcome.IGNORED
    current = _current_charge(donation, intent)
    if current is None:
        return _superseded(donation)
    error = intent.get("last_payment_error") or {}
    if error.get("code") == "authentication_required" and donation.metadata.get("pledge_id"):
        # A renewal charged off-session that the bank wants the donor to authenticate: not a decline. It
        # waits for the donor, who is emailed a link to finish that PaymentIntent (donations.renewals).
        return WebhookOutcome.AWAITING_DONOR
    try:
        if error.get("type") == "card_error":
            # Recorded as the charge records a decline, whichever of the two gets there first.
            code = donor_safe_decline_code(error.get("code"), error.get("decline_code"))
            delivery.store.mark_declined(donation.donation_id, code, intent["id"], current=current)
            return WebhookOutcome.DECLINED
        delivery.store.mark_failed(donation.donation_id, str(error.get("code") or "payment_failed"), current=current)
        return WebhookOutcome.FAILED
    except ConditionFailed:
        return _not_applied(delivery, donation, current)


def _payment_canceled(delivery: _Delivery) -> WebhookOutcome:
    intent = delivery.object
    donation = _donation_for_intent(delivery, intent)
    if donation is None:
        return WebhookOutcome.IGNORED
    current = _current_charge(donation, intent)
    if current is None:
        return _superseded(donation)
    try:
        delivery.store.mark_canceled(
            donation.donation_id, intent.get("cancellation_reason") or "canceled", intent["id"], current=current
        )
    except ConditionFailed:
        return _not_applied(delivery, donation, current)
    return WebhookOutcome.CANCELED


def _current_charge(donation: Donation, intent: dict[str, Any]) -> CurrentCharge | None:
    """The event's PaymentIntent as the donation's current charge, or None if it is not (any more).

    Not current: an attempt other than the record's (``metadata.charge_attempt``), a spent attempt (the
    charge cancels its PaymentIntent before it takes the next one), or a PaymentIntent other than the
    one recorded. Such a failure or cancel says nothing about the money the current charge may take.
    """
    attempt = str((intent.get("metadata") or {}).get("charge_attempt") or "0")
    current = CurrentCharge(int(attempt) if attempt.isdigit() else -1, intent["id"])
    return current if current.holds_for(donation) else None


def _not_applied(delivery: _Delivery, donation: Donation, current: CurrentCharge) -> WebhookOutcome:
    # The write lost: the donation ended meanwhile, or moved on to another charge.
    now = delivery.store.require(donation.donation_id)
    if now.status in (DonationStatus.PENDING, DonationStatus.REQUIRES_ACTION) and not current.holds_for(now):
        return _superseded(now)
    return _already_final(now)


def _superseded(donation: Donation) -> WebhookOutcome:
    logger.info(
        "Event about a superseded charge attempt; not applied",
        extra={"status": donation.status.value, "attempt": donation.charge_attempt},
    )
    return WebhookOutcome.SUPERSEDED


def _donation_for_intent(delivery: _Delivery, intent: dict[str, Any]) -> Donation | None:
    donation_id = (intent.get("metadata") or {}).get("donation_id")
    if not donation_id:
        logger.info("PaymentIntent is not a donation; ignored")
        return None
    donation = delivery.store.get(donation_id)
    if donation is None:
        if delivery.now - delivery.event.created < UNRECORDED_RETRY_SECONDS:
            logger.warning(
                "Event for a donation not recorded yet; Stripe will retry", extra={"donation_id": donation_id}
            )
            raise DonationNotRecordedYet(f"Donation {donation_id} is not recorded yet; retry later.")
        _unmatched("No such donation an hour after the event", donation_id)
        return None
    if (donation.amount, donation.currency) != (intent.get("amount"), intent.get("currency")):
        # Same donation id, another payment: e.g. another stack sharing this Stripe account. Every
        # attempt of our donation charges its amount; which attempt it is, is the handlers' business.
        _unmatched("Event does not match the donation's payment", donation_id)
        return None
    logger.append_keys(donation_id=donation.donation_id)
    return donation


# -- charge.* -----------------------------------------------------------------------------------


def _charge_refunded(delivery: _Delivery) -> WebhookOutcome:
    charge = delivery.object
    donation = _donation_for_payment(
        delivery, _id(charge.get("payment_intent")), (charge.get("metadata") or {}).get("donation_id")
    )
    if donation is None:
        return WebhookOutcome.IGNORED
    amount = int(charge.get("amount_refunded") or 0)
    applied = refunds.record_refunded_total(
        donation, amount, refunds.iso(delivery.event.created), store=delivery.store, publisher=delivery.publisher
    )
    if not applied:
        return _already_final(donation)  # a later refund event was applied first
    metrics.add_metric(name="DonationsRefunded", unit=MetricUnit.Count, value=1)
    return WebhookOutcome.REFUND_RECORDED


def _dispute_changed(delivery: _Delivery) -> WebhookOutcome:
    dispute = delivery.object
    # A dispute carries no metadata: the donation is found through its PaymentIntent.
    donation = _donation_for_payment(delivery, _id(dispute.get("payment_intent")), None)
    if donation is None:
        return WebhookOutcome.IGNORED
    facts = refunds.dispute_facts(dispute, delivery.event.created)
    applied = refunds.record_dispute(
        donation, facts, store=delivery.store, pledges=delivery.pledges, event_type=delivery.event.type
    )
    return WebhookOutcome.DISPUTE_RECORDED if applied.recorded else WebhookOutcome.ALREADY_FINAL


def _refund_changed(delivery: _Delivery) -> WebhookOutcome:
    refund = delivery.object
    if refund.get("status") != "failed":
        return WebhookOutcome.IGNORED  # a refund made is reported by charge.refunded, with the charge's sum
    donation = _donation_for_payment(
        delivery, _id(refund.get("payment_intent")), (refund.get("metadata") or {}).get("donation_id")
    )
    if donation is None:
        return WebhookOutcome.IGNORED
    failure = RefundFailure(
        refund_id=str(refund["id"]),
        amount=int(refund.get("amount") or 0),
        reason=str(refund.get("failure_reason") or "unknown"),
        failed_at=refunds.iso(delivery.event.created),
    )
    if not refunds.record_refund_failure(donation, failure, store=delivery.store):
        return WebhookOutcome.ALREADY_FINAL
    return WebhookOutcome.REFUND_FAILED


def _donation_for_payment(
    delivery: _Delivery, payment_intent_id: str | None, donation_id: str | None
) -> Donation | None:
    if payment_intent_id is None:
        _unmatched("Charge event without a PaymentIntent", donation_id)
        return None
    donation_id = donation_id or delivery.store.find_by_payment_intent(payment_intent_id)
    donation = delivery.store.get(donation_id) if donation_id else None
    if donation is None or donation.payment_intent_id != payment_intent_id:
        _unmatched("Charge event for no donation of ours", donation_id)
        return None
    logger.append_keys(donation_id=donation.donation_id)
    return donation


# -- shared -------------------------------------------------------------------------------------


def _already_final(donation: Donation) -> WebhookOutcome:
    logger.info("Donation already final; event not applied", extra={"status": donation.status.value})
    return WebhookOutcome.ALREADY_FINAL


def _unmatched(message: str, donation_id: str | None) -> None:
    metrics.add_metric(name="WebhookEventsUnmatched", unit=MetricUnit.Count, value=1)
    logger.warning(f"{message}; ignored", extra={"donation_id": donation_id})


def _id(reference: Any) -> str | None:
    """An expandable field: an id, or the expanded object."""
    if isinstance(reference, dict):
        return str(reference["id"])
    return str(reference) if reference else None


# -- setup_intent.succeeded ----------------------------------------------------------------------


def _card_set_up(delivery: _Delivery) -> WebhookOutcome:
    """A donor saved a new card for a pledge through the manage page (donations.card_update): the pledge
    charges it from now on, even if the page never reported back. Without a Stripe key here, the card is
    recorded without its brand and last 4 (the page's return adds them)."""
    intent = delivery.object
    pledge_id = (intent.get("metadata") or {}).get("pledge_id")
    if not pledge_id or delivery.pledges is None or intent.get("status") != "succeeded":
        return WebhookOutcome.IGNORED
    setup = CardSetup(
        id=str(intent["id"]),
        status="succeeded",
        customer_id=_id(intent.get("customer")),
        payment_method_id=_id(intent.get("payment_method")),
        pledge_id=str(pledge_id),
    )
    if not card_set_up(setup, pledges=delivery.pledges):
        _unmatched("Card set up for no running pledge of ours", None)
        return WebhookOutcome.IGNORED
    return WebhookOutcome.CARD_RECORDED


# -- payment_method.automatically_updated ----------------------------------------------------------


def _card_updated_by_network(delivery: _Delivery) -> WebhookOutcome:
    """Stripe's card account updater changed a saved card in place ("Occurs whenever a payment method's details
    are automatically updated by the network", docs.stripe.com/api/events/types; the event's object is the
    PaymentMethod, same id, typed stripe.PaymentMethod.Card): the pledges on it show the new details, and one
    that lapsed on that card's details is back on schedule (donations.card_update). No Stripe key needed."""
    method = delivery.object
    card = method.get("card") or {}
    if delivery.pledges is None or method.get("type") != "card" or not method.get("id"):
        return WebhookOutcome.IGNORED
    update = UpdatedCard(
        payment_method_id=str(method["id"]),
        brand=_text(card.get("brand")),
        last4=_text(card.get("last4")),
        exp_month=_number(card.get("exp_month")),
        exp_year=_number(card.get("exp_year")),
        as_of=delivery.event.created,
    )
    if not card_updated_by_network(update, pledges=delivery.pledges, today=_day(delivery.now)):
        logger.info("Card updated by the network is no running pledge's; ignored")
        return WebhookOutcome.IGNORED
    return WebhookOutcome.CARD_UPDATED


def _text(value: Any) -> str | None:
    return str(value) if isinstance(value, str) and value else None


def _number(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _day(now: float) -> date:
    return datetime.fromtimestamp(now, UTC).date()


_HANDLERS: dict[str, Callable[[_Delivery], WebhookOutcome]] = {
    "payment_intent.succeeded": _payment_succeeded,
    "payment_intent.payment_failed": _payment_failed,
    "payment_intent.canceled": _payment_canceled,
    "charge.refunded": _charge_refunded,
    # A refund's failure: refund.failed, and refund.updated whose Refund has status failed (both come;
    # docs.stripe.com/api/events/types). The Refund names its PaymentIntent (stripe.Refund.payment_intent).
    "refund.failed": _refund_changed,
    "refund.updated": _refund_changed,
    # Stripe's dispute events ("charge.dispute.closed occurs when a dispute is closed and the dispute
    # status changes to lost, warning_closed, or won"; funds_withdrawn and funds_reinstated carry the
    # Dispute with the balance transactions that moved its money and their fee).
    "charge.dispute.created": _dispute_changed,
    "charge.dispute.updated": _dispute_changed,
    "charge.dispute.closed": _dispute_changed,
    "charge.dispute.funds_withdrawn": _dispute_changed,
    "charge.dispute.funds_reinstated": _dispute_changed,
    "setup_intent.succeeded": _card_set_up,
    "payment_method.automatically_updated": _card_updated_by_network,
}
HANDLED_EVENT_TYPES = tuple(_HANDLERS)
