"""The background steps' decisions (donations.steps): the receipt's claim and the card's save, in memory."""

from __future__ import annotations

import time

import pytest

from donations.errors import PermanentStepFailure, RetryableStepFailure, StoredServerError
from donations.models import Donation, DonationStatus, FollowUpMessage, Step, StepStatus
from donations.steps import save_card, send_receipt
from tests.support.keys import donation_id_for
from tests.unit.conftest import BODY, Request

pytestmark = pytest.mark.unit

LEASE = 60


def charged(store, *, save_card=True) -> Donation:
    """A donation the charge recorded as succeeded, its receipt (and card) still to do."""
    donation_id = donation_id_for("key-1")
    store.create_pending(donation_id, Request.model_validate({**BODY, "save_card": save_card}), "c", lease_seconds=5)
    return store.mark_charged(donation_id, "pi_1", "pm_1")


def receipt(donation: Donation) -> FollowUpMessage:
    return FollowUpMessage(type=Step.SEND_RECEIPT, donation_id=donation.donation_id)


def tokenize(donation: Donation) -> FollowUpMessage:
    return FollowUpMessage(type=Step.TOKENIZE, donation_id=donation.donation_id)


# -- the receipt -----------------------------------------------------------------------------------


def test_the_receipt_is_claimed_sent_and_marked(store, mailer):
    donation = charged(store)

    send_receipt(receipt(donation), store=store, mailer=mailer, lease_seconds=LEASE)

    record = store.require(donation.donation_id)
    assert mailer.sent == [donation.donation_id]
    assert (record.receipt_status, record.receipt_message_id) == (StepStatus.DONE, "msg-1")
    assert record.receipt_claim_until is None


def test_a_duplicate_delivery_sends_nothing(store, mailer):
    donation = charged(store)
    send_receipt(receipt(donation), store=store, mailer=mailer, lease_seconds=LEASE)

    send_receipt(receipt(donation), store=store, mailer=mailer, lease_seconds=LEASE)

    assert mailer.sent == [donation.donation_id]


def test_a_live_claim_of_another_consumer_is_retried_later_not_sent_twice(store, mailer):
    donation = charged(store)
    assert store.claim_receipt(donation.donation_id, LEASE).claimed  # another consumer is sending now

    with pytest.raises(RetryableStepFailure, match="claimed_by_another_consumer"):
        send_receipt(receipt(donation), store=store, mailer=mailer, lease_seconds=LEASE)
    assert mailer.sent == []


def test_an_expired_claim_is_taken_over_and_the_receipt_sent(store, mailer):
    # Given a consumer that claimed the receipt and died (its lease ran out)
    donation = charged(store)
    store.claim_receipt(donation.donation_id, LEASE, now=time.time() - 2 * LEASE)

    send_receipt(receipt(donation), store=store, mailer=mailer, lease_seconds=LEASE)

    assert mailer.sent == [donation.donation_id]
    assert store.require(donation.donation_id).receipt_status is StepStatus.DONE


def test_a_retryable_mail_failure_gives_the_claim_back(store, mailer):
    donation = charged(store)
    mailer.failures.append(RetryableStepFailure("send_receipt:sendgrid_503"))

    with pytest.raises(RetryableStepFailure):
        send_receipt(receipt(donation), store=store, mailer=mailer, lease_seconds=LEASE)

    record = store.require(donation.donation_id)
    assert (record.receipt_status, record.receipt_claim_until) == (StepStatus.PENDING, None)
    send_receipt(receipt(donation), store=store, mailer=mailer, lease_seconds=LEASE)  # the retry needs no wait
    assert mailer.sent == [donation.donation_id]


def test_a_permanent_mail_failure_is_raised_for_the_consumer_to_park(store, mailer):
    donation = charged(store)
    mailer.failures.append(PermanentStepFailure("send_receipt:invalid_email"))

    with pytest.raises(PermanentStepFailure):
        send_receipt(receipt(donation), store=store, mailer=mailer, lease_seconds=LEASE)
    assert mailer.sent == []


def test_a_receipt_for_a_donation_not_charged_or_missing_is_permanent(store, mailer):
    donation_id = donation_id_for("key-1")
    pending = store.create_pending(donation_id, Request.model_validate(BODY), "c", lease_seconds=5)

    with pytest.raises(PermanentStepFailure, match="donation_not_charged:pending"):
        send_receipt(receipt(pending), store=store, mailer=mailer, lease_seconds=LEASE)
    with pytest.raises(PermanentStepFailure, match="donation_not_found"):
        send_receipt(
            FollowUpMessage(type=Step.SEND_RECEIPT, donation_id="don_missing"),
            store=store,
            mailer=mailer,
            lease_seconds=LEASE,
        )
    assert mailer.sent == []


def test_a_redriven_receipt_that_succeeds_clears_the_failure(store, mailer):
    donation = charged(store)
    store.record_step_failure(donation.donation_id, Step.SEND_RECEIPT, "send_receipt:sendgrid_503:retries_exhausted")

    send_receipt(receipt(donation), store=store, mailer=mailer, lease_seconds=LEASE)

    record = store.require(donation.donation_id)
    assert record.receipt_status is StepStatus.DONE and record.failed_step is None


def test_a_receipt_that_succeeds_after_retries_leaves_the_attention_index(store, mailer):
    donation = charged(store)
    store.record_step_retry(donation.donation_id, Step.SEND_RECEIPT, "send_receipt:sendgrid:http_503", 2)
    first = store.require(donation.donation_id).attention_since
    store.record_step_retry(donation.donation_id, Step.SEND_RECEIPT, "send_receipt:sendgrid:http_503", 3)
    assert store.require(donation.donation_id).attention_since == first  # the episode's start is kept

    send_receipt(receipt(donation), store=store, mailer=mailer, lease_seconds=LEASE)

    record = store.require(donation.donation_id)
    assert (record.attention_step, record.attention, record.last_error, record.attention_since) == (None,) * 4


def test_a_discarded_receipt_is_acknowledged_and_never_sent(store, mailer):
    donation = charged(store)
    store.change(donation.donation_id, receipt_status=StepStatus.DISCARDED)

    send_receipt(receipt(donation), store=store, mailer=mailer, lease_seconds=LEASE)

    assert mailer.sent == []
    assert store.require(donation.donation_id).receipt_status is StepStatus.DISCARDED


# -- the card --------------------------------------------------------------------------------------


def test_the_card_is_saved_once(store, payments):
    donation = charged(store)

    save_card(tokenize(donation), store=store, payments=payments)

    record = store.require(donation.donation_id)
    assert (record.card_status, record.customer_id, record.card_last4) == (
        StepStatus.DONE,
        f"cus_{donation.donation_id}",
        "4242",
    )
    assert payments.calls == [("save_card", f"{donation.donation_id}#0")]


def test_a_duplicate_tokenize_delivery_calls_stripe_no_more(store, payments):
    donation = charged(store)
    save_card(tokenize(donation), store=store, payments=payments)

    save_card(tokenize(donation), store=store, payments=payments)

    assert len(payments.calls) == 1


def test_a_donation_that_did_not_ask_to_save_its_card_is_left_alone(store, payments):
    donation = charged(store, save_card=False)

    save_card(tokenize(donation), store=store, payments=payments)

    assert payments.calls == []
    assert store.require(donation.donation_id).card_status is StepStatus.NOT_REQUESTED


def test_a_stored_server_error_makes_the_next_delivery_use_new_keys(store, payments):
    # Given Stripe stored a server error under the card attempt's keys
    donation = charged(store)
    payments.cards.append(StoredServerError("tokenize:stripe_stored_500"))

    with pytest.raises(StoredServerError):
        save_card(tokenize(donation), store=store, payments=payments)

    # Then the next delivery saves the card under attempt 1 (new idempotency keys)
    assert store.require(donation.donation_id).card_attempt == 1
    save_card(tokenize(donation), store=store, payments=payments)
    assert payments.calls[-1] == ("save_card", f"{donation.donation_id}#1")
    assert store.require(donation.donation_id).card_status is StepStatus.DONE


def test_a_tokenize_message_for_an_uncharged_donation_is_permanent(store, payments):
    donation_id = donation_id_for("key-1")
    store.create_pending(donation_id, Request.model_validate(BODY), "c", lease_seconds=5)
    store.mark_failed(donation_id, "amount_too_small")

    with pytest.raises(PermanentStepFailure, match=f"donation_not_charged:{DonationStatus.FAILED.value}"):
        save_card(FollowUpMessage(type=Step.TOKENIZE, donation_id=donation_id), store=store, payments=payments)
    assert payments.calls == []
