"""Year-end statements on the shared local stack: the January run as EventBridge would fire it at a given time
(POST /_local/statements/run-schedule), and a year's statements sent by the operator and by that run, each
donor's reaching the SendGrid emulator's outbox once, rendered, through a short SendGrid outage."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import boto3
import pytest
import requests

from donations_ops.stack_resources import discover
from simulator.emulators.sendgrid_emulator import SendGridControl
from simulator.local.process import RunningStack
from tests.e2e.conftest import run_ops, wait_for
from tests.e2e.test_after_the_gift import ACCOUNT_KEY, _gift, _mails

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_the_statements_schedule_runs_as_of_a_given_time_and_refuses_one_without_a_zone(local_stack: RunningStack):
    url = f"{local_stack.api}/_local/statements/run-schedule"
    # When it runs as of January 2001 (the year 2000: nobody gave on this stack then)
    answer = requests.post(url, json={"at": "2001-01-15T06:00:00Z"}, timeout=120)

    # Then the run looked at that year, found no donor, queued nothing, and is finished
    assert answer.status_code == 200, answer.text
    ran = answer.json()
    assert (ran["at"], ran["statements_year"], ran["statements_donors"]) == ("2001-01-15T06:00:00+00:00", 2000, 0)
    assert (ran["statements_queued"], ran["statements_finished"]) == (0, True)

    # And a run asked for without a time, or with one that has no zone, is refused and runs nothing
    for body in ({}, {"at": "2001-01-15T06:00:00"}, {"at": "mid-january"}):
        refused = requests.post(url, json=body, timeout=30)
        assert refused.status_code == 400 and "time" in refused.json()["message"]


def test_a_years_statements_reach_each_donor_once_rendered_net_of_refunds_per_currency(local_stack, monkeypatch):
    # Given this year's donors on the stack: one who gave in two currencies, one whose gift was refunded in
    # part with donations-ops, one who gives monthly (each receipted), under addresses of this test's own
    tag = uuid.uuid4().hex[:8]
    two, refunded, monthly = (f"stmt-{kind}-{tag}@example.org" for kind in ("two", "refunded", "monthly"))
    _gift(local_stack, "stmt-usd", email=two, amount=2500, currency="usd", save_card=False)
    _gift(local_stack, "stmt-eur", email=two, amount=4000, currency="eur", save_card=False)
    partial = _gift(local_stack, "stmt-refunded", email=refunded, amount=2500, save_card=False)
    _gift(local_stack, "stmt-monthly", email=monthly, amount=1500, monthly=True)
    monkeypatch.setenv("STRIPE_API_KEY", ACCOUNT_KEY)
    done = run_ops(
        local_stack, "refund", partial, "--amount", "10.00", "--yes", "--stripe-api-base", local_stack.stripe
    )
    assert done.returncode == 0, done.stderr
    wait_for(lambda: len(_mails(local_stack, partial)) == 2, timeout=60, what="the corrected receipt")
    year = datetime.now(ZoneInfo(_receipt_time_zone(local_stack))).year
    # And SendGrid refusing the next three sends (500s: retried with backoff, as a short outage would be)
    SendGridControl(local_stack.sendgrid).add_fault("http_error", status=500, times=3, path_prefix="/v3/mail/send")

    # When the operator sends the year's statements, and the January schedule runs for that year as well
    sent = run_ops(local_stack, "statements", "send", "--year", str(year), "--yes")
    assert sent.returncode == 0, sent.stderr
    scheduled = requests.post(
        f"{local_stack.api}/_local/statements/run-schedule", json={"at": f"{year + 1}-01-15T06:00:00Z"}, timeout=120
    )
    assert scheduled.status_code == 200, scheduled.text

    # Then each donor gets exactly one statement, rendered from the shipped template, whatever ran twice
    statements = wait_for(
        lambda: (found := _statements(local_stack, year, (two, refunded, monthly))) and len(found) == 3 and found,
        timeout=90,
        what="the three statements",
    )
    wait_for(
        lambda: _receipt_queue_empty(local_stack), timeout=60, what="the receipt queue to drain"
    )  # nothing left to send twice
    assert sorted(len(mails) for mails in _statements(local_stack, year, (two, refunded, monthly)).values()) == [
        1,
        1,
        1,
    ]
    # Two currencies are never summed into one number; the refunded gift counts for what remains
    assert {t["currency"] for t in statements[two][0]["dynamic_template_data"]["totals"]} == {"USD", "EUR"}
    [remains] = statements[refunded][0]["dynamic_template_data"]["gifts"]
    assert remains["amount_display"] == "$15.00" and "$10.00 refunded" in remains["refund_note"]
    assert [g["kind"] for g in statements[monthly][0]["dynamic_template_data"]["gifts"]] == ["Monthly"]
    assert all(mails[0]["rendered"]["subject"] for mails in statements.values())
    # And the year's progress says so
    status = run_ops(local_stack, "statements", "status", "--year", str(year), "--json")
    assert status.returncode == 0, status.stderr


def _statements(stack: RunningStack, year: int, emails: tuple[str, ...]) -> dict[str, list[dict[str, Any]]]:
    """The year's statements in the SendGrid emulator's outbox, by recipient (only ``emails``)."""
    found: dict[str, list[dict[str, Any]]] = {}
    for mail in requests.get(f"{stack.api}/_local/outbox", timeout=10).json()["emails"]:
        if mail["custom_args"].get("statement_year") == str(year):
            for address in set(mail["to"]) & set(emails):
                found.setdefault(address, []).append(mail)
    return found


def _receipt_time_zone(stack: RunningStack) -> str:
    session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")
    functions = session.client("lambda", endpoint_url=stack.moto).list_functions()["Functions"]
    send_receipt = next(f for f in functions if f["FunctionName"].endswith("-send-receipt"))
    return str(send_receipt["Environment"]["Variables"]["RECEIPT_TIME_ZONE"])


def _receipt_queue_empty(stack: RunningStack) -> bool:
    """No statement or receipt waiting or in flight on the receipt queue (a retry would be one of them)."""
    session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")
    queue = discover(lambda service: session.client(service, endpoint_url=stack.moto), stack.stack_name).queues
    attributes = session.client("sqs", endpoint_url=stack.moto).get_queue_attributes(
        QueueUrl=queue["ReceiptQueue"].url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return (
        int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"]) == 0
    )
