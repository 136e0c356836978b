"""A donor's data on request, as an operator runs it: ``donations-ops donor export`` and ``donor erase`` against
the stack in moto, for a donor who gave, pledged monthly, was renewed and was sent a year-end statement."""

from __future__ import annotations

import io
import json
from datetime import UTC, date, datetime
from typing import Any

import pytest

from donations.models import DonationStatus
from donations.pledges import Pledge, PledgeState, pledge_from_donation, renewal_donation_id
from donations.redaction import mask_email
from donations_ops.cli import main
from simulator.local.events import scheduled_event
from tests.support.keys import a_key
from tests.support.world import DONATION

pytestmark = pytest.mark.integration

ADA = {**DONATION, "email": "ada@example.org", "name": "Ada Lovelace", "save_card": True}
GRACE = {**DONATION, "email": "grace@example.org", "name": "Grace Hopper", "save_card": False}


def ops(pipeline: Any, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["--stack-name", pipeline.stack.stack_name, *args], clients=pipeline.clients)
    out, err = capsys.readouterr()
    return code, out + err


def schedule_renewals(world: Any, day: str) -> dict[str, Any]:
    at = datetime.fromisoformat(f"{day}T06:00:00+00:00").astimezone(UTC)
    event = scheduled_event("arn:aws:events:us-east-1:123456789012:rule/renewals", at=at)
    result: dict[str, Any] = world.pipeline.invoke("ScheduleRenewalsFunction", event)
    return result


def a_donor_with_a_pledge(world: Any, pipeline: Any, capsys: pytest.CaptureFixture[str]) -> tuple[Pledge, list[str]]:
    """Ada gives with save_card, pledges monthly, is renewed (the January period, charged today) and sent her
    statement for this year; Grace gives once."""
    answer = world.post(ADA, key=a_key("ada"))
    assert answer.status == 201, answer.body
    assert world.post(GRACE, key=a_key("grace")).status == 201
    world.drain()
    first = world.record(answer.body["donation_id"])
    pledge = world.wiring.pledges.create(pledge_from_donation(first, 10, date(2026, 12, 5)))
    assert schedule_renewals(world, "2027-01-10") == {"renewals_scheduled": 1}
    world.drain()
    renewal = renewal_donation_id(pledge.pledge_id, "2027-01")
    assert world.record(renewal).status is DonationStatus.SUCCEEDED
    year = first.created_at[:4]  # the renewal is charged today too: both gifts are this year's
    code, out = ops(pipeline, capsys, "statements", "send", "--year", year, "--email", ADA["email"], "--yes")
    assert code == 0, out
    world.drain()
    return pledge, [first.donation_id, renewal]


def every_item(world: Any) -> dict[str, str]:
    """Each table of the stack, its items as text (a test may scan: the product never does)."""
    client = world.pipeline.clients("dynamodb")
    found = {}
    for logical_id, name in world.pipeline.stack.tables.items():
        items = [i for page in client.get_paginator("scan").paginate(TableName=name) for i in page["Items"]]
        found[logical_id] = json.dumps(items)
    return found


def test_export_shows_everything_held_about_a_donor_with_a_pledge(world, pipeline, capsys):
    # Given Ada, who gave, pledged, was renewed and was sent her 2026 statement
    pledge, donation_ids = a_donor_with_a_pledge(world, pipeline, capsys)

    # When an operator exports her data
    code, out = ops(pipeline, capsys, "donor", "export", "--email", ADA["email"], "--yes")

    # Then the JSON holds her donations, her pledge and the statement sent, and nothing of Grace's
    assert code == 0, out
    exported = json.loads(out)
    assert sorted(d["donation_id"] for d in exported["donations"]) == sorted(donation_ids)
    assert {d["email"] for d in exported["donations"]} == {ADA["email"]}
    assert [p["pledge_id"] for p in exported["pledges"]] == [pledge.pledge_id]
    [statement] = exported["statements"]
    assert (statement["status"], statement["totals"]) == ("sent", {"usd": 5000})
    assert GRACE["email"] not in out


def test_export_asks_first_and_exports_nothing_without_a_yes(world, pipeline, capsys, monkeypatch):
    # Given a donor, and an operator who answers "n"
    assert world.post(ADA, key=a_key("ada-ask")).status == 201
    world.drain()
    monkeypatch.setattr("sys.stdin", io.StringIO("n\n"))

    # When they run export without --yes
    code, out = ops(pipeline, capsys, "donor", "export", "--email", ADA["email"])

    # Then nothing is exported
    assert code == 1 and "Nothing exported." in out and ADA["email"] not in out


def test_erase_cancels_the_pledge_and_removes_every_trace_of_the_address_but_keeps_the_books(
    world, pipeline, capsys, monkeypatch
):
    # Given Ada with a pledge, a renewal and a statement; Grace, who also gave
    pledge, donation_ids = a_donor_with_a_pledge(world, pipeline, capsys)
    before = {i: world.record(i) for i in donation_ids}

    # When an operator declines at the prompt, nothing changes
    monkeypatch.setattr("sys.stdin", io.StringIO("no\n"))
    code, out = ops(pipeline, capsys, "donor", "erase", "--email", ADA["email"])
    assert code == 1 and "Nothing erased." in out
    assert world.record(donation_ids[0]).email == ADA["email"]

    # When they confirm
    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))
    code, out = ops(pipeline, capsys, "donor", "erase", "--email", ADA["email"], "--wait", "0")

    # Then the pledge was canceled and the rest erased, and the operator saw only the masked address
    assert code == 0, out
    assert "1 pledge(s) canceled, 1 pledge(s) and 2 donation(s) erased" in out and "1 statement marker(s)" in out
    assert ADA["email"] not in out and mask_email(ADA["email"]) in out
    after = world.wiring.pledges.get(pledge.pledge_id)
    assert after is not None and after.state is PledgeState.CANCELED and after.due_on is None
    # ... so the next month's schedule charges nobody
    assert schedule_renewals(world, "2027-02-10") == {"renewals_scheduled": 0}
    # ... no item of any table holds her address or name (the masked address neither, in our own tables)
    for table, items in every_item(world).items():
        assert ADA["email"] not in items and ADA["name"] not in items, table
        if table != "VelocityTable":  # card-testing counters: a masked label, expiring within a day
            assert mask_email(ADA["email"]) not in items, table
    # ... while the money records stay: amounts, dates, Stripe's ids
    for donation_id, was in before.items():
        now = world.record(donation_id)
        kept = ("amount", "currency", "status", "created_at", "payment_intent_id", "customer_id", "charged_at")
        assert {f: getattr(now, f) for f in kept} == {f: getattr(was, f) for f in kept}
        assert (now.email, now.name, now.donor_key, now.card_last4) == ("", "", None, None)
        assert now.erased_at is not None
    # ... and Grace's donation is untouched
    code, out = ops(pipeline, capsys, "donor", "find", "--email", GRACE["email"], "--json")
    assert code == 0 and len(json.loads(out)["donations"]) == 1

    # When the erasure is run again
    code, out = ops(pipeline, capsys, "donor", "erase", "--email", ADA["email"], "--yes", "--wait", "0")

    # Then it finds nothing left to erase, and an export is empty
    assert code == 0 and "0 pledge(s) canceled, 0 pledge(s) and 0 donation(s) erased" in out
    code, out = ops(pipeline, capsys, "donor", "export", "--email", ADA["email"], "--yes")
    assert json.loads(out)["donations"] == [] and json.loads(out)["pledges"] == []


def test_erase_refuses_a_donor_whose_receipt_is_still_owed(world, pipeline, capsys):
    # Given a charged donation whose receipt has not been sent yet (its message still queued)
    answer = world.post({**ADA, "save_card": False}, key=a_key("ada-owed"))
    assert answer.status == 201

    # When an operator erases the donor
    code, out = ops(pipeline, capsys, "donor", "erase", "--email", ADA["email"], "--yes")

    # Then it is refused, saying why, and the record is unchanged
    assert code == 2 and "still in flight" in out
    assert world.record(answer.body["donation_id"]).email == ADA["email"]


def test_erase_deletes_the_donors_stripe_customer_through_the_tokenize_function_once(
    world, pipeline, capsys, monkeypatch
):
    # Given Ada with a pledge on a saved card: a Stripe Customer (created by the tokenize function)
    _, donation_ids = a_donor_with_a_pledge(world, pipeline, capsys)
    customer = world.record(donation_ids[0]).customer_id
    assert customer and customer in {c["id"] for c in world.stripe.customers}

    # When an operator erases her without waiting
    code, out = ops(pipeline, capsys, "donor", "erase", "--email", ADA["email"], "--yes", "--wait", "0")

    # Then the deletion is reported pending (the operator tool holds no Stripe key), the Customer still there
    assert code == 0 and f"Stripe Customer {customer}: deletion pending" in out, out
    assert customer in {c["id"] for c in world.stripe.customers}

    # When the tokenize function takes its message, and SQS delivers it a second time
    world.drain()
    world.redeliver_last_batches()

    # Then Stripe deleted the Customer (DELETE /v1/customers/{id}), once, and nothing was parked
    assert customer not in {c["id"] for c in world.stripe.customers}
    deleted = [e for e in world.stripe.events if e["type"] == "customer.deleted"]
    assert [e["data"]["object"]["id"] for e in deleted] == [customer]
    assert world.queued("tokenize_dlq") == [] and not world.retrying("tokenize")
    # ... and each donation naming it says when, keeping the Customer's id for the books
    naming = [world.record(i) for i in donation_ids if world.record(i).customer_id == customer]
    assert naming and all(d.customer_deleted_at for d in naming)
    # ... which the operator sees on the donation
    code, out = ops(pipeline, capsys, "donor", "show", naming[0].donation_id, "--json")
    assert code == 0 and json.loads(out)["card"]["customer_deleted_at"] == naming[0].customer_deleted_at


def test_erase_reports_the_customer_deleted_when_the_function_is_done_in_time(world, pipeline, capsys, monkeypatch):
    # Given Ada with a Stripe Customer, and the pipeline working while the operator waits
    _, donation_ids = a_donor_with_a_pledge(world, pipeline, capsys)
    customer = world.record(donation_ids[0]).customer_id
    monkeypatch.setattr("donations_ops.privacy_cli._pause", lambda _seconds: world.drain())

    # When an operator erases her, waiting for the deletion
    code, out = ops(pipeline, capsys, "donor", "erase", "--email", ADA["email"], "--yes", "--json", "--wait", "30")

    # Then the erase reports the Customer deleted, none pending
    answer = json.loads(out)
    assert code == 0 and answer["stripe_customers_deleted"] == [customer], out
    assert answer["stripe_customers_pending"] == []
    assert customer not in {c["id"] for c in world.stripe.customers}


def test_a_malformed_customer_deletion_is_parked_with_its_reason_and_listed_for_operators(world, pipeline, capsys):
    # Given a deletion message naming something that is not a Customer id
    world.send_raw("tokenize", json.dumps({"schema_version": 1, "type": "delete_customer", "customer_id": "pm_x"}))

    # When it is delivered
    world.drain()

    # Then it is parked at once in the tokenize DLQ, saying why, and Stripe was not asked anything
    [parked] = world.queued("tokenize_dlq")
    attributes = {k: v["StringValue"] for k, v in parked["MessageAttributes"].items()}
    assert attributes["failed_step"] == "delete_customer"
    assert attributes["failure_reason"] == "delete_customer:malformed_message:ValidationError"
    # ... and the operator's listing counts it, and peeking shows it with its reason
    code, out = ops(pipeline, capsys, "dlq", "list", "tokenize")
    assert code == 0 and "1 DLQ message(s) have no parked donation" in out, out
    code, out = ops(pipeline, capsys, "dlq", "peek", "tokenize")
    assert code == 0 and "delete_customer:malformed_message" in out, out


def test_a_customer_deletion_parked_while_stripe_was_down_is_redriven_by_the_operator(world, pipeline, capsys):
    # Given Ada erased while Stripe answers every Customer deletion with a 500 (an outage)
    _, donation_ids = a_donor_with_a_pledge(world, pipeline, capsys)
    customer = world.record(donation_ids[0]).customer_id
    outage = world.stripe.faults.add("http_error", status=500, method="DELETE", path_prefix="/v1/customers/")
    code, out = ops(pipeline, capsys, "donor", "erase", "--email", ADA["email"], "--yes", "--wait", "0")
    assert code == 0, out

    # When its retries run out, it is parked in the tokenize DLQ (the Customer still at Stripe)
    world.deliver_until_dead_lettered("tokenize")
    assert len(world.queued("tokenize_dlq")) == 1
    assert customer in {c["id"] for c in world.stripe.customers}

    # When Stripe is back and the operator redrives the tokenize DLQ
    world.stripe.faults.remove(outage)
    code, out = ops(pipeline, capsys, "redrive", "tokenize")
    assert code == 0, out
    world.drain()

    # Then the Customer is deleted once, and nothing is left parked or retrying
    assert customer not in {c["id"] for c in world.stripe.customers}
    assert [e["data"]["object"]["id"] for e in world.stripe.events if e["type"] == "customer.deleted"] == [customer]
    assert world.queued("tokenize_dlq") == [] and not world.retrying("tokenize")
