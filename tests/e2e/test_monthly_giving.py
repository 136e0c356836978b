"""Monthly giving on the shared local stack, a month in seconds: the renewal schedule run as EventBridge
would at a given time (POST /_local/pledges/run-schedule), the renewals charged by the renew function's
poller against the Stripe emulator, receipts in the SendGrid emulator's outbox."""

from __future__ import annotations

from datetime import date
from typing import Any

import boto3
import pytest
import requests
import stripe

from donations.pledges import Pledge, PledgeState, first_charge_on, pledge_id_for, renewal_donation_id
from donations_ops.stack_resources import discover
from simulator.local.process import RunningStack
from tests.e2e.conftest import donate, run_ops, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _tables(stack: RunningStack) -> dict[str, Any]:
    """The stack's tables by logical id, as boto3 Table resources on its moto."""
    session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")
    tables = discover(lambda service: session.client(service, endpoint_url=stack.moto), stack.stack_name).tables
    dynamodb = session.resource("dynamodb", endpoint_url=stack.moto)
    return {logical_id: dynamodb.Table(name) for logical_id, name in tables.items()}


def _pledge(stack: RunningStack, key: str, day: int, made_on: date, card: str | None = None) -> Pledge:
    """A donor gives monthly through the front (the API's monthly option, on the chosen day), and the tokenize
    step makes the pledge on the saved card. Each test then moves its pledge into a year of its own
    (``made_on``): a schedule run looks 35 days back, so another test's runs on the shared stack, in other
    years, never renew this test's pledges (today's date would put every test's pledge in the same month)."""
    answer = donate(stack.api, key, monthly=True, day_of_month=day)
    assert answer.status_code == 201, answer.text
    donation_id = answer.json()["donation_id"]
    pledges = _tables(stack)["PledgesTable"]

    def made() -> dict[str, Any] | None:
        return pledges.get_item(Key={"pledge_id": pledge_id_for(donation_id)}, ConsistentRead=True).get("Item")

    pledge = Pledge.model_validate(wait_for(made, timeout=60, what="the pledge made by the tokenize step"))
    assert (pledge.state, pledge.amount, pledge.day_of_month) == (PledgeState.ACTIVE, 2500, day)
    assert pledge.first_donation_id == donation_id and pledge.payment_method_id
    first_on = first_charge_on(day, made_on).isoformat()
    changes: dict[str, Any] = {"next_charge_on": first_on, "due_on": first_on}
    if card is not None:
        # The Customer's card changed to one of Stripe's test cards (the account's key, as the Dashboard)
        account = stripe.StripeClient("sk_test_local_emulator", base_addresses={"api": stack.stripe})
        changes["payment_method_id"] = account.v1.payment_methods.attach(
            card, params={"customer": pledge.customer_id}
        ).id
    pledges.update_item(
        Key={"pledge_id": pledge.pledge_id},
        UpdateExpression="SET " + ", ".join(f"{name} = :{name}" for name in changes),
        ExpressionAttributeValues={f":{name}": value for name, value in changes.items()},
    )
    return pledge.model_copy(update=changes)


def _run_schedule(stack: RunningStack, at: str) -> dict[str, Any]:
    answer = requests.post(f"{stack.api}/_local/pledges/run-schedule", json={"at": at}, timeout=30)
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


def _pledge_now(stack: RunningStack, pledge_id: str) -> Pledge:
    item = _tables(stack)["PledgesTable"].get_item(Key={"pledge_id": pledge_id}, ConsistentRead=True)["Item"]
    return Pledge.model_validate(item)


def _receipts_for(stack: RunningStack, donation_id: str) -> list[dict[str, Any]]:
    emails = requests.get(f"{stack.api}/_local/outbox", timeout=10).json()["emails"]
    return [e for e in emails if donation_id in str(e)]


def test_a_pledge_renews_three_months_running_with_three_receipts(local_stack):
    # Given a monthly pledge on a saved card, due on the 7th
    pledge = _pledge(local_stack, "e2e-monthly-three", 7, date(2030, 12, 5))

    for period in ("2031-01", "2031-02", "2031-03"):
        # When the schedule's clock reaches the due day
        assert _run_schedule(local_stack, f"{period}-07T06:00:00Z")["renewals_scheduled"] >= 1

        # Then the renew function charges the period off-session and its receipt reaches the outbox
        donation_id = renewal_donation_id(pledge.pledge_id, period)
        wait_for(lambda d=donation_id: _receipts_for(local_stack, d), timeout=60, what=f"the {period} receipt")
        status = requests.get(f"{local_stack.api}/donations/{donation_id}", timeout=10).json()
        assert status["status"] == "succeeded"

    # And a run asked for without a time, or with one that has no zone, is refused and runs nothing
    for body in ({}, {"at": "2031-04-07T06:00:00"}, {"at": "next tuesday"}):
        refused = requests.post(f"{local_stack.api}/_local/pledges/run-schedule", json=body, timeout=30)
        assert refused.status_code == 400 and "time" in refused.json()["message"]

    # And the pledge moved on three times, one receipt per period
    after = _pledge_now(local_stack, pledge.pledge_id)
    assert (after.state, after.renewals, after.next_charge_on) == (PledgeState.ACTIVE, 3, "2031-04-07")
    for period in ("2031-01", "2031-02", "2031-03"):
        assert len(_receipts_for(local_stack, renewal_donation_id(pledge.pledge_id, period))) == 1


def test_a_failing_card_goes_through_dunning_and_lapses(local_stack):
    # Given a pledge due on the 9th on Stripe's test card whose every charge is declined (4000000000000341)
    pledge = _pledge(local_stack, "e2e-monthly-dunning", 9, date(2031, 12, 5), card="pm_card_chargeCustomerFail")

    # When the schedule's clock reaches the due day, then each retry's day
    for day, tries_failed in (("2032-01-09", 1), ("2032-01-12", 2), ("2032-01-16", 3)):
        _run_schedule(local_stack, f"{day}T06:00:00Z")
        wait_for(
            lambda key=f"2032-01#{tries_failed}": _pledge_now(local_stack, pledge.pledge_id).dunning_notice_key == key,
            timeout=60,
            what=f"try {tries_failed} recorded",
        )

    # Then the pledge lapsed after its third try, with its reason, and operators see it
    lapsed = wait_for(
        lambda: (p := _pledge_now(local_stack, pledge.pledge_id)).state is PledgeState.LAPSED and p,
        timeout=60,
        what="the pledge lapsed",
    )
    assert lapsed.last_failure is not None and "try 3 of 3 declined" in lapsed.last_failure
    listed = run_ops(local_stack, "pledges", "list", "--state", "lapsed")
    assert listed.returncode == 0, listed.stderr
    assert pledge.pledge_id in listed.stdout
    # And no try was charged, none twice: three declined donations, no receipt
    for renewal_try in (1, 2, 3):
        donation_id = renewal_donation_id(pledge.pledge_id, "2032-01", renewal_try)
        status = requests.get(f"{local_stack.api}/donations/{donation_id}", timeout=10).json()
        assert status["status"] == "declined"
        assert _receipts_for(local_stack, donation_id) == []
