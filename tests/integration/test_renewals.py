"""Monthly renewals through their handlers (schedule and renew) against moto and the Stripe emulator:
each pledge's period charged exactly once, whatever is duplicated, replayed or crashes."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

import pytest
import stripe

from donations.models import DonationStatus, StepStatus
from donations.pledges import Pledge, PledgeState, RenewalMessage, pledge_from_donation, renewal_donation_id
from donations_ops.cli import main
from simulator.local.delivery import BatchResult
from simulator.local.events import scheduled_event
from tests.integration.test_notifier import alarm_changes, operator_inbox, received
from tests.support.keys import a_key
from tests.support.world import DONATION, CrashOn

pytestmark = pytest.mark.integration

TODAY = date(2026, 12, 5)  # the pledge is made on this day; its first renewal is due on 2027-01-10


def _pledge(world, key: str = "key-pledge", day: int = 10) -> Pledge:
    """A donor gives once with save_card, the card is saved, and they pledge monthly on it."""
    answer = world.post({**DONATION, "save_card": True}, key=a_key(key))
    assert answer.status == 201, answer.body
    world.drain()
    donation = world.record(answer.body["donation_id"])
    assert donation.card_status is StepStatus.DONE
    return world.wiring.pledges.create(pledge_from_donation(donation, day, TODAY))


def _schedule(world, day: str, time: str = "06:00") -> dict[str, Any]:
    """One run of the renewal schedule, invoked as EventBridge does, at ``time`` UTC on ``day``."""
    at = datetime.fromisoformat(f"{day}T{time}:00+00:00").astimezone(UTC)
    result: dict[str, Any] = world.pipeline.invoke(
        "ScheduleRenewalsFunction", scheduled_event("arn:aws:events:us-east-1:123456789012:rule/renewals", at=at)
    )
    return result


def _pledge_now(world, pledge_id: str) -> Pledge:
    found = world.wiring.pledges.get(pledge_id)
    assert found is not None
    return found


def _charges_for(world, pledge: Pledge, period: str) -> list[dict[str, Any]]:
    """The succeeded PaymentIntents Stripe holds for one pledge's period."""
    donation_id = renewal_donation_id(pledge.pledge_id, period)
    return [
        intent
        for intent in world.stripe.state()["payment_intents"]
        if intent["metadata"].get("donation_id") == donation_id and intent["status"] == "succeeded"
    ]


def test_a_pledge_renews_three_months_running_with_three_receipts(world):
    # Given a monthly pledge on a saved card, due on the 10th
    pledge = _pledge(world)
    assert pledge.next_charge_on == "2027-01-10"

    for period, run_day in (("2027-01", "2027-01-10"), ("2027-02", "2027-02-10"), ("2027-03", "2027-03-11")):
        # When the schedule runs on (or after) the due day and the renewal queue is drained
        assert _schedule(world, run_day) == {"renewals_scheduled": 1}
        world.drain()

        # Then the period is charged off-session on the saved card, as a donation of its own, with its receipt
        [intent] = _charges_for(world, pledge, period)
        assert (intent["customer"], intent["amount"], intent["currency"]) == (pledge.customer_id, 2500, "usd")
        renewal = world.record(renewal_donation_id(pledge.pledge_id, period))
        assert renewal.status is DonationStatus.SUCCEEDED
        assert renewal.metadata == {"pledge_id": pledge.pledge_id, "renewal_period": period}
        assert renewal.receipt_status is StepStatus.DONE
        assert len(world.sendgrid.outbox_for(renewal.donation_id)) == 1

    # And the pledge moved on three times, to April
    after = _pledge_now(world, pledge.pledge_id)
    assert (after.state, after.renewals, after.last_period, after.next_charge_on) == (
        PledgeState.ACTIVE,
        3,
        "2027-03",
        "2027-04-10",
    )
    # A run before the next due day finds nothing (the pledge left the due index's past days)
    assert _schedule(world, "2027-04-09") == {"renewals_scheduled": 0}


def test_a_replayed_schedule_and_duplicate_messages_charge_the_period_once(world):
    # Given a due pledge queued by a run, the run replayed (it queues nothing more: the pledge was just
    # queued), and the message duplicated by SQS
    pledge = _pledge(world)
    assert _schedule(world, "2027-01-10") == {"renewals_scheduled": 1}
    assert _schedule(world, "2027-01-10") == {"renewals_scheduled": 0}
    assert _schedule(world, "2027-01-10", "07:00") == {"renewals_scheduled": 0}
    world.duplicate_queued("renewal")
    assert len(world.queued("renewal")) == 2

    # When everything is delivered, and delivered once more after being acknowledged
    world.drain()
    world.redeliver_last_batches()

    # Then one charge, one receipt, one move of the pledge; nothing parked
    assert len(_charges_for(world, pledge, "2027-01")) == 1
    assert len(world.sendgrid.outbox_for(renewal_donation_id(pledge.pledge_id, "2027-01"))) == 1
    after = _pledge_now(world, pledge.pledge_id)
    assert (after.renewals, after.next_charge_on) == (1, "2027-02-10")
    assert world.queued("renewal_dlq") == []


def test_a_renewal_message_lost_on_its_way_is_queued_again_by_a_later_run(world):
    # Given a due pledge whose renewal message was queued, then lost (deleted, expired)
    pledge = _pledge(world)
    assert _schedule(world, "2027-01-10") == {"renewals_scheduled": 1}
    world.clear_queue("renewal")

    # When the schedule runs later that day, past the time a queued renewal takes
    assert _schedule(world, "2027-01-10", "13:00") == {"renewals_scheduled": 1}
    world.drain()

    # Then the period is charged (late, not skipped), once
    assert len(_charges_for(world, pledge, "2027-01")) == 1
    assert _pledge_now(world, pledge.pledge_id).next_charge_on == "2027-02-10"


class AfterCall:
    """The real call happens (Stripe charged), then the process dies before it can use the answer."""

    def __init__(self, port: Any, method: str) -> None:
        self._port = port
        self._method = method

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._port, name)
        if name != self._method:
            return attribute

        def call_then_die(*args: Any, **kwargs: Any) -> Any:
            attribute(*args, **kwargs)
            raise RuntimeError(f"killed after {name}")

        return call_then_die


def deliver_renewals_crashing(world, port: str, wrap: Any) -> BatchResult:
    """One delivery of every message in the renewal queue with one of the renew function's ports
    (``pledges``, ``store``, ``charges``, ``publisher``) wrapped by ``wrap``, as a crash there would leave
    it. The renew function takes one message per invocation (template.yaml): the queue's messages
    (a test's two pledges, in any order) are delivered one by one, and their results put together."""
    module = world.pipeline.handler("RenewFunction")
    original = module.renew

    def renew_crashing(message: RenewalMessage, **ports: Any) -> Any:
        return original(message, **{**ports, port: wrap(ports[port])})

    module.renew = renew_crashing
    together = BatchResult("RenewFunction")
    try:
        for _ in range(20):  # bounded: a test queues a few
            result = world.deliver("renewal")
            seen = {m["MessageId"] for m in together.messages}
            if not result.received or any(m["MessageId"] in seen for m in result.messages):
                break  # all delivered (a failed one back after a short backoff is for the caller to deliver)
            together.received += result.received
            together.failed_ids += result.failed_ids
            together.messages += result.messages
        return together
    finally:
        module.renew = original


CRASH_POINTS = {
    "before the donation is written": ("store", lambda store: CrashOn(store, "create_renewal", error=RuntimeError())),
    "after Stripe charged, before the record": ("charges", lambda charges: AfterCall(charges, "charge_saved_card")),
    "while recording the charge": ("store", lambda store: CrashOn(store, "mark_charged", error=RuntimeError())),
    "after recording, before the pledge moves on": (
        "pledges",
        lambda pledges: CrashOn(pledges, "advance", error=RuntimeError()),
    ),
}


@pytest.mark.parametrize("crash_point", list(CRASH_POINTS))
def test_a_crash_at_any_step_then_redelivery_charges_the_period_once_and_skips_none(world, crash_point):
    # Given a due pledge whose renewal dies at one step on its first delivery
    pledge = _pledge(world)
    port, wrap = CRASH_POINTS[crash_point]
    _schedule(world, "2027-01-10")
    failed = deliver_renewals_crashing(world, port, wrap)
    assert len(failed.failed_ids) == 1

    # When SQS delivers the message again after its backoff
    world.expire_backoffs()
    world.drain()

    # Then the period is charged once, receipted once, and the pledge moved on exactly one month
    assert len(_charges_for(world, pledge, "2027-01")) == 1
    renewal = world.record(renewal_donation_id(pledge.pledge_id, "2027-01"))
    assert (renewal.status, renewal.receipt_status) == (DonationStatus.SUCCEEDED, StepStatus.DONE)
    assert len(world.sendgrid.outbox_for(renewal.donation_id)) == 1
    after = _pledge_now(world, pledge.pledge_id)
    assert (after.renewals, after.last_period, after.next_charge_on) == (1, "2027-01", "2027-02-10")
    # And the next month is still charged (nothing skipped)
    _schedule(world, "2027-02-10")
    world.drain()
    assert len(_charges_for(world, pledge, "2027-02")) == 1


def _on_card(world, pledge: Pledge, test_card: str) -> Pledge:
    """The same pledge, its Customer now paying with one of Stripe's test cards (attached by the SDK)."""
    # The account's own secret key, as the Dashboard would: the functions' restricted keys may not attach.
    account = stripe.StripeClient("sk_test_local_emulator", base_addresses={"api": world.stripe.url})
    method = account.v1.payment_methods.attach(test_card, params={"customer": pledge.customer_id})
    return world.wiring.pledges.create(
        pledge.model_copy(update={"pledge_id": "pl_" + method.id[-12:], "payment_method_id": method.id})
    )


def test_a_renewal_the_bank_wants_authenticated_is_recorded_on_the_donation_and_the_pledge(world):
    # Given a pledge on the test card that always requires authentication (4000002760003184)
    pledge = _on_card(world, _pledge(world), "pm_card_authenticationRequired")

    # When its renewal runs, off-session
    _schedule(world, "2027-01-10")
    world.drain()

    # Then nothing is charged; the donation waits for the donor (tests/integration/test_renewal_authentication.py
    # has them finish it) and the pledge waits for someone to act, with the reason
    renewal = world.record(renewal_donation_id(pledge.pledge_id, "2027-01"))
    assert renewal.status is DonationStatus.REQUIRES_ACTION and renewal.payment_intent_id
    after = _pledge_now(world, pledge.pledge_id)
    assert after.state is PledgeState.NEEDS_ATTENTION
    assert after.last_failure is not None and after.last_failure.startswith("authentication_required: the bank")
    assert (after.last_failure_period, after.renewals, after.due_on) == ("2027-01", 0, None)
    assert world.sendgrid.outbox_for(renewal.donation_id) == []
    assert world.queued("renewal_dlq") == []
    # And a later schedule run leaves it alone (no silent retries on a card that needs the donor); the
    # donor's first pledge, on the card that needs no authentication, was charged and moved on
    assert _schedule(world, "2027-01-11") == {"renewals_scheduled": 0}


def _ops(world, capsys, *args: str) -> tuple[int, str]:
    capsys.readouterr()  # drop what the functions logged
    code = main(["--stack-name", world.pipeline.stack.stack_name, *args], clients=world.pipeline.clients)
    out, err = capsys.readouterr()
    assert code == 0, err
    return code, out


def test_operators_list_the_pledges_needing_attention_and_those_due(world, capsys):
    # Given two pledges of one donor: one renewed, one whose bank wants authentication
    renewed = _pledge(world)
    failing = _on_card(world, renewed, "pm_card_authenticationRequired")
    _schedule(world, "2027-01-10")
    world.drain()

    # When an operator lists the pledges needing attention
    _, out = _ops(world, capsys, "pledges", "list", "--json")

    # Then the failing one is listed, with what happened and what to do, the donor's address masked
    [listed] = json.loads(out)["pledges"]
    assert (listed["pledge_id"], listed["state"], listed["last_failure_period"]) == (
        failing.pledge_id,
        "needs_attention",
        "2027-01",
    )
    assert listed["last_failure"].startswith("authentication_required: the bank wants the donor")
    assert listed["email_masked"] == "a***@e***.org" and "ada@example.org" not in out
    assert "customer_id" not in listed and "payment_method_id" not in listed
    # And the renewed one is among those due next month; show tells one pledge's story
    _, due = _ops(world, capsys, "pledges", "list", "--due", "2027-02-10", "--json")
    assert [p["pledge_id"] for p in json.loads(due)["pledges"]] == [renewed.pledge_id]
    _, shown = _ops(world, capsys, "pledges", "show", renewed.pledge_id)
    assert "renewals             1" in shown and "next_charge_on       2027-02-10" in shown


def test_a_renewal_for_an_unknown_pledge_is_parked_at_once_and_operators_see_why(world, capsys):
    # Given a renewal message for a pledge that does not exist
    attributes = {
        name: {"DataType": "String", "StringValue": value}
        for name, value in (("type", "renew"), ("pledge_id", "pl_missing"), ("period", "2027-01"))
    }
    world.send("renewal", RenewalMessage(pledge_id="pl_missing", period="2027-01").model_dump_json(), attributes)

    # When it is delivered
    result = world.deliver("renewal")

    # Then it is acknowledged from the queue and parked in the renewal DLQ with its reason, at once
    assert not result.failed_ids
    [parked] = world.queued("renewal_dlq")
    assert parked["MessageAttributes"]["failure_reason"]["StringValue"] == "renew:pledge_not_found"
    assert world.queued("renewal") == []
    # And the command the renewal-dlq-not-empty alarm names shows it, reason and pledge included
    capsys.readouterr()
    code = main(
        ["--stack-name", world.pipeline.stack.stack_name, "dlq", "peek", "renewal", "--json"],
        clients=world.pipeline.clients,
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    [message] = json.loads(out)["messages"]
    assert (message["type"], message["failure_reason"], message["reason_source"]) == (
        "renew",
        "renew:pledge_not_found",
        "message",
    )
    assert parked["MessageAttributes"]["pledge_id"]["StringValue"] == "pl_missing"  # kept from the source message
    assert len(world.queued("renewal_dlq")) == 1  # handed back


def test_a_crash_after_the_charge_redelivered_after_stripe_forgot_the_key_does_not_charge_again(world):
    # Given a renewal that died after Stripe charged it, before anything was recorded
    pledge = _pledge(world)
    _schedule(world, "2027-01-10")
    assert deliver_renewals_crashing(
        world, "charges", lambda charges: AfterCall(charges, "charge_saved_card")
    ).failed_ids
    # And its message comes back only after Stripe's idempotency keys (24 h) have expired (a DLQ redrive)
    world.stripe.advance_clock(25 * 3600)

    # When it is delivered again
    world.expire_backoffs()
    world.drain()

    # Then the charge Stripe made is found and recorded: one charge, one receipt, the pledge moved on once
    assert len(_charges_for(world, pledge, "2027-01")) == 1
    renewal = world.record(renewal_donation_id(pledge.pledge_id, "2027-01"))
    assert renewal.status is DonationStatus.SUCCEEDED
    assert len(world.sendgrid.outbox_for(renewal.donation_id)) == 1
    assert _pledge_now(world, pledge.pledge_id).renewals == 1


def test_the_renewal_dlq_alarm_reaches_operators_through_the_notifier_with_its_runbook_section(world, capsys):
    # Given an operators' inbox on the operator topic, and a renewal parked in the renewal DLQ
    pipeline = world.pipeline
    inbox = operator_inbox.__wrapped__(pipeline)
    received(pipeline, inbox)
    world.send_raw("renewal", RenewalMessage(pledge_id="pl_missing", period="2027-01").model_dump_json())
    world.deliver("renewal")

    # When the template's RenewalDLQAlarm fires (CloudWatch to the alarm topic) and the notifier relays it
    alarm_changes(pipeline, "RenewalDLQAlarm", "OK", "ALARM")
    pipeline.deliver_sns()

    # Then operators get the page: what it means, the first command and the runbook section
    # (the shared world's notifier may also relay another test's late notice: this alarm's page is one)
    [page] = [p for p in received(pipeline, inbox) if p["subject"].startswith("ALARM: renewal-dlq-not-empty")]
    notifier = page["Notifier"]
    assert (notifier["section"], notifier["runbook"]) == ("renewal-dlq-not-empty", "RUNBOOK.md#renewal-dlq-not-empty")
    assert notifier["first_command"] == f"donations-ops --stack-name {pipeline.stack.stack_name} dlq peek renewal"
