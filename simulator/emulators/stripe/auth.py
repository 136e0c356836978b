"""API keys: how requests authenticate (docs.stripe.com/api/authentication)."""

from __future__ import annotations

import base64

from simulator.emulators.stripe import errors

NO_KEY_MESSAGE = (
    "You did not provide an API key. You need to provide your API key in the Authorization header, using "
    "Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication "
    "for details, or we can help at https://support.stripe.com/."
)


def authenticate(header: str | None, accepted: set[str] | None, *, publishable: bool = False) -> str:
    """The request's secret key; 401 when missing or not accepted (None: any ``sk_test_`` key).

    ``publishable``: the endpoint also takes any ``pk_test_`` key, as Stripe.js calls it from a browser."""
    key = api_key_from(header)
    if key is None:
        raise errors.invalid(NO_KEY_MESSAGE, status=401)
    if key.startswith("pk_"):
        if publishable and key.startswith("pk_test_"):
            return key
        raise errors.invalid(
            "This API call cannot be made with a publishable API key. Please use a secret API key. You can find "
            "a list of your API keys at https://dashboard.stripe.com/account/apikeys.",
            status=401,
        )
    valid = key in accepted if accepted is not None else key.startswith("sk_test_")
    if not valid:
        raise errors.invalid(f"Invalid API Key provided: {mask(key)}", status=401)
    return key


def api_key_from(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer":
        return value.strip() or None
    if scheme.lower() == "basic":  # curl -u sk_test_x:
        try:
            return base64.b64decode(value).decode().split(":", 1)[0] or None
        except ValueError:
            return None
    return None


def mask(key: str) -> str:
    return key[:8] + "*" * max(0, len(key) - 12) + key[-4:] if len(key) > 12 else key[:4] + "****"
