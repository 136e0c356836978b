"""The operator's two nights, on the README's run command, with donations-ops as a subprocess.

Time passes 10x faster for alarm periods and retry backoffs alike (tests/e2e/conftest.py): a 60 s
alarm period takes 6 s and the first backoff 1 s instead of 10, so an outage keeps its AWS ratio of
alarm to DLQ (RUNBOOK.md, "When the alarms fire").
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
import requests

from simulator.emulators.sendgrid_emulator import SendGridControl
from tests.e2e.conftest import donate, run_ops, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def ops_json(stack: Any, *args: str) -> Any:
    done = run_ops(stack, *args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def status(stack: Any) -> dict[str, Any]:
    return dict(requests.get(f"{stack.api}/_local/status", timeout=10).json())


def alarm_state(stack: Any, suffix: str) -> str:
    return next(str(a["state"]) for a in status(stack)["alarms"] if a["name"].endswith(suffix))


def page(stack: Any, section: str, state: str, since: str) -> dict[str, Any] | None:
    """The first notification operators received since ``since`` for this alarm and state."""
    found = [
        n
        for n in reversed(status(stack)["notifications"])  # oldest first
        if (n["message"].get("Notifier") or {}).get("section") == section
        and n["message"].get("NewStateValue") == state
        and n["received_at"] >= since
    ]
    return found[0] if found else None


def receipts_quiet(stack: Any) -> bool:
    return all(alarm_state(stack, suffix) == "OK" for suffix in ("receipt-step-failing", "receipt-dlq-not-empty"))


def donation(stack: Any, donation_id: str) -> dict[str, Any]:
    return dict(requests.get(f"{stack.api}/donations/{donation_id}", timeout=10).json())


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def test_a_sendgrid_outage_pages_before_anything_reaches_the_dlq_and_a_redrive_recovers(local_stack):
    sendgrid = SendGridControl(local_stack.sendgrid)
    # A quiet start: another test on this shared stack may have just paged either alarm
    wait_for(lambda: receipts_quiet(local_stack), timeout=60, what="a quiet start")
    started = now()
    sendgrid.add_fault("http_error", status=503)
    try:
        donation_id = donate(local_stack.api, "e2e-ops-outage", save_card=False).json()["donation_id"]

        # The step alarm pages while the receipt is still being retried: nothing parked, the DLQ empty
        early = wait_for(lambda: page(local_stack, "receipt-step-failing", "ALARM", started), timeout=60, what="page")
        notifier = early["message"]["Notifier"]
        assert notifier["runbook"].endswith("#receipt-step-failing") and early["subject"].startswith("ALARM: receipt-")
        context = notifier["context"]
        assert (context["step"], context["dlq_messages"], context["donations_parked"]) == ("send_receipt", 0, 0)
        assert context["donations_retrying"] >= 1
        assert context["top_reasons"][0][0] == "send_receipt:sendgrid:http_503"
        # Then the receipt is parked, after the page
        wait_for(lambda: donation(local_stack, donation_id)["failed_step"] == "send_receipt", timeout=90, what="park")
        shown = ops_json(local_stack, "dlq", "show", donation_id)
        assert shown["parked_at"] > early["received_at"], (shown["parked_at"], early["received_at"])
        assert (shown["kind"], shown["redrive"]) == ("transient", True)
        # The DLQ's page for this receipt: the first since it was parked (an earlier one was another test's)
        parked_at = shown["parked_at"]
        parked = wait_for(lambda: page(local_stack, "receipt-dlq-not-empty", "ALARM", parked_at), what="DLQ page")
        assert parked["message"]["Notifier"]["context"]["donations_parked"] >= 1
        listed = run_ops(local_stack, "dlq", "list", "receipt")
        assert listed.returncode == 0 and donation_id in listed.stdout and "nothing was received" in listed.stdout
    finally:
        sendgrid.clear_faults()

    # Once the step's alarm is back to OK (while it fires, a redrive refuses: the step would still fail)
    wait_for(lambda: alarm_state(local_stack, "receipt-step-failing") == "OK", timeout=90, what="the step alarm OK")
    redrive = run_ops(local_stack, "redrive", "receipt", "--note", "INC-1 SendGrid outage")
    assert redrive.returncode == 0, redrive.stdout + redrive.stderr
    wait_for(lambda: donation(local_stack, donation_id)["receipt_sent"], what="the redriven receipt")
    story = ops_json(local_stack, "donor", "show", donation_id)
    assert story["receipt"]["status"] == "done" and story["operator_log"][-1]["note"] == "INC-1 SendGrid outage"
    assert story["trouble"] is None and len(sendgrid.outbox(donation_id)) == 1


def test_a_poison_message_is_found_refused_by_a_plain_redrive_then_fixed_or_discarded(local_stack):
    sendgrid = SendGridControl(local_stack.sendgrid)
    sendgrid.reject_recipient("bounce.example")
    typo = donate(local_stack.api, "e2e-ops-poison-1", save_card=False, email="grace@bounce.example").json()
    unwanted = donate(local_stack.api, "e2e-ops-poison-2", save_card=False, email="alan@bounce.example").json()
    for parked in (typo, unwanted):
        wait_for(lambda d=parked: donation(local_stack, d["donation_id"])["failed_step"], what="parking at once")

    # Identified by donation, from the donor's address
    [found] = ops_json(local_stack, "donor", "find", "--email", "Grace@bounce.example")["donations"]
    assert found["donation_id"] == typo["donation_id"] and found["receipt"] == "failed"
    # Shown with its reason, without receiving it
    shown = ops_json(local_stack, "dlq", "show", typo["donation_id"])
    assert shown["reason"].startswith("send_receipt:sendgrid:http_400") and shown["kind"] == "permanent"
    # Refused by a plain redrive, with a clear message and exit code 3
    refused = run_ops(local_stack, "redrive", "receipt", "--donation", typo["donation_id"])
    assert refused.returncode == 3, refused.stdout + refused.stderr
    assert (
        "would fail the same way again" in refused.stdout and f"donor fix-email {typo['donation_id']}" in refused.stdout
    )

    # Fixed and resent...
    fixed = run_ops(
        local_stack, "donor", "fix-email", typo["donation_id"], "--email", "grace@example.org", "--note", "T-9"
    )
    assert fixed.returncode == 0, fixed.stderr
    wait_for(
        lambda: donation(local_stack, typo["donation_id"])["receipt_sent"], what="the receipt to the fixed address"
    )
    assert [m["to"] for m in sendgrid.outbox(typo["donation_id"])] == [["grace@example.org"]]
    # ...or discarded with a note
    dropped = run_ops(
        local_stack, "dlq", "discard", "receipt", unwanted["donation_id"], "--note", "donor wants no mail"
    )
    assert dropped.returncode == 0, dropped.stderr
    story = ops_json(local_stack, "donor", "show", unwanted["donation_id"])
    assert story["receipt"]["status"] == "discarded" and story["operator_log"][-1]["note"] == "donor wants no mail"

    # The report names the discarded one as missing, with the note, and not the fixed one
    report = ops_json(local_stack, "report", "--date", "today")
    missing = {p["donation_id"]: p["why"] for p in report["receipts_missing"]}
    assert missing.get(unwanted["donation_id"]) == "an operator decided not to send it: donor wants no mail"
    assert typo["donation_id"] not in missing
    sendgrid.clear_rejections()
