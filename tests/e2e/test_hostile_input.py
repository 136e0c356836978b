"""Hostile input over HTTP: generated requests from the OpenAPI document, oversized bodies, and a log scan."""

from __future__ import annotations

import re

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from donations.redaction import looks_like_card_number
from infra.emulators.base import EmulatorControl
from tests.e2e.conftest import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

EXAMPLES_PER_OPERATION_AND_MODE = 400


def _intents(stack) -> int:
    return int(EmulatorControl(stack.stripe).state()["payment_intents_created"])


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=lambda mode: mode.value)
def test_generated_requests_never_fail_the_server_and_refusals_charge_nothing(local_stack, mode):
    schema = schemathesis.openapi.from_url(f"{local_stack.api}/_local/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {(op.method.upper(), op.path) for op in operations} >= {
        ("POST", "/donations"),
        ("GET", "/donations/{donation_id}"),
    }
    sent = {"requests": 0, "refused": 0}

    for operation in operations:
        if mode is GenerationMode.NEGATIVE and operation.method.upper() == "GET":
            continue  # any string is a valid path parameter: there is no invalid GET to generate

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES_PER_OPERATION_AND_MODE,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def call(case):
            before = _intents(local_stack)
            response = case.call(base_url=local_stack.api, timeout=20)
            sent["requests"] += 1
            assert response.status_code < 500, (case.method, case.path, response.status_code, response.text)
            if response.status_code >= 400 and response.status_code != 402:
                sent["refused"] += 1
                assert _intents(local_stack) == before, "a refused request created a PaymentIntent"
            if response.headers.get("Content-Type", "").startswith("application/json"):
                assert isinstance(response.json(), dict)

        call()

    # Positive (both operations) and negative (POST) together: more than the 1,000 requests asked for.
    assert sent["requests"] >= (800 if mode is GenerationMode.POSITIVE else 400), sent
    if mode is GenerationMode.NEGATIVE:
        assert sent["refused"] >= sent["requests"] // 2, sent


def test_an_oversized_body_is_refused_before_parsing(local_stack):
    before = _intents(local_stack)
    huge = '{"amount": 2500, "padding": "' + "4242424242424242 " * 60_000 + '"}'

    response = requests.post(
        f"{local_stack.api}/donations",
        data=huge,
        headers={"Content-Type": "application/json", "Idempotency-Key": "huge-1"},
        timeout=20,
    )

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert _intents(local_stack) == before


@pytest.mark.parametrize(
    "field", ["name", "email", "payment_method", "metadata"], ids=lambda field: f"card-number-in-{field}"
)
def test_card_numbers_anywhere_are_refused(local_stack, field):
    body = {
        "amount": 2500,
        "currency": "usd",
        "email": "ada@example.org",
        "name": "Ada",
        "payment_method": "pm_card_visa",
    }
    body[field] = {"note": "5555555555554444"} if field == "metadata" else "5555 5555 5555 4444"
    response = requests.post(
        f"{local_stack.api}/donations", json=body, headers={"Idempotency-Key": f"pan-{field}"}, timeout=20
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "card_data_refused"


def test_a_card_number_in_the_path_is_answered_but_not_logged(local_stack):
    response = requests.get(f"{local_stack.api}/donations/4000 0566 5566 5556".replace(" ", ""), timeout=20)

    assert response.status_code == 404
    wait_for(lambda: "GET /donations/{donation_id} -> 404" in local_stack.log(), what="the request's log line")
    assert "4000056655665556" not in local_stack.log()


EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
SECRETS = ("sk_test_", "sk_live_", "SG.", "whsec_")
TEST_CARD_NUMBERS = ("4242424242424242", "5555555555554444", "4000056655665556")


def test_the_logs_of_the_whole_run_hold_no_card_data_secret_or_email(local_stack):
    # Everything after the start-up banner (whose curl example names a sample address).
    lines = local_stack.log().split("Ready.", 1)[1].splitlines()
    assert len(lines) > 100  # the generated run above was logged (verbose JSON lines)

    for line in lines:
        assert not any(pan in line.replace(" ", "") for pan in TEST_CARD_NUMBERS), line
        # EMF lines carry 13-digit epoch timestamps, which can pass Luhn by chance.
        if '"_aws"' not in line:
            assert not looks_like_card_number(line), line
        assert not any(secret in line for secret in SECRETS), line
        assert EMAIL.search(line) is None, line  # masked addresses (a***@e***.org) do not match
