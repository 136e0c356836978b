"""donations-ops refund and disputes against the template deployed in moto and the Stripe emulator: a partial
refund from the CLI reaches the record, the donor's corrected receipt and the report, once per request."""

from __future__ import annotations

import json
from typing import Any

import pytest

from donations.models import RefundState
from tests.ops.test_ops_cli import donate, ops

pytestmark = pytest.mark.integration

KEY = "sk_test_refund_cli"


@pytest.fixture
def stripe_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRIPE_API_KEY", KEY)


def refund(world: Any, capsys: Any, donation_id: str, *args: str) -> tuple[int, str, str]:
    return ops(world.pipeline, capsys, "refund", donation_id, "--stripe-api-base", world.stripe.url, *args)


def notices(world: Any, donation_id: str) -> list[dict[str, Any]]:
    return [m["rendered"] for m in world.sendgrid.outbox_for(donation_id)][1:]


def test_a_partial_refund_from_the_cli_reaches_the_donor_once_and_the_report_nets_it(world, capsys, stripe_key):
    # Given a donation of 25.00 USD, charged and receipted
    donation_id = donate(world, "key-cli-refund")
    world.drain()

    # When an operator refunds 10.00 of it
    code, out, err = refund(world, capsys, donation_id, "--amount", "10.00", "--yes", "--note", "donor asked")
    world.drain()

    # Then Stripe made one refund of 1000, the record holds it, and the donor's corrected receipt says so
    assert code == 0, err
    assert f"Refunded 10.00 USD of {donation_id}" in out and "remaining gift 15.00 USD" in out
    [made] = world.stripe.refunds_for(world.record(donation_id).payment_intent_id)
    assert (made["amount"], made["reason"], made["metadata"]["donation_id"]) == (
        1000,
        "requested_by_customer",
        donation_id,
    )
    record = world.record(donation_id)
    assert (record.amount_refunded, record.refund_state, record.net_amount) == (
        1000,
        RefundState.PARTIALLY_REFUNDED,
        1500,
    )
    [notice] = notices(world, donation_id)
    assert notice["subject"].startswith("Corrected receipt")
    assert "We refunded $10.00 of your donation" in notice["text"] and "$15.00 remains your gift" in notice["text"]
    assert [e["action"] for e in record.operator_log] == ["refund_requested", "refund"]

    # When the same command runs again (the operator was not sure it went through), and Stripe's own
    # charge.refunded event for the refund arrives
    code, out, _ = refund(world, capsys, donation_id, "--amount", "10.00", "--yes")
    world.deliver_stripe_event(world.stripe_event("charge.refunded", made["charge"]))
    world.drain()

    # Then nothing more is refunded or sent
    assert code == 0 and "Already refunded 10.00 USD" in out
    assert len(world.stripe.refunds_for(record.payment_intent_id)) == 1
    assert len(notices(world, donation_id)) == 1

    # And the report shows the refund and the net amount
    code, out, _ = ops(world.pipeline, capsys, "report", "--date", "today", "--json")
    report = json.loads(out)
    assert (report["refunded"], report["net"]) == ({"usd": "10.00 USD"}, {"usd": "15.00 USD"})
    code, out, _ = ops(world.pipeline, capsys, "report", "--date", "today")
    assert "net amount (kept)" in out and "15.00 USD" in out


def test_a_refund_whose_answer_was_lost_is_made_once_when_the_command_runs_again(world, capsys, stripe_key):
    # Given a donation, and Stripe's answer to the refund lost on the way back (the refund was made)
    donation_id = donate(world, "key-cli-lost-answer")
    world.drain()
    world.stripe.faults.add("reset", phase="after", times=1, path_prefix="/v1/refunds")

    # When the operator's command fails, and they run it again
    code, out, err = refund(world, capsys, donation_id, "--yes")
    assert code == 2 and "run the same command again" in out + err
    code, out, err = refund(world, capsys, donation_id, "--yes")
    world.drain()

    # Then Stripe replayed the refund it made under the request's key: one refund, one notice
    assert code == 0, err
    assert len(world.stripe.refunds_for(world.record(donation_id).payment_intent_id)) == 1
    record = world.record(donation_id)
    assert (record.amount_refunded, record.refund_state) == (2500, RefundState.REFUNDED)
    [notice] = notices(world, donation_id)
    assert notice["subject"].startswith("Refund of your donation")


def test_a_refund_that_cannot_be_made_is_refused_before_stripe_and_changes_nothing(world, capsys, stripe_key):
    donation_id = donate(world, "key-cli-too-much")
    world.drain()
    before = world.record(donation_id)

    too_much = refund(world, capsys, donation_id, "--amount", "30.00", "--yes")
    not_an_amount = refund(world, capsys, donation_id, "--amount", "ten", "--yes")
    unknown = refund(world, capsys, "don_" + "z" * 26, "--yes")

    assert [r[0] for r in (too_much, not_an_amount, unknown)] == [2, 2, 2]
    assert "only 2500 (minor units) is left to refund" in too_much[1] + too_much[2]
    assert world.stripe.refunds == [] and world.record(donation_id).updated_at == before.updated_at


def test_without_a_terminal_or_yes_nothing_is_refunded(world, capsys, stripe_key, monkeypatch):
    donation_id = donate(world, "key-cli-no-yes")
    world.drain()
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)

    code, out, err = refund(world, capsys, donation_id)

    assert code == 2 and "pass --yes" in out + err
    assert world.stripe.refunds == []


def test_disputes_lists_the_open_ones_nearest_deadline_first(world, capsys):
    # Given two charged donations, one disputed
    disputed = donate(world, "key-cli-disputed")
    donate(world, "key-cli-calm")
    world.drain()
    [intent] = world.stripe.intents_for(disputed)
    dispute = world.stripe.dispute(intent["latest_charge"])
    world.deliver_stripe_event(world.stripe_event("charge.dispute.created", dispute["id"]))

    code, out, _ = ops(world.pipeline, capsys, "disputes", "--json")

    assert code == 0
    [row] = json.loads(out)["disputes"]
    assert (row["donation_id"], row["dispute_id"], row["reason"]) == (disputed, dispute["id"], "fraudulent")
    # A closed dispute leaves the list
    world.stripe.close_dispute(dispute["id"], "won")
    world.deliver_stripe_event(world.stripe_event("charge.dispute.closed", dispute["id"]))
    code, out, _ = ops(world.pipeline, capsys, "disputes", "--json")
    assert json.loads(out)["disputes"] == []
