"""The Stripe emulator's parameter contract comes from the SDK's generated types for the pinned
API version, and is refused the way Stripe refuses it."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from typing import Any

import pytest
import stripe
import stripe.params
from stripe._api_version import _ApiVersion
from stripe._request_options import RequestOptions

from simulator.emulators.stripe import (
    DEFAULT_API_VERSION,
    ENDPOINTS,
    SdkVersionMismatch,
    StripeEmulator,
    UnknownEndpoint,
    check_params,
    check_sdk_version,
)

pytestmark = pytest.mark.integration

StripeFactory = Callable[..., stripe.StripeClient]
CREATE = ("POST", "/v1/payment_intents")
OPTION_KEYS = RequestOptions.__required_keys__ | RequestOptions.__optional_keys__


def charge_params(**extra: Any) -> dict[str, Any]:
    """What the product's charge sends (src/donations/payments.py), as SDK values."""
    return {
        "amount": 2500,
        "currency": "usd",
        "payment_method": "pm_card_visa",
        "allowed_payment_method_types": ["card"],
        "confirm": True,
        "metadata": {"donation_id": "don_1"},
        "description": "Donation don_1",
        "setup_future_usage": "off_session",
        **extra,
    }


def codes(method: str, path: str, params: dict[str, Any]) -> list[tuple[str, str | None]]:
    return [(v.param, v.code) for v in check_params(method, path, params)]


# -- the pure contract ------------------------------------------------------------------------
def test_the_products_calls_satisfy_the_contract() -> None:
    assert check_params(*CREATE, charge_params()) == []
    search = {"query": "metadata['donation_id']:'d'", "limit": 10}
    assert check_params("GET", "/v1/payment_intents/search", search) == []
    assert check_params("POST", "/v1/payment_intents/pi_1/cancel", {"cancellation_reason": "abandoned"}) == []
    customer = {"email": "a@example.org", "name": "A", "metadata": {"donation_id": "d"}}
    assert check_params("POST", "/v1/customers", customer) == []
    assert check_params("POST", "/v1/payment_methods/pm_1/attach", {"customer": "cus_1"}) == []


def test_payment_method_types_is_refused_as_the_endive_changelog_documents() -> None:
    [violation] = check_params(*CREATE, charge_params(payment_method_types=["card"]))
    assert (violation.param, violation.code) == ("payment_method_types", "payment_method_types_no_longer_supported")
    assert violation.docs is not None and "changelog/endive" in violation.docs
    # Confirm lost it too; retrieve never had it, so there it is merely unknown.
    assert codes("POST", "/v1/payment_intents/pi_1/confirm", {"payment_method_types": ["card"]}) == [
        ("payment_method_types", "payment_method_types_no_longer_supported")
    ]
    assert codes("GET", "/v1/payment_intents/pi_1", {"payment_method_types": ["card"]}) == [
        ("payment_method_types", "parameter_unknown")
    ]


def test_required_unknown_and_nested_parameters() -> None:
    params = charge_params()
    del params["amount"]
    assert codes(*CREATE, params) == [("amount", "parameter_missing")]
    assert codes(*CREATE, charge_params(colour="red")) == [("colour", "parameter_unknown")]
    assert codes("GET", "/v1/payment_intents/search", {}) == [("query", "parameter_missing")]
    del params["allowed_payment_method_types"]
    nested = {**params, "amount": 2500, "automatic_payment_methods": {"allow_redirects": "never", "foo": "1"}}
    assert codes(*CREATE, nested) == [
        ("automatic_payment_methods[foo]", "parameter_unknown"),
        ("automatic_payment_methods[enabled]", "parameter_missing"),
    ]
    assert codes("GET", "/v1/payment_intents", {"created": {"gte": 1, "since": 2}}) == [
        ("created[since]", "parameter_unknown")
    ]


def test_values_are_checked_against_types_and_enums() -> None:
    assert codes(*CREATE, charge_params(amount="12.5")) == [("amount", "parameter_invalid_integer")]
    [boolean] = check_params(*CREATE, charge_params(confirm="yes"))
    assert (boolean.param, boolean.message) == ("confirm", "Invalid boolean: yes")
    [enum] = check_params(*CREATE, charge_params(setup_future_usage="forever"))
    assert enum.message == "Invalid setup_future_usage: must be one of off_session or on_session"
    [listed] = check_params(*CREATE, charge_params(allowed_payment_method_types=["card", "telepathy"]))
    assert listed.param == "allowed_payment_method_types[1]"
    reason = check_params("POST", "/v1/payment_intents/pi_1/cancel", {"cancellation_reason": "bored"})
    assert [v.param for v in reason] == ["cancellation_reason"]
    assert "requested_by_customer" in reason[0].message
    # off_session is a boolean or, in this version, one_off / recurring.
    assert check_params(*CREATE, charge_params(off_session="recurring")) == []
    assert [v.param for v in check_params(*CREATE, charge_params(off_session="sometimes"))] == ["off_session"]


def test_request_options_are_not_parameters() -> None:
    assert codes(*CREATE, charge_params(idempotency_key="k")) == [("idempotency_key", "parameter_unknown")]
    for endpoint in ENDPOINTS:
        assert not OPTION_KEYS & set(endpoint.spec.fields), endpoint.name


def test_an_endpoint_outside_the_contract_is_an_error() -> None:
    with pytest.raises(UnknownEndpoint):
        check_params("POST", "/v1/disputes/dp_1/close", {})


# -- the contract is the SDK's -------------------------------------------------------------------
@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: e.name)
def test_each_endpoint_accepts_exactly_its_sdk_params_type(endpoint: Any) -> None:
    typed_dict = getattr(stripe.params, endpoint.params_type)
    declared = (typed_dict.__required_keys__ | typed_dict.__optional_keys__) - OPTION_KEYS
    assert set(endpoint.spec.fields) == declared
    assert set(endpoint.spec.required) == typed_dict.__required_keys__ - OPTION_KEYS


_SERVICES = (
    stripe.PaymentIntentService,
    stripe.CustomerService,
    stripe.PaymentMethodService,
    stripe.ChargeService,
    stripe.RefundService,
    stripe.SetupIntentService,
    stripe.WebhookEndpointService,
)
_REQUEST = re.compile(r'self\._request\(\s*"(get|post|delete)",\s*"(/v1/[^"]+)"')


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: e.name)
def test_each_endpoint_is_the_sdk_call_taking_its_params_type(endpoint: Any) -> None:
    """The SDK's service method that sends METHOD /path is the one typed with that params class."""
    calls = []
    for service in _SERVICES:
        for name, method in inspect.getmembers(service, inspect.isfunction):
            found = _REQUEST.search(inspect.getsource(method))
            if found and not name.endswith("_async"):
                path = re.sub(r"\{\w+\}", "{id}", found[2])
                params = str(inspect.signature(method).parameters["params"].annotation)
                calls.append((found[1].upper(), path, params))
    [(_, _, annotation)] = [c for c in calls if (c[0], c[1]) == (endpoint.method, endpoint.template)]
    assert re.search(rf"\b{endpoint.params_type}\b", annotation)


def test_the_emulator_speaks_the_version_the_sdk_pins() -> None:
    assert DEFAULT_API_VERSION == _ApiVersion.CURRENT
    check_sdk_version(_ApiVersion.CURRENT)
    with pytest.raises(SdkVersionMismatch, match=r"2027-01-01\.future"):
        check_sdk_version("2027-01-01.future")


# -- over HTTP, through the real SDK -------------------------------------------------------------
def test_refusals_carry_stripes_error_shape(stripe_emu: StripeEmulator, stripe_client: StripeFactory) -> None:
    client = stripe_client(retries=2)
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.payment_intents.create(params=charge_params(colour="red"))  # type: ignore[arg-type]

    err = caught.value
    assert (err.http_status, err.code, err.param) == (400, "parameter_unknown", "colour")
    body = err.json_body["error"]  # type: ignore[index]
    assert body["type"] == "invalid_request_error"
    assert body["message"] == "Received unknown parameter: colour"
    assert body["doc_url"] == "https://stripe.com/docs/error-codes/parameter-unknown"
    request_id = err.headers["Request-Id"]  # type: ignore[index]
    assert re.fullmatch(rf"https://dashboard\.stripe\.com/test/logs/{request_id}\?t=\d+", body["request_log_url"])
    assert stripe_emu.requests["POST /v1/payment_intents"] == 1  # a 400 is not retried
    assert stripe_emu.payment_intents_created == 0


def test_payment_method_types_is_refused_over_http(stripe_emu: StripeEmulator, stripe_client: StripeFactory) -> None:
    params = charge_params(payment_method_types=["card"])
    del params["allowed_payment_method_types"]
    with pytest.raises(stripe.InvalidRequestError) as caught:
        stripe_client().v1.payment_intents.create(params=params)  # type: ignore[arg-type]
    assert (caught.value.http_status, caught.value.code) == (400, "payment_method_types_no_longer_supported")
    assert caught.value.param == "payment_method_types"
    assert stripe_emu.payment_intents_created == 0


def test_nested_and_enum_refusals_over_http(stripe_client: StripeFactory) -> None:
    client = stripe_client()
    params = charge_params(automatic_payment_methods={"foo": "1"})
    del params["allowed_payment_method_types"]
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.payment_intents.create(params=params)  # type: ignore[arg-type]
    assert (caught.value.code, caught.value.param) == ("parameter_unknown", "automatic_payment_methods[foo]")
    pi = client.v1.payment_intents.create(params=charge_params(confirm=False))  # type: ignore[arg-type]
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.payment_intents.cancel(pi.id, params={"cancellation_reason": "bored"})  # type: ignore[typeddict-item]
    assert caught.value.param == "cancellation_reason"
    assert client.v1.payment_intents.retrieve(pi.id).status == "requires_confirmation"


def test_exclusive_payment_method_parameters(stripe_client: StripeFactory) -> None:
    params = charge_params(automatic_payment_methods={"enabled": True})
    with pytest.raises(stripe.InvalidRequestError) as caught:
        stripe_client().v1.payment_intents.create(params=params)  # type: ignore[arg-type]
    assert caught.value.code == "parameters_exclusive"


def test_valid_but_unmodelled_parameters_are_refused_not_ignored(
    stripe_emu: StripeEmulator, stripe_client: StripeFactory
) -> None:
    with pytest.raises(stripe.InvalidRequestError) as caught:
        stripe_client().v1.payment_intents.create(params=charge_params(capture_method="manual"))  # type: ignore[arg-type]
    assert (caught.value.code, caught.value.param) == ("emulator_unmodelled_parameter", "capture_method")
    assert stripe_emu.payment_intents_created == 0


def test_another_api_version_is_refused(stripe_client: StripeFactory) -> None:
    with pytest.raises(stripe.InvalidRequestError) as caught:
        stripe_client().v1.payment_intents.create(
            params=charge_params(),  # type: ignore[arg-type]
            options={"stripe_version": "2024-06-20"},
        )
    assert DEFAULT_API_VERSION in str(caught.value.user_message)
