"""No money taken without a record: Stripe's events about superseded charge attempts, success events
whatever the record says, through the real handlers against moto and the Stripe emulator.

The interleavings are driven deterministically: a port of the charge handler delivers Stripe's event
to the webhook route at the exact step where production could see it arrive.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import stripe

from donations.models import DonationStatus, StepStatus
from donations.webhooks import verify_event
from simulator.emulators.stripe import encode_event, sign_payload
from simulator.local.alarms import AlarmEvaluator
from simulator.local.events import LambdaContext
from simulator.local.metrics import emf_metric_data, put_metric
from tests.support.keys import a_key
from tests.support.world import DONATION, World

pytestmark = pytest.mark.integration


class Interleave:
    """A port that behaves like the real one, except that ``action`` runs just before ``method`` (or
    just after it, ``after=True``): an event arriving at that very step of the charge. The action
    runs to its end in a thread of its own, as another invocation would (none of this one's context)."""

    def __init__(self, port: Any, method: str, action: Callable[[], None], *, after: bool = False) -> None:
        self._port, self._method, self._action, self._after = port, method, action, after

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._port, name)
        if name != self._method:
            return attribute

        def interleaved(*args: Any, **kwargs: Any) -> Any:
            if not self._after:
                self._elsewhere()
            result = attribute(*args, **kwargs)
            if self._after:
                self._elsewhere()
            return result

        return interleaved

    def _elsewhere(self) -> None:
        worker = threading.Thread(target=self._action)
        worker.start()
        worker.join(timeout=30)
        assert not worker.is_alive()


def webhook_applies(world: World, event: dict[str, Any]) -> str:
    """The webhook function's own steps for an event Stripe signed (verify_event, then its apply_once)
    while the charge function runs: the local API runs its functions one at a time
    (simulator.local.pipeline), so this event cannot come through the route at that moment."""
    module = world.pipeline.handler("StripeWebhookFunction")
    secret = world.pipeline.providers.stripe_webhook_secret
    payload = encode_event(event)
    verified = verify_event(payload.decode(), sign_payload(payload, secret), secret)
    module.idempotency_config.register_lambda_context(LambdaContext("stripe-webhook", timeout_seconds=10))
    return str(module.apply_once()(event=verified.model_dump(mode="json"))["outcome"])


def unrecorded_charges(output: str) -> float:
    """The UnrecordedCharges count in the EMF lines Powertools printed (its one alarmed series)."""
    found = 0.0
    for line in output.splitlines():
        if line.startswith("{") and '"UnrecordedCharges"' in line:
            for _, name, value, dimensions, _ in emf_metric_data(json.loads(line), None):
                if name == "UnrecordedCharges":
                    assert dimensions == {"service": "payments"}
                    found += value
    return found


def _attempt_0_spent_with_a_leftover(world: World, key: str) -> tuple[str, str]:
    """Attempt 0 got a stored 500 and left a PaymentIntent that could still be confirmed; long enough
    ago that the donor's retry moves to attempt 1. (donation id, attempt 0's PaymentIntent id)"""
    world.stripe.faults.add("stored_error", status=500, phase="before", times=1, path_prefix="/v1/payment_intents")
    assert world.post(DONATION, key=key).status == 503
    [donation_id] = world.donation_ids()
    leftover = world.stripe.leave_unconfirmed_intent(DONATION["amount"], DONATION["currency"], donation_id, "0")
    world.age_charge_attempt(donation_id, 31)
    return donation_id, leftover["id"]


@pytest.mark.parametrize(
    ("port", "method", "after"),
    [("payments", "cancel", True), ("store", "next_charge_attempt", False), ("store", "mark_charged", False)],
    ids=["right-after-the-cancel", "before-the-next-attempt", "before-attempt-1-is-recorded"],
)
def test_a_cancel_of_a_superseded_attempt_never_moves_the_donation(world, port, method, after):
    # Given attempt 0 was spent by a stored 500 and left a PaymentIntent that the retry must cancel
    donation_id, attempt_0 = _attempt_0_spent_with_a_leftover(world, key=a_key(f"key-superseded-{method}"))
    delivered: list[Any] = []

    def stripe_reports_the_cancel() -> None:
        delivered.append(webhook_applies(world, world.stripe_event("payment_intent.canceled", attempt_0)))

    # When the donor retries, and Stripe's payment_intent.canceled for attempt 0 arrives at that step
    with world.charge_ports(**{port: lambda real: Interleave(real, method, stripe_reports_the_cancel, after=after)}):
        answer = world.post(DONATION, key=a_key(f"key-superseded-{method}"))

    # Then the event was about a superseded attempt and moved nothing: the donor is told charged
    assert delivered == ["superseded"]
    assert (answer.status, answer.body) == (201, {"donation_id": donation_id, "status": "succeeded"})
    attempt_1 = next(i for i in world.stripe.intents_for(donation_id) if i["metadata"]["charge_attempt"] == "1")
    record = world.record(donation_id)
    assert (record.status, record.charge_attempt, record.payment_intent_id) == (
        DonationStatus.SUCCEEDED,
        1,
        attempt_1["id"],
    )
    # And attempt 1's success event is the donation's own, a retry is answered from the record, and
    # the follow-ups run once
    succeeded = world.deliver_stripe_event(world.stripe_event("payment_intent.succeeded", attempt_1["id"]))
    assert (succeeded.status, succeeded.body["outcome"]) == (200, "succeeded")
    assert world.post(DONATION, key=a_key(f"key-superseded-{method}")).status == 201
    world.drain()
    record = world.record(donation_id)
    assert record.receipt_status is StepStatus.DONE and record.card_status is StepStatus.DONE
    assert len(world.sendgrid.outbox_for(donation_id)) == 1
    assert world.stripe.charges_for(donation_id) == 1
    assert world.stripe.payment_intent(attempt_0)["status"] == "canceled"


def test_a_failure_of_a_superseded_attempt_never_moves_the_donation(world):
    # Given a donation now charging attempt 1 (attempt 0 spent)
    donation_id, attempt_0 = _attempt_0_spent_with_a_leftover(world, key=a_key("key-superseded-failure"))
    event = {
        **world.stripe_event("payment_intent.created", attempt_0),
        "id": "evt_attempt_0_failed",
        "type": "payment_intent.payment_failed",
    }
    event["data"]["object"]["last_payment_error"] = {"type": "card_error", "code": "card_declined"}

    # When Stripe reports a failure of attempt 0 while the record still shows it spent
    answer = world.deliver_stripe_event(event)

    # Then nothing moved, and the donor's retry charges attempt 1
    assert (answer.status, answer.body["outcome"]) == (200, "superseded")
    assert world.record(donation_id).status is DonationStatus.PENDING
    assert world.post(DONATION, key=a_key("key-superseded-failure")).status == 201
    assert world.stripe.charges_for(donation_id) == 1


@pytest.mark.parametrize("recorded_as", ["canceled", "failed", "declined"])
def test_a_success_for_a_donation_recorded_as_not_charged_is_recorded_followed_up_and_counted(
    world, capsys, recorded_as
):
    # Given a 3-D Secure donation that the record says ended without a charge
    answer = world.post(
        {**DONATION, "payment_method": "pm_card_authenticationRequired"}, key=a_key(f"key-{recorded_as}")
    )
    assert answer.status == 202
    donation_id = answer.body["donation_id"]
    intent_id = world.record(donation_id).payment_intent_id
    store = world.wiring.store
    {
        "canceled": lambda: store.mark_canceled(donation_id, "abandoned", intent_id),
        "failed": lambda: store.mark_failed(donation_id, "payment_intent_authentication_failure"),
        "declined": lambda: store.mark_declined(donation_id, "generic_decline", intent_id),
    }[recorded_as]()
    # ...while the donor did authenticate, and Stripe took the money
    world.stripe.authenticate(intent_id, "succeed")
    capsys.readouterr()

    # When Stripe's payment_intent.succeeded arrives
    delivered = world.deliver_stripe_event(world.stripe_event("payment_intent.succeeded", intent_id))

    # Then it is recorded as charged (saying what the record said), counted for the alarm, and followed up
    assert (delivered.status, delivered.body["outcome"]) == (200, "conflict")
    assert unrecorded_charges(capsys.readouterr().out) == 1
    record = world.record(donation_id)
    assert (record.status, record.payment_intent_id, record.corrected_from) == (
        DonationStatus.SUCCEEDED,
        intent_id,
        DonationStatus(recorded_as),
    )
    world.drain()
    record = world.record(donation_id)
    assert record.receipt_status is StepStatus.DONE and record.card_status is StepStatus.DONE
    assert record.unsettled_since is None
    assert len(world.sendgrid.outbox_for(donation_id)) == 1
    # And the donor's resubmission is answered "charged", not "submit it again"
    resubmitted = world.post(
        {**DONATION, "payment_method": "pm_card_authenticationRequired"}, key=a_key(f"key-{recorded_as}")
    )
    assert resubmitted.status == 201


# -- a resubmission is answered from its record, whatever the card-testing checks say ---------------


def test_resubmissions_under_attack_mode_are_answered_from_their_records(world):
    from donations_ops.card_testing import force_attack_mode
    from donations_ops.stack_resources import discover
    from simulator.local.pipeline import LOCAL_SOURCE_IP_HEADER

    def donate(key: str, payment_method: str, token: str | None = None) -> Any:
        headers = {LOCAL_SOURCE_IP_HEADER: "203.0.113.9", **({"Challenge-Token": token} if token else {})}
        return world.post({**DONATION, "payment_method": payment_method}, key=a_key(key), headers=headers)

    with world.template_card_testing() as screening:
        # Given donations that exist: charged with the answer lost, declined, waiting for 3-D Secure,
        # and in flight (a stored 500 too recent to move on from)
        world.stripe.faults.add("reset", phase="after", path_prefix="/v1/payment_intents")
        assert donate("charged-answer-lost", "pm_card_visa").status == 503
        world.stripe.faults.clear()
        assert donate("declined", "pm_card_chargeDeclined").status == 402
        assert donate("three-d-secure", "pm_card_authenticationRequired").status == 202
        world.stripe.faults.add("stored_error", status=500, times=1, path_prefix="/v1/payment_intents")
        assert donate("in-flight", "pm_card_visa").status == 503
        charged = {d: world.stripe.charges_for(d) for d in world.donation_ids()}
        intents = world.stripe.payment_intents_created

        # When the attack mode is on (forced, and known to the function), as new donations show
        clients = world.pipeline.clients
        force_attack_mode(clients, discover(clients, world.pipeline.stack_name), on=True, minutes=10, by="test")
        screening.attack_mode.forget()
        assert donate("a-new-donation", "pm_card_visa").body["error"]["code"] == "challenge_required"

        # Then each donor's retry with the same Idempotency-Key gets its own answer, never a refusal
        answers = [
            (key, donate(key, method, token).status)
            for key, method, token in [
                ("charged-answer-lost", "pm_card_visa", None),
                ("charged-answer-lost", "pm_card_visa", "0.spent-or-forged"),  # a token Turnstile refuses
                ("declined", "pm_card_chargeDeclined", None),
                ("three-d-secure", "pm_card_authenticationRequired", None),
                ("in-flight", "pm_card_visa", None),
            ]
        ]
        assert answers == [
            ("charged-answer-lost", 201),
            ("charged-answer-lost", 201),
            ("declined", 402),
            ("three-d-secure", 202),
            ("in-flight", 503),
        ]
        # ...and nothing more reached Stripe's charges
        assert world.stripe.payment_intents_created == intents
        assert {d: world.stripe.charges_for(d) for d in charged} == charged


# -- the stored-500 lookup costs the same on any account, at any time -------------------------------

LIST = "GET /v1/payment_intents"


@pytest.mark.parametrize(
    ("per_day", "retry_after_seconds"),
    [(0, 30), (300_000, 30), (300_000, 23 * 3600)],
    ids=["quiet-30s-after", "busy-30s-after", "busy-23h-after"],
)
def test_the_stored_500_lookup_reads_one_page_on_a_quiet_or_busy_account_at_any_time(
    world, per_day, retry_after_seconds
):
    # Given Stripe charged attempt 0, then stored and answered a 500 (the donor got a 503)
    world.stripe.faults.add(
        "stored_error", status=500, phase="after", times=1, path_prefix="/v1/payment_intents", method="POST"
    )
    assert world.post(DONATION, key=a_key("key-lookup")).status == 503
    [donation_id] = world.donation_ids()
    [attempt] = world.stripe.intents_for(donation_id)
    # ...on an account where others create `per_day` PaymentIntents a day (from a day before the
    # attempt until the donor's retry: 287,500 newer than it, 23 h later), and time passes
    if per_day:
        since, until = attempt["created"] - 86_400, attempt["created"] + retry_after_seconds
        assert world.stripe.simulate_history(attempt["id"], per_day=per_day, since=since, until=until) > per_day
    world.stripe.clock.advance(retry_after_seconds)
    lists = world.stripe.requests.get(LIST, 0)

    # When the donor retries with the same Idempotency-Key
    answer = world.post(DONATION, key=a_key("key-lookup"))

    # Then Stripe's list is read once (the attempt's own seconds), the charge is found, never repeated
    assert (answer.status, answer.body["donation_id"]) == (201, donation_id)
    assert world.stripe.requests.get(LIST, 0) - lists == 1
    assert world.stripe.charges_for(donation_id) == 1 and world.stripe.payment_intents_created == 1
    assert world.record(donation_id).status is DonationStatus.SUCCEEDED


# -- the sweep: money the records miss is found, settled, counted and paged ------------------------

SEARCH = "GET /v1/payment_intents/search"


def test_the_sweep_settles_money_a_canceled_record_misses_and_pages_the_operators(world, capsys):
    # Given a donation recorded as canceled while the donor did authenticate and Stripe took the
    # money, and Stripe's webhook never arrived (endpoint down, events disabled)
    answer = world.post({**DONATION, "payment_method": "pm_card_authenticationRequired"}, key=a_key("key-swept"))
    donation_id = answer.body["donation_id"]
    intent_id = world.record(donation_id).payment_intent_id
    world.wiring.store.mark_canceled(donation_id, "abandoned", intent_id)
    world.stripe.authenticate(intent_id, "succeed")
    created = world.stripe.payment_intent(intent_id)["created"]
    inbox = _operator_inbox(world)
    capsys.readouterr()

    # When the reconciler's scheduled run comes whose stretch holds that payment
    searches = world.stripe.requests.get(SEARCH, 0)
    run_at = datetime.fromtimestamp(created + world.settings.reconcile_grace_seconds + 150, UTC)
    outcomes = world.reconcile(now=run_at)

    # Then the donation is charged after all, its follow-ups run, and it is counted for the alarm
    assert outcomes == {"charged": 1}
    assert world.stripe.requests.get(SEARCH, 0) - searches == 2  # two stretches, one page each
    record = world.record(donation_id)
    assert (record.status, record.corrected_from) == (DonationStatus.SUCCEEDED, DonationStatus.CANCELED)
    world.drain()
    record = world.record(donation_id)
    assert record.receipt_status is StepStatus.DONE and record.card_status is StepStatus.DONE
    assert len(world.sendgrid.outbox_for(donation_id)) == 1
    emitted = capsys.readouterr().out
    assert unrecorded_charges(emitted) == 1
    # And the template's alarm fires and the notifier pages the operators with its runbook section
    cloudwatch = world.pipeline.clients("cloudwatch")
    for line in emitted.splitlines():
        if line.startswith("{") and '"UnrecordedCharges"' in line:
            for namespace, name, value, dimensions, unit in emf_metric_data(json.loads(line), "reconciler"):
                put_metric(cloudwatch, namespace, name, value, dimensions, unit)
    alarm_name = world.pipeline.stack.alarms["UnrecordedChargesAlarm"]
    evaluator = AlarmEvaluator(cloudwatch, world.pipeline.clients("sns"), alarm_prefix=alarm_name)
    assert [(t.alarm_name, t.new_state) for t in evaluator.evaluate(datetime.now(UTC))] == [(alarm_name, "ALARM")]
    world.pipeline.deliver_sns()
    # (the shared world's notifier may also relay another test's late notice: this alarm's page is one)
    [page] = [p for p in _received(world, inbox) if p["Notifier"]["section"] == "money-without-record"]
    assert page["Notifier"]["first_command"] == "donations-ops --stack-name donations-test report --date today"
    cloudwatch.set_alarm_state(AlarmName=alarm_name, StateValue="OK", StateReason="test done")

    # And the next run's look at the same stretch (an hour later) finds it recorded: nothing more
    assert world.reconcile(now=run_at + timedelta(hours=1)) == {}
    assert len(world.sendgrid.outbox_for(donation_id)) == 1


def test_the_sweep_leaves_a_charge_being_recorded_to_its_path_and_another_stacks_payments_alone(world):
    # Given a payment of another stack on the same account (same metadata key, a donation we do not
    # have), and one of ours still being recorded by its charge (a lease held, just now)
    client = stripe.StripeClient("sk_test_local_emulator", base_addresses={"api": world.stripe.url})
    theirs = client.v1.payment_intents.create(
        params={
            "amount": 700,
            "currency": "usd",
            "payment_method": "pm_card_visa",
            "confirm": True,
            "allowed_payment_method_types": ["card"],
            "metadata": {"donation_id": "don_of_another_stack"},
        }
    )
    answer = world.post({**DONATION, "payment_method": "pm_card_authenticationRequired"}, key=a_key("key-in-flight"))
    donation_id = answer.body["donation_id"]
    world.stripe.authenticate(world.record(donation_id).payment_intent_id, "succeed")

    # When the sweep's stretch holds both, while our record was touched within the grace period
    run_at = datetime.fromtimestamp(theirs.created + world.settings.reconcile_grace_seconds + 150, UTC)
    touched = (run_at - timedelta(seconds=10)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    world.wiring.store._table.update_item(
        Key={"donation_id": donation_id},
        UpdateExpression="SET updated_at = :t",
        ExpressionAttributeValues={":t": touched},
    )
    outcomes = world.reconcile(now=run_at)

    # Then neither is touched by the sweep (the 3-D Secure settler too leaves ours to its path for now)
    assert outcomes == {"skipped": 1}
    assert world.record(donation_id).status is DonationStatus.REQUIRES_ACTION
    assert world.stripe.charges_for("don_of_another_stack") == 1


def _operator_inbox(world: World) -> str:
    sqs, sns = world.pipeline.clients("sqs"), world.pipeline.clients("sns")
    url = sqs.create_queue(QueueName="donations-test-operator-inbox-money")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=world.pipeline.stack.topics["OperatorTopic"], Protocol="sqs", Endpoint=arn)
    _received(world, url)
    return str(url)


def _received(world: World, inbox: str) -> list[dict[str, Any]]:
    sqs, found = world.pipeline.clients("sqs"), []
    for _ in range(10):
        batch = sqs.receive_message(QueueUrl=inbox, MaxNumberOfMessages=10).get("Messages", [])
        if not batch:
            break
        for message in batch:
            found.append(json.loads(json.loads(message["Body"])["Message"]))
            sqs.delete_message(QueueUrl=inbox, ReceiptHandle=message["ReceiptHandle"])
    return found
