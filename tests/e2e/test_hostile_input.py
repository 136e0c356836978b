"""Hostile input over HTTP, through the real front: the classes of input only the wire can carry (repeated
header lines, bytes that are not UTF-8, every method), an IDN donation to its receipt, oversized bodies, and
a log scan. The requests generated from the OpenAPI document are in test_hostile_schema.py."""

from __future__ import annotations

import http.client
import json
import re
import uuid
from urllib.parse import urlsplit

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from donations.redaction import looks_like_card_number
from simulator.emulators.control import EmulatorControl
from simulator.emulators.sendgrid_emulator import SendGridControl
from tests.e2e.conftest import donate, wait_for
from tests.integration.test_hostile_properties import (
    INVALID_UTF8,
    bodies_with_a_repeated_key,
    deeply_nested_bodies,
    header_lines,
    json_media_types,
)
from tests.support.hostile import count
from tests.support.keys import a_key

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def intents_created(stack) -> int:
    """PaymentIntents the stack's Stripe emulator has created so far."""
    return int(EmulatorControl(stack.stripe).state()["payment_intents_created"])


def test_an_oversized_body_is_refused_before_parsing(local_stack):
    before = intents_created(local_stack)
    huge = '{"amount": 2500, "padding": "' + "4242424242424242 " * 60_000 + '"}'

    response = requests.post(
        f"{local_stack.api}/donations",
        data=huge,
        headers={"Content-Type": "application/json", "Idempotency-Key": a_key("huge-1")},
        timeout=20,
    )

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert intents_created(local_stack) == before


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
        f"{local_stack.api}/donations", json=body, headers={"Idempotency-Key": a_key(f"pan-{field}")}, timeout=20
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "card_data_refused"


def test_a_card_number_in_the_path_is_answered_but_not_logged(local_stack):
    response = requests.get(f"{local_stack.api}/donations/4000 0566 5566 5556".replace(" ", ""), timeout=20)

    assert response.status_code == 404
    wait_for(lambda: "GET /donations/{donation_id} -> 404" in local_stack.log(), what="the request's log line")
    assert "4000056655665556" not in local_stack.log()


def _raw(api: str, method: str, path: str, body: bytes = b"", headers=()) -> tuple[int, dict[str, str], bytes]:
    """One request exactly as given: any method, header lines repeated as listed, the body's bytes."""
    target = urlsplit(api)
    connection = http.client.HTTPConnection(target.hostname, target.port, timeout=20)
    try:
        connection.putrequest(method, path, skip_accept_encoding=True)
        for name, value in headers:
            connection.putheader(name, value)
        connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        answer = response.status, {k: v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()
    count(answer[0])
    return answer


DONATION_BODY = {
    "amount": 2500,
    "currency": "usd",
    "email": "ada@example.org",
    "name": "Ada Lovelace",
    "payment_method": "pm_card_visa",
}
ROUTES = ["/donations", "/donations/don_unknown", "/webhooks/stripe", "/donations/a/b", "/webhooks"]
DEFINED = {("POST", "/donations"), ("GET", "/donations/don_unknown"), ("POST", "/webhooks/stripe")}
PREFLIGHT = {"/donations", "/donations/don_unknown", "/webhooks/stripe"}


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE", "PURGE"])
def test_every_method_on_every_route_gets_api_gateways_answer_as_json(local_stack, method):
    before = intents_created(local_stack)
    for path in ROUTES:
        status, headers, body = _raw(local_stack.api, method, path, headers=[("Origin", "https://donate.example")])

        assert status < 500 and status != 501, (method, path, status, body)
        if method == "OPTIONS" and path in PREFLIGHT:  # the template's Cors setting
            assert status == 200 and headers["Access-Control-Allow-Methods"] == "GET,POST,OPTIONS", headers
        elif (method, path) not in DEFINED:
            assert status == 403 and headers["Content-Type"] == "application/json", (method, path, status)
            assert headers["Access-Control-Allow-Origin"] == local_stack.api  # the local form's origin
            expected = b"" if method == "HEAD" else b'{"message":"Missing Authentication Token"}'
            assert body == expected, (method, path, body)
        else:
            assert headers["Content-Type"] == "application/json" and isinstance(json.loads(body), dict)
    assert intents_created(local_stack) == before


@pytest.mark.parametrize(
    "lines",
    [
        [("Idempotency-Key", "wire-a"), ("Idempotency-Key", "wire-b")],
        [("Idempotency-Key", "wire-c"), ("IDEMPOTENCY-KEY", "wire-d")],
        [("Idempotency-Key", "wire-e"), ("Content-Type", "text/plain")],
    ],
    ids=["two-keys", "two-spellings", "two-content-types"],
)
def test_repeated_header_lines_on_the_wire_are_refused_not_charged(local_stack, lines):
    before = intents_created(local_stack)

    status, _, body = _raw(
        local_stack.api,
        "POST",
        "/donations",
        json.dumps(DONATION_BODY).encode(),
        [("Content-Type", "application/json"), *lines],
    )

    assert status in (400, 415), body
    assert json.loads(body)["error"]["code"] in {"invalid_idempotency_key", "unsupported_media_type"}
    assert intents_created(local_stack) == before


@pytest.mark.parametrize("bad", INVALID_UTF8, ids=lambda bad: bad.hex())
def test_bytes_that_are_not_utf8_on_the_wire_are_refused_not_charged(local_stack, bad):
    before = intents_created(local_stack)
    body = json.dumps(DONATION_BODY).encode().replace(b"Ada Lovelace", b"Ada " + bad + b" Lovelace")

    status, _, answer = _raw(
        local_stack.api,
        "POST",
        "/donations",
        body,
        [("Content-Type", "application/json"), ("Idempotency-Key", f"utf8-{bad.hex()}")],
    )

    assert (status, json.loads(answer)["error"]["code"]) == (400, "invalid_encoding")
    assert intents_created(local_stack) == before


def test_a_donation_from_an_idn_address_gets_its_receipt(local_stack):
    answer = donate(local_stack.api, f"idn-{uuid.uuid4()}", email="ada+gift@bücher.de", save_card=False)
    assert answer.status_code == 201, answer.text
    donation_id = answer.json()["donation_id"]

    wait_for(
        lambda: requests.get(f"{local_stack.api}/donations/{donation_id}", timeout=10).json()["receipt_sent"],
        what="the receipt of the IDN donation",
    )

    mails = SendGridControl(local_stack.sendgrid).outbox(donation_id)
    assert [mail["to"] for mail in mails] == [["ada+gift@xn--bcher-kva.de"]]


@st.composite
def hostile_wire_requests(draw):
    """(body bytes, header lines, expected status) drawn from every class, as sent on the wire."""
    kind = draw(st.sampled_from(["deep", "repeated-key", "utf8", "media", "headers"]))
    headers = [("Content-Type", "application/json"), ("Idempotency-Key", f"wire-{uuid.uuid4()}")]
    body = json.dumps(DONATION_BODY).encode()
    if kind == "deep":
        return draw(deeply_nested_bodies()).encode(), headers, 400
    if kind == "repeated-key":
        return draw(bodies_with_a_repeated_key()).encode(), headers, 400
    if kind == "utf8":
        bad = draw(st.sampled_from(INVALID_UTF8))
        return body.replace(b"Lovelace", b"Love" + bad + b"lace"), headers, 400
    if kind == "media":
        return body, [("Content-Type", draw(json_media_types())), headers[1]], 201
    lines, keys = draw(header_lines())
    return body, lines, 201 if keys == 1 else 400


def test_generated_hostile_requests_through_the_front_never_fail_the_server(local_stack):
    sent = {"requests": 0}

    @given(request=hostile_wire_requests())
    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None)
    def call(request):
        body, headers, expected = request
        before = intents_created(local_stack)
        status, _, answer = _raw(local_stack.api, "POST", "/donations", body, headers)
        sent["requests"] += 1
        assert status == expected, (status, answer[:300])
        assert intents_created(local_stack) - before == (1 if expected == 201 else 0)

    call()
    assert sent["requests"] >= 150


EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
SECRETS = ("sk_test_", "sk_live_", "SG.", "whsec_")
TEST_CARD_NUMBERS = ("4242424242424242", "5555555555554444", "4000056655665556")


def test_the_logs_of_the_whole_run_hold_no_card_data_secret_or_email(local_stack):
    # Everything after the start-up banner (whose curl example names a sample address).
    lines = logs_since_ready(local_stack)
    assert len(lines) > 100  # the run above was logged (verbose JSON lines)
    assert_nothing_sensitive(lines)


def logs_since_ready(stack) -> list[str]:
    """The stack's output after its start-up banner (whose curl example names a sample address)."""
    return stack.log().split("Ready.", 1)[1].splitlines()


def assert_nothing_sensitive(lines: list[str]) -> None:
    """No card number, secret or clear email address in any line."""
    for line in lines:
        assert not any(pan in line.replace(" ", "") for pan in TEST_CARD_NUMBERS), line
        # EMF lines carry 13-digit epoch timestamps, which can pass Luhn by chance.
        if '"_aws"' not in line:
            assert not looks_like_card_number(line), line
        assert not any(secret in line for secret in SECRETS), line
        assert EMAIL.search(line) is None, line  # masked addresses (a***@e***.org) do not match


def test_a_path_holding_a_provider_key_is_logged_as_its_route(local_stack):
    # Schemathesis drew "sk_test_..." (a literal of this repository's code) as a pledge id once: the path is
    # the client's input, and the local front prints the route instead, as API Gateway's access log would
    response = requests.post(f"{local_stack.api}/pledges/sk_test_in_a_path/card/complete", json={}, timeout=10)
    assert 400 <= response.status_code < 500
    lines = logs_since_ready(local_stack)
    assert not any("sk_test_in_a_path" in line for line in lines)
    assert any("POST /pledges/{pledge_id}/card/complete -> " in line for line in lines)
