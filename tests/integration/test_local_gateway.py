"""The local stack behaves like API Gateway and Lambda where the product depends on it.

The gateway answers for methods and resources the template does not define; each function runs
one invocation at a time (and the API functions do not overlap, sharing Powertools' router state
in this one interpreter); an invocation that outlives the function's Timeout is abandoned, with
the answer API Gateway gives, or the whole SQS batch failed, as Lambda does.
"""

import threading
import time

import pytest

from donations.api import WARMUP_PATH
from tests.e2e.conftest import wait_for
from tests.support.keys import a_key
from tests.support.world import DONATION, SlowOn

pytestmark = pytest.mark.integration

METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE"]
MISSING_TOKEN = {"message": "Missing Authentication Token"}


def _concrete(resource_path: str) -> str:
    return resource_path.replace("{donation_id}", "don_unknown")


def test_the_environments_take_each_functions_timeout_and_memory_from_the_template(pipeline):
    for logical_id, resource in pipeline.sam_template["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        environment = pipeline.environments[logical_id]
        assert environment.timeout_seconds == resource["Properties"]["Timeout"], logical_id
        assert environment.memory_size == pipeline.stack.functions[logical_id].memory_size


@pytest.mark.parametrize("method", METHODS)
def test_every_method_on_every_resource_gets_what_api_gateway_answers(world, method):
    for resource in world.pipeline.api.resources:
        path = _concrete(resource.path)

        answer = world.pipeline.call_api(method, path, headers={"Origin": "https://donate.example.org"})

        assert answer.status < 500, (method, path, answer.status, answer.body)
        if method == "OPTIONS":  # SAM's CORS preflight (the template's Cors setting), answered by the gateway
            assert answer.status == 200
            assert answer.headers["Access-Control-Allow-Methods"] == "GET,POST,OPTIONS"
            assert (
                answer.headers["Access-Control-Allow-Headers"]
                == "Content-Type,Idempotency-Key,X-Correlation-Id,Challenge-Token"
            )
            assert answer.headers["Access-Control-Allow-Origin"] == world.pipeline.allowed_origin
            assert answer.headers["Access-Control-Max-Age"] == "600"
        elif method not in resource.methods:
            assert (answer.status, answer.body) == (403, MISSING_TOKEN), (method, path)
            assert answer.headers["Content-Type"] == "application/json"
            assert (
                answer.headers["Access-Control-Allow-Origin"] == world.pipeline.allowed_origin
            )  # the template's DEFAULT_4XX response
        elif resource.path == WARMUP_PATH:  # the warm-up answers with no body (tests/integration/test_warmup.py)
            assert (answer.status, answer.raw) == (204, "")
        else:
            assert isinstance(answer.body, dict) and answer.headers["Content-Type"] == "application/json"
    # Nothing reached Stripe but the warm-up's read, which opens the connection
    assert set(world.stripe.state()["requests"]) <= {"GET /v1/payment_intents"}


@pytest.mark.parametrize("path", ["/donations/a/b", "/donationsx", "/webhooks", "/webhooks/stripe/x", "/donations/"])
def test_an_unknown_resource_is_a_403_json_for_every_method(world, path):
    for method in METHODS:
        answer = world.pipeline.call_api(method, path)

        assert (answer.status, answer.body) == (403, MISSING_TOKEN), (method, path)


def test_a_webhook_arriving_during_a_charge_waits_its_turn_and_neither_answer_is_corrupted(world):
    # Given a first donation, whose payment_intent.succeeded event Stripe may deliver again
    first = world.post(DONATION, key=a_key("turns-first"))
    assert first.status == 201
    event = world.stripe_event("payment_intent.succeeded", world.record(first.body["donation_id"]).payment_intent_id)
    # ...and a second donation from the form's origin, held up in Stripe
    world.stripe.faults.add("latency", path_prefix="/v1/payment_intents", method="POST", latency_ms=600, times=1)
    charged: dict[str, object] = {}
    second = threading.Thread(
        target=lambda: charged.update(
            answer=world.post(
                {**DONATION, "amount": 3100},
                key=a_key("turns-second"),
                headers={"Origin": world.pipeline.allowed_origin},
            )
        )
    )
    second.start()
    wait_for(lambda: world.stripe.state()["requests"].get("POST /v1/payment_intents", 0) >= 2, timeout=10)

    # When Stripe delivers the webhook while that charge is in Stripe
    webhook = world.deliver_stripe_event(event)
    second.join(timeout=30)

    # Then the webhook was applied (signature read from its own event), after the charge finished,
    # and the charge's answer was built from its own request (the form's origin gets CORS headers)
    assert webhook.status == 200, webhook.body
    answer = charged["answer"]
    assert answer.status == 201, answer.body
    assert answer.headers.get("Access-Control-Allow-Origin") == world.pipeline.allowed_origin, answer.headers


def test_a_charge_that_outlives_its_timeout_gets_api_gateways_502_and_keeps_the_function_busy(world):
    # Given a charge slowed where the product cannot bound it (its Stripe calls it bounds itself:
    # test_a_slow_stripe_gets_the_donor_a_503_before_the_timeout)
    environment = world.pipeline.environments["ChargeFunction"]

    with (
        world.function_timeout("ChargeFunction", 1.5),
        world.charge_ports(store=lambda store: SlowOn(store, "create_pending", 3.0)),
    ):
        started = time.monotonic()
        answer = world.post({**DONATION, "amount": 4200}, key=a_key("slow-charge"))
        elapsed = time.monotonic() - started

        # Then API Gateway's answer for a Lambda timeout, at the Timeout, never the function's own later one
        assert (answer.status, answer.body) == (502, {"message": "Internal server error"}), answer.body
        assert (
            answer.headers["Access-Control-Allow-Origin"] == world.pipeline.allowed_origin
        )  # the template's DEFAULT_5XX response
        assert 1.4 <= elapsed < 2.5, elapsed
        assert environment.abandoned >= 1 and environment.busy
        # ...and the function stays busy until the abandoned invocation has returned: one at a time
        started = time.monotonic()
        follow_up = world.get("/donations/don_unknown")
        assert follow_up.status == 404
        assert time.monotonic() - started >= 1.0


def test_a_slow_stripe_gets_the_donor_a_503_before_the_timeout(world):
    # Given Stripe holding every charge request, and a function Timeout of 4 s: the SDK's three
    # 1 s attempts and its backoff sleeps (4 to 4.5 s) would outlive it without the time budget
    world.stripe.faults.add("timeout", path_prefix="/v1/payment_intents", method="POST", latency_ms=5_000)
    environment = world.pipeline.environments["ChargeFunction"]
    abandoned = environment.abandoned

    with world.function_timeout("ChargeFunction", 4.0):
        started = time.monotonic()
        answer = world.post(DONATION, key=a_key("slow-stripe"))
        elapsed = time.monotonic() - started

    # Then the donor gets the designed 503 with Retry-After, not API Gateway's 502, and nothing is charged
    assert answer.status == 503 and answer.headers["Retry-After"], answer.body
    assert elapsed < 4.0
    assert environment.abandoned == abandoned
    assert world.stripe.payment_intents_created == 0


def test_a_batch_that_outlives_its_timeout_fails_as_a_whole(world, monkeypatch):
    # Given a charged donation whose card is to be saved, and the tokenize step slowed where the
    # product cannot bound it (its Stripe calls it bounds itself, see donations.deadline)
    answer = world.post(DONATION, key=a_key("slow-tokenize"))
    donation_id = answer.body["donation_id"]
    consumer = world.consumer("tokenize").step  # the card step (the queue also routes Customer deletions)
    step = SlowOn(consumer, "_run", 3.0)
    monkeypatch.setattr(consumer, "_run", step._run)

    with world.function_timeout("TokenizeFunction", 1.5):
        result = world.deliver("tokenize")
    monkeypatch.undo()

    # Then every record of the batch failed (none deleted): they return after their visibility timeout
    assert result.received == 1 and result.failed_ids == [m["MessageId"] for m in result.messages]
    assert "timed out" in (result.handler_error or "")
    assert world.record(donation_id).public_view().card_saved is False
    # ...and once they do, with the step quick again, the card is saved
    world.expire_backoffs()
    assert world.deliver("tokenize").succeeded == 1
    assert world.record(donation_id).public_view().card_saved is True
