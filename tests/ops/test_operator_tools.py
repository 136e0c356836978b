"""The operator's tools on a poison message, a donor's call and the fundraising report (donations-ops in process)."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from donations.identifiers import legacy_donor_key
from donations.models import Attention, StepStatus
from tests.ops.test_ops_cli import donate, ops, ops_json, park_bouncing_receipt, park_transient
from tests.support.keys import a_key

pytestmark = pytest.mark.integration


def parked_ids(world: Any) -> list[str]:
    return [json.loads(m["Body"])["donation_id"] for m in world.queued("receipt_dlq")]


# --------------------------------------------------------------------------- a poison message


def test_a_plain_redrive_refuses_a_poison_message_and_says_what_to_do(world, pipeline, capsys):
    # Given a receipt SendGrid refuses (a bad address: permanent) next to one an outage parked (transient)
    poison = park_bouncing_receipt(world, "key-poison")
    outage = park_transient(world, "key-outage-victim")

    code, out, err = ops(pipeline, capsys, "redrive", "receipt")

    # Then the transient one goes back, the poison one stays, with why and what to do, exit code 3
    assert code == 3, err
    assert f"Moved 1 message(s) from ReceiptDLQ to ReceiptQueue: {outage}." in out
    assert "Left 1 in the DLQ: they would fail the same way again" in out
    assert poison in out and "sendgrid:http_400" in out
    assert f"donor fix-email {poison} --email NEW" in out and f"dlq discard receipt {poison}" in out
    assert parked_ids(world) == [poison]
    assert world.record(poison).redrives == 0 and world.record(outage).redrives == 1
    # And the dry run says the same without moving anything
    code, out, _ = ops(pipeline, capsys, "redrive", "receipt", "--dry-run", "--json")
    dry = json.loads(out)
    assert [s["donation_id"] for s in dry["skipped"]] == [poison] and code == dry["exit_code"] == 3
    assert parked_ids(world) == [poison]


def test_dlq_show_tells_the_whole_story_of_one_parked_message_without_receiving_it(world, pipeline, capsys):
    poison = park_bouncing_receipt(world, "key-show")

    shown = ops_json(pipeline, capsys, "dlq", "show", poison)
    code, out, _ = ops(pipeline, capsys, "dlq", "show", poison)

    assert (shown["step"], shown["state"], shown["kind"], shown["attempts"], shown["redrive"]) == (
        "send_receipt",
        "parked",
        "permanent",
        1,
        False,
    )
    assert shown["reason"].startswith("send_receipt:sendgrid:http_400")
    assert json.loads(shown["message"]["body"])["donation_id"] == poison
    assert shown["message"]["attributes"]["failed_step"] == "send_receipt"
    assert shown["donation"]["donor"] == "b***@b***.example" and "blocked" not in out
    assert code == 0 and "fix-email" in out and "(no operator action yet)" in out
    [message] = world.queued("receipt_dlq")
    assert message["Attributes"]["ApproximateReceiveCount"] == "1"  # looking received nothing


def test_forcing_redrives_a_permanent_failure_whose_cause_was_fixed(world, pipeline, capsys):
    poison = park_bouncing_receipt(world, "key-force")
    world.sendgrid.reset()  # e.g. the sender was verified: SendGrid takes it now

    code, _, err = ops(pipeline, capsys, "redrive", "receipt", "--donation", poison, "--force", "--note", "T-1")

    assert code == 0, err
    assert parked_ids(world) == []
    world.drain()
    record = world.record(poison)
    assert record.receipt_status is StepStatus.DONE and record.attention is None and record.redrives == 1
    assert len(world.sendgrid.outbox_for(poison)) == 1


def test_discard_deletes_the_parked_message_and_notes_why_on_the_donation(world, pipeline, capsys):
    poison = park_bouncing_receipt(world, "key-discard")
    other = park_bouncing_receipt(world, "key-discard-other")

    assert ops(pipeline, capsys, "dlq", "discard", "receipt", poison)[0] == 2  # a note is required
    code, out, err = ops(pipeline, capsys, "dlq", "discard", "receipt", poison, "--note", "donor asked for no mail")

    assert code == 0, err
    assert "1 message(s) removed from ReceiptDLQ" in out
    assert parked_ids(world) == [other]
    record = world.record(poison)
    assert record.receipt_status is StepStatus.DISCARDED and record.attention_step is None
    assert record.operator_log[-1]["action"] == "discard"
    assert record.operator_log[-1]["note"] == "donor asked for no mail"
    # A copy still on its way is acknowledged, not parked again
    world.send_follow_up("receipt", poison)
    world.drain()
    assert parked_ids(world) == [other] and world.sendgrid.outbox_for(poison) == []


def test_fixing_the_donors_address_resends_the_receipt_to_it(world, pipeline, capsys):
    poison = park_bouncing_receipt(world, "key-fix")

    assert ops(pipeline, capsys, "donor", "fix-email", poison, "--email", "not-an-address", "--note", "x")[0] == 2
    code, _, err = ops(
        pipeline, capsys, "donor", "fix-email", poison, "--email", "Ada@Example.org", "--note", "typo, per phone call"
    )

    assert code == 0, err
    assert parked_ids(world) == []
    world.drain()
    record = world.record(poison)
    assert record.receipt_status is StepStatus.DONE and record.attention_step is None
    [mail] = world.sendgrid.outbox_for(poison)
    assert mail["to"] == ["Ada@example.org"]
    assert record.operator_log[-1]["was"] == "b***@b***.example"
    story = ops_json(pipeline, capsys, "donor", "show", poison)
    assert story["receipt"]["status"] == "done" and story["operator_log"][-1]["note"] == "typo, per phone call"


# --------------------------------------------------------------------------- a donor calls


def test_donor_keys_are_keyed_and_donations_recorded_under_the_old_unkeyed_key_are_still_found(world, pipeline, capsys):
    # Given a donation recorded before donor keys were keyed (its record carries the unkeyed hash) ...
    before = donate(world, "key-donor-before", email="old.donor@example.org")
    world.wiring.table.update_item(
        Key={"donation_id": before},
        UpdateExpression="SET donor_key = :old",
        ExpressionAttributeValues={":old": legacy_donor_key("old.donor@example.org")},
    )
    # ... and one made since, whose key a list of known addresses cannot be matched against
    since = donate(world, "key-donor-since", email="Old.Donor@example.org")
    assert world.record(since).donor_key not in (None, legacy_donor_key("old.donor@example.org"))

    # When an operator looks the donor up by address, Then both are found
    found = ops_json(pipeline, capsys, "donor", "find", "--email", "old.donor@example.org")["donations"]
    assert sorted(d["donation_id"] for d in found) == sorted([before, since])


def test_a_donor_is_found_by_email_or_by_card_and_day_and_their_story_told(world, pipeline, capsys):
    mine = donate(world, "key-donor-1", email="grace@example.org", save_card=True)
    other = donate(world, "key-donor-2", email="someone@example.org", payment_method="pm_card_mastercard")
    world.drain()

    by_email = ops_json(pipeline, capsys, "donor", "find", "--email", "GRACE@example.org")["donations"]
    today = datetime.now(UTC).date().isoformat()
    by_card = ops_json(pipeline, capsys, "donor", "find", "--last4", "4242", "--date", today)["donations"]
    by_other_card = ops_json(pipeline, capsys, "donor", "find", "--last4", "4444", "--date", today)["donations"]
    story = ops_json(pipeline, capsys, "donor", "show", mine)

    assert [d["donation_id"] for d in by_email] == [mine]
    assert by_email[0]["donor"] == "g***@e***.org" and by_email[0]["receipt"] == "done"
    assert [d["donation_id"] for d in by_card] == [mine]
    # A card that was not saved is found too: the charge's answer named it (expanded latest_charge)
    assert [(d["donation_id"], d["card"]) for d in by_other_card] == [(other, "mastercard ••4444")]
    assert story["told"].startswith("201") and story["charged"]["amount"] == "25.00 USD"
    assert story["charged"]["at"] and story["charged"]["payment_intent"].startswith("pi_")
    assert story["card"]["card"] == "visa ••4242" and story["receipt"]["sent_at"]
    assert story["page_shows"]["receipt_sent"] is True and story["trouble"] is None
    assert ops(pipeline, capsys, "donor", "find", "--email", "nobody@example.org")[0] == 1


# --------------------------------------------------------------------------- the report


def test_the_report_answers_whether_every_donor_got_a_receipt_and_names_the_missing(world, pipeline, capsys):
    sent = donate(world, "key-report-sent")
    world.drain()
    poison = park_bouncing_receipt(world, "key-report-poison")
    declined = world.post({**_body(), "payment_method": "pm_card_chargeDeclined"}, key=a_key("key-report-declined"))
    assert declined.status == 402

    found = ops_json(pipeline, capsys, "report", "--date", "today")
    code, out, _ = ops(pipeline, capsys, "report", "--date", "today")
    rows = list(csv.DictReader(io.StringIO(ops(pipeline, capsys, "report", "--date", "today", "--csv")[1])))

    assert found["receipts_answer"] == "No: 1 of 2 receipts sent; 1 missing (listed below)."
    assert [p["donation_id"] for p in found["receipts_missing"]] == [poison]
    assert "set aside for an operator" in found["receipts_missing"][0]["why"]
    assert found["outcomes"] == {"received": 2, "card declined": 1}
    assert found["received"] == {"usd": "50.00 USD"}
    assert code == 0 and "Receipts: No: 1 of 2 receipts sent" in out and poison in out
    assert {r["donation_id"]: r["receipt"] for r in rows}[sent] == "done"
    assert {r["donation_id"]: r["problem"] for r in rows}[poison].startswith("failed and set aside")
    assert len(rows) == 3 and "bounce" not in out  # no address in the report

    # Once the operator fixed the address, the answer is yes
    ops(pipeline, capsys, "donor", "fix-email", poison, "--email", "ada@example.org", "--note", "fixed")
    world.drain()
    assert ops_json(pipeline, capsys, "report", "--date", "today")["receipts_answer"].startswith("Yes: all 2")


def test_retrying_steps_show_in_the_listing_before_anything_is_parked(world, pipeline, capsys):
    donation_id = donate(world, "key-retrying")
    world.sendgrid.faults.add("http_error", status=503)
    world.deliver("receipt")

    listed = ops_json(pipeline, capsys, "dlq", "list", "receipt")

    [row] = listed["rows"]
    assert (row["donation_id"], row["state"], row["kind"]) == (donation_id, Attention.RETRYING.value, None)
    assert listed["dlq_messages"] == 0 and listed["queue_messages"] == 1


def _body() -> dict[str, Any]:
    from tests.ops.test_ops_cli import DONATION

    return dict(DONATION)
