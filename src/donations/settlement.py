"""Money Stripe took is recorded, whatever the record said, and followed up: one path for the charge
function, the Stripe webhook and the reconciler's sweep.

A succeeded PaymentIntent that names one of our donations is money taken. It is recorded as the
donation's charge and its follow-ups (receipt, saved card) are published, also when the record
said canceled, failed or declined: a donor charged without a receipt, told to pay again, is the
worst outcome this pipeline can have. Those cases, and a second succeeded PaymentIntent for a
donation already charged under another, are counted in ``UnrecordedCharges``, whose alarm pages
an operator (RUNBOOK.md#money-without-record): the donor may have been told otherwise, and a
double charge needs a refund.
"""

from __future__ import annotations

from enum import StrEnum

from aws_lambda_powertools.metrics import single_metric

from donations.followups import publish_follow_ups
from donations.models import Donation, DonationStatus
from donations.observability import MetricUnit, logger
from donations.ports import Publisher, Store
from donations.store import ConditionFailed

UNRECORDED_CHARGES = "UnrecordedCharges"
# One series whichever function finds the money (charge, stripe_webhook, reconciler), so one alarm
# covers them all: CloudWatch matches an alarm's dimensions exactly.
UNRECORDED_CHARGES_DIMENSIONS = {"service": "payments"}
_NOT_CHARGED = frozenset({DonationStatus.CANCELED, DonationStatus.FAILED, DonationStatus.DECLINED})


class Conflict(StrEnum):
    RECORDED_NOT_CHARGED = "recorded_not_charged"  # canceled, failed or declined on our side
    CHARGED_TWICE = "charged_twice"  # a second succeeded PaymentIntent for a donation already charged


def settle_money_taken(
    donation: Donation,
    payment_intent_id: str,
    payment_method_id: str | None,
    *,
    store: Store,
    publisher: Publisher,
    found_by: str,
    now: float | None = None,
    card: tuple[str | None, str | None] | None = None,
) -> tuple[Donation, Conflict | None]:
    """Record Stripe's succeeded ``payment_intent_id`` on ``donation`` and publish its follow-ups.

    ``found_by`` names the path, for the log; ``card``: (brand, last 4) when Stripe said. Returns the
    record after it and the conflict found, if the record said otherwise. Concurrent writers are
    tolerated: a record that moved on between the read and the write is read again and settled from
    what it says then.
    """
    for _ in range(3):
        try:
            donation, conflict = _record(donation, payment_intent_id, payment_method_id, store, card)
            break
        except ConditionFailed:
            donation = store.require(donation.donation_id)
    else:
        raise ConditionFailed(f"{donation.donation_id} kept changing while its charge was recorded")
    if conflict is not None:
        _count(conflict, donation, payment_intent_id, found_by)
    publish_follow_ups(donation, store, publisher, donation.correlation_id, now=now)
    return donation, conflict


def _record(
    donation: Donation,
    payment_intent_id: str,
    payment_method_id: str | None,
    store: Store,
    card: tuple[str | None, str | None] | None,
) -> tuple[Donation, Conflict | None]:
    if donation.status is DonationStatus.SUCCEEDED:
        if donation.payment_intent_id not in (None, payment_intent_id):
            return donation, Conflict.CHARGED_TWICE
        if card is None:
            return donation, None
    if donation.status in _NOT_CHARGED:
        recorded = store.record_money_taken(
            donation.donation_id, payment_intent_id, payment_method_id, recorded_as=donation.status
        )
        return recorded, Conflict.RECORDED_NOT_CHARGED
    return store.mark_charged(donation.donation_id, payment_intent_id, payment_method_id, card=card), None


def _count(conflict: Conflict, donation: Donation, payment_intent_id: str, found_by: str) -> None:
    with single_metric(
        name=UNRECORDED_CHARGES, unit=MetricUnit.Count, value=1, default_dimensions=UNRECORDED_CHARGES_DIMENSIONS
    ):
        pass
    logger.error(
        "Stripe took money the record did not show as this donation's charge",
        extra={
            "conflict": conflict.value,
            "found_by": found_by,
            "donation_id": donation.donation_id,
            "payment_intent_id": payment_intent_id,
            "recorded_payment_intent_id": donation.payment_intent_id,
            "recorded_as": (donation.corrected_from or donation.status).value,
        },
    )
