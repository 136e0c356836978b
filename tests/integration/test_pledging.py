"""Pledging from the API: a monthly gift through POST /donations, its card saved for off-session use, and
its pledge made once by the tokenize step (tests/integration/test_renewals.py takes it from there)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from donations.models import StepStatus
from donations.pledges import Pledge, PledgeState, first_charge_on, pledge_id_for
from tests.support.keys import a_key
from tests.support.world import DONATION, CrashOn

pytestmark = pytest.mark.integration

# A monthly gift as the form sends it: save_card left out (monthly implies it).
MONTHLY = {**{k: v for k, v in DONATION.items() if k != "save_card"}, "monthly": True}


def _pledge_of(world, donation_id: str) -> Pledge | None:
    return world.wiring.pledges.get(pledge_id_for(donation_id))


def _intent(world, donation_id: str) -> dict:
    [intent] = [i for i in world.stripe.state()["payment_intents"] if i["metadata"].get("donation_id") == donation_id]
    return dict(intent)


def test_a_monthly_gift_is_charged_for_future_use_and_becomes_a_pledge_when_its_card_is_saved(world):
    # Given a donor who gives 25 USD monthly on the 10th
    answer = world.post({**MONTHLY, "day_of_month": 10}, key=a_key("monthly"))

    # Then the first gift is charged on-session, set up for off-session charges (setup_future_usage), card saved
    assert answer.status == 201, answer.body
    donation_id = answer.body["donation_id"]
    assert _intent(world, donation_id)["setup_future_usage"] == "off_session"
    donation = world.record(donation_id)
    assert (donation.save_card, donation.pledge_day_of_month) == (True, 10)
    assert _pledge_of(world, donation_id) is None  # not before the card is saved

    # When the tokenize step saves the card
    world.drain()

    # Then the pledge exists, on the saved card, first renewal on the 10th of next month
    donation = world.record(donation_id)
    assert donation.card_status is StepStatus.DONE
    pledge = _pledge_of(world, donation_id)
    assert pledge is not None
    assert pledge.state is PledgeState.ACTIVE
    assert (pledge.amount, pledge.currency, pledge.email, pledge.day_of_month) == (2500, "usd", DONATION["email"], 10)
    assert (pledge.customer_id, pledge.payment_method_id) == (donation.customer_id, donation.payment_method_id)
    assert (pledge.card_last4, pledge.first_donation_id) == ("4242", donation_id)
    made_on = date.fromisoformat(donation.created_at[:10])
    assert pledge.next_charge_on == pledge.due_on == first_charge_on(10, made_on).isoformat()


def test_a_redelivered_tokenize_message_makes_no_second_pledge(world):
    # Given a monthly gift whose pledge was made
    answer = world.post(MONTHLY, key=a_key("monthly-redelivered"))
    world.drain()
    first = _pledge_of(world, answer.body["donation_id"])
    assert first is not None

    # When its tokenize message is delivered again
    world.send_follow_up("tokenize", answer.body["donation_id"])
    world.drain()

    # Then there is still the one pledge, unchanged
    assert [item["pledge_id"] for item in world.pipeline.clients("dynamodb").scan(
        TableName=world.pipeline.stack.tables["PledgesTable"])["Items"]] == [{"S": first.pledge_id}]  # fmt: skip
    assert _pledge_of(world, answer.body["donation_id"]) == first


def test_a_crash_between_the_pledge_and_the_card_record_is_finished_by_the_redelivery(world):
    # Given a monthly gift whose tokenize step dies after making the pledge, before recording the card
    answer = world.post(MONTHLY, key=a_key("monthly-crash"))
    donation_id = answer.body["donation_id"]
    module = world.pipeline.handler("TokenizeFunction")
    original = module.save_card

    def crashing(message, *, store, **ports):
        return original(message, store=CrashOn(store, "record_card", error=RuntimeError()), **ports)

    module.save_card = crashing
    try:
        world.deliver("tokenize")
    finally:
        module.save_card = original
    assert world.record(donation_id).card_status is not StepStatus.DONE
    assert _pledge_of(world, donation_id) is not None

    # When the message comes back
    world.expire_backoffs()
    world.drain()

    # Then the card is recorded and the one pledge stands
    assert world.record(donation_id).card_status is StepStatus.DONE
    assert _pledge_of(world, donation_id) is not None


def test_the_day_of_month_defaults_to_today_and_at_most_the_28th(world):
    # Given a monthly gift with no day chosen
    answer = world.post(MONTHLY, key=a_key("monthly-default-day"))
    world.drain()

    # Then its day is the day it was made (UTC), 28 at most, so that every month has it
    donation = world.record(answer.body["donation_id"])
    made = datetime.fromisoformat(donation.created_at.replace("Z", "+00:00")).astimezone(UTC)
    pledge = _pledge_of(world, donation.donation_id)
    assert pledge is not None and pledge.day_of_month == donation.pledge_day_of_month == min(made.day, 28)
    assert date.fromisoformat(pledge.next_charge_on) - made.date() < timedelta(days=62)


@pytest.mark.parametrize(
    ("changes", "field", "code"),
    [
        ({"day_of_month": 29}, "day_of_month", "invalid_day_of_month"),
        ({"day_of_month": 0}, "day_of_month", "invalid_day_of_month"),
        ({"day_of_month": "10"}, "day_of_month", "invalid_day_of_month"),
        ({"day_of_month": True}, "day_of_month", "invalid_day_of_month"),
        ({"monthly": False, "day_of_month": 10}, "day_of_month", "invalid_day_of_month"),
        ({"save_card": False}, "monthly", "invalid_monthly"),
        ({"monthly": "yes"}, "monthly", "invalid_monthly"),
    ],
)
def test_a_bad_monthly_option_is_refused_clearly_and_changes_nothing(world, changes, field, code):
    # Given a monthly gift with a bad option
    before = world.stripe_requests()

    # When it is posted
    answer = world.post({**MONTHLY, **changes}, key=a_key(f"bad-monthly-{field}"))

    # Then 400 names the field, and nothing is recorded or sent to Stripe
    assert answer.status == 400, answer.body
    assert (answer.body["error"]["field"], answer.body["error"]["code"]) == (field, code)
    assert world.donation_count() == 0
    assert world.stripe_requests() == before
