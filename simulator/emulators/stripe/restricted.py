"""Restricted API keys: a key that may only do what its permissions say.

Stripe's restricted keys (``rk_test_...``; docs.stripe.com/keys/restricted-api-keys) carry, per
resource, None, Read or Write (Write includes Read). A request the key may not make is refused with
an invalid request error, HTTP 403 (the SDK raises ``stripe.PermissionError``), before anything is
done; objects expanded in the answer need a permission too (docs.stripe.com/stripe-apps/reference/
permissions, "Object permissions": the same permission model). The message names the permission that
would let the request continue, as Stripe's does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from simulator.emulators.stripe import errors

READ, WRITE = "Read", "Write"

ROUTE_PERMISSIONS: dict[str, tuple[str, str]] = {
    "GET /v1/payment_intents": ("PaymentIntents", READ),
    "POST /v1/payment_intents": ("PaymentIntents", WRITE),
    "GET /v1/payment_intents/search": ("PaymentIntents", READ),
    "GET /v1/payment_intents/{id}": ("PaymentIntents", READ),
    "POST /v1/payment_intents/{id}/confirm": ("PaymentIntents", WRITE),
    "POST /v1/payment_intents/{id}/cancel": ("PaymentIntents", WRITE),
    "GET /v1/customers": ("Customers", READ),
    "POST /v1/customers": ("Customers", WRITE),
    "GET /v1/customers/{id}": ("Customers", READ),
    "DELETE /v1/customers/{id}": ("Customers", WRITE),
    "GET /v1/payment_methods/{id}": ("PaymentMethods", READ),
    "POST /v1/payment_methods/{id}/attach": ("PaymentMethods", WRITE),
    "POST /v1/setup_intents": ("SetupIntents", WRITE),
    "GET /v1/setup_intents/{id}": ("SetupIntents", READ),
    "POST /v1/setup_intents/{id}/confirm": ("SetupIntents", WRITE),
    "GET /v1/charges/{id}": ("Charges", READ),
    # The Dashboard's "Refunds" permission (rak_refund_write; donations-ops refund uses a secret key).
    "POST /v1/refunds": ("Refunds", WRITE),
    # Stripe.js creates PaymentMethods with the publishable key; a secret key needs PaymentMethods Write.
    "POST /v1/payment_methods": ("PaymentMethods", WRITE),
    # The Dashboard's "Webhook Endpoints" permission (donations-ops stripe install-webhook uses it).
    "GET /v1/webhook_endpoints": ("WebhookEndpoints", READ),
    "POST /v1/webhook_endpoints": ("WebhookEndpoints", WRITE),
    "GET /v1/webhook_endpoints/{id}": ("WebhookEndpoints", READ),
    "POST /v1/webhook_endpoints/{id}": ("WebhookEndpoints", WRITE),
    "DELETE /v1/webhook_endpoints/{id}": ("WebhookEndpoints", WRITE),
}
"""Each route the emulator serves -> the resource and the access it needs."""

EXPANDABLE: dict[str, str] = {"latest_charge": "Charges", "payment_method": "PaymentMethods", "customer": "Customers"}
"""An expandable field -> the resource whose Read permission expanding it needs."""

_PERMISSION_NAMES = {"PaymentIntents": "payment_intent", "Customers": "customer", "PaymentMethods": "payment_method"}
_PERMISSION_NAMES["Charges"] = "charge"
_PERMISSION_NAMES["Refunds"] = "refund"
_PERMISSION_NAMES["SetupIntents"] = "setup_intent"
_PERMISSION_NAMES["WebhookEndpoints"] = "webhook_endpoint"


def is_restricted(key: str) -> bool:
    return key.startswith("rk_test_")


def check(key: str, route: str, params: Mapping[str, Any], permissions: Mapping[str, str]) -> None:
    """Raise the 403 Stripe answers when ``permissions`` do not cover the request (and its expansions)."""
    needed = [ROUTE_PERMISSIONS[route]]
    expand = params.get("expand") or []
    for field in expand if isinstance(expand, list) else [expand]:
        resource = EXPANDABLE.get(str(field).rsplit(".", 1)[-1])
        if resource is not None:
            needed.append((resource, READ))
    for resource, access in needed:
        granted = permissions.get(resource)
        if granted in (WRITE, access):
            continue
        permission = f"rak_{_PERMISSION_NAMES[resource]}_{access.lower()}"
        raise errors.invalid(
            f"The provided key '{_masked(key)}' does not have the required permissions for this endpoint on "
            f"account 'acct_emulator'. Having the '{permission}' permission would allow this request to continue.",
            status=403,
        )


def _masked(key: str) -> str:
    return key[:8] + "*" * max(0, len(key) - 12) + key[-4:]
