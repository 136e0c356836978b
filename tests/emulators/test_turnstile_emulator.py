"""The Turnstile emulator's siteverify, as Cloudflare documents it, and what the product's verifier makes of it.

Cloudflare's pages (the emulator's docstring names them): "Server-side validation" for tokens,
single use, 300 s validity, idempotency keys and error codes; "Testing" for the dummy sitekeys,
secret keys and token.
"""

from __future__ import annotations

import uuid

import pytest
import requests

from donations.challenge import ExpectedWidget, TurnstileVerifier
from donations.errors import ServiceUnavailable
from simulator.emulators.turnstile_emulator import (
    DUMMY_TOKEN,
    FAILING_SECRET,
    LOCAL_SECRET,
    LOCAL_SITEKEY,
    PASSING_SECRET,
    SPENT_SECRET,
    TurnstileControl,
    TurnstileEmulator,
)

pytestmark = pytest.mark.integration


def siteverify(emu: TurnstileEmulator, *, form: bool = False, **fields: str) -> dict[str, object]:
    url = f"{emu.url}/turnstile/v0/siteverify"
    response = requests.post(url, data=fields, timeout=5) if form else requests.post(url, json=fields, timeout=5)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    answer: dict[str, object] = response.json()
    return answer


def test_a_solved_widget_token_validates_once_with_its_hostname(turnstile_emu):
    token = turnstile_emu.issue_token(LOCAL_SITEKEY, hostname="donate.example.org", action="donate")
    assert token is not None and len(token) <= 2048

    first = siteverify(turnstile_emu, secret=LOCAL_SECRET, response=token, remoteip="203.0.113.7")
    again = siteverify(turnstile_emu, secret=LOCAL_SECRET, response=token)

    assert first["success"] is True and first["error-codes"] == []
    assert first["hostname"] == "donate.example.org" and first["action"] == "donate"
    assert str(first["challenge_ts"]).endswith("Z")
    assert again == {"success": False, "error-codes": ["timeout-or-duplicate"]}


def test_the_same_idempotency_key_validates_the_same_token_again(turnstile_emu):
    token = turnstile_emu.issue_token(LOCAL_SITEKEY)
    key = str(uuid.uuid4())

    first = siteverify(turnstile_emu, secret=LOCAL_SECRET, response=token, idempotency_key=key)
    retried = siteverify(turnstile_emu, secret=LOCAL_SECRET, response=token, idempotency_key=key)
    other_key = siteverify(turnstile_emu, secret=LOCAL_SECRET, response=token, idempotency_key=str(uuid.uuid4()))

    assert first["success"] is True and retried == first
    assert other_key["error-codes"] == ["timeout-or-duplicate"]


def test_a_token_older_than_300_seconds_is_refused(turnstile_emu):
    token = turnstile_emu.issue_token(LOCAL_SITEKEY)
    turnstile_emu.advance_clock(301)

    assert siteverify(turnstile_emu, secret=LOCAL_SECRET, response=token)["error-codes"] == ["timeout-or-duplicate"]


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"response": "x"}, "missing-input-secret"),
        ({"secret": "0x4AAAAAAAnotOurs", "response": "x"}, "invalid-input-secret"),
        ({"secret": LOCAL_SECRET}, "missing-input-response"),
        ({"secret": LOCAL_SECRET, "response": "0.forged"}, "invalid-input-response"),
        ({"secret": LOCAL_SECRET, "response": DUMMY_TOKEN}, "invalid-input-response"),  # production keys reject it
        ({"secret": LOCAL_SECRET, "response": "0." + "a" * 2100}, "invalid-input-response"),
    ],
)
def test_documented_error_codes(turnstile_emu, fields, code):
    assert siteverify(turnstile_emu, **fields) == {"success": False, "error-codes": [code]}


def test_form_encoded_requests_are_accepted_and_a_malformed_body_is_a_bad_request(turnstile_emu):
    token = turnstile_emu.issue_token(LOCAL_SITEKEY)
    assert siteverify(turnstile_emu, form=True, secret=LOCAL_SECRET, response=token)["success"] is True

    malformed = requests.post(
        f"{turnstile_emu.url}/turnstile/v0/siteverify",
        data=b"{not json",
        headers={"Content-Type": "application/json"},
        timeout=5,
    )
    assert malformed.json() == {"success": False, "error-codes": ["bad-request"]}


@pytest.mark.parametrize(
    ("secret", "expected"),
    [
        (PASSING_SECRET, {"success": True}),
        (FAILING_SECRET, {"success": False, "error-codes": ["invalid-input-response"]}),
        (SPENT_SECRET, {"success": False, "error-codes": ["timeout-or-duplicate"]}),
    ],
)
def test_cloudflare_test_secrets_take_the_dummy_token_only(turnstile_emu, secret, expected):
    answer = siteverify(turnstile_emu, secret=secret, response=DUMMY_TOKEN)
    assert {key: answer[key] for key in expected} == expected

    real = turnstile_emu.issue_token(LOCAL_SITEKEY)
    assert siteverify(turnstile_emu, secret=secret, response=real)["error-codes"] == ["invalid-input-response"]


def test_test_sitekeys_give_the_dummy_token_or_fail(turnstile_emu):
    assert turnstile_emu.issue_token("1x00000000000000000000AA") == DUMMY_TOKEN
    assert turnstile_emu.issue_token("2x00000000000000000000AB") is None
    assert turnstile_emu.issue_token("no-such-sitekey") is None


def test_the_widget_stand_in_is_served_and_its_token_route_allows_the_form_origin(turnstile_emu):
    script = requests.get(f"{turnstile_emu.url}/turnstile/v0/api.js?render=explicit", timeout=5)
    assert script.status_code == 200 and "window.turnstile" in script.text

    token = TurnstileControl(turnstile_emu.url).issue_token()
    answer = requests.post(
        f"{turnstile_emu.url}/_emulator/tokens",
        data='{"sitekey": "' + LOCAL_SITEKEY + '"}',
        headers={"Content-Type": "text/plain", "Origin": "http://127.0.0.1:3000"},
        timeout=5,
    )
    assert answer.headers["Access-Control-Allow-Origin"] == "*"
    assert siteverify(turnstile_emu, secret=LOCAL_SECRET, response=token)["success"] is True


# -- the product's verifier (donations.challenge) against it --------------------------------------


FORM = ExpectedWidget(frozenset({"localhost"}))


def verifier(emu: TurnstileEmulator, secret: str = LOCAL_SECRET, expected: ExpectedWidget = FORM) -> TurnstileVerifier:
    return TurnstileVerifier(lambda: secret, f"{emu.url}/turnstile/v0/siteverify", timeout_seconds=2, expected=expected)


@pytest.mark.parametrize(
    ("solved_on", "action", "verdict"),
    [
        ("donate.example.org", "donate", (True, ())),
        ("DONATE.example.org", "donate", (True, ())),  # hostnames are case-insensitive
        ("attacker.example.net", "donate", (False, ("hostname-mismatch",))),  # our public sitekey, their page
        ("donate.example.org", "login", (False, ("action-mismatch",))),  # another of our widgets
        ("donate.example.org", None, (False, ("action-mismatch",))),  # a widget rendered without our action
    ],
)
def test_the_verifier_refuses_a_token_solved_on_another_page_or_widget(turnstile_emu, solved_on, action, verdict):
    # Cloudflare's "Validate the token" page: siteverify answers with the hostname the challenge was
    # served on and the widget's action, and says to check both against what is expected.
    expected = ExpectedWidget(frozenset({"donate.example.org", "www.example.org"}), "donate")
    token = turnstile_emu.issue_token(LOCAL_SITEKEY, hostname=solved_on, action=action)

    answer = verifier(turnstile_emu, expected=expected).verify(token, "203.0.113.7", str(uuid.uuid4()))

    assert (answer.success, answer.error_codes) == verdict
    assert turnstile_emu.verifications[-1]["success"] is True  # Cloudflare said yes; the product says no


def test_without_an_expected_action_any_action_from_a_form_host_passes(turnstile_emu):
    token = TurnstileControl(turnstile_emu.url).issue_token(hostname="localhost", action="anything")

    assert verifier(turnstile_emu).verify(token, "203.0.113.7", str(uuid.uuid4())).success is True


def test_the_verifier_retries_an_internal_error_under_the_same_idempotency_key(turnstile_emu):
    token = turnstile_emu.issue_token(LOCAL_SITEKEY)
    turnstile_emu.faults.add("http_error", status=500, times=1, phase="after")  # validated, answer lost

    verdict = verifier(turnstile_emu).verify(token, "203.0.113.7", str(uuid.uuid4()))

    assert verdict.success is True  # the retry replayed the validation the lost answer carried
    assert [v["error-codes"] for v in turnstile_emu.verifications] == [[], []]


def test_the_verifier_fails_closed_but_retryable_when_siteverify_is_down(turnstile_emu):
    turnstile_emu.faults.add("http_error", status=503)

    with pytest.raises(ServiceUnavailable):
        verifier(turnstile_emu).verify("0.some-token", "203.0.113.7", str(uuid.uuid4()))


def test_the_verifier_reports_a_refused_token_with_its_codes(turnstile_emu):
    verdict = verifier(turnstile_emu).verify("0.forged", "203.0.113.7", str(uuid.uuid4()))

    assert verdict.success is False and verdict.error_codes == ("invalid-input-response",)
