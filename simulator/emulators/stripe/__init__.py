"""Local Stripe API emulator: PaymentIntents, Customers, PaymentMethods, Charges, idempotency,
faults, signed webhooks.

Speaks Stripe's v1 wire protocol (form-encoded requests, JSON responses, Stripe's error envelope)
for the one API version the installed stripe SDK pins (``version``), closely enough for the real
``stripe`` SDK to run against it:

    emu = StripeEmulator(webhook_url="http://127.0.0.1:8000/webhook").start()
    client = stripe.StripeClient("sk_test_x", base_addresses={"api": emu.url})

Kept honest by construction: accepted parameters come from the SDK's generated params types
(``contract``, ``typespec``), returned objects carry the fields the SDK's resource classes declare
(``objects``); behaviour the types cannot carry cites the Stripe documentation it follows.

Layout: ``server`` (HTTP, faults, idempotency flow), ``calls`` (auth, routing, contract),
``routes`` (endpoint -> handler), ``idempotency``, ``clock``, resources (``payment_intents``,
``intent_objects``, ``intent_queries``, ``confirmation``, ``customers``, ``payment_methods``,
``charges``), ``events`` + ``webhooks``, ``webhook_endpoints`` + ``endpoint_deliveries`` (the
WebhookEndpoints API and each endpoint's deliveries), ``cards``, ``wire`` (form decoding, search queries),
``control`` (``/_emulator/`` routes, ``StripeControl``). Run standalone with
``python -m simulator.emulators.stripe --port 12111``.
"""

from simulator.emulators.stripe.clock import Clock
from simulator.emulators.stripe.confirmation import AUTH_FAILURE_MESSAGE, RETURN_URL_MESSAGE
from simulator.emulators.stripe.contract import ENDPOINTS, Endpoint, UnknownEndpoint, Violation, check_params
from simulator.emulators.stripe.control import StripeControl
from simulator.emulators.stripe.idempotency import KEY_LIFETIME_SECONDS
from simulator.emulators.stripe.objects import declared_fields
from simulator.emulators.stripe.payment_methods import REUSED_PM_MESSAGE, UNATTACHABLE_PM_MESSAGE
from simulator.emulators.stripe.server import StripeEmulator
from simulator.emulators.stripe.signing import CONTENT_TYPE, DEFAULT_SECRET, USER_AGENT, encode_event, sign_payload
from simulator.emulators.stripe.version import DEFAULT_API_VERSION, SdkVersionMismatch, check_sdk_version
from simulator.emulators.stripe.webhook_settings import DEFAULT_RETRY_SCHEDULE, DEFAULT_TIMEOUT, MAX_WAIT_SECONDS
from simulator.emulators.stripe.webhooks import WebhookDispatcher
from simulator.emulators.stripe.wire import FormError, SearchQueryError, clause_matches, parse_form, parse_search

__all__ = [
    "AUTH_FAILURE_MESSAGE",
    "CONTENT_TYPE",
    "DEFAULT_API_VERSION",
    "DEFAULT_RETRY_SCHEDULE",
    "DEFAULT_SECRET",
    "DEFAULT_TIMEOUT",
    "ENDPOINTS",
    "KEY_LIFETIME_SECONDS",
    "MAX_WAIT_SECONDS",
    "RETURN_URL_MESSAGE",
    "REUSED_PM_MESSAGE",
    "UNATTACHABLE_PM_MESSAGE",
    "USER_AGENT",
    "Clock",
    "Endpoint",
    "FormError",
    "SdkVersionMismatch",
    "SearchQueryError",
    "StripeControl",
    "StripeEmulator",
    "UnknownEndpoint",
    "Violation",
    "WebhookDispatcher",
    "check_params",
    "check_sdk_version",
    "clause_matches",
    "declared_fields",
    "encode_event",
    "parse_form",
    "parse_search",
    "sign_payload",
]
