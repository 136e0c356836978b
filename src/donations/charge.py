"""Taking a donation: record it, charge it once, hand the rest to the queues."""

from __future__ import annotations

import contextlib
import contextvars
import functools
import math
import re
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from http import HTTPStatus
from typing import Any

from donations.errors import (
    CardDeclined,
    ChargeIndeterminate,
    InvalidDonation,
    RequestInProgress,
    ServiceUnavailable,
)
from donations.followups import FOLLOWUPS_CLAIM_SECONDS, publish_follow_ups
from donations.identifiers import Identifiers, check_idempotency_key, legacy_donation_id
from donations.models import Donation, DonationRequest, DonationStatus
from donations.observability import MetricUnit, logger, metrics
from donations.payments import recorded_decline
from donations.ports import ChargeOutcome, ChargeState, Client, Payments, Publisher, Store
from donations.screening import Screening
from donations.settlement import settle_money_taken
from donations.store import ConditionFailed

DONATION_ID = re.compile(r"^don_[a-z2-7]{26}$")


@dataclass(frozen=True)
class ChargeAnswer:
    """An answer worth replaying to a resubmission: 201, 202 or 402. Errors are raised instead."""

    status_code: int
    body: dict[str, Any]


def submit_donation(
    request: DonationRequest,
    idempotency_key: str,
    correlation_id: str,
    *,
    store: Store,
    payments: Payments,
    publisher: Publisher,
    lease_seconds: int,
    identifiers: Identifiers,
    legacy_ids: bool = False,
    screening: Screening | None = None,
    client: Client | None = None,
) -> ChargeAnswer:
    """Charge a donation once per Idempotency-Key and queue its follow-ups; the answer to give the donor.

    The Donations record is the idempotency record (see DonationStore.create_pending): a resubmission
    is answered from it, or resumes it with the same Stripe idempotency key. ``lease_seconds``: how
    long this request may hold the donation while charging, about the invocation's remaining time.
    ``screening`` (with the ``client`` asking): the card-testing checks, made before anything
    reaches Stripe (donations.screening); None checks nothing. ``identifiers`` name the donation
    after its key; with ``legacy_ids`` a donation recorded under the key's old, unkeyed id is resumed.
    """
    check_idempotency_key(idempotency_key)  # before anything is read or written
    donation_id = _donation_id(idempotency_key, identifiers, store, legacy_ids=legacy_ids)
    create = functools.partial(store.create_pending, donation_id, request, correlation_id, lease_seconds=lease_seconds)
    if screening is None or client is None:
        donation = create()
    else:
        donation = screening.admit(
            donation_id,
            request,
            client,
            create=create,
            existing=functools.partial(store.get, donation_id),
            # A record this request created carries its correlation id (API Gateway's request id).
            is_new=lambda found: found.correlation_id == correlation_id,
            discard=functools.partial(store.discard_refused, donation_id, correlation_id),
            cards=payments,
        )
    logger.append_keys(donation_id=donation.donation_id, donor=donation.email_masked)
    if donation.status is DonationStatus.SUCCEEDED:
        return _charged(donation, store, publisher, correlation_id)
    if donation.status in (DonationStatus.DECLINED, DonationStatus.FAILED, DonationStatus.CANCELED):
        return _already_final(donation)

    try:
        outcome = _charge(donation, store, payments)
    except CardDeclined as declined:
        if screening is not None and client is not None:
            # Counted by the card-testing checks while the decline is recorded (side by side).
            counted = _counting_aside(screening.declined, donation, client, declined)
            answer = _declined(donation, declined, store)
            counted.result()
            return answer
        return _declined(donation, declined, store)
    except InvalidDonation as invalid:
        _tolerate_race(store.mark_failed, donation.donation_id, invalid.code)
        raise
    except Exception as error:
        _give_lease_back(donation, error, store)
        raise
    if outcome.state is ChargeState.REQUIRES_ACTION:
        return _awaiting_authentication(donation, outcome, store)
    return _record_charge(donation, outcome, store, publisher, correlation_id)


def _donation_id(idempotency_key: str, identifiers: Identifiers, store: Store, *, legacy_ids: bool) -> str:
    """The key's donation: under its keyed id, or under its old id if it was recorded before those.

    A donation made before ids were keyed and still retried (a 503, 3-D Secure not finished) keeps
    its record and its Stripe idempotency key: a retry resumes it instead of charging anew.
    """
    if legacy_ids:
        earlier = store.get(legacy_donation_id(idempotency_key))
        if earlier is not None:
            return earlier.donation_id
    return identifiers.donation_id(idempotency_key)


def _counting_aside(count: Any, *args: Any) -> Future[None]:
    return _aside.submit(contextvars.copy_context().run, count, *args)


# The card-testing checks count a decline in this worker while the request records it.
_aside = ThreadPoolExecutor(max_workers=1, thread_name_prefix="decline-count")


def _declined(donation: Donation, declined: CardDeclined, store: Store) -> ChargeAnswer:
    _tolerate_race(
        store.mark_declined, donation.donation_id, declined.decline_code or declined.code, declined.payment_intent_id
    )
    metrics.add_metric(name="DonationsDeclined", unit=MetricUnit.Count, value=1)
    logger.info("Donation declined", extra={"decline_code": declined.decline_code})
    return ChargeAnswer(HTTPStatus.PAYMENT_REQUIRED, declined.body())


def _give_lease_back(donation: Donation, error: Exception, store: Store) -> None:
    # The record stays pending; the donor's retry with the same key resumes it (and with it
    # Stripe's idempotency key), so the lease is given back for it. A failure here is harmless:
    # the lease runs out by itself.
    with contextlib.suppress(Exception):
        store.release_charging(donation.donation_id)
    if isinstance(error, ServiceUnavailable):
        metrics.add_metric(name="ChargeFailures", unit=MetricUnit.Count, value=1)
        logger.warning("Payment provider unavailable", exc_info=True)


def _awaiting_authentication(donation: Donation, outcome: ChargeOutcome, store: Store) -> ChargeAnswer:
    store.mark_requires_action(donation.donation_id, outcome.payment_intent_id)
    metrics.add_metric(name="DonationsRequiringAction", unit=MetricUnit.Count, value=1)
    body = {
        "donation_id": donation.donation_id,
        "status": DonationStatus.REQUIRES_ACTION.value,
        "client_secret": outcome.client_secret,
    }
    return ChargeAnswer(HTTPStatus.ACCEPTED, body)


def _record_charge(
    donation: Donation, outcome: ChargeOutcome, store: Store, publisher: Publisher, correlation_id: str
) -> ChargeAnswer:
    try:
        # One write records the charge and takes the right to publish its follow-ups.
        donation = store.mark_charged(
            donation.donation_id,
            outcome.payment_intent_id,
            outcome.payment_method_id,
            claim_followups_seconds=FOLLOWUPS_CLAIM_SECONDS,
            card=(outcome.card_brand, outcome.card_last4),
        )
    except ConditionFailed:
        # Stripe's webhook recorded the charge first (and may be publishing), or the record says the
        # donation ended: the money is taken all the same, so it is recorded and followed up.
        donation, _ = settle_money_taken(
            store.require(donation.donation_id),
            outcome.payment_intent_id,
            outcome.payment_method_id,
            store=store,
            publisher=publisher,
            found_by="charge",
            card=(outcome.card_brand, outcome.card_last4),
        )
        metrics.add_metric(name="DonationsCharged", unit=MetricUnit.Count, value=1)
        return _answer_charged(donation)
    # No amount metric: amounts of several currencies do not add up, and the report reads the table.
    # Each metric is $0.30 a month for the hours it gets data (README "What it costs each month").
    metrics.add_metric(name="DonationsCharged", unit=MetricUnit.Count, value=1)
    return _charged(donation, store, publisher, correlation_id, claimed=True)


def _charge(donation: Donation, store: Store, payments: Payments) -> ChargeOutcome:
    """One payment round trip, under the current attempt's idempotency key.

    **Stored server errors.** Stripe saves a request's result under its idempotency key once the
    endpoint began executing, 500s included, and replays it for 24 hours
    (docs.stripe.com/api/idempotent_requests). Replaying the key after such an error can only repeat
    it, so the donation moves to a new attempt with a new key (``charge_attempt``, part of the key
    and of the PaymentIntent's metadata). That is safe only if the spent attempt left nothing that
    could still take money, so before moving on Stripe is asked what it did:

    * its PaymentIntent is found in Stripe's PaymentIntent list (consistent reads, unlike search),
      matched by metadata: succeeded, awaiting 3-D Secure or declined is the donor's answer, and no
      new attempt is made; one still processing is waited for; any other is canceled first, so it
      can never be confirmed later;
    * nothing is found: Stripe stored the error, so that request has finished; the attempt must
      also be ChargeIndeterminate.retry_after_seconds old, so that nothing Stripe was still doing
      when it answered can appear after we looked. Until then the donor is told when to retry.

    A new attempt is taken with a conditional write on the spent one, so two racing requests
    cannot both charge. The reconciler's search by ``metadata['donation_id']`` sees every attempt.
    """
    if donation.charge_attempt_spent:
        settled = _what_the_spent_attempt_did(donation, payments)
        if settled is not None:
            return settled
        try:
            donation = store.next_charge_attempt(donation.donation_id, donation.charge_attempt)
        except ConditionFailed:
            raise RequestInProgress("This donation is being processed; retry in a moment.") from None
        logger.warning(
            "Charging under a new attempt after a stored server error", extra={"attempt": donation.charge_attempt}
        )
    try:
        return payments.charge(donation)
    except ChargeIndeterminate:
        metrics.add_metric(name="ChargeAttemptsSpent", unit=MetricUnit.Count, value=1)
        _tolerate_race(store.mark_charge_attempt_spent, donation.donation_id, donation.charge_attempt)
        raise


def _what_the_spent_attempt_did(donation: Donation, payments: Payments) -> ChargeOutcome | None:
    """The answer the spent attempt already gave (raises for a decline or "wait"), or None to move on."""
    found = payments.find_attempt(donation)
    if found is None:
        started = donation.charge_attempt_started_at or donation.created_at
        waited = time.time() - datetime.fromisoformat(started.replace("Z", "+00:00")).timestamp()
        settle = ChargeIndeterminate.retry_after_seconds
        if waited < settle:
            raise ServiceUnavailable(
                "The payment service failed; please try again shortly.", retry_after_seconds=math.ceil(settle - waited)
            )
        return None
    if found.status in _CANCELABLE:
        found = payments.cancel(donation.donation_id, found.id)  # it can never be confirmed afterwards
    if found.status == "succeeded":
        return ChargeOutcome(ChargeState.SUCCEEDED, found.id, found.payment_method_id)
    if found.status == "requires_action":
        return ChargeOutcome(ChargeState.REQUIRES_ACTION, found.id, found.payment_method_id, found.client_secret)
    if found.status == "processing":
        raise ServiceUnavailable("The payment is processing; please check back shortly.")
    if found.decline_code:
        declined = recorded_decline(found.decline_code)
        declined.payment_intent_id = found.id
        raise declined
    return None  # canceled: nothing was charged


# A spent attempt's PaymentIntent in one of these could still be confirmed (by Stripe.js, by a retry).
_CANCELABLE = frozenset({"requires_payment_method", "requires_confirmation", "requires_capture"})


def _charged(
    donation: Donation,
    store: Store,
    publisher: Publisher,
    correlation_id: str,
    *,
    claimed: bool = False,
) -> ChargeAnswer:
    publish_follow_ups(donation, store, publisher, correlation_id, claimed=claimed)
    return _answer_charged(donation)


def _answer_charged(donation: Donation) -> ChargeAnswer:
    body = {"donation_id": donation.donation_id, "status": DonationStatus.SUCCEEDED.value}
    return ChargeAnswer(HTTPStatus.CREATED, body)


def _already_final(donation: Donation) -> ChargeAnswer:
    """A resubmission of a donation that ended: answer from the record, charge nothing."""
    if donation.status is DonationStatus.DECLINED:
        return ChargeAnswer(HTTPStatus.PAYMENT_REQUIRED, recorded_decline(donation.decline_code).body())
    raise InvalidDonation(
        "This donation failed; please submit it again with a new Idempotency-Key.",
        code=donation.failure_reason or "donation_failed",
    )


def _tolerate_race(update: Any, *args: Any) -> None:
    # A concurrent request (or the webhook) got there first; the record already says what happened.
    try:
        update(*args)
    except ConditionFailed:
        logger.info("Donation already moved on", extra={"update": update.__name__})
