"""The card network updates a pledge's saved card on its own (Stripe's card account updater), through the webhook
function, the Stripe emulator and the renewal functions: Stripe's ``payment_method.automatically_updated`` (the SDK's
stripe.Event types; its object is the updated PaymentMethod, same id) gives the pledge the new card details, puts a
pledge that lapsed on that card's expiry back on schedule, and changes nothing twice or backwards; a lapse the update
does not cure (a lost card, docs.stripe.com/declines/codes) stays lapsed. Stripe also sends events this endpoint does
not handle (``customer.deleted`` after a donor's erase): they are acknowledged and change nothing."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import stripe

from donations.models import DonationStatus
from donations.pledges import Pledge, PledgeState, renewal_donation_id, resume_on
from donations.ports import CardSetup
from tests.integration.test_card_update import LOST_CARD, _on_card
from tests.integration.test_renewals import _pledge, _pledge_now, _schedule

pytestmark = pytest.mark.integration

# docs.stripe.com/testing, "Declined payments": 4000000000000069 is declined expired_card (a hard decline).
EXPIRED_CARD = "pm_card_chargeDeclinedExpiredCard"
NEW_YEAR = datetime.now(UTC).year + 4


def _lapsed_on(world, key: str, test_card: str) -> Pledge:
    pledge = _on_card(world, _pledge(world, key), test_card)
    _schedule(world, "2027-01-10")
    world.drain()
    lapsed = _pledge_now(world, pledge.pledge_id)
    assert lapsed.state is PledgeState.LAPSED
    return lapsed


def _network_update(world, pledge: Pledge, exp_year: int, number: str | None = None) -> dict[str, Any]:
    """The card network updates the pledge's card; Stripe's event about it, as the emulator recorded it."""
    world.stripe.update_card_automatically(pledge.payment_method_id, 9, exp_year, number)
    return world.stripe_event("payment_method.automatically_updated", pledge.payment_method_id)


def test_an_expired_card_the_network_renews_puts_its_lapsed_pledge_back_on_schedule(world):
    # Given a pledge that lapsed because its card expired
    lapsed = _lapsed_on(world, "updater-expired", EXPIRED_CARD)
    assert lapsed.last_decline_code == "expired_card" and lapsed.due_on is None

    # When the network gives the card a new expiry and Stripe reports it
    event = _network_update(world, lapsed, NEW_YEAR)
    answer = world.deliver_stripe_event(event)

    # Then the pledge shows the new expiry and is due again on its next charge day (no period charged twice)
    assert (answer.status, answer.body["outcome"]) == (200, "card_updated")
    resumed = _pledge_now(world, lapsed.pledge_id)
    expected = resume_on(lapsed, datetime.now(UTC).date())
    assert (resumed.state, resumed.due_on, resumed.renewal_try) == (PledgeState.ACTIVE, expected, 1)
    assert (resumed.card_exp_month, resumed.card_exp_year, resumed.card_last4) == (9, NEW_YEAR, "0069")
    assert resumed.attention is None and resumed.card_details_as_of == event["created"]

    # And a redelivered event changes nothing
    assert world.deliver_stripe_event(event).status == 200
    assert _pledge_now(world, lapsed.pledge_id) == resumed

    # And the next renewal charges the updated card
    _schedule(world, expected)
    world.drain()
    renewal = world.record(renewal_donation_id(lapsed.pledge_id, expected[:7]))
    assert renewal.status is DonationStatus.SUCCEEDED


def test_an_older_update_delivered_after_a_newer_one_does_not_win(world):
    # Given an active pledge whose card the network updated twice, a minute apart
    pledge = _pledge(world, "updater-order")
    older = _network_update(world, pledge, NEW_YEAR)
    world.stripe.advance_clock(60)
    newer = _network_update(world, pledge, NEW_YEAR + 1)
    assert newer["created"] > older["created"]

    # When Stripe delivers the newer first, then the older
    assert world.deliver_stripe_event(newer).status == 200
    shown = _pledge_now(world, pledge.pledge_id)
    assert world.deliver_stripe_event(older).status == 200

    # Then the pledge keeps the newer details, and its schedule is as it was
    now = _pledge_now(world, pledge.pledge_id)
    assert now == shown and now.card_exp_year == NEW_YEAR + 1
    assert (now.state, now.due_on) == (PledgeState.ACTIVE, pledge.due_on)


def test_an_update_made_before_the_card_was_declined_does_not_restart_the_pledge(world):
    # Given a pledge that lapsed on expired_card, and a network update Stripe made a minute before that decline
    # (delivered late: webhooks come at least once, in any order)
    lapsed = _lapsed_on(world, "updater-stale", EXPIRED_CARD)
    event = _network_update(world, lapsed, NEW_YEAR)
    declined_at = int(datetime.fromisoformat(lapsed.lapsed_at or "").timestamp())
    event["created"] = declined_at - 60

    # When it arrives
    assert world.deliver_stripe_event(event).status == 200

    # Then the pledge shows the details but stays lapsed: the card was declined after that update
    shown = _pledge_now(world, lapsed.pledge_id)
    assert shown.card_exp_year == NEW_YEAR
    assert (shown.state, shown.due_on) == (PledgeState.LAPSED, None)


def test_a_lost_card_s_lapse_is_not_cured_by_the_network_s_new_number(world):
    # Given a pledge that lapsed on a card reported lost (the issuer stopped it: someone else may hold it)
    lapsed = _lapsed_on(world, "updater-lost", LOST_CARD)

    # When the network reissues it with a new number and Stripe reports it
    answer = world.deliver_stripe_event(_network_update(world, lapsed, NEW_YEAR, "4242424242424242"))

    # Then the pledge shows the new card but stays lapsed, off the schedule, for its donor or an operator
    assert answer.status == 200
    shown = _pledge_now(world, lapsed.pledge_id)
    assert (shown.card_last4, shown.card_exp_year) == ("4242", NEW_YEAR)
    assert (shown.state, shown.due_on, shown.attention) == (PledgeState.LAPSED, None, "lapsed")


def test_an_update_of_a_card_no_pledge_charges_is_acknowledged_and_ignored(world):
    # Given a card saved by a one-time gift only (no pledge on it)
    pledge = _pledge(world, "updater-other")
    world.wiring.pledges.cancel(pledge.pledge_id, by="operator")

    # When the network updates it
    answer = world.deliver_stripe_event(_network_update(world, pledge, NEW_YEAR))

    # Then Stripe gets a 2xx and the canceled pledge is untouched
    assert (answer.status, answer.body["outcome"]) == (200, "ignored")
    assert _pledge_now(world, pledge.pledge_id).card_exp_year is None


def test_an_event_type_the_endpoint_does_not_handle_is_acknowledged_and_changes_nothing(world):
    # Given Stripe's customer.deleted, as the emulator sends it after a donor's erase deletes the Customer
    pledge = _pledge(world, "updater-unhandled")
    account = stripe.StripeClient("sk_test_local_emulator", base_addresses={"api": world.stripe.url})
    account.v1.customers.delete(pledge.customer_id)
    event = world.stripe_event("customer.deleted", pledge.customer_id)
    before = _pledge_now(world, pledge.pledge_id)

    # When it reaches the webhook function
    answer = world.deliver_stripe_event(event)

    # Then it is acknowledged, recorded nowhere, and nothing is parked or changed
    assert (answer.status, answer.body["outcome"]) == (200, "ignored")
    assert f"stripe-webhook-event#{event['id']}" not in " ".join(world.webhook_event_records())
    assert _pledge_now(world, pledge.pledge_id) == before
    assert world.record(pledge.first_donation_id).customer_deleted_at is None


def test_a_card_the_donor_gives_afterwards_drops_the_old_card_s_expiry_and_updates(world):
    # Given a pledge whose card the network updated
    pledge = _pledge(world, "updater-then-donor")
    old = _network_update(world, pledge, NEW_YEAR)
    assert world.deliver_stripe_event(old).status == 200

    # When the donor saves another card (the manage page's SetupIntent)
    shown = _pledge_now(world, pledge.pledge_id)
    setup = CardSetup(
        "seti_donor", "succeeded", pledge.customer_id, payment_method_id="pm_new", pledge_id=pledge.pledge_id
    )
    world.wiring.pledges.record_new_card(shown, setup, datetime.now(UTC).date())

    # Then the old card's expiry is gone, and a late update of the old card changes nothing
    now = _pledge_now(world, pledge.pledge_id)
    assert (now.payment_method_id, now.card_exp_year, now.card_details_as_of) == ("pm_new", None, None)
    assert world.deliver_stripe_event(old).status == 200
    assert _pledge_now(world, pledge.pledge_id) == now
