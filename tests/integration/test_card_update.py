"""A donor gives a monthly gift a new card through the manage link (donations.card_update), through the charge
function's routes, the Stripe emulator (SetupIntents, as Stripe.js confirmCardSetup confirms them) and the renewal
functions: the next try charges the new card; a lapsed pledge starts again on it; Stripe's setup_intent.succeeded
records it when the page never reported back; every hostile request gets a 4xx and changes nothing."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
import stripe

from donations.models import DonationStatus
from donations.pledge_links import PledgeLinks
from donations.pledges import Pledge, PledgeState, renewal_donation_id, resume_on
from simulator.emulators.stripe import StripeControl
from simulator.local.pipeline import Pipeline
from tests.integration.test_renewal_authentication import _pledge_needing_authentication, _renew
from tests.integration.test_renewals import _pledge, _pledge_now, _schedule
from tests.support.payment_element import PUBLISHABLE_KEY_HEADERS, post_card

pytestmark = pytest.mark.integration

# Stripe's test cards (docs.stripe.com/testing): 4000000000000341 attaches, then every charge is declined;
# 4000000000009987 is declined lost_card (a hard decline: the pledge lapses at once).
FAILING_CARD = "pm_card_chargeCustomerFail"
LOST_CARD = "pm_card_chargeDeclinedLostCard"
MASTERCARD = "5555555555554444"
# Needs 3-D Secure when set up; once set up, charged off-session without it ("Authentication and setup").
AUTHENTICATE_ON_SETUP = "4000002500003155"
ATTEMPT = "a" * 16


def _on_card(world, pledge: Pledge, test_card: str) -> Pledge:
    """The same pledge, now paying with one of Stripe's test cards attached to its Customer."""
    account = stripe.StripeClient("sk_test_local_emulator", base_addresses={"api": world.stripe.url})
    method = account.v1.payment_methods.attach(test_card, params={"customer": pledge.customer_id})
    world.wiring.pledges.table.update_item(
        Key={"pledge_id": pledge.pledge_id},
        UpdateExpression="SET payment_method_id = :m",
        ExpressionAttributeValues={":m": method.id},
    )
    return _pledge_now(world, pledge.pledge_id)


def _call(world, path: str, body: dict[str, str]):
    return world.pipeline.call_api("POST", path, body=json.dumps(body), headers={"Content-Type": "application/json"})


def _manage_token(world, pledge: Pledge) -> str:
    return world.wiring.pledge_links.manage_url(pledge.pledge_id).split("#token=", 1)[1]


def _confirm_card_setup(world, client_secret: str, number: str) -> dict[str, Any]:
    """What the page's Stripe.js does: a PaymentMethod from the card, then confirmCardSetup with the secret."""
    method = post_card(world.stripe.url, number).json()["id"]
    seti = client_secret.split("_secret_")[0]
    answer = requests.post(
        f"{world.stripe.url}/v1/setup_intents/{seti}/confirm",
        data={"payment_method": method, "client_secret": client_secret},
        headers=PUBLISHABLE_KEY_HEADERS,
        timeout=5,
    )
    return dict(answer.json())


def _update_card(world, pledge: Pledge, number: str, *, authenticate: bool = False) -> Any:
    """The manage page's card update: start, confirm in the browser, then the page's return."""
    token = _manage_token(world, pledge)
    started = _call(world, f"/pledges/{pledge.pledge_id}/card", {"token": token, "attempt": ATTEMPT})
    assert started.status == 200, started.body
    confirmed = _confirm_card_setup(world, started.body["client_secret"], number)
    if authenticate:
        assert confirmed["status"] == "requires_action"
        StripeControl(world.stripe.url).authenticate(started.body["setup_intent_id"], "succeed")
    return _call(
        world,
        f"/pledges/{pledge.pledge_id}/card/complete",
        {"token": token, "setup_intent_id": started.body["setup_intent_id"]},
    )


def _charged_last4(world, donation_id: str) -> str | None:
    return world.record(donation_id).card_last4


def test_a_card_updated_during_dunning_is_charged_on_the_next_try(world):
    # Given a pledge whose renewal was declined on the charge day, with a retry due on day 3
    pledge = _on_card(world, _pledge(world, "card-dunning"), FAILING_CARD)
    _schedule(world, "2027-01-10")
    world.drain()
    failing = _pledge_now(world, pledge.pledge_id)
    assert (failing.state, failing.retry_on, failing.renewal_try) == (PledgeState.ACTIVE, "2027-01-13", 2)

    # When the donor gives a new card through the manage link
    answer = _update_card(world, failing, MASTERCARD)

    # Then the page shows it, and the pledge keeps its retry, now on the new card
    assert answer.status == 200, answer.body
    assert (answer.body["card_last4"], answer.body["card_brand"], answer.body["state"]) == (
        "4444",
        "mastercard",
        "active",
    )
    updated = _pledge_now(world, pledge.pledge_id)
    assert (updated.retry_on, updated.renewal_try, updated.state) == ("2027-01-13", 2, PledgeState.ACTIVE)
    assert updated.payment_method_id != failing.payment_method_id and (updated.card_setup_id or "").startswith("seti_")
    assert "_secret_" not in json.dumps(updated.model_dump()) and "client_secret" not in answer.body

    # And the retry charges the new card, once, and the pledge moves to the next period
    _schedule(world, "2027-01-13")
    world.drain()
    retry = world.record(renewal_donation_id(pledge.pledge_id, "2027-01", 2))
    assert (retry.status, retry.card_last4) == (DonationStatus.SUCCEEDED, "4444")
    after = _pledge_now(world, pledge.pledge_id)
    assert (after.next_charge_on, after.renewal_try, after.renewals) == ("2027-02-10", 1, 1)


def test_a_lapsed_pledge_starts_again_on_a_card_set_up_with_3d_secure(world):
    # Given a pledge that lapsed on a hard decline
    pledge = _on_card(world, _pledge(world, "card-lapsed"), LOST_CARD)
    _schedule(world, "2027-01-10")
    world.drain()
    lapsed = _pledge_now(world, pledge.pledge_id)
    assert lapsed.state is PledgeState.LAPSED

    # When the donor sets up a card that needs 3-D Secure, and passes the bank's check in the page
    answer = _update_card(world, lapsed, AUTHENTICATE_ON_SETUP, authenticate=True)

    # Then the pledge is active again from its next charge day (never the period that failed)
    assert answer.status == 200, answer.body
    restarted = _pledge_now(world, pledge.pledge_id)
    expected = resume_on(lapsed, datetime.now(UTC).date())
    assert (restarted.state, restarted.next_charge_on, restarted.due_on) == (PledgeState.ACTIVE, expected, expected)
    assert restarted.attention is None and restarted.card_last4 == "3155"

    # And its renewal is charged off-session on the new card without asking the donor again
    _schedule(world, expected)
    world.drain()
    renewal = world.record(renewal_donation_id(pledge.pledge_id, expected[:7]))
    assert (renewal.status, renewal.card_last4) == (DonationStatus.SUCCEEDED, "3155")


def test_a_pledge_waiting_for_the_donor_s_authentication_charges_a_new_card_next_month(world):
    # Given a pledge whose renewal waits for the donor to authenticate it (active, on to next month, marked waiting)
    pledge = _pledge_needing_authentication(world)
    _renew(world, pledge)
    waiting = _pledge_now(world, pledge.pledge_id)
    assert (waiting.state, waiting.awaiting_period) == (PledgeState.ACTIVE, pledge.period)

    # When the donor gives a new card instead
    assert _update_card(world, waiting, MASTERCARD).status == 200

    # Then next month charges it, on the day already due; the waiting period is not charged again by the schedule,
    # and its own link still finishes it (it stays marked waiting until then)
    active = _pledge_now(world, pledge.pledge_id)
    assert (active.state, active.due_on, active.card_last4) == (PledgeState.ACTIVE, waiting.due_on, "4444")
    assert active.awaiting_donor == waiting.awaiting_donor and (waiting.due_on or "")[:7] != waiting.awaiting_period
    _schedule(world, waiting.due_on or "")
    world.drain()
    next_month = world.record(renewal_donation_id(pledge.pledge_id, (waiting.due_on or "")[:7]))
    assert (next_month.status, next_month.card_last4) == (DonationStatus.SUCCEEDED, "4444")


def test_stripe_s_webhook_records_the_card_when_the_page_never_reported_back(world):
    # Given a donor who saved a new card and closed the page before its return
    pledge = _pledge(world, "card-webhook")
    token = _manage_token(world, pledge)
    started = _call(world, f"/pledges/{pledge.pledge_id}/card", {"token": token, "attempt": ATTEMPT})
    assert _confirm_card_setup(world, started.body["client_secret"], MASTERCARD)["status"] == "succeeded"
    seti = started.body["setup_intent_id"]

    # When Stripe's setup_intent.succeeded arrives
    event = world.stripe_event("setup_intent.succeeded", seti)
    assert world.deliver_stripe_event(event).status == 200

    # Then the pledge charges the new card (its brand and last 4 unknown to the webhook, which has no key)
    recorded = _pledge_now(world, pledge.pledge_id)
    assert (recorded.card_setup_id, recorded.card_last4) == (seti, None)
    assert recorded.payment_method_id == event["data"]["object"]["payment_method"]

    # And a late page return adds them, once; a redelivered event changes nothing
    done = _call(world, f"/pledges/{pledge.pledge_id}/card/complete", {"token": token, "setup_intent_id": seti})
    assert done.status == 200 and done.body["card_last4"] == "4444"
    settled = _pledge_now(world, pledge.pledge_id)
    assert world.deliver_stripe_event(event).status == 200
    assert _pledge_now(world, pledge.pledge_id) == settled


def test_stripe_s_webhook_alone_restarts_a_lapsed_pledge_on_the_new_card(world):
    # Given a lapsed pledge whose donor saved a new card and closed the page before it reported back
    pledge = _on_card(world, _pledge(world, "card-webhook-lapsed"), LOST_CARD)
    _schedule(world, "2027-01-10")
    world.drain()
    lapsed = _pledge_now(world, pledge.pledge_id)
    started = _call(
        world, f"/pledges/{pledge.pledge_id}/card", {"token": _manage_token(world, lapsed), "attempt": ATTEMPT}
    )
    assert _confirm_card_setup(world, started.body["client_secret"], MASTERCARD)["status"] == "succeeded"

    # When only Stripe's setup_intent.succeeded reports it (the webhook's role may name what it writes)
    event = world.stripe_event("setup_intent.succeeded", started.body["setup_intent_id"])
    assert world.deliver_stripe_event(event).status == 200

    # Then the pledge is active again on the new card from its next charge day, and that renewal charges it
    restarted = _pledge_now(world, pledge.pledge_id)
    expected = resume_on(lapsed, datetime.now(UTC).date())
    assert (restarted.state, restarted.due_on) == (PledgeState.ACTIVE, expected)
    _schedule(world, expected)
    world.drain()
    renewal = world.record(renewal_donation_id(pledge.pledge_id, expected[:7]))
    assert (renewal.status, renewal.card_last4) == (DonationStatus.SUCCEEDED, "4444")


def _forged(token: str) -> str:
    version, payload, signature = token.split(".")
    return f"{version}.{payload}.{'A' if signature[0] != 'A' else 'B'}{signature[1:]}"


def test_hostile_card_updates_get_a_4xx_and_change_nothing(world):
    # Given two donors' pledges, and a card set up for the other donor's pledge
    mine = _pledge(world, "card-mine")
    other = _pledge(world, "card-other")
    theirs = _call(
        world, f"/pledges/{other.pledge_id}/card", {"token": _manage_token(world, other), "attempt": ATTEMPT}
    )
    _confirm_card_setup(world, theirs.body["client_secret"], MASTERCARD)
    token = _manage_token(world, mine)
    expired = PledgeLinks(lambda: Pipeline.pledge_link_key, "https://x/", clock=lambda: 0.0).manage_url(mine.pledge_id)
    before = _pledge_now(world, mine.pledge_id)
    setups_before = len(world.stripe.state().get("setup_intents", []))
    start = f"/pledges/{mine.pledge_id}/card"

    # When each hostile request is made
    answers = {
        "forged link": _call(world, start, {"token": _forged(token), "attempt": ATTEMPT}),
        "expired link": _call(world, start, {"token": expired.split("#token=")[1], "attempt": ATTEMPT}),
        "another pledge's link": _call(world, start, {"token": _manage_token(world, other), "attempt": ATTEMPT}),
        "guessed pledge id": _call(
            world, "/pledges/pl_000000000000000000000000/card", {"token": token, "attempt": ATTEMPT}
        ),
        "another donor's SetupIntent": _call(
            world, f"{start}/complete", {"token": token, "setup_intent_id": theirs.body["setup_intent_id"]}
        ),
        "a made-up SetupIntent": _call(world, f"{start}/complete", {"token": token, "setup_intent_id": "seti_123"}),
        "a malformed attempt": _call(world, start, {"token": token, "attempt": "x"}),
    }

    # Then each gets its clear 4xx, and neither the pledge nor Stripe changed
    assert {name: (a.status, a.body["error"]["code"]) for name, a in answers.items()} == {
        "forged link": (403, "link_invalid"),
        "expired link": (403, "link_expired"),
        "another pledge's link": (403, "link_invalid"),
        "guessed pledge id": (403, "link_invalid"),
        "another donor's SetupIntent": (403, "link_invalid"),
        "a made-up SetupIntent": (403, "link_invalid"),
        "a malformed attempt": (400, "invalid_attempt"),
    }
    assert _pledge_now(world, mine.pledge_id) == before
    assert len(world.stripe.state().get("setup_intents", [])) == setups_before


def test_a_card_the_bank_did_not_confirm_or_for_a_canceled_pledge_is_not_saved(world):
    # Given a pledge, and a card update whose 3-D Secure the donor has not passed
    pledge = _pledge(world, "card-unconfirmed")
    token = _manage_token(world, pledge)
    started = _call(world, f"/pledges/{pledge.pledge_id}/card", {"token": token, "attempt": ATTEMPT})
    _confirm_card_setup(world, started.body["client_secret"], AUTHENTICATE_ON_SETUP)
    before = _pledge_now(world, pledge.pledge_id)

    # When the page reports back anyway, the answer is 409 card_not_saved and the pledge keeps its card
    done = {"token": token, "setup_intent_id": started.body["setup_intent_id"]}
    unconfirmed = _call(world, f"/pledges/{pledge.pledge_id}/card/complete", done)
    assert (unconfirmed.status, unconfirmed.body["error"]["code"]) == (409, "card_not_saved")
    assert _pledge_now(world, pledge.pledge_id) == before

    # And once the pledge is canceled, no card update starts or completes
    StripeControl(world.stripe.url).authenticate(started.body["setup_intent_id"], "succeed")
    canceled = world.wiring.pledges.cancel(pledge.pledge_id, by="donor")
    refused = [
        _call(world, f"/pledges/{pledge.pledge_id}/card", {"token": token, "attempt": "b" * 16}),
        _call(world, f"/pledges/{pledge.pledge_id}/card/complete", done),
    ]
    assert [(a.status, a.body["error"]["code"]) for a in refused] == [(409, "card_not_saved")] * 2
    assert _pledge_now(world, pledge.pledge_id) == canceled
