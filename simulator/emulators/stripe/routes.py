"""The emulator's route table: each endpoint of the contract with the function that serves it and
the parameters that function models.

A parameter the contract accepts but the handler does not model (``capture_method``, ``hooks``...)
is refused with an emulator-specific error rather than silently ignored: an emulator that quietly
did something else than Stripe would be drift of the worst kind.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from simulator.emulators.stripe import (
    charges,
    customers,
    intent_queries,
    payment_intents,
    payment_methods,
    setup_intents,
    webhook_endpoints,
)
from simulator.emulators.stripe.contract import ENDPOINTS, Endpoint, match_endpoint
from simulator.emulators.stripe.objects import Json
from simulator.emulators.stripe.state import Ctx, StripeState

Handler = Callable[[StripeState, Ctx, Json, str | None], Json]


# What a publishable key may call (docs.stripe.com/keys "Publishable keys": what Stripe.js does in the
# browser): create a PaymentMethod, and retrieve a PaymentIntent with its client secret
# (docs.stripe.com/api/payment_intents/retrieve: "client_secret ... required when using a publishable key"),
# and the same for a SetupIntent, which Stripe.js also confirms (docs.stripe.com/js/setup_intents/confirm_card_setup,
# with the SetupIntent's client secret: a parameter of the browser's request the server SDK's types lack).
PUBLISHABLE: dict[str, str | None] = {
    "POST /v1/payment_methods": None,
    "GET /v1/payment_intents/{id}": "client_secret",
    "GET /v1/setup_intents/{id}": "client_secret",
    "POST /v1/setup_intents/{id}/confirm": "client_secret",
}


@dataclass(frozen=True)
class Route:
    endpoint: Endpoint
    handler: Handler
    modelled: frozenset[str]  # parameters the handler implements

    @property
    def name(self) -> str:
        return self.endpoint.name


_CONFIRM = {
    "payment_method",
    "off_session",
    "return_url",
    "setup_future_usage",
    "receipt_email",
    "error_on_requires_action",
    "allowed_payment_method_types",
    "excluded_payment_method_types",
    "expand",
}
_CREATE = _CONFIRM | {
    "amount",
    "currency",
    "confirm",
    "customer",
    "description",
    "metadata",
    "automatic_payment_methods",
    "statement_descriptor",
    "statement_descriptor_suffix",
}
_LIST = {"created", "limit", "starting_after", "ending_before", "expand"}

_HANDLERS: dict[str, tuple[Handler, set[str]]] = {
    "GET /v1/payment_intents": (intent_queries.list_intents, _LIST | {"customer"}),
    "POST /v1/payment_intents": (payment_intents.create, _CREATE),
    "GET /v1/payment_intents/search": (intent_queries.search, {"query", "limit", "page", "expand"}),
    "GET /v1/payment_intents/{id}": (payment_intents.retrieve, {"client_secret", "expand"}),
    "POST /v1/payment_intents/{id}/confirm": (payment_intents.confirm_endpoint, _CONFIRM),
    "POST /v1/payment_intents/{id}/cancel": (payment_intents.cancel, {"cancellation_reason", "expand"}),
    "GET /v1/customers": (customers.list_customers, _LIST | {"email"}),
    "POST /v1/customers": (customers.create, {"email", "name", "description", "metadata", "phone", "expand"}),
    "GET /v1/customers/{id}": (customers.retrieve, {"expand"}),
    "DELETE /v1/customers/{id}": (customers.delete, set()),
    "POST /v1/payment_methods": (payment_methods.create, {"type", "card", "billing_details", "metadata"}),
    "GET /v1/payment_methods/{id}": (payment_methods.retrieve, {"expand"}),
    "POST /v1/payment_methods/{id}/attach": (payment_methods.attach_endpoint, {"customer", "expand"}),
    "POST /v1/setup_intents": (
        setup_intents.create,
        {"customer", "usage", "allowed_payment_method_types", "metadata", "description", "payment_method", "confirm"}
        | {"expand"},
    ),
    "GET /v1/setup_intents/{id}": (setup_intents.retrieve, {"client_secret", "expand"}),
    "POST /v1/setup_intents/{id}/confirm": (
        setup_intents.confirm_endpoint,
        {"payment_method", "client_secret", "expand"},
    ),
    "GET /v1/charges/{id}": (charges.retrieve, {"expand"}),
    "POST /v1/refunds": (charges.create_refund, {"charge", "payment_intent", "amount", "reason", "metadata", "expand"}),
    "GET /v1/webhook_endpoints": (
        webhook_endpoints.list_endpoints,
        {"limit", "starting_after", "ending_before", "expand"},
    ),
    "POST /v1/webhook_endpoints": (
        webhook_endpoints.create,
        {"url", "enabled_events", "api_version", "description", "metadata", "expand"},
    ),
    "GET /v1/webhook_endpoints/{id}": (webhook_endpoints.retrieve, {"expand"}),
    "POST /v1/webhook_endpoints/{id}": (
        webhook_endpoints.update,
        {"url", "enabled_events", "description", "metadata", "disabled", "expand"},
    ),
    "DELETE /v1/webhook_endpoints/{id}": (webhook_endpoints.delete, set()),
}

ROUTES: dict[str, Route] = {e.name: Route(e, _HANDLERS[e.name][0], frozenset(_HANDLERS[e.name][1])) for e in ENDPOINTS}
if set(_HANDLERS) != set(ROUTES):
    raise RuntimeError(f"routes without a contract endpoint: {sorted(set(_HANDLERS) - set(ROUTES))}")
for _route in ROUTES.values():
    _unknown = _route.modelled - set(_route.endpoint.spec.fields) - {PUBLISHABLE.get(_route.name)}
    if _unknown:  # the SDK types no longer have a parameter the emulator models: review the change
        raise RuntimeError(f"{_route.name} models parameters the SDK does not declare: {sorted(_unknown)}")


def match(method: str, path: str) -> tuple[Route, str | None] | None:
    matched = match_endpoint(method, path)
    if matched is None:
        return None
    endpoint, obj_id = matched
    return ROUTES[endpoint.name], obj_id
