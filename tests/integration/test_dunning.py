"""Dunning through the real handlers (schedule and renew) against moto and the Stripe emulator: a soft
decline is retried on its days, once per try, then the pledge lapses; a hard decline lapses it at once."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from donations.dunning import MAX_TRIES
from donations.models import DonationStatus, StepStatus
from donations.pledge_links import Purpose
from donations.pledges import DunningNotice, Pledge, PledgeState, renewal_donation_id
from simulator.local.alarms import AlarmEvaluator
from simulator.local.metrics import emf_metric_data
from tests.integration.test_notifier import operator_inbox, received
from tests.integration.test_renewals import (
    _charges_for,
    _on_card,
    _ops,
    _pledge,
    _pledge_now,
    _schedule,
    deliver_renewals_crashing,
)
from tests.support.world import CrashOn

pytestmark = pytest.mark.integration

# Stripe's test cards (docs.stripe.com/testing): 4000000000000341 attaches, then every charge is declined
# (generic_decline, a soft decline); 4000000000009987 is declined lost_card (a hard decline).
FAILING_CARD = "pm_card_chargeCustomerFail"
LOST_CARD = "pm_card_chargeDeclinedLostCard"


def _intents_for(world, pledge: Pledge, period: str, renewal_try: int) -> list[dict[str, Any]]:
    donation_id = renewal_donation_id(pledge.pledge_id, period, renewal_try)
    return [i for i in world.stripe.state()["payment_intents"] if i["metadata"].get("donation_id") == donation_id]


def test_a_soft_decline_is_retried_on_day_3_and_day_7_once_each_then_the_pledge_lapses(world, capsys):
    # Given a pledge due on 2027-01-10 on a card every charge of which is declined
    pledge = _on_card(world, _pledge(world), FAILING_CARD)

    # When the schedule runs hourly-ish through the month and each run's renewals are delivered
    for day, time in (("2027-01-10", "06:00"), ("2027-01-10", "07:00"), ("2027-01-12", "06:00")):
        _schedule(world, day, time)
        world.drain()

    # Then the first try was declined once; the pledge stays active, its retry due on the 13th
    first = _pledge_now(world, pledge.pledge_id)
    assert (first.state, first.renewal_try, first.retry_on, first.due_on) == (
        PledgeState.ACTIVE,
        2,
        "2027-01-13",
        "2027-01-13",
    )
    assert (first.dunning_notice, first.dunning_notice_key, first.last_decline_code) == (
        DunningNotice.RETRY_SCHEDULED,
        "2027-01#1",
        "generic_decline",
    )
    assert first.last_failure is not None and "try 1 of 3 declined; next try on 2027-01-13" in first.last_failure

    # When the retries' days come (and runs replay them)
    for day in ("2027-01-13", "2027-01-13", "2027-01-16", "2027-01-17", "2027-01-17", "2027-01-20"):
        _schedule(world, day, "08:00" if day == "2027-01-13" else "06:00")
        world.drain()

    # Then each try was charged exactly once, with its own donation and idempotency key, on its own day
    for renewal_try in range(1, MAX_TRIES + 1):
        [intent] = _intents_for(world, pledge, "2027-01", renewal_try)
        assert intent["status"] == "requires_payment_method"
        donation = world.record(renewal_donation_id(pledge.pledge_id, "2027-01", renewal_try))
        assert (donation.status, donation.decline_code) == (DonationStatus.DECLINED, "generic_decline")
        assert world.sendgrid.outbox_for(donation.donation_id) == []
    assert _intents_for(world, pledge, "2027-01", MAX_TRIES + 1) == []
    # And after the last try the pledge lapsed: off the due index, with the reason and the donor's notice
    lapsed = _pledge_now(world, pledge.pledge_id)
    assert (lapsed.state, lapsed.due_on, lapsed.retry_on, lapsed.renewals) == (PledgeState.LAPSED, None, None, 0)
    assert (lapsed.dunning_notice, lapsed.dunning_notice_key) == (DunningNotice.LAPSED, "2027-01#3")
    assert lapsed.last_failure is not None and "try 3 of 3 declined; no tries left" in lapsed.last_failure
    assert lapsed.lapsed_at is not None
    # And it is never charged again: on February's day only the donor's other pledge (on a good card) is
    _schedule(world, "2027-02-10")
    world.drain()
    assert _intents_for(world, pledge, "2027-02", 1) == []
    # And operators see it in the list, with why
    _, out = _ops(world, capsys, "pledges", "list", "--state", "lapsed", "--json")
    [listed] = json.loads(out)["pledges"]
    assert (listed["pledge_id"], listed["state"], listed["renewal_try"]) == (pledge.pledge_id, "lapsed", 3)
    assert listed["last_failure"].startswith("generic_decline: try 3 of 3 declined")


def test_a_hard_decline_lapses_the_pledge_at_once_and_is_never_retried(world, capsys):
    # Given a pledge on a card the issuer reports lost
    pledge = _on_card(world, _pledge(world), LOST_CARD)

    # When its renewal runs, and the schedule runs on every later retry day
    for day in ("2027-01-10", "2027-01-13", "2027-01-17"):
        _schedule(world, day)
        world.drain()

    # Then one try only; the donor's record keeps the donor-safe code, the operators' reason the issuer's
    assert len(_intents_for(world, pledge, "2027-01", 1)) == 1
    assert _intents_for(world, pledge, "2027-01", 2) == []
    assert world.record(renewal_donation_id(pledge.pledge_id, "2027-01")).decline_code == "generic_decline"
    after = _pledge_now(world, pledge.pledge_id)
    assert (after.state, after.renewal_try, after.due_on) == (PledgeState.LAPSED, 1, None)
    assert (after.dunning_notice, after.last_decline_code) == (DunningNotice.LAPSED, "generic_decline")
    assert after.last_failure is not None and after.last_failure.startswith("lost_card: a hard decline")
    # And the default list shows it among the pledges whose renewal failed
    _, out = _ops(world, capsys, "pledges", "list", "--json")
    assert pledge.pledge_id in [p["pledge_id"] for p in json.loads(out)["pledges"]]


def test_a_retry_that_succeeds_charges_the_period_once_with_one_receipt_and_the_next_period_starts_at_try_1(world):
    # Given a pledge whose first try was declined (a soft decline)
    good = _pledge(world)
    pledge = _on_card(world, good, FAILING_CARD)
    _schedule(world, "2027-01-10")
    world.drain()
    assert _pledge_now(world, pledge.pledge_id).renewal_try == 2
    # And the card behind the pledge works again by its retry (as after the donor's bank cleared it)
    world.wiring.pledges._table.update_item(
        Key={"pledge_id": pledge.pledge_id},
        UpdateExpression="SET payment_method_id = :pm",
        ExpressionAttributeValues={":pm": good.payment_method_id},
    )

    # When the retry's day comes
    _schedule(world, "2027-01-13")
    world.drain()

    # Then the period is charged once (by its second try), with one receipt, and the pledge moves on
    retried = world.record(renewal_donation_id(pledge.pledge_id, "2027-01", 2))
    assert (retried.status, retried.receipt_status) == (DonationStatus.SUCCEEDED, StepStatus.DONE)
    assert retried.metadata == {"pledge_id": pledge.pledge_id, "renewal_period": "2027-01", "renewal_try": "2"}
    assert len(world.sendgrid.outbox_for(retried.donation_id)) == 1
    after = _pledge_now(world, pledge.pledge_id)
    assert (after.state, after.renewals, after.renewal_try, after.retry_on, after.next_charge_on) == (
        PledgeState.ACTIVE,
        1,
        1,
        None,
        "2027-02-10",
    )
    # And February is charged by its first try
    _schedule(world, "2027-02-10")
    world.drain()
    assert len(_charges_for(world, pledge, "2027-02")) == 1


@pytest.mark.parametrize(
    ("card", "crash_at", "expected"),
    [
        (FAILING_CARD, "schedule_retry", PledgeState.ACTIVE),
        # The donation keeps the donor-safe generic_decline: the issuer's lost_card is asked of Stripe again
        (LOST_CARD, "lapse", PledgeState.LAPSED),
    ],
)
def test_a_crash_before_the_pledge_records_the_decline_is_made_good_by_the_next_delivery(
    world, card, crash_at, expected
):
    # Given a renewal declined and recorded on its donation, whose consumer died before the pledge
    pledge = _on_card(world, _pledge(world), card)
    _schedule(world, "2027-01-10")
    assert deliver_renewals_crashing(
        world, "pledges", lambda pledges: CrashOn(pledges, crash_at, error=RuntimeError())
    ).failed_ids

    # When the message is delivered again
    world.expire_backoffs()
    world.drain()

    # Then the try was charged once, and the pledge took the step the issuer's decline calls for, once
    assert len(_intents_for(world, pledge, "2027-01", 1)) == 1
    after = _pledge_now(world, pledge.pledge_id)
    assert after.state is expected
    assert after.renewal_try == (2 if expected is PledgeState.ACTIVE else 1)


def _emails(world, pledge: Pledge) -> list[dict[str, Any]]:
    return [m for m in world.sendgrid.outbox if m["custom_args"].get("pledge_id") == pledge.pledge_id]


def _manage_link_works(world, pledge: Pledge, text: str) -> None:
    """The email holds a signed manage link to this pledge (the manage page's own check of its token)."""
    [token] = re.findall(r"http\S+#token=(\S+)", text)
    assert world.wiring.pledge_links.verify(token, Purpose.MANAGE, pledge.pledge_id).pledge_id == pledge.pledge_id


def test_each_failed_try_emails_the_donor_once_when_it_is_retried_then_that_the_gift_stopped(world):
    # Given a pledge due on 2027-01-10 on a card every charge of which is declined
    pledge = _on_card(world, _pledge(world), FAILING_CARD)

    # When its first try is declined, and the schedule and the messages are delivered again
    _schedule(world, "2027-01-10")
    world.drain()
    world.redeliver_last_batches()
    _schedule(world, "2027-01-10", "07:00")
    world.drain()

    # Then the donor got one email: not charged, the donor-safe reason, the retry's day and a manage link
    [retry] = _emails(world, pledge)
    assert (retry["to"], retry["subject"]) == ([pledge.email], "Your monthly gift could not be charged")
    text = retry["content"][0]["value"]
    assert "Nothing was charged" in text and "We will try again on January 13, 2027" in text
    assert "Your card was declined." in text and "generic_decline" not in text
    _manage_link_works(world, pledge, text)

    # When the two retries are declined too (each day's run replayed)
    for day in ("2027-01-13", "2027-01-13", "2027-01-17", "2027-01-17"):
        _schedule(world, day, "08:00")
        world.drain()
    world.redeliver_last_batches()

    # Then one email per failed try: the second says when the last try is, the third that the gift stopped
    _, second, stopped = _emails(world, pledge)
    assert "We will try again on January 17, 2027" in second["content"][0]["value"]
    assert stopped["subject"] == "Your monthly gift has stopped"
    text = stopped["content"][0]["value"]
    assert "will not be charged again" in text and "give it a card that works through this link" in text
    assert pledge.customer_id not in text and pledge.payment_method_id not in text
    _manage_link_works(world, pledge, text)


def test_a_hard_decline_emails_the_donor_once_that_the_gift_stopped_without_saying_why_the_bank_refused(world):
    # Given a pledge on a card the issuer reports lost
    pledge = _on_card(world, _pledge(world), LOST_CARD)

    # When its renewal runs and every message is delivered again
    _schedule(world, "2027-01-10")
    world.drain()
    world.redeliver_last_batches()

    # Then one "stopped" email, with the generic reason only (Stripe: never tell a donor "lost" or "stolen")
    [stopped] = _emails(world, pledge)
    assert stopped["subject"] == "Your monthly gift has stopped"
    assert "lost" not in stopped["content"][0]["value"].lower()


def test_a_crash_before_the_pledge_records_the_decline_still_sends_one_email(world):
    # Given a declined renewal whose consumer queued the email and died before the pledge recorded it
    pledge = _on_card(world, _pledge(world), FAILING_CARD)
    _schedule(world, "2027-01-10")
    assert deliver_renewals_crashing(
        world, "pledges", lambda pledges: CrashOn(pledges, "schedule_retry", error=RuntimeError())
    ).failed_ids
    world.drain()
    assert _emails(world, pledge) == []  # the sender waits for the pledge to say what to tell

    # When the renewal is delivered again and the backoffs pass
    world.expire_backoffs()
    world.drain()
    world.expire_backoffs()
    world.drain()

    # Then the donor got exactly one email about that try
    [retry] = _emails(world, pledge)
    assert "We will try again on January 13, 2027" in retry["content"][0]["value"]


def _forward_metrics(world, capsys, service: str, at: datetime) -> None:
    """What CloudWatch Logs does on AWS: the functions' EMF lines (printed) become metrics in moto's
    CloudWatch, stamped ``at`` (each test its own day: moto keeps the other tests' datapoints)."""
    cloudwatch = world.pipeline.clients("cloudwatch")
    for line in capsys.readouterr().out.splitlines():
        if line.startswith('{"_aws"'):
            for namespace, name, value, dimensions, unit in emf_metric_data(json.loads(line), service):
                datum = {"MetricName": name, "Value": value, "Unit": unit, "Timestamp": at}
                datum["Dimensions"] = [{"Name": k, "Value": v} for k, v in dimensions.items()]
                cloudwatch.put_metric_data(Namespace=namespace, MetricData=[datum])


def _page_for(world, inbox: str, logical_id: str, *, now: datetime | None = None) -> list[dict[str, Any]]:
    """Evaluate one template alarm as CloudWatch would, deliver what it publishes through the notifier,
    and return the operators' pages about it."""
    pipeline = world.pipeline
    name = pipeline.stack.alarms[logical_id]
    evaluator = AlarmEvaluator(pipeline.clients("cloudwatch"), pipeline.clients("sns"), alarm_prefix=name)
    evaluator.evaluate(now=now)
    pipeline.deliver_sns()
    section = name.removeprefix(f"{pipeline.stack.stack_name}-")
    return [page for page in received(pipeline, inbox) if page.get("Notifier", {}).get("section") == section]


@pytest.fixture
def inbox(world):
    found = operator_inbox.__wrapped__(world.pipeline)
    received(world.pipeline, found)
    yield found
    cloudwatch = world.pipeline.clients("cloudwatch")
    for logical_id in ("RenewalFailureRateAlarm", "RenewalRunNotFinishedAlarm"):
        cloudwatch.set_alarm_state(
            AlarmName=world.pipeline.stack.alarms[logical_id], StateValue="OK", StateReason="test over"
        )


def test_declines_above_normal_page_operators_with_the_failure_rate_runbook_section(world, capsys, inbox):
    # Given seven pledges due the same day: one on a good card, six on a card every charge of which fails
    good = _pledge(world)
    for _ in range(6):
        _on_card(world, good, FAILING_CARD)

    # When the day's run renews them and their metrics reach CloudWatch
    _schedule(world, "2027-01-10")
    world.drain()
    day = datetime.now(UTC) - timedelta(days=3)
    _forward_metrics(world, capsys, "renew", day)

    # Then the failure-rate alarm fires (6 declined of 7: above about 1 in 5, and at least 6) and operators
    # get its page, with the runbook section and the first command
    [page] = _page_for(world, inbox, "RenewalFailureRateAlarm", now=day + timedelta(minutes=1))
    assert page["subject"].startswith("ALARM")
    assert (page["Notifier"]["section"], page["Notifier"]["runbook"]) == (
        "renewal-failure-rate",
        "RUNBOOK.md#renewal-failure-rate",
    )
    assert page["Notifier"]["first_command"].endswith("pledges list")


def test_a_single_decline_among_charges_does_not_page(world, capsys, inbox):
    # Given a day's renewals: three charged, one declined
    good = _pledge(world)
    for _ in range(2):
        world.wiring.pledges.create(good.model_copy(update={"pledge_id": f"{good.pledge_id}{_}"}))
    _on_card(world, good, FAILING_CARD)

    # When they run and their metrics reach CloudWatch
    _schedule(world, "2027-01-10")
    world.drain()
    day = datetime.now(UTC) - timedelta(days=6)
    _forward_metrics(world, capsys, "renew", day)

    # Then nobody is paged: one donor's card is not a rate above normal
    assert _page_for(world, inbox, "RenewalFailureRateAlarm", now=day + timedelta(minutes=1)) == []


def _run_schedule_as_lambda(world, day: str, at: datetime, *, crashing: bool = False) -> None:
    """One schedule run, and what Lambda records for it in CloudWatch: AWS/Lambda Invocations 1 and
    Errors 1 when it raised (a run that failed or timed out), 0 when it finished, stamped ``at``."""
    module = world.pipeline.handler("ScheduleRenewalsFunction")
    original = module.schedule_renewals
    if crashing:
        module.schedule_renewals = lambda pledges, *args: original(
            CrashOn(pledges, "due_on", error=RuntimeError("due index")), *args
        )
    try:
        _schedule(world, day)
        failed = 0
    except Exception:
        failed = 1
    finally:
        module.schedule_renewals = original
    assert failed == crashing
    dimensions = [{"Name": "FunctionName", "Value": world.pipeline.stack.functions["ScheduleRenewalsFunction"].name}]
    world.pipeline.clients("cloudwatch").put_metric_data(
        Namespace="AWS/Lambda",
        MetricData=[
            {"MetricName": name, "Value": value, "Unit": "Count", "Timestamp": at, "Dimensions": dimensions}
            for name, value in (("Invocations", 1), ("Errors", failed))
        ],
    )


def _run_not_finished_pages(world, inbox: str, now: datetime) -> list[dict[str, Any]]:
    pages = _page_for(world, inbox, "RenewalRunNotFinishedAlarm", now=now)
    return [page for page in pages if page["subject"].startswith("ALARM")]


def test_a_renewal_run_that_stops_finishing_pages_operators_after_two_hours(world, capsys, inbox):
    # Given schedule runs that finished, hourly, as Lambda counts them (Invocations without Errors)
    start = datetime.now(UTC) - timedelta(days=9)
    for hour in range(3):
        _run_schedule_as_lambda(world, "2027-01-10", start + timedelta(hours=hour))
    assert _run_not_finished_pages(world, inbox, start + timedelta(hours=2, minutes=30)) == []
    # and no custom heartbeat metric: the alarm reads the function's free AWS/Lambda metrics
    assert "RenewalRunsFinished" not in capsys.readouterr().out

    # When no run happens for the next two hours (the rule disabled, the function throttled)
    pages = _run_not_finished_pages(world, inbox, start + timedelta(hours=4, minutes=5))

    # Then operators get its page, with its runbook section
    [page] = pages
    assert page["Notifier"]["section"] == "renewal-run-not-finished"


def test_renewal_runs_that_fail_every_hour_page_operators_although_they_run(world, inbox):
    # Given a run that finished, then two hours of runs that each fail (Invocations 1, Errors 1)
    start = datetime.now(UTC) - timedelta(days=12)
    _run_schedule_as_lambda(world, "2027-01-10", start)
    for hour in (1, 2):
        _run_schedule_as_lambda(world, "2027-01-10", start + timedelta(hours=hour), crashing=True)
    assert _run_not_finished_pages(world, inbox, start + timedelta(hours=1, minutes=30)) == []

    # When the alarm is evaluated after the second failed hour
    pages = _run_not_finished_pages(world, inbox, start + timedelta(hours=2, minutes=30))

    # Then operators are paged: invoked is not finished
    [page] = pages
    assert page["Notifier"]["section"] == "renewal-run-not-finished"
