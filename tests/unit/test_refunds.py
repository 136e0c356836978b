"""Refunds and disputes in memory (donations.refunds, donations.steps.send_refund_notice, the corrected
receipt's data, the operator's refund plan and the report's net amounts)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from donations import refunds
from donations.errors import PermanentStepFailure, RetryableStepFailure
from donations.models import Donation, FollowUpMessage, RefundState, Step, StepStatus
from donations.ports import DisputeFacts, RefundFailure
from donations.receipt import receipt_data
from donations.steps import send_receipt
from donations_ops import refunding, report
from donations_ops.stack_resources import OpsError
from tests.support.keys import donation_id_for
from tests.support.records import a_donation
from tests.unit.conftest import BODY, Request
from tests.unit.test_receipt import SETTINGS

pytestmark = pytest.mark.unit

LEASE = 60
AT = "2026-12-01T00:00:00.000Z"


def receipted(store) -> Donation:
    """A donation charged for 25.00, its receipt sent."""
    donation_id = donation_id_for("key-refund-unit")
    store.create_pending(donation_id, Request.model_validate(BODY), "c", lease_seconds=5)
    store.mark_charged(donation_id, "pi_1", "pm_1")
    return store.change(donation_id, receipt_status=StepStatus.DONE)


def notice(donation: Donation) -> FollowUpMessage:
    return FollowUpMessage(type=Step.SEND_RECEIPT, donation_id=donation.donation_id, mail="refund_notice")


def refund(store, publisher, donation: Donation, total: int) -> bool:
    return refunds.record_refunded_total(
        store.require(donation.donation_id), total, AT, store=store, publisher=publisher
    )


# -- the refunded sum and its notice -----------------------------------------------------------------


def test_each_new_refunded_sum_is_recorded_and_queues_a_notice_an_older_one_does_neither(store, publisher):
    donation = receipted(store)

    assert refund(store, publisher, donation, 1500) is True
    assert refund(store, publisher, donation, 1000) is False  # an earlier event arriving late

    record = store.require(donation.donation_id)
    assert (record.amount_refunded, record.refund_state, record.net_amount) == (
        1500,
        RefundState.PARTIALLY_REFUNDED,
        1000,
    )
    assert [(m.type, m.mail) for m in publisher.published] == [(Step.SEND_RECEIPT, "refund_notice")]


def test_the_notice_is_sent_once_per_sum(store, publisher, mailer):
    donation = receipted(store)
    refund(store, publisher, donation, 1000)

    send_receipt(notice(donation), store=store, mailer=mailer, lease_seconds=LEASE)
    send_receipt(notice(donation), store=store, mailer=mailer, lease_seconds=LEASE)  # a duplicate message
    refund(store, publisher, donation, 2500)
    send_receipt(notice(donation), store=store, mailer=mailer, lease_seconds=LEASE)

    assert mailer.sent == [f"refund:{donation.donation_id}:1000", f"refund:{donation.donation_id}:2500"]
    record = store.require(donation.donation_id)
    assert (record.refund_notice_amount, record.refund_state) == (2500, RefundState.REFUNDED)
    assert record.refund_notice_claim_until is None


def test_the_notice_waits_for_the_receipt_and_a_failed_send_gives_the_claim_back(store, publisher, mailer):
    donation = receipted(store)
    store.change(donation.donation_id, receipt_status=StepStatus.PENDING)
    refund(store, publisher, donation, 1000)

    with pytest.raises(RetryableStepFailure, match="refund_notice_before_receipt"):
        send_receipt(notice(donation), store=store, mailer=mailer, lease_seconds=LEASE)

    store.change(donation.donation_id, receipt_status=StepStatus.DONE)
    mailer.failures.append(RetryableStepFailure("send_receipt:sendgrid:http_503"))
    with pytest.raises(RetryableStepFailure):
        send_receipt(notice(donation), store=store, mailer=mailer, lease_seconds=LEASE)
    assert store.require(donation.donation_id).refund_notice_claim_until is None
    send_receipt(notice(donation), store=store, mailer=mailer, lease_seconds=LEASE)
    assert mailer.sent == [f"refund:{donation.donation_id}:1000"]


def test_a_notice_for_a_donation_never_charged_is_parked(store, mailer):
    donation_id = donation_id_for("key-refund-pending")
    store.create_pending(donation_id, Request.model_validate(BODY), "c", lease_seconds=5)

    with pytest.raises(PermanentStepFailure, match="donation_not_charged"):
        send_receipt(notice(store.require(donation_id)), store=store, mailer=mailer, lease_seconds=LEASE)


def test_the_corrected_receipt_states_the_refund_and_what_remains():
    donation = a_donation(amount=2500, currency="usd")

    plain = receipt_data(donation, SETTINGS)
    partial = receipt_data(donation, SETTINGS, amount_refunded=1000)
    full = receipt_data(donation, SETTINGS, amount_refunded=2500)

    assert (plain["refund_notice"], plain["amount_refunded_display"], plain["fully_refunded"]) == ("", "", "")
    assert partial["refund_notice"] == "yes" and partial["fully_refunded"] == ""
    assert (partial["amount_refunded_display"], partial["amount_remaining_display"]) == ("10,00\xa0$", "15,00\xa0$")
    assert full["fully_refunded"] == "yes" and full["amount_remaining_display"] == "0,00\xa0$"


# -- disputes ----------------------------------------------------------------------------------------


class Pledges:
    def __init__(self) -> None:
        self.stopped: dict[str, str] = {}

    def stop_for_dispute(self, pledge_id: str, reason: str) -> bool:
        if pledge_id in self.stopped:
            return False
        self.stopped[pledge_id] = reason
        return True

    def record_authenticated_renewal(self, pledge_id: str, donation_id: str) -> bool:
        return False  # no renewal here waits for a donor's authentication


def facts(status: str, moved: int = 0, fee: int = 0) -> DisputeFacts:
    return DisputeFacts("dp_1", "fraudulent", status, 2500, AT, AT, None, moved, fee, "usd" if moved else None)


def test_a_dispute_on_a_renewal_stops_its_pledge_once_and_a_late_open_status_changes_nothing(store):
    donation = store.change(receipted(store).donation_id, metadata={"pledge_id": "pl_1"})
    pledges = Pledges()

    closed = refunds.record_dispute(donation, facts("lost"), store=store, pledges=pledges, event_type=CLOSED)
    late = refunds.record_dispute(donation, facts("needs_response"), store=store, pledges=pledges, event_type=UPDATED)

    assert (closed.recorded, closed.pledge_stopped) == (True, "pl_1")
    assert (late.recorded, late.pledge_stopped) == (False, None)
    assert pledges.stopped == {"pl_1": "dispute:fraudulent:dp_1"}
    record = store.require(donation.donation_id)
    assert (record.dispute_status, record.amount_lost_to_dispute, record.net_amount) == ("lost", 2500, 0)


CLOSED, UPDATED = "charge.dispute.closed", "charge.dispute.updated"


def test_the_dispute_fee_is_kept_from_the_event_with_the_most_balance_transactions(store):
    # Given a dispute won: funds withdrawn (the amount and a 1500 fee), then reinstated (the amount)
    donation = receipted(store)
    reinstated = facts("won", moved=2, fee=1500)
    withdrawn = facts("needs_response", moved=1, fee=1500)
    closed_before_reinstated = facts("won", moved=1, fee=1500)

    # When the reinstatement arrives first, then the older events (duplicated)
    applied = [
        refunds.record_dispute(donation, event, store=store, pledges=None, event_type=UPDATED).recorded
        for event in (reinstated, closed_before_reinstated, withdrawn, withdrawn)
    ]

    # Then only the newest state is kept: won, two balance transactions, the fee once
    assert applied == [True, False, False, False]
    record = store.require(donation.donation_id)
    assert (record.dispute_status, record.dispute_balance_transactions) == ("won", 2)
    assert (record.dispute_fee, record.dispute_fee_currency, record.net_amount) == (1500, "usd", record.amount)


def test_the_fee_is_the_sum_of_the_disputes_balance_transactions_fees():
    # stripe.Dispute.balance_transactions: the withdrawal carries the fee; a reinstatement may return it
    dispute = {
        "id": "dp_1",
        "amount": 2500,
        "status": "won",
        "reason": "fraudulent",
        "balance_transactions": [
            {"amount": -2500, "fee": 1500, "currency": "usd"},
            {"amount": 2500, "fee": 0, "currency": "usd"},
        ],
    }
    recorded = refunds.dispute_facts(dispute, 1_700_000_000)
    assert (recorded.balance_transactions, recorded.fee, recorded.fee_currency) == (2, 1500, "usd")


def test_a_failed_refund_comes_off_once_and_an_older_total_does_not_bring_it_back(store, publisher):
    # Given a donation refunded 1000 of 2500, the donor told of it
    donation = receipted(store)
    assert refund(store, publisher, donation, 1000)
    store.change(donation.donation_id, refund_notice_amount=1000)
    failure = RefundFailure("re_1", 1000, "expired_or_canceled_card", "2026-12-01T00:00:05.000Z")

    # When the refund fails, reported twice (refund.updated and refund.failed), then the charge.refunded
    # Stripe sent before it failed arrives late
    first = refunds.record_refund_failure(donation, failure, store=store)
    again = refunds.record_refund_failure(donation, failure, store=store)
    late = refund(store, publisher, donation, 1000)

    # Then the gift is whole again, once: nothing refunded, the failure shown, no notice owed
    assert (first, again, late) == (True, False, False)
    record = store.require(donation.donation_id)
    assert (record.amount_refunded, record.refund_state, record.net_amount) == (0, None, 2500)
    assert (record.amount_refund_failed, record.refunds_failed, record.refund_notice_amount) == (1000, ["re_1"], 0)


def test_a_won_dispute_keeps_the_gift():
    won = a_donation(dispute_id="dp_1", dispute_status="won", dispute_amount=2500)
    assert (won.amount_lost_to_dispute, won.net_amount) == (0, 2500)


# -- the operator's refund and the report ------------------------------------------------------------


def test_the_operators_refund_is_planned_against_the_record():
    donation = a_donation(payment_intent_id="pi_1", amount_refunded=1000)

    planned = refunding.plan(donation, None, "requested_by_customer")

    assert isinstance(planned, refunding.RefundPlan)
    assert (planned.amount, planned.retry, planned.remaining_after) == (1500, False, 0)
    assert refunding.minor_units("10.00", "usd") == 1000 and refunding.minor_units("500", "jpy") == 500
    for bad in ("10.001", "-1", "ten"):
        with pytest.raises(OpsError):
            refunding.minor_units(bad, "usd")
    with pytest.raises(OpsError, match="only 1500"):
        refunding.plan(donation, 2000, "requested_by_customer")
    with pytest.raises(OpsError, match="disputed"):
        refunding.plan(a_donation(payment_intent_id="pi_1", dispute_id="dp_1"), None, "duplicate")


def test_a_request_that_never_came_back_reuses_its_key_and_one_that_did_is_answered_from_the_record():
    requested = {"at": AT, "action": "refund_requested", "key": "k-1", "amount": "1000", "reason": "duplicate"}
    open_one = a_donation(payment_intent_id="pi_1", operator_log=[requested])

    retry = refunding.plan(open_one, 1000, "duplicate")
    assert isinstance(retry, refunding.RefundPlan) and (retry.key, retry.retry) == ("k-1", True)
    with pytest.raises(OpsError, match="never came back"):
        refunding.plan(open_one, 500, "duplicate")

    now = datetime.now(UTC).isoformat()
    done = {"at": now, "action": "refund", "key": "k-1", "refund_id": "re_1", "amount": "1000", "reason": "duplicate"}
    answered = a_donation(payment_intent_id="pi_1", amount_refunded=1000, operator_log=[requested, done])
    again = refunding.plan(answered, 1000, "duplicate")
    assert isinstance(again, refunding.RefundDone) and (again.refund_id, again.already) == ("re_1", True)
    another = refunding.plan(answered, 1000, "duplicate", again=True)
    assert isinstance(another, refunding.RefundPlan) and another.key != "k-1"
    stale = a_donation(payment_intent_id="pi_1", operator_log=[requested, done | {"at": _days_ago(2)}])
    assert isinstance(refunding.plan(stale, 1000, "duplicate"), refunding.RefundPlan)


def _days_ago(days: int) -> str:
    return (datetime.now(UTC) - timedelta(days=days)).isoformat()


def test_the_report_nets_refunds_and_lost_disputes_per_currency():
    found = [
        a_donation(donation_id="don_a", amount=2500, amount_refunded=1000),
        a_donation(donation_id="don_b", amount=2500, dispute_id="dp", dispute_status="lost", dispute_amount=2500),
        a_donation(donation_id="don_c", amount=2500, dispute_id="dp2", dispute_status="won", dispute_amount=2500),
        a_donation(donation_id="don_d", amount=5000, currency="eur"),
    ]

    tallied = report.tally(report.Report(datetime(2026, 12, 1).date(), datetime(2026, 12, 1).date()), found)

    assert tallied.received == {"eur": "50.00 EUR", "usd": "75.00 USD"}
    assert tallied.refunded == {"usd": "10.00 USD"}
    assert (tallied.disputed, tallied.lost_to_disputes) == ({"usd": "50.00 USD"}, {"usd": "25.00 USD"})
    assert tallied.net == {"eur": "50.00 EUR", "usd": "40.00 USD"}
    assert tallied.disputes == {"lost": 1, "won": 1}
