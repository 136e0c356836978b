"""A renewal the bank wants the donor to authenticate: the donor is emailed, once, a signed link to a page
that finishes that very PaymentIntent on-session (its client_secret fetched through the link, never
emailed), and the period is then recorded paid, with its receipt, and the pledge moves on."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest
import stripe

from donations.models import DonationStatus, StepStatus
from donations.pledges import Pledge, PledgeState, pledge_id_for, renewal_donation_id
from simulator.local.events import scheduled_event
from tests.support.keys import a_key
from tests.support.world import DONATION

pytestmark = pytest.mark.integration

MONTHLY = {**{k: v for k, v in DONATION.items() if k != "save_card"}, "monthly": True, "day_of_month": 10}


def _pledge_needing_authentication(world) -> Pledge:
    """A monthly pledge whose saved card is then Stripe's 4000002760003184 (authentication on every payment)."""
    answer = world.post(MONTHLY, key=a_key("authenticate"))
    world.drain()
    pledge = world.wiring.pledges.get(pledge_id_for(answer.body["donation_id"]))
    assert pledge is not None
    # The account's own key, as the Dashboard would: the functions' restricted keys may not attach.
    account = stripe.StripeClient("sk_test_local_emulator", base_addresses={"api": world.stripe.url})
    method = account.v1.payment_methods.attach(
        "pm_card_authenticationRequired", params={"customer": pledge.customer_id}
    )
    world.wiring.pledges.table.update_item(
        Key={"pledge_id": pledge.pledge_id},
        UpdateExpression="SET payment_method_id = :m",
        ExpressionAttributeValues={":m": method.id},
    )
    return world.wiring.pledges.get(pledge.pledge_id)


def _renew(world, pledge: Pledge) -> None:
    at = datetime.fromisoformat(f"{pledge.next_charge_on}T06:00:00+00:00").astimezone(UTC)
    world.pipeline.invoke(
        "ScheduleRenewalsFunction", scheduled_event("arn:aws:events:us-east-1:123456789012:rule/renewals", at=at)
    )
    world.drain()


def _call(world, path: str, token: str):
    return world.pipeline.call_api(
        "POST", path, body=json.dumps({"token": token}), headers={"Content-Type": "application/json"}
    )


def _emails(world, pledge: Pledge) -> list[dict]:
    return [m for m in world.sendgrid.outbox if m["custom_args"].get("pledge_id") == pledge.pledge_id]


def test_the_donor_authenticates_a_renewal_through_the_emailed_link_and_the_period_is_paid_once(world):
    # Given a pledge whose bank wants every payment authenticated, and its renewal run off-session
    pledge = _pledge_needing_authentication(world)
    _renew(world, pledge)

    # Then nothing is charged: the renewal waits for the donor, and the donor got one email with a link
    renewal = world.record(renewal_donation_id(pledge.pledge_id, pledge.period))
    assert renewal.status is DonationStatus.REQUIRES_ACTION and renewal.payment_intent_id
    # ... and the pledge stays active, marked waiting for the donor (operators, the report and the console see it),
    # due next month: that month is a charge of its own, this one the donor finishes (Stripe's "charging saved cards")
    waiting = world.wiring.pledges.get(pledge.pledge_id)
    assert (waiting.state, waiting.awaiting_donor, waiting.attention) == (
        PledgeState.ACTIVE,
        renewal.donation_id,
        "needs_attention",
    )
    assert waiting.due_on == waiting.next_charge_on > pledge.next_charge_on
    [mail] = _emails(world, pledge)
    assert mail["to"] == [DONATION["email"]] and mail["subject"] == "Please confirm your monthly gift"
    text = mail["content"][0]["value"]
    assert "$25.00" in text and "secret" not in text  # the client_secret is never emailed
    [link] = re.findall(r"http\S+#token=(\S+)", text)

    # And Stripe's payment_failed event for it (authentication_required) leaves it waiting for the donor
    failed = world.deliver_stripe_event(world.stripe_event("payment_intent.payment_failed", renewal.payment_intent_id))
    assert failed.status == 200 and failed.body["outcome"] == "awaiting_donor"
    assert world.record(renewal.donation_id).status is DonationStatus.REQUIRES_ACTION

    # And a redelivered renewal or email message sends no second email
    world.redeliver_last_batches()
    assert len(_emails(world, pledge)) == 1

    # When the page the link opens asks to authenticate
    started = _call(world, f"/pledges/{pledge.pledge_id}/authenticate", link)

    # Then it gets that PaymentIntent's client_secret, confirmed on-session and waiting for the bank's challenge
    assert started.status == 200, started.body
    assert started.body["status"] == "requires_action"
    assert started.body["client_secret"].startswith(renewal.payment_intent_id + "_secret_")

    # When the donor passes the challenge (Stripe.js handleNextAction) and the page reports back
    world.stripe.authenticate(renewal.payment_intent_id, "succeed")
    finished = _call(world, f"/pledges/{pledge.pledge_id}/authenticate/complete", link)
    world.drain()

    # Then the period is paid, once, with its receipt, and the pledge is active and on to the next month
    assert finished.status == 200 and finished.body["status"] == "succeeded"
    paid = world.record(renewal.donation_id)
    assert paid.status is DonationStatus.SUCCEEDED and paid.receipt_status is StepStatus.DONE
    assert len(world.sendgrid.outbox_for(renewal.donation_id)) == 1
    after = world.wiring.pledges.get(pledge.pledge_id)
    assert (after.state, after.renewals, after.last_period) == (PledgeState.ACTIVE, 1, pledge.period)
    assert after.due_on == after.next_charge_on == waiting.next_charge_on  # moved on once, when it began waiting
    assert (after.awaiting_donor, after.attention) == (None, None)
    assert finished.body["period"] == pledge.period
    succeeded = [i for i in world.stripe.state()["payment_intents"] if i["id"] == renewal.payment_intent_id]
    assert [i["status"] for i in succeeded] == ["succeeded"]

    # And the page's return again (a reload) changes nothing and sends no second receipt
    again = _call(world, f"/pledges/{pledge.pledge_id}/authenticate/complete", link)
    world.drain()
    assert again.status == 200 and again.body["status"] == "succeeded"
    assert len(world.sendgrid.outbox_for(renewal.donation_id)) == 1
    assert world.wiring.pledges.get(pledge.pledge_id) == after


def test_a_manage_link_cannot_authenticate_and_an_authentication_link_opens_only_its_renewal(world):
    # Given a renewal waiting for the donor
    pledge = _pledge_needing_authentication(world)
    _renew(world, pledge)
    manage = world.wiring.pledge_links.manage_url(pledge.pledge_id).split("#token=")[1]
    other = world.wiring.pledge_links.authenticate_url(pledge.pledge_id, "don_" + "a" * 26).split("#token=")[1]
    before = world.stripe_requests()

    # When the authentication page is opened with a manage link, or a link for another donation
    answers = [_call(world, f"/pledges/{pledge.pledge_id}/authenticate", token) for token in (manage, other)]

    # Then both are refused, and nothing reached Stripe
    assert [(a.status, a.body["error"]["code"]) for a in answers] == [(403, "link_invalid")] * 2
    assert world.stripe_requests() == before


def test_the_reconciler_waits_days_for_the_donor_then_cancels_the_renewal_s_payment(world):
    # Given a renewal waiting for the donor's authentication
    pledge = _pledge_needing_authentication(world)
    _renew(world, pledge)
    renewal = world.record(renewal_donation_id(pledge.pledge_id, pledge.period))
    waiting_since = datetime.fromisoformat(renewal.updated_at.replace("Z", "+00:00"))

    # When the reconciler runs two days later (a 3-D Secure gift in the page would be canceled after a day)
    world.reconcile(now=waiting_since + timedelta(days=2))

    # Then it still waits, and the emailed link still works
    assert world.record(renewal.donation_id).status is DonationStatus.REQUIRES_ACTION

    # When it runs after the link's 5 days
    world.reconcile(now=waiting_since + timedelta(days=5, hours=1))

    # Then the PaymentIntent is canceled, so nothing can take the money any more, and the donation says so
    assert world.record(renewal.donation_id).status is DonationStatus.CANCELED
    [intent] = [i for i in world.stripe.state()["payment_intents"] if i["id"] == renewal.payment_intent_id]
    assert intent["status"] == "canceled"


def test_stripe_s_webhook_moves_the_pledge_on_when_the_donor_closed_the_page_before_it_reported_back(world):
    # Given a renewal the donor authenticated in the page, which closed before reporting back
    pledge = _pledge_needing_authentication(world)
    _renew(world, pledge)
    renewal = world.record(renewal_donation_id(pledge.pledge_id, pledge.period))
    [link] = re.findall(r"http\S+#token=(\S+)", _emails(world, pledge)[0]["content"][0]["value"])
    assert _call(world, f"/pledges/{pledge.pledge_id}/authenticate", link).body["status"] == "requires_action"
    world.stripe.authenticate(renewal.payment_intent_id, "succeed")

    # When Stripe's payment_intent.succeeded arrives
    answer = world.deliver_stripe_event(world.stripe_event("payment_intent.succeeded", renewal.payment_intent_id))
    world.drain()

    # Then the period is paid with its receipt and the pledge is active, on to the next month
    assert answer.status == 200 and answer.body["outcome"] == "succeeded"
    assert world.record(renewal.donation_id).receipt_status is StepStatus.DONE
    after = world.wiring.pledges.get(pledge.pledge_id)
    assert (after.state, after.renewals, after.last_period) == (PledgeState.ACTIVE, 1, pledge.period)
    assert (after.awaiting_donor, after.attention, after.due_on) == (None, None, after.next_charge_on)
    assert after.next_charge_on > pledge.next_charge_on

    # And the page's return later changes nothing more
    assert _call(world, f"/pledges/{pledge.pledge_id}/authenticate/complete", link).body["status"] == "succeeded"
    world.drain()
    assert world.wiring.pledges.get(pledge.pledge_id) == after
    assert len(world.sendgrid.outbox_for(renewal.donation_id)) == 1


def test_a_pledge_written_before_waiting_pledges_stayed_active_is_moved_on_when_the_donor_authenticates(world):
    # Given a renewal waiting for the donor on a pledge as the earlier code left it: needs_attention, off the
    # schedule, still on the waiting period
    pledge = _pledge_needing_authentication(world)
    _renew(world, pledge)
    renewal = world.record(renewal_donation_id(pledge.pledge_id, pledge.period))
    world.wiring.pledges.table.update_item(
        Key={"pledge_id": pledge.pledge_id},
        UpdateExpression="SET #s = :s, next_charge_on = :n REMOVE due_on, awaiting_donor, awaiting_period",
        ExpressionAttributeNames={"#s": "state"},
        ExpressionAttributeValues={":s": "needs_attention", ":n": pledge.next_charge_on},
    )
    [link] = re.findall(r"http\S+#token=(\S+)", _emails(world, pledge)[0]["content"][0]["value"])
    assert _call(world, f"/pledges/{pledge.pledge_id}/authenticate", link).body["status"] == "requires_action"
    world.stripe.authenticate(renewal.payment_intent_id, "succeed")

    # When Stripe's payment_intent.succeeded arrives
    world.deliver_stripe_event(world.stripe_event("payment_intent.succeeded", renewal.payment_intent_id))
    world.drain()

    # Then it is active again and on to the next month, as before
    after = world.wiring.pledges.get(pledge.pledge_id)
    assert (after.state, after.renewals, after.last_period) == (PledgeState.ACTIVE, 1, pledge.period)
    assert after.due_on == after.next_charge_on > pledge.next_charge_on and after.attention is None
