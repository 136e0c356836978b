"""The pledge's calendar: which day each renewal is due, which days a schedule run reads."""

from datetime import date

import pytest

from donations.charge import DONATION_ID
from donations.pledges import (
    LOOK_BACK_DAYS,
    RenewalMessage,
    due_days,
    first_charge_on,
    following_charge_on,
    renewal_donation_id,
)

pytestmark = pytest.mark.unit


def test_the_first_renewal_is_the_chosen_day_of_next_month():
    # Given a pledge made in December (its first gift was December's)
    assert first_charge_on(10, date(2026, 12, 5)) == date(2027, 1, 10)
    assert first_charge_on(1, date(2026, 12, 31)) == date(2027, 1, 1)


@pytest.mark.parametrize(
    ("day", "charged_on", "following"),
    [
        (10, "2027-01-10", "2027-02-10"),
        (28, "2027-01-28", "2027-02-28"),  # February has the 28th: no month skipped
        (28, "2027-12-28", "2028-01-28"),  # across the year
    ],
)
def test_each_renewal_is_due_on_the_same_day_of_the_following_month(day, charged_on, following):
    assert following_charge_on(day, charged_on) == following


def test_a_schedule_run_reads_the_look_back_window_up_to_today_oldest_first():
    days = due_days(date(2027, 3, 1))
    assert len(days) == LOOK_BACK_DAYS + 1
    assert days[-1] == "2027-03-01" and days[-2] == "2027-02-28"
    assert days == sorted(days)


def test_one_pledge_and_period_name_one_donation_shaped_like_every_donation():
    first = renewal_donation_id("pl_1", "2027-01")
    assert first == renewal_donation_id("pl_1", "2027-01")
    assert first != renewal_donation_id("pl_1", "2027-02") != renewal_donation_id("pl_2", "2027-01")
    assert DONATION_ID.match(first)  # GET /donations/{id} takes it like any donation id


@pytest.mark.parametrize("period", ["2027-13", "2027-1", "27-01", "2027-00"])
def test_a_message_for_a_period_that_is_no_month_is_refused(period):
    with pytest.raises(ValueError):
        RenewalMessage(pledge_id="pl_1", period=period)
