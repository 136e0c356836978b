"""tokenize and send_receipt through their handlers: once each, retried with backoff, parked when hopeless."""

import itertools
import json
import threading

import pytest

from donations.models import Attention, DonationStatus, FailureKind, FollowUpMessage, Step, StepStatus
from donations.steps import send_receipt
from tests.support.keys import a_key
from tests.support.world import DONATION

pytestmark = pytest.mark.integration


def _donate(world, key, **changes):
    answer = world.post({**DONATION, **changes}, key=a_key(key))
    assert answer.status == 201, answer.body
    return answer.body["donation_id"]


def test_end_to_end_the_card_is_saved_and_one_receipt_sent(world):
    answer = world.post(DONATION, key=a_key("key-e2e"))
    donation_id = answer.body["donation_id"]
    assert world.get(f"/donations/{donation_id}").body["receipt_sent"] is False

    world.drain()

    record = world.record(donation_id)
    assert record.card_status is StepStatus.DONE
    assert record.customer_id.startswith("cus_")
    assert (record.card_brand, record.card_last4) == ("visa", "4242")
    assert record.card_exp_month and record.card_exp_year
    assert record.receipt_status is StepStatus.DONE and record.receipt_message_id
    [mail] = world.sendgrid.outbox_for(donation_id)
    assert mail["to"] == ["ada@example.org"]
    assert mail["message_id"] == record.receipt_message_id
    assert mail["template_id"] == world.settings.receipt_template_id
    assert mail["custom_args"] == {"donation_id": donation_id}
    data = mail["dynamic_template_data"]
    assert (data["amount_display"], data["receipt_number"], data["org_name"]) == (
        "$25.00",
        donation_id,
        world.settings.org_name,
    )
    # The shipped template, installed for the test stack, rendered as the donor reads it.
    rendered = mail["rendered"]
    assert rendered["error"] is None
    assert rendered["subject"] == f"Receipt for your donation to {world.settings.org_name}"
    for body in (rendered["html"], rendered["text"]):
        assert "$25.00" in body and "Ada Lovelace" in body and donation_id in body
        assert "nding in 4242" in body  # the card charged, from the charge's own answer from Stripe
    view = world.get(f"/donations/{donation_id}").body
    assert (view["status"], view["card_saved"], view["receipt_sent"], view["failed_step"]) == (
        "succeeded",
        True,
        True,
        None,
    )
    method = world.stripe.payment_method(record.payment_method_id)
    assert method["customer"] == record.customer_id
    assert world.queued("tokenize") == world.queued("receipt") == []
    assert world.queued("tokenize_dlq") == world.queued("receipt_dlq") == []


def test_duplicate_deliveries_make_one_customer_one_attach_one_email(world):
    donation_id = _donate(world, "key-dup")
    world.duplicate_queued("tokenize")
    world.duplicate_queued("receipt")
    assert len(world.queued("receipt")) == 2

    world.drain()
    world.redeliver_last_batches()  # and once more after the first deliveries were acknowledged

    assert len(world.stripe.state()["customers"]) == 1
    assert world.stripe.attach_count(world.record(donation_id).payment_method_id) == 1
    assert len(world.sendgrid.outbox_for(donation_id)) == 1


def test_one_failing_record_in_ten_is_the_only_one_reported(world):
    ids = [_donate(world, f"key-batch-{n}") for n in range(10)]
    world.clear_queue("receipt")
    poison = world.record(ids[3]).payment_method_id
    world.stripe.faults.add("http_error", status=500, path_prefix=f"/v1/payment_methods/{poison}/attach")

    response, messages = world.deliver_raw("tokenize")

    poison_message = next(m for m in messages if json.loads(m["Body"])["donation_id"] == ids[3])
    assert response == {"batchItemFailures": [{"itemIdentifier": poison_message["MessageId"]}]}
    for donation_id in ids[:3] + ids[4:]:
        assert world.record(donation_id).card_status is StepStatus.DONE
    assert world.record(ids[3]).card_status is StepStatus.PENDING
    assert len(world.stripe.state()["customers"]) == 10  # the poison's Customer exists; its attach failed
    assert sum(world.stripe.attach_count(world.record(i).payment_method_id) for i in ids) == 9


def test_a_whole_failing_batch_reports_every_message(world):
    for n in range(4):
        _donate(world, f"key-all-{n}", save_card=False)
    world.sendgrid.faults.add("http_error", status=503)

    response, messages = world.deliver_raw("receipt")

    assert sorted(item["itemIdentifier"] for item in response["batchItemFailures"]) == sorted(
        m["MessageId"] for m in messages
    )
    assert len(messages) == 4
    assert world.sendgrid.outbox == []


@pytest.mark.parametrize(
    "fault",
    [
        {"kind": "rate_limit"},
        {"kind": "http_error", "status": 500},
        {"kind": "timeout", "latency_ms": 3000},
    ],
)
def test_provider_outage_backs_off_then_parks_in_the_dlq_and_marks_the_step(world, fault):
    donation_id = _donate(world, "key-outage", save_card=False)
    world.sendgrid.faults.add(**fault)

    # The first failure already shows operators which step keeps failing, and why (attention-index)
    world.deliver("receipt")
    retrying = world.record(donation_id)
    assert (retrying.attention_step, retrying.attention, retrying.attempts) == (
        Step.SEND_RECEIPT,
        Attention.RETRYING,
        1,
    )
    assert retrying.last_error.startswith("send_receipt:") and retrying.failed_step is None
    world.expire_backoffs()

    receives = 1 + world.deliver_until_dead_lettered("receipt")

    assert receives == world.settings.max_receive_count
    *backoffs, last = world.visibility_changes("receipt")
    assert len(backoffs) == world.settings.max_receive_count - 1
    assert all(later > earlier for earlier, later in itertools.pairwise(backoffs)), backoffs
    assert last == 0  # after the last attempt it goes to the DLQ at once, not after the visibility timeout
    [parked] = world.queued("receipt_dlq")
    assert json.loads(parked["Body"])["donation_id"] == donation_id
    record = world.record(donation_id)
    assert record.failed_step is Step.SEND_RECEIPT
    assert record.receipt_status is StepStatus.FAILED
    assert "retries_exhausted" in record.failure_reason
    # ...and parked, transient (every receive failed), since the first failure, with the message as parked
    assert (record.attention, record.failure_kind, record.attempts) == (
        Attention.PARKED,
        FailureKind.TRANSIENT,
        world.settings.max_receive_count,
    )
    assert record.attention_since == retrying.attention_since
    assert json.loads(record.parked_message["body"])["donation_id"] == donation_id
    assert world.get(f"/donations/{donation_id}").body["failed_step"] == "send_receipt"
    assert world.sendgrid.outbox_for(donation_id) == []


def test_an_invalid_address_is_parked_at_once_with_its_reason(world):
    donation_id = _donate(world, "key-bad-address", save_card=False, email="bounce@blocked.example")
    world.sendgrid.reject_recipient("blocked.example")

    world.drain()

    assert world.visibility_changes("receipt") == []  # not retried
    [parked] = world.queued("receipt_dlq")
    attributes = {name: value["StringValue"] for name, value in parked["MessageAttributes"].items()}
    assert attributes["failed_step"] == "send_receipt"
    assert attributes["failure_reason"].startswith("send_receipt:sendgrid:http_400")
    assert attributes["donation_id"] == donation_id
    assert attributes["correlation_id"]
    assert "blocked.example" not in attributes["failure_reason"]
    record = world.record(donation_id)
    assert record.failed_step is Step.SEND_RECEIPT and record.receipt_status is StepStatus.FAILED
    assert (record.attention, record.failure_kind, record.attempts) == (Attention.PARKED, FailureKind.PERMANENT, 1)
    assert record.parked_message["attributes"]["failure_reason"] == attributes["failure_reason"]
    assert world.queued("receipt") == []


def test_a_card_stripe_refuses_to_attach_is_parked_at_once(world):
    # The charge ran without setup_future_usage, so Stripe will never attach this PaymentMethod.
    donation_id = _donate(world, "key-no-sfu", save_card=False)
    world.force_save_card(donation_id)
    world.send_follow_up("tokenize", donation_id)

    world.drain()

    [parked] = world.queued("tokenize_dlq")
    reason = parked["MessageAttributes"]["failure_reason"]["StringValue"]
    assert reason.startswith("tokenize:stripe:")
    record = world.record(donation_id)
    assert record.failed_step is Step.TOKENIZE and record.card_status is StepStatus.FAILED
    assert world.visibility_changes("tokenize") == []


@pytest.mark.parametrize("queue", ["tokenize", "receipt"])
def test_messages_for_missing_or_uncharged_donations_are_parked(world, queue):
    declined = world.post({**DONATION, "payment_method": "pm_card_chargeDeclined"}, key=a_key("key-declined")).body
    assert declined["error"]["code"] == "card_declined"
    [declined_id] = world.donation_ids()
    world.send_follow_up(queue, declined_id)
    world.send_follow_up(queue, "don_aaaaaaaaaaaaaaaaaaaaaaaaaa")
    world.send_raw(queue, "{not json")

    world.drain()

    reasons = sorted(
        m["MessageAttributes"]["failure_reason"]["StringValue"].split(":")[1] for m in world.queued(f"{queue}_dlq")
    )
    assert reasons == ["donation_not_charged", "donation_not_found", "malformed_message"]
    assert world.stripe.state()["customers"] == [] and world.sendgrid.outbox == []


def test_crash_between_send_and_mark_resends_only_after_the_claim_lease_ends(world):
    donation_id = _donate(world, "key-crash", save_card=False)
    message = FollowUpMessage(type=Step.SEND_RECEIPT, donation_id=donation_id)

    class Crash(BaseException):
        pass

    class CrashAfterSend:
        def __init__(self, mailer):
            self.mailer = mailer

        def send(self, donation):
            self.mailer.send(donation)
            raise Crash  # the process dies before mark_receipt_sent

    with pytest.raises(Crash):
        send_receipt(message, store=world.wiring.store, mailer=CrashAfterSend(world.wiring.mailer), lease_seconds=300)
    assert len(world.sendgrid.outbox_for(donation_id)) == 1
    assert world.record(donation_id).receipt_status is StepStatus.IN_PROGRESS

    # A redelivery while the lease is live sends nothing: the step is retried later.
    response, _ = world.deliver_raw("receipt")
    assert len(response["batchItemFailures"]) == 1
    assert len(world.sendgrid.outbox_for(donation_id)) == 1

    # Once the lease has run out the receipt is sent again: at least once, never silently lost.
    world.expire_receipt_claim(donation_id)
    world.expire_backoffs()
    world.drain()
    assert len(world.sendgrid.outbox_for(donation_id)) == 2
    assert world.record(donation_id).receipt_status is StepStatus.DONE


def test_the_charge_correlation_id_reaches_the_consumers_logs(world, captured_logs):
    answer = world.post(DONATION, key=a_key("key-correlation"))

    world.drain()

    lines = [json.loads(line) for line in captured_logs().splitlines() if line.startswith("{")]
    step_logs = [line for line in lines if line.get("message") in {"Card saved", "Receipt sent"}]
    assert {line["message"] for line in step_logs} == {"Card saved", "Receipt sent"}
    assert all(line["correlation_id"] == answer.request_id for line in step_logs)
    assert all(line["donation_id"] == answer.body["donation_id"] for line in step_logs)
    assert "ada@example.org" not in json.dumps(lines)


def test_a_declined_donation_never_reaches_the_queues(world):
    world.post({**DONATION, "payment_method": "pm_card_chargeDeclined"}, key=a_key("key-no-queue"))
    world.drain()
    assert world.sendgrid.outbox == []
    assert world.record(world.donation_ids()[0]).status is DonationStatus.DECLINED


def test_racing_receipt_claims_on_one_donation_let_exactly_one_win(world):
    # The records of a batch run side by side, so two deliveries of one receipt can claim at the same
    # instant. DynamoDB lets one conditional write win; moto needed infra.deploy.moto_atomic to do the same.
    donation_id = _donate(world, "key-race", save_card=False)
    store = world.wiring.store
    for attempt in range(30):
        if attempt:
            store.release_receipt_claim(donation_id)
        start = threading.Barrier(2)
        claims: list[bool] = []

        def claim(start: threading.Barrier = start, claims: list[bool] = claims) -> None:
            start.wait(timeout=5)
            claims.append(store.claim_receipt(donation_id, lease_seconds=60).claimed)

        racers = [threading.Thread(target=claim) for _ in range(2)]
        for racer in racers:
            racer.start()
        for racer in racers:
            racer.join(timeout=10)
        assert sorted(claims) == [False, True], attempt


def test_two_deliveries_of_one_receipt_in_one_batch_send_one_mail(world):
    donation_id = _donate(world, "key-batch-duplicate", save_card=False)
    [message] = world.queued("receipt")
    world.send("receipt", message["Body"], message.get("MessageAttributes", {}))

    first = world.deliver("receipt")  # both records in one batch, handled side by side
    world.drain()

    assert first.received == 2
    assert len(world.sendgrid.outbox_for(donation_id)) == 1
    assert world.record(donation_id).receipt_status is StepStatus.DONE
    assert world.queued("receipt") == world.queued("receipt_dlq") == []
