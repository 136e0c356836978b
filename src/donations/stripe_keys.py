"""The restricted Stripe key each function holds, and what Stripe must let that key do.

Stripe's restricted API keys (``rk_live_...`` / ``rk_test_...``; docs.stripe.com/keys/restricted-api-keys)
carry a permission per resource: None, Read or Write (Write includes Read). A request the key's
permissions do not cover is refused with an invalid request error (HTTP 403) and changes nothing.
Expanding an object in an answer needs a permission on it too (docs.stripe.com/stripe-apps/reference/
permissions, "Object permissions"). Each function gets a key of its own with only what its calls need
(donations.payments), so a compromised function cannot refund, pay out, or read what it never uses.
The Stripe webhook function holds no key: it only verifies signatures.
"""

from __future__ import annotations

from enum import StrEnum


class Access(StrEnum):
    READ = "Read"
    WRITE = "Write"


STRIPE_KEY_PERMISSIONS: dict[str, dict[str, Access]] = {
    # PaymentIntents.create (confirm), .list (finding a spent attempt's intent); the charge expanded on
    # the answer (latest_charge: card brand and last 4); PaymentMethods.retrieve (the card's fingerprint);
    # SetupIntents.create and .retrieve (a donor's new card for a pledge, its payment_method expanded).
    "charge": {
        "PaymentIntents": Access.WRITE,
        "Charges": Access.READ,
        "PaymentMethods": Access.READ,
        "SetupIntents": Access.WRITE,
    },
    # Customers.list (by email), .create and .delete (an erased donor's, donations.customer_erasure);
    # PaymentMethods.retrieve and .attach.
    "tokenize": {"Customers": Access.WRITE, "PaymentMethods": Access.WRITE},
    # PaymentIntents.list, .search, .retrieve and .cancel (an abandoned 3-D Secure payment).
    "reconciler": {"PaymentIntents": Access.WRITE},
    # A monthly renewal: PaymentIntents.create off-session on the saved card (customer + payment_method),
    # .list (finding a spent attempt's intent); the charge expanded on the answer (latest_charge).
    "renew": {"PaymentIntents": Access.WRITE, "Charges": Access.READ},
}
"""Function -> Stripe resource -> the permission its restricted key needs; every other resource: None."""

STRIPE_KEY_VARIABLES: dict[str, str] = {
    "charge": "STRIPE_CHARGE_SECRET_NAME",
    "tokenize": "STRIPE_TOKENIZE_SECRET_NAME",
    "reconciler": "STRIPE_RECONCILER_SECRET_NAME",
    "renew": "STRIPE_RENEW_SECRET_NAME",
}
"""Function -> the environment variable naming the SecureString parameter that holds its key."""
