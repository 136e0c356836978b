"""The README's run command, used over HTTP as a user would: a donation, an outage, an alarm, a redrive."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import requests
import stripe

from donations.money import format_day
from donations.payments import STRIPE_API_VERSION
from donations.webhooks import HANDLED_EVENT_TYPES
from simulator.emulators.control import EmulatorControl
from simulator.emulators.sendgrid_emulator import SendGridControl
from simulator.emulators.stripe import StripeControl
from tests.e2e.conftest import donate, run_ops, run_pasted, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _donation(api: str, donation_id: str) -> dict:
    return requests.get(f"{api}/donations/{donation_id}", timeout=10).json()


def _alarm(api: str, suffix: str) -> dict:
    return next(
        a for a in requests.get(f"{api}/_local/status", timeout=10).json()["alarms"] if a["name"].endswith(suffix)
    )


def _notified(api: str, suffix: str, state: str) -> list[dict]:
    """The operator notifications for an alarm's change to ``state``, newest first, once there is one: the
    notifier (SNS -> Lambda) relays them a moment after the alarm changed."""
    return wait_for(
        lambda: [
            n
            for n in requests.get(f"{api}/_local/status", timeout=10).json()["notifications"]
            if n["message"].get("AlarmName", "").endswith(suffix) and n["message"]["NewStateValue"] == state
        ],
        what=f"the {suffix} {state} notification",
    )


def test_a_curl_donation_completes_all_three_steps(local_stack):
    answer = donate(local_stack.api, "e2e-happy")
    assert answer.status_code == 201, answer.text
    donation_id = answer.json()["donation_id"]

    final = wait_for(
        lambda: (d := _donation(local_stack.api, donation_id))["receipt_sent"] and d["card_saved"] and d,
        what="card saved and receipt sent",
    )

    assert final["status"] == "succeeded" and final["failed_step"] is None
    mails = SendGridControl(local_stack.sendgrid).outbox(donation_id)
    assert len(mails) == 1 and mails[0]["to"] == ["ada@example.org"]
    outbox_page = requests.get(f"{local_stack.api}/_local/outbox", timeout=10).json()["emails"]
    assert any(m["custom_args"].get("donation_id") == donation_id for m in outbox_page)
    assert EmulatorControl(local_stack.stripe).state()["requests"]  # the real SDK went through the emulator


def test_a_3d_secure_donation_completes_through_the_webhook_endpoint_installed_at_start(local_stack):
    # The local stack installed its Stripe webhook endpoint with `donations-ops stripe install-webhook`'s
    # code: one endpoint, in the pinned API version, sending the events the handler handles.
    client = stripe.StripeClient("sk_test_local", base_addresses={"api": local_stack.stripe})
    [endpoint] = client.v1.webhook_endpoints.list().data
    assert endpoint.url.endswith("/webhooks/stripe") and endpoint.api_version == STRIPE_API_VERSION
    assert sorted(endpoint.enabled_events) == sorted(HANDLED_EVENT_TYPES)

    answer = donate(local_stack.api, "e2e-3ds-webhook", payment_method="pm_card_authenticationRequired")
    assert answer.status_code == 202, answer.text
    donation_id = answer.json()["donation_id"]
    [intent] = StripeControl(local_stack.stripe).intents_for(donation_id)

    StripeControl(local_stack.stripe).authenticate(intent["id"], "succeed")  # the donor passes 3-D Secure

    # Stripe's payment_intent.succeeded, signed with the endpoint's secret, completes the donation
    final = wait_for(lambda: (d := _donation(local_stack.api, donation_id))["status"] == "succeeded" and d,
                     what="the webhook to record the charge")  # fmt: skip
    assert final["failed_step"] is None


def test_a_donations_receipt_in_the_outbox_is_the_rendered_template(local_stack):
    answer = donate(local_stack.api, "e2e-receipt", amount=4200, currency="eur", name="Grace Hopper", save_card=False)
    assert answer.status_code == 201, answer.text
    donation_id = answer.json()["donation_id"]
    donation = wait_for(lambda: (d := _donation(local_stack.api, donation_id))["receipt_sent"] and d, what="receipt")

    [listed] = [m for m in requests.get(f"{local_stack.api}/_local/outbox", timeout=10).json()["emails"]
                if m["custom_args"].get("donation_id") == donation_id]  # fmt: skip
    mail = requests.get(f"{local_stack.api}/_local/outbox/{listed['message_id']}", timeout=10).json()

    # The template's parameter defaults (template.yaml) fill in the organisation; the day is the donation's (UTC).
    rendered = mail["rendered"]
    assert rendered["error"] is None
    assert rendered["subject"] == "Receipt for your donation to Example Charity"
    day = format_day(donation["created_at"], "en_US", "UTC")
    for body in (rendered["html"], rendered["text"]):
        for fact in ("Grace Hopper", "€42.00", day, donation_id, "Example Charity", "1 Example Street, Springfield"):
            assert fact in body, f"{fact!r} is not in the receipt"


def test_the_install_command_updates_the_template_the_local_stack_installed(local_stack):
    # The run command installed the shipped template, as a deployer would; the documented command finds it
    # by name and adds a new active version (README "Receipts").
    before = SendGridControl(local_stack.sendgrid).state()["templates"]
    installed = subprocess.run(  # noqa: S603 - our own CLI
        [
            sys.executable,
            "-m",
            "donations_ops",
            "receipts",
            "install-template",
            "--sendgrid-host",
            local_stack.sendgrid,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "SENDGRID_API_KEY": "SG.local-emulator"},
        check=False,
    )

    assert installed.returncode == 0, installed.stderr + installed.stdout
    assert installed.stdout.startswith("Updated the dynamic template 'Donation receipt'"), installed.stdout
    template_id = installed.stdout.strip().splitlines()[-1]
    after = SendGridControl(local_stack.sendgrid).state()["templates"]
    [receipt_before] = [t for t in before if t["name"] == "Donation receipt"]
    [receipt_after] = [t for t in after if t["name"] == "Donation receipt"]
    assert receipt_before["id"] == receipt_after["id"] == template_id
    assert receipt_after["versions"] == receipt_before["versions"] + 1
    # (the year-end statement's template, installed beside it, is left as it was)
    others = [[t for t in templates if t["name"] != "Donation receipt"] for templates in (before, after)]
    assert others[0] == others[1]


def _receipt_dlq_depth(api: str) -> int:
    queues = requests.get(f"{api}/_local/status", timeout=10).json()["queues"]
    return sum(q["visible"] + q["in_flight"] for q in queues if q["queue"] == "ReceiptDLQ")


def test_an_outage_parks_the_receipt_raises_the_alarm_and_a_redrive_recovers(local_stack):
    # Given an empty receipt DLQ (the stack is shared: tests that park a receipt clear it again)
    assert wait_for(lambda: _receipt_dlq_depth(local_stack.api) == 0, what="an empty receipt DLQ")
    sendgrid = SendGridControl(local_stack.sendgrid)
    # The outage as docs/simulator-faults.md causes it: one command
    assert _faults("sendgrid", "outage", "--on", "--url", local_stack.sendgrid).returncode == 0
    try:
        donation_id = donate(local_stack.api, "e2e-outage", save_card=False).json()["donation_id"]

        parked = wait_for(
            lambda: _donation(local_stack.api, donation_id)["failed_step"] == "send_receipt",
            timeout=90,
            what="the receipt step to fail after its retries",
        )
        assert parked
        alarm = wait_for(
            lambda: (a := _alarm(local_stack.api, "receipt-dlq-not-empty"))["state"] == "ALARM" and a,
            what="the receipt DLQ alarm",
        )
        assert "crossed the threshold" in alarm["reason"]
        # The alarm may already have cleared again (periods pass 10 times faster here).
        fired = _notified(local_stack.api, "receipt-dlq-not-empty", "ALARM")
        assert fired[0]["subject"].startswith("ALARM")
        listing = run_ops(local_stack, "dlq", "list", "ReceiptDLQ")
        assert listing.returncode == 0, listing.stderr
        assert donation_id in listing.stdout
    finally:
        ended = _faults("sendgrid", "outage", "--off", "--url", local_stack.sendgrid)
    assert ended.returncode == 0, ended.stderr
    assert sendgrid.faults() == []

    # A redrive waits for the step to stop failing (it refuses while receipt-step-failing is in ALARM):
    # three alarm periods without a failed try.
    wait_for(lambda: _alarm(local_stack.api, "receipt-step-failing")["state"] != "ALARM", timeout=60,
             what="receipt-step-failing to clear")  # fmt: skip
    # Only this donation's message: the stack is shared with other e2e tests, whose parked messages stay.
    redrive = run_ops(local_stack, "redrive", "ReceiptDLQ", "--donation", donation_id)
    assert redrive.returncode == 0, redrive.stderr

    # The step marks the receipt sent, then clears the earlier failure (two writes): wait for both.
    done = wait_for(
        lambda: (d := _donation(local_stack.api, donation_id))["receipt_sent"] and d["failed_step"] is None and d,
        what="the receipt, and the failure cleared",
    )
    assert done["status"] == "succeeded"
    assert len(sendgrid.outbox(donation_id)) == 1
    wait_for(lambda: _alarm(local_stack.api, "receipt-dlq-not-empty")["state"] == "OK", what="the alarm to clear")
    assert _notified(local_stack.api, "receipt-dlq-not-empty", "OK")


def _faults(*args: str) -> subprocess.CompletedProcess[str]:
    """`python -m simulator.faults`, as docs/simulator-faults.md runs it."""
    return subprocess.run(  # noqa: S603 - our own CLI
        [sys.executable, "-m", "simulator.faults", *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_the_consoles_first_commands_run_as_pasted_against_the_local_stack(local_stack):
    # Given the console's alarms, each with the first command its runbook section starts with
    alarms = requests.get(f"{local_stack.api}/_local/ops/alarms", timeout=10).json()["alarms"]
    first = next(a["first_command"] for a in alarms if a["name"].endswith("receipt-dlq-not-empty"))

    # Then it is written for this stack (not on the default port, nor named by default)
    assert first.startswith(f"donations-ops --local --endpoint-url {local_stack.moto} --stack-name donations-e2e ")
    # And pasted into a terminal, it runs (without --local: "You must specify a region")
    pasted = run_pasted(first)
    assert pasted.returncode == 0, pasted.stderr
    assert "ReceiptDLQ" in pasted.stdout


def test_a_refused_sendgrid_key_alerts_at_once_and_a_redrive_after_the_fix_recovers(local_stack):
    sendgrid = SendGridControl(local_stack.sendgrid)
    sendgrid.revoke_key("SG.local-emulator")  # the key the local stack stores in its secret
    try:
        donation_id = donate(local_stack.api, "e2e-revoked-key", save_card=False).json()["donation_id"]

        failed = wait_for(lambda: (d := _donation(local_stack.api, donation_id))["failed_step"] and d, what="parking")
        assert failed["failed_step"] == "send_receipt" and not failed["receipt_sent"]
        alarm = wait_for(
            lambda: (a := _alarm(local_stack.api, "sendgrid-auth-failures"))["state"] == "ALARM" and a,
            what="the SendGrid auth failure alarm",
        )
        assert "crossed the threshold" in alarm["reason"]
        fired = _notified(local_stack.api, "sendgrid-auth-failures", "ALARM")
        assert "rotate the secret" in fired[0]["message"]["AlarmDescription"]
        assert sendgrid.state()["requests"]["POST /v3/mail/send"] >= 1
    finally:
        sendgrid.reset()  # SendGrid accepts our key again (the operator's new key, in this stand-in)

    # A refused key parks each receipt as permanent: a plain redrive leaves it (exit 3); the key was
    # rotated, so the runbook's redrive says the cause is fixed.
    assert run_ops(local_stack, "redrive", "ReceiptDLQ", "--donation", donation_id).returncode == 3
    redrive = run_ops(local_stack, "redrive", "ReceiptDLQ", "--reason", "sendgrid", "--force")
    assert redrive.returncode == 0, redrive.stderr
    # The step marks the receipt sent, then clears the earlier failure (two writes): wait for both.
    done = wait_for(
        lambda: (d := _donation(local_stack.api, donation_id))["receipt_sent"] and d["failed_step"] is None and d,
        what="the receipt, and the failure cleared",
    )
    assert done["status"] == "succeeded"
    wait_for(lambda: _alarm(local_stack.api, "sendgrid-auth-failures")["state"] == "OK", what="the alarm to clear")
