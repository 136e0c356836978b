"""The Stripe emulator's parameter contract: what the pinned API version accepts, per endpoint.

Every endpoint the emulator serves names the stripe-python params TypedDict its SDK call takes
(``client.v1.payment_intents.create(params=PaymentIntentCreateParams)``); the accepted parameters
are that TypedDict's (see ``typespec``). ``check_params`` is a pure function: tests can hold any
recorded request against the SDK's types without an emulator running.

Parameters a changelog entry removed in this version answer with the code that entry documents,
not parameter_unknown.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import stripe.params

from simulator.emulators.stripe.typespec import HashSpec, Violation, check_hash, hash_spec
from simulator.emulators.stripe.version import DEFAULT_API_VERSION

__all__ = ["ENDPOINTS", "Endpoint", "UnknownEndpoint", "Violation", "check_params", "match_endpoint"]


@dataclass(frozen=True)
class Endpoint:
    method: str
    template: str  # "/v1/payment_intents/{id}/confirm"
    params_type: str  # the stripe.params TypedDict of the SDK call
    pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        regex = "^" + re.escape(self.template).replace(re.escape("{id}"), r"(?P<id>[^/]+)") + "$"
        object.__setattr__(self, "pattern", re.compile(regex))

    @property
    def name(self) -> str:
        return f"{self.method} {self.template}"

    @property
    def spec(self) -> HashSpec:
        return hash_spec(getattr(stripe.params, self.params_type))


# Literal paths come before "{id}" ones, so /v1/payment_intents/search is not read as an id.
ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("GET", "/v1/payment_intents", "PaymentIntentListParams"),
    Endpoint("POST", "/v1/payment_intents", "PaymentIntentCreateParams"),
    Endpoint("GET", "/v1/payment_intents/search", "PaymentIntentSearchParams"),
    Endpoint("GET", "/v1/payment_intents/{id}", "PaymentIntentRetrieveParams"),
    Endpoint("POST", "/v1/payment_intents/{id}/confirm", "PaymentIntentConfirmParams"),
    Endpoint("POST", "/v1/payment_intents/{id}/cancel", "PaymentIntentCancelParams"),
    Endpoint("GET", "/v1/customers", "CustomerListParams"),
    Endpoint("POST", "/v1/customers", "CustomerCreateParams"),
    Endpoint("GET", "/v1/customers/{id}", "CustomerRetrieveParams"),
    Endpoint("DELETE", "/v1/customers/{id}", "CustomerDeleteParams"),
    Endpoint("POST", "/v1/payment_methods", "PaymentMethodCreateParams"),
    Endpoint("GET", "/v1/payment_methods/{id}", "PaymentMethodRetrieveParams"),
    Endpoint("POST", "/v1/payment_methods/{id}/attach", "PaymentMethodAttachParams"),
    Endpoint("POST", "/v1/setup_intents", "SetupIntentCreateParams"),
    Endpoint("GET", "/v1/setup_intents/{id}", "SetupIntentRetrieveParams"),
    Endpoint("POST", "/v1/setup_intents/{id}/confirm", "SetupIntentConfirmParams"),
    Endpoint("GET", "/v1/charges/{id}", "ChargeRetrieveParams"),
    Endpoint("POST", "/v1/refunds", "RefundCreateParams"),
    Endpoint("GET", "/v1/webhook_endpoints", "WebhookEndpointListParams"),
    Endpoint("POST", "/v1/webhook_endpoints", "WebhookEndpointCreateParams"),
    Endpoint("GET", "/v1/webhook_endpoints/{id}", "WebhookEndpointRetrieveParams"),
    Endpoint("POST", "/v1/webhook_endpoints/{id}", "WebhookEndpointUpdateParams"),
    Endpoint("DELETE", "/v1/webhook_endpoints/{id}", "WebhookEndpointDeleteParams"),
)

_PMT_REMOVED = (
    "https://docs.stripe.com/changelog/endive/2026-09-30/"
    "removes-the-payment-method-types-parameter-from-payment-intents-and-setup-intents"
)
# Writable payment_method_types is gone in endive; its changelog entry documents a 400 with this code.
_REMOVED: Mapping[tuple[str, str], Violation] = {
    (name, "payment_method_types"): Violation(
        "payment_method_types",
        "payment_method_types_no_longer_supported",
        f"The `payment_method_types` parameter is not supported on API version {DEFAULT_API_VERSION}. Use "
        "`allowed_payment_method_types` or `excluded_payment_method_types`, or manage payment methods in "
        "the Dashboard.",
        docs=_PMT_REMOVED,
    )
    for name in ("POST /v1/payment_intents", "POST /v1/payment_intents/{id}/confirm", "POST /v1/setup_intents")
}


class UnknownEndpoint(LookupError):
    """Neither the emulator nor this contract knows the endpoint."""


def match_endpoint(method: str, path: str) -> tuple[Endpoint, str | None] | None:
    """The endpoint serving ``method path`` and the object id in the path, if any."""
    for endpoint in ENDPOINTS:
        if endpoint.method != method.upper():
            continue
        found = endpoint.pattern.match(path)
        if found is not None:
            obj_id = found.groupdict().get("id")
            return endpoint, unquote(obj_id) if obj_id is not None else None
    return None


def check_params(method: str, path: str, params: Mapping[str, Any]) -> list[Violation]:
    """What the pinned API version refuses about these parameters (an empty list: nothing).

    ``params`` as the SDK takes them (``{"amount": 2500, "confirm": True}``) or as they arrive on the
    wire (``parse_form`` output). Raises UnknownEndpoint for an endpoint outside the contract.
    """
    matched = match_endpoint(method, path)
    if matched is None:
        raise UnknownEndpoint(f"{method.upper()} {path} is not an endpoint of the Stripe emulator's contract")
    return check_endpoint_params(matched[0], to_wire(params))


def check_endpoint_params(endpoint: Endpoint, params: Mapping[str, Any]) -> list[Violation]:
    """``check_params`` for wire-form parameters of a known endpoint (the emulator's hot path)."""
    found = check_hash(endpoint.spec, params)
    return [_REMOVED.get((endpoint.name, v.param), v) if v.code == "parameter_unknown" else v for v in found]


def to_wire(value: Any) -> Any:
    """Python values as stripe-python form-encodes them: booleans "true"/"false", numbers as text,
    None left out (the SDK drops it)."""
    if isinstance(value, Mapping):
        return {str(k): to_wire(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [to_wire(v) for v in value if v is not None]
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value
