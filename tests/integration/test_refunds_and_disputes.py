"""After the gift, through the in-process pipeline (moto, the Stripe and SendGrid emulators): a refund made in
the Stripe Dashboard reaches the record, the donor's mail and the report; a dispute goes created -> lost on a
monthly gift (the pledge stops, operators are paged through the notifier) and created -> won on another.

Stripe references for the behaviour relied on: ``charge.refunded`` "occurs whenever a charge is refunded,
including partial refunds" with the Charge's ``amount_refunded`` the sum so far, and ``charge.dispute.closed``
"occurs when a dispute is closed and the dispute status changes to lost, warning_closed, or won"
(docs.stripe.com/api/events/types; ``stripe.Charge``, ``stripe.Dispute`` of the pinned SDK).
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from donations import dispute_reminders
from donations.models import DonationStatus, RefundState, StepStatus
from donations.pledges import PledgeState, pledge_from_donation, pledge_id_for, renewal_donation_id
from donations_ops.cli import main
from simulator.local.alarms import AlarmEvaluator
from simulator.local.events import scheduled_event
from simulator.local.metrics import emf_metric_data, put_metric
from tests.integration.test_notifier import operator_inbox, received
from tests.support.keys import a_key
from tests.support.world import DONATION

pytestmark = pytest.mark.integration


def charged(world: Any, key: str, **changes: Any) -> tuple[str, str]:
    """A donation charged, its receipt sent: (donation id, its Stripe Charge id)."""
    answer = world.post({**DONATION, "save_card": False, **changes}, key=a_key(key))
    assert answer.status == 201, answer.body
    world.drain()
    [intent] = world.stripe.intents_for(answer.body["donation_id"])
    return str(answer.body["donation_id"]), str(intent["latest_charge"])


def mails(world: Any, donation_id: str) -> list[dict[str, Any]]:
    """The donation's mails as SendGrid rendered them (subject, html, text), oldest first."""
    return [mail["rendered"] for mail in world.sendgrid.outbox_for(donation_id)]


def events_about(world: Any, event_type: str, about: str) -> list[dict[str, Any]]:
    found = []
    for event in world.stripe.events:
        obj = event["data"]["object"]
        if event["type"] == event_type and about in (obj["id"], obj.get("payment_intent"), obj.get("charge")):
            found.append(dict(event))
    return found


def report_json(world: Any, capsys: Any) -> dict[str, Any]:
    capsys.readouterr()
    code = main(["--stack-name", world.pipeline.stack.stack_name, "report", "--date", "today", "--json"],
                clients=world.pipeline.clients)  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0, err
    return dict(json.loads(out))


# -- refunds -----------------------------------------------------------------------------------------


def test_a_full_refund_made_in_the_dashboard_reaches_the_record_the_donor_and_the_report(world, capsys):
    # Given a donation charged and receipted
    donation_id, charge_id = charged(world, "key-dashboard-refund")
    assert len(mails(world, donation_id)) == 1

    # When the charity refunds it in full in the Stripe Dashboard and Stripe sends charge.refunded
    world.stripe.refund(charge_id)
    [event] = events_about(world, "charge.refunded", charge_id)
    answer = world.deliver_stripe_event(event)
    world.drain()

    # Then the record holds the refund, and the donor gets one refund notice: nothing remains a gift
    assert (answer.status, answer.body["outcome"]) == (200, "refund_recorded")
    record = world.record(donation_id)
    assert (record.amount_refunded, record.refund_state, record.net_amount) == (2500, RefundState.REFUNDED, 0)
    assert record.status is DonationStatus.SUCCEEDED
    receipt, notice = mails(world, donation_id)
    assert receipt["subject"].startswith("Receipt for your donation")
    assert notice["subject"].startswith("Refund of your donation")
    for body in (notice["text"], notice["html"]):
        assert "refunded your donation" in body and "in full: $25.00" in body
        assert "please do not use that receipt for your taxes" in body
    assert record.refund_notice_amount == 2500 and record.refund_notice_message_id

    # And Stripe delivering the event again sends nothing more
    again = world.deliver_stripe_event(event)
    world.drain()
    assert again.status == 200 and len(mails(world, donation_id)) == 2
    # (as Stripe does, the refund also emitted refund.created, which this endpoint does not subscribe to)
    assert len(events_about(world, "refund.created", charge_id)) == 1

    # And the report counts the gift gross, the refund, and nets it
    report = report_json(world, capsys)
    row = next(r for r in report["rows"] if r["donation_id"] == donation_id)
    assert (row["amount_refunded"], row["net_amount"]) == ("2500", "0")


def test_two_dashboard_refunds_delivered_in_reverse_order_are_counted_once_with_one_notice(world):
    # Given a donation refunded in part twice in the Dashboard: 10.00, then 5.00 more (sums 1000 and 1500)
    donation_id, charge_id = charged(world, "key-two-refunds")
    world.stripe.refund(charge_id, 1000)
    world.stripe.refund(charge_id, 500)
    first, second = events_about(world, "charge.refunded", charge_id)
    assert (first["data"]["object"]["amount_refunded"], second["data"]["object"]["amount_refunded"]) == (1000, 1500)

    # When Stripe delivers the later one first, then the earlier one
    later = world.deliver_stripe_event(second)
    earlier = world.deliver_stripe_event(first)
    world.drain()

    # Then the record holds the later sum; the earlier one changes nothing and sends nothing
    assert (later.body["outcome"], earlier.body["outcome"]) == ("refund_recorded", "already_final")
    record = world.record(donation_id)
    assert (record.amount_refunded, record.refund_state) == (1500, RefundState.PARTIALLY_REFUNDED)
    _, notice = mails(world, donation_id)
    assert notice["subject"].startswith("Corrected receipt")
    for body in (notice["text"], notice["html"]):
        assert "We refunded $15.00 of your donation" in body and "$10.00 remains your gift" in body


def test_a_refund_notice_waits_for_the_receipt_it_corrects(world):
    # Given a donation whose receipt SendGrid has not taken yet (an outage)
    world.sendgrid.faults.add("http_error", status=503, path_prefix="/v3/mail/send")
    donation_id, charge_id = charged(world, "key-notice-waits")
    assert world.record(donation_id).receipt_status is not StepStatus.DONE

    # When it is refunded in part meanwhile and the outage ends
    world.stripe.refund(charge_id, 500)
    world.deliver_stripe_event(world.stripe_event("charge.refunded", charge_id))
    world.sendgrid.faults.clear()
    world.expire_backoffs()
    world.drain()
    world.expire_backoffs()
    world.drain()

    # Then the receipt goes first, then its correction, each once
    receipt, notice = mails(world, donation_id)
    assert receipt["subject"].startswith("Receipt") and notice["subject"].startswith("Corrected receipt")


# -- disputes ----------------------------------------------------------------------------------------


def _renewal(world: Any, key: str) -> tuple[Any, str, str]:
    """A monthly pledge and its first renewal, charged and receipted: (pledge, donation id, charge id)."""
    answer = world.post({**DONATION, "save_card": True}, key=a_key(key))
    world.drain()
    first = world.record(answer.body["donation_id"])
    pledge = world.wiring.pledges.create(pledge_from_donation(first, 10, date(2026, 12, 5)))
    at = datetime(2027, 1, 10, 6, tzinfo=UTC)
    world.pipeline.invoke("ScheduleRenewalsFunction", scheduled_event("arn:aws:events:us-east-1:1:rule/r", at=at))
    world.drain()
    donation_id = renewal_donation_id(pledge.pledge_id, "2027-01")
    [intent] = world.stripe.intents_for(donation_id)
    return pledge, donation_id, str(intent["latest_charge"])


def _page(world: Any, inbox: str, capsys: Any) -> list[dict[str, Any]]:
    """What the local stack does with the webhook's metric lines: CloudWatch turns them into metrics, the
    template's DisputeAlarm is evaluated, and the notifier relays its change to the operators' topic."""
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"DisputeNotices"' in line]
    cloudwatch = world.pipeline.clients("cloudwatch")
    for document in lines:
        for namespace, name, value, dimensions, unit in emf_metric_data(document, "stripe_webhook"):
            put_metric(cloudwatch, namespace, name, value, dimensions, unit)
    alarm_name = world.pipeline.stack.alarms["DisputeAlarm"]
    AlarmEvaluator(cloudwatch, world.pipeline.clients("sns"), alarm_prefix=alarm_name).evaluate(datetime.now(UTC))
    world.pipeline.deliver_sns()
    pages = [p for p in received(world.pipeline, inbox) if p["subject"].startswith("ALARM: dispute")]
    cloudwatch.set_alarm_state(AlarmName=alarm_name, StateValue="OK", StateReason="handled")
    return pages


def test_a_dispute_lost_on_a_monthly_gift_stops_the_pledge_and_pages_operators_and_one_won_restores_nothing(
    world, capsys
):
    inbox = operator_inbox.__wrapped__(world.pipeline)
    received(world.pipeline, inbox)
    # Given a monthly donor's renewal, charged and receipted, and a one-off donation by someone else
    pledge, renewal_id, renewal_charge = _renewal(world, "key-dispute-pledge")
    other_id, other_charge = charged(world, "key-dispute-won", email="grace@example.org")
    capsys.readouterr()

    # When the monthly donor disputes the renewal (charge.dispute.created)
    dispute = world.stripe.dispute(renewal_charge)
    opened = world.deliver_stripe_event(world.stripe_event("charge.dispute.created", dispute["id"]))

    # Then the donation records it, the pledge is stopped (off the due index) and operators are paged
    assert opened.body["outcome"] == "dispute_recorded"
    record = world.record(renewal_id)
    assert (record.dispute_status, record.dispute_reason, record.dispute_amount) == (
        "needs_response",
        "fraudulent",
        2500,
    )
    assert record.dispute_evidence_due_by is not None
    stopped = world.wiring.pledges.get(pledge.pledge_id)
    assert stopped.state is PledgeState.CANCELED and stopped.due_on is None
    assert stopped.canceled_reason == f"dispute:fraudulent:{dispute['id']}"
    [page] = _page(world, inbox, capsys)
    assert page["Notifier"]["section"] == "dispute"
    assert page["Notifier"]["first_command"].endswith(" disputes")
    # And the schedule charges the pledge no more
    at = datetime(2027, 2, 10, 6, tzinfo=UTC)
    ran = world.pipeline.invoke("ScheduleRenewalsFunction", scheduled_event("arn:aws:events:us-east-1:1:rule/r", at=at))
    assert ran == {"renewals_scheduled": 0}

    # When the dispute is lost, and another donation's dispute is opened and won
    world.deliver_stripe_event(
        world.stripe_event("charge.dispute.closed", world.stripe.close_dispute(dispute["id"], "lost")["id"])
    )
    other = world.stripe.dispute(other_charge)
    world.deliver_stripe_event(world.stripe_event("charge.dispute.created", other["id"]))
    won = world.stripe.close_dispute(other["id"], "won")
    world.deliver_stripe_event(world.stripe_event("charge.dispute.closed", won["id"]))

    # Then the lost one took the gift back, the won one restores nothing but is recorded, and operators heard
    lost = world.record(renewal_id)
    assert (lost.dispute_status, lost.net_amount, lost.amount_lost_to_dispute) == ("lost", 0, 2500)
    kept = world.record(other_id)
    assert (kept.dispute_status, kept.net_amount, kept.dispute_closed_at is not None) == ("won", 2500, True)
    assert world.wiring.pledges.get(other_id) is None  # a one-off gift has no pledge to stop
    assert len(_page(world, inbox, capsys)) == 1
    # And no mail went to either donor about the dispute
    assert len(mails(world, renewal_id)) == 1 and len(mails(world, other_id)) == 1

    # And the report shows the amounts disputed and lost, and the net
    report = report_json(world, capsys)
    assert report["disputed"] == {"usd": "50.00 USD"} and report["lost_to_disputes"] == {"usd": "25.00 USD"}
    assert report["disputes"] == {"lost": 1, "won": 1}


def _dispute_events(world: Any, payment_intent_id: str) -> list[dict[str, Any]]:
    return [
        dict(event)
        for event in world.stripe.events
        if event["type"].startswith("charge.dispute.")
        and event["data"]["object"]["payment_intent"] == payment_intent_id
    ]


def test_the_dispute_cards_events_delivered_twice_and_backwards_record_the_fee_once_and_end_won(world, capsys):
    inbox = operator_inbox.__wrapped__(world.pipeline)
    received(world.pipeline, inbox)
    # Given a gift paid with Stripe's dispute test card 4000000000000259 ("charge succeeds, only to be
    # disputed as fraudulent", docs.stripe.com/testing): created, then funds withdrawn with the dispute fee
    donation_id, _ = charged(world, "key-dispute-card", payment_method="pm_card_createDispute")
    [intent] = world.stripe.intents_for(donation_id)
    [dispute] = world.stripe.disputes_for(intent["id"])
    # and the dispute won: closed, then funds reinstated
    world.stripe.close_dispute(dispute["id"], "won")
    events = _dispute_events(world, intent["id"])
    assert [e["type"].removeprefix("charge.dispute.") for e in events] == [
        "created",
        "funds_withdrawn",
        "closed",
        "funds_reinstated",
    ]
    capsys.readouterr()

    # When Stripe delivers them newest first, each twice
    outcomes = [world.deliver_stripe_event(event).body["outcome"] for event in reversed(events) for _ in range(2)]

    # Then only the newest applied; the record holds the won dispute, its fee once, the gift whole
    assert outcomes[0] == "dispute_recorded"
    assert set(outcomes[2:]) == {"already_final"}
    record = world.record(donation_id)
    assert (record.dispute_status, record.dispute_balance_transactions, record.net_amount) == ("won", 2, 2500)
    assert (record.dispute_fee, record.dispute_fee_currency) == (1500, "usd")
    # And operators are paged once, the report counts the fee once
    assert len(_page(world, inbox, capsys)) == 1
    report = report_json(world, capsys)
    assert report["dispute_fees"] == {"usd": "15.00 USD"} and report["disputes"] == {"won": 1}


def test_a_refund_that_fails_later_gives_the_gift_back_without_a_second_mail(world, capsys):
    # Given a gift paid with 4000000000005126, whose refunds "begin as succeeded" and then fail
    # (docs.stripe.com/testing, "Refunds"), refunded in part in the Dashboard and the donor told
    donation_id, charge_id = charged(world, "key-refund-fails", payment_method="pm_card_refundFail")
    world.stripe.refund(charge_id, 1000)
    refunded = world.stripe_event("charge.refunded", charge_id)
    world.deliver_stripe_event(refunded)
    world.drain()
    assert len(mails(world, donation_id)) == 2

    # When the refund fails (refund.updated and refund.failed, each delivered twice), then the earlier
    # charge.refunded is delivered again
    outcomes = [
        world.deliver_stripe_event(world.stripe_event(kind, charge_id)).body["outcome"]
        for kind in ("refund.updated", "refund.failed", "refund.updated", "refund.failed")
    ]
    again = world.deliver_stripe_event({**refunded, "id": refunded["id"] + "_late"})
    world.drain()

    # Then the refunded amount is a gift again, once; no mail; the report shows the gift whole
    assert outcomes == ["refund_failed", "already_final"] * 2  # a redelivered event id is answered as before
    assert again.body["outcome"] == "already_final"
    record = world.record(donation_id)
    assert (record.amount_refunded, record.amount_refund_failed, record.net_amount) == (0, 1000, 2500)
    assert record.refund_failure_reason == "expired_or_canceled_card"
    assert len(mails(world, donation_id)) == 2
    report = report_json(world, capsys)
    assert report["refunded"] == {} and report["refunds_failed"] == {"usd": "10.00 USD"}
    # And an operator looking the donation up is told the money is owed back another way
    capsys.readouterr()
    code = main(["--stack-name", world.pipeline.stack.stack_name, "donor", "show", donation_id, "--json"],
                clients=world.pipeline.clients)  # fmt: skip
    shown = json.loads(capsys.readouterr().out)
    assert code == 0 and "10.00 USD (expired_or_canceled_card" in json.dumps(shown)
    assert "return it to the donor another way" in json.dumps(shown)


def test_a_dispute_on_the_gift_that_started_a_pledge_stops_the_pledge(world):
    # Given a monthly gift through the API: charged, its card saved, its pledge made by the tokenize step
    answer = world.post({**DONATION, "save_card": True, "monthly": True}, key=a_key("key-dispute-first-gift"))
    assert answer.status == 201, answer.body
    world.drain()
    first_id = answer.body["donation_id"]
    pledge_id = pledge_id_for(first_id)
    assert world.wiring.pledges.get(pledge_id).state is PledgeState.ACTIVE
    [intent] = world.stripe.intents_for(first_id)

    # When the donor disputes that first gift
    dispute = world.stripe.dispute(str(intent["latest_charge"]))
    world.deliver_stripe_event(world.stripe_event("charge.dispute.created", dispute["id"]))

    # Then the pledge it started is stopped: the card is charged no more
    stopped = world.wiring.pledges.get(pledge_id)
    assert stopped.state is PledgeState.CANCELED and stopped.due_on is None
    assert stopped.canceled_reason == f"dispute:fraudulent:{dispute['id']}"


def test_a_monthly_gift_disputed_before_its_pledge_exists_never_starts_charging(world):
    # Given a monthly gift paid with Stripe's dispute test card: the dispute comes at once (docs.stripe.com/testing)
    answer = world.post(
        {**DONATION, "save_card": True, "monthly": True, "payment_method": "pm_card_createDispute"},
        key=a_key("key-dispute-before-pledge"),
    )
    first_id = answer.body["donation_id"]
    [intent] = world.stripe.intents_for(first_id)

    # When its dispute event is applied before the tokenize step makes the pledge
    created = world.deliver_stripe_event(world.stripe_event("charge.dispute.created", intent["id"]))
    assert created.body["outcome"] == "dispute_recorded"
    world.drain()

    # Then the pledge made afterwards is stopped at once: the disputed card is charged no more
    pledge = world.wiring.pledges.get(pledge_id_for(first_id))
    assert pledge.state is PledgeState.CANCELED and pledge.due_on is None
    assert pledge.canceled_reason.startswith("dispute:fraudulent:dp_")


def test_a_fraudulent_dispute_stops_the_donors_pledges_on_that_card_and_no_other(world):
    # Given a donor with two monthly pledges on one card (Visa ••4242) and one on another (Mastercard ••4444)
    def monthly(key: str, payment_method: str) -> str:
        answer = world.post(
            {**DONATION, "email": "lin@example.org", "monthly": True, "payment_method": payment_method}, key=a_key(key)
        )
        assert answer.status == 201, answer.body
        return str(answer.body["donation_id"])

    disputed, same_card, other_card = (
        monthly("key-fraud-visa-1", "pm_card_visa"),
        monthly("key-fraud-visa-2", "pm_card_visa"),
        monthly("key-fraud-mastercard", "pm_card_mastercard"),
    )
    world.drain()
    [intent] = world.stripe.intents_for(disputed)

    # When the cardholder disputes one gift as fraudulent
    dispute = world.stripe.dispute(str(intent["latest_charge"]))
    world.deliver_stripe_event(world.stripe_event("charge.dispute.created", dispute["id"]))

    # Then both pledges on that card stop, and the one on the other card goes on
    states = {d: world.wiring.pledges.get(pledge_id_for(d)).state for d in (disputed, same_card, other_card)}
    assert states == {disputed: PledgeState.CANCELED, same_card: PledgeState.CANCELED, other_card: PledgeState.ACTIVE}
    assert world.wiring.pledges.get(pledge_id_for(same_card)).canceled_reason == f"dispute:fraudulent:{dispute['id']}"


def test_metadata_naming_someone_elses_pledge_is_refused_and_nothing_is_charged(world):
    # Given a monthly donor's pledge
    pledge, _, _ = _renewal(world, "key-victim-pledge")
    charges = world.stripe.payment_intents_created

    # When another donor names it in their gift's metadata (to have a dispute of theirs stop it)
    answer = world.post({**DONATION, "metadata": {"pledge_id": pledge.pledge_id}}, key=a_key("key-names-a-pledge"))

    # Then the gift is refused before Stripe, and the pledge is as it was
    assert (answer.status, answer.body["error"]["code"]) == (400, "invalid_metadata")
    assert world.stripe.payment_intents_created == charges
    assert world.wiring.pledges.get(pledge.pledge_id).state is PledgeState.ACTIVE


def test_operators_are_reminded_once_a_day_of_evidence_due_within_three_days(world):
    inbox = operator_inbox.__wrapped__(world.pipeline)
    received(world.pipeline, inbox)
    # Given an open dispute, its evidence due in 7 days (the emulator's evidence_details.due_by)
    donation_id, charge_id = charged(world, "key-dispute-reminder")
    dispute = world.stripe.dispute(charge_id)
    world.deliver_stripe_event(world.stripe_event("charge.dispute.created", dispute["id"]))
    due_by = datetime.fromtimestamp(dispute["evidence_details"]["due_by"], UTC)
    rule = "arn:aws:events:us-east-1:1:rule/notifier-growth"

    def scheduled_run(at: datetime) -> list[dict[str, Any]]:
        world.pipeline.invoke("NotifierFunction", scheduled_event(rule, at=at))
        world.pipeline.deliver_sns()
        return [p for p in received(world.pipeline, inbox) if p["Notifier"].get("kind") == "evidence_due"]

    # When the notifier's schedule runs 5 days before, then 2 days before (twice), then the next day
    early = scheduled_run(due_by - timedelta(days=5))
    near = scheduled_run(due_by - timedelta(days=2))
    same_day = scheduled_run(due_by - timedelta(days=2) + timedelta(minutes=15))
    next_day = scheduled_run(due_by - timedelta(days=1))

    # Then operators hear of it once a day within the three days, with the runbook section and first command
    assert (early, same_day) == ([], [])
    assert [page["Notifier"]["donation_id"] for page in near + next_day] == [donation_id, donation_id]
    assert near[0]["Notifier"]["section"] == "dispute" and near[0]["Notifier"]["first_command"].endswith(" disputes")
    assert near[0]["subject"].startswith("DUE SOON: dispute: evidence for donation")
    # And once the dispute is closed, no more
    closed = world.stripe.close_dispute(dispute["id"], "lost")
    world.deliver_stripe_event(world.stripe_event("charge.dispute.closed", closed["id"]))
    assert scheduled_run(due_by) == []


def test_a_reminder_that_could_not_be_published_is_sent_by_the_next_run(world):
    # Given an open dispute whose evidence is due tomorrow
    donation_id, charge_id = charged(world, "key-dispute-reminder-retry")
    dispute = world.stripe.dispute(charge_id)
    world.deliver_stripe_event(world.stripe_event("charge.dispute.created", dispute["id"]))
    at = datetime.fromtimestamp(dispute["evidence_details"]["due_by"], UTC) - timedelta(days=1)
    table, published = world.wiring.store._table, []

    def outage(due: dispute_reminders.EvidenceDue) -> None:
        raise ConnectionError("SNS unreachable")

    # When the first run cannot publish, and the next one can
    with pytest.raises(ConnectionError):
        dispute_reminders.remind(table, at, outage)
    sent = dispute_reminders.remind(table, at + timedelta(minutes=15), published.append)

    # Then the day's reminder was given back and sent by the next run, once
    assert [due.donation_id for due in sent] == [donation_id] == [due.donation_id for due in published]
    assert dispute_reminders.remind(table, at + timedelta(minutes=30), published.append) == []
