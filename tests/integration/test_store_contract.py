"""The unit tier's FakeStore keeps DonationStore's conditions: the same scenarios against both
(the real one on the template's table in moto), so the fake cannot drift from the store."""

from __future__ import annotations

import time

import pytest

from donations.errors import RequestInProgress
from donations.models import DonationStatus, RefundState, StepStatus
from donations.ports import DisputeFacts, RefundFailure
from donations.store import ConditionFailed
from tests.support.fakes import FakeStore
from tests.support.keys import a_key, donation_id_for
from tests.support.world import DONATION
from tests.unit.conftest import Request

CONTRACT_KEY = a_key("contract-1")

pytestmark = pytest.mark.integration


@pytest.fixture(params=["fake", "dynamodb"])
def store(request):
    if request.param == "fake":
        return FakeStore()
    return request.getfixturevalue("world").wiring.store


def pending(store, key=CONTRACT_KEY):
    return store.create_pending(donation_id_for(key), Request.model_validate(DONATION), "corr", lease_seconds=30)


def test_the_charging_lease_keeps_a_second_request_out_until_it_runs_out_or_is_given_back(store):
    donation = pending(store)
    with pytest.raises(RequestInProgress):
        pending(store)
    assert (
        store.create_pending(
            donation.donation_id, Request.model_validate(DONATION), "c", lease_seconds=30, now=time.time() + 60
        ).charging_until
        is not None
    )  # run out: taken again
    store.release_charging(donation.donation_id)
    assert pending(store).status is DonationStatus.PENDING  # given back: taken at once


def test_only_open_donations_are_charged_and_the_publish_lease_is_taken_once(store):
    donation = pending(store)
    charged = store.mark_charged(donation.donation_id, "pi_1", "pm_1", claim_followups_seconds=60)
    assert charged.status is DonationStatus.SUCCEEDED and charged.charging_until is None
    assert store.claim_followups(donation.donation_id, 60) is False  # the charge holds it
    with pytest.raises(ConditionFailed):  # only the first transition may take it
        store.mark_charged(donation.donation_id, "pi_1", "pm_1", claim_followups_seconds=60)
    store.mark_charged(donation.donation_id, "pi_1", "pm_1")  # the plain way: idempotent
    with pytest.raises(ConditionFailed):
        store.mark_declined(donation.donation_id, "do_not_honor", "pi_1")

    store.release_followups_claim(donation.donation_id)
    assert store.claim_followups(donation.donation_id, 60) is True
    assert store.claim_followups(donation.donation_id, 60, now=time.time() + 120) is True  # ran out
    store.mark_followups_published(donation.donation_id)
    assert store.claim_followups(donation.donation_id, 60, now=time.time() + 600) is False
    assert store.require(donation.donation_id).unsettled_since is None


def test_the_receipt_claim_is_a_lease_and_a_sent_receipt_is_never_claimed_again(store):
    donation = pending(store)
    assert store.claim_receipt(donation.donation_id, 60).claimed is False  # not charged yet
    store.mark_charged(donation.donation_id, "pi_1", "pm_1")

    first = store.claim_receipt(donation.donation_id, 60)
    assert first.claimed and first.donation.receipt_status is StepStatus.PENDING  # the record before the claim
    assert store.claim_receipt(donation.donation_id, 60).claimed is False
    taken_over = store.claim_receipt(donation.donation_id, 60, now=time.time() + 120)
    assert taken_over.claimed and taken_over.donation.receipt_status is StepStatus.IN_PROGRESS

    store.mark_receipt_sent(donation.donation_id, "msg-1")
    later = store.claim_receipt(donation.donation_id, 60, now=time.time() + 600)
    assert later.claimed is False and later.donation.receipt_status is StepStatus.DONE
    with pytest.raises(ConditionFailed):
        store.release_receipt_claim(donation.donation_id)


def test_charge_attempts_move_on_once_and_only_from_a_spent_attempt(store):
    donation = pending(store)
    with pytest.raises(ConditionFailed):
        store.next_charge_attempt(donation.donation_id, 0)  # not spent
    store.mark_charge_attempt_spent(donation.donation_id, 0)
    assert store.next_charge_attempt(donation.donation_id, 0).charge_attempt == 1
    with pytest.raises(ConditionFailed):
        store.next_charge_attempt(donation.donation_id, 0)  # the loser of a race


def test_refunds_only_grow_and_settled_donations_leave_the_reconcilers_query(store):
    donation = pending(store)
    before = "9999-12-31T00:00:00.000Z"
    assert store.waiting(DonationStatus.PENDING, since=None, before=before, limit=10) == [donation.donation_id]
    store.mark_failed(donation.donation_id, "amount_too_small")
    assert store.waiting(DonationStatus.PENDING, since=None, before=before, limit=10) == []
    with pytest.raises(ConditionFailed):
        store.mark_failed(donation.donation_id, "again")

    charged = pending(store, key=a_key("contract-2"))
    store.mark_charged(charged.donation_id, "pi_2", "pm_2")
    store.record_refund(charged.donation_id, 1000, "2026-01-01T00:00:00.000Z", RefundState.PARTIALLY_REFUNDED)
    with pytest.raises(ConditionFailed):
        store.record_refund(charged.donation_id, 500, "2026-01-02T00:00:00.000Z", RefundState.PARTIALLY_REFUNDED)
    assert store.find_by_payment_intent("pi_2") in (
        charged.donation_id,
        None,
    )  # the real index is eventually consistent


def test_a_failure_ends_a_donation_only_for_its_current_charge(store):
    from donations.ports import CurrentCharge

    donation = pending(store)
    store.mark_charge_attempt_spent(donation.donation_id, 0)
    # A spent attempt's failure moves nothing; neither does an attempt the donation moved past
    with pytest.raises(ConditionFailed):
        store.mark_canceled(donation.donation_id, "abandoned", "pi_0", current=CurrentCharge(0, "pi_0"))
    store.next_charge_attempt(donation.donation_id, 0)
    with pytest.raises(ConditionFailed):
        store.mark_failed(donation.donation_id, "payment_failed", current=CurrentCharge(0, "pi_0"))
    assert store.require(donation.donation_id).charge_attempt_spent_at is None
    # The current attempt's decline ends it
    declined = store.mark_declined(donation.donation_id, "generic_decline", "pi_1", current=CurrentCharge(1, "pi_1"))
    assert declined.status is DonationStatus.DECLINED


def test_money_taken_for_a_donation_recorded_as_not_charged_is_recorded_and_owed_its_follow_ups(store):
    donation = pending(store)
    store.mark_canceled(donation.donation_id, "abandoned", "pi_1")
    with pytest.raises(ConditionFailed):  # only from the status the caller read
        store.record_money_taken(donation.donation_id, "pi_1", "pm_1", recorded_as=DonationStatus.FAILED)

    charged = store.record_money_taken(donation.donation_id, "pi_1", "pm_1", recorded_as=DonationStatus.CANCELED)

    assert (charged.status, charged.corrected_from, charged.payment_intent_id) == (
        DonationStatus.SUCCEEDED,
        DonationStatus.CANCELED,
        "pi_1",
    )
    assert charged.unsettled_since is not None and charged.charged_at is not None  # back in the reconciler's index
    assert store.claim_followups(donation.donation_id, 60) is True


# -- refunds and disputes ----------------------------------------------------------------------------


def _charged_with_receipt(store, key):
    donation = pending(store, key=a_key(key))
    store.mark_charged(donation.donation_id, f"pi_{key}", "pm_1")
    assert store.claim_receipt(donation.donation_id, 60).claimed
    store.mark_receipt_sent(donation.donation_id, "msg-receipt")
    return donation


def test_the_refund_notice_is_claimed_once_per_refunded_total_and_only_after_the_receipt(store):
    # Given a charged donation whose receipt is not sent yet, refunded in part
    donation = pending(store, key=a_key("contract-notice"))
    store.mark_charged(donation.donation_id, "pi_notice", "pm_1")
    store.record_refund(donation.donation_id, 1000, "2026-01-01T00:00:00.000Z", RefundState.PARTIALLY_REFUNDED)
    # Then the notice waits for the receipt
    assert not store.claim_refund_notice(donation.donation_id, 60).claimed
    assert store.claim_receipt(donation.donation_id, 60).claimed
    store.mark_receipt_sent(donation.donation_id, "msg-receipt")

    # When the notice is claimed: a second claim meanwhile fails; once told, the same total is owed nothing
    claim = store.claim_refund_notice(donation.donation_id, 60)
    assert claim.claimed and claim.donation.amount_refunded == 1000
    assert not store.claim_refund_notice(donation.donation_id, 60).claimed
    store.mark_refund_notice_sent(donation.donation_id, 1000, "msg-notice-1")
    told = store.claim_refund_notice(donation.donation_id, 60)
    assert not told.claimed and told.donation.refund_notice_amount == 1000

    # And a larger total is owed a notice of its own
    store.record_refund(donation.donation_id, 2500, "2026-01-02T00:00:00.000Z", RefundState.REFUNDED)
    again = store.claim_refund_notice(donation.donation_id, 60)
    assert again.claimed and again.donation.amount_refunded == 2500
    store.release_refund_notice_claim(donation.donation_id)
    assert store.claim_refund_notice(donation.donation_id, 60).claimed


def _dispute(status, **changes):
    facts = {
        "dispute_id": "dp_1",
        "reason": "fraudulent",
        "status": status,
        "amount": 2500,
        "opened_at": "2026-02-01T00:00:00.000Z",
        "changed_at": "2026-02-01T00:00:00.000Z",
        "evidence_due_by": "2026-02-08T00:00:00.000Z",
    }
    return DisputeFacts(**(facts | changes))


def test_a_dispute_only_moves_towards_closed(store):
    donation = _charged_with_receipt(store, "contract-dispute")
    store.record_dispute(donation.donation_id, _dispute("needs_response"))
    store.record_dispute(donation.donation_id, _dispute("lost", changed_at="2026-03-01T00:00:00.000Z"))

    # An open status arriving late (out of order) changes nothing
    with pytest.raises(ConditionFailed):
        store.record_dispute(donation.donation_id, _dispute("under_review"))

    record = store.get(donation.donation_id)
    assert (record.dispute_status, record.dispute_closed_at, record.amount_lost_to_dispute) == (
        "lost",
        "2026-03-01T00:00:00.000Z",
        2500,
    )
    assert record.net_amount == 0


def test_a_disputes_money_is_taken_from_the_event_with_the_most_balance_transactions(store):
    # Given a dispute won: withdrawn (1 balance transaction, the fee), then reinstated (2)
    donation = _charged_with_receipt(store, "contract-dispute-fee")
    store.record_dispute(donation.donation_id, _dispute("won", balance_transactions=2, fee=1500, fee_currency="usd"))

    # When older events arrive late (the closed one before reinstatement, the withdrawal), each is refused
    for older in (
        _dispute("won", balance_transactions=1, fee=1500),
        _dispute("needs_response", balance_transactions=1),
    ):
        with pytest.raises(ConditionFailed):
            store.record_dispute(donation.donation_id, older)

    # Then the record keeps the newest: won, the fee in its currency, the gift whole
    record = store.get(donation.donation_id)
    assert (record.dispute_status, record.dispute_balance_transactions) == ("won", 2)
    assert (record.dispute_fee, record.dispute_fee_currency, record.net_amount) == (1500, "usd", record.amount)


def test_a_failed_refund_comes_off_the_total_once(store):
    # Given 1000 and then 500 refunded, the donor told of 1500
    donation = _charged_with_receipt(store, "contract-refund-failed")
    store.record_refund(donation.donation_id, 1500, "2026-01-01T00:00:00.000Z", RefundState.PARTIALLY_REFUNDED)
    assert store.claim_refund_notice(donation.donation_id, 60).claimed
    store.mark_refund_notice_sent(donation.donation_id, 1500, "msg-notice")
    failed = RefundFailure("re_1", 1000, "expired_or_canceled_card", "2026-01-02T00:00:00.000Z")

    # When the first refund fails, reported twice
    recorded = store.record_refund_failure(donation.donation_id, failed)
    duplicate = store.record_refund_failure(donation.donation_id, failed)

    # Then it comes off once; a total Stripe stated before the failure does not bring it back
    assert duplicate is None
    assert (recorded.amount_refunded, recorded.refund_state, recorded.refund_notice_amount) == (
        500,
        RefundState.PARTIALLY_REFUNDED,
        500,
    )
    with pytest.raises(ConditionFailed):
        store.record_refund(donation.donation_id, 1500, "2026-01-01T12:00:00.000Z", RefundState.PARTIALLY_REFUNDED)
    record = store.get(donation.donation_id)
    assert (record.amount_refunded, record.amount_refund_failed, record.refunds_failed) == (500, 1000, ["re_1"])
    assert record.refund_failure_reason == "expired_or_canceled_card"
    # And a later refund's total counts again
    store.record_refund(donation.donation_id, 900, "2026-01-03T00:00:00.000Z", RefundState.PARTIALLY_REFUNDED)
    assert store.get(donation.donation_id).amount_refunded == 900
