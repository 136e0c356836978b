"""After the gift on the shared local stack, as operators and Stripe would do it: a refund from
``donations-ops refund`` and one from the Stripe emulator's Dashboard, each reaching the donor as a corrected
email in the SendGrid emulator's outbox and the report as net amounts; disputes from Stripe's dispute test
card (4000000000000259, "charge succeeds, only to be disputed as fraudulent", docs.stripe.com/testing) lost on
a monthly gift, whose pledge stops, and won on a one-off gift, with operators paged through the local
notifier; and a monthly donor's data exported, then erased."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
import requests

from donations.models import Donation
from donations.pledges import PledgeState, pledge_id_for
from simulator.emulators.stripe.control import StripeControl
from simulator.local.process import RunningStack
from tests.e2e.conftest import donate, run_ops, wait_for
from tests.e2e.test_monthly_giving import _pledge_now, _tables
from tests.e2e.test_operator_scenarios import page

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ACCOUNT_KEY = "sk_test_local_emulator"  # the emulator account's secret key, as an operator exports theirs


def _gift(stack: RunningStack, key: str, **changes: Any) -> str:
    answer = donate(stack.api, key, **changes)
    assert answer.status_code == 201, answer.text
    donation_id = str(answer.json()["donation_id"])
    wait_for(lambda: _mails(stack, donation_id), timeout=60, what=f"the receipt of {donation_id}")
    return donation_id


def _record(stack: RunningStack, donation_id: str) -> Donation:
    item = _tables(stack)["DonationsTable"].get_item(Key={"donation_id": donation_id}, ConsistentRead=True)["Item"]
    return Donation.model_validate(item)


def _mails(stack: RunningStack, donation_id: str) -> list[str]:
    """The subjects of the donation's mails as SendGrid's emulator rendered them, oldest first."""
    emails = requests.get(f"{stack.api}/_local/outbox", timeout=10).json()["emails"]
    mine = [m for m in reversed(emails) if m["custom_args"].get("donation_id") == donation_id]  # listed newest first
    return [str(m["rendered"]["subject"]) for m in mine]


def _ops_json(stack: RunningStack, *args: str) -> Any:
    done = run_ops(stack, *args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _report_rows(stack: RunningStack, *donation_ids: str) -> dict[str, dict[str, str]]:
    rows = _ops_json(stack, "report", "--date", "today")["rows"]
    return {row["donation_id"]: row for row in rows if row["donation_id"] in donation_ids}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def test_refunds_from_the_cli_and_the_dashboard_reach_the_donor_and_the_report(local_stack, monkeypatch):
    # Given two gifts of $25.00, each receipted
    partial = _gift(local_stack, "e2e-refund-cli", save_card=False)
    full = _gift(local_stack, "e2e-refund-dashboard", save_card=False, email="grace@example.org")

    # When an operator refunds $10.00 of one with donations-ops (Stripe's Refunds API on the emulator)
    monkeypatch.setenv("STRIPE_API_KEY", ACCOUNT_KEY)
    done = run_ops(
        local_stack, "refund", partial, "--amount", "10.00", "--yes", "--stripe-api-base", local_stack.stripe
    )
    assert done.returncode == 0, done.stderr
    # and the charity refunds the other in full in the Stripe Dashboard (charge.refunded to the webhook)
    stripe = StripeControl(local_stack.stripe)
    [charge] = [c for c in stripe.state()["charges"] if c["metadata"].get("donation_id") == full]
    stripe.refund(charge["id"])

    # Then each donor gets the right corrected email
    corrected = wait_for(lambda: _mails(local_stack, partial)[1:], timeout=60, what="the corrected receipt")
    notice = wait_for(lambda: _mails(local_stack, full)[1:], timeout=60, what="the refund notice")
    assert corrected == ["Corrected receipt for your donation to Example Charity"]
    assert notice == ["Refund of your donation to Example Charity"]
    # And the report shows what each gift is net of its refund
    rows = _report_rows(local_stack, partial, full)
    assert (rows[partial]["amount_refunded"], rows[partial]["net_amount"]) == ("1000", "1500")
    assert (rows[full]["amount_refunded"], rows[full]["net_amount"]) == ("2500", "0")


def test_disputes_lost_and_won_page_operators_stop_the_pledge_and_the_donor_is_exported_then_erased(local_stack):
    since = _now()
    # Given a monthly gift and a one-off gift, both paid with Stripe's dispute test card: each disputed at once
    monthly = _gift(
        local_stack,
        "e2e-dispute-monthly",
        monthly=True,
        payment_method="pm_card_createDispute",
        email="lin@example.org",
    )
    one_off = _gift(local_stack, "e2e-dispute-one-off", save_card=False, payment_method="pm_card_createDispute")
    stripe = StripeControl(local_stack.stripe)
    disputes = {
        d["payment_intent"]: d["id"] for d in stripe.state()["disputes"] if d["status"] == "needs_response"
    }  # fmt: skip

    # Then operators are paged through the notifier, and the monthly donor's pledge is stopped
    opened = wait_for(lambda: page(local_stack, "dispute", "ALARM", since), timeout=90, what="the dispute page")
    assert opened["message"]["Notifier"]["first_command"].endswith(" disputes")
    pledge_id = pledge_id_for(monthly)
    stopped = wait_for(
        lambda: (p := _pledge_now(local_stack, pledge_id)).state is PledgeState.CANCELED and p, what="pledge stopped"
    )
    assert stopped.canceled_reason.startswith("dispute:fraudulent:dp_")
    listed = {row["donation_id"] for row in _ops_json(local_stack, "disputes")["disputes"]}
    assert {monthly, one_off} <= listed

    # When the monthly gift's dispute is lost and the one-off's won
    stripe.close_dispute(disputes[_record(local_stack, monthly).payment_intent_id], "lost")
    stripe.close_dispute(disputes[_record(local_stack, one_off).payment_intent_id], "won")

    # Then the records hold how each ended and the fee, and the report nets the lost one
    lost = wait_for(lambda: (r := _record(local_stack, monthly)).dispute_status == "lost" and r, what="lost")
    won = wait_for(
        lambda: (r := _record(local_stack, one_off)).dispute_balance_transactions == 2 and r, what="won, reinstated"
    )
    assert (lost.net_amount, lost.dispute_fee, won.dispute_status, won.net_amount, won.dispute_fee) == (
        0,
        1500,
        "won",
        2500,
        1500,
    )
    rows = _report_rows(local_stack, monthly, one_off)
    assert (rows[monthly]["net_amount"], rows[one_off]["net_amount"]) == ("0", "2500")
    assert not {monthly, one_off} & {row["donation_id"] for row in _ops_json(local_stack, "disputes")["disputes"]}

    # When the monthly donor asks what is held about them, then to be forgotten
    exported = _ops_json(local_stack, "donor", "export", "--email", "lin@example.org", "--yes")
    erased = run_ops(local_stack, "donor", "erase", "--email", "lin@example.org", "--yes")

    # Then the export held their gift and pledge, and afterwards nothing is held under their address
    assert [d["donation_id"] for d in exported["donations"]] == [monthly]
    assert [p["pledge_id"] for p in exported["pledges"]] == [pledge_id]
    assert erased.returncode == 0, erased.stderr
    again = _ops_json(local_stack, "donor", "export", "--email", "lin@example.org", "--yes")
    assert (again["donations"], again["pledges"]) == ([], [])
    kept = _record(local_stack, monthly)  # the books keep the money, not the person
    assert kept.erased_at is not None and "lin@example.org" not in kept.model_dump_json()
    assert (kept.amount, kept.dispute_status, kept.net_amount) == (2500, "lost", 0)
