"""POST /donations and GET /donations/{id} through the real handler, moto, and the Stripe emulator."""

import json

import pytest

from donations.charge import submit_donation
from donations.followups import FollowUpPublisher
from donations.identifiers import legacy_donation_id
from donations.models import DonationRequest, DonationStatus
from tests.support.keys import a_key
from tests.support.world import DONATION, Crash, CrashOn

pytestmark = pytest.mark.integration


def test_a_donation_is_charged_once_recorded_and_handed_off(world):
    answer = world.post(DONATION, key=a_key("key-success"))

    assert answer.status == 201
    donation_id = answer.body["donation_id"]
    assert answer.body == {"donation_id": donation_id, "status": "succeeded"}
    assert world.stripe.charges_for(donation_id) == 1

    record = world.record(donation_id)
    assert record.status is DonationStatus.SUCCEEDED
    assert (record.amount, record.currency, record.email) == (2500, "usd", "ada@example.org")
    assert record.email_masked == "a***@e***.org"
    assert record.payment_intent_id.startswith("pi_")
    assert record.payment_method_id.startswith("pm_") and record.payment_method_id != "pm_card_visa"
    assert record.followups_published

    for queue, step in (("tokenize", "tokenize"), ("receipt", "send_receipt")):
        [message] = world.queued(queue)
        body = json.loads(message["Body"])
        assert body == {
            "schema_version": 1,
            "type": step,
            "donation_id": donation_id,
            "correlation_id": answer.request_id,
        }
        attributes = {name: value["StringValue"] for name, value in message["MessageAttributes"].items()}
        assert attributes == {
            "type": step,
            "schema_version": "1",
            "donation_id": donation_id,
            "correlation_id": answer.request_id,
        }
        assert "ada@example.org" not in message["Body"]


def test_the_stripe_payment_intent_carries_donation_id_and_setup_future_usage(world):
    donation_id = world.post(DONATION, key=a_key("key-sfu")).body["donation_id"]
    [intent] = world.stripe.intents_for(donation_id)
    assert intent["metadata"] == {"campaign": "spring", "donation_id": donation_id, "charge_attempt": "0"}
    assert intent["setup_future_usage"] == "off_session"

    other = world.post({**DONATION, "save_card": False}, key=a_key("key-no-sfu")).body["donation_id"]
    [intent] = world.stripe.intents_for(other)
    assert not intent.get("setup_future_usage")
    assert [json.loads(m["Body"])["donation_id"] for m in world.queued("tokenize")] == [donation_id]


def test_without_save_card_only_the_receipt_is_queued(world):
    answer = world.post({**DONATION, "save_card": False}, key=a_key("key-no-card"))
    assert answer.status == 201
    assert world.queued("tokenize") == []
    assert len(world.queued("receipt")) == 1


@pytest.mark.parametrize(
    ("payment_method", "decline_code"),
    [
        ("pm_card_chargeDeclinedInsufficientFunds", "insufficient_funds"),
        ("pm_card_chargeDeclined", "generic_decline"),
        ("pm_card_chargeDeclinedExpiredCard", "expired_card"),
        # Stripe advises not telling the donor a card was reported stolen.
        ("pm_card_chargeDeclinedStolenCard", "generic_decline"),
    ],
)
def test_a_declined_card_answers_402_with_the_decline_code_and_queues_nothing(world, payment_method, decline_code):
    answer = world.post({**DONATION, "payment_method": payment_method}, key=a_key(f"key-{payment_method}"))

    assert answer.status == 402
    assert answer.body["error"]["code"] == "card_declined"
    assert answer.body["error"]["decline_code"] == decline_code
    assert answer.body["error"]["message"]
    assert "stolen" not in answer.body["error"]["message"].lower()
    donation = world.record(world.donation_ids()[0])
    assert donation.status is DonationStatus.DECLINED
    assert world.queued("tokenize") == [] and world.queued("receipt") == []


def test_a_resubmitted_decline_replays_402_without_asking_stripe_again(world):
    body = {**DONATION, "payment_method": "pm_card_chargeDeclinedInsufficientFunds"}
    first = world.post(body, key=a_key("key-decline-twice"))
    requests_before = world.stripe.state()["requests"]
    second = world.post(body, key=a_key("key-decline-twice"))
    assert (first.status, first.body) == (second.status, second.body) == (402, first.body)
    assert world.stripe.state()["requests"] == requests_before


def test_3d_secure_answers_202_with_client_secret_and_queues_nothing(world):
    answer = world.post({**DONATION, "payment_method": "pm_card_authenticationRequired"}, key=a_key("key-3ds"))

    assert answer.status == 202
    assert answer.body["status"] == "requires_action"
    assert answer.body["client_secret"].startswith("pi_")
    assert world.record(answer.body["donation_id"]).status is DonationStatus.REQUIRES_ACTION
    assert world.queued("tokenize") == [] and world.queued("receipt") == []


def test_an_unknown_payment_method_is_a_400_on_that_field(world):
    answer = world.post({**DONATION, "payment_method": "pm_doesNotExist"}, key=a_key("key-unknown-pm"))
    assert answer.status == 400
    assert answer.body["error"]["field"] == "payment_method"
    assert world.queued("receipt") == []


def test_stripe_down_answers_503_charges_nothing_and_a_later_retry_charges_once(world):
    world.stripe.faults.add("http_error", status=503, path_prefix="/v1/payment_intents")

    answer = world.post(DONATION, key=a_key("key-outage"))

    assert answer.status == 503
    assert int(answer.headers["Retry-After"]) > 0
    assert answer.body["error"]["code"] == "service_unavailable"
    [donation_id] = world.donation_ids()
    assert world.record(donation_id).status is DonationStatus.PENDING
    assert world.stripe.charges_for(donation_id) == 0
    assert world.queued("receipt") == []

    world.stripe.faults.clear()
    retry = world.post(DONATION, key=a_key("key-outage"))

    assert retry.status == 201
    assert retry.body["donation_id"] == donation_id
    assert world.stripe.charges_for(donation_id) == 1
    assert len(world.queued("receipt")) == 1


def test_a_charge_whose_answer_was_lost_is_replayed_not_repeated(world):
    # Stripe charged, then every answer was lost (more often than the SDK retries): the donor sees 503.
    world.stripe.faults.add("reset", phase="after", path_prefix="/v1/payment_intents")
    answer = world.post(DONATION, key=a_key("key-lost-answer"))
    assert answer.status == 503
    [donation_id] = world.donation_ids()
    assert world.stripe.charges_for(donation_id) == 1
    assert world.record(donation_id).status is DonationStatus.PENDING

    world.stripe.faults.clear()
    retry = world.post(DONATION, key=a_key("key-lost-answer"))

    assert retry.status == 201
    assert world.stripe.charges_for(donation_id) == 1
    assert world.stripe.payment_intents_created == 1


def test_the_sdk_retrying_a_5xx_after_stripe_charged_does_not_charge_twice(world):
    world.stripe.faults.add("http_error", status=500, phase="after", times=1, path_prefix="/v1/payment_intents")

    answer = world.post(DONATION, key=a_key("key-sdk-retry"))

    assert answer.status == 201
    donation_id = answer.body["donation_id"]
    assert world.stripe.charges_for(donation_id) == 1
    assert world.stripe.state()["requests"]["POST /v1/payment_intents"] == 2  # the SDK did retry


def test_the_same_key_and_body_replays_the_answer_and_charges_once(world):
    first = world.post(DONATION, key=a_key("key-replay"))
    stripe_requests = sum(world.stripe.state()["requests"].values())
    second = world.post(DONATION, key=a_key("key-replay"))

    assert (second.status, second.body) == (first.status, first.body)
    assert world.stripe.charges_for(first.body["donation_id"]) == 1
    assert sum(world.stripe.state()["requests"].values()) == stripe_requests
    assert len(world.queued("receipt")) == 1


def test_the_same_key_with_another_body_is_refused_and_charges_nothing_more(world):
    first = world.post(DONATION, key=a_key("key-reused"))
    other = world.post({**DONATION, "amount": 9900}, key=a_key("key-reused"))

    assert other.status == 422
    assert other.body["error"]["code"] == "idempotency_key_reused"
    assert world.stripe.payment_intents_created == 1
    assert world.record(first.body["donation_id"]).amount == 2500


def test_a_resubmission_while_a_request_holds_the_donation_is_told_to_retry_and_charges_nothing(world):
    # Given a request that charged at Stripe and died before recording it (its lease is still live)
    with world.charge_ports(store=lambda store: CrashOn(store, "mark_charged")), pytest.raises(Crash):
        world.post(DONATION, key=a_key("key-held"))
    stripe_requests = world.stripe.state()["requests"]["POST /v1/payment_intents"]

    # When the donor resubmits at once, then again once the dead request's lease ran out
    held = world.post(DONATION, key=a_key("key-held"))
    world.expire_in_progress_requests()
    resumed = world.post(DONATION, key=a_key("key-held"))

    # Then the first is a 409 that never reached Stripe; the second replays Stripe's answer: one charge
    assert (held.status, held.body["error"]["code"]) == (409, "request_in_progress")
    assert resumed.status == 201
    assert world.stripe.state()["requests"]["POST /v1/payment_intents"] == stripe_requests + 1
    assert world.stripe.payment_intents_created == 1
    assert world.stripe.charges_for(resumed.body["donation_id"]) == 1
    assert world.record(resumed.body["donation_id"]).charging_until is None


def test_get_shows_public_progress_without_email_or_card_data(world):
    donation_id = world.post(DONATION, key=a_key("key-get")).body["donation_id"]

    answer = world.get(f"/donations/{donation_id}")

    assert answer.status == 200
    assert answer.body == {
        "donation_id": donation_id,
        "status": "succeeded",
        "amount": 2500,
        "currency": "usd",
        "created_at": answer.body["created_at"],
        "card_saved": False,
        "receipt_sent": False,
        "failed_step": None,
    }
    assert "ada" not in json.dumps(answer.body)


@pytest.mark.parametrize("donation_id", ["don_aaaaaaaaaaaaaaaaaaaaaaaaaa", "nope", "x" * 3000])
def test_get_unknown_donation_is_404(world, donation_id):
    answer = world.get(f"/donations/{donation_id}")
    assert answer.status == 404
    assert answer.body["error"]["code"] == "not_found"


def test_card_saved_is_null_when_the_donor_did_not_ask(world):
    donation_id = world.post({**DONATION, "save_card": False}, key=a_key("key-null")).body["donation_id"]
    assert world.get(f"/donations/{donation_id}").body["card_saved"] is None


def test_follow_ups_not_published_are_flagged_for_the_reconciler_and_the_donor_still_hears_201(world):
    # SQS is unreachable right after the charge (here: a queue that does not exist).
    broken = FollowUpPublisher(
        world.wiring.sqs, world.settings.model_copy(update={"receipt_queue_url": world.missing_queue_url()})
    )
    answer = submit_donation(
        DonationRequest.with_limits(world.settings.request_limits).model_validate(DONATION),
        a_key("key-sqs-down"),
        "corr-1",
        store=world.wiring.store,
        payments=world.wiring.payments,
        publisher=broken,
        lease_seconds=10,
        identifiers=world.wiring.identifiers,
    )
    assert answer.status_code == 201
    donation = world.record(answer.body["donation_id"])
    assert donation.status is DonationStatus.SUCCEEDED
    assert donation.followups_published is False
    assert world.stripe.charges_for(donation.donation_id) == 1


def test_each_request_is_logged_with_its_own_donation_only(world, captured_logs):
    def logged(message: str) -> list[dict]:
        lines = [json.loads(line) for line in captured_logs().splitlines() if line.startswith('{"level"')]
        return [line for line in lines if line["message"] == message]

    # Given a declined donation, logged with its id and masked donor
    declined = world.post({**DONATION, "payment_method": "pm_card_chargeDeclined"}, key=a_key("key-logged-first"))
    assert declined.status == 402
    [decline] = logged("Donation declined")
    assert decline["donation_id"] and decline["donor"] == "a***@e***.org"

    # When the next request, in the same execution environment, is refused before it names a donation
    refused = world.post({**DONATION, "amount": 0}, key=a_key("key-logged-second"))
    assert refused.status == 400

    # Then its log line carries no key of the earlier request (Powertools keeps appended keys until cleared)
    [refusal] = logged("Request refused")
    assert refusal["code"] == "invalid_amount"
    assert "donation_id" not in refusal and "donor" not in refusal, refusal


# -- ids nobody can derive from a key ---------------------------------------------------------------


def test_a_weak_idempotency_key_is_a_400_that_changes_nothing(world):
    answer = world.post(DONATION, key="demo-1")

    assert answer.status == 400
    assert (answer.body["error"]["code"], answer.body["error"]["field"]) == ("weak_idempotency_key", "Idempotency-Key")
    assert world.donation_count() == 0 and world.stripe_requests() == 0


def test_an_id_guessed_from_the_key_is_answered_404(world):
    # Given a donation made with a key someone could learn or guess
    key = a_key("key-guessed")
    donation_id = world.post(DONATION, key=key).body["donation_id"]

    # When they compute the id the way it used to be derived (an unkeyed sha256 of the key)
    guessed = world.get(f"/donations/{legacy_donation_id(key)}")

    # Then there is no such donation; only the donor's own id (from the API's answer) shows it
    assert (guessed.status, guessed.body["error"]["code"]) == (404, "not_found")
    assert world.get(f"/donations/{donation_id}").status == 200


def test_a_donation_in_flight_across_the_upgrade_is_resumed_by_its_retry(world):
    # Given a donation recorded under its old, unkeyed id whose charge never answered (Stripe 503)
    key = a_key("key-in-flight")
    legacy_id = legacy_donation_id(key)
    store = world.wiring.store
    request = DonationRequest.with_limits(world.settings.request_limits).model_validate(DONATION)
    store.create_pending(legacy_id, request, "corr-before", lease_seconds=30)
    store.release_charging(legacy_id)

    # When the donor's retry with the same key reaches the upgraded function
    answer = world.post(DONATION, key=key)

    # Then the same donation is charged, once, and no second record appears
    assert (answer.status, answer.body["donation_id"]) == (201, legacy_id)
    assert world.donation_ids() == [legacy_id]
    assert world.stripe.charges_for(legacy_id) == 1
