"""The background steps: save the card, send the receipt. Each is safe to run twice for one message."""

from __future__ import annotations

import contextlib
from datetime import date

from donations.errors import PermanentStepFailure, RetryableStepFailure, StoredServerError
from donations.models import Donation, DonationStatus, FollowUpMessage, Step, StepStatus
from donations.observability import MetricUnit, logger, metrics
from donations.pledges import PledgeStore, pledge_from_donation, pledge_id_for
from donations.ports import Mailer, Payments, SavedCard, Store
from donations.store import ConditionFailed


def load_charged_donation(store: Store, message: FollowUpMessage) -> Donation:
    return charged_donation(store.get(message.donation_id), message)


def charged_donation(donation: Donation | None, message: FollowUpMessage) -> Donation:
    """The donation a step may act on; a message for a missing or uncharged one is parked at once."""
    if donation is None:
        raise PermanentStepFailure(f"{message.type.value}:donation_not_found")
    if donation.status is not DonationStatus.SUCCEEDED:
        raise PermanentStepFailure(f"{message.type.value}:donation_not_charged:{donation.status.value}")
    logger.thread_safe_append_keys(donation_id=donation.donation_id, donor=donation.email_masked)
    return donation


def save_card(
    message: FollowUpMessage, *, store: Store, payments: Payments, pledges: PledgeStore | None = None
) -> None:
    """Save the donor's card; for a monthly gift, make its pledge on that card before recording it.

    The pledge is written first (its id derives from the donation, conditionally): a crash before the
    card is recorded redoes both, the second time finding the pledge made; once the card is recorded,
    a redelivery is a duplicate and the pledge already exists.
    """
    donation = load_charged_donation(store, message)
    if not donation.save_card:
        logger.warning("Tokenize message for a donation that did not ask to save the card; ignored")
        return
    if donation.card_status is StepStatus.DONE:
        _duplicate(Step.TOKENIZE)
        return
    if donation.card_status is StepStatus.DISCARDED:
        _discarded(Step.TOKENIZE)
        return
    # Stripe calls are keyed by donation id, so a repeat returns the same Customer and attachment.
    try:
        card = payments.save_card(donation)
    except StoredServerError:
        # Replaying these keys would return the stored error for 24 h: the next delivery uses new ones.
        store.next_card_attempt(donation.donation_id, donation.card_attempt)
        raise
    if donation.pledge_day_of_month is not None:
        _start_pledge(donation, card, pledges)
        _stop_if_disputed(store, donation, pledges)
    try:
        store.record_card(donation.donation_id, card)
    except ConditionFailed:
        _duplicate(Step.TOKENIZE)
        return
    _clear_earlier_failure(store, donation, Step.TOKENIZE)
    metrics.add_metric(name="CardsSaved", unit=MetricUnit.Count, value=1)
    logger.info("Card saved", extra={"card_brand": card.brand, "customer_id": card.customer_id})


def _start_pledge(donation: Donation, card: SavedCard, pledges: PledgeStore | None) -> None:
    if pledges is None:
        raise PermanentStepFailure("tokenize:no_pledges_table")  # a deployment error: the function's settings
    # The first gift was charged on the day the donation was made: its pledge renews from the next month.
    today = date.fromisoformat(donation.created_at[:10])
    pledge = pledge_from_donation(donation, donation.pledge_day_of_month or 1, today, card)
    if pledges.create_once(pledge):
        metrics.add_metric(name="PledgesStarted", unit=MetricUnit.Count, value=1)
        logger.info("Pledge started", extra={"pledge_id": pledge.pledge_id, "next_charge_on": pledge.next_charge_on})
    else:
        logger.info("Pledge already started by an earlier delivery", extra={"pledge_id": pledge.pledge_id})


def _stop_if_disputed(store: Store, donation: Donation, pledges: PledgeStore | None) -> None:
    """A dispute that came before its pledge existed (Stripe's dispute test cards dispute at once) found no
    pledge to stop. The webhook records the dispute, then stops the pledge; this makes the pledge, then
    reads the dispute (a consistent read): whichever runs second sees the other's write."""
    disputed = store.get(donation.donation_id)
    if pledges is None or disputed is None or disputed.dispute_id is None:
        return
    pledge_id = pledge_id_for(donation.donation_id)
    if pledges.stop_for_dispute(pledge_id, f"dispute:{disputed.dispute_reason}:{disputed.dispute_id}"):
        metrics.add_metric(name="PledgesStoppedByDispute", unit=MetricUnit.Count, value=1)
        logger.warning("Pledge stopped: its first gift is disputed", extra={"pledge_id": pledge_id})


def send_receipt(message: FollowUpMessage, *, store: Store, mailer: Mailer, lease_seconds: int) -> None:
    """Claim, send, mark: a duplicate delivery finds the receipt claimed or sent and sends nothing.

    Crash window: if this process dies after SendGrid accepted the mail and before
    ``mark_receipt_sent``, the record stays ``in_progress`` until its lease ends; the message
    comes back after its visibility timeout (longer than the lease) and the receipt is sent
    again. We accept that rare duplicate over a receipt that is silently never sent.
    """
    if message.mail == "refund_notice":
        send_refund_notice(message, store=store, mailer=mailer, lease_seconds=lease_seconds)
        return
    # The claim is the first call: it is conditional on the donation being charged, and returns
    # the record, so the common case costs two writes and no read.
    claim = store.claim_receipt(message.donation_id, lease_seconds)
    donation = charged_donation(claim.donation, message)
    if not claim.claimed:
        if donation.receipt_status is StepStatus.DONE:
            _duplicate(Step.SEND_RECEIPT)
            return
        if donation.receipt_status is StepStatus.DISCARDED:
            _discarded(Step.SEND_RECEIPT)
            return
        # Another consumer holds a live lease: it is sending now; look again after a backoff.
        raise RetryableStepFailure("send_receipt:claimed_by_another_consumer")
    if donation.receipt_status is StepStatus.IN_PROGRESS:
        metrics.add_metric(name="ReceiptsResentAfterExpiredClaim", unit=MetricUnit.Count, value=1)
        logger.warning("Receipt claim had expired; sending again (the earlier sender may have crashed)")
    try:
        message_id = mailer.send(donation)
    except RetryableStepFailure:
        store.release_receipt_claim(donation.donation_id)
        raise
    try:
        store.mark_receipt_sent(donation.donation_id, message_id)
    except ConditionFailed:
        # Our lease ran out mid-send and another consumer took over; it will mark its own send.
        logger.warning("Receipt sent after the claim expired", extra={"sendgrid_message_id": message_id})
        return
    _clear_earlier_failure(store, donation, Step.SEND_RECEIPT)
    metrics.add_metric(name="ReceiptsSent", unit=MetricUnit.Count, value=1)
    logger.info("Receipt sent", extra={"sendgrid_message_id": message_id})


def send_refund_notice(message: FollowUpMessage, *, store: Store, mailer: Mailer, lease_seconds: int) -> None:
    """Tell the donor about the refunded sum on the record, once per sum (donations.refunds).

    The claim succeeds only while the record's refunded sum is more than the donor was told, so a
    duplicate message, or the message of an event whose sum was already told, sends nothing. It waits
    for the receipt: the correction comes after what it corrects. The crash window is the receipt's.
    """
    claim = store.claim_refund_notice(message.donation_id, lease_seconds)
    donation = charged_donation(claim.donation, message)
    if not claim.claimed:
        if donation.amount_refunded <= donation.refund_notice_amount:
            _duplicate(Step.SEND_RECEIPT)
            return
        if donation.receipt_status not in (StepStatus.DONE, StepStatus.DISCARDED):
            raise RetryableStepFailure("send_receipt:refund_notice_before_receipt")
        raise RetryableStepFailure("send_receipt:claimed_by_another_consumer")
    try:
        message_id = mailer.send_refund_notice(donation)
    except Exception:
        store.release_refund_notice_claim(donation.donation_id)
        raise
    try:
        store.mark_refund_notice_sent(donation.donation_id, donation.amount_refunded, message_id)
    except ConditionFailed:
        logger.warning("Refund notice sent after the claim expired", extra={"sendgrid_message_id": message_id})
        return
    metrics.add_metric(name="RefundNoticesSent", unit=MetricUnit.Count, value=1)
    logger.info(
        "Refund notice sent",
        extra={"sendgrid_message_id": message_id, "amount_refunded": donation.amount_refunded},
    )


def _duplicate(step: Step) -> None:
    metrics.add_metric(name="DuplicateDeliveries", unit=MetricUnit.Count, value=1)
    logger.info("Step already done; duplicate delivery acknowledged", extra={"step": step.value})


def _discarded(step: Step) -> None:
    # An operator discarded this step (donations-ops dlq discard, noted on the record): a copy of its
    # message still on its way is acknowledged, not retried into the DLQ again.
    logger.info("Step discarded by an operator; message acknowledged", extra={"step": step.value})


def _clear_earlier_failure(store: Store, donation: Donation, step: Step) -> None:
    if donation.failed_step is step or donation.attention_step is step:
        with contextlib.suppress(ConditionFailed):
            store.clear_step_failure(donation.donation_id, step)
