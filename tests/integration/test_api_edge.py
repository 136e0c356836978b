"""The HTTP edge refuses what a hostile client sends, with a clear 400/415, before anything is charged.

Each case was found charging the wrong amount, failing with a 503, or charging without a receipt
(a review found each); each must now be refused with its own code, leaving no record, no Stripe call, no message.
"""

import base64
import json

import pytest

from simulator.local.events import api_gateway_event
from tests.support.keys import a_key
from tests.support.world import DONATION

pytestmark = pytest.mark.integration

BODY = json.dumps(DONATION)
JSON_HEADERS = {"Content-Type": "application/json"}


def _post(world, raw: str, key: str, headers: dict[str, str] | None = None):
    return world.post_raw(raw, headers={**JSON_HEADERS, "Idempotency-Key": a_key(key), **(headers or {})})


def _refused(answer, status: int, code: str) -> None:
    assert answer.status == status, answer.body
    assert answer.body["error"]["code"] == code, answer.body
    assert answer.body["error"]["message"]


def _nothing_happened(world) -> None:
    assert world.donation_count() == 0
    assert sum(world.stripe.state()["requests"].values()) == 0
    assert world.queued("tokenize") == [] and world.queued("receipt") == []


@pytest.mark.parametrize("depth", [17, 200, 3_000])
def test_deep_nesting_inside_the_size_limit_is_a_400_not_a_503(world, depth):
    raw = '{"amount": 2500, "metadata": {"x": ' + "[" * depth + "]" * depth + "}}"
    assert len(raw) < 8_192

    _refused(_post(world, raw, f"deep-{depth}"), 400, "json_too_deep")
    _nothing_happened(world)


@pytest.mark.parametrize(
    "raw",
    [
        BODY[:-1] + ', "amount": 999999}',
        BODY.replace('"metadata": {"campaign": "spring"}', '"metadata": {"campaign": "a", "campaign": "b"}'),
        '{"amount": 2500, "amount": 2500}',
    ],
    ids=["top-level-amount", "nested-metadata", "same-value-twice"],
)
def test_a_repeated_key_at_any_level_is_refused_not_charged_under_the_last_value(world, raw):
    _refused(_post(world, raw, "dup"), 400, "duplicate_key")
    _nothing_happened(world)


def test_a_repeated_key_that_looks_like_card_data_is_refused_without_being_echoed(world, captured_logs):
    raw = '{"4242424242424242": 1, "4242424242424242": 2}'

    answer = _post(world, raw, "dup-pan")

    _refused(answer, 400, "duplicate_key")
    assert "4242" not in json.dumps(answer.body) and "4242424242424242" not in captured_logs()


@pytest.mark.parametrize(
    "raw",
    [BODY.replace("2500", "1" * 5_000), BODY.replace("2500", "NaN"), BODY.replace("2500", "-Infinity")],
    ids=["5000-digit-number", "NaN", "Infinity"],
)
def test_numbers_json_does_not_have_are_a_400(world, raw):
    _refused(_post(world, raw, "numbers"), 400, "invalid_json")
    _nothing_happened(world)


@pytest.mark.parametrize(
    "content_type",
    ["application/JSON", "Application/Json; charset=UTF-8", "APPLICATION/JSON;charset=utf8", "application/json "],
)
def test_media_types_are_case_insensitive(world, content_type):
    answer = _post(world, BODY, "media-case", {"Content-Type": content_type})

    assert answer.status == 201, answer.body


@pytest.mark.parametrize(
    "content_type",
    ["application/json; charset=latin-1", "application/jsonx", "text/json", "application/json/x", "text/plain"],
)
def test_other_media_types_and_charsets_are_a_415(world, content_type):
    _refused(_post(world, BODY, "media-other", {"Content-Type": content_type}), 415, "unsupported_media_type")
    _nothing_happened(world)


def test_an_idn_email_is_stored_and_receipted_in_its_ascii_form(world):
    answer = world.post({**DONATION, "email": "ada+gift@bücher.de"}, key=a_key("idn"))
    assert answer.status == 201, answer.body
    donation_id = answer.body["donation_id"]

    world.drain()

    assert world.record(donation_id).email == "ada+gift@xn--bcher-kva.de"
    assert world.record(donation_id).public_view().receipt_sent
    mails = world.sendgrid.outbox_for(donation_id)
    assert [mail["to"] for mail in mails] == [["ada+gift@xn--bcher-kva.de"]]


def test_an_address_the_mail_provider_cannot_deliver_to_is_refused_before_charging(world):
    answer = world.post({**DONATION, "email": "adä@bücher.de"}, key=a_key("smtputf8"))

    _refused(answer, 400, "invalid_email")
    assert answer.body["error"]["field"] == "email"
    assert "non-ASCII" in answer.body["error"]["message"]
    _nothing_happened(world)


def test_replacement_characters_left_by_invalid_utf8_are_a_400(world):
    # What API Gateway hands a function for a text body holding bytes that are not UTF-8.
    raw = (BODY.encode().replace(b"Ada Lovelace", b"Ada \xff\xfe Lovelace")).decode("utf-8", "replace")

    _refused(_post(world, raw, "fffd"), 400, "invalid_encoding")
    _nothing_happened(world)


def test_escaped_lone_surrogates_are_a_400(world):
    raw = BODY.replace('"spring"', '"\\udc00"')

    _refused(_post(world, raw, "surrogate"), 400, "invalid_encoding")
    _nothing_happened(world)


@pytest.mark.parametrize(
    ("raw", "status"),
    [(BODY.encode().replace(b"Ada Lovelace", b"Ada \xc0\xaf Lovelace"), 400), (BODY.encode(), 201)],
    ids=["overlong-utf8", "valid-utf8"],
)
def test_a_base64_body_is_decoded_strictly(world, raw, status):
    # With binaryMediaTypes matching, API Gateway passes the raw bytes base64-encoded.
    event = api_gateway_event(
        "POST",
        "/donations",
        body=base64.b64encode(raw).decode(),
        headers={**JSON_HEADERS, "Idempotency-Key": a_key(f"b64-{status}")},
        resource="/donations",
        base64_encoded=True,
    )

    result = world.pipeline.invoke("ChargeFunction", event)

    assert result["statusCode"] == status, result["body"]
    if status == 400:
        assert json.loads(result["body"])["error"]["code"] == "invalid_encoding"
        _nothing_happened(world)


@pytest.mark.parametrize(
    "headers",
    [
        [("Idempotency-Key", "first"), ("Idempotency-Key", "second")],
        [("Idempotency-Key", "first"), ("idempotency-key", "second")],
        [("Idempotency-Key", "same"), ("Idempotency-Key", "same")],
    ],
    ids=["two-values", "two-spellings", "same-value-twice"],
)
def test_more_than_one_idempotency_key_is_refused_not_charged_under_one_of_them(world, headers):
    answer = world.pipeline.call_api(
        "POST", "/donations", body=BODY, headers=[("Content-Type", "application/json"), *headers]
    )

    _refused(answer, 400, "invalid_idempotency_key")
    _nothing_happened(world)


def test_two_different_content_types_are_refused(world):
    answer = world.pipeline.call_api(
        "POST",
        "/donations",
        body=BODY,
        headers=[("Content-Type", "application/json"), ("Content-Type", "text/plain"), ("Idempotency-Key", "ct")],
    )

    _refused(answer, 415, "unsupported_media_type")
    _nothing_happened(world)
