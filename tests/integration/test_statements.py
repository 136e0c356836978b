"""Year-end statements end to end in-process: the operator's run queues them, the send-receipt function
sends them through the SendGrid emulator (the shipped template rendered), exactly once per donor and year."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from typing import Any

import boto3
import pytest

from donations.models import RefundState
from donations.statements import StatementMessage
from donations_ops.aws import ClientCache
from donations_ops.cli import main
from tests.support.gifts import Gift, write_gifts
from tests.support.keys import a_key
from tests.support.world import DONATION

# Many statements at once, and nothing here is about timeouts (tests/conftest.py, deployed_mail_timeout)
pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("deployed_mail_timeout")]

YEAR = 2026
DONORS = 1_000


class RunCrashed(Exception):
    """The operator's run died (a lost connection, a killed terminal) after queueing part of the year."""


def ops(pipeline: Any, capsys: pytest.CaptureFixture[str], *args: str, clients: Any = None) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["--stack-name", pipeline.stack.stack_name, *args], clients=clients or pipeline.clients)
    out, err = capsys.readouterr()
    return code, out + err


def crashing_after(batches: int) -> ClientCache:
    """Operator clients whose SendMessageBatch dies after ``batches`` calls went through."""
    clients = ClientCache(boto3.session.Session())
    calls = Counter[str]()

    def count(**_: Any) -> None:
        calls["sent"] += 1
        if calls["sent"] > batches:
            raise RunCrashed("the run died here")

    clients("sqs").meta.events.register("before-call.sqs.SendMessageBatch", count)
    return clients


def deliver_everything(world: Any) -> None:
    """Deliver until the receipt queue is empty, letting backoffs pass (a send that timed out is retried)."""
    for _ in range(10):
        world.drain()
        if not world.retrying("receipt"):
            return
        world.expire_backoffs()
    raise AssertionError("statements still retrying after 10 rounds")


def statements_in_outbox(world: Any, year: int = YEAR) -> list[dict[str, Any]]:
    return [m for m in world.sendgrid.outbox if m["custom_args"].get("statement_year") == str(year)]


def a_year_of_giving() -> tuple[list[Gift], dict[str, dict[str, int]]]:
    """1,000 donors: some give monthly, some in two currencies, some were refunded, some gave last year too.
    Returns the gifts and each donor's expected net total per currency for YEAR."""
    gifts: list[Gift] = []
    expected: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for n in range(DONORS):
        email, name = f"donor{n}@example.org", f"Donor {n}"
        day = f"{YEAR}-{1 + n % 12:02d}-{1 + n % 28:02d}T1{n % 10}:00:00.000Z"
        refunded = 300 if n % 7 == 0 else 0
        gifts.append(Gift(email, name, 1_000 + n, "usd", day, refunded=refunded))
        expected[email]["usd"] += 1_000 + n - refunded
        if n % 10 == 1:  # two currencies: never one total
            gifts.append(Gift(email, name, 2_000, "eur", f"{YEAR}-06-15T08:00:00.000Z"))
            expected[email]["eur"] += 2_000
        if n % 10 == 0:  # monthly: two renewals of a pledge
            for month in ("10", "11"):
                gifts.append(Gift(email, name, 500, "usd", f"{YEAR}-{month}-03T09:00:00.000Z", pledge_id=f"pl_{n}"))
                expected[email]["usd"] += 500
        if n % 20 == 2:  # last year's gift is not on this year's statement
            gifts.append(Gift(email, name, 9_999, "usd", f"{YEAR - 1}-12-30T12:00:00.000Z"))
        if n % 50 == 0:  # refunded in full: not a gift any more
            gifts.append(Gift(email, name, 7_777, "usd", f"{YEAR}-03-03T03:00:00.000Z", refunded=7_777))
    return gifts, expected


def totals_of(mail: dict[str, Any]) -> dict[str, str]:
    return {t["currency"]: t["total_display"] for t in mail["dynamic_template_data"]["totals"]}


def shown(amount: int, currency: str) -> str:
    symbol = {"usd": "$", "eur": "€"}[currency]
    return f"{symbol}{amount // 100:,}.{amount % 100:02d}"


@pytest.mark.slow
@pytest.mark.timeout(900)  # 1,000 donors: minutes on a busy machine
def test_a_years_statements_survive_a_crashed_run_and_reach_each_donor_once(world, pipeline, capsys):
    # Given 1,000 donors' year, some monthly, some in two currencies, some refunded
    gifts, expected = a_year_of_giving()
    write_gifts(world, gifts)

    # When the operator's run dies after queueing 30 batches, and the consumers send what was queued
    with pytest.raises(RunCrashed):
        main(
            ["--stack-name", pipeline.stack.stack_name, "statements", "send", "--year", str(YEAR), "--yes"],
            clients=crashing_after(30),
        )
    deliver_everything(world)
    assert len(statements_in_outbox(world)) == 300

    # ... then the operator runs it again, and SQS delivers the last batches a second time
    code, out = ops(pipeline, capsys, "statements", "send", "--year", str(YEAR), "--yes")
    assert code == 0 and "1000 donor(s) with gifts, 300 statement(s) sent, 700 to send; 700 queued" in out, out
    deliver_everything(world)
    world.redeliver_last_batches()

    # Then each donor has exactly one statement, with the year's net totals per currency
    mails = statements_in_outbox(world)
    assert Counter(len(m["to"]) for m in mails) == {1: DONORS}
    by_donor = {m["to"][0]: m for m in mails}
    assert len(by_donor) == DONORS
    for email, totals in expected.items():
        assert totals_of(by_donor[email]) == {c.upper(): shown(t, c) for c, t in totals.items()}, email
    # ... rendered with the shipped template, every gift and refund on it
    monthly = by_donor["donor350@example.org"]  # monthly, partly refunded, and a gift refunded in full
    lines = monthly["dynamic_template_data"]["gifts"]
    assert [g["kind"] for g in lines] == ["One-time", "Monthly", "Monthly"]
    assert lines[0]["refund_note"] == "$13.50 given, $3.00 refunded" and lines[0]["amount_display"] == "$10.50"
    two_currencies = by_donor["donor11@example.org"]
    assert two_currencies["rendered"]["error"] is None
    assert two_currencies["rendered"]["subject"] == f"Your {YEAR} giving statement from Example Charity"
    assert "Total in EUR" in two_currencies["rendered"]["html"] and "€20.00" in two_currencies["rendered"]["html"]


def test_a_statement_of_a_real_donation_and_one_donor_asking_again(world, pipeline, capsys):
    # Given a donation made through the API, receipted, and partly refunded afterwards
    answer = world.post({**DONATION, "email": "grace@example.org", "name": "Grace Hopper"}, key=a_key("stmt"))
    assert answer.status == 201, answer.body
    world.drain()
    donation = world.record(answer.body["donation_id"])
    world.wiring.store.record_refund(donation.donation_id, 1000, "2026-12-01T00:00:00Z", RefundState.PARTIALLY_REFUNDED)
    year = int(donation.created_at[:4])

    # When the operator counts the year, previews that donor's statement and sends it, twice
    code, out = ops(pipeline, capsys, "statements", "send", "--year", str(year), "--dry-run")
    assert code == 0 and "1 donor(s) with gifts, 0 statement(s) sent, 1 to send; 0 queued (dry run)" in out, out
    code, out = ops(pipeline, capsys, "statements", "preview", "--year", str(year), "--email", "grace@example.org")
    preview = json.loads(out)
    assert code == 0 and preview["totals"] == [{"currency": "USD", "total_display": "$15.00"}]
    assert preview["to"] != "grace@example.org"  # masked
    for _ in range(2):
        code, out = ops(
            pipeline, capsys, "statements", "send", "--year", str(year), "--email", "grace@example.org", "--yes"
        )
        assert code == 0, out
        world.drain()

    # Then one statement was sent, net of the refund, with the receipt number
    [mail] = statements_in_outbox(world, year)
    assert mail["to"] == ["grace@example.org"]
    [line] = mail["dynamic_template_data"]["gifts"]
    assert line["receipt_number"] == donation.donation_id and line["amount_display"] == "$15.00"
    assert "$25.00 given, $10.00 refunded" in mail["rendered"]["text"]

    # When the donor lost it and asks again
    code, out = ops(
        pipeline, capsys, "statements", "send", "--year", str(year), "--email", "grace@example.org", "--again", "--yes"
    )
    assert code == 0 and "1 queued" in out, out
    world.drain()

    # Then a second copy is sent, once
    assert len(statements_in_outbox(world, year)) == 2


def test_a_statement_message_for_a_donor_without_gifts_sends_nothing_and_is_acknowledged(world):
    # Given a statement message for a donor key nobody has
    world.send("receipt", StatementMessage(donor_key="0" * 32, year=YEAR).model_dump_json(), {})

    # When it is delivered
    world.drain()

    # Then nothing is sent, nothing parked, nothing left on the queue
    assert statements_in_outbox(world) == []
    assert world.queued("receipt_dlq") == [] and world.queued("receipt") == []


def test_a_malformed_statement_message_is_parked_with_its_reason(world):
    # Given a statement message with a year that is not one
    world.send_raw("receipt", json.dumps({"schema_version": 1, "type": "send_statement", "donor_key": "x", "year": 1}))

    # When it is delivered
    world.drain()

    # Then it is parked at once in the receipt DLQ, saying why
    [parked] = world.queued("receipt_dlq")
    attributes = {k: v["StringValue"] for k, v in parked["MessageAttributes"].items()}
    assert attributes["failed_step"] == "send_statement"
    assert attributes["failure_reason"] == "send_statement:malformed_message:ValidationError"


def test_a_statement_claimed_by_a_consumer_that_died_is_sent_once_its_lease_ran_out(world):
    # Given a donor's gift, and their statement claimed by a consumer that died before sending
    [donation] = write_gifts(world, [Gift("ada@example.org", "Ada", 2500, "usd", f"{YEAR}-05-01T12:00:00.000Z")])
    statements = world.wiring.statements
    assert statements.claim(str(donation.donor_key), YEAR, lease_seconds=600)
    message = StatementMessage(donor_key=str(donation.donor_key), year=YEAR, donation_ids=[donation.donation_id])

    # When its message is delivered while the lease is live
    world.send("receipt", message.model_dump_json(), {})
    world.drain()

    # Then nothing is sent: the message waits out a backoff
    assert statements_in_outbox(world) == []
    assert world.visibility_changes("receipt") != []

    # When the lease ran out (no one else could claim it meanwhile) and the message comes back
    assert statements.claim(str(donation.donor_key), YEAR, lease_seconds=600) is False
    world.wiring.statements._statements.update_item(
        Key={"donor_key": donation.donor_key, "year": YEAR},
        UpdateExpression="SET claim_until = :past",
        ExpressionAttributeValues={":past": 0},
    )
    world.expire_backoffs()
    world.drain()

    # Then the statement is sent, once, and the marker says so
    [mail] = statements_in_outbox(world)
    assert mail["dynamic_template_data"]["totals"] == [{"currency": "USD", "total_display": "$25.00"}]
    marker = statements.marker(str(donation.donor_key), YEAR)
    assert marker is not None and marker["status"] == "sent" and marker["message_id"] == mail["message_id"]
