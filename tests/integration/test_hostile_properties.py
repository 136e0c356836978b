"""Property-based hostile input, through the gateway and the real charge function (in process, for volume).

The rule for every generated request: no answer >= 500; a refused request charges nothing and
stores nothing; an accepted one is charged once and gets its receipt. Each class of input found
wrong once has a generator here, not only the instance that was found.
"""

import base64
import json
import uuid

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from simulator.local.events import api_gateway_event
from tests.support.hostile import count
from tests.support.world import DONATION, World

pytestmark = pytest.mark.integration

HOSTILE = settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture], derandomize=True)
BODY_LIMIT = 8_192
CARD_NUMBERS = ["4242424242424242", "4242 4242 4242 4242", "5555-5555-5555-4444", "378282246310005"]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
ONE_TIME = {**DONATION, "save_card": False}  # the receipt only: each accepted example is drained


@pytest.fixture(scope="module")
def quiet_world(pipeline, stripe_emulator, sendgrid_emulator):
    world = World(pipeline, stripe_emulator, sendgrid_emulator)
    world.reset()
    # Many receipts at once, ten a batch in threads, and nothing here is about timeouts: the deployed 8 s
    with world.provider_timeout("SendReceiptFunction", 8):
        yield world


def _send(world, raw: str | bytes, headers) -> tuple:
    """POST through the gateway; returns (answer, PaymentIntents created by it, donations stored by it)."""
    intents, donations = world.stripe.payment_intents_created, world.donation_count()
    answer = world.pipeline.call_api("POST", "/donations", body=raw, headers=headers)
    count(answer.status)
    assert answer.status < 500, (answer.status, answer.body)
    return answer, world.stripe.payment_intents_created - intents, world.donation_count() - donations


def _refused_and_nothing_done(world, raw, headers, status: int, code: str) -> None:
    answer, charged, stored = _send(world, raw, headers)
    assert (answer.status, answer.body["error"]["code"]) == (status, code), answer.body
    assert (charged, stored) == (0, 0)


def _headers(key: str | None = None) -> list[tuple[str, str]]:
    return [("Content-Type", "application/json"), ("Idempotency-Key", key or f"hostile-{uuid.uuid4()}")]


def _charged(answer, charged: int) -> str:
    assert answer.status == 201, answer.body
    assert charged == 1
    return str(answer.body["donation_id"])


def _all_receipted(world, donation_ids: list[str]) -> None:
    """Every accepted donation got its receipt, sent to its address in ASCII form. Drained for all of
    them at once (the receipt queue's batching window costs a second per delivery of a lone message);
    a send that timed out under load is retried after its backoff, as the design has it."""
    assert donation_ids
    for _ in range(5):
        world.drain()
        if all(world.record(donation_id).public_view().receipt_sent for donation_id in donation_ids):
            break
        world.expire_backoffs()
    for donation_id in donation_ids:
        mails = world.sendgrid.outbox_for(donation_id)
        assert len(mails) == 1 and world.record(donation_id).public_view().receipt_sent, donation_id
        assert all(address.isascii() for address in mails[0]["to"])


# -- the generators of hostile classes ---------------------------------------------------------------


@st.composite
def bodies_hiding_a_card_number(draw):
    """A donation body with a card number put in a random field, nested at a random depth."""
    body = json.loads(json.dumps(DONATION))
    number = draw(st.sampled_from(CARD_NUMBERS))
    prefix = draw(st.text(alphabet="abc :-", max_size=5))
    hidden: object = f"{prefix}{number}"
    for key in draw(st.lists(st.sampled_from(["note", "x", "ref"]), max_size=3)):
        hidden = {key: hidden}
    body[draw(st.sampled_from(["name", "email", "payment_method", "metadata", "extra", "currency"]))] = hidden
    return body


@st.composite
def deeply_nested_bodies(draw):
    """A donation whose field holds arrays/objects nested 17 to ~4,000 deep, inside the size limit."""
    depth = draw(st.integers(min_value=17, max_value=3_900))
    opener = draw(st.sampled_from(["[", '{"a":', "[{}, ", '{"k": ['])) if depth < 1_000 else "["
    closer = {"[": "]", '{"a":': "}", "[{}, ": "]", '{"k": [': "]}"}[opener]
    nested = opener * depth + draw(st.sampled_from(["1", '"x"', "null", "[]"])) + closer * depth
    field = draw(st.sampled_from(["metadata", "name", "extra", "amount"]))
    raw = json.dumps({**ONE_TIME, field: "@"}).replace('"@"', nested)
    assume(len(raw.encode()) <= BODY_LIMIT)
    return raw


@st.composite
def bodies_with_a_repeated_key(draw):
    """A donation where one key appears twice in one object, at the top or inside nested objects."""
    pairs = [(key, json.dumps(value)) for key, value in ONE_TIME.items()]
    level = draw(st.sampled_from(["top", "metadata", "deeper"]))
    key = draw(st.sampled_from([k for k, _ in pairs]) if level == "top" else st.sampled_from(["campaign", "x"]))
    second = json.dumps(draw(st.sampled_from([999_999, "other", None, [1], {"a": 1}])))
    if level == "top":
        pairs.insert(draw(st.integers(0, len(pairs))), (key, second))
    else:
        inner = f'"{key}": "a", "{key}": {second}'
        inner = '{"outer": {' + inner + "}}" if level == "deeper" else "{" + inner + "}"
        pairs = [(k, inner if k == "metadata" else v) for k, v in pairs]
    return "{" + ", ".join(f'"{k}": {v}' for k, v in pairs) + "}"


INVALID_UTF8 = [
    b"\x80",  # a continuation byte alone
    b"\xbf\xbf",
    b"\xc0\xaf",  # overlong "/"
    b"\xc1\xbf",
    b"\xe0\x80\xaf",  # overlong, three bytes
    b"\xf0\x80\x80\xaf",  # overlong, four bytes
    b"\xed\xa0\x80",  # an encoded UTF-16 surrogate
    b"\xf4\x90\x80\x80",  # beyond U+10FFFF
    b"\xc3",  # truncated two-byte sequence
    b"\xe2\x82",  # truncated three-byte sequence
    b"\xfe",
    b"\xff\xfe",
]


@st.composite
def bodies_with_invalid_utf8(draw):
    """Valid donation JSON with bytes that are not UTF-8 put inside one of its string values."""
    field = draw(st.sampled_from(["name", "email", "currency", "payment_method"]))
    body = json.dumps({**ONE_TIME, "metadata": {"note": "x"}}).encode()
    value = json.dumps(ONE_TIME.get(field, "x")).encode()
    bad = b"".join(draw(st.lists(st.sampled_from(INVALID_UTF8), min_size=1, max_size=3)))
    cut = draw(st.integers(1, len(value) - 1))
    return body.replace(value, value[:cut] + bad + value[cut:], 1)


def _random_case(draw, text: str) -> str:
    flips = draw(st.lists(st.booleans(), min_size=len(text), max_size=len(text)))
    return "".join(char.upper() if flip else char.lower() for char, flip in zip(text, flips, strict=True))


@st.composite
def json_media_types(draw):
    """application/json spelled in any case, with or without a UTF-8 charset (also oddly cased, quoted)."""
    media = _random_case(draw, "application/json")
    charset = draw(st.sampled_from([None, "utf-8", "UTF-8", "utf8", '"utf-8"', "Utf-8"]))
    spaces = draw(st.sampled_from(["", " ", "  "]))
    return media + (f";{spaces}{_random_case(draw, 'charset')}={charset}" if charset else "") + spaces


@st.composite
def other_media_types(draw):
    """Types that are not JSON, and JSON with a charset that is not UTF-8."""
    return draw(
        st.sampled_from(["text/plain", "application/x-www-form-urlencoded", "application/jsonx", "text/json"])
        | st.builds(lambda cs: f"application/json; charset={cs}", st.sampled_from(["latin-1", "utf-16", "ascii"]))
    )


@st.composite
def header_lines(draw):
    """The donation's header lines in any case and order, Idempotency-Key sent one to three times."""
    keys = draw(st.lists(st.from_regex(r"[A-Za-z0-9\-]{8,20}", fullmatch=True), min_size=1, max_size=3))
    lines = [(_random_case(draw, "Idempotency-Key"), f"{key}-{uuid.uuid4().hex[:8]}") for key in keys]
    lines.append((_random_case(draw, "Content-Type"), "application/json"))
    lines += draw(st.lists(st.tuples(st.sampled_from(["Accept", "X-Forwarded-For", "Origin"]), st.just("x"))))
    return draw(st.permutations(lines)), len(keys)


# Any character a donor could type (ASCII space the only white space, so that stripping is unambiguous).
printable = st.characters(
    blacklist_categories=("Cc", "Cs", "Co", "Cn", "Zs", "Zl", "Zp"), blacklist_characters="\ufffd"
) | st.just(" ")
idn_labels = st.text(alphabet=st.characters(whitelist_categories=("Ll", "Lo", "Nd")), min_size=1, max_size=12)


@st.composite
def unicode_donations(draw):
    """Unicode in every free-text field: the name, metadata values, and an IDN domain in the email."""
    local = draw(st.from_regex(r"[a-z0-9][a-z0-9._+-]{0,15}", fullmatch=True))
    domain = draw(st.sampled_from(["bücher.de", "münchen.example", "例え.jp", "пример.рф", "example.org"]))
    label = draw(idn_labels)
    email = f"{local}@{label}.{domain}" if draw(st.booleans()) else f"{local}@{domain}"
    name = draw(st.text(alphabet=printable, min_size=1, max_size=60).map(str.strip).filter(bool))
    values = st.text(printable, max_size=80).map(str.strip)
    metadata = draw(st.dictionaries(st.sampled_from(["campaign", "note", "ref"]), values))
    return {**ONE_TIME, "email": email, "name": name, "metadata": metadata}


# -- the properties ----------------------------------------------------------------------------------


@given(body=bodies_hiding_a_card_number())
@settings(HOSTILE, max_examples=150)
def test_a_card_number_anywhere_is_refused_and_changes_nothing(quiet_world, body):
    _refused_and_nothing_done(quiet_world, json.dumps(body), _headers(), 400, "card_data_refused")


@given(body=st.dictionaries(st.sampled_from([*DONATION, "other"]), json_values, max_size=8) | json_values)
@settings(HOSTILE, max_examples=200)
def test_any_json_body_gets_an_answer_below_500(quiet_world, body):
    answer, charged, _ = _send(quiet_world, json.dumps(body), _headers())

    assert set(answer.body) == (
        {"error"}
        if answer.status >= 400
        else {"donation_id", "status"} | ({"client_secret"} if answer.status == 202 else set())
    )
    assert charged == (1 if answer.status in (201, 202) else 0)


@given(raw=deeply_nested_bodies())
@settings(HOSTILE, max_examples=150)
def test_deep_nesting_near_the_size_limit_is_a_400(quiet_world, raw):
    _refused_and_nothing_done(quiet_world, raw, _headers(), 400, "json_too_deep")


@given(raw=bodies_with_a_repeated_key())
@settings(HOSTILE, max_examples=150)
def test_a_repeated_key_at_any_level_is_a_400(quiet_world, raw):
    _refused_and_nothing_done(quiet_world, raw, _headers(), 400, "duplicate_key")


@given(raw=bodies_with_invalid_utf8(), base64_encoded=st.booleans())
@settings(HOSTILE, max_examples=200)
def test_invalid_and_overlong_utf8_is_a_400_as_text_or_base64(quiet_world, raw, base64_encoded):
    if not base64_encoded:  # as API Gateway passes a text body: decoded, bad bytes replaced by U+FFFD
        _refused_and_nothing_done(quiet_world, raw, _headers(), 400, "invalid_encoding")
        return
    intents = quiet_world.stripe.payment_intents_created
    event = api_gateway_event(
        "POST", "/donations", body=base64.b64encode(raw).decode(), headers=_headers(), base64_encoded=True
    )
    result = quiet_world.pipeline.invoke("ChargeFunction", event)
    count(result["statusCode"])
    assert (result["statusCode"], json.loads(result["body"])["error"]["code"]) == (400, "invalid_encoding")
    assert quiet_world.stripe.payment_intents_created == intents


def test_json_media_types_are_accepted_in_any_case_and_receipted(quiet_world):
    accepted: list[str] = []

    @given(content_type=json_media_types())
    @settings(HOSTILE, max_examples=60)
    def send(content_type):
        headers = [("Content-Type", content_type), ("Idempotency-Key", f"media-{uuid.uuid4()}")]
        accepted.append(_charged(*_send(quiet_world, json.dumps(ONE_TIME), headers)[:2]))

    send()
    _all_receipted(quiet_world, accepted)


@given(content_type=other_media_types())
@settings(HOSTILE, max_examples=60)
def test_other_media_types_are_a_415(quiet_world, content_type):
    headers = [("Content-Type", content_type), ("Idempotency-Key", f"media-{uuid.uuid4()}")]
    _refused_and_nothing_done(quiet_world, json.dumps(ONE_TIME), headers, 415, "unsupported_media_type")


@given(lines=header_lines())
@settings(HOSTILE, max_examples=150)
def test_repeated_and_oddly_cased_headers_one_key_charges_more_than_one_is_refused(quiet_world, lines):
    headers, keys = lines
    if keys > 1:
        _refused_and_nothing_done(quiet_world, json.dumps(ONE_TIME), headers, 400, "invalid_idempotency_key")
    else:
        answer, charged, _ = _send(quiet_world, json.dumps(ONE_TIME), headers)
        assert (answer.status, charged) == (201, 1), answer.body


def test_unicode_in_every_field_is_charged_and_receipted_or_refused_with_nothing_charged(quiet_world):
    accepted: list[tuple[str, dict]] = []

    @given(body=unicode_donations())
    @settings(HOSTILE, max_examples=100)
    def send(body):
        answer, charged, stored = _send(quiet_world, json.dumps(body), _headers())
        if answer.status >= 400:  # an address IDNA refuses, or (by chance) digits that pass for a card number
            assert answer.body["error"]["code"] in {"invalid_email", "card_data_refused"}, answer.body
            assert (charged, stored) == (0, 0)
            return
        donation_id = _charged(answer, charged)
        record = quiet_world.record(donation_id)
        assert record.name == body["name"] and record.metadata == body["metadata"]
        assert record.email.isascii() and record.email.split("@")[0] == body["email"].split("@")[0]
        accepted.append((donation_id, body))

    send()
    _all_receipted(quiet_world, [donation_id for donation_id, _ in accepted])
    assert any(not body["email"].isascii() for _, body in accepted)  # IDN addresses among the receipted
