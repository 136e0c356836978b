"""The dunning policy (donations.dunning): what follows a declined renewal try."""

from __future__ import annotations

import pytest

from donations.dunning import MAX_TRIES, Next, after_decline
from donations.pledges import renewal_donation_id
from donations.renewals import renewal_key

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("failed_try", "failed_on", "retry_on"),
    [
        (1, "2027-01-10", "2027-01-13"),  # 3 days after the charge day
        (2, "2027-01-13", "2027-01-17"),  # 7 days after it
        (1, "2027-01-14", "2027-01-15"),  # a late first try: the retry is not on the same day, nor before it
        (2, "2027-01-20", "2027-01-21"),
    ],
)
def test_a_soft_decline_is_retried_on_day_3_then_day_7_never_twice_a_day(failed_try, failed_on, retry_on):
    verdict = after_decline("insufficient_funds", failed_try, "2027-01-10", failed_on)
    assert (verdict.next, verdict.retry_on) == (Next.RETRY, retry_on)


def test_the_last_try_declined_lapses_the_pledge():
    verdict = after_decline("generic_decline", MAX_TRIES, "2027-01-10", "2027-01-17")
    assert (verdict.next, verdict.retry_on) == (Next.LAPSE, None)
    assert verdict.why == "try 3 of 3 declined; no tries left"


@pytest.mark.parametrize("code", ["lost_card", "stolen_card", "expired_card", "do_not_honor", "incorrect_number"])
def test_a_hard_decline_lapses_the_pledge_on_its_first_try(code):
    assert after_decline(code, 1, "2027-01-10", "2027-01-10").next is Next.LAPSE


def test_authentication_required_asks_the_donor_and_is_not_retried():
    assert after_decline("authentication_required", 1, "2027-01-10", "2027-01-10").next is Next.ASK_DONOR


def test_each_try_has_its_own_donation_and_stripe_key_and_the_first_keeps_the_periods():
    # The first try's donation and key are the period's, as before retries existed (records and keys in flight)
    assert renewal_donation_id("pl_1", "2027-01", 1) == renewal_donation_id("pl_1", "2027-01")
    assert renewal_key("pl_1", "2027-01", 1) == "pledge-pl_1-2027-01"
    tries = {renewal_donation_id("pl_1", "2027-01", n) for n in (1, 2, 3)}
    assert len(tries) == 3
    assert renewal_key("pl_1", "2027-01", 2) == "pledge-pl_1-2027-01-try2"
