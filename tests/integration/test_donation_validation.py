"""Every bad request gets its own clear 4xx, and changes nothing: no record, no Stripe call, no message."""

import json

import pytest

from tests.support.keys import a_key
from tests.support.world import DONATION

pytestmark = pytest.mark.integration

MISSING = object()


def _with(**changes):
    body = dict(DONATION)
    for field, value in changes.items():
        if value is MISSING:
            body.pop(field)
        else:
            body[field] = value
    return body


@pytest.mark.parametrize(
    ("body", "status", "code", "field"),
    [
        (_with(amount=99), 400, "invalid_amount", "amount"),
        (_with(amount=5_000_001), 400, "invalid_amount", "amount"),
        (_with(amount=25.5), 400, "invalid_amount", "amount"),
        (_with(amount="2500"), 400, "invalid_amount", "amount"),
        (_with(amount=True), 400, "invalid_amount", "amount"),
        (_with(amount=MISSING), 400, "missing_field", "amount"),
        (_with(currency="xyz"), 400, "invalid_currency", "currency"),
        (_with(currency="dollars"), 400, "invalid_currency", "currency"),
        (_with(email="not-an-email"), 400, "invalid_email", "email"),
        (_with(email=MISSING), 400, "missing_field", "email"),
        (_with(name=""), 400, "invalid_name", "name"),
        (_with(name="x" * 201), 400, "invalid_name", "name"),
        (_with(name="Ada\nLovelace"), 400, "invalid_name", "name"),
        (_with(payment_method="card_visa"), 400, "invalid_payment_method", "payment_method"),
        (_with(payment_method=MISSING), 400, "missing_field", "payment_method"),
        (_with(save_card="yes"), 400, "invalid_save_card", "save_card"),
        (_with(metadata={f"k{i}": "v" for i in range(21)}), 400, "invalid_metadata", "metadata"),
        (_with(metadata={"campaign": "x" * 501}), 400, "invalid_metadata", "metadata.campaign"),
        (_with(metadata={"donation_id": "mine"}), 400, "invalid_metadata", "metadata"),
        (_with(metadata={"pledge_id": "pl_" + "0" * 24}), 400, "invalid_metadata", "metadata"),
        (_with(metadata={"renewal_period": "2027-01"}), 400, "invalid_metadata", "metadata"),
        (_with(metadata={"nested": {"a": 1}}), 400, "invalid_metadata", "metadata.nested"),
        (_with(tip=100), 400, "unknown_field", "tip"),
        (_with(card_number="4242424242424242"), 400, "card_data_refused", None),
        (_with(cvc="123"), 400, "card_data_refused", None),
        (_with(metadata={"note": "4000 0566 5566 5556"}), 400, "card_data_refused", None),
        (_with(name="4242-4242-4242-4242"), 400, "card_data_refused", None),
    ],
)
def test_each_bad_field_gets_its_error_and_nothing_happens(world, body, status, code, field):
    answer = world.post(body, key=a_key("key-invalid"))

    assert answer.status == status, answer.body
    assert answer.body["error"]["code"] == code
    assert answer.body["error"].get("field") == field
    assert answer.body["error"]["message"]
    _nothing_happened(world)


@pytest.mark.parametrize(
    ("raw", "headers", "status", "code"),
    [
        ("{not json", {"Content-Type": "application/json"}, 400, "invalid_json"),
        ("[1, 2]", {"Content-Type": "application/json"}, 400, "invalid_json"),
        ("", {"Content-Type": "application/json"}, 400, "invalid_json"),
        (json.dumps(DONATION), {"Content-Type": "text/plain"}, 415, "unsupported_media_type"),
        (json.dumps(DONATION), {}, 415, "unsupported_media_type"),
        (
            json.dumps(_with(metadata={"pad": "x" * 500, **{f"p{i}": "y" * 500 for i in range(19)}})),
            {"Content-Type": "application/json"},
            413,
            "payload_too_large",
        ),
    ],
)
def test_malformed_bodies_are_refused(world, raw, headers, status, code):
    answer = world.post_raw(raw, headers={"Idempotency-Key": a_key("key-raw"), **headers})
    assert answer.status == status, answer.body
    assert answer.body["error"]["code"] == code
    _nothing_happened(world)


@pytest.mark.parametrize("key", [None, "", "x" * 256, "has space", "tab\tkey", "é"])
def test_a_missing_or_malformed_idempotency_key_is_400(world, key):
    answer = world.post(DONATION, key=key)
    assert answer.status == 400
    assert answer.body["error"] == {
        "code": "invalid_idempotency_key",
        "field": "Idempotency-Key",
        "message": answer.body["error"]["message"],
    }
    _nothing_happened(world)


def test_card_data_is_never_logged(world, captured_logs):
    world.post(_with(metadata={"note": "4242424242424242"}), key=a_key("key-pan"))
    world.post(_with(cvc="987"), key=a_key("key-cvc"))
    world.post(DONATION, key=a_key("key-log-ok"))
    world.post(_with(payment_method="pm_card_chargeDeclined"), key=a_key("key-log-declined"))

    output = captured_logs()
    assert "Request refused" in output  # the refusals were logged...
    assert "4242424242424242" not in output  # ...without the card number,
    assert '"987"' not in output  # the CVC (quoted: bare digits turn up in timestamps and ids),
    assert "ada@example.org" not in output  # or the donor's address
    assert "a***@e***.org" in output  # which appears masked
    assert "sk_test_" not in output


def _nothing_happened(world):
    assert world.donation_count() == 0
    assert world.stripe.state()["payment_intents"] == []
    assert sum(world.stripe.state()["requests"].values()) == 0
    assert world.queued("tokenize") == [] and world.queued("receipt") == []
